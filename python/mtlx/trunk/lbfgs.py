"""Limited-memory BFGS over block vectors whose inner products may span ranks.

Written here rather than calling scipy's L-BFGS-B because under MPI the vector is distributed:
the trunk block is the same on every rank and each rank holds its own tasks' blocks, so every
inner product of the two-loop recursion is a local sum plus one all-reduce
(:class:`~mtlx.trunk.objective.BlockSpace`), and every rank takes the same decisions.

Step: the two-loop recursion (Nocedal & Wright, Algorithm 7.4) with the scaling s'y / y'y;
backtracking line search on the sufficient-decrease condition (c1 = 1e-4), quadratic
interpolation between trials, a non-finite trial counted as too long a step; a pair (s, y) is
kept only when s'y > 0 (the curvature condition), so the implicit Hessian stays positive definite.
Stops when max|g| <= tol (scikit-learn's MLP passes tol to scipy as gtol), when F falls by less
than 2.2e-9 relative (scipy's default ftol) and tol > 0, or after max_iter iterations.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["minimize_lbfgs"]

#: scipy's default relative-decrease tolerance of L-BFGS-B (factr = 1e7 times machine epsilon).
FTOL = 1e7 * np.finfo(float).eps


def minimize_lbfgs(fun, x0: np.ndarray, space, max_iter: int, tol: float, memory: int = 10, on_iteration=None):
    """Minimize ``fun(x) -> (F, g)`` from ``x0``.

    Parameters
    ----------
    fun : callable
    x0 : ndarray (float64)
    space : BlockSpace
        Inner products and the max-norm of the (possibly distributed) vectors.
    max_iter : int
    tol : float
        Gradient tolerance (max |g|); 0 runs ``max_iter`` iterations (unless the line search fails).
    memory : int
        Number of (s, y) pairs kept.
    on_iteration : callable, optional
        ``on_iteration(k, x, F)`` after iteration k (1-based); returning True stops.

    Returns
    -------
    x, F, n_iter, converged, message
    """
    x = np.array(x0, dtype=np.float64, copy=True)
    F, g = fun(x)
    if not np.isfinite(F):
        raise FloatingPointError("the objective is not finite at the starting point")
    pairs = deque(maxlen=memory)
    for k in range(1, max_iter + 1):
        if tol > 0 and space.max_abs(g) <= tol:
            return x, F, k - 1, True, f"max|gradient| <= tol after {k - 1} iterations"
        d = _direction(g, pairs, space)
        slope = space.dot(g, d)
        if not slope < 0:  # not a descent direction (rounding): forget the curvature pairs
            pairs.clear()
            d = -g
            slope = -space.dot(g, g)
        t = 1.0 if pairs else min(1.0, 1.0 / np.sqrt(-slope))
        accepted = _line_search(fun, x, F, d, slope, t)
        if accepted is None and pairs:
            pairs.clear()
            d = -g
            slope = -space.dot(g, g)
            accepted = _line_search(fun, x, F, d, slope, min(1.0, 1.0 / np.sqrt(-slope)))
        if accepted is None:
            return x, F, k - 1, False, f"the line search found no decrease at iteration {k}"
        x_new, F_new, g_new = accepted
        s, y = x_new - x, g_new - g
        sy = space.dot(s, y)
        if sy > 0:
            pairs.append((s, y, 1.0 / sy))
        F_old = F
        x, F, g = x_new, F_new, g_new
        if on_iteration is not None and on_iteration(k, x, F):
            return x, F, k, False, f"stopped by the caller after {k} iterations"
        if tol > 0 and F_old - F <= FTOL * max(abs(F_old), abs(F), 1.0):
            return x, F, k, True, f"relative decrease of F <= {FTOL:.1e} after {k} iterations"
    return x, F, max_iter, False, f"max_iter={max_iter} iterations reached"


def _direction(g: np.ndarray, pairs, space) -> np.ndarray:
    """-H g by the two-loop recursion."""
    q = g.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * space.dot(s, q)
        q -= a * y
        alphas.append(a)
    if pairs:
        s, y, rho = pairs[-1]
        q *= 1.0 / (rho * space.dot(y, y))
    for (s, y, rho), a in zip(pairs, reversed(alphas)):
        b = rho * space.dot(y, q)
        q += (a - b) * s
    return -q


def _line_search(fun, x, F, d, slope, t, c1: float = 1e-4, max_trials: int = 40):
    """Backtracking on F(x + t d) <= F + c1 t slope; returns (x_new, F_new, g_new) or None."""
    for _ in range(max_trials):
        x_new = x + t * d
        F_new, g_new = fun(x_new)
        if np.isfinite(F_new) and F_new <= F + c1 * t * slope:  # (F is global: every rank decides alike)
            return x_new, F_new, g_new
        if np.isfinite(F_new):
            # Minimum of the quadratic through F, slope and F_new, kept within [0.1 t, 0.5 t].
            curvature = F_new - F - slope * t
            t_q = -slope * t * t / (2.0 * curvature) if curvature > 0 else 0.5 * t
            t = min(max(t_q, 0.1 * t), 0.5 * t)
        else:
            t *= 0.1
    return None
