"""Datasets on disk: one ``.npz`` file or a folder of ``.npy`` files, in either layout.

=================  ===============================================================
layout             arrays
=================  ===============================================================
stacked            ``X`` (n, d), ``y`` (n,), ``task`` (n,): the task id of each row
shared             ``X`` (n, d), ``Y`` (n, T), optionally ``task_ids`` (T,)
=================  ===============================================================

A dataset with ``task`` is stacked, one without it shared; the targets may be left out of a
dataset that is only predicted on. A folder is memory-mapped, so a process that asks for a
few tasks (``tasks=``) reads only their rows from disk: this is how each MPI rank loads its
own share of a large dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._files import write_atomically
from .data import TaskData

__all__ = ["DatasetFile", "load_dataset", "save_dataset", "task_sizes"]

_LAYOUTS = {"stacked": ("X", "y", "task"), "shared": ("X", "Y")}


class DatasetFile:
    """The arrays of a dataset on disk, opened lazily (a folder is memory-mapped).

    Parameters
    ----------
    path : str or os.PathLike
        An ``.npz`` file or a folder of ``.npy`` files.
    """

    def __init__(self, path):
        self.path = Path(path)
        if self.path.is_dir():
            self.names = sorted(p.stem for p in self.path.glob("*.npy"))
        elif self.path.is_file():
            try:
                self._npz = np.load(self.path, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise ValueError(f"{self}: not a readable .npz file ({exc})") from None
            self.names = sorted(self._npz.files)
        else:
            raise FileNotFoundError(f"dataset {str(self.path)!r} does not exist (expected an .npz file or a "
                                    "folder of .npy files)")
        # Targets are optional here (``mtlx predict`` reads inputs only): ``require`` checks them.
        self.layout = "stacked" if "task" in self.names else "shared"
        self.require("X")

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
        if self.path.is_dir():
            try:
                return np.load(self.path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            except ValueError as exc:
                raise ValueError(f"{self}: array {name!r} cannot be read without pickle ({exc})") from None
        return self._npz[name]

    def task_ids(self) -> np.ndarray:
        """The task ids in the order a full load puts them."""
        if self.layout == "stacked":
            return np.unique(np.asarray(self["task"]))
        if "task_ids" in self.names:
            return np.asarray(self["task_ids"])
        return np.arange(self["Y"].shape[1] if "Y" in self.names else 1)

    def close(self) -> None:
        if hasattr(self, "_npz"):
            self._npz.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def save_dataset(path, data: TaskData) -> None:
    """Write ``data`` to ``path``: an ``.npz`` file when the name ends in ``.npz``, else a folder.

    Parameters
    ----------
    path : str or os.PathLike
    data : TaskData
        Stacked data is written as ``X``, ``y``, ``task`` (rows grouped by task, so a later
        ``load_dataset(path, tasks=...)`` reads contiguous row ranges); shared data as ``X``,
        ``Y``, ``task_ids``.
    """
    if not isinstance(data, TaskData):
        raise TypeError(f"data must be an mtlx.TaskData, got {type(data).__name__}")
    if data.layout == "shared":
        arrays = {"X": data.X, "Y": data.Y, "task_ids": np.asarray(data.task_ids)}
    else:
        arrays = {"X": data.X, "y": data.y, "task": np.repeat(np.asarray(data.task_ids), data.n_samples)}
    path = Path(path)
    if path.suffix == ".npz":
        write_atomically(path, arrays)
        return
    path.mkdir(parents=True, exist_ok=True)
    for stale in _LAYOUTS["stacked"] + _LAYOUTS["shared"] + ("task_ids",):
        if stale not in arrays and (path / f"{stale}.npy").exists():
            (path / f"{stale}.npy").unlink()
    for name, arr in arrays.items():
        write_atomically(path / f"{name}.npy", {name: arr}, single=True)


def load_dataset(path, tasks=None) -> TaskData:
    """Read a dataset written by :func:`save_dataset` (or by hand with the same array names).

    Parameters
    ----------
    path : str or os.PathLike
        ``.npz`` file or folder of ``.npy`` files (memory-mapped).
    tasks : array-like of task ids, optional
        Load only these tasks (the rows of a stacked dataset that belong to them, or these
        columns of ``Y``); default all.

    Returns
    -------
    TaskData
        Tasks in the order of their sorted ids (stacked) or of ``task_ids`` (shared).
    """
    with DatasetFile(path) as ds:
        try:
            return _load(ds, tasks)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{ds}: {exc}") from None


def task_sizes(path):
    """``(task_ids, rows_per_task)`` of a dataset, reading only its ``task`` column (or ``Y``'s shape).

    This is what a distributed run needs to balance the tasks over ranks before any rank
    reads data.
    """
    with DatasetFile(path) as ds:
        if ds.layout == "shared":
            ids = ds.task_ids()
            return ids, np.full(len(ids), ds["X"].shape[0], dtype=np.int64)
        ids, counts = np.unique(np.asarray(ds["task"]), return_counts=True)
        return ids, counts.astype(np.int64)


def _load(ds: DatasetFile, tasks) -> TaskData:
    X = ds["X"]
    if ds.layout == "shared":
        ds.require("Y")
        Y, ids = ds["Y"], ds.task_ids()
        if Y.ndim != 2:
            raise ValueError(f"Y must be 2-D (n_samples, n_tasks), got shape {Y.shape}")
        if ids.shape != (Y.shape[1],):
            raise ValueError(f"task_ids has shape {ids.shape} but Y has {Y.shape[1]} columns")
        if tasks is None:
            return TaskData.from_shared(X, Y, task_ids=ids)
        columns = _positions(ids, tasks)
        return TaskData.from_shared(X, np.asarray(Y)[:, columns], task_ids=ids[columns])
    y, task = ds["y"], np.asarray(ds["task"])
    if task.ndim != 1 or X.ndim != 2 or task.shape[0] != X.shape[0]:
        raise ValueError(f"X has shape {X.shape} and task has shape {task.shape}: one task id per row of X is needed")
    if tasks is None:
        return TaskData.from_stacked(X, y, task)
    _positions(np.unique(task), tasks)  # refuse unknown ids before reading any row
    rows = np.flatnonzero(np.isin(task, np.asarray(tasks)))
    # Rows grouped by task (what save_dataset writes) come out as a few contiguous ranges:
    # slicing the memory map then reads exactly those rows from disk.
    return TaskData.from_stacked(_take_rows(X, rows), _take_rows(y, rows), task[rows])


def _positions(ids: np.ndarray, tasks) -> np.ndarray:
    tasks = np.atleast_1d(np.asarray(tasks))
    lookup = {v: i for i, v in enumerate(ids.tolist())}
    unknown = [t for t in tasks.tolist() if t not in lookup]
    if unknown:
        raise ValueError(f"task id {unknown[0]!r} is not in the dataset ({len(ids)} tasks)")
    if len(set(tasks.tolist())) != len(tasks):
        raise ValueError("tasks lists an id more than once")
    return np.array([lookup[t] for t in tasks.tolist()], dtype=np.intp)


def _take_rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    if rows.size and rows[-1] - rows[0] + 1 == rows.size:
        return np.asarray(a[rows[0] : rows[-1] + 1])
    return np.asarray(a[rows])
