"""TaskData: the three multi-task data layouts, converted once into the core's store."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ._config import resolve_n_threads
from ._validate import as_real_array, check_task_ids, core_dtype, first_nonfinite_row, nonfinite_error

__all__ = ["TaskData"]

#: Rows per block when a statistic is accumulated over a centered copy of part of X.
_BLOCK_ROWS = 4096


class TaskData:
    """Data of T tasks in the layout the core reads, built by one of the ``from_*`` constructors.

    Two stores exist:

    * ``layout == "stacked"``: each task its own rows. ``X`` (n x d) holds the rows of task 0,
      then task 1, ...; ``y`` (n,) the targets; rows ``offsets[t]:offsets[t+1]`` are task t.
    * ``layout == "shared"``: one ``X`` (n x d) for every task and ``Y`` (n x T); X is stored
      once, never once per task.

    Arrays are C-contiguous, all float32 or all float64 (float32 only when every input is).

    Sample weights (``sample_weight=`` of each constructor) make the loss of task t
    ``c_t sum_i s_i L_t(...)``; with ``task_weights="mean"``, c_t is one over the task's total
    weight, so integer weights fit as repeated rows and a weight of 0 as a dropped row. In the
    shared layout, NaN in Y marks a row not labelled for that task: the task uses only its
    labelled rows (weight 0 elsewhere; X is not copied).

    Attributes
    ----------
    layout : {"stacked", "shared"}
    X : ndarray, shape (n, d)
    y : ndarray, shape (n,)
        Stacked targets (``None`` in the shared layout).
    Y : ndarray, shape (n, T)
        Shared-layout targets (``None`` in the stacked layout).
    offsets : ndarray of int64, shape (T + 1,)
        Row ranges per task (stacked layout; ``None`` for shared).
    task_ids : ndarray, shape (T,)
        The id of each task, in the order of the columns of W.
    sample_weight : ndarray or None
        ``None`` (every weight 1), or the weights the core reads: (n,) per stacked row, or
        (n, T) per entry of the shared layout (the row weights times 0 where Y was NaN).
    row_weight : ndarray of shape (n,) or None
        Shared layout: the per-row weights when they are the same for every task (no missing
        label); ``None`` when unweighted or when tasks differ.
    device : int or None
        The CUDA device holding X (None: the host). Device arrays given to a constructor make a
        :class:`mtlx.gpu.data.DeviceTaskData`, whose X stays on their device.
    """

    device = None
    #: Whether the user passed device arrays (results come back as device arrays).
    from_device = False

    def __init__(self, *, layout, X, y=None, Y=None, offsets=None, task_ids, sample_weight=None, row_weight=None):
        self.layout = layout
        self.X = X
        self.y = y
        self.Y = Y
        self.offsets = offsets
        self.task_ids = task_ids
        self.sample_weight = sample_weight
        self.row_weight = row_weight

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_tasks(cls, tasks: Sequence, task_ids=None, *, sample_weight=None,
                   n_threads: int | None = None) -> TaskData:
        """Tasks each with its own inputs: a sequence of ``(X_t, y_t)``.

        Parameters
        ----------
        tasks : sequence of (array_like (m_t, d), array_like (m_t,))
            Ragged m_t are fine; every X_t has the same d.
        task_ids : array_like of shape (T,), optional
            Global id of each task (default ``0 .. T-1``). Under MPI, each rank passes its own
            tasks with their global ids; a rank without tasks passes ``tasks=[]`` and
            ``task_ids=[]`` (an empty store, see :meth:`empty`).
        sample_weight : sequence of array_like (m_t,), optional
            One non-negative weight per row of each task (``None`` for a task: all 1).
        """
        if isinstance(tasks, np.ndarray) or not isinstance(tasks, Sequence) or isinstance(tasks, str):
            raise TypeError("tasks must be a list of (X_t, y_t) pairs")
        if _device_backend(tasks, sample_weight) is not None:
            from .gpu.data import device_from_tasks

            return device_from_tasks(_device_backend(tasks, sample_weight), tasks, task_ids, sample_weight)
        if len(tasks) == 0 and task_ids is not None and np.size(task_ids) == 0:
            return cls.empty()
        if len(tasks) == 0:
            raise ValueError("tasks is empty: at least one (X_t, y_t) pair is required")
        # (The ids first: every message names a task by its id, as the later checks do.)
        ids = _resolve_task_ids(task_ids, len(tasks))
        Xs, ys = [], []
        for t, pair in enumerate(tasks):
            where = f"task {ids[t]}"
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"{where}: expected an (X, y) pair, got {type(pair).__name__}")
            X_t = _as_inputs(pair[0], where)
            y_t = _as_target_vector(pair[1], where)
            if X_t.shape[0] != y_t.shape[0]:
                raise ValueError(f"{where}: X has {X_t.shape[0]} rows but y has {y_t.shape[0]} entries")
            if X_t.shape[0] == 0:
                raise ValueError(f"{where}: X has 0 rows (an empty task); every task needs at least one sample")
            if X_t.shape[1] != (Xs[0].shape[1] if Xs else X_t.shape[1]):
                raise ValueError(
                    f"{where}: X has {X_t.shape[1]} features (shape {X_t.shape}) "
                    f"but task {ids[0]} has {Xs[0].shape[1]} (shape {Xs[0].shape})"
                )
            Xs.append(X_t)
            ys.append(y_t)
        dtype = core_dtype([_values(x) for x in Xs], ys)
        counts = np.array([x.shape[0] for x in Xs], dtype=np.int64)
        offsets = np.zeros(len(Xs) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        y = np.empty(int(offsets[-1]), dtype=dtype)
        if any(sp.issparse(x) for x in Xs):  # one sparse task makes the store sparse (CSR)
            X = _csr(sp.vstack([sp.csr_matrix(x) if not sp.issparse(x) else x for x in Xs], format="csr"), dtype)
        else:
            X = np.empty((int(offsets[-1]), Xs[0].shape[1]), dtype=dtype)
            for t in range(len(Xs)):
                X[offsets[t] : offsets[t + 1]] = Xs[t]
        for t in range(len(Xs)):
            y[offsets[t] : offsets[t + 1]] = ys[t]
        weights = None
        if sample_weight is not None:
            if isinstance(sample_weight, np.ndarray) or not isinstance(sample_weight, Sequence) or \
                    len(sample_weight) != len(Xs):
                raise ValueError(f"sample_weight must be a list of {len(Xs)} arrays (one per task, or None for "
                                 f"all-ones), got {type(sample_weight).__name__}"
                                 + (f" of length {len(sample_weight)}" if hasattr(sample_weight, "__len__") else ""))
            weights = np.ones(int(offsets[-1]), dtype=dtype)
            for t, s_t in enumerate(sample_weight):
                if s_t is not None:
                    weights[offsets[t]: offsets[t + 1]] = _row_weights(s_t, int(counts[t]), f"task {ids[t]}", dtype)
        data = cls(layout="stacked", X=X, y=y, offsets=offsets, task_ids=ids, sample_weight=weights)
        return data._checked(n_threads)

    @classmethod
    def from_stacked(cls, X, y, task, *, sample_weight=None, n_threads: int | None = None) -> TaskData:
        """Stacked rows with a task id per row (like scikit-learn's ``groups``).

        Parameters
        ----------
        X : array_like, shape (n, d)
        y : array_like, shape (n,)
        task : array_like, shape (n,)
            Task id of each row; tasks are ordered by sorted id. Rows already grouped by
            increasing id are used without a copy.
        sample_weight : array_like of shape (n,), optional
            One non-negative weight per row.
        """
        backend = _device_backend(X, y, sample_weight)
        if backend is not None:
            from .gpu.data import device_from_stacked

            return device_from_stacked(backend, X, y, task, sample_weight)
        X = _as_inputs(X, "")
        y = _as_target_vector(y, "")
        ids, order, offsets = _group_by_task(task, X.shape[0], y.shape[0])
        dtype = core_dtype([_values(X)], [y])
        weights = None
        if sample_weight is not None:
            weights = np.ascontiguousarray(_row_weights(sample_weight, X.shape[0], "", dtype)[order], dtype=dtype)
        X = _csr(X if isinstance(order, slice) else X[order], dtype) if sp.issparse(X) else \
            np.ascontiguousarray(X[order], dtype=dtype)
        y = np.ascontiguousarray(y[order], dtype=dtype)
        data = cls(layout="stacked", X=X, y=y, offsets=offsets, task_ids=ids, sample_weight=weights)
        data._input_rows = order  # (a non-finite entry is named by its row of the caller's X)
        return data._checked(n_threads)

    @classmethod
    def from_shared(cls, X, Y, task_ids=None, *, sample_weight=None, n_threads: int | None = None) -> TaskData:
        """One input matrix shared by all tasks, one target column per task.

        Parameters
        ----------
        X : array_like, shape (n, d)
        Y : array_like, shape (n, T)
            A 1-D ``Y`` is one task. NaN marks a row not labelled for that task (missing label):
            each task uses only its labelled rows.
        task_ids : array_like of shape (T,), optional
        sample_weight : array_like of shape (n,), optional
            One non-negative weight per row (for every task the row is labelled for).
        """
        backend = _device_backend(X, Y, sample_weight)
        if backend is not None:
            from .gpu.data import device_from_shared

            return device_from_shared(backend, X, Y, task_ids, sample_weight)
        X = _as_inputs(X, "")
        Y = _target_matrix(as_real_array(Y, "Y"), X.shape[0])
        dtype = core_dtype([_values(X)], [Y])
        X = _csr(X, dtype) if sp.issparse(X) else np.ascontiguousarray(X, dtype=dtype)
        Y = np.ascontiguousarray(Y, dtype=dtype)
        rows = None if sample_weight is None else _row_weights(sample_weight, X.shape[0], "", dtype).astype(dtype)
        Y, entries, row_weight = _labelled_entries(Y, rows)
        ids = _resolve_task_ids(task_ids, Y.shape[1])
        data = cls(layout="shared", X=X, Y=Y, task_ids=ids, sample_weight=entries, row_weight=row_weight)
        return data._checked(n_threads)

    @classmethod
    def empty(cls, n_features: int = 0, dtype=np.float64) -> TaskData:
        """No task at all: what an MPI rank without tasks holds (more ranks than tasks).

        A distributed :func:`mtlx.solve` gives it the n_features and dtype of the other ranks.

        Parameters
        ----------
        n_features : int, default 0
        dtype : {float64, float32}
        """
        dtype = np.dtype(dtype)
        return cls(layout="stacked", X=np.empty((0, int(n_features)), dtype=dtype), y=np.empty(0, dtype=dtype),
                   offsets=np.zeros(1, dtype=np.int64), task_ids=np.empty(0, dtype=np.int64))

    # ------------------------------------------------------------------ properties
    @property
    def n_tasks(self) -> int:
        """Number of tasks T."""
        return len(self.task_ids)

    @property
    def n_features(self) -> int:
        """Number of features d."""
        return self.X.shape[1]

    @property
    def dtype(self) -> np.dtype:
        """The floating dtype the core runs in."""
        return self.X.dtype

    @property
    def n_samples(self) -> np.ndarray:
        """Samples per task m_t, int64 of shape (T,)."""
        if self.layout == "shared":
            return np.full(self.n_tasks, self.X.shape[0], dtype=np.int64)
        return np.diff(self.offsets)

    @property
    def sparse(self) -> bool:
        """Whether X is a scipy.sparse CSR matrix (kept sparse end to end)."""
        return sp.issparse(self.X)

    @property
    def weighted(self) -> bool:
        """Whether the rows carry sample weights (or the shared layout has missing labels)."""
        return self.sample_weight is not None

    @property
    def weight_totals(self) -> np.ndarray:
        """Total sample weight per task, float64 of shape (T,): m_t when unweighted (what
        ``task_weights="mean"`` divides by)."""
        if self.sample_weight is None:
            return self.n_samples.astype(np.float64)
        if self.layout == "shared":
            return self.sample_weight.sum(axis=0, dtype=np.float64)
        return np.add.reduceat(self.sample_weight.astype(np.float64), self.offsets[:-1]) if self.n_tasks else \
            np.zeros(0)

    def task_weights_of(self, t: int) -> np.ndarray | None:
        """The sample weights of the task at position ``t`` (a view), or None when unweighted."""
        if self.sample_weight is None:
            return None
        if self.layout == "shared":
            return self.sample_weight[:, t]
        return self.sample_weight[self.offsets[t]: self.offsets[t + 1]]

    def _groups(self):
        """(row range, weights (n_rows,) or None, tasks) per group of tasks sharing rows and weights:
        one group for shared X with common row weights, else one per task."""
        if self.layout == "shared":
            if self.sample_weight is None or self.row_weight is not None:
                return [((0, self.X.shape[0]), self.row_weight, list(range(self.n_tasks)))]
            return [((0, self.X.shape[0]), self.sample_weight[:, t], [t]) for t in range(self.n_tasks)]
        return [((int(self.offsets[t]), int(self.offsets[t + 1])), self.task_weights_of(t), [t])
                for t in range(self.n_tasks)]

    def feature_means(self) -> np.ndarray:
        """Mean row of each task, float64 of shape (T, d): weighted by the sample weights (over
        labelled rows only); one mean of X, repeated, for shared X with common weights.

        Accumulated in float64 in blocks of rows (no float64 copy of a float32 X).
        """
        if self._entry_weighted_dense():
            return self._entry_weighted_moments(centered=False, with_squares=False)[0]
        out = np.zeros((self.n_tasks, self.n_features))
        for (lo, hi), w, tasks in self._groups():
            total = self._sparse_column_sums(lo, hi, w, power=1) if self.sparse else self._dense_column_sums(lo, hi, w)
            size = (hi - lo) if w is None else float(np.sum(w, dtype=np.float64))
            out[tasks] = total / size if size > 0 else 0.0
        return out

    def column_sq_norms(self, centered: bool, means=None) -> np.ndarray:
        """``sum_i s_i (X_t[i, j] - xbar_tj)^2`` (or uncentered), float64 of shape (T, d).

        One pass over X in blocks of rows (no centered copy of X); shared X with common weights
        computes one row and repeats it. ``means``: :meth:`feature_means`, where the caller has them
        (otherwise computed here, one more pass).
        """
        if self._entry_weighted_dense():
            return self._entry_weighted_moments(centered)[1]
        if centered and means is None:
            means = self.feature_means()
        out = np.zeros((self.n_tasks, self.n_features))
        if self.sparse:
            return self._sparse_column_sq_norms(means, out)
        for (lo, hi), w, tasks in self._groups():
            acc = np.zeros(self.n_features)
            for start in range(lo, hi, _BLOCK_ROWS):
                block = self.X[start:min(start + _BLOCK_ROWS, hi)]
                if centered:
                    block = block - means[tasks[0]]
                if w is None:
                    acc += np.einsum("ij,ij->j", block, block, dtype=np.float64)
                else:
                    acc += w[start - lo: start - lo + block.shape[0]].astype(np.float64) @ (block * block)
            out[tasks] = acc
        return out

    def _entry_weighted_dense(self) -> bool:
        """A dense shared X whose weights differ per task (missing labels)."""
        return self.layout == "shared" and not self.sparse and self.sample_weight is not None \
            and self.row_weight is None and self.n_tasks > 0 and self.device is None

    def _entry_weighted_moments(self, centered: bool, with_squares: bool = True):
        """(means, sums of squares), float64 (T, d), of a dense shared X with per-entry weights S
        (n x T; the squares only ``with_squares``): each block of rows multiplied by all T weight
        columns at once (S' X, S' (X o X); a pass per task made the working-set engine's set-up 20
        passes at T = 20). Centred, the
        squares are taken about X's plain mean c, then moved to each task's mean m_t:
        sum_i s_i (x_i - m_t)^2 = sum_i s_i (x_i - c)^2 - (1' s) (m_t - c)^2, with little cancellation
        where the tasks' means lie near c."""
        n, d = self.X.shape
        shift = self._dense_column_sums(0, n, None) / n if centered and n else np.zeros(d)
        sums = np.zeros((self.n_tasks, d))
        squares = np.zeros((self.n_tasks, d))
        for start in range(0, n, _BLOCK_ROWS):
            block = self.X[start:start + _BLOCK_ROWS].astype(np.float64) - shift
            weights = self.sample_weight[start:start + _BLOCK_ROWS].astype(np.float64).T
            sums += weights @ block
            if with_squares:
                squares += weights @ (block * block)
        totals = self.weight_totals[:, None]
        offset = np.divide(sums, totals, out=np.zeros_like(sums), where=totals > 0)  # m_t - c
        if centered:
            squares = np.maximum(squares - totals * offset**2, 0.0)
        return shift + offset, squares

    def _sparse_column_sq_norms(self, means, out) -> np.ndarray:
        """column_sq_norms of a CSR X from its stored entries, a block of rows at a time (no
        centered or squared copy of X): sum s x^2 - (sum s) xbar^2 when centered."""
        totals = self.weight_totals
        for (lo, hi), w, tasks in self._groups():
            acc = self._sparse_column_sums(lo, hi, w, power=2)
            if means is not None:
                acc = np.maximum(acc - totals[tasks[0]] * means[tasks[0]] ** 2, 0.0)
            out[tasks] = acc
        return out

    def _dense_column_sums(self, lo: int, hi: int, w) -> np.ndarray:
        """``sum_i s_i X[i, :]`` over rows lo..hi of a dense X, float64 (d,), a block of rows at a time."""
        total = np.zeros(self.n_features)
        for start in range(lo, hi, _BLOCK_ROWS):
            block = self.X[start:min(start + _BLOCK_ROWS, hi)]
            if w is None:
                total += block.sum(axis=0, dtype=np.float64)
            else:
                total += block.T @ w[start - lo: start - lo + block.shape[0]].astype(np.float64)
        return total

    def _sparse_column_sums(self, lo: int, hi: int, w, power: int) -> np.ndarray:
        """``sum_i s_i X[i, j]^power`` over rows lo..hi of a CSR X, float64 (d,), from the stored
        entries a block of rows at a time (no copy of X)."""
        X = self.X
        acc = np.zeros(self.n_features)
        for start in range(lo, hi, _BLOCK_ROWS):
            stop = min(start + _BLOCK_ROWS, hi)
            a, b = int(X.indptr[start]), int(X.indptr[stop])
            values = X.data[a:b].astype(np.float64) ** power
            if w is not None:
                values *= np.repeat(w[start - lo: stop - lo].astype(np.float64), np.diff(X.indptr[start:stop + 1]))
            acc += np.bincount(X.indices[a:b], weights=values, minlength=self.n_features)
        return acc

    def take_rows(self, rows) -> TaskData:
        """The shared-layout data of rows ``rows`` (an index array), weights and task ids kept."""
        if self.layout != "shared":
            raise ValueError("take_rows is for the shared layout (stacked rows belong to tasks)")
        S = None if self.sample_weight is None else np.ascontiguousarray(self.sample_weight[rows])
        X = self.X[rows] if self.sparse else np.ascontiguousarray(self.X[rows])
        data = TaskData(layout="shared", X=X, Y=np.ascontiguousarray(self.Y[rows]),
                        task_ids=self.task_ids, sample_weight=S,
                        row_weight=None if self.row_weight is None else np.ascontiguousarray(self.row_weight[rows]))
        data._check_weight_totals()
        return data

    def targets(self, t: int) -> np.ndarray:
        """The targets of the task at position ``t`` (a view; X's rows are not touched, where
        :meth:`task` slices a sparse X)."""
        if self.layout == "shared":
            return self.Y[:, t]
        return self.y[self.offsets[t]: self.offsets[t + 1]]

    def counted_targets(self, t: int) -> np.ndarray:
        """The targets of task ``t`` that count: weight > 0 (all of them when unweighted)."""
        y, w = self.targets(t), self.task_weights_of(t)
        return y if w is None else y[w > 0]

    def task(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """``(X_t, y_t)`` of the task at position ``t`` (views, no copy)."""
        if self.layout == "shared":
            return self.X, self.Y[:, t]
        lo, hi = self.offsets[t], self.offsets[t + 1]
        return self.X[lo:hi], self.y[lo:hi]

    def task_of_row(self, row: int) -> int:
        """Position of the task that owns stacked row ``row``."""
        return int(np.searchsorted(self.offsets, row, side="right")) - 1

    def __repr__(self) -> str:
        m = self.n_samples
        if not m.size:
            return f"TaskData(no tasks, n_features={self.n_features}, dtype={self.dtype})"
        return (
            f"TaskData(layout={self.layout!r}, n_tasks={self.n_tasks}, n_features={self.n_features}, "
            f"samples per task {m.min()}..{m.max()}, dtype={self.dtype}{', weighted' if self.weighted else ''})"
        )

    def _check_weight_totals(self) -> None:
        """A task whose rows all weigh 0 (or are all unlabelled) has no data to fit."""
        if self.sample_weight is None or not self.n_tasks:
            return
        empty = np.flatnonzero(self.weight_totals <= 0)
        if empty.size:
            t = int(empty[0])
            why = "every row of it is unlabelled (NaN in its column of Y) or has sample weight zero" \
                if self.layout == "shared" else "every row of it has sample weight zero"
            raise ValueError(f"task {self.task_ids[t]}: {why}; every task needs at least one row to fit")

    # ------------------------------------------------------------------ checks
    def _checked(self, n_threads) -> TaskData:
        """Itself, once its values are finite and every task has weight (what each constructor ends with)."""
        self._check_finite(n_threads)
        self._check_weight_totals()
        return self

    def _check_finite(self, n_threads) -> None:
        nt = resolve_n_threads(n_threads)
        targets = ("Y", self.Y) if self.layout == "shared" else ("y", self.y)
        if self.sparse:
            bad = np.flatnonzero(~np.isfinite(self.X.data))
            if bad.size:
                row = int(np.searchsorted(self.X.indptr, bad[0], side="right")) - 1
                what = "NaN" if np.isnan(self.X.data[bad[0]]) else "infinity"
                where = "" if self.layout == "shared" else f"task {self.task_ids[self.task_of_row(row)]}: "
                raise ValueError(f"{where}X (sparse) contains {what} ({self._row_name(row)}); inputs must be finite")
        for name, arr in ((("X", self.X),) if not self.sparse else ()) + (targets,):
            bad = first_nonfinite_row(arr, nt)
            if bad < 0:
                continue
            if self.layout == "shared":
                raise nonfinite_error(arr[bad], name, "", bad)
            t = self.task_of_row(bad)
            what = "NaN" if np.isnan(arr[bad]).any() else "infinity"
            raise ValueError(f"task {self.task_ids[t]}: {name} contains {what} ({self._row_name(bad)}); inputs must be "
                             "finite")

    def _row_name(self, row: int) -> str:
        """Row ``row`` of the stored rows as the caller numbers it: its row of the one X (shared),
        of the stacked X as given (from_stacked; it was the row within the task, which for tasks
        in no particular order pointed at no row of X), or of its task's X_t (from_tasks)."""
        if self.layout == "shared":
            return f"row {row}"
        origin = getattr(self, "_input_rows", None)
        if origin is not None:
            return f"row {row if isinstance(origin, slice) else int(origin[row])}"
        return f"row {row - int(self.offsets[self.task_of_row(row)])}"


def _device_backend(*arrays):
    """The CUDA backend of the device the arrays live on when any is a device array (lists of
    arrays searched too), else None. In a build without CUDA a device array is a RuntimeError
    saying how to rebuild (:func:`mtlx.gpu.arrays.require_cuda`)."""
    from .gpu import arrays as gpu_arrays

    def first_device(items):
        for a in items:
            if type(a).__module__.startswith("cupyx.scipy.sparse"):
                raise TypeError(f"a CuPy sparse matrix ({type(a).__name__}) is not taken as input: pass the "
                                "scipy.sparse matrix (its .get()) with device='cuda', which moves it there once")
            found = first_device(a) if isinstance(a, (list, tuple)) else \
                (a if a is not None and gpu_arrays.is_device_array(a) else None)
            if found is not None:
                return found
        return None

    array = first_device(arrays)
    if array is None:
        return None
    cupy = gpu_arrays.require_cuda("device arrays")
    from .gpu import backend_for

    return backend_for(int(gpu_arrays.as_cupy(array, "X", cupy).device.id))


def _group_by_task(task, n_rows: int, n_targets: int):
    """(sorted task ids, the row order grouping them (a slice when already grouped), offsets) of the
    stacked layout's task column, checked against X's ``n_rows`` and y's ``n_targets``."""
    if np.ndim(task) != 1:
        raise ValueError(f"task must be 1-D (one id per row), got shape {np.shape(task)}")
    task = check_task_ids(task, name="task")
    if not (n_rows == n_targets == task.shape[0]):
        raise ValueError(f"X has {n_rows} rows, y has {n_targets} entries and task has {task.shape[0]}; they must "
                         "match")
    if n_rows == 0:
        raise ValueError("X has 0 rows; at least one sample is required")
    ids, inverse, counts = np.unique(task, return_inverse=True, return_counts=True)
    order = slice(None) if np.all(inverse[1:] >= inverse[:-1]) else np.argsort(inverse, kind="stable")
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return ids, order, offsets


def _target_matrix(Y: np.ndarray, n_rows: int) -> np.ndarray:
    """The shared layout's Y as (n, T) (a 1-D Y is one task), checked against X's ``n_rows``."""
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise ValueError(f"Y must be 2-D (n_samples, n_tasks), got shape {Y.shape}")
    if n_rows != Y.shape[0]:
        raise ValueError(f"X has {n_rows} rows but Y has {Y.shape[0]}")
    if n_rows == 0:
        raise ValueError("X has 0 rows; at least one sample is required")
    if Y.shape[1] == 0:
        raise ValueError("Y has 0 columns; at least one task is required")
    return Y


def _labelled_entries(Y: np.ndarray, rows):
    """(Y, entry weights or None, common row weights or None) of the shared layout: NaN in Y marks
    a row not labelled for that task. Labelled entries keep their row weight, unlabelled ones weigh
    0; the core reads a placeholder 0 target there (in every loss's domain), never the NaN."""
    missing = np.isnan(Y) if Y.dtype.kind == "f" else np.zeros(Y.shape, dtype=bool)
    if missing.any():
        entries = np.where(missing, 0.0, 1.0 if rows is None else rows[:, None]).astype(Y.dtype)
        return np.where(missing, 0.0, Y).astype(Y.dtype), entries, None
    entries = None if rows is None else np.ascontiguousarray(np.broadcast_to(rows[:, None], Y.shape))
    return Y, entries, rows


def _as_target_vector(y, where: str) -> np.ndarray:
    y = as_real_array(y, "y", where)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        label = f"{where}: y" if where else "y"
        raise ValueError(f"{label} must be 1-D (one target per row), got shape {y.shape}")
    return y


def _as_inputs(X, where: str):
    """X as a 2-D real ndarray, or a scipy.sparse matrix/array (checked, not yet converted)."""
    if not sp.issparse(X):
        return as_real_array(X, "X", where, ndim=2)
    label = f"{where}: X" if where else "X"
    if X.ndim != 2:
        raise ValueError(f"{label} must be 2-D, got a sparse array of shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{label} has {X.dtype} dtype; a numeric (float or integer) sparse matrix is required")
    if X.format not in ("csr", "csc", "coo"):
        # DOK has no data array (a dict), LIL one of lists, BSR one of blocks: CSR once, here.
        X = X.tocsr()
    return X


def _values(X) -> np.ndarray:
    """The stored values of X (a sparse matrix's data), for choosing the core's dtype."""
    return X.data if sp.issparse(X) else X


def _csr(X, dtype):
    """X in CSR form in ``dtype``: a CSR matrix or array of that dtype is used as it is (no copy,
    its index dtype kept); CSC and COO are converted once (a copy, as scipy makes). The structure
    is checked, so that the core never reads out of bounds."""
    X = X.tocsr() if X.format != "csr" else X
    if X.dtype != dtype:
        X = X.astype(dtype)
    if X.indices.dtype != X.indptr.dtype or X.indices.dtype not in (np.int32, np.int64):
        X = X.copy()
        X.indices, X.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)
    X.check_format(full_check=True)
    if not (X.data.flags.c_contiguous and X.indices.flags.c_contiguous and X.indptr.flags.c_contiguous):
        X = X.copy()
    return X


def _row_weights(sample_weight, n_rows: int, where: str, dtype=np.float64) -> np.ndarray:
    """Sample weights as a float64 (n_rows,) array: finite and >= 0, and in the data's ``dtype``
    finite and, where positive, nonzero (1e39 is infinite in float32, 1e-50 zero); the first bad
    row named."""
    label = f"{where}: sample_weight" if where else "sample_weight"
    w = as_real_array(sample_weight, "sample_weight", where)
    if w.ndim != 1 or w.shape[0] != n_rows:
        raise ValueError(f"{label} has shape {w.shape}, expected ({n_rows},): one weight per row")
    w = w.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        i = int(bad[0])
        what = "NaN" if np.isnan(w[i]) else ("infinite" if not np.isfinite(w[i]) else f"negative ({w[i]:g})")
        raise ValueError(f"{label}[{i}] is {what}; sample weights must be finite numbers >= 0")
    cast = w.astype(dtype)
    lost = np.flatnonzero(~np.isfinite(cast) | ((w > 0) & (cast == 0)))
    if lost.size:
        i = int(lost[0])
        info = np.finfo(dtype)
        raise ValueError(f"{label}[{i}] = {w[i]:g} is outside what {np.dtype(dtype)} carries (positive weights from "
                         f"{info.smallest_subnormal:.3g} to {info.max:.3g}); rescale the weights or use float64 data")
    return w


def _resolve_task_ids(task_ids, n_tasks: int) -> np.ndarray:
    if task_ids is None:
        return np.arange(n_tasks, dtype=np.int64)
    ids = check_task_ids(task_ids, n_tasks)
    if len(np.unique(ids)) != n_tasks:
        raise ValueError("task_ids must be unique")
    return ids
