"""The trace norm by its factored form: quasi-Newton on W = U V^T with rank growth and a certificate.

    min_W f(W, b) + a ||W||_*   =   min_{U, V, b} f(U V^T, b) + (a / 2) (||U||_F^2 + ||V||_F^2)

(Srebro, Rennie & Jaakkola 2005: ``||W||_* = min_{U V^T = W} (||U||^2 + ||V||^2) / 2``, reached by
the balanced factors of the SVD). The right side is smooth, so L-BFGS (scipy's) minimizes it
from value-and-gradient calls of the core, with ``grad_U = G V + a U`` and ``grad_V = G^T U + a V``
for G the gradient of f in W; FISTA instead pays a thresholded SVD per iteration and converges
at the rate of a first-order method.

The factored problem is not convex, but its stationary points with rank-deficient factors are
the convex problem's optima exactly when the convex optimality condition ``||G||_2 <= a``
(spectral norm) also holds there (Burer & Monteiro 2005; Journee et al. 2010). That is the
certificate: after each L-BFGS run, the top singular pair of ``-G``; when its value exceeds
``a``, the pair is a descent direction outside the factors' span, and the factors grow by it
(a step of the rank-one convex subproblem) before L-BFGS continues. A solution is returned as
converged only when ``||G||_2 <= a (1 + tol)`` and the factored gradient is small relative to
the factors.

f is the problem of :mod:`mtlx.problem` with the penalty's smooth terms, so every loss,
intercepts (of centered features, rescaled), ``l2`` and both dtypes work as in FISTA.
"""

from __future__ import annotations

import time
import warnings
from functools import partial

import numpy as np

from ._reduction import LocalReduction
from .penalties import Penalty
from .penalties.base import Sum
from .penalties.trace import Trace
from .problem import Problem
from .results import SolveResult, convergence_warning

__all__ = ["solve_factored", "unsupported"]


def unsupported(penalty: Penalty) -> str:
    """Why the factored engine cannot solve ``penalty`` ("" when it can): one Trace term on W,
    besides smooth terms."""
    parts = penalty.components()
    if len(parts) != 1 or parts[0].block != "tasks":
        return f"it handles a trace norm on W (with smooth terms), not {penalty!r}"
    prox_part, _ = parts[0].split()
    if not isinstance(prox_part, Trace):
        return f"it handles a trace norm on W (with smooth terms), not {penalty!r}"
    if prox_part.w == 0:
        return "the trace norm's weight is 0"
    return ""


class _Factored:
    """The factored objective phi(U, V, beta) of one problem, in the flat vector L-BFGS works on."""

    def __init__(self, problem: Problem, strength: float):
        self.problem = problem
        self.a = strength
        self.d, self.T = problem.n_features, problem.n_tasks
        self.theta = np.zeros(problem.size)
        self.grad = np.empty(problem.size)
        self.block = problem.task_blocks[0]
        self.n_evals = 0

    def n_factor_entries(self, r: int) -> int:
        return (self.d + self.T) * r

    def split(self, x: np.ndarray, r: int):
        d, T = self.d, self.T
        return x[: d * r].reshape(d, r), x[d * r : (d + T) * r].reshape(T, r), x[(d + T) * r :]

    def f_and_G(self, x: np.ndarray, r: int):
        """(f at W = U V^T, G = grad_W f (T, d) rows, the intercepts' gradient), one core call."""
        U, V, beta = self.split(x, r)
        self.problem.view(self.theta, self.block)[...] = V @ U.T
        if self.problem.intercepts is not None:
            self.problem.view(self.theta, self.problem.intercepts)[...] = beta
        value = self.problem.f(self.theta, self.grad)
        self.n_evals += 1
        G = self.problem.view(self.grad, self.block)
        g_beta = self.problem.view(self.grad, self.problem.intercepts) if self.problem.intercepts is not None else \
            np.zeros(0)
        return value, G, g_beta

    def __call__(self, x: np.ndarray, r: int = 0):
        """phi and its gradient (what scipy's L-BFGS-B asks for)."""
        U, V, _ = self.split(x, r)
        value, G, g_beta = self.f_and_G(x, r)
        value += 0.5 * self.a * (float(np.einsum("ij,ij->", U, U)) + float(np.einsum("ij,ij->", V, V)))
        grad = np.concatenate([(G.T @ V + self.a * U).ravel(), (G @ U + self.a * V).ravel(), g_beta])
        return value, grad


