"""Datasets on disk: one ``.npz`` file or a folder of ``.npy`` files, in either layout.

=================  ===============================================================
layout             arrays
=================  ===============================================================
stacked            ``X`` (n, d), ``y`` (n,), ``task`` (n,): the task id of each row
shared             ``X`` (n, d), ``Y`` (n, T), optionally ``task_ids`` (T,)
=================  ===============================================================

A dataset with ``task`` is stacked, one without it shared; the targets may be left out of a
dataset that is only predicted on. Targets are numbers, or labels of any kind numpy stores
without pickle (strings, booleans) for classification: :meth:`DatasetFile.read` returns them
as stored, for an estimator's ``fit`` to encode, while :func:`load_dataset` returns a
:class:`~mtlx.TaskData`, which holds numbers only.

Every read checks first that the arrays fit together (``X`` 2-D; ``y`` and ``task`` one
entry per row of ``X``; ``Y`` of shape (n, T); ``task_ids`` one unique id per column of
``Y``), the same whether it reads the whole dataset or a few tasks (``tasks=``), and raises
a ValueError naming the dataset, the array and its shape.

Folders
-------
A folder is memory-mapped, so a process that asks for a few tasks reads only their rows
from disk: this is how each MPI rank loads its own share of a large dataset.

:func:`save_dataset` replaces all the arrays of a folder at once, never one by one, so that
no reader ever sees ``X`` of one version beside ``y`` of another, whenever the writer is
killed. A folder it writes holds::

    current -> v-3f9c0a71e2b84d56    a symbolic link to the complete version
    v-3f9c0a71e2b84d56/              X.npy, y.npy, task.npy: never modified once named
    .lock                            locked by a writer while it writes

A write takes ``.lock`` (an exclusive ``flock``: writers to one folder take turns), writes
every array into a new hidden folder ``.v-<token>.tmp``, syncs it to disk, renames it to
``v-<token>``, and replaces ``current`` with a link to it by one ``rename``: the atomic step.
It then renames the previous version out of sight (``.v-<token>.old``) and deletes it. A
writer killed at any moment leaves ``current`` pointing to the old version or to the new
one; what it leaves behind (a ``.tmp`` or ``.old`` folder, a version no link points to) is
deleted by the next write, which holds the lock and so knows their writer is gone.

A reader resolves ``current`` and opens every array of that version before it reads any.
An open file stays readable when a later write deletes its version, so an open
:class:`DatasetFile` reads the version it opened to the end; a reader that finds its version
gone while opening (a write finished meanwhile) starts again with the new one.

A folder of plain ``X.npy``, ``y.npy``, ``task.npy`` (written by hand, or by mtlx before
versions) is read as it is; the next :func:`save_dataset` to it switches it to versions.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from pathlib import Path

import numpy as np

from ._files import (
    fsync_folder,
    map_npy,
    open_npz,
    read_npz_member,
    remove_stale_temporaries,
    write_atomically,
    write_error,
)
from ._validate import as_real_array, check_finite
from .data import TaskData

__all__ = ["DatasetFile", "load_dataset", "save_dataset", "task_sizes"]

_ARRAY_NAMES = ("X", "y", "task", "Y", "task_ids", "sample_weight") + ("X_data", "X_indices", "X_indptr", "X_shape")
#: A sparse X is stored as its CSR arrays under these names (scipy's own names, prefixed).
_CSR_PARTS = ("X_data", "X_indices", "X_indptr", "X_shape")
_PLAIN_FILES = {f"{name}.npy" for name in _ARRAY_NAMES}  # the arrays of a folder without versions
_CURRENT = "current"
_LOCK = ".lock"
_VERSION = re.compile(r"v-[0-9a-f]{16}")
_STAGING = re.compile(r"\.v-[0-9a-f]{16}\.(tmp|old)")  # a version being written, or being deleted
_LINK_STAGING = ".current.tmp"
_OPEN_ATTEMPTS = 20
_LABEL_KINDS = "biufUS"  # what targets and task ids may hold: numbers, booleans, strings


class DatasetFile:
    """The arrays of a dataset on disk, opened lazily (a folder is memory-mapped).

    All the arrays of one version of a folder are opened together when the object is
    created, so a concurrent :func:`save_dataset` never mixes versions into what it reads.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.npz`` file or a folder of ``.npy`` files.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._arrays = {}
        self._files = {}
        self._archive = None
        self._checked = False
        if self.path.is_dir():
            self._files = _open_folder(self)
            self.names = sorted(self._files)
        elif self.path.is_file():
            try:
                self._archive, self._members = open_npz(self.path, compressed=True)
            except ValueError as exc:
                raise ValueError(f"{self}: not a readable .npz file ({exc})") from None
            self.names = sorted(self._members)
        else:
            raise FileNotFoundError(f"dataset {str(self.path)!r} does not exist (expected an .npz file or a "
                                    "folder of .npy files)")
        # A sparse X (its CSR arrays) is presented as "X", a scipy CSR matrix.
        if "X" not in self.names and all(part in self.names for part in _CSR_PARTS):
            self.names = sorted(set(self.names) - set(_CSR_PARTS) | {"X"})
            self.sparse = True
        else:
            self.sparse = False
        # Targets are optional here (``mtlx predict`` reads inputs only): ``require`` checks them.
        self.layout = "stacked" if "task" in self.names else "shared"
        try:
            self.require("X")
        except ValueError:
            self.close()
            raise

    def require(self, *names: str) -> None:
        """Raise a ValueError naming the first of ``names`` that the dataset lacks."""
        missing = [name for name in names if name not in self.names]
        if missing:
            raise ValueError(f"{self}: missing array {missing[0]!r} (found {self.names or 'no arrays'}); a dataset "
                             "holds X, y, task (stacked rows) or X, Y (one X shared by all tasks)")

    def __str__(self) -> str:
        return f"dataset {str(self.path)!r}"

    def __getitem__(self, name: str) -> np.ndarray:
        self.require(name)
        if name == "X" and self.sparse and name not in self._arrays:
            self._arrays["X"] = self._csr()
        if name not in self._arrays:
            try:
                if self._archive is None:
                    array = map_npy(self._files[name])
                else:
                    array = read_npz_member(self._archive, self._members[name])
            except ValueError as exc:
                raise ValueError(f"{self}: array {name!r} cannot be read: {exc}") from None
            self._arrays[name] = array
        return self._arrays[name]

    def _raw(self, name: str) -> np.ndarray:
        if self._archive is None:
            return map_npy(self._files[name])
        return read_npz_member(self._archive, self._members[name])

    def _csr(self):
        """X from its stored CSR arrays (memory-mapped in a folder): checked, never densified."""
        import scipy.sparse as sp

        try:
            data, indices, indptr, shape = (self._raw(part) for part in _CSR_PARTS)
            if shape.shape != (2,) or shape.dtype.kind not in "iu" or indptr.shape != (int(shape[0]) + 1,):
                raise ValueError(f"X_shape {shape.tolist()} and X_indptr of shape {indptr.shape} do not describe a "
                                 "CSR matrix")
            X = sp.csr_matrix((data, indices, indptr), shape=(int(shape[0]), int(shape[1])))
            X.check_format(full_check=True)
        except ValueError as exc:
            raise ValueError(f"{self}: the sparse X (X_data, X_indices, X_indptr, X_shape) cannot be read: {exc}") \
                from None
        return X

    def check(self) -> None:
        """Raise a ValueError naming the array and its shape when the arrays do not fit together."""
        if self._checked:
            return
        X = self["X"]
        if X.ndim != 2:
            raise ValueError(f"{self}: X must be 2-D (n_samples, n_features), got shape {X.shape}")
        n = X.shape[0]
        if self.layout == "stacked":
            task = self["task"]
            if task.shape != (n,):
                raise ValueError(f"{self}: X has shape {X.shape} and task has shape {task.shape}: one task id per row "
                                 "of X is needed")
            self._check_ids("task")
            if "y" in self.names and self["y"].shape not in ((n,), (n, 1)):
                raise ValueError(f"{self}: X has shape {X.shape} and y has shape {self['y'].shape}: one target per "
                                 "row of X is needed")
        else:
            n_tasks = None
            if "Y" in self.names:
                Y = self["Y"]
                if Y.ndim != 2:
                    raise ValueError(f"{self}: Y must be 2-D (n_samples, n_tasks), got shape {Y.shape}")
                if Y.shape[0] != n or Y.shape[1] == 0:
                    raise ValueError(f"{self}: X has shape {X.shape} and Y has shape {Y.shape}: Y needs one row per "
                                     "row of X and at least one column (task)")
                n_tasks = Y.shape[1]
            if "task_ids" in self.names:
                ids = self["task_ids"]
                if ids.ndim != 1:
                    raise ValueError(f"{self}: task_ids must be 1-D (one id per task), got shape {ids.shape}")
                if n_tasks is not None and ids.shape != (n_tasks,):
                    raise ValueError(f"{self}: task_ids has shape {ids.shape} but Y has {n_tasks} columns: one id per "
                                     "column of Y is needed")
                self._check_ids("task_ids")
                if np.unique(ids).size != ids.size:
                    raise ValueError(f"{self}: task_ids holds an id more than once; task ids must be unique")
        if "sample_weight" in self.names and self["sample_weight"].shape != (n,):
            raise ValueError(f"{self}: X has shape {X.shape} and sample_weight has shape "
                             f"{self['sample_weight'].shape}: one weight per row of X is needed")
        self._checked = True

    def _check_ids(self, name: str) -> None:
        ids = np.asarray(self[name])
        if ids.dtype.kind not in _LABEL_KINDS:
            raise ValueError(f"{self}: {name} has dtype {ids.dtype}; task ids must be numbers or strings")
        if ids.dtype.kind == "f" and not np.isfinite(ids).all():
            raise ValueError(f"{self}: {name} contains NaN or infinity; task ids must be finite")

    def task_ids(self) -> np.ndarray:
        """The task ids in the order a full load puts them."""
        self.check()
        if self.layout == "stacked":
            return np.unique(np.asarray(self["task"]))
        if "task_ids" in self.names:
            return np.asarray(self["task_ids"])
        return np.arange(self["Y"].shape[1] if "Y" in self.names else 1)

    def read(self, tasks=None) -> dict:
        """The dataset's arrays, checked, or the part of them that belongs to some tasks.

        Parameters
        ----------
        tasks : array-like of task ids, optional
            Only these tasks: the rows of a stacked dataset that belong to them, or these
            columns of ``Y``; default all.

        Returns
        -------
        dict of name -> ndarray
            Stacked: ``X``, ``task`` and ``y`` when stored; shared: ``X``, ``task_ids`` and
            ``Y`` when stored; ``sample_weight`` when stored. Targets keep the dtype they were saved with (labels stay
            labels: an estimator's ``fit`` encodes them). A whole folder's arrays are memory
            maps.
        """
        X = self["X"]
        ids = self.task_ids()  # checks the shapes first
        if self.layout == "shared":
            columns = slice(None) if tasks is None else self._positions(ids, tasks)
            arrays = {"X": X, "task_ids": ids[columns]}
            if "Y" in self.names:
                arrays["Y"] = self["Y"] if tasks is None else np.asarray(self["Y"][:, columns])
            if "sample_weight" in self.names:
                arrays["sample_weight"] = np.asarray(self["sample_weight"])
            return arrays
        arrays = {"X": X, "task": np.asarray(self["task"])}
        if "y" in self.names:
            y = self["y"]
            arrays["y"] = y[:, 0] if y.ndim == 2 else y
        if "sample_weight" in self.names:
            arrays["sample_weight"] = self["sample_weight"]
        if tasks is None:
            return arrays
        rows = self.task_rows(tasks)
        # Rows grouped by task (what save_dataset writes from a TaskData) come out as a few
        # contiguous ranges: slicing the memory map then reads exactly those rows from disk.
        return {name: _take_rows(array, rows) for name, array in arrays.items()}

    def task_rows(self, tasks) -> np.ndarray:
        """The rows of a stacked dataset that belong to ``tasks`` (ids), in the file's order; all rows
        of a shared one (its tasks are columns). Unknown or repeated ids are an error."""
        ids = self.task_ids()
        self._positions(ids, tasks)  # refuse unknown ids before reading any row
        if self.layout == "shared":
            return np.arange(self["X"].shape[0])
        return np.flatnonzero(np.isin(np.asarray(self["task"]), np.asarray(tasks)))

    def _positions(self, ids: np.ndarray, tasks) -> np.ndarray:
        """Position in ``ids`` of each of ``tasks``; unknown or repeated ids are an error."""
        tasks = np.atleast_1d(np.asarray(tasks))
        if tasks.ndim != 1:
            raise ValueError(f"{self}: tasks must be a 1-D list of task ids, got shape {tasks.shape}")
        lookup = {v: i for i, v in enumerate(ids.tolist())}
        unknown = [t for t in tasks.tolist() if t not in lookup]
        if unknown:
            raise ValueError(f"{self}: task id {unknown[0]!r} is not in the dataset ({len(ids)} tasks)")
        if len(set(tasks.tolist())) != len(tasks):
            raise ValueError(f"{self}: tasks lists an id more than once")
        return np.array([lookup[t] for t in tasks.tolist()], dtype=np.intp)

    def close(self) -> None:
        """Close the files (arrays already read stay valid)."""
        for f in self._files.values():
            f.close()
        if self._archive is not None:
            self._archive.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def save_dataset(path, X, y=None, task=None, *, task_ids=None, sample_weight=None) -> None:
    """Write a dataset to ``path``: an ``.npz`` file when the name ends in ``.npz``, else a folder.

    A folder is replaced as a whole, atomically: a reader sees the previous dataset or this
    one, never a mix, even if the writer is killed (see the module's notes).

    Parameters
    ----------
    path : str or os.PathLike
    X : TaskData or array-like of shape (n_samples, n_features)
        A :class:`~mtlx.TaskData` (then ``y``, ``task`` and ``task_ids`` stay None): stacked
        data is written as ``X``, ``y``, ``task`` with rows grouped by task (so a later
        ``load_dataset(path, tasks=...)`` reads contiguous row ranges), shared data as ``X``,
        ``Y``, ``task_ids``. Or the inputs, with the targets in ``y``.
    y : array-like of shape (n_samples,) or (n_samples, n_tasks), optional
        Targets: numbers, or labels (strings, booleans) for classification. With ``task``,
        one per row (stacked); without, one column per task of a shared ``X`` (a 1-D ``y`` is
        one task). Leave it out for a dataset that is only predicted on.
    task : array-like of shape (n_samples,), optional
        The task id of each row (stacked layout); rows are written in the order given.
    task_ids : array-like of shape (n_tasks,), optional
        Ids of the columns of ``y`` (shared layout only; default ``0 .. T-1``).
    sample_weight : array-like of shape (n_samples,), optional
        One non-negative weight per row (a weighted TaskData writes its own). NaN in a shared
        ``y`` marks a missing label and is written as it is.
    """
    arrays = _arrays_of(X, y, task, task_ids, sample_weight)
    path = Path(path)
    if path.suffix == ".npz":
        write_atomically(path, arrays)
        return
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"cannot write dataset {str(path)!r}: it is a file, not a folder (name an .npz file "
                              "or a folder)")
    try:
        _write_folder(path, arrays)
    except OSError as exc:
        raise write_error(path, exc) from None


