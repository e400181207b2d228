"""Accelerated proximal gradient (FISTA) with backtracking and adaptive restart.

The solver is written once against a small interface (:class:`Composite`): a flat parameter
vector, the smooth part with its gradient, and the prox of the non-smooth part. New
formulations (shared-plus-specific splits, dirty models, distributed reductions) plug in by
providing another composite, without touching this loop.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _core
from ._config import blas_threads, resolve_n_threads
from ._reduction import LocalReduction
from ._validate import check_nonnegative
from .data import TaskData
from .gram import GramSquaredLoss, smooth_loss
from .losses import LOSSES
from .objective import SmoothLoss, as_parameters
from .penalties import get_penalty

__all__ = ["ConvergenceWarning", "FistaState", "SolveResult", "SolverState", "solve"]


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
        Last gradient-mapping measure ``||G|| / max(L ||W+||, L ||Y||, ||grad f(W0)||)``, with
        ``G = L (Y - W+)`` the gradient mapping at the extrapolated point Y and 1/L the step
        (the last term gives a scale when the optimum is at zero).
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
    task_ids : ndarray, shape (n_tasks,)
        The id of the task of each column of W (under MPI: all ranks' tasks, in global order).
    n_allreduce : int
        Allreduce calls of this solve (in one process: the calls an MPI run would make).
    allreduce_bytes : int
        Bytes all-reduced by this solve (the size of the buffers, per rank).
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
    task_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_allreduce: int = 0
    allreduce_bytes: int = 0


class _Stopped(Exception):
    """A callback on some rank raised StopIteration (seen at the next collective)."""


class Composite:
    """F(theta) = f(theta) + alpha g(W) with theta = [Wt.ravel(), b'] flat, for the FISTA loop.

    With intercepts, theta holds the intercepts of the task-centered features,
    ``b'_t = b_t + xbar_t . w_t`` (``xbar_t`` the mean row of task t): the margins
    ``x . w_t + b_t = (x - xbar_t) . w_t + b'_t`` are unchanged, but w and b' are decoupled,
    which on uncentered features (the raw school data) cuts FISTA's iterations many times
    (logistic l21: no convergence to 1e-10 in 100,000 iterations against 6,856). Nothing is
    copied: each call forms ``b = b' - xbar . w`` and folds ``-g_b xbar_t`` into the W gradient,
    O(dT). :meth:`user_split` gives (W, b) back in the user's coordinates.

    Under MPI each rank holds the columns of its own tasks; every method returns this rank's
    part of a global sum, and :meth:`reduce` sums a packed buffer of such parts over ranks.

    Parameters
    ----------
    smooth : SmoothLoss
    penalty : Penalty
    alpha : float
    l2 : float
        Adds (l2 / 2) ||W||_F^2 to the smooth part (never to b).
    fit_intercept : bool
    reduction : LocalReduction or mtlx.distributed.MPIReduction, optional
        How sums over tasks become global (default: a single process).
    """

    #: Slots at the end of every reduced buffer: a callback asked to stop; local work failed.
    n_flags = 2

    def __init__(self, smooth: SmoothLoss, penalty, alpha: float, l2: float, fit_intercept: bool,
                 reduction=None):
        self.smooth = smooth
        self.penalty = penalty
        self.alpha = alpha
        self.l2 = l2
        self.fit_intercept = fit_intercept
        data = smooth.data
        self.reduction = LocalReduction(data.task_ids) if reduction is None else reduction
        self.distributed = self.reduction.distributed
        self.shape = (data.n_tasks, data.n_features)
        self.n_coef = data.n_tasks * data.n_features
        self.size = self.n_coef + (data.n_tasks if fit_intercept else 0)
        self.dtype = data.dtype
        self._xbar = data.feature_means().astype(self.dtype) if fit_intercept and data.n_tasks else None
        self._b = np.empty(data.n_tasks, dtype=self.dtype)
        # The core always writes an intercept gradient; without intercepts it lands here.
        self._gb_unused = np.empty(data.n_tasks, dtype=self.dtype)
        self._active = penalty.name != "none" and alpha != 0.0
        # With columns on several ranks, l21 and trace shrink with global statistics (see
        # penalties.py); one process keeps the fused core prox, except for the trace norm of a W
        # with fewer rows than columns (d <= T): the eigendecomposition of the d x d W W^T costs
        # less than the SVD of W (school, 28 x 139: 125 against 160 us per prox here).
        by_stats = self.distributed or (penalty.name == "trace" and data.n_features <= data.n_tasks)
        n_stats = penalty.stats_size(data.n_features) if self._active and by_stats else 0
        self._stats = np.zeros(n_stats + self.n_flags) if n_stats else None
        self.stop_requested = False
        self._failure = None

    def is_quadratic(self) -> bool:
        """True when every task on every rank has the squared loss (collective under MPI)."""
        local = bool(np.all(self.smooth.losses == LOSSES["squared"]))
        return not self.reduction.any(not local)

    def split(self, theta: np.ndarray):
        """Views (Wt, b') of a flat vector; b' is None without intercepts."""
        Wt = theta[: self.n_coef].reshape(self.shape)
        return Wt, (theta[self.n_coef :] if self.fit_intercept else None)

    def _xbar_dot(self, Wt: np.ndarray) -> np.ndarray:
        """xbar_t . w_t per task: the shift between the user's b and the solved b'."""
        return np.einsum("td,td->t", self._xbar, Wt)

    def user_split(self, theta: np.ndarray):
        """(Wt view, b) with the user's intercepts ``b = b' - xbar . w`` (a new array)."""
        Wt, bp = self.split(theta)
        if bp is None or self._xbar is None:
            return Wt, bp
        return Wt, bp - self._xbar_dot(Wt)

    def from_user(self, theta: np.ndarray) -> None:
        """In place: the b part of theta from the user's intercepts to b' (for warm starts)."""
        Wt, b = self.split(theta)
        if b is not None and self._xbar is not None:
            b += self._xbar_dot(Wt)

    def _failed(self, exc: BaseException) -> float:
        """Under MPI, keep a local failure for the next collective (which raises it on all ranks)."""
        if not self.distributed:
            raise exc
        if self._failure is None:
            self._failure = exc
        return float("nan")

    def reduce(self, buf: np.ndarray) -> np.ndarray:
        """Sum ``buf`` over ranks in place; its last :attr:`n_flags` slots are set here.

        Raises on every rank when local work failed on any; raises :class:`_Stopped` when a
        callback asked to stop on any rank.
        """
        buf[-2] = 1.0 if self.stop_requested else 0.0
        self.reduction.allreduce(buf, self._failure)
        if buf[-2] > 0.0:
            raise _Stopped
        return buf

    def f(self, theta: np.ndarray, grad: np.ndarray | None = None) -> float:
        """This rank's part of the smooth part at theta; fills ``grad`` when given."""
        try:
            Wt, b = self.split(theta)
            if self.shape[0] == 0:  # an idle rank (more ranks than tasks)
                return 0.0
            if b is not None and self._xbar is not None:
                b = np.subtract(b, self._xbar_dot(Wt), out=self._b)
            if grad is None:
                value = self.smooth(Wt, b)
            else:
                gWt, gb = self.split(grad)
                value = self.smooth(Wt, b, gWt, self._gb_unused if gb is None else gb)
                if gb is not None and self._xbar is not None:
                    gWt -= gb[:, None] * self._xbar
            if self.l2:
                w = theta[: self.n_coef]
                value += 0.5 * self.l2 * float(np.dot(w, w))
                if grad is not None:
                    grad[: self.n_coef] += self.l2 * w
            return value
        except Exception as exc:
            return self._failed(exc)

    def prox(self, theta: np.ndarray, step: float) -> float:
        """In place: W <- prox of step*alpha*g; b is left as is.

        Returns this rank's part of alpha*g(W) (with global statistics, rank 0 holds it all).
        """
        if not self._active:
            return 0.0
        Wt, _ = self.split(theta)
        tau = step * self.alpha
        if self._stats is None:
            try:
                return self.alpha * self.penalty.prox(Wt, tau, Wt, self.smooth.n_threads) if Wt.size else 0.0
            except Exception as exc:
                return self._failed(exc)
        self._local_stats(Wt)
        try:
            value = self.penalty.prox_from_stats(Wt, self._stats[: -self.n_flags], tau, Wt)
        except Exception as exc:
            return self._failed(exc)
        return self.alpha * value if self.reduction.rank == 0 else 0.0

    def g(self, theta: np.ndarray) -> float:
        """This rank's part of alpha * g(W)."""
        if not self._active:
            return 0.0
        Wt, _ = self.split(theta)
        if self._stats is None:
            try:
                return self.alpha * self.penalty.value(Wt, self.smooth.n_threads) if Wt.size else 0.0
            except Exception as exc:
                return self._failed(exc)
        self._local_stats(Wt)
        value = self.penalty.value_from_stats(self._stats[: -self.n_flags])
        return self.alpha * value if self.reduction.rank == 0 else 0.0

    @property
    def speculative(self) -> bool:
        """Whether the prox statistics travel with the line-search scalars (see :func:`fista`)."""
        return self.distributed and self._stats is not None

    def pieces_size(self) -> int:
        """Length of the step-free statistics pieces (:meth:`Penalty.local_pieces`)."""
        return self.penalty.pieces_size(self.shape[1])

    def local_pieces(self, y: np.ndarray, g: np.ndarray, out: np.ndarray) -> None:
        """This rank's pieces of the prox statistics of y - s g (W parts), into ``out``."""
        try:
            self.penalty.local_pieces(self.split(y)[0], self.split(g)[0], out)
        except Exception as exc:
            self._failed(exc)

    def prox_with_stats(self, theta: np.ndarray, step: float, stats: np.ndarray) -> float:
        """:meth:`prox` given the global statistics of the point (no Allreduce)."""
        Wt, _ = self.split(theta)
        try:
            value = self.penalty.prox_from_stats(Wt, stats, step * self.alpha, Wt)
        except Exception as exc:
            return self._failed(exc)
        return self.alpha * value if self.reduction.rank == 0 else 0.0

    def _local_stats(self, Wt: np.ndarray) -> None:
        """The penalty's global statistics of W into ``self._stats`` (one Allreduce)."""
        try:
            self.penalty.local_stats(Wt, self._stats[: -self.n_flags])
        except Exception as exc:
            self._failed(exc)
        self.reduce(self._stats)


@dataclass
class FistaState:
    """Everything FISTA carries from one iteration to the next (what a checkpoint saves).

    ``x`` is the iterate, ``y`` the extrapolated point, ``t`` the momentum counter, ``L`` the
    last trial curvature and ``L_seen`` the curvature along the last accepted step; ``F`` is
    the objective at ``x`` and ``history`` every F so far. With the same state, the next
    iterations are the same, bit for bit, which is what makes a resumed run end where an
    uninterrupted one does.
    """

    x: np.ndarray
    y: np.ndarray
    t: float
    L: float
    L_seen: float
    F: float
    history: list
    n_evals: int
    n_iter: int
    grad0_norm: float


def fista(problem: Composite, theta0: np.ndarray, tol: float, max_iter: int, callback=None,
          state: FistaState | None = None, on_iteration=None):
    """Minimize ``problem`` from ``theta0`` (or from a saved ``state``).

    ``on_iteration(state)`` runs after every iteration that does not stop the loop (the
    checkpoint hook). Returns ``(theta, info)``. See :func:`solve` for the method.
    """
    dtype = problem.dtype
    # f carries rounding errors of a few eps relative (1e-12 for float64 sums over many rows);
    # differences below this are noise and must neither fail the line search nor set L.
    noise = max(1e-12, 100.0 * float(np.finfo(dtype).eps))
    n_flags = problem.n_flags
    quadratic = problem.is_quadratic()
    grad = np.empty_like(theta0)
    fresh = state is None
    if fresh:
        x = theta0.copy()
        grad0 = grad  # the gradient at x0, which is also y0
        start = np.zeros(3 + n_flags)
        start[0] = problem.f(x, grad0)
        start[1] = problem.g(x)
        start[2] = np.dot(grad0, grad0)
        problem.reduce(start)
        F = float(start[0] + start[1])
        state = FistaState(x=x, y=x.copy(), t=1.0, L=1.0, L_seen=0.0, F=F, history=[F], n_evals=1, n_iter=0,
                           grad0_norm=float(np.sqrt(start[2])))
    x, y = state.x.copy(), state.y.copy()
    # L: first trial step 1; backtracking jumps to the measured curvature at once.
    t, L, L_seen, F, history, n_evals = state.t, state.L, state.L_seen, state.F, list(state.history), state.n_evals
    x_new = np.empty_like(x)
    move = np.empty_like(x)
    # Under MPI, a penalty with statistics (l21, trace, mean) would need them at y before each
    # prox: a second Allreduce per iteration. Instead every trial also computes the two points y
    # can be next (x+ on a restart, x+ + beta (x+ - x) otherwise) with their gradients, and their
    # step-free statistics pieces travel in the trial's Allreduce: one per iteration.
    speculative = problem.speculative
    n_pieces = problem.pieces_size() if speculative else 0
    if quadratic or speculative:
        grad_new = np.empty_like(x)  # grad f at the trial point, from the trial's own pass
    if fresh:
        f_y = start[0]  # grad holds grad f(x0), and y0 = x0
    elif quadratic or speculative:
        f_y = problem.f(y, grad)
        n_evals += 1
    if quadratic:
        # f quadratic (every task squared loss): its gradient is affine, so each trial evaluates
        # f and grad f at x+ in one pass, and grad f at the next extrapolated point is a linear
        # combination: one pass over the data per iteration instead of two.
        grad_x = grad.copy() if fresh else np.empty_like(x)
        if not fresh:
            problem.f(x, grad_x)
            n_evals += 1
    if speculative:
        y_next, grad_next = np.empty_like(x), np.empty_like(x)
        start_pieces = np.zeros(n_pieces + n_flags)
        problem.local_pieces(y, grad, start_pieces[:n_pieces])
        pieces_y = problem.reduce(start_pieces)[:n_pieces].copy()
    # Global sums of one line-search trial, one Allreduce: f(x+), alpha g(x+), f(y), ||x+ - y||^2,
    # <grad, x+ - y>, ||x+||^2, ||y||^2, <x+ - y, x+ - x>, [the statistics pieces at the two next
    # points], then the flags.
    sums = np.zeros(8 + 2 * n_pieces + n_flags)
    pieces_restart, pieces_momentum = slice(8, 8 + n_pieces), slice(8 + n_pieces, 8 + 2 * n_pieces)

    converged = False
    stopped_by_callback = False
    rel_change = optimality = np.inf
    n_iter = state.n_iter
    for n_iter in range(state.n_iter + 1, max_iter + 1):
        try:
            if not (quadratic or speculative):
                f_y = problem.f(y, grad)
                n_evals += 1
            # Try a larger step than last time, but not beyond the curvature just observed.
            L = max(0.98 * L, L_seen, np.finfo(np.float64).tiny)
            for _ in range(200):
                _core.gradient_step(y, grad, 1.0 / L, x_new)
                if speculative:
                    stats = problem.penalty.stats_from_pieces(pieces_y, 1.0 / L, problem.shape[1])
                    g_new = problem.prox_with_stats(x_new, 1.0 / L, stats)
                else:
                    g_new = problem.prox(x_new, 1.0 / L)
                if quadratic or speculative:
                    f_new = f_new_local = problem.f(x_new, grad_new)
                else:
                    f_new = problem.f(x_new)
                n_evals += 1
                # ||x+ - y||^2, <grad, x+ - y>, ||x+||^2, ||y||^2, <x+ - y, x+ - x> in one pass; move = x+ - x
                sums[:3] = (f_new, g_new, f_y)
                sums[3:8] = _core.trial_sums(x_new, y, x, grad, move)
                if speculative:
                    beta_next = (t - 1.0) / (0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t)))
                    _core.extrapolate(x_new, move, beta_next, y_next)
                    if quadratic:
                        f_next = f_new_local + 0.5 * beta_next * _core.extrapolate_gradient(
                            grad_new, grad_x, move, beta_next, grad_next)
                    else:
                        f_next = problem.f(y_next, grad_next)
                        n_evals += 1
                    problem.local_pieces(x_new, grad_new, sums[pieces_restart])
                    problem.local_pieces(y_next, grad_next, sums[pieces_momentum])
                problem.reduce(sums)
                f_new, g_new, f_y_all, dd, lin, xx, yy, dot_move = sums[:8].tolist()
                excess = f_new - f_y_all - lin  # f(x+) minus its linear model at y
                slack = noise * (abs(f_new) + abs(f_y_all))
                if np.isfinite(f_new) and excess <= 0.5 * L * dd + slack:
                    break
                # Curvature along this step; jump straight past it instead of doubling blindly.
                L = 1.1 * (2.0 * excess / dd) if np.isfinite(f_new) and dd > 0 else 10.0 * L
            else:
                raise RuntimeError("line search failed: the smooth part is not finite near the current point")
        except _Stopped:
            stopped_by_callback = True
            n_iter -= 1
            break
        L_seen = 2.0 * excess / dd if excess > slack else 0.0

        F_new = f_new + g_new
        history.append(F_new)
        rel_change = abs(F - F_new) / max(abs(F_new), np.finfo(np.float64).tiny)
        # ||G|| / (L ||x+||) with G = L (y - x+) the gradient mapping: the proximal-gradient step
        # relative to the iterate, free of the scales of the data and of the loss. Near an optimum
        # at zero the iterate has no size to compare with; ||G|| <= tol ||grad f(x0)|| then says
        # the gradient mapping fell by the factor tol since the start.
        scale = max(np.sqrt(xx), np.sqrt(yy), state.grad0_norm / L)
        optimality = np.sqrt(dd) / scale if scale > 0 else 0.0

        # Momentum, reset when it points against the last step or F went up (O'Donoghue-Candes).
        if dot_move < 0.0 or F_new > F:
            t = 1.0
            np.copyto(y, x_new)
            if quadratic or speculative:
                np.copyto(grad, grad_new)
                f_y = f_new_local
            if speculative:
                pieces_y[:] = sums[pieces_restart]
        elif speculative:
            t = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            y, y_next = y_next, y
            grad, grad_next = grad_next, grad
            f_y = f_next
            pieces_y[:] = sums[pieces_momentum]
        else:
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_next
            _core.extrapolate(x_new, move, beta, y)
            t = t_next
            if quadratic:
                # grad f(y) = (1 + beta) grad f(x+) - beta grad f(x), and, f being quadratic, the
                # trapezoid rule is exact: f(y) = f(x+) + <grad f(x+) + grad f(y), y - x+> / 2.
                f_y = f_new_local + 0.5 * beta * _core.extrapolate_gradient(grad_new, grad_x, move, beta, grad)
        if quadratic:
            grad_x, grad_new = grad_new, grad_x
        x, x_new = x_new, x
        F = F_new

        if callback is not None:
            Wt, b = problem.user_split(x)
            state_view = SolverState(n_iter, Wt.T, b if b is not None else np.zeros(problem.shape[0], dtype),
                                     F, rel_change, optimality, 1.0 / L)
            try:
                callback(state_view)
            except StopIteration:
                if not problem.distributed:
                    stopped_by_callback = True
                    break
                problem.stop_requested = True  # every rank stops at the next collective
            except Exception as exc:
                problem._failed(exc)
        if rel_change <= tol and optimality <= tol:
            converged = True
            break
        if on_iteration is not None:
            on_iteration(FistaState(x=x, y=y, t=t, L=L, L_seen=L_seen, F=F, history=history,
                                    n_evals=n_evals, n_iter=n_iter, grad0_norm=state.grad0_norm))

    if problem.distributed and not stopped_by_callback:
        try:  # the last callback's failure or stop must not stay on its rank alone
            problem.reduce(np.zeros(n_flags))
        except _Stopped:
            stopped_by_callback = True
    info = dict(objective=F, history=np.asarray(history), n_iter=n_iter, converged=converged,
                stopped_by_callback=stopped_by_callback, optimality=optimality, rel_change=rel_change,
                n_evals=n_evals, step=1.0 / L)
    return x, info


