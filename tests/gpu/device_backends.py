"""The backends the device tests run their one shared body on.

``HostEmulation`` is the device backend's interface on the host: numpy arrays, and the arithmetic
of the CUDA kernels (mtlx/cuda.hpp) written independently in numpy, chunk by chunk in the plan's
order, from the losses' and proxes' references of tests/reference.py. It runs all of mtlx.gpu's
glue (device data, chunk plans, buffers, the solve) on machines without a GPU; ``cuda`` runs the
real kernels and skips unless CuPy sees a device.
"""

import contextlib
import types

import numpy as np
import pytest

import mtlx
from mtlx import _core

from reference import LOSS_REFS, PROX_REF, penalty_ref

K = _core.LossKind
K_PEN = _core.PenaltyKind


def loss_terms(code, param, y, z):
    """(value, derivative) of loss ``code`` at (y, z), by the numpy references of tests/reference.py."""
    name = K(code).name
    value, deriv = LOSS_REFS[name]
    y, z = y.astype(np.float64), z.astype(np.float64)
    if name == "huber":
        return value(y, z, param), deriv(y, z, param)
    return value(y, z), deriv(y, z)


def _plain(a):
    """The plain-ndarray view of a DeviceArray (recursively in lists and tuples)."""
    if isinstance(a, DeviceArray):
        return a.view(np.ndarray)
    if isinstance(a, (list, tuple)):
        return type(a)(_plain(x) for x in a)
    return a


def _check_not_mixed(items):
    for a in items:
        if isinstance(a, (list, tuple)):
            _check_not_mixed(a)
        elif isinstance(a, np.ndarray) and not isinstance(a, DeviceArray):
            raise TypeError(f"a host array (shape {a.shape}) mixed with device arrays (CuPy refuses this, 0-d too)")


def _wrap(result):
    if isinstance(result, np.ndarray) and not isinstance(result, DeviceArray):
        return result.view(DeviceArray)
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    return result


class DeviceArray(np.ndarray):
    """An ndarray standing for device memory: an operation mixing it with a host array (of one or
    more dimensions) raises, as CuPy's do; results stay DeviceArrays. What it catches is the bug the
    real device would show: host arrays (scales, means) leaking into device arithmetic."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _check_not_mixed(list(inputs) + list(out or ()))
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*_plain(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        _check_not_mixed(list(args) + list(kwargs.values()))
        refused = [k for k in _CUPY_REFUSES.get(func, ()) if k in kwargs]
        if refused:
            raise TypeError(f"CuPy's {func.__name__} does not take {refused}")
        out = kwargs.get("out")
        result = func(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()})
        return out if out is not None else _wrap(result)

    def __setitem__(self, key, value):
        _check_not_mixed([value])
        np.ndarray.__setitem__(self.view(np.ndarray), key, _plain(value))


# Keywords numpy takes and CuPy's functions refuse (a numpy call that works on the host would fail
# on the device).
_CUPY_REFUSES = {np.einsum: ("out", "order", "casting")}


class DeviceCSR:
    """A CSR matrix standing for one in device memory (cupyx.scipy.sparse): its products take and
    give DeviceArrays only, as cuSPARSE's take and give device arrays."""

    def __init__(self, matrix):
        self.matrix = matrix.tocsr()
        self.shape, self.dtype = self.matrix.shape, self.matrix.dtype

    @property
    def T(self):
        return DeviceCSR(self.matrix.T)

    def __getitem__(self, rows):
        return DeviceCSR(self.matrix[rows])

    def __matmul__(self, other):
        assert isinstance(other, DeviceArray), f"a host array ({type(other).__name__}) times a device CSR matrix"
        return _device(self.matrix @ other.view(np.ndarray))


def _device(a):
    return np.array(a, copy=True, order="C").view(DeviceArray)