def load_dataset(path, tasks=None, *, sample_weight=None) -> TaskData:
    """Read a dataset written by :func:`save_dataset` (or by hand with the same array names).

    Parameters
    ----------
    path : str or os.PathLike
        ``.npz`` file or folder of ``.npy`` files (memory-mapped).
    tasks : array-like of task ids, optional
        Load only these tasks (the rows of a stacked dataset that belong to them, or these
        columns of ``Y``); default all. The same checks apply as to a full load.
    sample_weight : array-like of shape (n_samples,), optional
        One weight per row of the whole dataset, in its row order, in place of a stored
        ``sample_weight`` array; with ``tasks``, the rows of those tasks take theirs (a memory map
        is read at those rows only).

    Returns
    -------
    TaskData
        Tasks in the order of their sorted ids (stacked) or of ``task_ids`` (shared).

    Raises
    ------
    TypeError
        The targets are labels (strings): a TaskData holds numbers, so read the arrays with
        :meth:`DatasetFile.read` and give them to an estimator's ``fit``, which encodes them.
    """
    with DatasetFile(path) as ds:
        arrays = ds.read(tasks)
        target = "y" if ds.layout == "stacked" else "Y"
        ds.require(target)
        if arrays[target].dtype.kind not in "biuf":
            raise TypeError(f"{ds}: {target} holds labels of dtype {arrays[target].dtype}, but a TaskData holds "
                            "numbers only; read the arrays with DatasetFile(path).read() and pass them to an "
                            "estimator's fit, which encodes labels")
        weights = arrays.get("sample_weight")
        if sample_weight is not None:
            weights = _weights_of_rows(ds, sample_weight, tasks)
        try:
            if ds.layout == "shared":
                return TaskData.from_shared(arrays["X"], arrays["Y"], task_ids=arrays["task_ids"],
                                            sample_weight=weights)
            return TaskData.from_stacked(arrays["X"], arrays["y"], arrays["task"], sample_weight=weights)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{ds}: {exc}") from None


