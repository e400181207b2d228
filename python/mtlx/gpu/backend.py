"""Where device arrays live and which kernels run on them: one small object per device.

:class:`CudaBackend` is CuPy's memory and streams with mtlx's own kernels (``mtlx._core.cuda``);
the shared-input products go through CuPy's matmul, i.e. cuBLAS. :class:`DeviceTaskData` and
:class:`DeviceSmoothLoss` are written against this interface only (``xp``, ``empty``, ``upload``,
``download``, the two kernels), so the same glue runs on any backend with these members: the test
suite runs it on the host with numpy arrays and a numpy reference of the kernels.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .. import _core

__all__ = ["CudaBackend", "Workspace"]


class Workspace:
    """The kernels' scratch, in doubles (see ``mtlx/cuda.hpp``), allocated once per loss."""

    def __init__(self, backend, n_partial: int, n_chunk_sums: int, n_tasks: int):
        self.partial = backend.empty((max(n_partial, 1),), np.float64, "the per-chunk gradient sums")
        self.chunk_loss = backend.empty((max(n_chunk_sums, 1),), np.float64, "the per-chunk loss sums")
        self.chunk_deriv = backend.empty((max(n_chunk_sums, 1),), np.float64, "the per-chunk derivative sums")
        self.task_loss = backend.empty((max(n_tasks, 1),), np.float64, "the per-task losses")
        self.total = backend.empty((1,), np.float64, "the total loss")


class CudaBackend:
    """CuPy arrays on device ``index``, mtlx's CUDA kernels, cuBLAS products.

    Parameters
    ----------
    index : int
        The CUDA device (already checked to exist, :func:`mtlx.gpu.arrays.resolve_device`).
    """

    name = "cuda"
    #: Rows per chunk of the stacked kernel (mtlx/cuda.hpp: kChunkRows).
    chunk_rows = int(_core.cuda.CHUNK_ROWS) if _core.HAS_CUDA else 64

    def __init__(self, index: int):
        import cupy

        self.xp = cupy
        self.index = int(index)
        self._device = cupy.cuda.Device(self.index)

    def __repr__(self) -> str:
        return f"CudaBackend(cuda:{self.index})"

    def activate(self):
        """A context in which this backend's device is the current one."""
        return self._device

    # ------------------------------------------------------------------ memory
    @contextlib.contextmanager
    def _allocating(self, what: str, n_bytes: int):
        """This device current; out of device memory becomes a MemoryError saying what needed how much."""
        cupy = self.xp
        try:
            with self._device:
                yield
        except cupy.cuda.memory.OutOfMemoryError as exc:
            with self._device:
                free, total = cupy.cuda.runtime.memGetInfo()
            raise MemoryError(f"cuda:{self.index} is out of memory: {what} needs {n_bytes / 2**20:.1f} MiB, "
                              f"{free / 2**20:.1f} MiB of {total / 2**20:.1f} MiB are free") from exc

    def empty(self, shape, dtype, what: str):
        """A new device array (``what`` names it in an out-of-memory error)."""
        with self._allocating(what, int(np.prod(shape)) * np.dtype(dtype).itemsize):
            return self.xp.empty(shape, dtype=dtype)

    def asarray(self, a, dtype=None, what: str = "an array moved to the device"):
        """A host array moved to this device (one copy), or a device array as it is (converted on the
        device when ``dtype`` differs)."""
        n_bytes = int(np.prod(np.shape(a))) * np.dtype(dtype if dtype is not None else a.dtype).itemsize
        with self._allocating(what, n_bytes):
            return self.xp.ascontiguousarray(self.xp.asarray(a), dtype=dtype)

    def adopt(self, a, name: str):
        """A device array of any producer as a CuPy array, without a copy."""
        from .arrays import as_cupy

        with self._device:
            return as_cupy(a, name, self.xp)

    def upload(self, dst, src: np.ndarray) -> None:
        """dst (device) <- src (host), same shape and dtype."""
        with self._device:
            dst.set(src)

    def download(self, src, dst: np.ndarray) -> None:
        """dst (host) <- src (device)."""
        with self._device:
            src.get(out=dst)

    def asnumpy(self, a) -> np.ndarray:
        with self._device:
            return self.xp.asnumpy(a)

    @staticmethod
    def _ptr(a) -> int:
        return 0 if a is None else int(a.data.ptr)

    def _stream(self) -> int:
        return int(self.xp.cuda.get_current_stream().ptr)

    # ------------------------------------------------------------------ kernels
    def loss_grad_stacked(self, store, plan, Wt, b, gWt, gb, work: Workspace) -> float:
        """The stacked kernel (``mtlx._core.cuda.loss_grad_stacked_*``): returns the loss; writes gWt, gb when given."""
        p = self._ptr
        fn = _core.cuda.loss_grad_stacked_f64 if store.X.dtype == np.float64 else _core.cuda.loss_grad_stacked_f32
        with self._device:
            return fn(p(store.X), p(store.y), p(store.losses), p(store.loss_params), p(store.weights),
                      p(store.sample_weight), store.n_tasks, store.n_features, p(plan.chunk_begin),
                      p(plan.chunk_task), p(plan.task_chunks), plan.n_chunks, p(Wt), p(b), p(gWt), p(gb),
                      p(work.partial), p(work.chunk_loss), p(work.chunk_deriv), p(work.task_loss), p(work.total),
                      self._stream())

    def shared_residuals(self, store, Z, b, R, gb, work: Workspace) -> float:
        """The shared-layout residual kernel: R = c s L'(Y, Z + b) (when R is given), gb, the loss."""
        p = self._ptr
        fn = _core.cuda.shared_residuals_f64 if store.Y.dtype == np.float64 else _core.cuda.shared_residuals_f32
        with self._device:
            return fn(p(store.Y), p(store.losses), p(store.loss_params), p(store.weights), p(store.sample_weight),
                      store.n_samples, store.n_tasks, p(Z), p(b), p(R), p(gb), p(work.chunk_loss),
                      p(work.chunk_deriv), p(work.task_loss), p(work.total), self._stream())

    def matmul(self, a, b, out) -> None:
        """out = a @ b on the device (cuBLAS)."""
        with self._device:
            self.xp.matmul(a, b, out=out)

    def synchronize(self) -> None:
        with self._device:
            self.xp.cuda.get_current_stream().synchronize()