class HostEmulation:
    """The backend interface of mtlx.gpu.backend.CudaBackend on the host (see the module docstring)."""

    index = 0
    chunk_rows = 5  # small, so that tasks of a few rows span several chunks
    xp = np
    on_device = True

    def __init__(self):
        self.transfers = 0  # uploads and downloads of parameters (none in a device-resident solve)
        self.synchronizations = 0  # waits before MPI reads device memory (a CUDA-aware MPI)
        self.sparse_products = 0  # products of a device CSR matrix
        self.csr_passes = 0  # passes of the stacked CSR kernel

    def activate(self):
        return contextlib.nullcontext()

    # -- memory -----------------------------------------------------------------------------------
    def empty(self, shape, dtype, what):
        return _device(np.full(shape, np.nan, dtype=dtype))  # NaN: a buffer read before it is written shows

    def zeros(self, shape, dtype, what=None):
        return _device(np.zeros(shape, dtype=dtype))

    def asarray(self, a, dtype=None, what=None):
        return _device(np.asarray(_plain(a), dtype=dtype))  # a move to a device is a copy

    def sparse(self, X, what):
        assert not isinstance(X, DeviceCSR)
        return DeviceCSR(X.copy())

    def sparse_matmul(self, A, B, out):
        assert isinstance(A, DeviceCSR) and isinstance(out, DeviceArray)
        self.sparse_products += 1
        out[...] = A @ B

    def adopt(self, a, name):
        return a if isinstance(a, DeviceArray) else np.asarray(a).view(DeviceArray)

    def resident(self, a):
        return isinstance(a, DeviceArray)

    def upload(self, dst, src):
        assert isinstance(dst, DeviceArray) and not isinstance(src, DeviceArray)
        assert dst.shape == src.shape and dst.dtype == src.dtype
        self.transfers += 1
        dst.view(np.ndarray)[...] = src

    def download(self, src, dst):
        assert isinstance(src, DeviceArray) and not isinstance(dst, DeviceArray)
        assert dst.shape == src.shape and dst.dtype == src.dtype
        self.transfers += 1
        dst[...] = src.view(np.ndarray)

    def asnumpy(self, a):
        return np.array(_plain(a))

    to_host = asnumpy

    def empty_like(self, a):
        return self.empty(a.shape, a.dtype, "a work array")

    def copy(self, a):
        return _device(_plain(a))

    def copyto(self, dst, src):
        assert isinstance(dst, DeviceArray) and isinstance(src, DeviceArray)
        dst.view(np.ndarray)[...] = src.view(np.ndarray)

    def synchronize(self):
        self.synchronizations += 1

    def squared_norm(self, a):
        a = _plain(a)
        return float(np.dot(a, a))

    def matmul(self, a, b, out):
        np.matmul(_plain(a), _plain(b), out=_plain(out))

    # -- FISTA's vector steps and the native proxes, written out in numpy ----------------------
    def gradient_step(self, y, g, step, out):
        _plain(out)[...] = _plain(y) - step * _plain(g)

    def trial_sums(self, x_new, y, x, g, move):
        x_new, y, x, g = _plain(x_new), _plain(y), _plain(x), _plain(g)
        d = x_new - y
        _plain(move)[...] = x_new - x
        return np.array([d @ d, g @ d, x_new @ x_new, y @ y, d @ (x_new - x)])

    def extrapolate(self, x_new, move, beta, y):
        _plain(y)[...] = _plain(x_new) + beta * _plain(move)

    def extrapolate_gradient(self, g_new, g_x, move, beta, g_y):
        g_y = _plain(g_y)
        g_y[...] = (1.0 + beta) * _plain(g_new) - beta * _plain(g_x)
        return float((_plain(g_new) + g_y) @ _plain(move))

    def prox(self, kind, V, tau, out, n_threads):
        # (V is the block's T x d storage; the references take W = V' of shape d x T)
        _plain(out)[...] = PROX_REF[K_PEN(kind).name](_plain(V).T, tau).T
        return self.penalty_value(kind, out, n_threads)

    def penalty_value(self, kind, V, n_threads):
        return float(penalty_ref(_plain(V).T, K_PEN(kind).name))

    # -- the loss kernels, written out in numpy ------------------------------------------------
    def _terms(self, store, t, y, z, s):
        code, param, c = int(store.losses[t]), float(store.loss_params[t]), float(store.weights[t])
        keep = np.full(z.shape, c != 0.0) if s is None else (s != 0) & (c != 0.0)
        scale = c * (1.0 if s is None else s.astype(np.float64))
        value, deriv = loss_terms(code, param, y, z)
        v = np.where(keep, scale * value, 0.0)
        r = np.where(keep, scale * deriv, 0.0)
        return v, r

    def loss_grad_stacked(self, store, plan, Wt, b, gWt, gb, work):
        store, plan, work = _plain_namespace(store), _plain_namespace(plan), _plain_namespace(work)
        Wt, b, gWt, gb = _plain(Wt), _plain(b), _plain(gWt), _plain(gb)
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

    def loss_grad_stacked_csr(self, store, plan, Wt, b, gWt, gb, r, work):
        assert isinstance(store.X, DeviceCSR) and isinstance(store.XT, DeviceCSR)
        assert store.XT.matrix.has_sorted_indices  # (the gradient's binary search needs it)
        self.csr_passes += 1
        X, X_rows = store.X.matrix, store.XT.matrix.T.tocsr()
        assert (X != X_rows).nnz == 0  # XT is X's transpose
        plain = _plain_namespace(store)
        plan, work = _plain_namespace(plan), _plain_namespace(work)
        Wt, b, gWt, gb, r = _plain(Wt), _plain(b), _plain(gWt), _plain(gb), _plain(r)
        y, s = plain.y, plain.sample_weight
        for k in range(plan.n_chunks):
            lo, hi, t = int(plan.chunk_begin[k]), int(plan.chunk_begin[k + 1]), int(plan.chunk_task[k])
            z = X[lo:hi] @ Wt[t] + (0 if b is None else b[t])
            v, rows = self._terms(store, t, y[lo:hi], z, None if s is None else s[lo:hi])
            r[lo:hi] = rows
            work.chunk_loss[k], work.chunk_deriv[k] = v.sum(), rows.sum()
        total = 0.0
        for t in range(store.n_tasks):
            a, e = int(plan.task_chunks[t]), int(plan.task_chunks[t + 1])
            if gWt is not None:
                lo, hi = int(plan.chunk_begin[a]), int(plan.chunk_begin[e]) if e > a else int(plan.chunk_begin[a])
                gWt[t] = X[lo:hi].T @ r[lo:hi].astype(np.float64)
                gb[t] = work.chunk_deriv[a:e].sum()
            total += work.chunk_loss[a:e].sum()
        return total

    def shared_residuals(self, store, Z, b, R, gb, work):
        store, Z, b, R, gb = _plain_namespace(store), _plain(Z), _plain(b), _plain(R), _plain(gb)
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


def _plain_namespace(ns):
    return types.SimpleNamespace(**{k: _plain(v) for k, v in vars(ns).items()})


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
    if isinstance(a, DeviceArray):
        return np.array(a.view(np.ndarray))
    if a is None or isinstance(a, np.ndarray):
        return a
    import cupy

    return cupy.asnumpy(a)
