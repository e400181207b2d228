"""Regularization paths: solutions along a decreasing grid of alphas, with warm starts.

Every convex formulation runs along alpha with its relative weights fixed, with any loss and
intercepts. Least squares with L1 or L21 alone runs on working sets and coordinate descent with
gap-safe screening (:mod:`mtlx.working_set`): for ``F(W) = sum_t c_t/2 ||y_t - X_t w_t||^2 + alpha g(W)``
the dual is

    D(theta) = sum_t theta_t . y_t - ||theta_t||^2 / (2 c_t)   s.t.   g*(X' theta) <= alpha,

maximized at ``theta_t = c_t r_t`` (the residuals). Rescaling the residuals of any W into the
dual feasible set gives a duality gap ``P(W) - D(theta)``, hence a stopping rule with a
certificate, and a ball around the dual optimum of squared radius ``2 gap``: a feature whose dual
constraint cannot be tight anywhere in that ball is zero at the optimum and is dropped (the
gap-safe rule of Ndiaye, Fercoq, Gramfort & Salmon 2015). Every other formulation runs FISTA
warm-started from the previous alpha.

The grid: for penalties that are norms (sums of norms and smooth terms, decompositions W = U + V
of them), from ``alpha_max``, the smallest alpha whose solution is W = 0, down to
``eps * alpha_max``. For the others (mean, graph, clustered, shared), which never set W to zero,
from ``100 * alpha_ref`` down, where ``alpha_ref`` equates the penalty's curvature with the
data's (the largest eigenvalue of the smooth part's Hessian in W over the penalty's Lipschitz
constant): at ``100 alpha_ref`` the tasks are held near the penalty's limit (all equal for
mean), far below it they are fitted independently.
"""

from __future__ import annotations

import logging
import numbers
import time
from dataclasses import dataclass

import numpy as np

from . import gpu
from ._config import resolve_n_threads
from ._task_by_task import TaskByTaskSolver
from ._task_by_task import applies as by_task_applies
from ._validate import check_int, check_real
from ._weights import UnweightedEquivalent, applies
from .data import TaskData
from .losses import resolve_losses
from .objective import loss_grad
from .penalties import BlockContext, get_penalty
from .solver import solve
from .working_set import MAX_STACKED_GRAM_BYTES, WorkingSetSolver, fits, unsupported

__all__ = ["PathResult", "alpha_grid", "alpha_max", "path"]

log = logging.getLogger("mtlx")


def _intercepts_at_zero(data: TaskData, losses: list, task_weights) -> np.ndarray:
    """The optimal intercepts at W = 0 (the mean target for the squared loss, the log-odds for the
    logistic, ...: each loss's own)."""
    b = np.zeros(data.n_tasks)
    for t in range(data.n_tasks):
        w = data.task_weights_of(t)
        b[t] = losses[t].optimal_intercept(data.targets(t).astype(np.float64), f"task {data.task_ids[t]}",
                                           None if w is None else w.astype(np.float64))
    return b


def _spectral_norm(X) -> float:
    """||X||_2: LAPACK for a dense X, Lanczos (scipy's svds) for a sparse one."""
    import scipy.sparse as sp

    if gpu.is_device_array(X):  # (X on a GPU: its largest singular value there, cuSOLVER through CuPy)
        return float(gpu.to_host(_device_svd(X))[0]) if X.size else 0.0
    if not sp.issparse(X):
        return float(np.linalg.norm(X.astype(np.float64), 2))
    if min(X.shape) < 3:
        return float(np.linalg.norm(X.toarray().astype(np.float64), 2))
    from scipy.sparse.linalg import svds

    return float(svds(X.astype(np.float64), k=1, return_singular_vectors=False, random_state=0)[0])


def _device_svd(X):
    import cupy

    return cupy.linalg.svd(X.astype(cupy.float64), compute_uv=False)


