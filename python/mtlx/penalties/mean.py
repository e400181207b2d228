"""Mean-regularized MTL: every task pulled toward the average task."""

from __future__ import annotations

import numpy as np

from .. import _core
from .base import Penalty, register

__all__ = ["Mean"]


@register
class Mean(Penalty):
    """``w * 0.5 * sum_t ||w_t - mean_s w_s||^2`` (Evgeniou & Pontil, KDD 2004; with ``l2``, their
    regularized MTL).

    Smooth and quadratic (gradient ``w (w_t - mean)``, Lipschitz constant w), and proximable:
    ``m + (v_t - m) / (1 + tau w)`` with m the mean task (native). Alone it is applied by its
    prox; in a sum with a non-smooth penalty it joins the smooth part. Under MPI the statistics
    are ``[sum_t v_t, sum_t ||v_t||^2, T]`` (d + 2 numbers). The spread comes from
    ``sum ||v_t||^2 - T ||mean||^2``, which loses digits when the tasks are nearly equal: an
    absolute error of about ``eps * sum ||v_t||^2`` in the objective only (the prox needs just
    the mean, exact to rounding).
    """

    name = "mean"
    smooth = True
    quadratic = True
    runs_on_device = True
    stats_on_device = True

    def prox(self, V, tau, out, ctx):
        return self.w * ctx.ops.prox(_core.PenaltyKind.mean, V, tau * self.w, out, ctx.n_threads)

    def value(self, V, ctx):
        return self.w * ctx.ops.penalty_value(_core.PenaltyKind.mean, V, ctx.n_threads)

    def value_and_gradient(self, V, grad, ctx):
        mean = V.mean(axis=0) if V.shape[0] else np.zeros(V.shape[1])
        dev = V - mean
        if grad is not None:
            grad += self.w * dev
        return 0.5 * self.w * float(np.einsum("tj,tj->", dev, dev))

    def lipschitz(self, ctx):
        return self.w

    # -- distributed: sum of the task vectors, sum of their squared norms, their number -----------
    def n_stats(self, ctx):
        return ctx.n_features + 2

    def local_stats(self, V, tau, out, stats, ctx):
        d = ctx.n_features
        V.sum(axis=0, out=stats[:d])
        stats[d] = np.einsum("tj,tj->", V, V)
        stats[d + 1] = V.shape[0]

    def _mean_and_spread(self, stats):
        d = stats.size - 2
        n_tasks = stats[d + 1]
        if n_tasks == 0:
            return np.zeros(d), 0.0
        mean = stats[:d] / n_tasks
        return mean, max(float(stats[d] - n_tasks * np.dot(mean, mean)), 0.0)

    def prox_from_stats(self, V, stats, tau, out, ctx):
        mean, spread = self._mean_and_spread(stats)
        shrink = 1.0 / (1.0 + tau * self.w)
        np.add(mean, (V - mean) * shrink, out=out)
        return ctx.share(0.5 * self.w * spread * shrink * shrink)

    def value_from_stats(self, V, stats, ctx, grad=None):
        mean, spread = self._mean_and_spread(stats)
        if grad is not None:
            grad += self.w * (V - mean)
        return ctx.share(0.5 * self.w * spread)

    def n_pieces(self, ctx):
        return 2 * ctx.n_features + 4

    def local_pieces(self, Y, G, out, ctx):
        d = ctx.n_features
        Y.sum(axis=0, out=out[:d])
        G.sum(axis=0, out=out[d : 2 * d])
        # (one entry at a time: on a device each is a 0-d device array, which a tuple cannot carry)
        out[2 * d] = np.einsum("tj,tj->", Y, Y)
        out[2 * d + 1] = np.einsum("tj,tj->", Y, G)
        out[2 * d + 2] = np.einsum("tj,tj->", G, G)
        out[2 * d + 3] = Y.shape[0]

    def stats_from_pieces(self, pieces, step, ctx):
        d = ctx.n_features
        yy, yg, gg, count = pieces[2 * d : 2 * d + 4]
        return np.concatenate([pieces[:d] - step * pieces[d : 2 * d],
                               [max(yy - 2.0 * step * yg + step * step * gg, 0.0), count]])
