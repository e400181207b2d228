"""The arithmetic a solve does on its parameter vectors, where those vectors live.

FISTA (:mod:`mtlx.fista`), the problem's blocks (:mod:`mtlx.problem`) and the native penalties'
proxes ask this object, never numpy or the core directly, for anything on an iterate: so the
same loop runs with its iterate in host memory (:data:`HOST_OPS`, the core's fused loops of
``fista_ops.hpp`` and ``prox.hpp``) or in a GPU's (:class:`mtlx.gpu.backend.CudaBackend`, the
same members over device arrays, with only scalars coming back).
"""

from __future__ import annotations

import numpy as np

from . import _core

__all__ = ["HOST_OPS", "HostOps"]


class HostOps:
    """Parameter vectors as numpy arrays, the core's loops (the default everywhere)."""

    xp = np
    on_device = False

    # -- arrays ---------------------------------------------------------------------------------
    @staticmethod
    def empty(shape, dtype, what: str = ""):
        """A new array where these ops keep arrays (``what`` names it in an out-of-memory error)."""
        return np.empty(shape, dtype=dtype)

    @staticmethod
    def zeros(shape, dtype, what: str = ""):
        return np.zeros(shape, dtype=dtype)

    @staticmethod
    def asarray(a, dtype=None):
        """``a`` where these ops keep arrays (a new array)."""
        return np.array(a, dtype=dtype)

    @staticmethod
    def resident(a) -> bool:
        """Whether ``a`` lives where these ops keep arrays (always, on the host)."""
        return True

    @staticmethod
    def to_host(a):
        """``a`` as a numpy array (itself here)."""
        return a

    @staticmethod
    def empty_like(a):
        return np.empty_like(a)

    @staticmethod
    def copy(a):
        return a.copy()

    @staticmethod
    def copyto(dst, src) -> None:
        np.copyto(dst, src)

    @staticmethod
    def synchronize() -> None:
        """Wait for queued work (none on the host)."""

    @staticmethod
    def squared_norm(a) -> float:
        return float(np.dot(a, a))

    # -- FISTA's fused vector steps (fista_ops.hpp) -----------------------------------------------
    @staticmethod
    def gradient_step(y, g, step: float, out) -> None:
        _core.gradient_step(y, g, step, out)

    @staticmethod
    def trial_sums(x_new, y, x, g, move):
        return _core.trial_sums(x_new, y, x, g, move)

    @staticmethod
    def extrapolate(x_new, move, beta: float, y) -> None:
        _core.extrapolate(x_new, move, beta, y)

    @staticmethod
    def extrapolate_gradient(g_new, g_x, move, beta: float, g_y) -> float:
        return _core.extrapolate_gradient(g_new, g_x, move, beta, g_y)

    # -- the native penalties (prox.hpp) --------------------------------------------------------
    @staticmethod
    def prox(kind, V, tau: float, out, n_threads: int) -> float:
        return _core.prox(int(kind), V, tau, out, n_threads)

    @staticmethod
    def penalty_value(kind, V, n_threads: int) -> float:
        return _core.penalty_value(int(kind), V, n_threads)


HOST_OPS = HostOps()
