"""Regularization paths of the squared loss with gap-safe screening and working sets.

For ``F(W) = sum_t c_t/2 ||y_t - X_t w_t||^2 + alpha g(W)`` with g = l1 or l21 the dual is

    D(theta) = sum_t theta_t . y_t - ||theta_t||^2 / (2 c_t)   s.t.   g*(X' theta) <= alpha,

maximized at ``theta_t = c_t r_t`` (the residuals). Rescaling the residuals of any W into the
dual feasible set gives a duality gap ``P(W) - D(theta)``, hence a stopping rule with a
certificate, and a ball around the dual optimum of squared radius ``2 gap`` (D is strongly
concave with modulus 1/c_t per task). A feature whose dual constraint cannot be tight anywhere
in that ball is zero at the optimum and is dropped: the gap-safe rule of Ndiaye, Fercoq,
Gramfort & Salmon (2015). Among the features left, a working set (celer, Massias et al. 2018)
ranked by the distance of their constraint to its bound is solved first and grown until the
gap of the whole problem meets the tolerance.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ._config import resolve_n_threads
from ._validate import resolve_task_weights
from .data import TaskData
from .gram import GramSquaredLoss, use_gram
from .losses import LOSSES
from .objective import loss_grad
from .penalties import get_penalty
from .solver import ConvergenceWarning, solve

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
        FISTA iterations summed over the inner solves.
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


class _DualCertificate:
    """Duality gap and gap-safe screening for one dataset (squared loss, l1 or l21)."""

    def __init__(self, data: TaskData, penalty: str, task_weights, n_threads: int):
        self.data, self.penalty, self.task_weights, self.n_threads = data, penalty, task_weights, n_threads
        self.c = resolve_task_weights(task_weights, data.n_samples)
        X = data.X.astype(np.float64, copy=False)
        if data.layout == "shared":
            norms = np.sqrt(np.einsum("ij,ij->j", X, X))[:, None] * np.ones(data.n_tasks)
        else:
            norms = np.sqrt(np.add.reduceat(X * X, data.offsets[:-1], axis=0)).T
        self.radius_scale = norms * np.sqrt(self.c)  # d x T: sqrt(c_t) ||x_tj||
        # Where the Gram form pays on the whole problem, build it once: gaps then cost
        # O(T d^2), and every working set's Gram matrices are sub-blocks of it.
        codes = np.full(data.n_tasks, LOSSES["squared"], dtype=np.uint8)
        self.gram = GramSquaredLoss(data, "squared", task_weights, n_threads) if use_gram(data, codes, "auto") else None

    def evaluate(self, W: np.ndarray, alpha: float):
        """Primal value, gap and the dual bound of each feature's constraint at W."""
        if self.gram is None:
            f, gW, _ = loss_grad(self.data, W, None, "squared", self.task_weights, n_threads=self.n_threads)
        else:
            Wt = np.ascontiguousarray(W.T, dtype=self.data.dtype)
            gWt = np.empty_like(Wt)
            f = self.gram(Wt, None, gWt, np.empty(self.data.n_tasks, dtype=self.data.dtype))
            gW = gWt.T
        corr = -gW  # X_t' (c_t r_t)
        rows = np.linalg.norm(corr, axis=1) if self.penalty == "l21" else np.abs(corr).max(axis=1)
        scale = max(1.0, rows.max() / alpha) if alpha > 0 else 1.0
        pen = np.linalg.norm(W, axis=1).sum() if self.penalty == "l21" else np.abs(W).sum()
        primal = f + alpha * pen
        # D(theta) with theta = C r / scale: sum c r.y = 2 f + <W, X'C r>.
        cry = 2.0 * f + float(np.sum(W * corr))
        dual = cry / scale - f / scale**2
        gap = max(primal - dual, 0.0)
        # Rounding of P and D (each a few eps of |P|) must not shrink the ball below the truth.
        radius = np.sqrt(2.0 * (gap + 1e-13 * abs(primal)))
        if self.penalty == "l21":
            bound = rows / scale + radius * self.radius_scale.max(axis=1)
        else:
            bound = (np.abs(corr) / scale + radius * self.radius_scale).max(axis=1)
        return primal, gap, bound, rows / scale