def _gradient_at_zero(data: TaskData, loss, task_weights, fit_intercept: bool, n_threads):
    """(f, grad_W f) at W = 0 with the optimal intercepts (d x T)."""
    losses = resolve_losses(loss, data.n_tasks)
    b = _intercepts_at_zero(data, losses, task_weights).astype(data.dtype) if fit_intercept else None
    value, gW, _ = loss_grad(data, np.zeros((data.n_features, data.n_tasks), dtype=data.dtype), b, loss,
                             task_weights, n_threads=n_threads)
    return float(value), np.asarray(gpu.to_host(gW), dtype=np.float64)


def alpha_max(data: TaskData, penalty="l21", task_weights="mean", *, loss="squared", fit_intercept=False,
              n_threads: int | None = None) -> float:
    """The smallest alpha whose solution is W = 0 (penalties that are norms).

    Parameters
    ----------
    data : TaskData
    penalty : str or Penalty
        A norm (``"l1"``, ``"l21"``, ``"trace"``, ``"l21_columns"``, ``"linf1"``), a sum of norms and
        smooth terms (``L1(a) + L21(b)``, ``Graph(R, a) + L1(b)``) or a decomposition of them.
    task_weights : {"mean", "sum"} or array_like of shape (n_tasks,)
    loss : str or sequence of str, default "squared"
    fit_intercept : bool, default False
        Take the gradient at W = 0 with the optimal intercepts (mean targets, log-odds).

    Returns
    -------
    float
        The dual norm of the gradient at zero: ``g*(X' C y)`` for least squares without
        intercepts (max |.| for l1, the largest row norm for l21, the spectral norm for trace).
    """
    pen = get_penalty(penalty)
    pen.check(data.n_features, data.n_tasks)
    _, grad = _gradient_at_zero(data, loss, task_weights, fit_intercept, n_threads)
    return _alpha_max(pen, grad)


def _alpha_max(pen, grad_dT: np.ndarray) -> float:
    value = pen.dual_norm(np.ascontiguousarray(grad_dT.T))
    if value is None:
        raise ValueError(f"{pen!r} never sets W to zero (it is not a norm): there is no alpha_max; give alphas or "
                         "use alpha_grid")
    return float(value)


def alpha_grid(data: TaskData, penalty="l21", n_alphas: int = 100, eps: float = 1e-3, *, loss="squared",
               task_weights="mean", fit_intercept=False, n_threads: int | None = None) -> np.ndarray:
    """The default decreasing grid of :func:`path` (see the module docstring).

    Returns
    -------
    ndarray, shape (n_alphas,)
        Log-spaced from ``alpha_max`` (norms) or ``100 * alpha_ref`` (other penalties) down to
        ``eps`` times it.
    """
    pen = get_penalty(penalty)
    n_alphas = check_int(n_alphas, "n_alphas", 1)
    eps = check_real(eps, "eps", 0.0, low_open=True)
    if eps > 1:
        raise ValueError(f"The 'eps' parameter must be a float in the range (0.0, 1.0]. Got {eps!r} instead.")
    pen.check(data.n_features, data.n_tasks)
    _, grad = _gradient_at_zero(data, loss, task_weights, fit_intercept, n_threads)
    top = pen.dual_norm(np.ascontiguousarray(grad.T))
    if top is None:
        top = 100.0 * _alpha_ref(data, pen, loss, task_weights, n_threads)
    if not top > np.finfo(float).resolution:
        # Constant targets, or targets orthogonal to X: W = 0 for every alpha > 0. A grid of the
        # smallest alphas, as scikit-learn's _alpha_grid gives, keeps model selection well defined.
        return np.full(n_alphas, np.finfo(float).resolution)
    return top * np.geomspace(1.0, eps, n_alphas)


