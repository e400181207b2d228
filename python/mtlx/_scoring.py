"""The estimators' ``score``: R^2 and accuracy over the three layouts, missing labels left out.

Shared by the coupled linear estimators and the shared-trunk ones: each passes its ``predict``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import r2_score

from ._layouts import is_input_list, is_task_list, missing_labels

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
    school benchmark's explained variance); missing labels (NaN, or None or pandas' NA in an
    object array, as fit reads them) left out."""
    pairs = per_task_pairs(X, y)
    if pairs is not None:
        pred = predict([X_t for X_t, _ in pairs])
        y, labelled = _numeric(np.concatenate([np.ravel(y_t) for _, y_t in pairs]))
        w = pooled_weights(sample_weight, [len(p) for p in pred])
        if not labelled.any():
            raise ValueError("y has no label to score: every entry is missing (NaN, None or NA)")
        return r2_score(y[labelled], np.concatenate(pred)[labelled], sample_weight=None if w is None else w[labelled])
    pred = predict(X, task)
    y, labelled = _numeric(y)
    if not labelled.all():
        # Missing labels: each task's R^2 over its labelled rows, averaged uniformly.
        y2, p2 = y.reshape(len(y), -1), pred.reshape(len(pred), -1)
        w = None if sample_weight is None else row_weights(sample_weight, y2)
        scores = []
        for t in range(y2.shape[1]):
            rows = ~np.isnan(y2[:, t])
            if rows.any():
                scores.append(r2_score(y2[rows, t], p2[rows, t], sample_weight=None if w is None else w[rows, t]))
        if not scores:
            raise ValueError("y has no label to score: every entry is missing (NaN, None or NA)")
        return float(np.mean(scores))
    return r2_score(y, pred, sample_weight=sample_weight)


def accuracy(predict, X, y, task, sample_weight) -> float:
    """Mean accuracy over every prediction (all rows of all tasks), weighted by ``sample_weight``
    (for one X shared by all tasks each row's weight counts for every task); missing labels
    (NaN, or None or pandas' NA in an object array) count for nothing."""
    pairs = per_task_pairs(X, y)
    if pairs is not None:
        pred = predict([X_t for X_t, _ in pairs])
        hits, labelled = _hits(np.concatenate(pred), np.concatenate([np.ravel(y_t) for _, y_t in pairs]))
        return _average(hits, _without_missing(pooled_weights(sample_weight, [len(p) for p in pred]), labelled))
    pred = np.asarray(predict(X, task))
    y = np.asarray(y)
    if y.size != pred.size:
        raise ValueError(f"y has shape {y.shape}, but the predictions for X have shape {pred.shape}")
    hits, labelled = _hits(pred, y.reshape(pred.shape))
    return _average(hits, _without_missing(row_weights(sample_weight, hits), labelled))


def _labelled(y: np.ndarray) -> np.ndarray:
    """Which entries of y hold a label: not NaN, nor None or pandas' NA in an object array (what
    fit takes for a missing label, :func:`mtlx._layouts.missing_labels`)."""
    return ~missing_labels(y.reshape(-1)).reshape(y.shape)


def _numeric(y):
    """(y as float64 with NaN where a label is missing, which entries are labelled): regression
    targets as fit reads them, pandas' nullable arrays (pd.NA) included."""
    y = np.asarray(y)
    labelled = _labelled(y)
    if not labelled.all() or y.dtype.kind == "O":
        y = np.where(labelled, y, np.nan).astype(np.float64)
    return y, labelled


def _hits(pred: np.ndarray, y: np.ndarray):
    """(pred == y where y holds a label, False elsewhere; which entries do): a missing label
    compared with == would be a miss (NaN) or ambiguous (pd.NA)."""
    labelled = _labelled(y)
    hits = np.zeros(pred.shape, dtype=bool)
    hits[labelled] = pred[labelled] == y[labelled]
    return hits, labelled


def _without_missing(weights, labelled):
    """Row weights (None: all 1) at 0 where the label is missing."""
    if labelled.all():
        return weights
    return np.where(labelled, 1.0 if weights is None else weights, 0.0)


def _average(hits, weights) -> float:
    if weights is not None and not np.sum(weights) > 0:
        raise ValueError("y has no label to score: every entry is missing (NaN, None or NA) or has weight 0")
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
