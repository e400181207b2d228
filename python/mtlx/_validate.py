"""Every check of user input, with messages that name the task, the array and the shapes.

Validation happens once, at the edge; the solver loop trusts what passed here.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _core

__all__ = [
    "as_real_array",
    "check_finite",
    "first_nonfinite_row",
    "nonfinite_error",
    "check_labels",
    "check_nonnegative",
    "core_dtype",
    "resolve_task_weights",
]


def _describe(where: str, name: str) -> str:
    return f"{where}: {name}" if where else name


def as_real_array(a, name: str, where: str = "", ndim: int | None = None) -> np.ndarray:
    """View ``a`` as a real numeric ndarray, rejecting sparse, complex and object input.

    Parameters
    ----------
    a : array_like
    name : str
        Name of the array in messages ("X", "y").
    where : str
        Context in messages ("task 3").
    ndim : int, optional
        Required number of dimensions.
    """
    label = _describe(where, name)
    if hasattr(a, "tocsr") and hasattr(a, "nnz"):
        raise TypeError(f"{label} is a scipy.sparse matrix; mtlx needs a dense array (use .toarray())")
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{label} could not be converted to a numeric array: {exc}") from None
    if arr.dtype.kind == "c":
        raise TypeError(f"{label} has complex dtype ({arr.dtype}); only real numbers are supported")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{label} has {arr.dtype} dtype; a numeric (float or integer) array is required")
    if ndim is not None and arr.ndim != ndim:
        hint = " (reshape a single feature with X.reshape(-1, 1))" if name == "X" and arr.ndim == 1 else ""
        raise ValueError(f"{label} must be {ndim}-D, got shape {arr.shape}{hint}")
    return arr


def core_dtype(arrays) -> np.dtype:
    """float32 when every floating array is float32 (integers follow along), else float64."""
    kinds = [a.dtype for a in arrays]
    floats = [k for k in kinds if k.kind == "f"]
    if floats and all(k == np.float32 for k in floats):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def first_nonfinite_row(a: np.ndarray, n_threads: int = 1) -> int:
    """Index of the first row of ``a`` (C-contiguous float, 1-D or 2-D) holding NaN/inf, or -1."""
    return _core.first_nonfinite_row(a.reshape(a.shape[0], -1), n_threads)


def nonfinite_error(values: np.ndarray, name: str, where: str, row: int) -> ValueError:
    """The error for a non-finite entry found in row ``row`` (whose entries are ``values``)."""
    what = "NaN" if np.isnan(values).any() else "infinity"
    return ValueError(f"{_describe(where, name)} contains {what} (row {row}); inputs must be finite")


def check_finite(a: np.ndarray, name: str, where: str = "", n_threads: int = 1) -> None:
    """Raise ValueError naming the first row of ``a`` (C-contiguous float) with NaN/inf."""
    bad = first_nonfinite_row(a, n_threads)
    if bad >= 0:
        raise nonfinite_error(a[bad], name, where, bad)


def check_labels(y: np.ndarray, where: str) -> None:
    """Logistic targets must be -1 or +1."""
    ok = (y == 1) | (y == -1)
    if not ok.all():
        found = np.unique(y[~ok])[:5]
        raise ValueError(
            f"{where}: y holds labels {found.tolist()} but the logistic loss needs labels in {{-1, +1}}"
        )


def check_nonnegative(value, name: str) -> float:
    """A finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return value


def resolve_task_weights(task_weights, n_samples: np.ndarray) -> np.ndarray:
    """Task weights c_t as float64 of shape (T,).

    ``"mean"`` gives 1/m_t, ``"sum"`` gives 1, an array gives itself (finite, >= 0, length T).
    """
    T = len(n_samples)
    if isinstance(task_weights, str):
        if task_weights == "mean":
            return 1.0 / n_samples.astype(np.float64)
        if task_weights == "sum":
            return np.ones(T)
        raise ValueError(f"task_weights must be 'mean', 'sum' or an array of {T} numbers, got {task_weights!r}")
    c = as_real_array(task_weights, "task_weights").astype(np.float64).ravel()
    if np.ndim(task_weights) != 1 or c.shape[0] != T:
        raise ValueError(f"task_weights has shape {np.shape(task_weights)}, expected ({T},) (one weight per task)")
    bad = np.flatnonzero(~np.isfinite(c) | (c < 0))
    if bad.size:
        raise ValueError(f"task_weights[{bad[0]}] = {c[bad[0]]}: task weights must be finite and >= 0")
    return np.ascontiguousarray(c)
