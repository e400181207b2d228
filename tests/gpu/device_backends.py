"""The backends the device tests run their one shared body on.

``HostEmulation`` is the device backend's interface on the host: numpy arrays, and the arithmetic
of the CUDA kernels (mtlx/cuda.hpp) written independently in numpy, chunk by chunk in the plan's
order. It runs all of mtlx.gpu's glue (device data, chunk plans, buffers, the solve) on machines
without a GPU; ``cuda`` runs the real kernels and skips unless CuPy sees a device.
"""

import contextlib

import numpy as np
import pytest

import mtlx
from mtlx import _core

K = _core.LossKind


def loss_value(code, param, y, z):
    y, z = y.astype(np.float64), z.astype(np.float64)
    if code == int(K.squared):
        return 0.5 * (z - y) ** 2
    if code == int(K.logistic):
        return np.logaddexp(0.0, -y * z)
    if code == int(K.huber):
        a = np.abs(y - z)
        return np.where(a <= param, a * a, param * (2.0 * a - param))
    if code == int(K.squared_hinge):
        return np.maximum(0.0, 1.0 - y * z) ** 2
    if code == int(K.poisson):
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
        return np.exp(z) - y * z + ylogy - y
    raise AssertionError(code)


def loss_deriv(code, param, y, z):
    y, z = y.astype(np.float64), z.astype(np.float64)
    if code == int(K.squared):
        return z - y
    if code == int(K.logistic):
        return -y / (1.0 + np.exp(y * z))
    if code == int(K.huber):
        return -2.0 * np.clip(y - z, -param, param)
    if code == int(K.squared_hinge):
        return -2.0 * y * np.maximum(0.0, 1.0 - y * z)
    if code == int(K.poisson):
        return np.exp(z) - y
    raise AssertionError(code)


class HostEmulation:
    """The backend interface of mtlx.gpu.backend.CudaBackend on the host (see the module docstring)."""

    name = "host-emulation"
    index = 0
    chunk_rows = 5  # small, so that tasks of a few rows span several chunks
    xp = np

    def activate(self):
        return contextlib.nullcontext()

    def empty(self, shape, dtype, what):
        return np.full(shape, np.nan, dtype=dtype)  # NaN: a buffer read before it is written shows

    def asarray(self, a, dtype=None, what=None):
        return np.array(a, dtype=dtype, copy=True, order="C")  # a move to a device is a copy

    def adopt(self, a, name):
        return np.asarray(a)

    def upload(self, dst, src):
        assert dst.shape == src.shape and dst.dtype == src.dtype
        dst[...] = src

    def download(self, src, dst):
        assert dst.shape == src.shape and dst.dtype == src.dtype
        dst[...] = src

    def asnumpy(self, a):
        return np.array(a)

    def matmul(self, a, b, out):
        np.matmul(a, b, out=out)

    def _terms(self, store, t, y, z, s):
        code, param, c = int(store.losses[t]), float(store.loss_params[t]), float(store.weights[t])
        keep = np.ones_like(z, dtype=bool) if s is None else s != 0
        scale = c * (1.0 if s is None else s.astype(np.float64))
        v = np.where(keep, scale * loss_value(code, param, y, z), 0.0)
        r = np.where(keep, scale * loss_deriv(code, param, y, z), 0.0)
        return v, r

    def loss_grad_stacked(self, store, plan, Wt, b, gWt, gb, work):
        X, y, s = store.X, store.y, store.sample_weight
        d = store.n_features
        for k in range(plan.n_chunks):
            lo, hi, t = int(plan.chunk_begin[k]), int(plan.chunk_begin[k + 1]), int(plan.chunk_task[k])
            assert 0 < hi - lo <= self.chunk_rows
            z = X[lo:hi] @ Wt[t] + (0 if b is None else b[t])
            v, r = self._terms(store, t, y[lo:hi], z, None if s is None else s[lo:hi])
            work.partial[k * d:(k + 1) * d] = r @ X[lo:hi].astype(np.float64)
            work.chunk_loss[k], work.chunk_deriv[k] = v.sum(), r.sum()
        total = 0.0
        for t in range(store.n_tasks):
            a, e = int(plan.task_chunks[t]), int(plan.task_chunks[t + 1])
            if gWt is not None:
                gWt[t] = work.partial[a * d:e * d].reshape(e - a, d).sum(axis=0)
                gb[t] = work.chunk_deriv[a:e].sum()
            total += work.chunk_loss[a:e].sum()
        return total

    def shared_residuals(self, store, Z, b, R, gb, work):
        total = 0.0
        for t in range(store.n_tasks):
            z = Z[:, t] + (0 if b is None else b[t])
            s = None if store.sample_weight is None else store.sample_weight[:, t]
            v, r = self._terms(store, t, store.Y[:, t], z, s)
            if R is not None:
                R[:, t] = r
            if gb is not None:
                gb[t] = r.sum()
            total += v.sum()
        return total


def cuda_available():
    if not mtlx.HAS_CUDA:
        return False
    try:
        import cupy
    except ImportError:
        return False
    return bool(cupy.is_available())


BACKENDS = ["host-emulation", pytest.param("cuda", marks=pytest.mark.skipif(
    not cuda_available(), reason="needs mtlx built with CUDA (MTLX_CUDA=ON), CuPy and a CUDA device"))]


def on_device(backend_name, layout, *args, **kwargs):
    """The TaskData of ``TaskData.from_<layout>(*args, **kwargs)`` (numpy arrays) on the backend:
    through the device-array constructors for CUDA (CuPy inputs), moved whole for the emulation."""
    from mtlx.gpu.data import to_device

    build = getattr(mtlx.TaskData, f"from_{layout}")
    if backend_name == "host-emulation":
        data = to_device(build(*args, **kwargs), HostEmulation())
        data.from_device = True
        return data
    import cupy

    def move(a):
        if isinstance(a, np.ndarray):
            return cupy.asarray(a)
        if isinstance(a, (list, tuple)):
            return type(a)(move(x) for x in a)
        return a

    return build(*move(list(args)), **{k: move(v) for k, v in kwargs.items()})


def to_host(a):
    if a is None or isinstance(a, np.ndarray):
        return a
    import cupy

    return cupy.asnumpy(a)
