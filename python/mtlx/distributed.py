"""Tasks over MPI ranks: which rank owns which tasks, and the Allreduce of shared quantities.

This is the only module that talks to MPI (mpi4py, imported on first use: ``pip install
"mtlx[mpi]"``). Each rank keeps the data of its own tasks; the solver exchanges only sums over
tasks, through :class:`MPIReduction` (one ``comm.Allreduce(MPI.IN_PLACE, buf)`` per packed
buffer). Everything that outlives a run (the result, a checkpoint) is keyed by task id, never
by rank, so it does not depend on the number of ranks.

Typical use, every rank running the same script under ``mpirun -n N``::

    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    with mtlx.distributed.agreed_errors(comm):          # bad input on one rank fails all
        local = mtlx.TaskData.from_tasks(my_pairs, task_ids=my_ids)
    res = mtlx.solve(local, penalty="l21", alpha=0.1, comm=comm)   # res.W: all tasks, every rank

or, with all data on rank 0: ``local = mtlx.distribute(data if comm.rank == 0 else None, comm)``.

For a command-line entry point (``mpirun -n N mtlx fit DATA``), in this order on every rank:
:func:`abort_on_unhandled_exception` first (an unhandled exception ends the job); the rows per
task from the dataset's task column, then ``assign_tasks(rows, comm.size)[comm.rank]`` for this
rank's task positions, read (memory-mapped) inside ``with agreed_errors(comm):`` and built with
``TaskData.from_tasks(pairs, task_ids=ids)`` (an idle rank: ``from_tasks([], task_ids=[])``);
then ``solve(..., comm=comm, checkpoint=DIR, checkpoint_every=K, resume=...)``; progress
(``callback``) and logging on ``comm.rank == 0`` only, and rank 0 writes the model (every
rank holds the full ``res.W``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import hashlib
import heapq
import os
import sys
import threading
import time
import traceback

import numpy as np

from ._validate import short_repr
from .data import TaskData

__all__ = ["MPIReduction", "abort_on_unhandled_exception", "agreed_errors", "assign_tasks", "cuda_aware_mpi",
           "distribute", "raise_agreed"]

# Exceptions re-raised with their own type on every rank (anything else becomes RuntimeError).
_AGREED_TYPES = {cls.__name__: cls for cls in (ValueError, TypeError, RuntimeError, FloatingPointError,
                                               MemoryError, OSError, KeyError, IndexError, np.linalg.LinAlgError,
                                               FileNotFoundError, FileExistsError, PermissionError,
                                               IsADirectoryError, NotADirectoryError, TimeoutError)}

#: Environment variable: the longest a rank waits in one collective of mtlx before it ends the job.
TIMEOUT_VARIABLE = "MTLX_MPI_TIMEOUT"
#: Its default, in seconds: far beyond any collective of a solve (microseconds to seconds), short
#: enough that a job whose rank died or hangs does not hold its nodes for hours.
DEFAULT_TIMEOUT = 1800.0


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError('mtlx needs mpi4py for distributed solves: pip install "mtlx[mpi]"') from exc
    return MPI


def _world(comm):
    from ._validate import check_comm

    return _mpi().COMM_WORLD if comm is None else check_comm(comm)


# ---------------------------------------------------------------------------------- options
def _canonical(value):
    """A value as plain Python data whose repr is the same on every rank for equal values: numbers
    as float or int (numpy scalars too), arrays by dtype, shape and a digest of their bytes,
    penalties and losses by type and constructor arguments, other objects by type alone (a
    default repr holds an address, which differs from process to process)."""
    if value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        digest = hashlib.sha256(data.view(np.uint8).reshape(-1) if data.dtype != object else
                                repr(data.tolist()).encode()).hexdigest()
        return ("ndarray", data.dtype.str, data.shape, digest)
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _canonical(v)) for k, v in value.items()))
    parts = getattr(value, "parts", None)
    if isinstance(parts, (list, tuple)):  # a sum or superposition of penalties
        return (type(value).__name__, tuple(_canonical(p) for p in parts))
    params = getattr(value, "params", None)
    if callable(params):
        try:
            return (type(value).__name__, _canonical(params()))
        except TypeError:
            pass
    if hasattr(value, "name") and isinstance(value.name, str):  # a loss
        fields = {k: v for k, v in vars(value).items() if not k.startswith("_")} if hasattr(value, "__dict__") else {}
        return (type(value).__name__, value.name, _canonical(fields))
    return (type(value).__module__, type(value).__qualname__)


def _fingerprint(value) -> str:
    return hashlib.sha256(repr(_canonical(value)).encode()).hexdigest()[:24]


# ---------------------------------------------------------------------------------- errors
def raise_agreed(comm, failure: BaseException | None) -> None:
    """Collective: raise the same error on every rank when ``failure`` is set on any rank.

    Every rank must call this at the same point. The error raised everywhere is the one of the
    lowest failing rank, with its type when it is a common builtin (``ValueError``, ...) and
    its message, followed by the ranks it came from.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    failure : exception or None
        This rank's failure, if any.
    """
    report = None if failure is None else (type(failure).__name__, str(failure))
    with watched(comm, "an agreement on errors"):
        reports = comm.allgather(report)
    failed = [r for r, rep in enumerate(reports) if rep is not None]
    if not failed:
        return
    kind, message = reports[failed[0]]
    cls = _AGREED_TYPES.get(kind, RuntimeError)
    if cls.__name__ != kind:
        message = f"{kind}: {message}"
    where = f"rank {failed[0]}" if len(failed) == 1 else f"ranks {', '.join(map(str, failed))}"
    agreed = cls(f"{message} [raised on {where} of {comm.Get_size()}]")
    agreed.mtlx_agreed = True  # raised on every rank: the crash hooks let each rank exit by itself
    raise agreed from failure


@contextlib.contextmanager
def agreed_errors(comm=None):
    """Context in which an exception on any rank is raised on every rank (collective).

    Wrap local work that may fail on some ranks only (reading and validating a rank's tasks)
    before the next collective: without it the failed rank leaves and the others wait in the
    next collective forever. Costs one small ``allgather`` at the end of the block.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, default ``MPI.COMM_WORLD``
    """
    comm = _world(comm)
    try:
        yield
    except Exception as exc:
        raise_agreed(comm, exc)
        raise  # pragma: no cover - raise_agreed always raises here
    raise_agreed(comm, None)


# ---------------------------------------------------------------------------------- stalls and crashes
def collective_timeout() -> float | None:
    """Seconds a rank may wait in one collective (``MTLX_MPI_TIMEOUT``; 0 or "none": forever)."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip().lower()
    if not text:
        return DEFAULT_TIMEOUT
    if text in ("0", "none", "inf"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be a number of seconds (or 0/none for no limit), got "
                         f"{text!r}") from None
    if not value > 0:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be > 0 seconds (or 0/none for no limit), got {text!r}")
    return value


class _Watchdog:
    """One daemon thread per process that ends the job when a collective outlasts the timeout.

    A collective cannot be left on one rank alone (the others would wait in it, or in the next,
    for ever), so a rank that has waited too long, because another rank is stalled or died
    without the job ending, says so on stderr and calls ``MPI_Abort``, which ends every rank.
    Entering and leaving a collective costs two attribute writes; the thread wakes once a second.
    """

    def __init__(self):
        self.comm = None
        self.what = ""
        self.since = None
        self.thread = None
        self.lock = threading.Lock()

    def enter(self, comm, what: str) -> None:
        timeout = collective_timeout()
        if timeout is None or comm.Get_size() == 1:
            return
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, args=(timeout,), name="mtlx-mpi-watchdog",
                                               daemon=True)
                self.thread.start()
        self.comm, self.what, self.since = comm, what, time.monotonic()

    def leave(self) -> None:
        self.since = None

    def _run(self, timeout: float) -> None:
        while True:
            time.sleep(min(1.0, timeout / 4))
            since, comm = self.since, self.comm
            if since is not None and time.monotonic() - since > timeout:
                sys.stderr.write(f"mtlx: rank {comm.Get_rank()} of {comm.Get_size()} waited {timeout:g} s in "
                                 f"{self.what}: another rank is stalled or died; ending the job ({TIMEOUT_VARIABLE} "
                                 "sets the limit)\n")
                _abort_after_grace(comm)
                return


