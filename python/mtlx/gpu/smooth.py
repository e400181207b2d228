"""The smooth part of the objective evaluated on the device: :class:`~mtlx.objective.SmoothLoss`
with its one core call replaced by the CUDA kernels.

In a solve, the parameters and the gradient are device arrays too (the problem keeps theta where
``ops`` says: the backend), so an evaluation moves nothing but its value to the host. Called with
host arrays (``mtlx.loss_grad``), W goes up and the gradient comes back. The stacked layout runs
the fused chunk kernel (``mtlx/cuda.hpp``); the shared layout computes Z = X W' and the gradient
R' X with cuBLAS around the residual kernel. A multinomial task's columns weigh 0 in the kernels
and their softmax loss is added as on the host (:meth:`~mtlx.objective.SmoothLoss._add_softmax`,
numpy code that CuPy runs: its products in cuBLAS), with its rows' one-hot targets and weights
moved to the device once.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..objective import SmoothLoss
from .backend import Workspace

__all__ = ["DeviceSmoothLoss", "chunk_plan"]


def chunk_plan(offsets: np.ndarray, chunk_rows: int):
    """The stacked kernel's fixed cut of each task's rows into chunks of ``chunk_rows`` (host arrays):
    ``(chunk_begin (n_chunks + 1,), chunk_task (n_chunks,), task_chunks (T + 1,))``."""
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offsets)
    per_task = (counts + chunk_rows - 1) // chunk_rows
    task_chunks = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(per_task, out=task_chunks[1:])
    chunk_task = np.repeat(np.arange(len(counts), dtype=np.int64), per_task)
    within = np.arange(int(task_chunks[-1]), dtype=np.int64) - task_chunks[chunk_task]
    chunk_begin = np.append(offsets[chunk_task] + within * chunk_rows, offsets[-1]).astype(np.int64)
    return chunk_begin, chunk_task, task_chunks


class DeviceSmoothLoss(SmoothLoss):
    """``f(W, b)`` over :class:`~mtlx.gpu.data.DeviceTaskData` (parameters and gradient on the host).

    Parameters
    ----------
    data : DeviceTaskData
    loss, task_weights, n_threads
        As :class:`~mtlx.objective.SmoothLoss`.
    """

    def __init__(self, data, loss="squared", task_weights="mean", n_threads: int | None = None):
        super().__init__(data, loss, task_weights, n_threads)
        be = self.backend = data.backend
        # (X: a view of the device rows, or for a sparse X (shared: the whole X) its device copy; the
        # targets and weights were checked on their host copies)
        self._softmax = [(X if data.device_X is None else _device_rows(data, start),
                          be.asarray(Y), None if s is None else be.asarray(s))
                         for (start, _), (X, Y, s) in zip(self.softmax_groups, self._softmax)]
        T, d, dtype = data.n_tasks, data.n_features, data.dtype
        n = int(data.X.shape[0])
        shared = data.layout == "shared"
        sparse = data.device_X is not None
        self._store = SimpleNamespace(
            X=data.device_X if sparse else data.X, XT=data.device_XT, sparse=sparse,
            y=None if shared else data.device_targets, Y=data.device_targets if shared else None,
            losses=be.asarray(np.asarray(self.losses, dtype=np.uint8)),
            loss_params=be.asarray(np.asarray(self.loss_params, dtype=np.float64)),
            weights=be.asarray(np.asarray(self._core_weights, dtype=np.float64)),
            sample_weight=data.device_sample_weight, n_tasks=T, n_features=d, n_samples=n)
        if shared:
            n_chunks = (n + be.chunk_rows - 1) // be.chunk_rows
            self._Z = be.empty((n, T), dtype, "the margins X W'")
            self._R = be.empty((n, T), dtype, "the loss derivatives")
            self._work = Workspace(be, 0, n_chunks * T, T)
            self._plan = None
            self._gradient_t = be.empty((d, T), dtype, "the gradient X' R") if sparse else None
        else:
            begin, task, task_chunks = chunk_plan(data.offsets, be.chunk_rows)
            self._plan = SimpleNamespace(chunk_begin=be.asarray(begin), chunk_task=be.asarray(task),
                                         task_chunks=be.asarray(task_chunks), n_chunks=int(len(task)))
            # (a CSR X's gradient needs no per-chunk sums: n scratch entries for the rows' derivatives)
            self._work = Workspace(be, 0 if sparse else len(task) * d, len(task), T)
            self._r = be.empty((n,), dtype, "the rows' loss derivatives") if sparse else None

    @property
    def ops(self):
        """Where a solve over this loss keeps theta: the device (:mod:`mtlx._ops`)."""
        return self.backend

    def __call__(self, Wt, b, gWt=None, gb=None) -> float:
        """Device arrays (a device-resident solve) are read and written in place; host arrays (the
        ``loss_grad`` API) go up and come back through the loss's own buffers."""
        be = self.backend
        # The data's GPU current for all of it: the multinomial tasks' numpy code runs on CuPy's
        # current device and stream (loss_grad and alpha_max call here outside a solve's context).
        with be.activate():
            if be.resident(Wt):
                return super().__call__(Wt, b, gWt, gb)
            buffers = self._host_call_buffers(Wt)
            be.upload(buffers.Wt, Wt)
            if b is not None:
                be.upload(buffers.b, b)
            want = gWt is not None
            value = super().__call__(buffers.Wt, None if b is None else buffers.b, buffers.gWt if want else None,
                                     buffers.gb if want else None)
            if want:
                be.download(buffers.gWt, gWt)
                be.download(buffers.gb, gb)
            return value

    def _core_call(self, Wt, b, gWt, gb) -> float:
        """The kernels' pass over device parameters (and gradient)."""
        be = self.backend
        want = gWt is not None
        store = self._store
        if self._plan is not None and store.sparse:
            value = be.loss_grad_stacked_csr(store, self._plan, Wt, b, gWt, gb, self._r, self._work)
        elif self._plan is not None:
            value = be.loss_grad_stacked(store, self._plan, Wt, b, gWt, gb, self._work)
        elif store.sparse:  # cuSPARSE: Z = X W', then X' R through X' stored as CSR
            be.sparse_matmul(store.X, Wt.T, self._Z)
            value = be.shared_residuals(store, self._Z, b, self._R if want else None, gb, self._work)
            if want:
                be.sparse_matmul(store.XT, self._R, self._gradient_t)
                be.copyto(gWt, self._gradient_t.T)
        else:
            be.matmul(store.X, Wt.T, self._Z)
            value = be.shared_residuals(store, self._Z, b, self._R if want else None, gb, self._work)
            if want:
                be.matmul(self._R.T, store.X, gWt)
        return float(value)

    def _host_call_buffers(self, Wt):
        """Device copies of host parameters and their gradient (a ``loss_grad`` call), made on the first
        such call: a device-resident solve passes its own arrays and never needs them."""
        if not hasattr(self, "_buffers"):
            be, (T, d), dtype = self.backend, Wt.shape, Wt.dtype
            self._buffers = SimpleNamespace(Wt=be.empty((T, d), dtype, "W"), b=be.empty((T,), dtype, "the intercepts"),
                                            gWt=be.empty((T, d), dtype, "the gradient of W"),
                                            gb=be.empty((T,), dtype, "the gradient of the intercepts"))
        return self._buffers


def _device_rows(data, t: int):
    """The device CSR rows of the task at position ``t`` (the whole X when it is shared)."""
    if data.layout == "shared":
        return data.device_X
    return data.device_X[int(data.offsets[t]): int(data.offsets[t + 1])]
