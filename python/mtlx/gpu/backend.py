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

    on_device = True
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

    def zeros(self, shape, dtype, what: str):
        """A new device array of zeros."""
        with self._allocating(what, int(np.prod(shape)) * np.dtype(dtype).itemsize):
            return self.xp.zeros(shape, dtype=dtype)

    def asarray(self, a, dtype=None, what: str = "an array moved to the device"):
        """A host array moved to this device (one copy), or a device array as it is (converted on the
        device when ``dtype`` differs)."""
        n_bytes = int(np.prod(np.shape(a))) * np.dtype(dtype if dtype is not None else a.dtype).itemsize
        with self._allocating(what, n_bytes):
            return self.xp.ascontiguousarray(self.xp.asarray(a), dtype=dtype)

    def sparse(self, X, what: str):
        """A host CSR matrix copied to this device (cupyx.scipy.sparse: cuSPARSE's products).

        cuSPARSE through CuPy indexes with int32: a matrix beyond that (2^31 entries or columns) is
        refused with a ValueError rather than truncated.
        """
        import cupyx.scipy.sparse as device_sparse
        import scipy.sparse as sp

        limit = np.iinfo(np.int32).max
        if X.nnz > limit or max(X.shape) > limit:
            raise ValueError(f"{what}: {X.nnz} stored entries and shape {X.shape} exceed the int32 indices of "
                             "cuSPARSE through CuPy; solve it on the host (device=None)")
        host = sp.csr_matrix((X.data, X.indices.astype(np.int32, copy=False), X.indptr.astype(np.int32, copy=False)),
                             shape=X.shape, copy=False)
        n_bytes = int(X.data.nbytes + 4 * (X.nnz + X.shape[0] + 1))
        with self._allocating(what, n_bytes):
            return device_sparse.csr_matrix(host)

    def sparse_matmul(self, A, B, out) -> None:
        """``out = A @ B`` for a device CSR ``A`` and a dense device ``B`` (cuSPARSE)."""
        with self._device:
            out[...] = A @ B

    def adopt(self, a, name: str):
        """A device array of any producer as a CuPy array, without a copy (on this device, else a
        ValueError naming both devices)."""
        from .arrays import as_cupy

        with self._device:
            arr = as_cupy(a, name, self.xp)
        if arr.device.id != self.index:
            raise ValueError(f"{name} is on cuda:{arr.device.id} but the other arrays of this call are on "
                             f"cuda:{self.index}: move it (with cupy.cuda.Device({self.index}): cupy.asarray(...))")
        return arr

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

    def _ptr(self, a, dtype=None) -> int:
        """The pointer of a C-contiguous array on this device (0 for None), of ``dtype`` when given:
        the kernels index raw memory, so a wrong dtype, layout or device must never reach them."""
        if a is None:
            return 0
        if not isinstance(a, self.xp.ndarray) or (dtype is not None and a.dtype != dtype) or \
                not a.flags.c_contiguous or a.device.id != self.index:
            raise TypeError(f"expected a C-contiguous {np.dtype(dtype) if dtype is not None else ''} array on "
                            f"cuda:{self.index}, got {type(a).__name__} {getattr(a, 'dtype', '')} "
                            f"{getattr(a, 'shape', '')}")
        return int(a.data.ptr)

    def _ptr64(self, a) -> int:
        """:meth:`_ptr` of a float64 array (the iterate's dtype)."""
        return self._ptr(a, np.float64)

    def _stream(self) -> int:
        return int(self.xp.cuda.get_current_stream().ptr)

    # ------------------------------------------------------------------ kernels
    def loss_grad_stacked(self, store, plan, Wt, b, gWt, gb, work: Workspace) -> float:
        """The stacked kernel (``mtlx._core.cuda.loss_grad_stacked_*``): returns the loss; writes gWt, gb when given."""
        real = store.X.dtype
        fn = _core.cuda.loss_grad_stacked_f64 if real == np.float64 else _core.cuda.loss_grad_stacked_f32

        def p(a, dtype=real):
            return self._ptr(a, dtype)

        i64, f64 = np.int64, np.float64
        with self._device:
            return fn(p(store.X), p(store.y), p(store.losses, np.uint8), p(store.loss_params, f64),
                      p(store.weights, f64), p(store.sample_weight), store.n_tasks, store.n_features,
                      p(plan.chunk_begin, i64), p(plan.chunk_task, i64), p(plan.task_chunks, i64), plan.n_chunks,
                      p(Wt), p(b), p(gWt), p(gb), p(work.partial, f64), p(work.chunk_loss, f64),
                      p(work.chunk_deriv, f64), p(work.task_loss, f64), p(work.total, f64), self._stream())

    def loss_grad_stacked_csr(self, store, plan, Wt, b, gWt, gb, r, work: Workspace) -> float:
        """The stacked kernel for a CSR X (``mtlx._core.cuda.loss_grad_stacked_csr_*``; ``store.X`` and
        ``store.XT``: cupyx CSR matrices with int32 indices, ``r``: n scratch entries)."""
        real = store.X.dtype
        fn = _core.cuda.loss_grad_stacked_csr_f64 if real == np.float64 else _core.cuda.loss_grad_stacked_csr_f32

        def p(a, dtype=real):
            return self._ptr(a, dtype)

        i32, i64, f64 = np.int32, np.int64, np.float64
        X, XT = store.X, store.XT
        with self._device:
            return fn(p(X.data), p(X.indices, i32), p(X.indptr, i32), p(XT.data), p(XT.indices, i32),
                      p(XT.indptr, i32), p(store.y), p(store.losses, np.uint8),
                      p(store.loss_params, f64), p(store.weights, f64), p(store.sample_weight), store.n_tasks,
                      store.n_features, p(plan.chunk_begin, i64), p(plan.chunk_task, i64), p(plan.task_chunks, i64),
                      plan.n_chunks, p(Wt), p(b), p(gWt), p(gb), p(r), p(work.chunk_loss, f64),
                      p(work.chunk_deriv, f64), p(work.task_loss, f64), p(work.total, f64), self._stream())

    def shared_residuals(self, store, Z, b, R, gb, work: Workspace) -> float:
        """The shared-layout residual kernel: R = c s L'(Y, Z + b) (when R is given), gb, the loss."""
        real = store.Y.dtype
        fn = _core.cuda.shared_residuals_f64 if real == np.float64 else _core.cuda.shared_residuals_f32

        def p(a, dtype=real):
            return self._ptr(a, dtype)

        f64 = np.float64
        with self._device:
            return fn(p(store.Y), p(store.losses, np.uint8), p(store.loss_params, f64), p(store.weights, f64),
                      p(store.sample_weight), store.n_samples, store.n_tasks, p(Z), p(b), p(R), p(gb),
                      p(work.chunk_loss, f64), p(work.chunk_deriv, f64), p(work.task_loss, f64), p(work.total, f64),
                      self._stream())

    def matmul(self, a, b, out) -> None:
        """out = a @ b on the device (cuBLAS)."""
        with self._device:
            self.xp.matmul(a, b, out=out)

    # ------------------------------------------------------------------ the solve's ops (mtlx._ops)
    def resident(self, a) -> bool:
        """Whether ``a`` is a device array (a solve's own) rather than host input."""
        return isinstance(a, self.xp.ndarray)

    def to_host(self, a):
        return a if isinstance(a, np.ndarray) else self.asnumpy(a)

    def empty_like(self, a):
        return self.empty(a.shape, a.dtype, "a work array of the solve")

    def copy(self, a):
        with self._allocating("a work array of the solve", int(a.nbytes)):
            return a.copy()

    def copyto(self, dst, src) -> None:
        with self._device:
            self.xp.copyto(dst, src)

    def synchronize(self) -> None:
        """Wait for the work queued on this device's current stream (before MPI reads its memory)."""
        with self._device:
            self.xp.cuda.get_current_stream().synchronize()

    def _sums(self):
        """The fixed-order sums' scratch (allocated once)."""
        if not hasattr(self, "_sum_scratch"):
            blocks = int(_core.cuda.SUM_BLOCKS)
            self._sum_scratch = (self.empty((blocks * 8,), np.float64, "the sums' scratch"),
                                 self.empty((8,), np.float64, "the sums' scratch"))
        partial, result = self._sum_scratch
        return int(partial.data.ptr), int(result.data.ptr)

    def _feature_scratch(self, d: int):
        cache = self.__dict__.setdefault("_features", {})
        if d not in cache:
            cache[d] = self.empty((max(2 * d, 1),), np.float64, "the per-feature scratch of a prox")
        return int(cache[d].data.ptr)

    def squared_norm(self, a) -> float:
        with self._device:
            return _core.cuda.squared_norm(self._ptr64(a), a.size, *self._sums(), self._stream())

    def gradient_step(self, y, g, step: float, out) -> None:
        with self._device:
            _core.cuda.gradient_step(self._ptr64(y), self._ptr64(g), step, self._ptr64(out), out.size,
                                     self._stream())

    def trial_sums(self, x_new, y, x, g, move):
        with self._device:
            return np.array(_core.cuda.trial_sums(self._ptr64(x_new), self._ptr64(y), self._ptr64(x), self._ptr64(g),
                                                  self._ptr64(move), move.size, *self._sums(), self._stream()))

    def extrapolate(self, x_new, move, beta: float, y) -> None:
        with self._device:
            _core.cuda.extrapolate(self._ptr64(x_new), self._ptr64(move), beta, self._ptr64(y), y.size,
                                   self._stream())

    def extrapolate_gradient(self, g_new, g_x, move, beta: float, g_y) -> float:
        with self._device:
            return _core.cuda.extrapolate_gradient(self._ptr64(g_new), self._ptr64(g_x), self._ptr64(move), beta,
                                                   self._ptr64(g_y), g_y.size, *self._sums(), self._stream())

    def prox(self, kind, V, tau: float, out, n_threads: int) -> float:
        kind = _core.PenaltyKind(int(kind))
        with self._device:
            if kind == _core.PenaltyKind.trace:
                return self._prox_trace(V, tau, out)
            if kind == _core.PenaltyKind.none:
                self.xp.copyto(out, V)
                return 0.0
            T, d = V.shape
            return _core.cuda.prox(int(kind), self._ptr64(V), T, d, tau, self._ptr64(out), self._feature_scratch(d),
                                   *self._sums(), self._stream())

    def penalty_value(self, kind, V, n_threads: int) -> float:
        kind = _core.PenaltyKind(int(kind))
        with self._device:
            if kind == _core.PenaltyKind.trace:
                # (an SVD, not the Gram matrix's eigenvalues: a zero singular value would come out
                # as sqrt(eps) times the largest)
                return float(self.xp.linalg.svd(V, compute_uv=False).sum()) if V.size else 0.0
            if kind == _core.PenaltyKind.none:
                return 0.0
            T, d = V.shape
            return _core.cuda.penalty_value(int(kind), self._ptr64(V), T, d, self._feature_scratch(d), *self._sums(),
                                            self._stream())

    def _prox_trace(self, V, tau: float, out) -> float:
        """Singular value thresholding through the eigendecomposition of the small Gram matrix
        (cuSOLVER's syevd through CuPy): V V' (T x T) when T <= d, else V' V. A kept component has
        s > tau, so its relative error is eps (s_max / s)^2; the value is the sum of the shrunk s."""
        xp = self.xp
        T, d = V.shape
        scale = float(xp.abs(V).max()) if V.size else 0.0
        if not scale > 0:
            out[...] = 0.0
            return 0.0
        # Scaled by the largest entry first (as on the host): the Gram matrix of a W of scale 1e200
        # overflows and of 1e-170 underflows.
        U = V / scale
        small_side = T <= d
        G = U @ U.T if small_side else U.T @ U
        lam, Q = xp.linalg.eigh(G)
        s = xp.sqrt(xp.maximum(lam, 0.0))
        shrunk = xp.maximum(s - tau / scale, 0.0)
        coef = xp.where(s > 0, shrunk / xp.where(s > 0, s, 1.0), 0.0)
        if small_side:
            out[...] = ((Q * coef) @ (Q.T @ U)) * scale
        else:
            out[...] = (((U @ Q) * coef) @ Q.T) * scale
        return float(shrunk.sum()) * scale
