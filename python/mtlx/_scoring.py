"""The estimators' ``score``: R^2 and accuracy over the three layouts, missing labels left out.

Shared by the coupled linear estimators and the shared-trunk ones: each passes its ``predict``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import r2_score

from ._layouts import is_input_list, is_task_list

__all__ = ["accuracy", "pooled_weights", "regression_score"]


def per_task_pairs(X, y):
    """``[(X_t, y_t), ...]`` for per-task data: fit's list of pairs, or a list of inputs beside a
    list of as many targets (``score([X_1, X_2], [y_1, y_2])``, as ``predict([X_1, X_2])``); None
    for the other layouts. A list of inputs with any other y is an error: numpy stacked the
    per-task predictions into one 2-D array and scored it against y, a wrong number silently."""
    if is_task_list(X, y):
        return list(X)
    if not is_input_list(X):
        return None
    if not isinstance(y, (list, tuple)) or len(y) != len(X):
        got = f"a list of {len(y)}" if isinstance(y, (list, tuple)) else type(y).__name__
        raise ValueError(f"X is a list of {len(X)} per-task inputs, so y must be a list of as many per-task targets; "
                         f"got {got}")
    for t, (X_t, y_t) in enumerate(zip(X, y)):
        if np.shape(y_t)[:1] != (np.shape(X_t)[0],):
            raise ValueError(f"task {t}: X has {np.shape(X_t)[0]} rows but y has shape {np.shape(y_t)}")
    return list(zip(X, y))


def regression_score(predict, X, y, task, sample_weight) -> float:
    """R^2: per task averaged uniformly for one X shared by every task (scikit-learn's
    multi-output convention), pooled over all rows for stacked rows and per-task lists (the
    school benchmark's explained variance); NaN in a shared ``y`` (a missing label) left out."""
    pairs = per_task_pairs(X, y)
    if pairs is not None:
        X = pairs
        pred = predict([X_t for X_t, _ in X])
        return r2_score(np.concatenate([np.ravel(y_t) for _, y_t in X]), np.concatenate(pred),
                        sample_weight=pooled_weights(sample_weight, [len(p) for p in pred]))
    pred = predict(X, task)
    y = np.asarray(y)
    if y.dtype.kind == "f" and np.isnan(y).any():
        # Missing labels: each task's R^2 over its labelled rows, averaged uniformly.
        y2, p2 = y.reshape(len(y), -1), pred.reshape(len(pred), -1)
        w = None if sample_weight is None else row_weights(sample_weight, y2)
        scores = []
        for t in range(y2.shape[1]):
            rows = ~np.isnan(y2[:, t])
            if rows.any():
                scores.append(r2_score(y2[rows, t], p2[rows, t], sample_weight=None if w is None else w[rows, t]))
        if not scores:
            raise ValueError("y has no label to score: every entry is NaN (a missing label)")
        return float(np.mean(scores))
    return r2_score(y, pred, sample_weight=sample_weight)


def accuracy(predict, X, y, task, sample_weight) -> float:
    """Mean accuracy over every prediction (all rows of all tasks), weighted by ``sample_weight``
    (for one X shared by all tasks each row's weight counts for every task); missing labels
    (NaN in a shared ``y``) count for nothing."""
    pairs = per_task_pairs(X, y)
    if pairs is not None:
        pred = predict([X_t for X_t, _ in pairs])
        hits = np.concatenate([p == np.ravel(y_t) for p, (_, y_t) in zip(pred, pairs)])
        return _average(hits, pooled_weights(sample_weight, [len(p) for p in pred]))
    pred = predict(X, task)
    y = np.asarray(y)
    if y.size != np.size(pred):
        raise ValueError(f"y has shape {y.shape}, but the predictions for X have shape {np.shape(pred)}")
    y = y.reshape(np.shape(pred))
    hits = pred == y
    weights = row_weights(sample_weight, hits)
    if y.dtype.kind == "f" and np.isnan(y).any():
        weights = np.where(np.isnan(y), 0.0, 1.0 if weights is None else weights)
    return _average(hits, weights)


def _average(hits, weights) -> float:
    if weights is not None and not np.sum(weights) > 0:
        raise ValueError("y has no label to score: every entry is NaN (a missing label) or has weight 0")
    return float(np.average(hits, weights=weights))


def pooled_weights(sample_weight, sizes):
    """Per-task lists of row weights (or one array over all rows) as one array over the pooled rows."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (list, tuple)):
        if len(sample_weight) != len(sizes):
            raise ValueError(f"sample_weight is a list of {len(sample_weight)} arrays but X has {len(sizes)} tasks")
        # (None for a task: all 1, as TaskData.from_tasks takes it)
        parts = [np.ones(m) if w is None else np.ravel(np.asarray(w, dtype=np.float64)) for w, m in
                 zip(sample_weight, sizes)]
        for t, (w, m) in enumerate(zip(parts, sizes)):
            if w.shape != (m,):
                raise ValueError(f"sample_weight[{t}] has shape {w.shape}, expected ({m},): one weight per row of "
                                 f"task {t}")
        sample_weight = np.concatenate(parts)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (sum(sizes),):
        raise ValueError(f"sample_weight has shape {w.shape}, expected ({sum(sizes)},): one weight per row")
    return w


def row_weights(sample_weight, hits):
    """Row weights broadcast over the tasks of one X shared by all tasks (None: unweighted)."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (hits.shape[0],):
        raise ValueError(f"sample_weight has shape {w.shape}, expected ({hits.shape[0]},): one weight per row")
    return np.broadcast_to(w[:, None], hits.shape) if hits.ndim == 2 else w
