"""Cross-validated estimators: the penalty strength chosen by K-fold cross-validation along a path.

Each fold solves the whole regularization path on its training part with :func:`mtlx.path`
(warm starts; gap-safe screening and working sets where they apply), scores every alpha on the
held-out rows, and the best alpha is refitted on all the data. The grid is computed once, on all
the data (as scikit-learn's ``*CV`` estimators do), so every fold scores the same alphas.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.model_selection import check_cv

from ._validate import check_int, check_real
from .data import TaskData
from .estimators import MultiTaskClassifier, MultiTaskRegressor
from .paths import alpha_grid, check_alphas, path

__all__ = ["MultiTaskClassifierCV", "MultiTaskRegressorCV"]

_COPIED = ("coef_", "intercept_", "n_iter_", "objective_history_", "n_tasks_", "tasks_", "solver_")


def _fold_error(k: int, n_folds: int | None, exc: ValueError) -> ValueError:
    """A fold's training rows that cannot be fitted, named as such: the data as a whole may fit
    (a task whose labels all fall in one block of rows, held out together by an unshuffled split)."""
    of = "" if n_folds is None else f" of {n_folds}"
    return ValueError(f"cross-validation fold {k + 1}{of}: its training rows cannot be fitted ({exc}). The folds "
                      "split the rows in order unless told otherwise: a shuffled splitter, such as "
                      "cv=KFold(5, shuffle=True, random_state=0), or fewer folds spreads each task's labels")


class _CrossValidated:
    """The fold machinery shared by the CV estimators; subclasses score a fold's held-out rows."""

    def fit(self, X, y=None, task=None, sample_weight=None):
        """Cross-validate the alphas, then refit the best on all the data (layouts as the base estimator).

        ``sample_weight`` (as for the base estimator's ``fit``) weighs the rows in every fold's fit
        and in the held-out scores; NaN in a shared ``y`` (missing labels) is left out of both.

        Returns
        -------
        self
        """
        if self.n_alphas != "deprecated":
            warnings.warn("n_alphas is deprecated: pass the number of alphas as alphas=int (scikit-learn 1.9's "
                          "spelling)", FutureWarning, stacklevel=2)
        self._check_params()
        data = self._fit_data(X, y, task, sample_weight)
        alphas = self._grid(data)
        folds = self._folds(data)
        scores = np.zeros((len(alphas), len(folds)))
        for k, (train, held_out) in enumerate(folds):
            try:
                res = path(train, self.penalty, loss=self._column_losses(), alphas=alphas, l2=self.l2,
                           fit_intercept=self.fit_intercept, task_weights=self._column_task_weights(),
                           tol=self.tol, max_iter=self.max_iter, n_threads=self.n_threads)
            except ValueError as exc:
                raise _fold_error(k, len(folds), exc) from exc
            scores[:, k] = [self._fold_score(held_out, W, b) for W, b in zip(res.coefs, res.intercepts)]
        self.alphas_ = alphas
        self._store_scores(scores)
        # Ties go to the strongest regularization (the first alpha of the decreasing grid).
        self.alpha_ = float(alphas[int(np.argmax(self._criterion(scores)))])
        final = self._base(penalty=self.penalty, alpha=self.alpha_, l2=self.l2, fit_intercept=self.fit_intercept,
                           task_weights=self.task_weights, tol=self.tol, max_iter=self.max_iter,
                           n_threads=self.n_threads)
        if self._grouped():  # the columns of a multiclass task: refit from the inputs, which say they form one
            final.fit(X, y, task, sample_weight=sample_weight)
        else:
            final.fit(data)
        for name in _COPIED:
            setattr(self, name, getattr(final, name))
        if hasattr(final, "components_"):  # (a superposition's blocks)
            self.components_ = final.components_
        elif hasattr(self, "components_"):
            del self.components_
        return self

    def _check_params(self):
        pen = super()._check_params()
        if self.n_alphas != "deprecated":
            check_int(self.n_alphas, "n_alphas", 1)
        if not (isinstance(self.alphas, numbers.Integral) and not isinstance(self.alphas, bool)):
            check_alphas(self.alphas)
        else:
            check_int(self.alphas, "alphas", 1)
        check_real(self.eps, "eps", 0.0, low_open=True)
        return pen

    def _grid(self, data: TaskData) -> np.ndarray:
        if isinstance(self.alphas, numbers.Integral):
            n = self.alphas if self.n_alphas == "deprecated" else check_int(self.n_alphas, "n_alphas", 1)
            return alpha_grid(data, self.penalty, n, self.eps, loss=self._column_losses(),
                              task_weights=self._column_task_weights(), fit_intercept=self.fit_intercept,
                              n_threads=self.n_threads)
        return check_alphas(self.alphas)

    def _folds(self, data: TaskData) -> list:
        """(training TaskData, held-out part) per fold. For one X shared by all tasks, any
        scikit-learn splitter over its rows (never copying X per task); for per-task rows, an
        int: each task's rows are dealt into the folds at random (see :meth:`_deal`)."""
        if data.layout == "shared":
            groups = self._column_groups(data.n_tasks)
            single = len(groups) == 1  # one task (its columns: one, or one per class)
            labels = None
            if single:
                labels = data.Y[:, 0] if data.n_tasks == 1 else np.argmax(data.Y, axis=1)  # (stratify by class)
            cv = check_cv(self.cv, labels, classifier=self._stratified and single)
            split = cv.split(data.X, labels)
            S = data.sample_weight
            folds = []
            for k, (tr, te) in enumerate(split):
                try:
                    train = data.take_rows(tr)
                except ValueError as exc:
                    raise _fold_error(k, None, exc) from exc
                folds.append((train, (data.X[te], data.Y[te], None if S is None else S[te])))
            return folds
        if not isinstance(self.cv, numbers.Integral) or isinstance(self.cv, bool) or self.cv < 2:
            raise ValueError(f"cv must be an int >= 2 for per-task rows, got {self.cv!r}")
        rng = np.random.default_rng(self.random_state)
        tasks = [(*data.task(t), _ones_if_none(data.task_weights_of(t), data.n_samples[t]))
                 for t in range(data.n_tasks)]
        fold_of = [None] * data.n_tasks
        for start, stop in self._column_groups(data.n_tasks):
            # A multiclass task's columns hold the same rows: one deal, by class, for all of them.
            labels = tasks[start][1] if stop - start == 1 else \
                np.argmax(np.column_stack([tasks[c][1] for c in range(start, stop)]), axis=1)
            fold = self._deal(labels, rng)
            fold_of[start:stop] = [fold] * (stop - start)
        return [(TaskData.from_tasks([(X[f != k], y[f != k]) for (X, y, _), f in zip(tasks, fold_of)],
                                     task_ids=data.task_ids,
                                     sample_weight=None if not data.weighted else
                                     [s[f != k] for (_, _, s), f in zip(tasks, fold_of)]),
                 [(X[f == k], y[f == k], s[f == k]) for (X, y, s), f in zip(tasks, fold_of)])
                for k in range(self.cv)]

    def _deal(self, y: np.ndarray, rng) -> np.ndarray:
        """The fold of each row of one task: shuffled and dealt round-robin; a single row is never held
        out (-1), so every training part keeps every task."""
        if len(y) < 2:
            return np.full(len(y), -1)
        return rng.permutation(len(y)) % self.cv

    def _grouped(self) -> bool:
        """Whether some task spans several columns of W (a multiclass task)."""
        return bool(getattr(self, "_is_multinomial", lambda: False)())

    def _column_groups(self, n_columns: int) -> list:
        """The (start, stop) columns of each task: one column each, K for a multiclass task."""
        return self._column_ranges() if self._grouped() else [(c, c + 1) for c in range(n_columns)]

    def _margins_of(self, part, W: np.ndarray, b: np.ndarray):
        """(margins, targets, weights) of the held-out rows, pooled over tasks (weights 0 for
        missing labels; all 1 when unweighted)."""
        if isinstance(part, tuple):
            X, Y, S = part
            return (X @ W + b).ravel(), Y.ravel(), np.ones(Y.size) if S is None else S.ravel()
        z = [X @ W[:, t] + b[t] for t, (X, _, _) in enumerate(part)]
        return np.concatenate(z), np.concatenate([y for _, y, _ in part]), np.concatenate([s for _, _, s in part])