def _top_pairs(G_rows: np.ndarray, k: int):
    """The k largest singular values of G (d x T, given as rows (T, d)), decreasing, with their
    pairs: (s, U (d x k), V (T x k)). A full SVD for small G, Lanczos (svds) otherwise."""
    M = G_rows.T
    k = max(1, min(k, min(M.shape)))
    if min(M.shape) <= 64 or k >= min(M.shape) - 1:
        U, s, Vt = np.linalg.svd(M, full_matrices=False)
        return s[:k], U[:, :k], Vt[:k].T
    from scipy.sparse.linalg import svds

    U, s, Vt = svds(M, k=k)
    order = np.argsort(-s)
    return s[order], U[:, order], Vt[order].T


#: Directions added to the factors at most per growth round (the pairs of G above the strength).
_GROWTH = 8


def _grown(phi: _Factored, x, r, G_rows, strength):
    """The factors grown by the singular pairs of -G above the strength: the proximal-gradient
    step of the convex problem restricted to them, ``-sum_i (s_i - a)/L u_i v_i^T``, split into
    balanced factors (L: f's curvature along the top pair). Returns (x, r, the step's W rows)."""
    s, Uc, Vc = _top_pairs(G_rows, _GROWTH)
    keep = s > strength
    s, Uc, Vc = s[keep], Uc[:, keep], Vc[:, keep]
    U, V, beta = phi.split(x, r)
    L = max(_curvature(phi, x, r, Uc[:, 0], Vc[:, 0]), np.finfo(float).tiny) if s.size else 1.0
    t = np.sqrt((s - strength) / L)
    step = -(Vc * t) @ (Uc * t).T  # rows (T, d) of -sum t_i^2 u_i v_i^T
    U = np.column_stack([U, Uc * t])
    V = np.column_stack([V, -Vc * t])
    return np.concatenate([U.ravel(), V.ravel(), beta]), r + int(s.size), step


