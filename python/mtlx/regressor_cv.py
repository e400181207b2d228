"""MultiTaskRegressorCV: the penalty strength chosen by K-fold cross-validation along a path.

Each fold solves the whole regularization path on its training part with :func:`mtlx.path`
(warm starts, gap-safe screening, working sets), scores every alpha on the held-out rows, and
the alpha with the lowest mean squared error is refitted on all the data.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.model_selection import check_cv

from .data import TaskData
from .estimators import MultiTaskRegressor
from .paths import alpha_max, path

__all__ = ["MultiTaskRegressorCV"]


class MultiTaskRegressorCV(MultiTaskRegressor):
    """Multi-task least squares with ``alpha`` selected by cross-validation.

    Parameters
    ----------
    penalty : {"l21", "l1", "trace"}, default="l21"
    alphas : array-like, default=None
        Strengths to try; default ``n_alphas`` values from ``alpha_max`` (the smallest alpha
        giving W = 0 on the whole data) down to ``eps * alpha_max``, log-spaced.
    n_alphas : int, default=30
    eps : float, default=1e-3
    cv : int or cross-validation splitter, default=5
        Folds. For one X shared by all tasks, any scikit-learn splitter over its rows; for
        per-task rows, an int: each task's rows are dealt into the folds at random (a task
        with a single row is never held out, so every training part keeps every task).
    fit_intercept : bool, default=True
        An unpenalized intercept per task (handled by centering each task on its training rows).
    task_weights : {"mean", "sum"} or array-like of shape (n_tasks,), default="mean"
    tol : float, default=1e-6
        Relative duality gap of each path solution (l1, l21) or ``tol`` of the solver (trace).
    max_iter : int, default=10000
    n_threads : int, default=None
    random_state : int, default=0
        Seed of the per-task fold assignment.

    Attributes
    ----------
    alpha_ : float
        The chosen strength.
    alphas_ : ndarray of shape (n_alphas,)
    mse_path_ : ndarray of shape (n_alphas, n_folds)
        Mean squared error of every held-out row (all tasks pooled) per alpha and fold.
    coef_, intercept_, n_iter_, objective_history_, n_tasks_, tasks_, n_features_in_, fit_layout_
        Of the final fit at ``alpha_`` on all the data (see :class:`MultiTaskRegressor`).
    """

    def __init__(self, penalty="l21", alphas=None, n_alphas=30, eps=1e-3, cv=5, fit_intercept=True,
                 task_weights="mean", tol=1e-6, max_iter=10_000, n_threads=None, random_state=0):
        self.penalty = penalty
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.task_weights = task_weights
        self.tol = tol
        self.max_iter = max_iter
        self.n_threads = n_threads
        self.random_state = random_state

    def fit(self, X, y=None, task=None):
        """Cross-validate the alphas, then refit the best on all the data (layouts as MultiTaskRegressor)."""
        data = self._fit_data(X, y, task)
        folds = self._folds(data)
        alphas = self._grid(data)
        mse = np.zeros((len(alphas), len(folds)))
        for k, (train, held_out) in enumerate(folds):
            train_data, means = _centered(train, self.fit_intercept)
            res = path(train_data, self.penalty, alphas=alphas, task_weights=self.task_weights, tol=self.tol,
                       max_iter=self.max_iter, n_threads=self.n_threads)
            mse[:, k] = [_held_out_mse(held_out, W, means) for W in res.coefs]
        self.alphas_, self.mse_path_ = alphas, mse
        self.alpha_ = float(alphas[int(np.argmin(mse.mean(axis=1)))])
        final = MultiTaskRegressor(penalty=self.penalty, alpha=self.alpha_, fit_intercept=self.fit_intercept,
                                   task_weights=self.task_weights, tol=self.tol, max_iter=self.max_iter,
                                   n_threads=self.n_threads).fit(data)
        for name in ("coef_", "intercept_", "n_iter_", "objective_history_", "n_tasks_", "tasks_"):
            setattr(self, name, getattr(final, name))
        return self

    def _grid(self, data: TaskData) -> np.ndarray:
        if self.alphas is not None:
            alphas = np.sort(np.asarray(self.alphas, dtype=np.float64))[::-1]
            if alphas.ndim != 1 or alphas.size == 0 or not np.all(alphas > 0):
                raise ValueError(f"alphas must be a non-empty 1-D array of positive numbers, got {self.alphas!r}")
            return alphas
        if not isinstance(self.n_alphas, numbers.Integral) or self.n_alphas < 1:
            raise ValueError(f"n_alphas must be a positive integer, got {self.n_alphas!r}")
        top = alpha_max(_centered(_all_rows(data), self.fit_intercept)[0], self.penalty, self.task_weights,
                        n_threads=self.n_threads)
        if not top > 0:
            raise ValueError("alpha_max is 0 (the targets are constant or orthogonal to X): nothing to select")
        return np.geomspace(top, top * self.eps, self.n_alphas)

    def _folds(self, data: TaskData) -> list:
        """(training part, held-out part) per fold: an (X, Y) pair for one X shared by all tasks
        (never copied per task), else a list of per-task (X_t, y_t)."""
        if data.layout == "shared":
            cv = check_cv(self.cv)
            return [((data.X[tr], data.Y[tr]), (data.X[te], data.Y[te])) for tr, te in cv.split(data.X)]
        if not isinstance(self.cv, numbers.Integral) or self.cv < 2:
            raise ValueError(f"cv must be an int >= 2 for per-task rows, got {self.cv!r}")
        rng = np.random.default_rng(self.random_state)
        tasks = _all_rows(data)
        # Each task's rows dealt into the folds at random; a single row is never held out (-1).
        fold_of = [rng.permutation(len(y)) % self.cv if len(y) >= 2 else np.full(len(y), -1) for _, y in tasks]
        return [([(X[f != k], y[f != k]) for (X, y), f in zip(tasks, fold_of)],
                 [(X[f == k], y[f == k]) for (X, y), f in zip(tasks, fold_of)]) for k in range(self.cv)]


def _all_rows(data: TaskData):
    if data.layout == "shared":
        return (data.X, data.Y)
    return [data.task(t) for t in range(data.n_tasks)]


def _centered(part, fit_intercept: bool):
    """A fold's training part as TaskData, centred on its own means (the intercepts' optimum),
    and those means: ``(mean of X per task, mean of y per task)``, or None without intercepts."""
    if isinstance(part, tuple):  # one X for every task
        X, Y = part
        if not fit_intercept:
            return TaskData.from_shared(X, Y), None
        mx, my = X.mean(axis=0), Y.mean(axis=0)
        return TaskData.from_shared(X - mx, Y - my), (np.tile(mx, (Y.shape[1], 1)), my)
    if not fit_intercept:
        return TaskData.from_tasks(part), None
    mx = np.array([X.mean(axis=0) for X, _ in part])
    my = np.array([y.mean() for _, y in part])
    return TaskData.from_tasks([(X - mx[t], y - my[t]) for t, (X, y) in enumerate(part)]), (mx, my)


def _held_out_mse(part, W: np.ndarray, means) -> float:
    """Pooled squared error of the held-out rows; intercepts b_t = mean(y_t) - mean(x_t) . w_t."""
    b = np.zeros(W.shape[1]) if means is None else means[1] - np.einsum("tj,jt->t", means[0], W)
    if isinstance(part, tuple):
        X, Y = part
        R = X @ W + b - Y
        return float(np.sum(R * R) / R.size)
    total, count = 0.0, 0
    for t, (X, y) in enumerate(part):
        r = X @ W[:, t] + b[t] - y
        total += float(r @ r)
        count += len(y)
    return total / count