_WATCHDOG = _Watchdog()


@contextlib.contextmanager
def watched(comm, what: str):
    """Context around one collective call: the job ends if it lasts beyond :func:`collective_timeout`."""
    _WATCHDOG.enter(comm, what)
    try:
        yield
    finally:
        _WATCHDOG.leave()


def abort_on_unhandled_exception(comm=None) -> None:
    """Make an unhandled exception on any rank end the whole job (``comm.Abort(1)``).

    What ``python -m mpi4py script.py`` does, for an entry point (the ``mtlx`` command): the
    traceback is printed, then every rank is terminated instead of the others waiting forever
    in their next collective. A no-op on a single rank.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, default ``MPI.COMM_WORLD``
    """
    comm = _world(comm)
    if comm.Get_size() == 1:
        return
    previous = sys.excepthook

    def abort(kind, value, tb):
        if getattr(value, "mtlx_agreed", False):  # an agreed error ends every rank by itself
            previous(kind, value, tb)
            return
        _report_then_abort(comm, previous, kind, value, tb)

    sys.excepthook = abort


#: Seconds a rank waits, after saying why it ends the job, before MPI_Abort: the launcher forwards
#: each rank's stderr asynchronously, and an abort right after the write lost the end of a
#: traceback (the error message itself) about once in five runs on a loaded machine, and once the
#: watchdog's whole message under the sanitizers.
ABORT_GRACE_S = 0.5