def _alpha_ref(data: TaskData, pen, loss, task_weights, n_threads) -> float:
    """The alpha at which the penalty's curvature equals the data's: lambda_max(H_f) / Lip(grad g)."""
    losses = resolve_losses(loss, data.n_tasks)
    curvature = np.array([x.typical_curvature(data.counted_targets(t)) for t, x in enumerate(losses)])
    ctx = BlockContext.single(data.n_features, data.n_tasks)
    lips = [term.lipschitz(ctx) for part in pen.components() for term in part.terms() if term.smooth]
    lip = max(lips) if lips else 0.0
    if not lip > 0:
        raise ValueError(f"{pen!r}: no scale to build an alpha grid from; give alphas explicitly")
    from ._validate import resolve_task_weights

    c = resolve_task_weights(task_weights, data.weight_totals) * curvature
    # The Hessian is block-diagonal over tasks, c_t X_t' S_t X_t (one X' X for shared, unweighted input).
    if data.layout == "shared" and data.sample_weight is None:
        top = float(c.max()) * _spectral_norm(data.X) ** 2
    else:
        def spectral(t):
            X_t, s_t = data.task(t)[0], data.task_weights_of(t)
            if s_t is not None:
                root = np.sqrt(s_t.astype(np.float64))
                if data.device is not None:
                    root = data.backend.asarray(root)
                X_t = X_t.multiply(root[:, None]).tocsr() if data.sparse else root[:, None] * X_t
            return _spectral_norm(X_t) ** 2
        top = max(float(c[t]) * spectral(t) for t in range(data.n_tasks))
    return top / lip


@dataclass
class PathResult:
    """Outcome of :func:`path`.

    Attributes
    ----------
    alphas : ndarray, shape (n_alphas,)
        Decreasing strengths.
    coefs : ndarray, shape (n_alphas, n_features, n_tasks)
    intercepts : ndarray, shape (n_alphas, n_tasks)
        Zeros without ``fit_intercept``.
    objectives : ndarray, shape (n_alphas,)
        F at each solution.
    gaps : ndarray, shape (n_alphas,)
        Duality gap certified at each solution (working sets; NaN where FISTA solved).
    n_iter : ndarray, shape (n_alphas,)
        Work per alpha: coordinate-descent epochs over the working sets (an epoch costs
        O(k^2 T) for a working set of k features), or FISTA iterations.
    n_screened : ndarray, shape (n_alphas,)
        Features proven zero by the gap-safe rule at the end of each alpha.
    converged : ndarray of bool, shape (n_alphas,)
    time : float
        Wall time of the whole path.
    """

    alphas: np.ndarray
    coefs: np.ndarray
    intercepts: np.ndarray
    objectives: np.ndarray
    gaps: np.ndarray
    n_iter: np.ndarray
    n_screened: np.ndarray
    converged: np.ndarray
    time: float


def check_alphas(alphas) -> np.ndarray:
    """An explicit grid: a non-empty 1-D array of finite numbers > 0, returned sorted decreasing
    (scikit-learn's convention: a path runs from strong to weak regularization)."""
    arr = np.asarray(alphas)
    if arr.dtype.kind not in "iuf" or arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"alphas must be a positive int or a non-empty 1-D array of numbers > 0, got {alphas!r}")
    arr = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
    if bad.size:
        raise ValueError(f"alphas[{bad[0]}] = {arr[bad[0]]}: every alpha must be a finite number > 0")
    return np.sort(arr)[::-1].copy()


def _short_grid(alphas) -> str:
    return repr(alphas) if np.size(alphas) <= 4 else f"an array of {np.size(alphas)}"


