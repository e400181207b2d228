"""Recognize which of the three multi-task layouts an estimator call received.

``fit`` and ``predict`` accept the same layouts; this module tells them apart once, so the
estimators never guess twice:

* ``"tasks"``: a list of per-task pairs ``[(X_1, y_1), ...]`` (``fit``) or per-task inputs
  ``[X_1, ...]`` (``predict``), each X_t 2-D;
* ``"stacked"``: one ``X`` with a ``task`` id per row;
* ``"shared"``: one ``X`` and ``Y`` of shape (n, T);
* ``"single"``: one ``X`` and a 1-D ``y``: one task (predictions come back 1-D).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._validate import check_task_ids

__all__ = ["group_rows", "is_input_list", "is_task_list", "preview", "task_positions"]


def _is_2d(a) -> bool:
    return getattr(a, "ndim", None) == 2 or (
        isinstance(a, (list, tuple)) and len(a) > 0 and isinstance(a[0], (list, tuple, np.ndarray))
        and np.ndim(a) == 2
    )


def is_task_list(X, y) -> bool:
    """True for ``fit([(X_1, y_1), ...])``: no ``y`` and a sequence of (2-D X_t, y_t) pairs."""
    if y is not None or isinstance(X, np.ndarray) or not isinstance(X, Sequence) or isinstance(X, str):
        return False
    return len(X) > 0 and all(isinstance(p, (tuple, list)) and len(p) == 2 and _is_2d(p[0]) for p in X)


def is_input_list(X) -> bool:
    """True for ``predict([X_1, X_2, ...])``: a sequence whose items are 2-D (arrays, or nested
    lists as fit's pairs take them)."""
    if isinstance(X, np.ndarray) or not isinstance(X, Sequence) or isinstance(X, str) or len(X) == 0:
        return False
    return all(_is_2d(x) for x in X)


def group_rows(positions: np.ndarray):
    """Yield ``(t, rows)`` for each task position present in ``positions``, rows in order."""
    order = np.argsort(positions, kind="stable")
    sorted_pos = positions[order]
    bounds = np.flatnonzero(np.diff(sorted_pos)) + 1
    for rows in np.split(order, bounds):
        if rows.size:
            yield int(positions[rows[0]]), rows


def task_positions(task, n_rows: int, task_ids: np.ndarray) -> np.ndarray:
    """Position in ``task_ids`` (a fitted model's ``tasks_``) of each row's task id, for ``predict``
    and ``score`` on stacked rows; an id not seen in fit is an error."""
    task = check_task_ids(task, name="task") if np.ndim(task) == 1 else np.asarray(task)
    if task.ndim != 1 or task.shape[0] != n_rows:
        raise ValueError(f"task must hold one id per row of X: X has {n_rows} rows, task has shape {task.shape}")
    order = np.argsort(task_ids)
    found = np.searchsorted(task_ids[order], task)
    found = np.minimum(found, len(order) - 1)
    positions = order[found]
    unknown = task_ids[positions] != task
    if unknown.any():
        raise ValueError(f"task id {task[np.argmax(unknown)].tolist()!r} was not seen in fit "
                         f"(the model knows {len(task_ids)} tasks: {preview(task_ids)})")
    return positions


def preview(ids, n: int = 6) -> str:
    """The first few of ``ids`` for a message."""
    ids = list(ids)
    return ", ".join(map(str, ids)) if len(ids) <= n else ", ".join(map(str, ids[:n])) + ", ..."


def missing_labels(y: np.ndarray) -> np.ndarray:
    """Which entries of a task's labels are missing: NaN in a float array; None, NaN or pandas' NA
    in an object array (string labels read from a DataFrame with gaps), which np.unique could not
    sort beside the strings."""
    if y.dtype.kind == "f":
        return np.isnan(y)
    if y.dtype.kind != "O":
        return np.zeros(len(y), dtype=bool)
    return np.fromiter((v is None or (isinstance(v, float) and v != v) or type(v).__name__ == "NAType" for v in y),
                       dtype=bool, count=len(y))