def solve_factored(problem: Problem, strength: float, tol: float = 1e-6, max_iter: int = 10_000,
                   W0: np.ndarray | None = None, b0: np.ndarray | None = None, rank: int | None = None,
                   watcher=None):
    """Minimize a trace-norm problem by quasi-Newton on its factors (see the module docstring).

    Parameters
    ----------
    problem : Problem
        The smooth part (losses, l2, intercepts, the penalty's smooth terms), built with a
        penalty that has no prox part.
    strength : float
        ``alpha`` times the trace norm's weight.
    tol : float
        Certificate: the relative duality gap at most ``tol`` (:func:`duality_gap`; squared and
        logistic losses without ridge or smooth terms), else ``||G||_2 <= strength (1 + tol)`` and
        the factored gradient at most ``tol`` relative to the factors (:func:`_stationarity`).
    max_iter : int
        L-BFGS iterations in all (over the rank-growth rounds).
    W0, b0 : optional
        A warm start (W rows (T, d) and b' scaled as in theta), factored by its SVD.
    rank : int, optional
        The initial rank (default: the rank of W0, or of one proximal step from zero).

    Returns
    -------
    theta : ndarray
        The problem's parameter vector at the solution.
    info : dict
        ``converged``, ``n_iter`` (L-BFGS iterations), ``n_evals``, ``spectral`` (||G||_2 / strength),
        ``rank``, ``history`` (phi at the end of each round).
    """
    phi = _Factored(problem, strength)
    d, T = phi.d, phi.T
    n_beta = T if problem.intercepts is not None else 0
    beta = np.zeros(n_beta) if b0 is None else np.asarray(b0, dtype=np.float64)
    if W0 is not None and not np.any(W0):
        W0 = None  # zero factors are a saddle point: start as from nothing
    if W0 is None:
        # The factored problem's zero is a saddle point: start from one proximal-gradient step,
        # W = -sum_i (s_i - a)/L u_i v_i^T over the singular pairs of G(0) above a (L: the
        # curvature along the top one).
        empty = np.zeros(0)
        x = np.concatenate([empty, empty, beta])
        _, G, _ = phi.f_and_G(x, 0)
        W0 = _grown(phi, x, 0, G.copy(), strength)[2]
    Us, s, Vts = np.linalg.svd(W0.T, full_matrices=False)  # W = Us diag(s) Vts (d x T)
    r = rank or max(1, int(np.sum(s > 1e-12 * max(s.max() if s.size else 0.0, 1e-300))))
    root = np.sqrt(s[:r])
    x = np.concatenate([(Us[:, :r] * root).ravel(), (Vts[:r].T * root).ravel(), beta])
    n_iter, history, converged, spectral, gap, stalled = 0, [], False, np.inf, None, False
    lbfgs = _LBFGS(partial(phi, r=r), x)
    while n_iter < max_iter and not (watcher is not None and watcher.stopped):
        each = None if watcher is None else partial(watcher, phi, r=r)
        ran, settled = lbfgs.run(min(_CHECK_EVERY, max_iter - n_iter), tol * strength, phi.n_factor_entries(r),
                                 each=each)
        n_iter += ran
        x = lbfgs.x
        history.append(lbfgs.value)
        _, G, _ = phi.f_and_G(x, r)
        spectral = _top_pairs(G, 1)[0][0] / strength
        # The certificate: a duality gap where the loss gives a dual point (it needs the spectral
        # condition nearly met to be tight), else the first-order conditions.
        gap = duality_gap(phi, x, r) if spectral <= 1.0 + np.sqrt(tol) or settled else None
        if gap is not None:
            converged = gap <= tol
        else:  # first-order measures: below sqrt(eps) of the data's dtype they are rounding noise
            first = max(tol, np.sqrt(np.finfo(problem.data_dtype).eps))
            converged = spectral <= 1.0 + first and \
                _stationarity(lbfgs.g, x, phi.n_factor_entries(r), strength) <= first
        if converged:
            break
        if settled and spectral > 1.0 + tol and r < min(d, T) + _GROWTH:
            # Stationary for its rank, not optimal: a descent direction outside the factors' span.
            x, r = _grown(phi, x, r, G.copy(), strength)[:2]
            lbfgs = _LBFGS(partial(phi, r=r), x)
        elif settled and lbfgs.stalled:
            stalled = True
            break  # at the resolution of phi: no step decreases it, and no direction to add
    U, V, beta = phi.split(x, r)
    theta = phi.theta.copy()
    problem.view(theta, phi.block)[...] = V @ U.T
    if problem.intercepts is not None:
        problem.view(theta, problem.intercepts)[...] = beta
    return theta, dict(converged=converged, n_iter=n_iter, n_evals=phi.n_evals, spectral=spectral, rank=r,
                       history=np.asarray(history), gap=gap, stalled=stalled)