def _weights_of_rows(ds, sample_weight, tasks):
    """The weights (one per row of the whole dataset) of the rows ``read(tasks)`` returns."""
    n_rows = ds["X"].shape[0]
    if np.ndim(sample_weight) != 1 or np.shape(sample_weight)[0] != n_rows:
        raise ValueError(f"{ds}: sample_weight has shape {np.shape(sample_weight)}, expected ({n_rows},): one weight "
                         "per row of the dataset, in its row order")
    return sample_weight if tasks is None else _take_rows(sample_weight, ds.task_rows(tasks))


def task_sizes(path):
    """``(task_ids, rows_per_task)`` of a dataset, reading only its ``task`` column (or ``Y``'s shape).

    This is what a distributed run needs to balance the tasks over ranks before any rank
    reads data.
    """
    with DatasetFile(path) as ds:
        ids = ds.task_ids()  # checks the shapes first
        if ds.layout == "shared":
            return ids, np.full(len(ids), ds["X"].shape[0], dtype=np.int64)
        ids, counts = np.unique(np.asarray(ds["task"]), return_counts=True)
        return ids, counts.astype(np.int64)


def _take_rows(a, rows: np.ndarray):
    import scipy.sparse as sp

    keep = (lambda v: v) if sp.issparse(a) else np.asarray  # (np.asarray of a sparse matrix is an object array)
    if rows.size and rows[-1] - rows[0] + 1 == rows.size:
        return keep(a[rows[0] : rows[-1] + 1])
    return keep(a[rows])