def _abort_after_grace(comm) -> None:
    """Flush stderr, leave the launcher time to forward it, then MPI_Abort: every abort goes this way."""
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_S)
    comm.Abort(1)


def _report_then_abort(comm, previous_hook, kind, value, tb) -> None:
    """One line naming the rank and the error (first, so that it survives a truncated stream),
    the traceback by the previous hook, then :func:`_abort_after_grace`."""
    message = "".join(traceback.format_exception_only(kind, value)).strip()
    sys.stderr.write(f"mtlx: unhandled exception on rank {comm.Get_rank()} of {comm.Get_size()}, ending the job: "
                     f"{message}\n")
    sys.stderr.flush()
    previous_hook(kind, value, tb)
    _abort_after_grace(comm)


def install_crash_abort() -> None:
    """Under an MPI launcher, make an unhandled exception on any rank end the whole job.

    Installed by ``import mtlx`` when the environment shows an MPI launch (mpiexec/mpirun set
    ``PMI_RANK``, ``PMIX_RANK`` or ``OMPI_COMM_WORLD_RANK``). The pattern most users write first
    builds each rank's TaskData outside :func:`agreed_errors`; when it raises on one rank only
    (NaN in its tasks), that rank leaves while the others wait in ``solve``'s first collective
    for ever. With this hook the failing rank prints its traceback, then calls ``MPI_Abort``.
    mpi4py is not imported here: the hook acts only if the script initialized MPI itself.
    """
    if not any(key in os.environ for key in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK")):
        return
    previous = sys.excepthook

    def abort_if_mpi(kind, value, tb):
        module = sys.modules.get("mpi4py.MPI")
        world = None if module is None or not module.Is_initialized() or module.Is_finalized() else module.COMM_WORLD
        # An error raised on every rank (agreed_errors) ends each rank by itself, with its traceback.
        if world is None or world.Get_size() == 1 or getattr(value, "mtlx_agreed", False):
            previous(kind, value, tb)
            return
        _report_then_abort(world, previous, kind, value, tb)

    sys.excepthook = abort_if_mpi


# ---------------------------------------------------------------------------------- GPUs
#: Environment variable: whether MPI is handed GPU memory (``1``/``0``; unset or ``auto``: the MPI
#: library is asked, see :func:`cuda_aware_mpi`).
CUDA_AWARE_VARIABLE = "MTLX_CUDA_AWARE_MPI"
_YES, _NO = ("1", "yes", "true", "on"), ("0", "no", "false", "off")


def cuda_aware_mpi() -> bool:
    """Whether the Allreduce of a device solve (``device="cuda"`` under MPI) is handed GPU memory.

    A CUDA-aware MPI reads and writes device buffers itself, so the statistics that are computed
    and used on the GPU (a shared block's gradient sums, a penalty's statistics) go to MPI without
    a copy through host memory. Otherwise they are staged: copied to a host buffer, reduced
    there, copied back. Either way the result is the same.

    ``MTLX_CUDA_AWARE_MPI`` forces the answer (``1``, ``yes``, ``true``, ``on`` or ``0``, ``no``,
    ``false``, ``off``): forcing it on with an MPI that is not CUDA-aware ends in a crash inside
    MPI, forcing it off is always safe. Unset (or ``auto``), the loaded MPI library is asked:
    ``MPIX_Query_cuda_support()`` (Open MPI >= 2, MPICH >= 4 and their derivatives: MVAPICH,
    Cray MPICH, Intel MPI) answers 1 when the library was built with CUDA and its GPU support is
    enabled in this run. A library without that query counts as not CUDA-aware.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        When ``MTLX_CUDA_AWARE_MPI`` holds something else.
    """
    text = os.environ.get(CUDA_AWARE_VARIABLE, "").strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    if text not in ("", "auto"):
        raise ValueError(f"{CUDA_AWARE_VARIABLE} must be 1/yes/true/on, 0/no/false/off or auto, got {text!r}")
    return _library_cuda_support()


@functools.lru_cache(maxsize=None)
def _library_cuda_support() -> bool:
    """``MPIX_Query_cuda_support()`` of the MPI library mpi4py loaded (False where it has none)."""
    _mpi()  # loads (and initializes) the MPI library
    for path in _loaded_mpi_libraries():
        try:
            library = ctypes.CDLL(path)  # the handle of the library already loaded: no second copy
        except OSError:
            continue
        query = getattr(library, "MPIX_Query_cuda_support", None)
        if query is not None:
            query.restype, query.argtypes = ctypes.c_int, []
            return bool(query())
    return False


def _loaded_mpi_libraries() -> list:
    """Paths of the MPI libraries in this process (Linux: from /proc/self/maps), else the one the
    system's loader would find."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(maxsplit=5)[5].strip() for line in maps if line.count(" ") >= 5 and "libmpi" in line}
    except OSError:
        paths = set()
    found = sorted(p for p in paths if os.path.basename(p).startswith("libmpi"))
    if not found:
        name = ctypes.util.find_library("mpi")
        found = [name] if name else []
    return found


# ---------------------------------------------------------------------------------- assignment
def local_rank(comm) -> int:
    """This rank's index among the ranks on its node (``MPI_COMM_TYPE_SHARED``): the GPU a rank takes
    by default (``device="cuda"`` under MPI) is ``local_rank % n_devices``."""
    MPI = _mpi()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return int(node.Get_rank())
    finally:
        node.Free()


def assign_tasks(n_rows_per_task, n_ranks: int) -> list:
    """Tasks per rank, balancing the total number of rows (not the number of tasks).

    Parameters
    ----------
    n_rows_per_task : array_like of int, shape (T,)
        Rows of each task, in global task order.
    n_ranks : int
        Number of ranks (more ranks than tasks is fine: the extra ranks get no task).

    Returns
    -------
    list of ndarray of int64
        ``parts[r]``: the positions (into ``n_rows_per_task``) of the tasks of rank r, increasing.

    Notes
    -----
    Longest processing time first: tasks by decreasing rows (ties: lower position first), each
    to the rank with the fewest rows so far (ties: lower rank). The largest load is at most
    4/3 of the optimum (Graham 1969) and the assignment depends only on the row counts.
    """
    rows = np.asarray(n_rows_per_task)
    if rows.ndim != 1 or (rows.size and (rows.dtype.kind not in "iu" or rows.min() < 0)):
        raise ValueError("n_rows_per_task must be a 1-D array of non-negative integers")
    if isinstance(n_ranks, bool) or not isinstance(n_ranks, (int, np.integer)) or n_ranks < 1:
        raise ValueError(f"n_ranks must be a positive integer, got {n_ranks!r}")
    heap = [(0, r) for r in range(int(n_ranks))]
    owner = np.empty(rows.size, dtype=np.int64)
    for t in np.argsort(-rows.astype(np.int64), kind="stable"):
        load, r = heapq.heappop(heap)
        owner[t] = r
        heapq.heappush(heap, (load + int(rows[t]), r))
    return [np.flatnonzero(owner == r).astype(np.int64) for r in range(int(n_ranks))]


# ---------------------------------------------------------------------------------- scatter
def distribute(data: TaskData | None, comm=None) -> TaskData:
    """Scatter the tasks of ``data`` (on rank 0) so that each rank keeps only its own (collective).

    Parameters
    ----------
    data : TaskData or None
        All tasks on rank 0 (ignored on the other ranks).
    comm : mpi4py.MPI.Comm, default ``MPI.COMM_WORLD``

    Returns
    -------
    TaskData
        This rank's tasks (chosen by :func:`assign_tasks`), with their global ids as
        ``task_ids``; empty on a rank without tasks. The shared layout stays shared: every rank
        receives X and the target columns of its tasks. A sparse (CSR) X stays sparse: its
        stored entries travel (int64 indices), never a dense copy.
    """
    comm = _world(comm)
    rank = comm.Get_rank()
    with agreed_errors(comm):
        meta = None
        if rank == 0:
            if not isinstance(data, TaskData):
                raise TypeError(f"data on rank 0 must be an mtlx.TaskData, got {type(data).__name__}")
            meta = (data.layout, data.n_features, data.dtype.str, data.X.shape[0], data.n_samples, data.task_ids,
                    data.weighted, data.sparse)
    with watched(comm, "distribute's broadcast of the layout"):
        layout, d, dtype, n_rows, n_samples, ids, weighted, sparse = comm.bcast(meta, root=0)
    dtype = np.dtype(dtype)
    parts = assign_tasks(n_samples, comm.Get_size())
    mine = parts[rank]
    if layout == "shared":
        if sparse:  # every rank receives the whole CSR X (its three arrays), as it would a dense one
            X = _bcast_csr(comm, data.X if rank == 0 else None, (n_rows, d), dtype)
        else:
            X = data.X if rank == 0 else np.empty((n_rows, d), dtype=dtype)
            with watched(comm, "distribute's broadcast of X"):
                comm.Bcast(X, root=0)
        Y = _scatter_rows(comm, lambda r: np.ascontiguousarray(data.Y[:, parts[r]].T), (len(mine), n_rows), dtype).T
        S = None
        if weighted:  # the entry weights (sample weights, missing labels) of this rank's columns
            S = _scatter_rows(comm, lambda r: np.ascontiguousarray(data.sample_weight[:, parts[r]].T),
                              (len(mine), n_rows), dtype).T
            S = np.ascontiguousarray(S)
        local = TaskData(layout="shared", X=X, Y=np.ascontiguousarray(Y), task_ids=ids[mine], sample_weight=S)
        return local if len(mine) else TaskData.empty(d, dtype)
    m = int(n_samples[mine].sum())
    X = _scatter_csr_rows(comm, data, parts, (m, d), dtype) if sparse else \
        _scatter_rows(comm, lambda r: _task_rows(data, parts[r], data.X), (m, d), dtype)
    y = _scatter_rows(comm, lambda r: _task_rows(data, parts[r], data.y), (m,), dtype)
    S = _scatter_rows(comm, lambda r: _task_rows(data, parts[r], data.sample_weight), (m,), dtype) if weighted else None
    if not len(mine):
        return TaskData.empty(d, dtype)
    offsets = np.zeros(len(mine) + 1, dtype=np.int64)
    np.cumsum(n_samples[mine], out=offsets[1:])
    return TaskData(layout="stacked", X=X, y=y, offsets=offsets, task_ids=ids[mine], sample_weight=S)


def _task_rows(data: TaskData, tasks: np.ndarray, arr: np.ndarray) -> np.ndarray:
    if len(tasks) == 0:
        return arr[:0]
    return np.concatenate([arr[data.offsets[t] : data.offsets[t + 1]] for t in tasks])


def _csr_parts(X) -> tuple:
    """(data, indices as int64, indptr as int64) of a CSR matrix: what travels."""
    return (np.ascontiguousarray(X.data), np.ascontiguousarray(X.indices, dtype=np.int64),
            np.ascontiguousarray(X.indptr, dtype=np.int64))


def _csr_from(parts, shape, dtype):
    import scipy.sparse as sp

    values, indices, indptr = parts
    X = sp.csr_matrix((values.astype(dtype, copy=False), indices, indptr), shape=shape)
    X.check_format(full_check=True)  # what arrived indexes within its shape
    return X


def _bcast_csr(comm, X, shape, dtype):
    """The CSR matrix X of rank 0 on every rank: its entry count, then its three arrays."""
    parts = _csr_parts(X) if comm.Get_rank() == 0 else None
    with watched(comm, "distribute's broadcast of X"):
        nnz = comm.bcast(int(parts[0].size) if parts is not None else None, root=0)
        if parts is None:
            parts = (np.empty(nnz, dtype=dtype), np.empty(nnz, dtype=np.int64), np.empty(shape[0] + 1, dtype=np.int64))
        for a in parts:
            comm.Bcast(a, root=0)
    return X if comm.Get_rank() == 0 else _csr_from(parts, shape, dtype)


def _scatter_csr_rows(comm, data, parts, shape, dtype):
    """Each rank's tasks' rows of rank 0's CSR X (one rank at a time, to bound rank 0's memory)."""
    import scipy.sparse as sp

    def rows_of(r):
        tasks = parts[r]
        if len(tasks) == 0:
            return data.X[:0]
        return sp.vstack([data.X[data.offsets[t]: data.offsets[t + 1]] for t in tasks], format="csr")

    if comm.Get_rank() != 0:
        with watched(comm, "distribute's receive of this rank's tasks"):
            nnz = comm.recv(source=0, tag=72)
            arrays = (np.empty(nnz, dtype=dtype), np.empty(nnz, dtype=np.int64), np.empty(shape[0] + 1, dtype=np.int64))
            for a in arrays:
                comm.Recv(a, source=0, tag=73)
        return _csr_from(arrays, shape, dtype)
    for r in range(1, comm.Get_size()):
        arrays = _csr_parts(rows_of(r))
        comm.send(int(arrays[0].size), dest=r, tag=72)
        for a in arrays:
            comm.Send(a, dest=r, tag=73)
    return _csr_from(_csr_parts(rows_of(0)), shape, dtype)


def _scatter_rows(comm, block_of_rank, shape, dtype) -> np.ndarray:
    """Rank 0 sends ``block_of_rank(r)`` to each rank r (one at a time, to bound its memory)."""
    if comm.Get_rank() != 0:
        out = np.empty(shape, dtype=dtype)
        with watched(comm, "distribute's receive of this rank's tasks"):
            comm.Recv(out, source=0, tag=71)
        return out
    for r in range(1, comm.Get_size()):
        comm.Send(np.ascontiguousarray(block_of_rank(r), dtype=dtype), dest=r, tag=71)
    return np.ascontiguousarray(block_of_rank(0), dtype=dtype)


# ---------------------------------------------------------------------------------- reduction
class MPIReduction:
    """The solver's reduction over the ranks of ``comm`` (see :mod:`mtlx._reduction`).

    Collective to build: gathers every rank's task ids once, checks that they are unique and
    that all ranks agree on n_features and dtype.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    data : TaskData
        This rank's tasks (possibly none).

    Attributes
    ----------
    global_ids : ndarray, shape (T,)
        All task ids, sorted: the global task order (the columns of the result).
    local_index : ndarray of int64
        Position of each of this rank's tasks in the global order.
    n_features : int
    dtype : numpy.dtype
    n_calls, n_bytes : int
        Allreduce calls and bytes (per rank) so far.
    seconds : float
        Wall time spent in those Allreduce calls (latency, bandwidth, and waiting for the
        slowest rank).
    """

    distributed = True

    def __init__(self, comm, data: TaskData):
        self._MPI = _mpi()
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.n_calls = 0
        self.n_bytes = 0
        self.seconds = 0.0
        with watched(comm, "the exchange of task ids that starts a solve"):
            info = comm.allgather((np.asarray(data.task_ids), data.n_features, data.dtype.str))
        ids = [i for i, _, _ in info]
        shapes = {(d, dt) for i, d, dt in info if len(i)}
        if not shapes:
            raise ValueError("no rank holds a task: at least one task is required")
        if len(shapes) > 1:
            detail = ", ".join(f"rank {r}: d={d} {np.dtype(dt)}" for r, (i, d, dt) in enumerate(info) if len(i))
            raise ValueError(f"the ranks' tasks disagree on n_features or dtype ({detail})")
        (self.n_features, dtype), = shapes
        self.dtype = np.dtype(dtype)
        self.counts = np.array([len(i) for i in ids], dtype=np.int64)
        everything = np.concatenate(ids)
        order = np.argsort(everything, kind="stable")
        self.global_ids = everything[order]
        dup = np.flatnonzero(self.global_ids[1:] == self.global_ids[:-1])
        if dup.size:
            raise ValueError(f"task id {self.global_ids[dup[0]]} is held by more than one rank")
        self._position = np.empty(len(order), dtype=np.int64)  # rank-order row -> global position
        self._position[order] = np.arange(len(order))
        first = int(self.counts[: self.rank].sum())
        self.local_index = self._position[first : first + self.counts[self.rank]]

    @functools.cached_property
    def cuda_aware(self) -> bool:
        """Whether a device solve hands its statistics to MPI in GPU memory (:func:`cuda_aware_mpi`)."""
        return cuda_aware_mpi()

    def conform(self, data: TaskData) -> TaskData:
        """``data``, or for a rank without tasks an empty store of the agreed shape and dtype."""
        if data.n_tasks:
            return data
        return TaskData.empty(self.n_features, self.dtype)

    def allreduce(self, buf: np.ndarray, failure: BaseException | None = None, synchronize=None) -> np.ndarray:
        """``comm.Allreduce(MPI.IN_PLACE, buf, SUM)``; the last slot carries the failure flag.

        ``buf`` is host memory, or GPU memory (CuPy: mpi4py takes it through DLPack, else
        ``__cuda_array_interface__``, without ordering it on a stream) when :attr:`cuda_aware`;
        then ``synchronize()`` waits for its writes (the flag's too) before MPI reads it.

        MPICH's reduction order is fixed for a given number of ranks and every rank receives
        the same bits, so every rank takes the same decisions and reruns are bitwise identical.
        """
        buf[-1] = 0.0 if failure is None else 1.0
        if synchronize is not None:
            synchronize()
        start = time.perf_counter()
        with watched(self.comm, "an Allreduce of a solve"):
            self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        self.seconds += time.perf_counter() - start
        self.n_calls += 1
        self.n_bytes += buf.nbytes
        if float(buf[-1]) > 0.0:
            raise_agreed(self.comm, failure)
        return buf

    def sum_ints(self, buf: np.ndarray) -> np.ndarray:
        """Sum the integers of ``buf`` over ranks in place (collective; exact in any order)."""
        with watched(self.comm, "an Allreduce of a solve"):
            self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        return buf

    def max_ints(self, buf: np.ndarray) -> np.ndarray:
        """Elementwise maximum of the integers of ``buf`` over ranks, in place (collective)."""
        with watched(self.comm, "an Allreduce of a solve"):
            self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.MAX)
        return buf

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is true on some rank (collective)."""
        with watched(self.comm, "an Allreduce of a solve"):
            return bool(self.comm.allreduce(int(bool(flag)), op=self._MPI.MAX))

    def max(self, value: float) -> float:
        """The largest ``value`` over ranks (collective)."""
        with watched(self.comm, "an Allreduce of a solve"):
            return float(self.comm.allreduce(float(value), op=self._MPI.MAX))

    def task_mean(self, rows: np.ndarray) -> np.ndarray:
        """The mean of the rows (one per local task) over the tasks of all ranks (collective)."""
        buf = np.zeros(rows.shape[1] + 1)
        buf[:-1] = rows.sum(axis=0)
        buf[-1] = len(rows)
        with watched(self.comm, "an Allreduce of a solve"):
            self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        return buf[:-1] / max(buf[-1], 1.0)

    def agreed_errors(self):
        """See :func:`agreed_errors`."""
        return agreed_errors(self.comm)

    def agree(self, options: dict, where: str) -> None:
        """Collective: a ValueError on every rank unless all ranks passed the same ``options``.

        Each rank holds its own tasks but the problem is one: alpha, the penalty, the
        network's shape, the tolerances must be the same everywhere. Differing, they either
        ran to a converged wrong answer (alpha 0.05 on one rank, 0.5 on another) or broke an
        Allreduce of differing sizes inside MPI. One small allgather of fingerprints; the
        values themselves travel only to name the options that differ.

        Parameters
        ----------
        options : dict
            Name -> value (numbers, strings, tuples, arrays, penalties, losses).
        where : str
            The call, for the message (``"mtlx.solve"``).
        """
        mine = {name: _fingerprint(value) for name, value in options.items()}
        with watched(self.comm, f"the agreement on {where}'s options"):
            everyone = self.comm.allgather(mine)
        # (Decided from what every rank received, so that all ranks take the same branch.)
        differ = [name for name in mine if len({str(other.get(name)) for other in everyone}) > 1]
        if not differ:
            return
        with watched(self.comm, f"the agreement on {where}'s options"):
            shown = self.comm.allgather({name: short_repr(options[name], 60) for name in differ})
        detail = "; ".join(f"{name}: " + ", ".join(f"rank {r} {values[name]}" for r, values in enumerate(shown))
                           for name in differ)
        error = ValueError(f"{where} needs the same options on every rank (each rank passes its own tasks and the "
                           f"single-process keywords); they differ in {detail}")
        error.mtlx_agreed = True  # raised on every rank (see raise_agreed)
        raise error

    def allgather_tasks(self, rows: np.ndarray) -> np.ndarray:
        """Rows of this rank's tasks (first axis) -> rows of all tasks, in global order, on every rank."""
        rows = np.ascontiguousarray(rows)
        tail = rows.shape[1:]
        width = int(np.prod(tail, dtype=np.int64))
        out = np.empty((int(self.counts.sum()),) + tail, dtype=rows.dtype)
        counts = self.counts * width
        with watched(self.comm, "the gather of the result"):
            self.comm.Allgatherv(rows, [out, (counts, _displacements(counts))])
        result = np.empty_like(out)
        result[self._position] = out
        return result

    def gather_tasks(self, rows: np.ndarray) -> np.ndarray | None:
        """Like :meth:`allgather_tasks`, but only rank 0 receives (the others get None)."""
        rows = np.ascontiguousarray(rows)
        tail = rows.shape[1:]
        width = int(np.prod(tail, dtype=np.int64))
        counts = self.counts * width
        with watched(self.comm, "a gather of task rows to rank 0"):
            if self.rank != 0:
                self.comm.Gatherv(rows, None, root=0)
                return None
            out = np.empty((int(self.counts.sum()),) + tail, dtype=rows.dtype)
            self.comm.Gatherv(rows, [out, (counts, _displacements(counts))], root=0)
        result = np.empty_like(out)
        result[self._position] = out
        return result


def _displacements(counts: np.ndarray) -> np.ndarray:
    displs = np.zeros_like(counts)
    np.cumsum(counts[:-1], out=displs[1:])
    return displs
