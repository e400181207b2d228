"""Plain-numpy penalties for bench_formulations.py, written from their definitions (no mtlx code).

Each penalty below is a value ``g(W)`` and a prox ``argmin_U 0.5 ||U - V||_F^2 + t g(U)`` on a
d x T matrix (column t = task t); the weight of l1, l21, trace and l1/l-inf is folded into ``t``:

* l1 (entries), l21 (rows), l21 columns (tasks): soft thresholding of entries or group norms;
* trace norm: soft thresholding of the singular values (from the SVD of V itself);
* l1/l-inf rows, ``sum_j max_t |W_jt|``: ``v - P(v)`` per row, P the projection onto the l1 ball
  of radius t (Moreau's identity), P by sorting (Duchi, Shalev-Shwartz, Singer & Chandra 2008);
* clustered, ``w eta (1 + eta) min_M tr(W (eta I + M)^-1 W^T)`` over ``tr M = k, 0 <= M <= I``:
  on the singular values, with the eigenvalues of M by an exact water-filling over the breakpoints;
* graph, ``w ||W R||_F^2``: smooth (value, gradient and curvature; no prox needed).

A superposition ``W = U + V`` (rMTFL, RMTL, dirty, sparse + low rank) uses one prox per block.
"""

from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------------- entries and groups
def l1_value(W: np.ndarray) -> float:
    """``sum_jt |W_jt|``."""
    return float(np.abs(W).sum())


def l1_prox(V: np.ndarray, t: float) -> np.ndarray:
    """Soft thresholding ``sign(v) max(|v| - t, 0)``."""
    return np.sign(V) * np.maximum(np.abs(V) - t, 0.0)


def _group_shrink(V: np.ndarray, t: float, axis: int) -> np.ndarray:
    """Each group (a row for axis=1, a column for axis=0) scaled by ``max(0, 1 - t / ||group||)``."""
    norms = np.sqrt(np.sum(V * V, axis=axis, keepdims=True))
    return V * np.maximum(0.0, 1.0 - t / np.maximum(norms, 1e-300))


def l21_value(W: np.ndarray) -> float:
    """``sum_j ||W[j, :]||_2`` (rows: features shared by the tasks)."""
    return float(np.sqrt(np.sum(W * W, axis=1)).sum())


def l21_prox(V: np.ndarray, t: float) -> np.ndarray:
    """Row-wise group soft thresholding."""
    return _group_shrink(V, t, axis=1)


def l21_columns_value(W: np.ndarray) -> float:
    """``sum_t ||W[:, t]||_2`` (columns: whole tasks)."""
    return float(np.sqrt(np.sum(W * W, axis=0)).sum())


def l21_columns_prox(V: np.ndarray, t: float) -> np.ndarray:
    """Column-wise group soft thresholding."""
    return _group_shrink(V, t, axis=0)


# ---------------------------------------------------------------------- spectral
def trace_value(W: np.ndarray) -> float:
    """Sum of the singular values."""
    return float(np.linalg.svd(W, compute_uv=False).sum())


def trace_prox(V: np.ndarray, t: float) -> np.ndarray:
    """``A diag(max(s - t, 0)) B^T`` for ``V = A diag(s) B^T``."""
    A, s, Bt = np.linalg.svd(V, full_matrices=False)
    return (A * np.maximum(s - t, 0.0)) @ Bt


# ---------------------------------------------------------------------- l1/l-inf
def linf1_value(W: np.ndarray) -> float:
    """``sum_j max_t |W_jt|``."""
    return float(np.abs(W).max(axis=1).sum())


def project_l1_ball_rows(V: np.ndarray, r: float) -> np.ndarray:
    """Each row of V projected onto ``{z: ||z||_1 <= r}`` (Duchi et al. 2008, by sorting).

    For a row outside the ball, ``z = sign(v) max(|v| - theta, 0)`` with ``theta = (sum_{i <= rho}
    u_i - r) / rho``, u the magnitudes in decreasing order and rho the largest i with
    ``u_i > (sum_{l <= i} u_l - r) / i``.
    """
    A = np.abs(V)
    U = -np.sort(-A, axis=1)
    css = np.cumsum(U, axis=1) - r
    i = np.arange(1, V.shape[1] + 1)
    rho = np.max(np.where(U > css / i, i, 0), axis=1)  # >= 1 whenever the row is outside the ball
    theta = css[np.arange(V.shape[0]), np.maximum(rho, 1) - 1] / np.maximum(rho, 1)
    theta = np.where(A.sum(axis=1) > r, theta, 0.0)
    return np.sign(V) * np.maximum(A - theta[:, None], 0.0)