# ------------------------------------------------------------------------------ arrays to save
def _arrays_of(X, y, task, task_ids, sample_weight=None) -> dict:
    """The arrays :func:`save_dataset` writes, checked as a later load checks them."""
    if isinstance(X, TaskData):
        if y is not None or task is not None or task_ids is not None or sample_weight is not None:
            raise ValueError("y, task, task_ids and sample_weight must be None when X is a TaskData (it holds the "
                             "targets, task ids and weights)")
        if X.sparse:
            return _sparse_task_data_arrays(X)
        if X.layout == "shared":
            arrays = {"X": X.X, "Y": X.Y, "task_ids": np.asarray(X.task_ids)}
            if X.weighted:
                S = X.sample_weight
                arrays["Y"] = np.where(S > 0, X.Y, np.nan)  # an entry of weight 0 is a missing label
                arrays["sample_weight"] = S.max(axis=1)  # a row's labelled entries share its weight
            return arrays
        arrays = {"X": X.X, "y": X.y, "task": np.repeat(np.asarray(X.task_ids), X.n_samples)}
        if X.weighted:
            arrays["sample_weight"] = X.sample_weight
        return arrays
    import scipy.sparse as sp

    if sp.issparse(X):  # stored as its CSR arrays, never densified
        X = sp.csr_matrix(X)
        if X.dtype.kind not in "biuf" or not np.isfinite(X.data).all():
            raise ValueError("X (sparse) must hold finite numbers")
        arrays = {"X_data": X.data, "X_indices": X.indices, "X_indptr": X.indptr,
                  "X_shape": np.array(X.shape, dtype=np.int64)}
    else:
        X = as_real_array(X, "X", ndim=2)
        _check_finite(X, "X")
        arrays = {"X": X}
    n = X.shape[0]
    if sample_weight is not None:
        from .data import _row_weights

        arrays["sample_weight"] = _row_weights(sample_weight, n, "")
    if task is not None:
        if task_ids is not None:
            raise ValueError("task_ids names the columns of a 2-D y (shared layout); with task, the task ids are "
                             "the values in task")
        arrays["task"] = _ids(task, "task", n)
        if y is not None:
            y = _targets(y)
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.shape != (n,):
                raise ValueError(f"X has shape {X.shape} and y has shape {y.shape}: with task, y holds one target "
                                 "per row of X")
            arrays["y"] = y
        return arrays
    if y is not None:
        Y = _targets(y, missing_allowed=True)
        Y = Y[:, None] if Y.ndim == 1 else Y
        if Y.ndim != 2 or Y.shape[0] != n or Y.shape[1] == 0:
            raise ValueError(f"X has shape {X.shape} and y has shape {np.shape(y)}: without task, y holds one row per "
                             "row of X and one column per task")
        arrays["Y"] = Y
    if task_ids is not None:
        n_tasks = arrays["Y"].shape[1] if "Y" in arrays else np.size(task_ids)
        arrays["task_ids"] = _ids(task_ids, "task_ids", n_tasks)
        if np.unique(arrays["task_ids"]).size != n_tasks:
            raise ValueError("task_ids holds an id more than once; task ids must be unique")
    return arrays


