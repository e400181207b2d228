"""Entrywise l1: every task sparse on its own (no sharing; a baseline)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .base import Penalty, register

__all__ = ["L1"]


@register
class L1(Penalty):
    """``w * sum_jt |W_jt|``.

    Prox: soft thresholding ``sign(v) max(|v| - tau w, 0)`` (native). Local under MPI: each rank
    shrinks its own columns. Dual norm: ``max_jt |M_jt| / w``.
    """

    name = "l1"
    cd_kind = _core.PenaltyKind.l1
    runs_on_device = True

    def prox(self, V, tau, out, ctx):
        return self.w * ctx.ops.prox(_core.PenaltyKind.l1, V, tau * self.w, out, ctx.n_threads)

    def value(self, V, ctx):
        return self.w * ctx.ops.penalty_value(_core.PenaltyKind.l1, V, ctx.n_threads)

    def dual_norm(self, M):
        return _ratio(float(np.abs(M).max()) if np.size(M) else 0.0, self.w)

    def active_share(self, M, alpha):
        return float(np.mean(np.abs(M) > alpha * self.w)) if np.size(M) else 0.0

    # -- what the working-set engine asks (M: d x T, rows = features) ------------------------------
    def feature_dual_norms(self, M):
        """Per feature, the dual norm of its row (unweighted): max_t |M_jt|."""
        return np.abs(M).max(axis=1)

    def screening_bound(self, corr, radius, radius_scale):
        """Per feature, an upper bound of the dual norm of its row over a sphere of ``radius``
        around ``corr``, the entries' distances scaled by ``radius_scale`` (d x T)."""
        return (np.abs(corr) + radius * radius_scale).max(axis=1)

    def raw_value(self, W):
        """g(W) unweighted for W of shape (d, T)."""
        return float(np.abs(W).sum())


def _ratio(norm: float, w: float) -> float:
    """The dual norm of ``w g``: ``g*(M) / w`` (infinite for w = 0 unless M = 0)."""
    if w > 0:
        return norm / w
    return 0.0 if norm == 0 else np.inf
