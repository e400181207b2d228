"""Run-time settings shared by every core call (thread count)."""

from __future__ import annotations

import contextlib
import os

from . import _core
from ._validate import MAX_THREADS, check_int

__all__ = ["blas_threads", "resolve_n_threads"]

_controller = None


#: Entries of X one core call must read per thread before a second thread pays. Below it, waking
#: and joining threads costs about what it saves on an idle machine (a school-sized call, 0.1 ms:
#: 2 threads were slower than 1), and on a busy one every parallel region waits a scheduler
#: quantum for a descheduled thread (a school trace fit: 1.86 s with 2 threads against 0.079 s
#: with 1 while another process held a core).
WORK_PER_THREAD = 1 << 20


def resolve_n_threads(n_threads: int | None = None, work: float | None = None) -> int:
    """Number of threads for the core's OpenMP loops and the BLAS calls of a solve.

    Parameters
    ----------
    n_threads : int or None
        Explicit count; ``None`` reads ``MTLX_NUM_THREADS``, else chooses by ``work``.
    work : float, optional
        Entries of data one call of the problem reads (see :func:`mtlx.gram.work_per_call`):
        with ``n_threads`` None and no ``MTLX_NUM_THREADS``, one thread per
        :data:`WORK_PER_THREAD` of them, up to all cores (all cores when ``work`` is None).

    Returns
    -------
    int
        A count of at least 1.
    """
    if n_threads is None:
        env = os.environ.get("MTLX_NUM_THREADS", "").strip()
        if env:
            try:
                n_threads = int(env)
            except ValueError:
                raise ValueError(f"MTLX_NUM_THREADS must be a positive integer, got {env!r}") from None
        else:
            n_threads = _core.max_threads()
            if work is not None:
                n_threads = max(1, min(n_threads, int(work // WORK_PER_THREAD)))
    return check_int(n_threads, "n_threads", 1, MAX_THREADS)


def blas_threads(n_threads: int):
    """Context in which the BLAS/LAPACK libraries loaded in the process use ``n_threads`` threads.

    The core's SVDs, Gram matrices and shared-input products go to SciPy's BLAS, which would
    otherwise start its own thread pool whatever ``n_threads`` says (oversubscribing the cores
    the core's OpenMP loops use, or another rank's). Uses threadpoolctl (a scikit-learn
    dependency); its controller, which inspects the loaded libraries, is built once. Nested
    with the same count it does nothing (a limit costs ~35 us; inner loops nest freely).
    """
    global _controller
    if int(n_threads) == _active_limit[-1]:
        return contextlib.nullcontext()
    try:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        return _tracked(_controller.limit(limits=int(n_threads), user_api="blas"), int(n_threads))
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()


#: The limits of the enclosing blas_threads contexts (None: no limit set by mtlx).
_active_limit: list = [None]


@contextlib.contextmanager
def _tracked(limiter, n_threads: int):
    """Enters ``limiter`` (a threadpoolctl limit) and records ``n_threads`` while it holds."""
    with limiter:
        _active_limit.append(n_threads)
        try:
            yield
        finally:
            _active_limit.pop()