def _sparse_task_data_arrays(data: TaskData) -> dict:
    """A sparse TaskData's arrays: X's CSR parts beside the targets and weights, as for a dense one."""
    dense = TaskData(layout=data.layout, X=np.empty((data.X.shape[0], 0)), y=data.y, Y=data.Y, offsets=data.offsets,
                     task_ids=data.task_ids, sample_weight=data.sample_weight, row_weight=data.row_weight)
    arrays = _arrays_of(dense, None, None, None)
    del arrays["X"]
    X = data.X
    arrays.update({"X_data": X.data, "X_indices": X.indices, "X_indptr": X.indptr,
                   "X_shape": np.array(X.shape, dtype=np.int64)})
    return arrays


def _targets(y, missing_allowed: bool = False) -> np.ndarray:
    """Targets checked for saving; ``missing_allowed``: NaN marks a missing label (shared layout)."""
    y = np.asarray(y)
    if y.dtype.kind not in _LABEL_KINDS:
        raise TypeError(f"y has {y.dtype} dtype; targets must be numbers or labels (strings, booleans)")
    _check_finite(np.where(np.isnan(y), 0.0, y) if missing_allowed and y.dtype.kind == "f" else y, "y")
    return y


def _ids(ids, name: str, n: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.dtype.kind not in _LABEL_KINDS:
        raise TypeError(f"{name} has {ids.dtype} dtype; task ids must be numbers or strings")
    if ids.shape != (n,):
        raise ValueError(f"{name} has shape {ids.shape}, expected ({n},)")
    _check_finite(ids, name)
    return ids


def _check_finite(a: np.ndarray, name: str) -> None:
    """NaN or infinity in a float array is an error naming its first row (other kinds are finite).

    A 0-d array is left to the shape checks that follow.
    """
    if a.dtype.kind == "f" and a.ndim and a.size:
        core_float = a.dtype if a.dtype in (np.float32, np.float64) else np.float64  # what the core scans
        check_finite(np.ascontiguousarray(a, dtype=core_float), name)


# ------------------------------------------------------------------------------ folder versions
def _write_folder(folder: Path, arrays: dict) -> None:
    """Write ``arrays`` as a new version of ``folder`` and switch ``current`` to it (module notes)."""
    folder.mkdir(parents=True, exist_ok=True)
    with _writer_lock(folder):
        _tidy(folder)
        version = f"v-{secrets.token_hex(8)}"
        staging = folder / f".{version}.tmp"
        staging.mkdir()
        try:
            for name, array in arrays.items():
                with open(staging / f"{name}.npy", "wb") as f:
                    np.save(f, array, allow_pickle=False)
                    f.flush()
                    os.fsync(f.fileno())
            fsync_folder(staging)
            os.rename(staging, folder / version)
        except BaseException:  # a failed write (a full disk) cleans up now; a killed one, at the next write
            shutil.rmtree(staging, ignore_errors=True)
            raise
        os.symlink(version, folder / _LINK_STAGING)
        os.replace(folder / _LINK_STAGING, folder / _CURRENT)
        fsync_folder(folder)
        _tidy(folder)


@contextlib.contextmanager
def _writer_lock(folder: Path):
    """Hold ``folder/.lock`` exclusively: one writer at a time, so the leftovers found are a dead writer's."""
    import fcntl  # POSIX only, like the folder format's symbolic link

    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd closes, or when a killed writer's process ends
        yield
    finally:
        os.close(fd)


def _tidy(folder: Path) -> None:
    """Delete what earlier writes left in ``folder``: every version but the current one, unfinished
    versions and links, and (once the folder has versions) the arrays of the plain layout.

    Runs with the writer lock held, so none of this belongs to a live writer.
    """
    current = _current_version(folder)
    with os.scandir(folder) as entries:
        leftovers = list(entries)
    for entry in leftovers:
        if _VERSION.fullmatch(entry.name) and entry.name != current:
            # Renamed first, in one step, so a reader lists a version whole or not at all.
            hidden = folder / f".{entry.name}.old"
            os.rename(entry.path, hidden)
            shutil.rmtree(hidden)
        elif _STAGING.fullmatch(entry.name):
            shutil.rmtree(entry.path)
        elif entry.name == _LINK_STAGING or (current is not None and entry.name in _PLAIN_FILES):
            os.unlink(entry.path)
    for name in _ARRAY_NAMES:  # mtlx before versions wrote each array through its own temporary file
        remove_stale_temporaries(folder / f"{name}.npy")


def _current_version(folder: Path) -> str | None:
    """The version folder ``current`` links to; None in the plain layout (no ``current``)."""
    try:
        target = os.readlink(folder / _CURRENT)
    except FileNotFoundError:
        return None
    except OSError:
        raise ValueError(f"{_CURRENT!r} in {str(folder)!r} is not the link save_dataset writes") from None
    if not _VERSION.fullmatch(target):
        raise ValueError(f"{_CURRENT!r} in {str(folder)!r} links to {target!r}, not to a version save_dataset "
                         "writes")
    return target


def _open_folder(ds: DatasetFile) -> dict:
    """The ``.npy`` files of the current version of ``ds``'s folder, all open: name -> file."""
    for _ in range(_OPEN_ATTEMPTS):
        try:
            version = _current_version(ds.path)
        except ValueError as exc:
            raise ValueError(f"{ds}: {exc}") from None
        files = {}
        try:
            with os.scandir(ds.path if version is None else ds.path / version) as entries:
                for entry in entries:
                    if entry.name.endswith(".npy") and entry.is_file():
                        files[entry.name[: -len(".npy")]] = open(entry.path, "rb")
            if version is None and (ds.path / _CURRENT).is_symlink():
                # A first versioned write switched the folder while its plain arrays were being
                # opened (it deletes them after the switch): what was opened may mix versions.
                raise FileNotFoundError
            return files
        except FileNotFoundError:
            for f in files.values():
                f.close()
            if version is not None and version == _current_version(ds.path) and not (ds.path / version).is_dir():
                raise ValueError(f"{ds}: {_CURRENT!r} links to {version!r}, which does not exist") from None
    raise ValueError(f"{ds}: its arrays were replaced {_OPEN_ATTEMPTS} times while they were being opened; try again")
