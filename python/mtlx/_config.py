"""Run-time settings shared by every core call (thread count)."""

from __future__ import annotations

import contextlib
import os

from . import _core
from ._validate import MAX_THREADS, check_int

__all__ = ["blas_threads", "resolve_n_threads"]

_controller = None


def resolve_n_threads(n_threads: int | None = None) -> int:
    """Number of threads for the core's OpenMP loops.

    Parameters
    ----------
    n_threads : int or None
        Explicit count; ``None`` reads ``MTLX_NUM_THREADS`` and falls back to all cores.

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