def solve(data: TaskData, loss="squared", penalty="l21", alpha=0.1, l2=0.0, fit_intercept=False,
          task_weights="mean", tol=1e-6, max_iter=10_000, W0=None, b0=None, callback=None,
          *, n_threads: int | None = None, gram="auto", comm=None, checkpoint=None, checkpoint_every: int = 10,
          resume: bool = False) -> SolveResult:
    """Fit all tasks jointly by minimizing the regularized multi-task objective.

    Parameters
    ----------
    data : TaskData
        The tasks, in any of the three layouts. Under MPI: this rank's tasks only (possibly
        none, see :meth:`TaskData.empty`), with their global ids as ``task_ids``.
    loss : {"squared", "logistic"} or sequence of them
        One loss for every task, or one per task (regression beside classification); under
        MPI one per global task, in global task-id order.
    penalty : {"none", "l1", "l21", "trace", "mean"}
        The coupling penalty g(W).
    alpha : float, default 0.1
        Strength of g (>= 0).
    l2 : float, default 0
        Ridge term (l2 / 2) ||W||_F^2 (>= 0).
    fit_intercept : bool, default False
        Fit an unpenalized intercept b_t per task.
    task_weights : {"mean", "sum"} or array_like of shape (n_tasks,)
        c_t: ``"mean"`` = 1/m_t, ``"sum"`` = 1 (MALSAR's scale), or given weights >= 0
        (under MPI one per global task, in global task-id order).
    tol : float, default 1e-6
        Stop when both the relative change of F and the gradient-mapping measure
        ``||G|| / max(L ||W+||, L ||Y||, ||grad f(W0)||)`` (the proximal-gradient step relative
        to the iterate, or the gradient mapping relative to the starting gradient when the
        optimum is at zero; ``G = L (Y - W+)``) fall to ``tol`` or below.
    max_iter : int, default 10000
        Iteration cap (counted from the first iteration, also across a resume); reaching it
        without convergence emits a :class:`ConvergenceWarning`.
    W0 : array_like of shape (n_features, n_tasks), optional
        Warm start (default zeros); under MPI the full matrix, columns in global task-id order.
    b0 : array_like of shape (n_tasks,), optional
        Warm start of the intercepts (default zeros; needs ``fit_intercept``).
    callback : callable, optional
        ``callback(state)`` with a :class:`SolverState` after every iteration; raising
        ``StopIteration`` stops the solve cleanly (``converged`` is then False). Under MPI it
        sees this rank's columns, and a stop on any rank stops all at the next collective.
    n_threads : int, optional
        Threads of the core (default ``MTLX_NUM_THREADS`` or all cores).
    gram : {"auto", True, False}, default "auto"
        Squared loss only: evaluate it from per-task Gram matrices ``X_t' X_t`` (one ``X' X``
        for the shared layout) instead of passing over the rows. ``"auto"`` picks it when a
        call is at least twice cheaper that way (``T d`` small against the rows; see
        :func:`mtlx.gram.gram_cost`) and logs the choice on the ``"mtlx"`` logger; True forces
        it, False forbids it. Values and gradients agree with the direct form to rounding.
    comm : mpi4py.MPI.Comm, optional
        Solve over the ranks of ``comm``, each holding the tasks in its ``data``; every rank
        gets the same result. Sums over tasks are combined by ``comm.Allreduce`` (see
        :mod:`mtlx.distributed`). Default: a single process.
    checkpoint : path, optional
        Folder for a checkpoint (W, b, the solver state and a fingerprint of the problem),
        written atomically by rank 0 every ``checkpoint_every`` iterations.
    checkpoint_every : int, default 10
    resume : bool, default False
        Continue from the checkpoint in ``checkpoint`` when there is one (on any number of
        ranks); a checkpoint of a different problem is refused with a ``ValueError``.

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

    Under MPI, each line-search trial all-reduces one buffer: 8 scalars (plus 2 flags) and, for
    penalties with statistics (l21, trace, mean), the step-free pieces of those statistics at the
    two points the next extrapolated point can be (see :func:`fista`): one Allreduce per iteration.
    """
    start = time.perf_counter()
    # Under MPI a wrong argument on one rank must fail all ranks, not leave them in a collective.
    with contextlib.nullcontext() if comm is None else _agreed_errors(comm):
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
        if checkpoint is None and resume:
            raise ValueError("resume=True needs a checkpoint folder (checkpoint=DIR)")
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, np.integer)) \
                or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
        if not isinstance(data, TaskData):
            raise TypeError(f"data must be an mtlx.TaskData, got {type(data).__name__}")
    if comm is None:
        reduction = LocalReduction(data.task_ids)
    else:
        from .distributed import MPIReduction

        reduction = MPIReduction(comm, data)
        data = reduction.conform(data)
    with reduction.agreed_errors():
        n_threads = resolve_n_threads(n_threads)
    with blas_threads(n_threads):
        return _solve(data, loss, pen, alpha, l2, fit_intercept, task_weights, tol, max_iter, W0, b0, callback,
                      n_threads, gram, reduction, checkpoint, checkpoint_every, resume, start)


