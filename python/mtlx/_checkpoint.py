"""Checkpoint and resume of a solve: the FISTA state keyed by task id, written atomically.

One file, ``DIR/checkpoint.npz``, written by rank 0 only (the other ranks send it their tasks'
rows): to a temporary name in the same folder, flushed to disk, then renamed over the old one,
so a run killed at any moment leaves either the previous checkpoint or the new one, never a
torn file. Rows are stored in global task-id order, so any number of ranks can resume from it.

A fingerprint of the problem (shapes, task ids, rows and a hash of the data of every task,
losses, task weights, penalty, alpha, l2, intercepts, dtype) is saved beside the state and
checked on resume: a checkpoint of another problem is refused with a message naming what
differs. ``tol`` and ``max_iter`` are not part of it (a resumed run may tighten them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ._files import write_atomically
from .fista import FistaState
from .penalties.spec import to_data
from .problem import Problem

__all__ = ["Checkpoint", "read_everywhere"]

FILE_NAME = "checkpoint.npz"
_FORMAT = 3  # 3: the iterate as iterated, with its scales (2: unscaled, still read)


class Checkpoint:
    """The checkpoint of one solve in a folder (collective under MPI: every rank builds it).

    Parameters
    ----------
    directory : path
        Created if missing (by rank 0).
    problem : Problem
    """

    def __init__(self, directory, problem: Problem):
        self.problem = problem
        self.reduction = problem.reduction
        self.path = Path(directory) / FILE_NAME
        with self.reduction.agreed_errors():
            if self.reduction.rank == 0:
                Path(directory).mkdir(parents=True, exist_ok=True)
        self.fingerprint = _fingerprint(problem)

    def every(self, k: int):
        """The per-iteration hook of :func:`mtlx.solver.fista` that saves every ``k`` iterations."""

        def on_iteration(state: FistaState) -> None:
            if state.n_iter % k == 0:
                self.save(state)

        return on_iteration

    def save(self, state: FistaState) -> None:
        """Write ``state`` atomically (collective: rank 0 gathers the rows and writes).

        Per-task blocks are stored as rows keyed by task id (every task block's w_t, then b'_t),
        shared blocks whole.
        """
        p = self.problem
        x_rows, x_shared, shared_scales = p.task_rows(state.x)
        y_rows, y_shared, _ = p.task_rows(state.y)
        rows = self.reduction.gather_tasks(np.concatenate([x_rows, y_rows], axis=1))
        with self.reduction.agreed_errors():
            if rows is None:
                return
            width = x_rows.shape[1]
            arrays = dict(
                format=np.int64(_FORMAT), x_rows=rows[:, :width], y_rows=rows[:, width:], x_shared=x_shared,
                y_shared=y_shared, shared_scales=shared_scales,
                t=np.float64(state.t), L=np.float64(state.L), L_seen=np.float64(state.L_seen),
                F=np.float64(state.F), history=np.asarray(state.history), n_iter=np.int64(state.n_iter),
                n_evals=np.int64(state.n_evals), grad0=np.asarray(state.grad0, dtype=np.float64),
                **{f"fp_{k}": v for k, v in self.fingerprint.items()})
            write_atomically(self.path, arrays)

    def load(self) -> FistaState | None:
        """The saved state for this rank's tasks, or None when there is no checkpoint yet (collective).

        Raises ``ValueError`` on every rank when the checkpoint belongs to another problem.
        """
        p = self.problem
        with self.reduction.agreed_errors():
            saved = read_everywhere(self.path, self.reduction)
            if saved is None:
                return None
            self._check_fingerprint(saved)
            idx = self.reduction.local_index
            if int(saved["format"]) == 2:  # unscaled values: as taken at scale 1
                for key in ("x_rows", "y_rows"):
                    saved[key] = np.column_stack([saved[key], np.ones(len(saved[key]))])
                saved["shared_scales"] = np.ones(len(p.shared_blocks))
            x = p.theta_from_rows(saved["x_rows"][idx], saved["x_shared"], saved["shared_scales"])
            y = p.theta_from_rows(saved["y_rows"][idx], saved["y_shared"], saved["shared_scales"])
            return FistaState(x=x, y=y, t=float(saved["t"]), L=float(saved["L"]), L_seen=float(saved["L_seen"]),
                              F=float(saved["F"]), history=[float(v) for v in saved["history"]],
                              n_evals=int(saved["n_evals"]), n_iter=int(saved["n_iter"]),
                              grad0=np.asarray(saved["grad0"], dtype=np.float64).tolist())

    def _check_fingerprint(self, saved: dict) -> None:
        if "format" not in saved or int(saved["format"]) not in (2, _FORMAT):
            raise ValueError(f"{self.path} is not an mtlx checkpoint of format {_FORMAT}")
        for key, here in self.fingerprint.items():
            there = saved.get(f"fp_{key}")
            if there is None or there.shape != np.shape(here) or not np.array_equal(there, here):
                raise ValueError(
                    f"checkpoint {self.path} belongs to a different problem: its {_DESCRIPTION[key]} "
                    f"differ{'s' if key in _SINGULAR else ''} ({_short(there)} there, {_short(here)} here); "
                    "remove it or choose another checkpoint folder")


def read_everywhere(path: Path, reduction) -> dict | None:
    """Every array of the checkpoint ``path`` on every rank, or None where there is none yet
    (collective; within the caller's agreed errors). A file that some ranks cannot see is an
    error: the checkpoint folder must be shared."""
    found = path.exists()
    if found != reduction.any(found):
        raise ValueError(f"{path} is visible on some ranks only: the checkpoint folder must be shared")
    if not found:
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


_DESCRIPTION = {
    "n_features": "number of features", "dtype": "dtype", "task_ids": "task ids", "n_samples": "rows per task",
    "data_hash": "data (hash of each task's rows)", "losses": "losses", "task_weights": "task weights",
    "penalty": "penalty", "alpha": "alpha", "l2": "l2", "fit_intercept": "fit_intercept",
}
_SINGULAR = {"n_features", "dtype", "penalty", "alpha", "l2", "fit_intercept"}


def _short(a) -> str:
    a = np.asarray(a)
    if a.ndim == 0:
        return repr(a.item())
    return np.array2string(a, threshold=6, edgeitems=3)


def _fingerprint(problem: Problem) -> dict:
    """Everything that defines the problem, per task in global order (collective)."""
    red = problem.reduction
    smooth = problem.smooth
    data = smooth.data
    return dict(
        n_features=np.int64(data.n_features), dtype=np.array(data.dtype.str), task_ids=np.asarray(red.global_ids),
        n_samples=red.allgather_tasks(data.n_samples.astype(np.int64)),
        data_hash=red.allgather_tasks(_task_hashes(data)),
        losses=red.allgather_tasks(np.asarray(smooth.losses, dtype=np.uint8)),
        task_weights=red.allgather_tasks(np.asarray(smooth.weights, dtype=np.float64)),
        penalty=np.array(_penalty_text(problem.penalty)), alpha=np.float64(problem.alpha),
        l2=np.float64(problem.l2),
        fit_intercept=np.bool_(problem.fit_intercept))


def _task_hashes(data) -> np.ndarray:
    """A 64-bit BLAKE2b digest of each task's rows (X and y), independent of where they sit in memory."""
    out = np.empty(data.n_tasks, dtype=np.uint64)
    shared_x = hashlib.blake2b(np.ascontiguousarray(data.X).data, digest_size=8) if data.layout == "shared" else None
    for t in range(data.n_tasks):
        X_t, y_t = data.task(t)
        h = shared_x.copy() if shared_x is not None else hashlib.blake2b(np.ascontiguousarray(X_t).data,
                                                                          digest_size=8)
        h.update(np.ascontiguousarray(y_t).data)
        out[t] = int.from_bytes(h.digest(), "little")
    return out


def _penalty_text(penalty) -> str:
    """The penalty as JSON text, its matrix arguments (a Graph's R) by a digest of their bytes."""
    import json

    arrays: dict = {}
    data = to_data(penalty, arrays)
    digests = {k: hashlib.blake2b(np.ascontiguousarray(v).data, digest_size=8).hexdigest() for k, v in arrays.items()}
    return json.dumps({"penalty": data, "arrays": digests}, sort_keys=True)
