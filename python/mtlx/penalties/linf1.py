"""l1/l-inf: joint feature selection by the largest entry of each row (Jalali et al.'s dirty model)."""

from __future__ import annotations

import numpy as np

from ._statistics import GatheredRows
from .base import Penalty, register
from .l1 import _ratio

__all__ = ["LInf1"]


def prox_linf_rows(W: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Prox of ``t * max_i |W[j, i]|`` for every row j of ``W`` (d, T): (result, each row's max after it).

    By Moreau's identity the prox of the l-inf norm is ``v - P(v)`` with P the projection onto
    the l1 ball of radius t, which clips v at a threshold theta: ``sign(v) min(|v|, theta)``,
    where ``sum_i max(|v_i| - theta, 0) = t`` (theta = 0 when ``||v||_1 <= t``); theta comes from
    the sorted magnitudes (Duchi et al., ICML 2008), vectorized over the rows.
    """
    A = np.abs(W)
    if W.size == 0 or t == 0:
        return W.copy(), A.max(axis=1) if W.size else np.zeros(W.shape[0])
    S = -np.sort(-A, axis=1)  # decreasing along each row
    csum = np.cumsum(S, axis=1) - t
    # 1..T, made beside W (on a device, a host arange could not meet the device arrays)
    k = np.cumsum(np.ones_like(S[:1]), axis=1)
    # rho: the last position where the sorted magnitude is above the running threshold
    above = S - csum / k > 0
    rho = W.shape[1] - np.argmax(above[:, ::-1], axis=1)
    theta = np.take_along_axis(csum, (rho - 1)[:, None], axis=1)[:, 0] / rho
    # t below the rounding of a row's largest entry leaves no position above the threshold: the
    # threshold is then that entry itself (the row unchanged, to rounding).
    theta = np.where(above.any(axis=1), theta, S[:, 0])
    theta = np.where(A.sum(axis=1) > t, np.maximum(theta, 0.0), 0.0)
    return np.clip(W, -theta[:, None], theta[:, None]), theta


@register
class LInf1(Penalty):
    """``w * sum_j max_t |W[j, t]|`` (the block l1/l-inf norm; Turlach et al. 2005, Negahban &
    Wainwright 2011; with l1 in the dirty model of Jalali et al. 2010).

    Prox: row by row, ``sign(v) min(|v|, theta_j)`` (see :func:`prox_linf_rows`). A row needs
    every task's entry, so under MPI the statistics are W itself (each rank's columns summed
    into a zero T x d buffer: a gather by Allreduce). Dual norm: the largest row l1 norm over w.
    """

    name = "linf1"
    nests_entries = True
    runs_on_device = True  # (a sort per row and elementwise steps, through numpy's dispatch)
    stats_on_device = True

    def prox(self, V, tau, out, ctx):
        result, theta = prox_linf_rows(V.T, tau * self.w)
        out[...] = result.T
        return self.w * float(theta.sum())

    def value(self, V, ctx):
        return self.w * float(np.abs(V).max(axis=0).sum()) if V.size else 0.0

    def dual_norm(self, M):
        return _ratio(float(np.abs(M).sum(axis=0).max()) if np.size(M) else 0.0, self.w)

    # -- distributed: W gathered ---------------------------------------------------------------------
    def n_stats(self, ctx):
        return GatheredRows.size(ctx.n_features, ctx.n_tasks)

    def local_stats(self, V, tau, out, stats, ctx):
        GatheredRows.local(V, stats, ctx)

    def prox_from_stats(self, V, stats, tau, out, ctx):
        full = GatheredRows.full(stats, ctx)
        result, theta = prox_linf_rows(full.T, tau * self.w)
        out[...] = result.T[ctx.local_index]
        return ctx.share(self.w * float(theta.sum()))

    def value_from_stats(self, V, stats, ctx, grad=None):
        return ctx.share(self.value(GatheredRows.full(stats, ctx), ctx))

    def n_pieces(self, ctx):
        return 2 * self.n_stats(ctx)

    def local_pieces(self, Y, G, out, ctx):
        GatheredRows.local_pieces(Y, G, out, ctx)

    def stats_from_pieces(self, pieces, step, ctx):
        return GatheredRows.from_pieces(pieces, step, ctx)
