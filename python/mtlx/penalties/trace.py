"""Trace (nuclear) norm: the task vectors near a low-dimensional subspace."""

from __future__ import annotations

import numpy as np

from .. import _core
from ._statistics import FeatureGram
from .base import Penalty, register
from .l1 import _ratio

__all__ = ["Trace"]


@register
class Trace(Penalty):
    """``w * sum_i sigma_i(W)``, the sum of the singular values (Argyriou et al. 2008; Ji & Ye 2009).

    Prox: singular value thresholding ``U max(s - tau w, 0) V^T``. One process: LAPACK ``gesdd``
    in the core, or, when d <= T, the eigendecomposition of the d x d ``W W^T`` (cheaper: school,
    28 x 139: 125 against 160 us). Under MPI the statistics are ``W W^T`` (its upper triangle,
    a sum over tasks) and each rank applies ``U diag(max(s - tau, 0) / s) U^T`` to its own
    columns. An eigenvalue of the Gram matrix carries an absolute error of about
    ``eps * s_max^2``, so a singular value near the threshold is off by ``eps * s_max^2 / s``:
    relative to W that is ``eps * s_max / tau``, far below the solver's tolerances. Dual norm:
    the spectral norm over w.
    """

    name = "trace"
    runs_on_device = True
    stats_on_device = True  # (the Gram matrix's eigendecomposition on the device: cuSOLVER)

    def prox(self, V, tau, out, ctx):
        if V.shape[1] <= V.shape[0] and not ctx.ops.on_device:  # (a device's prox picks its smaller side itself)
            # Scaled by the largest entry first: the Gram matrix of a W of scale 1e200 overflows
            # and of 1e-170 underflows (the prox then returned zeros).
            scale = float(np.abs(V).max()) if V.size else 0.0
            if not scale > 0:
                out[...] = 0.0
                return 0.0
            stats = np.empty(FeatureGram.size(V.shape[1]))
            FeatureGram.local(V / scale, stats)
            value = self.prox_from_stats(V / scale, stats, tau / scale, out, ctx)
            out *= scale
            return value * scale
        return self.w * ctx.ops.prox(_core.PenaltyKind.trace, V, tau * self.w, out, ctx.n_threads)

    def value(self, V, ctx):
        return self.w * ctx.ops.penalty_value(_core.PenaltyKind.trace, V, ctx.n_threads)

    def dual_norm(self, M):
        return _ratio(float(np.linalg.norm(M, 2)) if np.size(M) else 0.0, self.w)

    def active_share(self, M, alpha):
        if not np.size(M):
            return 0.0
        return float(np.mean(np.linalg.svd(M, compute_uv=False) > alpha * self.w))

    # -- distributed: the feature Gram matrix W W^T ------------------------------------------------
    def n_stats(self, ctx):
        return FeatureGram.size(ctx.n_features)

    def local_stats(self, V, tau, out, stats, ctx):
        FeatureGram.local(V, stats)

    def prox_from_stats(self, V, stats, tau, out, ctx):
        s, U = FeatureGram.eigh(stats, V.shape[1])
        t = tau * self.w
        keep = s > t
        shrink = 1.0 - t / s[keep]
        M = (U[:, keep] * shrink) @ U[:, keep].T  # symmetric: out_t = M v_t
        out[...] = V @ M  # a temporary first: out may alias V
        return ctx.share(self.w * float(np.sum(s[keep] - t)))

    def value_from_stats(self, V, stats, ctx, grad=None):
        return ctx.share(self.w * float(np.sum(FeatureGram.eigh(stats, ctx.n_features)[0])))

    def n_pieces(self, ctx):
        return 3 * FeatureGram.size(ctx.n_features)

    def local_pieces(self, Y, G, out, ctx):
        FeatureGram.local_pieces(Y, G, out)

    def stats_from_pieces(self, pieces, step, ctx):
        return FeatureGram.from_pieces(pieces, step, ctx.n_features)