def duality_gap(phi: _Factored, x: np.ndarray, r: int) -> float | None:
    """The relative duality gap ``(P - D) / P`` of the convex trace-norm problem at the factors' W,
    or None where no dual point is built (a ridge term, smooth penalty terms, or a loss other than
    squared and logistic).

    The dual point is the losses' derivative ``theta_i = -c_t L'(y_i, z_i)``, rescaled into the dual
    feasible set ``||X' theta||_2 <= a`` (``X' theta = -G``): ``theta / s`` with
    ``s = max(1, ||G||_2 / a)``; D is minus the sum of the losses' conjugates there. Intercepts
    (free) need ``sum_i theta_ti = 0``, which holds at their optimum: they are set to it first
    (exactly for the squared loss, b' = mean of y with centered features; by Newton steps for the
    logistic loss), so D is a true lower bound up to rounding, and the gap a certificate of
    global optimality.
    """
    problem = phi.problem
    smooth = problem.smooth
    if problem.l2 or problem._has_smooth_terms or not all(loss.name in ("squared", "logistic")
                                                          for loss in smooth.loss_objects):
        return None
    data = smooth.data
    U, V, beta = phi.split(x, r)
    W_rows = V @ U.T
    c = smooth.weights
    b = np.zeros(phi.T)
    if problem.intercepts is not None:
        b = _optimal_intercepts(problem, W_rows)
    primal_f, dual, M = 0.0, 0.0, np.zeros_like(W_rows)
    thetas = []
    for t in range(phi.T):
        X_t, y_t = data.task(t)
        y_t = y_t.astype(np.float64)
        z = X_t.astype(np.float64) @ W_rows[t] + (b[t] - (problem._xbar[t] @ W_rows[t] if problem._xbar is not None
                                                            else 0.0))
        if smooth.loss_objects[t].name == "squared":
            theta = c[t] * (y_t - z)
            primal_f += 0.5 * c[t] * float((y_t - z) @ (y_t - z))
        else:
            m = y_t * z
            theta = c[t] * y_t * _sigmoid(-m)
            primal_f += c[t] * float(np.sum(np.logaddexp(0.0, -m)))
        thetas.append(theta)
        M[t] = X_t.astype(np.float64).T @ theta
    a = phi.a
    s_top = float(np.linalg.svd(M, compute_uv=False)[0]) if M.size else 0.0
    scale = max(1.0, s_top / a)
    for t, theta in enumerate(thetas):
        y_t = data.task(t)[1].astype(np.float64)
        u = theta / scale
        if smooth.loss_objects[t].name == "squared":
            dual += float(u @ y_t) - float(u @ u) / (2.0 * c[t]) if c[t] > 0 else 0.0
        else:
            p = np.clip(u * y_t / c[t], 0.0, 1.0) if c[t] > 0 else np.zeros_like(u)
            dual -= c[t] * float(np.sum(_xlogx(p) + _xlogx(1.0 - p)))
    primal = primal_f + a * float(np.sum(np.linalg.svd(W_rows, compute_uv=False)))
    return max(primal - dual, 0.0) / max(abs(primal), np.finfo(float).tiny)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(v)


def _xlogx(p: np.ndarray) -> np.ndarray:
    return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


def _optimal_intercepts(problem: Problem, W_rows: np.ndarray) -> np.ndarray:
    """Each task's intercept b'_t (of centered features) at its optimum for the given W: the mean
    target for the squared loss, a few Newton steps on the 1-D convex logistic problem."""
    data, smooth = problem.smooth.data, problem.smooth
    out = np.empty(problem.n_tasks)
    for t in range(problem.n_tasks):
        X_t, y_t = data.task(t)
        y_t = y_t.astype(np.float64)
        if smooth.loss_objects[t].name == "squared":
            out[t] = float(y_t.mean())
            continue
        z0 = (X_t.astype(np.float64) - problem._xbar[t]) @ W_rows[t]
        bt = 0.0
        for _ in range(100):
            sig = _sigmoid(-y_t * (z0 + bt))
            grad = -float(np.sum(y_t * sig))
            hess = float(np.sum(sig * (1.0 - sig)))
            if hess <= 0:
                break
            step = grad / hess
            bt -= step
            if abs(step) <= 1e-15 * max(1.0, abs(bt)):
                break
        out[t] = bt
    return out


def _stationarity(g: np.ndarray, x: np.ndarray, n_factors: int, strength: float) -> float:
    """The factored gradient relative to the factors' scale: for balanced factors U = P S^1/2,
    V = Q S^1/2, grad_U = (G + a P Q^T) Q S^1/2, so ||grad|| / (a ||[U; V]||) measures how far G is
    from -a P Q^T on the factors' span, in units of a (the intercepts' gradient against a too).

    At exactly zero factors (W = 0 optimal: a strength above the spectral threshold) the factors'
    gradient G V, G^T U is exactly zero and the factors' scale is zero too: their ratio says
    nothing, so only the intercepts' gradient is measured, against a."""
    factor_norm = float(np.linalg.norm(x[:n_factors]))
    if factor_norm == 0.0:
        return float(np.linalg.norm(g[n_factors:])) / strength
    return float(np.linalg.norm(g)) / (strength * factor_norm)


#: L-BFGS iterations between two certificate checks (a spectral norm, and near the end a duality gap).
_CHECK_EVERY = 25