def _solve(data, loss, pen, alpha, l2, fit_intercept, task_weights, tol, max_iter, W0, b0, callback, n_threads,
           gram, reduction, checkpoint, checkpoint_every, resume, start) -> SolveResult:
    """:func:`solve` after argument checks, inside the BLAS thread limit."""
    with reduction.agreed_errors():
        smooth = smooth_loss(data, _local_part(loss, reduction, "loss"),
                             _local_part(task_weights, reduction, "task_weights"), n_threads, gram)
        if fit_intercept:
            smooth.check_intercepts_bounded()
        problem = Composite(smooth, pen, alpha, l2, bool(fit_intercept), reduction)
        theta0 = np.zeros(problem.size, dtype=problem.dtype)
        if W0 is not None or b0 is not None:
            W_init, b_init = _local_start(data, reduction, W0, b0)
            Wt, b = as_parameters(data, W_init, b_init, "W0", "b0")
            theta0[: problem.n_coef] = Wt.ravel()
            if b is not None:
                theta0[problem.n_coef :] = b
            problem.from_user(theta0)

    state = on_iteration = None
    if checkpoint is not None:
        from ._checkpoint import Checkpoint

        ckpt = Checkpoint(checkpoint, problem)
        state = ckpt.load() if resume else None
        on_iteration = ckpt.every(int(checkpoint_every))
    n_calls0, n_bytes0 = reduction.n_calls, reduction.n_bytes
    theta, info = fista(problem, theta0, float(tol), int(max_iter), callback, state, on_iteration)
    Wt, b = problem.user_split(theta)
    message = "converged" if info["converged"] else (
        "stopped by callback" if info["stopped_by_callback"] else "reached max_iter")
    if not info["converged"] and not info["stopped_by_callback"]:
        warnings.warn(
            f"mtlx.solve did not converge in {max_iter} iterations (relative change {info['rel_change']:.2e}, "
            f"optimality {info['optimality']:.2e}, tol {tol:.1e}); raise max_iter or tol",
            ConvergenceWarning, stacklevel=3)
    n_calls, n_bytes = reduction.n_calls - n_calls0, reduction.n_bytes - n_bytes0
    if reduction.distributed:
        W = reduction.allgather_tasks(np.ascontiguousarray(Wt)).T
        b = reduction.allgather_tasks(b) if b is not None else None
    else:
        W = Wt.T
        b = b.copy() if b is not None else None
    return SolveResult(
        W=W, b=(b if b is not None else np.zeros(W.shape[1], dtype=problem.dtype)),
        objective=info["objective"], history=info["history"], n_iter=info["n_iter"],
        converged=info["converged"], optimality=info["optimality"], rel_change=info["rel_change"],
        n_evals=info["n_evals"], step=info["step"], time=time.perf_counter() - start, message=message,
        task_ids=np.asarray(reduction.global_ids), n_allreduce=n_calls, allreduce_bytes=n_bytes,
        gram=isinstance(smooth, GramSquaredLoss))