def linf1_prox(V: np.ndarray, t: float) -> np.ndarray:
    """Prox of ``t sum_j ||W[j, :]||_inf``: ``v - P_{t B_1}(v)`` per row (Moreau)."""
    return V - project_l1_ball_rows(V, t)


# ---------------------------------------------------------------------- graph (smooth)
class Graph:
    """``w ||W R||_F^2 = w tr(W L W^T)``, ``L = R R^T``: value, gradient ``2 w W L`` and curvature."""

    def __init__(self, R: np.ndarray, w: float):
        self.L = R @ R.T
        self.w = w

    def value(self, W: np.ndarray) -> float:
        return self.w * float(np.sum((W @ self.L) * W))

    def gradient(self, W: np.ndarray) -> np.ndarray:
        return 2.0 * self.w * (W @ self.L)

    def curvature(self, D: np.ndarray) -> float:
        """``D' H D`` of the penalty's Hessian H (twice the value: it is quadratic)."""
        return 2.0 * self.value(D)


# ---------------------------------------------------------------------- clustered
def waterfill(s: np.ndarray, eta: float, k: float) -> np.ndarray:
    """``argmin_m sum_i s_i^2 / (eta + m_i)`` over ``0 <= m_i <= 1``, ``sum_i m_i = k`` (s >= 0, length T).

    The optimality conditions give ``m_i = clip(u s_i - eta, 0, 1)`` for a multiplier u > 0; the
    sum is piecewise linear and nondecreasing in u with breakpoints ``eta / s_i`` and
    ``(1 + eta) / s_i``, so u is found exactly: the sum at every breakpoint, then linear
    interpolation on the segment that contains k. If fewer than k singular values are positive,
    they all get 1 and the zero ones (which cost nothing) take the rest of the budget.
    """
    s = np.asarray(s, dtype=np.float64)
    m = np.zeros_like(s)
    pos = s > 0
    if pos.sum() <= k:
        m[pos] = 1.0
        rest = k - pos.sum()
        m[~pos] = rest / max((~pos).sum(), 1)
        return m
    sp = s[pos]
    u = np.sort(np.concatenate([eta / sp, (1.0 + eta) / sp]))
    total = np.clip(np.outer(u, sp) - eta, 0.0, 1.0).sum(axis=1)
    j = int(np.searchsorted(total, k))  # total[j - 1] < k <= total[j]
    lo, hi = u[j - 1], u[j]
    root = lo + (k - total[j - 1]) * (hi - lo) / (total[j] - total[j - 1])
    m[pos] = np.clip(root * sp - eta, 0.0, 1.0)
    return m


def _padded_singular(W: np.ndarray) -> np.ndarray:
    """The T singular values of the d x T matrix W (zeros beyond its rank's bound)."""
    s = np.linalg.svd(W, compute_uv=False)
    return np.concatenate([s, np.zeros(W.shape[1] - s.size)])


def clustered_value(W: np.ndarray, k: float, eta: float, w: float) -> float:
    """``c min_M tr(W (eta I + M)^-1 W^T) = c sum_i s_i^2 / (eta + m_i)``, ``c = w eta (1 + eta)``.

    M's optimum shares the eigenvectors of ``W^T W`` (the trace is then a sum over its
    eigenvalues, which von Neumann's inequality shows no other M beats), so only m is free.
    """
    s = _padded_singular(W)
    m = waterfill(s, eta, k)
    return w * eta * (1.0 + eta) * float(np.sum(s * s / (eta + m)))


def clustered_prox(V: np.ndarray, t: float, k: float, eta: float, w: float) -> np.ndarray:
    """Prox of ``t`` times the clustered penalty.

    ``min_U min_M 0.5 ||U - V||^2 + t c tr(U (eta I + M)^-1 U^T)`` is jointly convex. For fixed
    M the minimizer is ``U = V (eta I + M) (eta I + M + 2 t c I)^-1`` and the value left is
    ``t c sum_i s_i^2 / (eta + 2 t c + m_i)`` over V's singular values, so m is the water-filling
    at ``eta + 2 t c`` and U keeps V's singular vectors with ``s_i (eta + m_i) / (eta + m_i + 2 t c)``.
    """
    c = w * eta * (1.0 + eta)
    A, s, Bt = np.linalg.svd(V, full_matrices=False)
    T = V.shape[1]
    m = waterfill(np.concatenate([s, np.zeros(T - s.size)]), eta + 2.0 * t * c, k)[: s.size]
    return (A * (s * (eta + m) / (eta + m + 2.0 * t * c))) @ Bt
