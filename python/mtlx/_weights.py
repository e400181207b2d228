"""Weighted least squares as an unweighted problem, for the engines that read Gram statistics.

For the squared loss, ``sum_i s_i (y_i - x_i . w - b)^2`` equals the unweighted loss of the rows
``sqrt(s_i) x_i`` and targets ``sqrt(s_i) y_i``; with an intercept, centering X and y by their
weighted means first eliminates b exactly (``b = ybar - xbar . w`` at the optimum over b, and
the loss left is the centered one), whatever the penalty on W. So working sets, ADMM, the Gram
form, the factored engine and the duality-gap certificate take weighted least squares unchanged,
at the price of one scaled copy of X (as scikit-learn's linear models make for sample weights).
Per-entry weights of the shared layout (missing labels) differ per task and would need X once
per task, and a sparse X cannot be centred without densifying it: for those the working-set
engine weighs its per-task Gram rows itself (X' S_t X), and the other engines' kernels weigh
each entry.
"""

from __future__ import annotations

import numpy as np

from ._validate import resolve_task_weights
from .data import TaskData

__all__ = ["UnweightedEquivalent"]


class UnweightedEquivalent:
    """The unweighted problem of a row-weighted squared-loss problem, and the way back.

    Parameters
    ----------
    data : TaskData
        Row-weighted data (stacked, or shared with the same weights for every task).
    task_weights : {"mean", "sum"} or array_like
        Resolved on ``data``'s weight totals, passed on as explicit numbers (``data`` has rows
        of weight 0 that the scaled copy keeps as zero rows: its row counts are not m_t).
    fit_intercept : bool

    Attributes
    ----------
    data : TaskData
        The scaled (and centered, with an intercept) copy, unweighted.
    task_weights : ndarray of shape (T,)
    """

    def __init__(self, data: TaskData, task_weights, fit_intercept: bool):
        if not applies(data):
            raise ValueError("UnweightedEquivalent needs data with one weight per row")
        self.task_weights = resolve_task_weights(task_weights, data.weight_totals)
        self.fit_intercept = bool(fit_intercept)
        dtype = data.dtype
        self.x_means = data.feature_means() if fit_intercept else np.zeros((data.n_tasks, data.n_features))
        if data.layout == "shared":
            root = np.sqrt(data.row_weight.astype(np.float64)).astype(dtype)
            self.y_means = np.average(data.Y.astype(np.float64), axis=0, weights=data.row_weight) if fit_intercept \
                else np.zeros(data.n_tasks)
            X = data.X - self.x_means[0].astype(dtype) if fit_intercept else data.X.copy()
            X *= root[:, None]
            Y = (data.Y - self.y_means.astype(dtype) if fit_intercept else data.Y.copy()) * root[:, None]
            self.data = TaskData(layout="shared", X=np.ascontiguousarray(X, dtype=dtype),
                                 Y=np.ascontiguousarray(Y, dtype=dtype), task_ids=data.task_ids)
            return
        root = np.sqrt(data.sample_weight.astype(np.float64)).astype(dtype)
        X = np.empty_like(data.X)
        y = np.empty_like(data.y)
        self.y_means = np.zeros(data.n_tasks)
        for t in range(data.n_tasks):
            lo, hi = int(data.offsets[t]), int(data.offsets[t + 1])
            X_t, y_t = data.task(t)
            if fit_intercept:
                self.y_means[t] = np.average(y_t.astype(np.float64), weights=data.sample_weight[lo:hi])
                np.subtract(X_t, self.x_means[t].astype(dtype), out=X[lo:hi])
                y[lo:hi] = y_t - dtype.type(self.y_means[t])
            else:
                X[lo:hi] = X_t
                y[lo:hi] = y_t
        X *= root[:, None]
        y *= root
        self.data = TaskData(layout="stacked", X=X, y=y, offsets=data.offsets, task_ids=data.task_ids)

    def intercepts(self, W: np.ndarray) -> np.ndarray:
        """The weighted problem's intercepts at coefficients W (d x T): ``ybar_t - xbar_t . w_t``."""
        if not self.fit_intercept:
            return np.zeros(W.shape[1])
        return self.y_means - np.einsum("tj,jt->t", self.x_means, np.asarray(W, dtype=np.float64))


def applies(data: TaskData) -> bool:
    """Whether ``data`` carries one weight per row (the same for every task of shared X)."""
    if not data.weighted or data.sparse:  # scaling and centring a sparse X would densify it
        return False
    return data.layout == "stacked" or data.row_weight is not None
