"""Accelerated proximal gradient (FISTA) with backtracking and adaptive restart.

The solver is written once against a small interface (:class:`Composite`): a flat parameter
vector, the smooth part with its gradient, and the prox of the non-smooth part. New
formulations (shared-plus-specific splits, dirty models, distributed reductions) plug in by
providing another composite, without touching this loop.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._config import resolve_n_threads
from ._validate import check_nonnegative
from .data import TaskData
from .gram import GramSquaredLoss, smooth_loss
from .objective import SmoothLoss, as_parameters
from .penalties import get_penalty

__all__ = ["ConvergenceWarning", "SolveResult", "SolverState", "solve"]


class ConvergenceWarning(UserWarning):
    """The solver stopped at ``max_iter`` before meeting its tolerance."""


@dataclass
class SolverState:
    """What a ``callback`` sees after each iteration (arrays are views: copy to keep them)."""

    n_iter: int
    W: np.ndarray
    b: np.ndarray
    objective: float
    rel_change: float
    optimality: float
    step: float


@dataclass
class SolveResult:
    """Outcome of :func:`solve`.

    Attributes
    ----------
    W : ndarray, shape (n_features, n_tasks)
    b : ndarray, shape (n_tasks,)
        Intercepts (zeros without ``fit_intercept``).
    objective : float
        F(W, b) at the returned point.
    history : ndarray
        F after each iteration; ``history[0]`` is F at the starting point.
    n_iter : int
    converged : bool
    optimality : float
        Last gradient-mapping measure ``||G|| / (L max(||W+||, ||Y||))``, with
        ``G = L (Y - W+)`` the gradient mapping at the extrapolated point Y and 1/L the step.
    rel_change : float
        Last relative change of F.
    n_evals : int
        Smooth-part evaluations (gradient and line-search passes).
    step : float
        Last step size 1/L.
    time : float
        Wall time of the solve in seconds.
    message : str
    gram : bool
        Whether the squared loss ran in the Gram form (see ``solve(gram=...)``).
    """

    W: np.ndarray
    b: np.ndarray
    objective: float
    history: np.ndarray
    n_iter: int
    converged: bool
    optimality: float
    rel_change: float
    n_evals: int
    step: float
    time: float
    message: str = field(default="")
    gram: bool = False


class Composite:
    """F(theta) = f(theta) + alpha g(W) with theta = [Wt.ravel(), b] flat, for the FISTA loop.

    Parameters
    ----------
    smooth : SmoothLoss
    penalty : Penalty
    alpha : float
    l2 : float
        Adds (l2 / 2) ||W||_F^2 to the smooth part (never to b).
    fit_intercept : bool
    """

    def __init__(self, smooth: SmoothLoss, penalty, alpha: float, l2: float, fit_intercept: bool):
        self.smooth = smooth
        self.penalty = penalty
        self.alpha = alpha
        self.l2 = l2
        self.fit_intercept = fit_intercept
        data = smooth.data
        self.shape = (data.n_tasks, data.n_features)
        self.n_coef = data.n_tasks * data.n_features
        self.size = self.n_coef + (data.n_tasks if fit_intercept else 0)
        self.dtype = data.dtype
        # The core always writes an intercept gradient; without intercepts it lands here.
        self._gb_unused = np.empty(data.n_tasks, dtype=self.dtype)

    def split(self, theta: np.ndarray):
        """Views (Wt, b) of a flat vector; b is None without intercepts."""
        Wt = theta[: self.n_coef].reshape(self.shape)
        return Wt, (theta[self.n_coef :] if self.fit_intercept else None)

    def f(self, theta: np.ndarray, grad: np.ndarray | None = None) -> float:
        """Smooth part at theta; fills ``grad`` when given."""
        Wt, b = self.split(theta)
        if grad is None:
            value = self.smooth(Wt, b)
        else:
            gWt, gb = self.split(grad)
            value = self.smooth(Wt, b, gWt, self._gb_unused if gb is None else gb)
        if self.l2:
            w = theta[: self.n_coef]
            value += 0.5 * self.l2 * float(np.dot(w, w))
            if grad is not None:
                grad[: self.n_coef] += self.l2 * w
        return value

    def prox(self, theta: np.ndarray, step: float) -> float:
        """In place: W <- prox of step*alpha*g; b is left as is. Returns alpha*g(W)."""
        Wt, _ = self.split(theta)
        if self.penalty.name == "none" or self.alpha == 0.0:
            return 0.0
        return self.alpha * self.penalty.prox(Wt, step * self.alpha, Wt, self.smooth.n_threads)

    def g(self, theta: np.ndarray) -> float:
        """alpha * g(W)."""
        if self.penalty.name == "none" or self.alpha == 0.0:
            return 0.0
        return self.alpha * self.penalty.value(self.split(theta)[0], self.smooth.n_threads)


def fista(problem: Composite, theta0: np.ndarray, tol: float, max_iter: int, callback=None):
    """Minimize ``problem`` from ``theta0``.

    Returns ``(theta, info)``. See :func:`solve` for the method.
    """
    dtype = problem.dtype
    # f carries rounding errors of a few eps relative (1e-12 for float64 sums over many rows);
    # differences below this are noise and must neither fail the line search nor set L.
    noise = max(1e-12, 100.0 * float(np.finfo(dtype).eps))
    x = theta0.copy()
    x_new = np.empty_like(x)
    y = x.copy()
    grad = np.empty_like(x)
    diff = np.empty_like(x)
    move = np.empty_like(x)

    F = problem.f(x) + problem.g(x)
    history = [F]
    L = 1.0  # first trial step; backtracking jumps to the measured curvature at once
    L_seen = 0.0  # curvature along the last accepted step
    t = 1.0
    n_evals = 1
    converged = False
    stopped_by_callback = False
    rel_change = optimality = np.inf
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        f_y = problem.f(y, grad)
        n_evals += 1
        # Try a larger step than last time, but not beyond the curvature just observed.
        L = max(0.98 * L, L_seen, np.finfo(np.float64).tiny)
        for _ in range(200):
            np.multiply(grad, -1.0 / L, out=x_new)
            x_new += y
            g_new = problem.prox(x_new, 1.0 / L)
            f_new = problem.f(x_new)
            n_evals += 1
            np.subtract(x_new, y, out=diff)
            dd = float(np.dot(diff, diff))
            excess = f_new - f_y - float(np.dot(grad, diff))  # f(x+) minus its linear model at y
            slack = noise * (abs(f_new) + abs(f_y))
            if np.isfinite(f_new) and excess <= 0.5 * L * dd + slack:
                break
            # Curvature along this step; jump straight past it instead of doubling blindly.
            L = 1.1 * (2.0 * excess / dd) if np.isfinite(f_new) and dd > 0 else 10.0 * L
        else:
            raise RuntimeError("line search failed: the smooth part is not finite near the current point")
        L_seen = 2.0 * excess / dd if excess > slack else 0.0

        F_new = f_new + g_new
        history.append(F_new)
        rel_change = abs(F - F_new) / max(abs(F_new), np.finfo(np.float64).tiny)
        # ||G|| / (L ||x+||) with G = L (y - x+) the gradient mapping: the proximal-gradient step
        # relative to the iterate, free of the scales of the data and of the loss.
        scale = max(float(np.linalg.norm(x_new)), float(np.linalg.norm(y)))
        optimality = np.sqrt(dd) / scale if scale > 0 else 0.0

        # Momentum, reset when it points against the last step or F went up (O'Donoghue-Candes).
        np.subtract(x_new, x, out=move)
        if float(np.dot(diff, move)) < 0.0 or F_new > F:
            t = 1.0
            np.copyto(y, x_new)
        else:
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            np.multiply(move, (t - 1.0) / t_next, out=y)
            y += x_new
            t = t_next
        x, x_new = x_new, x
        F = F_new

        if callback is not None:
            Wt, b = problem.split(x)
            state = SolverState(n_iter, Wt.T, b if b is not None else np.zeros(problem.shape[0], dtype),
                                F, rel_change, optimality, 1.0 / L)
            try:
                callback(state)
            except StopIteration:
                stopped_by_callback = True
                break
        if rel_change <= tol and optimality <= tol:
            converged = True
            break

    info = dict(objective=F, history=np.asarray(history), n_iter=n_iter, converged=converged,
                stopped_by_callback=stopped_by_callback, optimality=optimality, rel_change=rel_change,
                n_evals=n_evals, step=1.0 / L)
    return x, info


def solve(data: TaskData, loss="squared", penalty="l21", alpha=0.1, l2=0.0, fit_intercept=False,
          task_weights="mean", tol=1e-6, max_iter=10_000, W0=None, b0=None, callback=None,
          *, n_threads: int | None = None, gram="auto") -> SolveResult:
    """Fit all tasks jointly by minimizing the regularized multi-task objective.

    Parameters
    ----------
    data : TaskData
        The tasks, in any of the three layouts.
    loss : {"squared", "logistic"} or sequence of them
        One loss for every task, or one per task (regression beside classification).
    penalty : {"none", "l1", "l21", "trace"}
        The coupling penalty g(W).
    alpha : float, default 0.1
        Strength of g (>= 0).
    l2 : float, default 0
        Ridge term (l2 / 2) ||W||_F^2 (>= 0).
    fit_intercept : bool, default False
        Fit an unpenalized intercept b_t per task.
    task_weights : {"mean", "sum"} or array_like of shape (n_tasks,)
        c_t: ``"mean"`` = 1/m_t, ``"sum"`` = 1 (MALSAR's scale), or given weights >= 0.
    tol : float, default 1e-6
        Stop when both the relative change of F and the gradient-mapping measure
        ``||G|| / (L max(||W+||, ||Y||))`` (the proximal-gradient step relative to the iterate;
        ``G = L (Y - W+)``) fall to ``tol`` or below.
    max_iter : int, default 10000
        Iteration cap; reaching it without convergence emits a :class:`ConvergenceWarning`.
    W0 : array_like of shape (n_features, n_tasks), optional
        Warm start (default zeros).
    b0 : array_like of shape (n_tasks,), optional
        Warm start of the intercepts (default zeros; needs ``fit_intercept``).
    callback : callable, optional
        ``callback(state)`` with a :class:`SolverState` after every iteration; raising
        ``StopIteration`` stops the solve cleanly (``converged`` is then False).
    n_threads : int, optional
        Threads of the core (default ``MTLX_NUM_THREADS`` or all cores).
    gram : {"auto", True, False}, default "auto"
        Squared loss only: evaluate it from per-task Gram matrices ``X_t' X_t`` (one ``X' X``
        for the shared layout) instead of passing over the rows. ``"auto"`` picks it when a
        call is at least twice cheaper that way (``T d`` small against the rows; see
        :func:`mtlx.gram.gram_cost`) and logs the choice on the ``"mtlx"`` logger; True forces
        it, False forbids it. Values and gradients agree with the direct form to rounding.

    Returns
    -------
    SolveResult

    Notes
    -----
    Minimizes

        F(W, b) = sum_t c_t sum_{i in task t} L_t(y_ti, x_ti . w_t + b_t) + alpha g(W) + (l2/2) ||W||_F^2

    by FISTA (Beck & Teboulle 2009). The step 1/L comes from a backtracking line search that
    also tries a larger step each iteration, so L follows the local curvature rather than the
    global Lipschitz bound; momentum is reset by the gradient and function schemes of
    O'Donoghue & Candes (2015). Each iteration costs one gradient pass and one value pass
    over the data (more only when the line search backtracks).
    """
    start = time.perf_counter()
    pen = get_penalty(penalty)
    alpha = check_nonnegative(alpha, "alpha")
    l2 = check_nonnegative(l2, "l2")
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not tol >= 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if b0 is not None and not fit_intercept:
        raise ValueError("b0 was given but fit_intercept is False")
    smooth = smooth_loss(data, loss, task_weights, resolve_n_threads(n_threads), gram)
    if fit_intercept:
        smooth.check_intercepts_bounded()
    problem = Composite(smooth, pen, alpha, l2, bool(fit_intercept))

    theta0 = np.zeros(problem.size, dtype=problem.dtype)
    if W0 is not None or b0 is not None:
        W_init = np.zeros((data.n_features, data.n_tasks)) if W0 is None else W0
        Wt, b = as_parameters(data, W_init, b0, "W0", "b0")
        theta0[: problem.n_coef] = Wt.ravel()
        if b is not None:
            theta0[problem.n_coef :] = b

    theta, info = fista(problem, theta0, float(tol), int(max_iter), callback)
    Wt, b = problem.split(theta)
    message = "converged" if info["converged"] else (
        "stopped by callback" if info["stopped_by_callback"] else "reached max_iter")
    if not info["converged"] and not info["stopped_by_callback"]:
        warnings.warn(
            f"mtlx.solve did not converge in {max_iter} iterations (relative change {info['rel_change']:.2e}, "
            f"optimality {info['optimality']:.2e}, tol {tol:.1e}); raise max_iter or tol",
            ConvergenceWarning, stacklevel=2)
    return SolveResult(
        W=Wt.T, b=(b.copy() if b is not None else np.zeros(data.n_tasks, dtype=problem.dtype)),
        objective=info["objective"], history=info["history"], n_iter=info["n_iter"],
        converged=info["converged"], optimality=info["optimality"], rel_change=info["rel_change"],
        n_evals=info["n_evals"], step=info["step"], time=time.perf_counter() - start, message=message,
        gram=isinstance(smooth, GramSquaredLoss))
