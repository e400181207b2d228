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
    "check_nonnegative",
    "core_dtype",
    "resolve_task_weights",
    "task_list_feature_names",
    "check_task_feature_names",
    "reset_feature_names",
    "short_repr",
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
    if arr.dtype.kind == "O" and hasattr(a, "to_numpy"):
        # pandas' nullable dtypes (Float64, Int64) come out of np.asarray as objects: as float64,
        # their missing entries NaN (which the finiteness checks then name, or Y reads as missing).
        try:
            arr = a.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            pass  # (strings and the like: the object dtype is named below)
    if arr.dtype.kind == "c":
        raise TypeError(f"{label} has complex dtype ({arr.dtype}); only real numbers are supported")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{label} has {arr.dtype} dtype; a numeric (float or integer) array is required")
    if ndim is not None and arr.ndim != ndim:
        hint = " (reshape a single feature with X.reshape(-1, 1))" if name == "X" and arr.ndim == 1 else ""
        raise ValueError(f"{label} must be {ndim}-D, got shape {arr.shape}{hint}")
    return arr


def core_dtype(inputs, targets=()) -> np.dtype:
    """The dtype the core runs in: the inputs' (X's stored values). float32 when every floating
    input is float32, every integer array, input or target, is exact in float32 (|v| <= 2^24:
    integer labels and counts follow along) and every floating target within its range; else
    float64. Floating targets take the inputs' dtype, as scikit-learn's linear models cast y to
    X's (float64 targets once made a float32 X run, and be copied, in float64; the GPU path
    already followed X)."""
    floats = [a.dtype for a in inputs if a.dtype.kind == "f"]
    if not floats or any(k != np.float32 for k in floats):
        return np.dtype(np.float64)
    for a in (*inputs, *targets):
        if a.size and a.dtype.kind in "iu" and np.abs(a).max() > 2**24:
            return np.dtype(np.float64)
        if a.size and a.dtype.kind == "f" and a.dtype != np.float32 and np.abs(a).max(
                initial=0.0, where=np.isfinite(a)) > np.finfo(np.float32).max:
            return np.dtype(np.float64)  # (a finite target float32 would make infinite)
    return np.dtype(np.float32)


def first_nonfinite_row(a: np.ndarray, n_threads: int = 1) -> int:
    """Index of the first row of ``a`` (C-contiguous float, 1-D or 2-D) holding NaN/inf, or -1."""
    if a.size == 0:
        return -1
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


def check_nonnegative(value, name: str) -> float:
    """A finite real number >= 0 (Python or numpy scalar; not a bool or a string)."""
    return check_real(value, name, low=0.0)


def check_real(value, name: str, low: float = 0.0, low_open: bool = False) -> float:
    """A finite real number in ``[low, inf)`` (``(low, inf)`` with ``low_open``), as a float.

    Messages follow scikit-learn's parameter validation: "The 'alpha' parameter must be a
    float in the range [0.0, inf). Got -1 instead."
    """
    interval = f"{'(' if low_open else '['}{float(low)}, inf)"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"The {name!r} parameter must be a float in the range {interval}. Got {value!r} "
                        f"({type(value).__name__}) instead.")
    number = float(value)
    if not np.isfinite(number) or number < low or (low_open and number == low):
        raise ValueError(f"The {name!r} parameter must be a float in the range {interval}. Got {value!r} instead.")
    return number


#: The largest thread count accepted (far above any machine's cores; a C int must hold it).
MAX_THREADS = 1 << 16


def check_int(value, name: str, low: int = 1, high: int | None = None) -> int:
    """An integer (Python or numpy; not a bool or an integral float) in ``[low, high]``."""
    interval = f"[{low}, {'inf' if high is None else high}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"The {name!r} parameter must be an int in the range {interval}. Got {value!r} "
                        f"({type(value).__name__}) instead.")
    number = int(value)
    if number < low or (high is not None and number > high):
        raise ValueError(f"The {name!r} parameter must be an int in the range {interval}. Got {value!r} instead.")
    return number


