"""Regularization paths of the squared loss with gap-safe screening and working sets.

For ``F(W) = sum_t c_t/2 ||y_t - X_t w_t||^2 + alpha g(W)`` with g = l1 or l21 the dual is

    D(theta) = sum_t theta_t . y_t - ||theta_t||^2 / (2 c_t)   s.t.   g*(X' theta) <= alpha,

maximized at ``theta_t = c_t r_t`` (the residuals). Rescaling the residuals of any W into the
dual feasible set gives a duality gap ``P(W) - D(theta)``, hence a stopping rule with a
certificate, and a ball around the dual optimum of squared radius ``2 gap`` (D is strongly
concave with modulus 1/c_t per task). A feature whose dual constraint cannot be tight anywhere
in that ball is zero at the optimum and is dropped: the gap-safe rule of Ndiaye, Fercoq,
Gramfort & Salmon (2015). Among the features left, a working set (celer, Massias et al. 2018)
ranked by the distance of their constraint to its bound is solved first, by block coordinate
descent on Gram statistics, and grown until the gap of the whole problem meets the tolerance
(:mod:`mtlx.working_set`, shared by every alpha of the path: Gram rows computed for one alpha
are reused by the next).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from ._config import resolve_n_threads
from .data import TaskData
from .objective import loss_grad
from .penalties import get_penalty
from .solver import solve
from .working_set import MAX_STACKED_GRAM_BYTES, WorkingSetSolver, fits

__all__ = ["PathResult", "alpha_max", "path"]

log = logging.getLogger("mtlx")

#: Dual norm of each penalty (of the d x T matrix X' theta).
_DUAL_NORM = {
    "l1": lambda M: float(np.abs(M).max()),
    "l21": lambda M: float(np.linalg.norm(M, axis=1).max()),
    "trace": lambda M: float(np.linalg.norm(M, 2)),
}


def alpha_max(data: TaskData, penalty="l21", task_weights="mean", *, n_threads: int | None = None) -> float:
    """The smallest alpha whose solution is W = 0 (squared loss, no intercepts).

    Parameters
    ----------
    data : TaskData
    penalty : {"l1", "l21", "trace"}
    task_weights : {"mean", "sum"} or array_like of shape (n_tasks,)

    Returns
    -------
    float
        The dual norm of the gradient at zero, ``g*(X' C y)``: max |.| for l1, the largest row
        norm for l21, the spectral norm for trace.
    """
    pen = get_penalty(penalty)
    if pen.name not in _DUAL_NORM:
        raise ValueError(f"alpha_max needs a penalty among {sorted(_DUAL_NORM)}, got {pen.name!r}")
    return _DUAL_NORM[pen.name](_at_zero(data, task_weights, n_threads)[1])


def _at_zero(data: TaskData, task_weights, n_threads):
    """The least-squares value and W-gradient at W = 0."""
    value, gW, _ = loss_grad(data, np.zeros((data.n_features, data.n_tasks)), None, "squared", task_weights,
                             n_threads=n_threads)
    return value, gW


@dataclass
class PathResult:
    """Outcome of :func:`path`.

    Attributes
    ----------
    alphas : ndarray, shape (n_alphas,)
        Decreasing strengths.
    coefs : ndarray, shape (n_alphas, n_features, n_tasks)
    objectives : ndarray, shape (n_alphas,)
        F at each solution.
    gaps : ndarray, shape (n_alphas,)
        Duality gap certified at each solution (NaN for the trace norm: no gap is computed).
    n_iter : ndarray, shape (n_alphas,)
        Work per alpha: coordinate-descent epochs over the working sets (l1, l21; an epoch
        costs O(k^2 T) for a working set of k features), FISTA iterations (trace).
    n_screened : ndarray, shape (n_alphas,)
        Features proven zero by the gap-safe rule at the end of each alpha.
    time : float
        Wall time of the whole path.
    """

    alphas: np.ndarray
    coefs: np.ndarray
    objectives: np.ndarray
    gaps: np.ndarray
    n_iter: np.ndarray
    n_screened: np.ndarray
    time: float


def path(data: TaskData, penalty="l21", *, n_alphas: int = 100, eps: float = 1e-3, alphas=None,
         task_weights="mean", tol: float = 1e-6, screening: bool = True, working_set: bool = True,
         max_iter: int = 100_000, gram="auto", n_threads: int | None = None) -> PathResult:
    """Solutions of the squared loss along a decreasing grid of alphas, with warm starts.

    Parameters
    ----------
    data : TaskData
    penalty : {"l1", "l21", "trace"}
    n_alphas : int, default 100
        Grid size: ``alpha_max`` down to ``eps * alpha_max``, log-spaced.
    eps : float, default 1e-3
    alphas : array_like, optional
        An explicit grid (sorted decreasing); overrides ``n_alphas`` and ``eps``.
    task_weights : {"mean", "sum"} or array_like of shape (n_tasks,)
    tol : float, default 1e-6
        l1 and l21: each solution is certified by a duality gap of at most ``tol * F``. Trace:
        the ``tol`` of :func:`solve`.
    screening : bool, default True
        Drop features proven zero by the gap-safe rule (l1, l21).
    working_set : bool, default True
        Solve on a growing working set of the remaining features (l1, l21).
    max_iter : int
        l1 and l21: cap on the coordinate-descent epochs per alpha. Trace: the iteration cap of
        each :func:`solve`.
    gram : {"auto", True, False}
        Trace: passed to :func:`solve`.
    n_threads : int, optional

    Returns
    -------
    PathResult

    Notes
    -----
    With ``screening=False, working_set=False`` every inner solve sees all features; the
    solutions agree with the screened ones to the tolerance.
    """
    start = time.perf_counter()
    pen = get_penalty(penalty)
    if pen.name not in _DUAL_NORM:
        raise ValueError(f"path needs a penalty among {sorted(_DUAL_NORM)}, got {pen.name!r}")
    n_threads = resolve_n_threads(n_threads)
    d, T = data.n_features, data.n_tasks
    engine = None
    if pen.name != "trace" and fits(data):
        engine = WorkingSetSolver(data, pen.name, task_weights=task_weights, n_threads=n_threads)
        # Its B = X' C y is minus the gradient at zero: no second pass for alpha_max.
        zero_value, zero_grad = engine.value_at_zero, engine.B
    else:
        if pen.name != "trace":
            log.warning("mtlx.path: per-task Gram rows of %d tasks x %d features would exceed %.0f MiB; solving "
                        "each alpha by FISTA on all features (no screening, no gap certificate)", T, d,
                        MAX_STACKED_GRAM_BYTES / 2**20)
        zero_value, zero_grad = _at_zero(data, task_weights, n_threads)
    a_max = _DUAL_NORM[pen.name](zero_grad)
    if alphas is None:
        alphas = a_max * np.geomspace(1.0, eps, int(n_alphas))
    alphas = np.asarray(alphas, dtype=np.float64)
    coefs = np.zeros((len(alphas), d, T), dtype=data.dtype)
    objectives, gaps = np.empty(len(alphas)), np.full(len(alphas), np.nan)
    n_iter, n_screened = np.zeros(len(alphas), dtype=np.int64), np.zeros(len(alphas), dtype=np.int64)
    W = np.zeros((d, T), dtype=np.float64)
    for k, alpha in enumerate(alphas):
        if engine is not None:
            W, info = engine.solve(float(alpha), W, tol=tol, screening=screening, working_set=working_set,
                                   max_epochs=max_iter)
            if not info["converged"]:
                log.warning("mtlx.path: alpha=%.4g stopped with gap %.3g > tol * P", alpha, info["gap"])
            coefs[k] = W
            objectives[k], gaps[k], n_iter[k], n_screened[k] = (info["primal"], info["gap"], info["epochs"],
                                                                 info["n_screened"])
            log.debug("mtlx.path: alpha %d/%d = %.4g: %d epochs, %d gap checks, %d screened, support %d",
                      k + 1, len(alphas), alpha, info["epochs"], info["outer"], info["n_screened"],
                      int(np.any(W != 0, axis=1).sum()))
            continue
        if alpha >= a_max:
            # W = 0 satisfies the optimality condition exactly; a solve would end a rounding
            # error away from it (singular values at the prox threshold).
            W[:], objectives[k] = 0.0, zero_value
            continue
        res = solve(data, loss="squared", penalty=pen.name, alpha=alpha, task_weights=task_weights, tol=tol,
                    max_iter=max_iter, W0=W, gram=gram, n_threads=n_threads)
        W, objectives[k], n_iter[k] = np.asarray(res.W, dtype=np.float64), res.objective, res.n_iter
        coefs[k] = W
    return PathResult(alphas=alphas, coefs=coefs, objectives=objectives, gaps=gaps, n_iter=n_iter,
                      n_screened=n_screened, time=time.perf_counter() - start)
