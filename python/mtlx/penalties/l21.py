"""l2,1: whole feature rows of W on or off across tasks (joint feature selection)."""

from __future__ import annotations

import numpy as np

from .. import _core
from ._statistics import scaled_norms
from .base import Penalty, register
from .l1 import _ratio

__all__ = ["L21"]


@register
class L21(Penalty):
    """``w * sum_j ||W[j, :]||_2`` (Argyriou, Evgeniou & Pontil 2008; Obozinski et al. 2010).

    Prox: each row scaled by ``max(0, 1 - tau w / ||row||)`` (native). Under MPI the row
    norms need every task: the statistics are the squared row norms (a d-vector, a sum over
    tasks), and each rank scales its own columns. Dual norm: the largest row norm over w.
    """

    name = "l21"
    cd_kind = _core.PenaltyKind.l21
    runs_on_device = True
    stats_on_device = True
    nests_entries = True

    def prox(self, V, tau, out, ctx):
        return self.w * ctx.ops.prox(_core.PenaltyKind.l21, V, tau * self.w, out, ctx.n_threads)

    def value(self, V, ctx):
        return self.w * ctx.ops.penalty_value(_core.PenaltyKind.l21, V, ctx.n_threads)

    def dual_norm(self, M):
        return _ratio(float(scaled_norms(M, axis=0).max()) if np.size(M) else 0.0, self.w)

    def active_share(self, M, alpha):
        return float(np.mean(scaled_norms(M, axis=0) > alpha * self.w)) if np.size(M) else 0.0

    # -- what the working-set engine asks (M: d x T, rows = features) ------------------------------
    def feature_dual_norms(self, M):
        """Per feature, the dual norm of its row (unweighted): its l2 norm."""
        return scaled_norms(M, axis=1)

    def screening_bound(self, corr, radius, radius_scale):
        """Per feature, an upper bound of its row's l2 norm over a sphere of ``radius`` around ``corr``
        (the row's distance scaled by at most ``max_t radius_scale``)."""
        return scaled_norms(corr, axis=1) + radius * radius_scale.max(axis=1)

    def raw_value(self, W):
        """g(W) unweighted for W of shape (d, T)."""
        return float(scaled_norms(W, axis=1).sum())

    # -- distributed: squared row norms ----------------------------------------------------------
    def n_stats(self, ctx):
        return ctx.n_features

    def local_stats(self, V, tau, out, stats, ctx):
        stats[...] = np.einsum("tj,tj->j", V, V)  # (CuPy's einsum takes no out=)

    def prox_from_stats(self, V, stats, tau, out, ctx):
        norms = np.sqrt(np.maximum(stats, 0.0))
        t = tau * self.w
        factor = np.where(norms > t, 1.0 - t / np.where(norms > 0, norms, 1.0), 0.0)
        np.multiply(V, factor, out=out)
        return ctx.share(self.w * float(np.dot(factor, norms)))

    def value_from_stats(self, V, stats, ctx, grad=None):
        return ctx.share(self.w * float(np.sum(np.sqrt(np.maximum(stats, 0.0)))))

    def n_pieces(self, ctx):
        return 3 * ctx.n_features

    def local_pieces(self, Y, G, out, ctx):
        d = ctx.n_features
        out[:d] = np.einsum("tj,tj->j", Y, Y)  # (CuPy's einsum takes no out=)
        out[d : 2 * d] = np.einsum("tj,tj->j", Y, G)
        out[2 * d :] = np.einsum("tj,tj->j", G, G)

    def stats_from_pieces(self, pieces, step, ctx):
        d = ctx.n_features
        stats = pieces[:d] - 2.0 * step * pieces[d : 2 * d] + step * step * pieces[2 * d :]
        return np.maximum(stats, 0.0, out=stats)  # squared norms: rounding must not make them negative
