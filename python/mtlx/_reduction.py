"""The one interface through which the solver sees other ranks, and its single-process identity.

The solver sums its per-task quantities (loss values, inner products, a penalty's statistics)
over the tasks it holds, then hands the packed float64 buffer to ``allreduce``; in a single
process that is the identity, under MPI (:class:`mtlx.distributed.MPIReduction`) it is one
``comm.Allreduce(MPI.IN_PLACE, buf)``. Everything task-keyed (the result, a checkpoint) goes
through ``allgather_tasks`` / ``gather_tasks``, which return rows in the global task order.

By convention the last slot of every buffer given to ``allreduce`` is a failure flag: a rank
whose local work raised sets it, so every rank learns of the failure at the same collective
and raises the same error instead of waiting forever for the failed one.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["LocalReduction"]


class LocalReduction:
    """Reduction of a single process: every local sum is already the global one.

    Parameters
    ----------
    task_ids : ndarray, shape (T,)
        The ids of the tasks, in the order of the columns of W (also the global order here).

    Attributes
    ----------
    rank, size : int
        0 and 1.
    global_ids : ndarray, shape (T,)
    local_index : ndarray of int64, shape (T,)
        Position of each local task in the global order (here ``0 .. T-1``).
    n_calls, n_bytes : int
        Allreduce calls and bytes so far (what an MPI run of the same solve would exchange).
    """

    distributed = False
    rank = 0
    size = 1
    cuda_aware = False  # nothing to hand to MPI

    def __init__(self, task_ids: np.ndarray):
        self.global_ids = np.asarray(task_ids)
        self.local_index = np.arange(len(self.global_ids), dtype=np.int64)
        self.n_calls = 0
        self.n_bytes = 0

    def allreduce(self, buf: np.ndarray, failure: BaseException | None = None, synchronize=None) -> np.ndarray:
        """Sum ``buf`` over ranks in place (identity); ``failure`` is raised as is (``synchronize``:
        nothing reads the buffer here)."""
        if failure is not None:
            raise failure
        self.n_calls += 1
        self.n_bytes += buf.nbytes
        return buf

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is true on some rank."""
        return bool(flag)

    def sum_ints(self, buf: np.ndarray) -> np.ndarray:
        """Sum the integers of ``buf`` over ranks in place (exact in any order)."""
        return buf

    def max_ints(self, buf: np.ndarray) -> np.ndarray:
        """Elementwise maximum of the integers of ``buf`` over ranks, in place."""
        return buf

    def max(self, value: float) -> float:
        """The largest ``value`` over ranks."""
        return float(value)

    def task_mean(self, rows: np.ndarray) -> np.ndarray:
        """The mean of the rows (one per task) over all tasks."""
        return rows.mean(axis=0) if len(rows) else np.zeros(rows.shape[1:])

    def agreed_errors(self):
        """Context in which an exception on one rank is raised on all (here: as is)."""
        return contextlib.nullcontext()

    def agree(self, options: dict, where: str) -> None:
        """Check that every rank passed the same ``options`` (here: one rank, nothing to check)."""

    def allgather_tasks(self, rows: np.ndarray) -> np.ndarray:
        """Rows of the local tasks (first axis) -> rows of all tasks in global order."""
        return rows

    def gather_tasks(self, rows: np.ndarray) -> np.ndarray | None:
        """Like :meth:`allgather_tasks`, but only rank 0 receives (the others get None)."""
        return rows
