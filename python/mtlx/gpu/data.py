"""TaskData whose X stays in device memory: what ``TaskData.from_*`` build from device arrays, and
what ``device="cuda"`` makes of host data (one copy).

X, the device copy of the targets and the sample weights are what the kernels read. The targets,
the weights and the task ids also have a host copy (O(n T) numbers, made once, never X): the label
checks, the losses' curvatures and the task bookkeeping run on it unchanged. Statistics of X that
the problem needs once (feature means, column norms, the finiteness check) are computed on the
device; only their (T, d) results come back.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp

from .._validate import first_nonfinite_row, nonfinite_error
from ..data import TaskData, _group_by_task, _labelled_entries, _resolve_task_ids, _row_weights, _target_matrix
from .arrays import as_device_matrix, as_device_vector, check_not_mixed, is_device_array

__all__ = ["DeviceTaskData", "device_from_shared", "device_from_stacked", "device_from_tasks", "to_device"]

#: Rows per block when a statistic of X is accumulated in float64 on the device.
_BLOCK_ROWS = 1 << 16


def _on_its_device(method):
    """Runs ``method`` with the data's GPU current (CuPy's operations on its device and stream)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.backend.activate():
            return method(self, *args, **kwargs)
    return wrapper


class DeviceTaskData(TaskData):
    """A :class:`~mtlx.TaskData` with ``X`` on a device (see the module docstring).

    Attributes
    ----------
    backend : CudaBackend
    device : int
        The device index.
    device_targets : device array
        y (n,) or Y (n, T) in X's dtype, as the kernels read it (missing labels as 0).
    device_sample_weight : device array or None
    from_device : bool
        Whether the user passed device arrays (results then come back as device arrays).
    device_X, device_XT : device CSR matrices or None
        A sparse X (moved from the host with ``device="cuda"``) and its transpose, as the kernels
        and products read them (int32 indices; cupyx.scipy.sparse). ``X`` then stays the host CSR
        matrix: the statistics of X needed once (means, column norms, finiteness) run there, where
        the data already are.
    """

    def __init__(self, backend, *, from_device: bool, **arrays):
        super().__init__(**arrays)
        self.backend = backend
        self.device = backend.index
        self.from_device = bool(from_device)
        targets = self.Y if self.layout == "shared" else self.y
        self.device_targets = backend.asarray(targets, dtype=self.dtype)
        self.device_sample_weight = None if self.sample_weight is None else \
            backend.asarray(self.sample_weight, dtype=self.dtype)
        self.device_X = self.device_XT = None
        if sp.issparse(self.X):
            self.device_X = backend.sparse(self.X, "X")
            XT = self.X.T.tocsr()
            XT.sort_indices()  # (each feature's entries in row order: the stacked gradient's search relies on it)
            self.device_XT = backend.sparse(XT, "X's transpose")

    @property
    def sparse(self) -> bool:
        return sp.issparse(self.X)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", device=cuda:{self.device})"

    # ------------------------------------------------------------------ statistics of X, on the device
    @_on_its_device
    def _dense_column_sums(self, lo: int, hi: int, w) -> np.ndarray:
        total = self.backend.zeros(self.n_features, np.float64, "a column sum")
        for start in range(lo, hi, _BLOCK_ROWS):
            block = self.X[start:min(start + _BLOCK_ROWS, hi)]
            if w is None:
                total += block.sum(axis=0, dtype=np.float64)
            else:
                weights = self.backend.asarray(w[start - lo: start - lo + block.shape[0]], dtype=np.float64)
                total += weights @ block.astype(np.float64)
        return self.backend.asnumpy(total)

    @_on_its_device
    def column_sq_norms(self, centered: bool) -> np.ndarray:
        if self.sparse:
            return super().column_sq_norms(centered)
        means = self.feature_means() if centered else None
        out = np.zeros((self.n_tasks, self.n_features))
        for (lo, hi), w, tasks in self._groups():
            acc = self.backend.zeros(self.n_features, np.float64, "a column sum")
            shift = None if means is None else self.backend.asarray(means[tasks[0]], dtype=np.float64)
            for start in range(lo, hi, _BLOCK_ROWS):
                block = self.X[start:min(start + _BLOCK_ROWS, hi)].astype(np.float64)
                if shift is not None:
                    block -= shift
                block *= block
                if w is None:
                    acc += block.sum(axis=0)
                else:
                    acc += self.backend.asarray(w[start - lo: start - lo + block.shape[0]], dtype=np.float64) @ block
            out[tasks] = self.backend.asnumpy(acc)
        return out

    def take_rows(self, rows):
        raise NotImplementedError("selecting rows of device data (cross-validation) runs on the host: pass numpy "
                                  "arrays, or cupy.asnumpy(...) them first")

    @_on_its_device
    def _check_finite(self, n_threads) -> None:
        if self.sparse:
            super()._check_finite(n_threads)
            return
        xp = self.backend.xp
        if self.X.size:
            bad_rows = ~xp.isfinite(self.X).all(axis=1)
            if bool(bad_rows.any()):
                bad = int(xp.argmax(bad_rows))
                values = self.backend.asnumpy(self.X[bad])
                if self.layout == "shared":
                    raise nonfinite_error(values, "X", "", bad)
                t = self.task_of_row(bad)
                raise nonfinite_error(values, "X", f"task {self.task_ids[t]}", bad - int(self.offsets[t]))
        name, targets = ("Y", self.Y) if self.layout == "shared" else ("y", self.y)
        bad = first_nonfinite_row(targets)
        if bad >= 0:
            if self.layout == "shared":
                raise nonfinite_error(targets[bad], name, "", bad)
            t = self.task_of_row(bad)
            raise nonfinite_error(targets[bad], name, f"task {self.task_ids[t]}", bad - int(self.offsets[t]))