def _agreed_errors(comm):
    from .distributed import agreed_errors

    return agreed_errors(comm)


def _local_part(value, reduction, name: str):
    """A per-task option given for all tasks (global order) -> its entries for this rank's tasks."""
    if not reduction.distributed or isinstance(value, str):
        return value
    entries = value if isinstance(value, np.ndarray) else list(value)
    n = len(reduction.global_ids)
    if len(entries) != n:
        raise ValueError(f"{name} has {len(entries)} entries but there are {n} tasks over all ranks")
    if isinstance(entries, np.ndarray):
        return entries[reduction.local_index]
    return [entries[i] for i in reduction.local_index]


def _local_start(data: TaskData, reduction, W0, b0):
    """Warm starts (global under MPI) -> this rank's columns."""
    W_init = np.zeros((data.n_features, len(reduction.global_ids))) if W0 is None else W0
    if not reduction.distributed:
        return W_init, b0
    W_init = np.asarray(W_init)
    n = len(reduction.global_ids)
    if W_init.ndim != 2 or W_init.shape[1] != n:
        raise ValueError(f"W0 has shape {W_init.shape}, expected (n_features, n_tasks) = "
                         f"({data.n_features}, {n}) with the tasks of all ranks")
    b_init = None
    if b0 is not None:
        b_init = np.asarray(b0)
        if b_init.shape != (n,):
            raise ValueError(f"b0 has shape {b_init.shape}, expected ({n},) with the tasks of all ranks")
        b_init = b_init[reduction.local_index]
    return W_init[:, reduction.local_index], b_init