def _ones_if_none(weights, n: int) -> np.ndarray:
    return np.ones(n) if weights is None else weights


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """Mean of ``values`` under ``weights`` (entries of weight 0, missing labels, left out)."""
    counted = weights > 0
    return float(np.average(values[counted], weights=weights[counted])) if counted.any() else 0.0


class MultiTaskRegressorCV(_CrossValidated, MultiTaskRegressor):
    """Multi-task least squares with ``alpha`` selected by cross-validation (any penalty).

    Parameters
    ----------
    penalty : str or mtlx.penalties.Penalty, default="l21"
        Any formulation; its relative weights stay fixed while alpha varies.
    alphas : int or array-like, default=30
        The number of alphas of the default grid (from ``alpha_max`` of the whole data down to
        ``eps * alpha_max``, log-spaced; see :func:`mtlx.alpha_grid`), or the alphas to try.
    n_alphas : int, default="deprecated"
        Deprecated: use ``alphas=int`` (scikit-learn 1.9's spelling).
    eps : float, default=1e-3
    cv : int or cross-validation splitter, default=5
        Folds. For one X shared by all tasks, any scikit-learn splitter over its rows; for
        per-task rows, an int: each task's rows are dealt into the folds at random (a task
        with a single row is never held out, so every training part keeps every task).
    l2, fit_intercept, task_weights, tol, max_iter, n_threads :
        As for :class:`MultiTaskRegressor`.
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

    _base = MultiTaskRegressor
    _stratified = False

    def __init__(self, penalty="l21", alphas=30, n_alphas="deprecated", eps=1e-3, cv=5, l2=0.0, fit_intercept=True,
                 task_weights="mean", tol=1e-6, max_iter=10_000, n_threads=None, random_state=0):
        self.penalty = penalty
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.cv = cv
        self.l2 = l2
        self.fit_intercept = fit_intercept
        self.task_weights = task_weights
        self.tol = tol
        self.max_iter = max_iter
        self.n_threads = n_threads
        self.random_state = random_state

    # Parameters of the base estimator that a CV estimator does not take.
    alpha, solver, warm_start, verbose, callback, comm = 0.1, "auto", False, 0, None, None

    def _fold_score(self, part, W, b) -> float:
        z, y, s = self._margins_of(part, W, b)
        return float(_weighted_mean((z - y) ** 2, s))

    def _store_scores(self, scores):
        self.mse_path_ = scores

    def _criterion(self, scores):
        return -scores.mean(axis=1)


class MultiTaskClassifierCV(_CrossValidated, MultiTaskClassifier):
    """Multi-task logistic regression with ``alpha`` selected by cross-validation (any penalty).

    Parameters
    ----------
    penalty : str or mtlx.penalties.Penalty, default="l21"
    alphas : int or array-like, default=30
        The number of alphas of the default grid (from ``alpha_max``: the gradient at W = 0 with
        each task's intercept at its log-odds), or the alphas to try.
    n_alphas : int, default="deprecated"
        Deprecated: use ``alphas=int``.
    eps : float, default=1e-3
    cv : int or cross-validation splitter, default=5
        Folds, stratified per task: each task's rows of each class are shuffled and dealt into
        the folds (a class with one row in a task is never held out, so every training part
        keeps both classes of every task); for one X shared by several tasks, any splitter over
        its rows (a single task: stratified).
    scoring : {"accuracy", "log_loss"}, default="accuracy"
        What the held-out rows are scored by (scikit-learn's LogisticRegressionCV default is
        accuracy); ties go to the larger alpha.
    l2, fit_intercept, task_weights, tol, max_iter, n_threads, random_state :
        As for :class:`MultiTaskRegressorCV`.

    Attributes
    ----------
    alpha_ : float
    alphas_ : ndarray of shape (n_alphas,)
    scores_path_ : ndarray of shape (n_alphas, n_folds)
        Accuracy, or minus the mean log loss, of the held-out rows per alpha and fold.
    coef_, intercept_, classes_, n_iter_, n_tasks_, tasks_, ...
        Of the final fit at ``alpha_`` (see :class:`MultiTaskClassifier`).
    """

    _base = MultiTaskClassifier
    _stratified = True

    def __init__(self, penalty="l21", alphas=30, n_alphas="deprecated", eps=1e-3, cv=5, scoring="accuracy", l2=0.0,
                 fit_intercept=True, task_weights="mean", tol=1e-6, max_iter=10_000, n_threads=None, random_state=0):
        self.penalty = penalty
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.cv = cv
        self.scoring = scoring
        self.l2 = l2
        self.fit_intercept = fit_intercept
        self.task_weights = task_weights
        self.tol = tol
        self.max_iter = max_iter
        self.n_threads = n_threads
        self.random_state = random_state

    alpha, solver, warm_start, verbose, callback, comm = 0.1, "auto", False, 0, None, None

    def _check_params(self):
        if self.scoring not in ("accuracy", "log_loss"):
            raise ValueError(f"The 'scoring' parameter must be 'accuracy' or 'log_loss'. Got {self.scoring!r} instead.")
        return super()._check_params()

    def _deal(self, y, rng):
        fold = np.full(len(y), -1)
        offset = 0
        for label in np.unique(y):
            rows = np.flatnonzero(y == label)
            if len(rows) < 2:
                continue
            fold[rng.permutation(rows)] = (np.arange(len(rows)) + offset) % self.cv
            offset += len(rows)
        return fold

    def _fold_score(self, part, W, b) -> float:
        if self._grouped():
            return self._grouped_fold_score(part, W, b)
        z, y, s = self._margins_of(part, W, b)
        if self.scoring == "log_loss":
            return -float(_weighted_mean(np.logaddexp(0.0, -y * z), s))
        return float(_weighted_mean(np.where(z > 0, 1.0, -1.0) == y, s))

    def _grouped_fold_score(self, part, W, b) -> float:
        """Accuracy, or minus the mean log loss, of held-out rows with multiclass tasks: per task
        (group of columns), its rows' scores, then the predicted class (argmax) or the softmax."""
        values, weights = [], []
        for start, stop in self._column_groups(W.shape[1]):
            if isinstance(part, tuple):
                X, Y, S = part
                Z, T = X @ W[:, start:stop] + b[start:stop], Y[:, start:stop]
                s = np.ones(len(Y)) if S is None else S[:, start]
            else:
                X, _, s = part[start]
                Z = X @ W[:, start:stop] + b[start:stop]
                T = np.column_stack([part[c][1] for c in range(start, stop)])
            counted = s > 0
            Z, T, s = np.asarray(Z, dtype=np.float64)[counted], T[counted], s[counted]
            if stop - start == 1:
                z, y = Z[:, 0], T[:, 0]
                values.append(np.logaddexp(0.0, -y * z) if self.scoring == "log_loss" else
                              (np.where(z > 0, 1.0, -1.0) == y))
            else:
                top = Z.max(axis=1, keepdims=True)
                lse = top[:, 0] + np.log(np.exp(Z - top).sum(axis=1))
                values.append(lse - np.einsum("ik,ik->i", T, Z) if self.scoring == "log_loss" else
                              (np.argmax(Z, axis=1) == np.argmax(T, axis=1)))
            weights.append(s)
        value = _weighted_mean(np.concatenate(values).astype(np.float64), np.concatenate(weights))
        return -value if self.scoring == "log_loss" else value

    def _store_scores(self, scores):
        self.scores_path_ = scores

    def _criterion(self, scores):
        return scores.mean(axis=1)