def to_device(data: TaskData, backend) -> DeviceTaskData:
    """Host ``data`` on the backend's device: X copied once (its targets and weights too)."""
    if isinstance(data, DeviceTaskData):
        if data.device != backend.index:
            raise ValueError(f"the data are on cuda:{data.device} but the solve asked for cuda:{backend.index}; "
                             "move them with cupy (with cupy.cuda.Device(i): cupy.asarray(...))")
        return data
    X = data.X if data.sparse else backend.asarray(data.X, what="X")  # (a sparse X: its device copy below)
    return DeviceTaskData(backend, from_device=False, layout=data.layout, X=X,
                          y=data.y, Y=data.Y, offsets=data.offsets, task_ids=data.task_ids,
                          sample_weight=data.sample_weight, row_weight=data.row_weight)


def _host(backend, a, name: str, dtype=None):
    """A host copy of a device array (targets, weights, task ids: O(n) numbers)."""
    return None if a is None else np.ascontiguousarray(backend.asnumpy(backend.adopt(a, name)), dtype=dtype)


def device_from_tasks(backend, tasks, task_ids, sample_weight) -> DeviceTaskData:
    """:meth:`TaskData.from_tasks` of device arrays."""
    Xs, ys = [], []
    for t, pair in enumerate(tasks):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"task {t}: expected an (X, y) pair, got {type(pair).__name__}")
        check_not_mixed({f"task {t}: X": pair[0], f"task {t}: y": pair[1]})
        X_t = as_device_matrix(pair[0], f"task {t}: X", backend)
        if Xs and X_t.dtype != Xs[0].dtype:
            raise TypeError(f"task {t}: X is {X_t.dtype} but task 0's X is {Xs[0].dtype}; device tasks share one dtype")
        y_t = as_device_vector(pair[1], f"task {t}: y", backend, X_t.dtype)
        if X_t.shape[0] != y_t.shape[0]:
            raise ValueError(f"task {t}: X has {X_t.shape[0]} rows but y has {y_t.shape[0]} entries")
        if X_t.shape[0] == 0:
            raise ValueError(f"task {t}: X has 0 rows (an empty task); every task needs at least one sample")
        if Xs and X_t.shape[1] != Xs[0].shape[1]:
            raise ValueError(f"task {t}: X has {X_t.shape[1]} features (shape {tuple(X_t.shape)}) but task 0 has "
                             f"{Xs[0].shape[1]} (shape {tuple(Xs[0].shape)})")
        Xs.append(X_t)
        ys.append(y_t)
    counts = np.array([x.shape[0] for x in Xs], dtype=np.int64)
    offsets = np.zeros(len(Xs) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    with backend.activate():
        X = Xs[0] if len(Xs) == 1 else backend.xp.concatenate(Xs)  # stacking the tasks: one copy, on the device
    y = np.concatenate([_host(backend, y_t, "y") for y_t in ys])
    ids = _resolve_task_ids(task_ids, len(Xs))
    weights = None
    if sample_weight is not None:
        if not isinstance(sample_weight, (list, tuple)) or len(sample_weight) != len(Xs):
            raise ValueError(f"sample_weight must be a list of {len(Xs)} arrays (one per task, or None for all-ones)")
        weights = np.ones(int(offsets[-1]), dtype=X.dtype)
        for t, s_t in enumerate(sample_weight):
            if s_t is not None:
                s_host = _host(backend, s_t, f"task {t}: sample_weight")
                weights[offsets[t]: offsets[t + 1]] = _row_weights(s_host, int(counts[t]), f"task {ids[t]}")
    data = DeviceTaskData(backend, from_device=True, layout="stacked", X=X, y=y, offsets=offsets, task_ids=ids,
                          sample_weight=weights)
    return data._checked(None)


def device_from_stacked(backend, X, y, task, sample_weight) -> DeviceTaskData:
    """:meth:`TaskData.from_stacked` of device arrays (``task`` may be a host or a device array)."""
    check_not_mixed({"X": X, "y": y, "sample_weight": sample_weight})
    X = as_device_matrix(X, "X", backend)
    y = _host(backend, as_device_vector(y, "y", backend, X.dtype), "y")
    task = _host(backend, task, "task") if is_device_array(task) else np.asarray(task)
    ids, order, offsets = _group_by_task(task, X.shape[0], y.shape[0])
    weights = None if sample_weight is None else \
        _row_weights(_host(backend, sample_weight, "sample_weight"), X.shape[0], "")
    if not isinstance(order, slice):
        with backend.activate():
            X = X[backend.asarray(order)]  # grouping the rows by task: one gather, on the device
        y = y[order]
        weights = None if weights is None else weights[order]
    data = DeviceTaskData(backend, from_device=True, layout="stacked", X=X, y=np.ascontiguousarray(y),
                          offsets=offsets, task_ids=ids,
                          sample_weight=None if weights is None else np.ascontiguousarray(weights, dtype=X.dtype))
    return data._checked(None)


def device_from_shared(backend, X, Y, task_ids, sample_weight) -> DeviceTaskData:
    """:meth:`TaskData.from_shared` of device arrays."""
    check_not_mixed({"X": X, "Y": Y, "sample_weight": sample_weight})
    X = as_device_matrix(X, "X", backend)
    Y = _host(backend, Y, "Y")
    if Y.dtype.kind not in "fiub":
        raise TypeError(f"Y is a device array of dtype {Y.dtype}; expected real numbers")
    Y = _target_matrix(Y.astype(X.dtype), X.shape[0])
    rows = None if sample_weight is None else \
        _row_weights(_host(backend, sample_weight, "sample_weight"), X.shape[0], "").astype(X.dtype)
    Y, entries, row_weight = _labelled_entries(Y, rows)  # (as on the host: missing labels weigh 0)
    data = DeviceTaskData(backend, from_device=True, layout="shared", X=X, Y=np.ascontiguousarray(Y),
                          task_ids=_resolve_task_ids(task_ids, Y.shape[1]), sample_weight=entries,
                          row_weight=row_weight)
    return data._checked(None)
