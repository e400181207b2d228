"""Limited-memory BFGS over block vectors whose inner products may span ranks.

Written here rather than calling scipy's L-BFGS-B because under MPI the vector is distributed:
the trunk block is the same on every rank and each rank holds its own tasks' blocks, so every
inner product of the two-loop recursion is a local sum plus one all-reduce
(:class:`~mtlx.trunk.objective.BlockSpace`), and every rank takes the same decisions.

Step: the two-loop recursion (Nocedal & Wright, Algorithm 7.4) with the scaling s'y / y'y; a
strong-Wolfe line search (c1 = 1e-4, c2 = 0.9; bracketing and cubic interpolation), a non-finite
trial counted as too long a step; a pair (s, y) is kept only when s'y > 0, so the implicit Hessian
stays positive definite. (A backtracking search on sufficient decrease alone accepted steps that
broke the curvature information: on an uncertainty-weighted fit the steps shrank to 1e-10 of the
direction and L-BFGS stalled 0.5 % from the optimum.)
Stops when max|g| <= tol (scikit-learn's MLP passes tol to scipy as gtol), when F stalls (falls
by less than 4 ulp, relative: no representable progress left) and tol > 0, or after max_iter
iterations. scipy's default relative-decrease stop (2.2e-9) is not used: in the flat valleys of
a factored model (W = U A) it stopped 3e-8 above the optimum while the gradient was still large.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["LbfgsState", "minimize_lbfgs"]

#: Relative decrease of F below which L-BFGS has stalled (4 ulp).
FTOL = 4 * np.finfo(float).eps


class LbfgsState:
    """Where L-BFGS stands after ``k`` iterations: the iterate, F and gradient there, and the
    curvature pairs (s, y, 1 / s'y), oldest first. Saved by a checkpoint, resumed from."""

    def __init__(self, x: np.ndarray, F: float, g: np.ndarray, memory: int = 10, k: int = 0, pairs=()):
        self.x, self.F, self.g, self.k = x, float(F), g, int(k)
        self.pairs = deque(pairs, maxlen=memory)
        self.curve, self.task_curve = [], []  # (kept by the caller: F and the tasks' losses per iteration)


def minimize_lbfgs(fun, x0: np.ndarray, space, max_iter: int, tol: float, memory: int = 10, on_iteration=None,
                   state: LbfgsState | None = None):
    """Minimize ``fun(x) -> (F, g)`` from ``x0`` (or from ``state``, a resumed run).

    Parameters
    ----------
    fun : callable
    x0 : ndarray (float64)
    space : BlockSpace
        Inner products and the max-norm of the (possibly distributed) vectors.
    max_iter : int
        Iterations in all (a resumed run counts those done before).
    tol : float
        Gradient tolerance (max |g|); 0 runs ``max_iter`` iterations (unless the line search fails).
    memory : int
        Number of (s, y) pairs kept.
    on_iteration : callable, optional
        ``on_iteration(state)`` after each iteration (``state.k`` of them done); returning True stops.
    state : LbfgsState, optional

    Returns
    -------
    x, F, n_iter, converged, message
    """
    if state is None:
        x = np.array(x0, dtype=np.float64, copy=True)
        F, g = fun(x)
        if not np.isfinite(F):
            raise FloatingPointError("the objective is not finite at the starting point")
        state = LbfgsState(x, F, g, memory)
    pairs = state.pairs
    for k in range(state.k + 1, max_iter + 1):
        x, F, g = state.x, state.F, state.g
        if tol > 0 and space.max_abs(g) <= tol:
            return x, F, k - 1, True, f"max|gradient| <= tol after {k - 1} iterations"
        d = _direction(g, pairs, space)
        slope = space.dot(g, d)
        if not slope < 0:  # not a descent direction (rounding): forget the curvature pairs
            pairs.clear()
            d = -g
            slope = -space.dot(g, g)
        t = 1.0 if pairs else min(1.0, 1.0 / np.sqrt(-slope))
        accepted = _line_search(fun, space, x, F, d, slope, t)
        if accepted is None and pairs:
            pairs.clear()
            d = -g
            slope = -space.dot(g, g)
            accepted = _line_search(fun, space, x, F, d, slope, min(1.0, 1.0 / np.sqrt(-slope)))
        if accepted is None:
            return x, F, k - 1, False, f"the line search found no decrease at iteration {k}"
        x_new, F_new, g_new = accepted
        s, y = x_new - x, g_new - g
        sy = space.dot(s, y)
        if sy > 0:
            pairs.append((s, y, 1.0 / sy))
        state.x, state.F, state.g, state.k = x_new, F_new, g_new, k
        if on_iteration is not None and on_iteration(state):
            return x_new, F_new, k, False, f"stopped by the caller after {k} iterations"
        if tol > 0 and F - F_new <= FTOL * max(abs(F), abs(F_new), 1.0):
            return x_new, F_new, k, True, f"relative decrease of F <= {FTOL:.1e} after {k} iterations"
    return state.x, state.F, max(state.k, 0), False, f"max_iter={max_iter} iterations reached"


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


def _line_search(fun, space, x, F0, d, slope0, t, c1: float = 1e-4, c2: float = 0.9, max_evals: int = 30):
    """A step t satisfying the strong Wolfe conditions (Nocedal & Wright, Algorithms 3.5 and 3.6):
    F(x + t d) <= F0 + c1 t slope0 and |g(x + t d) . d| <= c2 |slope0|; the curvature condition
    keeps the (s, y) pairs informative. A non-finite trial counts as a step too long. Returns
    (x_new, F_new, g_new), or the best sufficient-decrease point found, or None."""
    evals = 0
    best = None

    def phi(step):
        nonlocal evals, best
        evals += 1
        x_new = x + step * d
        F, g = fun(x_new)
        if not np.isfinite(F):
            return x_new, np.inf, g, np.nan
        if F <= F0 + c1 * step * slope0 and (best is None or F < best[1]):
            best = (x_new, F, g)
        return x_new, F, g, space.dot(g, d)

    def zoom(lo, F_lo, dphi_lo, hi, F_hi, dphi_hi):
        while evals < max_evals and abs(hi - lo) > 1e-15 * max(abs(lo), abs(hi)):
            step = _interpolate(lo, F_lo, dphi_lo, hi, F_hi, dphi_hi)
            x_new, F, g, dphi = phi(step)
            if F > F0 + c1 * step * slope0 or F >= F_lo:
                hi, F_hi, dphi_hi = step, F, dphi
            else:
                if abs(dphi) <= -c2 * slope0:
                    return x_new, F, g
                if dphi * (hi - lo) >= 0:
                    hi, F_hi, dphi_hi = lo, F_lo, dphi_lo
                lo, F_lo, dphi_lo = step, F, dphi
        return best

    t_prev, F_prev, dphi_prev = 0.0, F0, slope0
    while evals < max_evals:
        x_new, F, g, dphi = phi(t)
        if F > F0 + c1 * t * slope0 or (t_prev > 0 and F >= F_prev):
            return zoom(t_prev, F_prev, dphi_prev, t, F, dphi)
        if abs(dphi) <= -c2 * slope0:
            return x_new, F, g
        if dphi >= 0:
            return zoom(t, F, dphi, t_prev, F_prev, dphi_prev)
        t_prev, F_prev, dphi_prev = t, F, dphi
        t *= 2.0
    return best


def _interpolate(lo, F_lo, dphi_lo, hi, F_hi, dphi_hi) -> float:
    """Minimizer of the cubic through both ends (values and slopes), kept inside the middle 80 %
    of the interval; the midpoint where the cubic does not exist or a value is not finite."""
    a, b = min(lo, hi), max(lo, hi)
    margin = 0.1 * (b - a)
    mid = 0.5 * (lo + hi)
    if not (np.isfinite(F_lo) and np.isfinite(F_hi) and np.isfinite(dphi_lo) and np.isfinite(dphi_hi)):
        return mid
    # (Values near 1e150 overflow d1 * d1: the step is then not finite and the midpoint is taken,
    # without numpy's warnings, dozens per fit.)
    with np.errstate(over="ignore", invalid="ignore"):
        d1 = dphi_lo + dphi_hi - 3.0 * (F_lo - F_hi) / (lo - hi)
        disc = d1 * d1 - dphi_lo * dphi_hi
        if disc < 0:
            return mid
        d2 = np.sign(hi - lo) * np.sqrt(disc)
        denom = dphi_hi - dphi_lo + 2.0 * d2
        if denom == 0:
            return mid
        step = hi - (hi - lo) * (dphi_hi + d2 - d1) / denom
    return float(min(max(step, a + margin), b - margin)) if np.isfinite(step) else mid