class _LBFGS:
    """Limited-memory BFGS with an Armijo backtracking line search, resumable (the memory pairs
    survive between calls of :meth:`run`).

    The two-loop recursion costs O(memory * n) per iteration, against ~1 ms per iteration for
    scipy L-BFGS-B's compact form at n = 5,000 here (for bounds this problem does not have).
    """

    def __init__(self, fun, x: np.ndarray, memory: int = 10):
        self.fun, self.x, self.memory = fun, x, memory
        self.value, self.g = fun(x)
        self.S, self.Y, self.rho = [], [], []
        self.stalled = False

    def _direction(self) -> np.ndarray:
        g = self.g
        q = g.copy()
        alphas = []
        for s, y, r in zip(reversed(self.S), reversed(self.Y), reversed(self.rho)):
            a = r * float(s @ q)
            q -= a * y
            alphas.append(a)
        if self.S:
            q *= float(self.S[-1] @ self.Y[-1]) / float(self.Y[-1] @ self.Y[-1])
        else:
            q /= max(float(np.linalg.norm(g)), 1e-300)
        for (s, y, r), a in zip(zip(self.S, self.Y, self.rho), reversed(alphas)):
            q += (a - r * float(y @ q)) * s
        return -q

    def run(self, n: int, tol_abs: float, n_factors: int, each=None):
        """Up to n iterations; returns (iterations run, settled): settled when the gradient is at most
        ``tol_abs`` times the factors' norm (see :func:`_stationarity`), or no step decreased phi
        (``stalled``: at the resolution of its rounding)."""
        noise = 1e-10  # phi's relative rounding error, generously (the Gram form's value: ~1e-12)
        for k in range(n):
            if float(np.linalg.norm(self.g)) <= tol_abs * max(float(np.linalg.norm(self.x[:n_factors])), 1e-300):
                return k, True
            direction = self._direction()
            slope = float(self.g @ direction)
            if slope >= 0:  # not a descent direction (stale curvature pairs): restart from -g
                self.S, self.Y, self.rho = [], [], []
                norm = max(float(np.linalg.norm(self.g)), 1e-300)
                direction, slope = -self.g / norm, -norm
            step = 1.0
            for _ in range(30):
                x_new = self.x + step * direction
                value_new, g_new = self.fun(x_new)
                if value_new <= self.value + 1e-4 * step * slope:
                    break
                # Near the optimum phi's decrease falls below its rounding error and the value test
                # fails on noise: Hager & Zhang's approximate Wolfe conditions then judge the step
                # by the directional derivative, which carries no such cancellation.
                new_slope = float(g_new @ direction)
                if abs(value_new - self.value) <= noise * abs(self.value) and \
                        0.9 * slope <= new_slope <= -0.8 * slope:
                    break
                step *= 0.5
            else:
                self.stalled = True
                return k, True
            s, y = x_new - self.x, g_new - self.g
            sy = float(s @ y)
            if sy > 1e-12 * float(np.linalg.norm(s)) * float(np.linalg.norm(y)):
                self.S.append(s)
                self.Y.append(y)
                self.rho.append(1.0 / sy)
                if len(self.S) > self.memory:
                    self.S.pop(0), self.Y.pop(0), self.rho.pop(0)
            self.x, self.value, self.g = x_new, value_new, g_new
            if each is not None and each(self.x, value=self.value):
                return k + 1, False
        return n, False


def _curvature(phi: _Factored, x, r, u, v) -> float:
    """f's curvature along the rank-one direction -u v^T (a finite difference of the gradient)."""
    U, V, beta = phi.split(x, r)
    _, G0, _ = phi.f_and_G(x, r)
    G0 = G0.copy()
    h = 1e-4 * max(1.0, float(np.abs(V @ U.T).max()) if U.size else 1.0)
    x1 = np.concatenate([np.column_stack([U, np.sqrt(h) * u]).ravel(),
                         np.column_stack([V, -np.sqrt(h) * v]).ravel(), beta])
    _, G1, _ = phi.f_and_G(x1, r + 1)
    direction = -np.outer(v, u)  # (T, d) rows of -u v^T
    return float(np.einsum("ij,ij->", G1 - G0, direction)) / h


