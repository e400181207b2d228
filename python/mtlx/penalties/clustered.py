"""Convex clustered MTL: tasks in k clusters, each cluster's tasks pulled together."""

from __future__ import annotations

import numbers

import numpy as np

from ._statistics import FeatureGram
from .base import Penalty, check_weight

__all__ = ["Clustered", "waterfill"]


def waterfill(sigma: np.ndarray, eta: float, k: float) -> np.ndarray:
    """The eigenvalues m of the optimal M for singular values ``sigma`` (>= 0).

    ``min_m sum_i sigma_i^2 / (eta + m_i)`` subject to ``sum m_i = k``, ``0 <= m_i <= 1`` (over all
    T task directions; those with sigma = 0 absorb whatever budget is left at no cost): by the
    optimality conditions ``m_i = clip(u sigma_i - eta, 0, 1)`` with u chosen so the positive
    sigmas take ``min(k, their number)``. Their sum is piecewise linear and nondecreasing in u,
    with breakpoints ``eta / sigma_i`` (i starts) and ``(1 + eta) / sigma_i`` (i saturates): one
    sort and cumulative sums give it at every breakpoint, and u exactly on the segment that holds
    the budget (O(T log T); a bisection cost 20 times more on 139 tasks).

    Tasks that are (nearly) linear combinations of others give singular values of 1e-12 and
    below: their breakpoints are 1e12 times the others', and the cumulative sums, cancelling
    there, lose every digit (the segment search then ran past the last breakpoint). The result
    is checked, and where the sums went wrong the segment is found again by bisection over the
    breakpoints, each sum taken directly.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    positive = sigma > 0
    m = np.zeros_like(sigma)
    budget = float(min(k, int(positive.sum())))
    if budget >= positive.sum():
        m[positive] = 1.0
        return m
    s = sigma[positive]
    # Events in u: at eta / s_i the slope gains s_i and the constant -eta; at (1 + eta) / s_i the
    # slope loses s_i and the constant gains eta + 1 (m_i = 1 from there on).
    u = np.concatenate([eta / s, (1.0 + eta) / s])
    d_slope = np.concatenate([s, -s])
    d_const = np.concatenate([np.full(s.size, -eta), np.full(s.size, eta + 1.0)])
    order = np.argsort(u, kind="stable")
    u, slope, const = u[order], np.cumsum(d_slope[order]), np.cumsum(d_const[order])
    total = slope * u + const  # the sum at each breakpoint (continuous: either side agrees)
    j = int(np.searchsorted(total, budget))  # total[j - 1] < budget <= total[j]
    if j < u.size:
        root = u[j] if j == 0 or slope[j - 1] <= 0 else (budget - const[j - 1]) / slope[j - 1]
        m[positive] = np.clip(root * s - eta, 0.0, 1.0)
        if abs(m.sum() - budget) <= 1e-12 * budget:
            return m
    m[positive] = _waterfill_by_bisection(s, eta, budget, u)
    return m


def _waterfill_by_bisection(s: np.ndarray, eta: float, budget: float, u: np.ndarray) -> np.ndarray:
    """waterfill's m for positive s, without cumulative sums: the first breakpoint of the sorted
    ``u`` where the sum reaches the budget, by bisection (each sum direct), then u on the segment
    before it, where the sum is linear in u over the directions strictly inside (0, 1)."""
    def filled(x):
        return np.clip(x * s - eta, 0.0, 1.0)

    lo, hi = 0, u.size - 1  # the sum is 0 at u[0] and every direction is full at u[-1]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if filled(u[mid]).sum() >= budget:
            hi = mid
        else:
            lo = mid
    inside_at = 0.5 * (u[lo] + u[hi])
    level = inside_at * s - eta
    inside = (level > 0.0) & (level < 1.0)
    full = np.count_nonzero(level >= 1.0)
    rate = float(s[inside].sum())
    root = u[hi] if rate <= 0.0 else (budget - full + eta * np.count_nonzero(inside)) / rate
    return filled(min(max(root, u[lo]), u[hi]))


class Clustered(Penalty):
    """``w * eta * (1 + eta) * min_M tr(W (eta I + M)^-1 W^T)`` over ``tr M = k, 0 <= M <= I`` (T x T).

    The convex relaxation of k-means clustering of the tasks (Jacob, Bach & Vert 2008; Zhou,
    Chen & Ye 2011, MALSAR's ``Least_CMTL`` with ``eta = rho2 / rho1``, ``w = rho1``).

    Parameters
    ----------
    k : float
        Number of clusters, ``1 <= k <= T``.
    eta : float
        > 0: the trade-off between the spread within clusters and the size of W.
    w : float, default 1.0

    Notes
    -----
    The value depends on the singular values s of W only: with m the optimal eigenvalues of M
    (:func:`waterfill`), ``g = c sum_i s_i^2 / (eta + m_i)``, ``c = w eta (1 + eta)``. It is
    smooth (a convex minimum of quadratics whose Hessians are bounded by ``2 c / eta``), with
    gradient ``2 c W (eta I + M)^-1`` and Lipschitz constant ``2 w (1 + eta)``. Its prox, on the
    singular values, is ``s_i (eta + m'_i) / (eta + m'_i + 2 tau c)`` with m' the waterfill at
    ``eta + 2 tau c``. Alone it is applied by its prox; beside a non-smooth penalty it joins
    the smooth part. Under MPI the statistics are ``W W^T`` (as for the trace norm).
    """

    smooth = True
    # On a device: the SVD of the T x d block there (cuSOLVER, through CuPy), the waterfill on
    # the host from the min(T, d) singular values, the factors back to the device.
    runs_on_device = True
    stats_on_device = True
    _fields = ("k", "eta", "w")

    def __init__(self, k, eta, w=1.0):
        super().__init__(w)
        if isinstance(k, bool) or not isinstance(k, numbers.Real) or not np.isfinite(k) or k < 1:
            raise ValueError(f"Clustered: k (the number of clusters) must be a number >= 1, got {k!r}")
        if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not np.isfinite(eta) or eta <= 0:
            raise ValueError(f"Clustered: eta must be a finite number > 0, got {eta!r}")
        self.k = float(k) if not float(k).is_integer() else int(k)
        self.eta = float(eta)
        check_weight(w)

    @property
    def _c(self) -> float:
        return self.w * self.eta * (1.0 + self.eta)

    def check(self, n_features, n_tasks):
        if self.k > n_tasks:
            raise ValueError(f"Clustered: k = {self.k} clusters but there are only {n_tasks} tasks (1 <= k <= T)")

    def lipschitz(self, ctx):
        return 2.0 * self.w * (1.0 + self.eta)

    def _from_singular(self, s: np.ndarray) -> float:
        m = waterfill(s, self.eta, self.k)
        return self._c * float(np.sum(s * s / (self.eta + m)))

    def value(self, V, ctx):
        return self._from_singular(ctx.ops.to_host(np.linalg.svd(V, compute_uv=False))) if V.size else 0.0

    def value_and_gradient(self, V, grad, ctx):
        if V.size == 0:
            return 0.0
        A, s_here, Bt = np.linalg.svd(V, full_matrices=False)
        s = ctx.ops.to_host(s_here)
        m = waterfill(s, self.eta, self.k)
        if grad is not None:
            grad += (A * ctx.here(2.0 * self._c * s / (self.eta + m))) @ Bt
        return self._c * float(np.sum(s * s / (self.eta + m)))

    def _shrink(self, s: np.ndarray, tau: float) -> np.ndarray:
        """Factors of the prox on the singular values."""
        bump = 2.0 * tau * self._c
        m = waterfill(s, self.eta + bump, self.k)
        return (self.eta + m) / (self.eta + m + bump)

    def prox(self, V, tau, out, ctx):
        if V.size == 0:
            return 0.0
        A, s_here, Bt = np.linalg.svd(V, full_matrices=False)
        s = ctx.ops.to_host(s_here)
        f = self._shrink(s, tau)
        out[...] = (A * ctx.here(s * f)) @ Bt
        return self._from_singular(s * f)

    # -- distributed: the feature Gram matrix W W^T ------------------------------------------------
    def n_stats(self, ctx):
        return FeatureGram.size(ctx.n_features)

    def local_stats(self, V, tau, out, stats, ctx):
        FeatureGram.local(V, stats)

    def _singular_of_stats(self, stats, ctx):
        """(singular values on the host, left singular vectors where the block lives)."""
        s, U = FeatureGram.eigh(stats, ctx.n_features)
        return ctx.ops.to_host(s), U

    def prox_from_stats(self, V, stats, tau, out, ctx):
        s, U = self._singular_of_stats(stats, ctx)
        f = self._shrink(s, tau)
        out[...] = (V @ U) * ctx.here(f) @ U.T
        return ctx.share(self._from_singular(s * f))

    def value_from_stats(self, V, stats, ctx, grad=None):
        s, U = self._singular_of_stats(stats, ctx)
        m = waterfill(s, self.eta, self.k)
        if grad is not None:
            grad += (V @ U) * ctx.here(2.0 * self._c / (self.eta + m)) @ U.T
        return ctx.share(self._c * float(np.sum(s * s / (self.eta + m))))

    def n_pieces(self, ctx):
        return 3 * FeatureGram.size(ctx.n_features)

    def local_pieces(self, Y, G, out, ctx):
        FeatureGram.local_pieces(Y, G, out)

    def stats_from_pieces(self, pieces, step, ctx):
        return FeatureGram.from_pieces(pieces, step, ctx.n_features)