def check_task_ids(ids, n_tasks: int | None = None, name: str = "task_ids") -> np.ndarray:
    """Task ids as a 1-D array of integers, finite numbers or strings (never mixed, never NaN or None).

    Parameters
    ----------
    ids : array_like
    n_tasks : int, optional
        The length required.
    name : str
        The argument's name in messages ("task", "task_ids").
    """
    if isinstance(ids, (list, tuple)):  # numpy would turn [0, "a"] into strings without a word
        kinds = {"str" if isinstance(v, (str, np.str_)) else type(v).__name__ for v in ids}
        if "str" in kinds and len(kinds) > 1:
            raise TypeError(f"{name} must hold integers or strings, all of one kind; got {sorted(kinds)}")
    arr = np.asarray(ids)
    if arr.dtype == object:
        kinds = {type(v).__name__ for v in arr.ravel()}
        values = arr.ravel().tolist()
        if all(isinstance(v, (numbers.Integral,)) and not isinstance(v, bool) for v in values):
            arr = arr.astype(np.int64)
        elif all(isinstance(v, str) for v in values):
            arr = arr.astype(str)
        else:
            raise TypeError(f"{name} must hold integers or strings, all of one kind; got {sorted(kinds)}")
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must hold integers or strings, got booleans")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity; task ids must be integers, strings or finite numbers")
    if arr.dtype.kind not in "iufU":
        raise TypeError(f"{name} must hold integers or strings, got dtype {arr.dtype}")
    if n_tasks is not None and arr.shape != (n_tasks,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n_tasks},) (one id per task)")
    return arr


def check_comm(comm):
    """``comm`` must be an mpi4py communicator (or None)."""
    if comm is None:
        return None
    if not all(hasattr(comm, attr) for attr in ("Get_rank", "Get_size", "Allreduce", "allgather")):
        raise TypeError(f"comm must be an mpi4py communicator (such as mpi4py.MPI.COMM_WORLD) or None, got "
                        f"{type(comm).__name__}")
    return comm


def resolve_task_weights(task_weights, n_samples: np.ndarray) -> np.ndarray:
    """Task weights c_t as float64 of shape (T,).

    ``"mean"`` gives 1/m_t (``n_samples``: the rows per task, or their total sample weight),
    ``"sum"`` gives 1, an array gives itself (finite, >= 0, length T).
    """
    T = len(n_samples)
    if isinstance(task_weights, str):
        if task_weights == "mean":
            return 1.0 / n_samples.astype(np.float64)
        if task_weights == "sum":
            return np.ones(T)
        raise ValueError(f"task_weights must be 'mean', 'sum' or an array of {T} numbers, got {task_weights!r}")
    raw = as_real_array(task_weights, "task_weights")
    if raw.dtype.kind == "b":
        raise TypeError("task_weights must hold numbers, got booleans")
    c = raw.astype(np.float64).ravel()
    if np.ndim(task_weights) != 1 or c.shape[0] != T:
        raise ValueError(f"task_weights has shape {np.shape(task_weights)}, expected ({T},) (one weight per task)")
    bad = np.flatnonzero(~np.isfinite(c) | (c < 0))
    if bad.size:
        raise ValueError(f"task_weights[{bad[0]}] = {c[bad[0]]}: task weights must be finite and >= 0")
    return np.ascontiguousarray(c)


def _column_names(X):
    """A DataFrame's column names as an object array when they are all strings (scikit-learn's
    rule for feature_names_in_), else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not all(isinstance(c, str) for c in columns):
        return None
    return np.asarray(list(columns), dtype=object)


def task_list_feature_names(inputs) -> np.ndarray | None:
    """The column names shared by every task's X in a list of per-task inputs (DataFrames), for
    ``feature_names_in_``; None when any task's X has none (arrays). Tasks whose names differ are
    an error: the features would be matched by position, whatever their names say."""
    names = [_column_names(X_t) for X_t in inputs]
    if not names or any(n is None for n in names):
        return None
    for t, n in enumerate(names[1:], start=1):
        if len(n) != len(names[0]) or np.any(n != names[0]):
            raise ValueError(f"task {t}'s X has the columns {list(n)}, task 0's {list(names[0])}: every task's "
                             "features are matched by position, so give every task the same columns in the same "
                             "order")
    return names[0]


def short_repr(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (with "...") for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reset_feature_names(estimator, names=None) -> None:
    """``feature_names_in_`` set to ``names``, or removed when None (a fit on arrays or a TaskData
    after one on DataFrames must not keep the old names)."""
    if names is not None:
        estimator.feature_names_in_ = names
    elif hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_


def check_task_feature_names(estimator, inputs) -> None:
    """Per-task inputs at predict time against the names seen in fit (a DataFrame whose columns
    differ, reordered or renamed, is an error, as scikit-learn makes it for one X)."""
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is None:
        return
    for t, X_t in enumerate(inputs):
        names = _column_names(X_t)
        if names is not None and (len(names) != len(fitted) or np.any(names != fitted)):
            raise ValueError(f"X[{t}]: the feature names should match those that were passed during fit: got "
                             f"{list(names)}, fitted on {list(fitted)}")