def path(data: TaskData, penalty="l21", *, loss="squared", alphas=100, n_alphas=None, eps: float = 1e-3,
         l2: float = 0.0, fit_intercept: bool = False, task_weights="mean", tol: float = 1e-6,
         screening: bool = True, working_set: bool = True, max_iter: int = 100_000, gram="auto",
         n_threads: int | None = None, device=None) -> PathResult:
    """Solutions along a decreasing grid of alphas, each warm-started from the previous one.

    Parameters
    ----------
    data : TaskData
    penalty : str or Penalty
        Any convex formulation of :mod:`mtlx.penalties`; its relative weights stay fixed.
    loss : str or sequence of str, default "squared"
    alphas : int or array_like, default 100
        The number of alphas of the default grid (:func:`alpha_grid`), or the grid itself
        (sorted decreasing; every alpha > 0).
    n_alphas : int, optional
        The same as ``alphas=n_alphas`` (the older spelling; scikit-learn 1.9 uses ``alphas=int``).
    eps : float, default 1e-3
        The smallest alpha of the default grid over the largest.
    l2, fit_intercept, task_weights :
        As for :func:`mtlx.solve`.
    tol : float, default 1e-6
        Working sets: each solution is certified by a duality gap of at most ``tol * F``.
        FISTA: the ``tol`` of :func:`mtlx.solve`.
    screening : bool, default True
        Drop features proven zero by the gap-safe rule (working sets).
    working_set : bool, default True
        Solve on a growing working set of the remaining features (working sets).
    max_iter : int
        Cap per alpha: coordinate-descent epochs, or FISTA iterations.
    gram : {"auto", True, False}
        FISTA's form of the squared loss (see :func:`mtlx.solve`).
    n_threads : int, optional
    device : {None, "cpu", "cuda", "cuda:N"} or int, optional
        Where the data pass runs (see :func:`mtlx.solve`); on a device every alpha is solved by
        FISTA, warm-started (the working-set engine runs on the host), and with device input
        ``coefs`` and ``intercepts`` come back as device arrays.

    Returns
    -------
    PathResult
    """
    data = gpu.place(data, device)
    with gpu.activated(data):  # (data on a GPU: every CuPy operation on its device and stream)
        return _path(data, penalty, loss=loss, alphas=alphas, n_alphas=n_alphas, eps=eps, l2=l2,
                     fit_intercept=fit_intercept, task_weights=task_weights, tol=tol, screening=screening,
                     working_set=working_set, max_iter=max_iter, gram=gram, n_threads=n_threads)