def _restrict(data: TaskData, features: np.ndarray, gram: GramSquaredLoss | None) -> TaskData:
    """The same tasks on a subset of the features (validated data: no new checks), with the
    sub-blocks of the whole problem's Gram matrices when it has them."""
    sub = TaskData(layout=data.layout, X=np.ascontiguousarray(data.X[:, features]), y=data.y, Y=data.Y,
                   offsets=data.offsets, task_ids=data.task_ids)
    if gram is not None:
        sub._gram_stats = (np.ascontiguousarray(gram.G[:, features][:, :, features]),
                           np.ascontiguousarray(gram.s[:, features]))
    return sub


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
        Iteration cap of each inner :func:`solve`.
    gram : {"auto", True, False}
        Passed to :func:`solve` for the inner problems (small working sets use the Gram form).
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
    zero_value, zero_grad = _at_zero(data, task_weights, n_threads)
    a_max = _DUAL_NORM[pen.name](zero_grad)
    if alphas is None:
        alphas = a_max * np.geomspace(1.0, eps, int(n_alphas))
    alphas = np.asarray(alphas, dtype=np.float64)
    d, T = data.n_features, data.n_tasks
    coefs = np.zeros((len(alphas), d, T), dtype=data.dtype)
    objectives, gaps = np.empty(len(alphas)), np.full(len(alphas), np.nan)
    n_iter, n_screened = np.zeros(len(alphas), dtype=np.int64), np.zeros(len(alphas), dtype=np.int64)
    cert = _DualCertificate(data, pen.name, task_weights, n_threads) if pen.name != "trace" else None
    W = np.zeros((d, T), dtype=data.dtype)
    kw = dict(loss="squared", penalty=pen.name, task_weights=task_weights, max_iter=max_iter, gram=gram,
              n_threads=n_threads)
    for k, alpha in enumerate(alphas):
        if cert is None and alpha >= a_max:
            # W = 0 satisfies the optimality condition exactly; a solve would end a rounding
            # error away from it (singular values at the prox threshold).
            W[:], objectives[k] = 0.0, zero_value
            continue
        if cert is None:
            res = solve(data, alpha=alpha, tol=tol, W0=W, **kw)
            W, objectives[k], n_iter[k] = np.asarray(res.W), res.objective, res.n_iter
            coefs[k] = W
            continue
        W, objectives[k], gaps[k], n_iter[k], n_screened[k] = _solve_certified(
            data, cert, W, float(alpha), tol, screening, working_set, kw)
        coefs[k] = W
    return PathResult(alphas=alphas, coefs=coefs, objectives=objectives, gaps=gaps, n_iter=n_iter,
                      n_screened=n_screened, time=time.perf_counter() - start)


def _solve_certified(data, cert, W, alpha, tol, screening, working_set, kw):
    """One alpha from the warm start W, until the duality gap is at most ``tol * P``."""
    d = data.n_features
    alive = np.ones(d, dtype=bool)
    inner_tol, ws_size, total_iter = 1e-6, 0, 0
    for _ in range(60):
        primal, gap, bound, dual_score = cert.evaluate(W, alpha)
        if screening:
            alive &= bound >= alpha
            W[~alive] = 0.0
        if gap <= tol * primal:
            break
        candidates = np.flatnonzero(alive)
        if working_set:
            active = np.flatnonzero(np.any(W != 0, axis=1))
            ws_size = min(len(candidates), max(10, 2 * len(active), 2 * ws_size))
            # Rank by how close each constraint is to its bound (celer's prune-free priority).
            priority = dual_score[candidates]
            priority[np.isin(candidates, active)] = np.inf
            ws = np.sort(candidates[np.argsort(-priority, kind="stable")[:ws_size]])
        else:
            ws = candidates
        sub = _restrict(data, ws, cert.gram) if len(ws) < d or cert.gram is not None else data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = solve(sub, alpha=alpha, tol=inner_tol, W0=W[ws], **kw)
        total_iter += res.n_iter
        W_new = np.zeros_like(W)
        W_new[ws] = res.W
        W = W_new
        # A solve that leaves the gap above tol on the same set needs a tighter inner tolerance.
        if not working_set or ws_size >= len(candidates):
            inner_tol = max(inner_tol * 1e-2, 1e-15)
        else:
            inner_tol = max(inner_tol * 0.1, 1e-15)
    else:
        log.warning("mtlx.path: alpha=%.4g stopped with gap %.3g > tol * P", alpha, gap)
    log.debug("mtlx.path: alpha=%.4g gap %.3g, %d features screened, %d iterations",
              alpha, gap, int(d - alive.sum()), total_iter)
    return W, primal, gap, total_iter, int(d - alive.sum())