def solve_trace(data, loss, penalty: Penalty, alpha, l2, fit_intercept, task_weights, tol, max_iter, n_threads,
                W_rows=None, b0=None, *, callback=None, start=None) -> SolveResult:
    """:func:`mtlx.solve`'s result for a trace-norm penalty, by the factored engine (one process).

    ``W_rows`` (T, d) and ``b0`` (the user's intercepts) are a warm start; ``callback(state)``
    runs after every L-BFGS iteration (``objective`` is phi, an upper bound of F reached at the
    balanced factors); raising StopIteration stops the solve.
    """
    from .gram import smooth_loss
    from .penalties import NoPenalty

    start = time.perf_counter() if start is None else start
    prox_part, smooth_terms = penalty.components()[0].split()
    smooth = smooth_loss(data, loss, task_weights, n_threads)
    if fit_intercept:
        smooth.check_intercepts_bounded()
    rest = Sum(*smooth_terms) if len(smooth_terms) > 1 else (smooth_terms[0] if smooth_terms else NoPenalty())
    problem = Problem(smooth, rest, alpha, l2, fit_intercept, LocalReduction(data.task_ids), all_smooth=True)
    strength = alpha * prox_part.w
    W_start = b_start = None
    if W_rows is not None or b0 is not None:
        theta0 = problem.initial_theta(W_rows, b0)
        W_start = problem.view(theta0, problem.task_blocks[0]).copy()
        b_start = problem.view(theta0, problem.intercepts).copy() if fit_intercept else None
    watcher = _Watcher(problem, callback) if callback is not None else None
    theta, info = solve_factored(problem, strength, tol, max_iter, W_start, b_start, watcher=watcher)
    W_rows, b, _ = problem.user_parameters(theta)
    objective = float(problem.f(theta)) + strength * float(np.sum(np.linalg.svd(W_rows, compute_uv=False)))
    stopped = watcher is not None and watcher.stopped
    if not info["converged"] and not stopped:
        # (Stalled before max_iter: no step decreases F at the data's precision, and more
        # iterations would not help; float32 data stall so at about 1e-5 of W.)
        advice = (f"it stalled at the resolution of its {data.dtype} arithmetic: solve in float64 or with "
                  "solver='fista'" if info.get("stalled") else "raise max_iter or tol")
        warnings.warn(f"mtlx factored trace solver did not certify its solution in {info['n_iter']} iterations "
                      f"(||G||_2 / alpha = {info['spectral']:.6g}, relative gap {info['gap']}, tol {tol:.1e}); "
                      f"{advice}", convergence_warning(), stacklevel=4)
    dtype = data.dtype
    W = W_rows.T.astype(dtype, copy=False)
    gap = info["gap"]
    message = ("stopped by callback" if stopped else
               (f"duality gap {gap:.3g} <= tol * F" if gap is not None else "first-order conditions met")
               if info["converged"] else "not certified")
    return SolveResult(W=W, b=(b.astype(dtype) if b is not None else np.zeros(W.shape[1], dtype=dtype)),
                       objective=objective, history=info["history"], n_iter=info["n_iter"],
                       converged=info["converged"], optimality=gap if gap is not None else info["spectral"] - 1.0,
                       rel_change=np.nan, n_evals=info["n_evals"], step=np.nan, time=time.perf_counter() - start,
                       message=message, task_ids=data.task_ids.copy(), components=(W,), solver="factored")


class _Watcher:
    """The user's callback after every L-BFGS iteration, with W and b in the user's coordinates."""

    def __init__(self, problem: Problem, callback):
        self.problem, self.callback, self.stopped, self.n_iter = problem, callback, False, 0

    def __call__(self, phi: _Factored, x: np.ndarray, r: int, value: float) -> bool:
        """Returns True when the callback asked to stop."""
        from .results import SolverState

        self.n_iter += 1
        U, V, beta = phi.split(x, r)
        theta = np.zeros(self.problem.size)
        self.problem.view(theta, self.problem.task_blocks[0])[...] = V @ U.T
        if self.problem.intercepts is not None:
            self.problem.view(theta, self.problem.intercepts)[...] = beta
        W_rows, b, _ = self.problem.user_parameters(theta)
        try:
            self.callback(SolverState(self.n_iter, W_rows.T, b if b is not None else np.zeros(self.problem.n_tasks),
                                      value, np.nan, np.nan, np.nan))
        except StopIteration:
            self.stopped = True
        return self.stopped