def _path(data: TaskData, penalty, *, loss, alphas, n_alphas, eps, l2, fit_intercept, task_weights, tol, screening,
          working_set, max_iter, gram, n_threads) -> PathResult:
    """:func:`path` once the data are where they are solved."""
    start = time.perf_counter()
    pen = get_penalty(penalty)
    n_threads = resolve_n_threads(n_threads, float(data.X.size))
    tol = check_real(tol, "tol")
    eps = check_real(eps, "eps", 0.0, low_open=True)
    if not isinstance(fit_intercept, (bool, np.bool_)):
        raise TypeError(f"The 'fit_intercept' parameter must be a bool. Got {fit_intercept!r} instead.")
    max_iter = check_int(max_iter, "max_iter", 1)
    l2 = check_real(l2, "l2")
    if n_alphas is not None:
        n_alphas = check_int(n_alphas, "n_alphas", 1)
        # (alphas keeps its default, 100, unless given: two different counts, or a grid beside a
        # count, leave no way to tell which was meant)
        if not (isinstance(alphas, numbers.Integral) and not isinstance(alphas, bool) and alphas in (100, n_alphas)):
            raise ValueError(f"n_alphas={n_alphas} and alphas={_short_grid(alphas)} disagree: give the number of "
                             "alphas once (alphas=int; n_alphas is its older spelling) or a grid as alphas")
        alphas = n_alphas
    if isinstance(alphas, numbers.Integral) and not isinstance(alphas, bool):
        alphas = alpha_grid(data, pen, check_int(alphas, "alphas", 1), eps, loss=loss, task_weights=task_weights,
                            fit_intercept=fit_intercept, n_threads=n_threads)
    else:
        alphas = check_alphas(alphas)
    pen.check(data.n_features, data.n_tasks)
    d, T = data.n_features, data.n_tasks
    losses = resolve_losses(loss, T)
    equivalent = None
    if all(x.quadratic for x in losses) and data.device is None and applies(data):
        # Row-weighted least squares: the unweighted problem of the scaled rows (mtlx._weights).
        equivalent = UnweightedEquivalent(data, task_weights, fit_intercept)
        data, task_weights, fit_intercept = equivalent.data, equivalent.task_weights, False
    engine = None
    # (weighted data left here has per-entry weights or a sparse X: the engine weighs its Gram rows)
    if all(x.quadratic for x in losses) and not unsupported(pen) and data.device is None:
        if fits(data):
            kind = TaskByTaskSolver if by_task_applies(data, pen) else WorkingSetSolver
            engine = kind(data, pen, l2=l2, fit_intercept=fit_intercept, task_weights=task_weights, n_threads=n_threads)
        else:
            log.warning("mtlx.path: per-task Gram rows of %d tasks x %d features would exceed %.0f MiB; solving "
                        "each alpha by FISTA on all features (no screening, no gap certificate)", T, d,
                        MAX_STACKED_GRAM_BYTES / 2**20)
    n = len(alphas)
    coefs = np.zeros((n, d, T), dtype=data.dtype)
    intercepts = np.zeros((n, T), dtype=data.dtype)
    objectives, gaps = np.empty(n), np.full(n, np.nan)
    n_iter, n_screened = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    converged = np.zeros(n, dtype=bool)
    W, b = np.zeros((d, T)), None
    zero_value, grad = _gradient_at_zero(data, loss, task_weights, fit_intercept, n_threads)
    top = pen.dual_norm(np.ascontiguousarray(grad.T))
    for k, alpha in enumerate(alphas):
        if top is not None and alpha >= top and engine is None:
            # W = 0 satisfies the optimality condition exactly; a solve would end a rounding error
            # away from it (singular values at the prox threshold).
            W[:] = 0.0
            b = _intercepts_at_zero(data, losses, task_weights) if fit_intercept else None
            objectives[k], converged[k] = zero_value, True
            if b is not None:
                intercepts[k] = b
            continue
        if engine is not None:
            W, info = engine.solve(float(alpha), W, tol=tol, screening=screening, working_set=working_set,
                                   max_epochs=max_iter)
            if not info["converged"]:
                log.warning("mtlx.path: alpha=%.4g stopped with gap %.3g > tol * P", alpha, info["gap"])
            support = np.flatnonzero(np.any(W != 0, axis=1))
            coefs[k], intercepts[k] = W, engine.intercepts_of(support, W[support])
            objectives[k], gaps[k], n_iter[k], n_screened[k] = (info["primal"], info["gap"], info["epochs"],
                                                                 info["n_screened"])
            converged[k] = info["converged"]
            log.debug("mtlx.path: alpha %d/%d = %.4g: %d epochs, %d gap checks, %d screened, support %d",
                      k + 1, n, alpha, info["epochs"], info["outer"], info["n_screened"], support.size)
            continue
        res = solve(data, loss=loss, penalty=pen, alpha=float(alpha), l2=l2, fit_intercept=fit_intercept,
                    task_weights=task_weights, tol=tol, max_iter=max_iter, W0=W, b0=b if fit_intercept else None,
                    gram=gram, n_threads=n_threads)
        W, b = np.asarray(gpu.to_host(res.W), dtype=np.float64), gpu.to_host(res.b)
        coefs[k], intercepts[k], objectives[k], n_iter[k], converged[k] = W, b, res.objective, res.n_iter, \
            res.converged
    if equivalent is not None:
        intercepts[:] = [equivalent.intercepts(W_k) for W_k in coefs]
    coefs, intercepts = gpu.wrap_result(data, coefs), gpu.wrap_result(data, intercepts)
    return PathResult(alphas=alphas, coefs=coefs, intercepts=intercepts, objectives=objectives, gaps=gaps,
                      n_iter=n_iter, n_screened=n_screened, converged=converged, time=time.perf_counter() - start)
