"""Device arrays at the boundary: recognising them, checking them, and the errors for what the
kernels do not take.

A device array is anything exposing ``__cuda_array_interface__`` (CuPy, Numba, PyTorch's CUDA
tensors) or a DLPack capsule on a CUDA device (``__dlpack_device__``). They are taken through
CuPy without a host round trip: ``cupy.asarray`` reads the interface (and waits on the stream the
producer names in it, version 3 of the protocol), ``cupy.from_dlpack`` the capsule (passing the
consumer's stream to ``__dlpack__``).
"""

from __future__ import annotations

import os

import numpy as np

from .. import _core

__all__ = ["HAS_CUDA", "any_device_array", "as_device_matrix", "as_device_vector", "check_not_mixed", "device_count",
           "is_device_array", "require_cuda", "resolve_device"]

#: Whether this build of mtlx has the CUDA backend (compiled with ``MTLX_CUDA=ON`` or ``AUTO``).
HAS_CUDA: bool = bool(_core.HAS_CUDA)

#: DLPack's device types that are CUDA memory (kDLCUDA, kDLCUDAHost, kDLCUDAManaged).
_DLPACK_CUDA = (2, 3, 13)

REBUILD = ("rebuild it with the CUDA backend: MTLX_CUDA=ON pip install --force-reinstall --no-binary mtlx mtlx "
           "(or, from a checkout, MTLX_CUDA=ON pip install .), which needs nvcc (the CUDA toolkit)")


def is_device_array(a) -> bool:
    """Whether ``a`` lives in CUDA device memory (``__cuda_array_interface__`` or a CUDA DLPack device)."""
    if isinstance(a, np.ndarray):
        return False
    if hasattr(a, "__cuda_array_interface__"):
        return True
    dlpack_device = getattr(a, "__dlpack_device__", None)
    if dlpack_device is None:
        return False
    try:
        return int(dlpack_device()[0]) in _DLPACK_CUDA
    except Exception:  # a producer that cannot say is not a device array we can take
        return False


def any_device_array(*arrays) -> bool:
    """Whether any of ``arrays`` (None and nested lists/tuples of arrays allowed) is a device array."""
    for a in arrays:
        if isinstance(a, (list, tuple)):
            if any_device_array(*a):
                return True
        elif a is not None and is_device_array(a):
            return True
    return False


def check_not_mixed(named: dict) -> None:
    """TypeError when device arrays and host arrays are mixed in one call (``named``: name -> array or None)."""
    device = [n for n, a in named.items() if a is not None and is_device_array(a)]
    host = [n for n, a in named.items() if a is not None and not is_device_array(a)]
    if device and host:
        raise TypeError(f"{', '.join(device)} {'is a device array' if len(device) == 1 else 'are device arrays'} "
                        f"(CUDA memory) but {', '.join(host)} {'is' if len(host) == 1 else 'are'} on the host: pass "
                        "all of them on the same side (cupy.asarray(...) moves host arrays to the device)")


def require_cuda(what: str = "a device array"):
    """The cupy module, once it is certain a device solve can run: else a RuntimeError saying what is missing."""
    if not HAS_CUDA:
        raise RuntimeError(f"mtlx was built without CUDA support, so it cannot take {what}; {REBUILD}")
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(f"mtlx's CUDA backend needs CuPy for {what}: pip install 'mtlx[gpu]' "
                           "(or the cupy-cudaXXx wheel matching your CUDA)") from exc
    if device_count() == 0:
        raise RuntimeError(f"mtlx has its CUDA backend but no CUDA device is visible (for {what}): check the NVIDIA "
                           "driver and CUDA_VISIBLE_DEVICES")
    return cupy


def device_count() -> int:
    """Number of CUDA devices visible to mtlx's core (0 in a build without CUDA)."""
    return int(_core.cuda.device_count()) if HAS_CUDA else 0


def resolve_device(device, default_index: int | None = None, *, must_exist: bool = True) -> int | None:
    """The device index of ``device``: None or ``"cpu"`` (the host: None), ``"cuda"`` (``MTLX_DEVICE``
    or ``default_index`` or 0), ``"cuda:N"`` or an int N. A device that does not exist is a ValueError
    (unless ``must_exist`` is False: the spelling alone, as a loaded model's parameter, which predicts
    on the host)."""
    if device is None or (isinstance(device, str) and device.lower() == "cpu"):
        return None
    if isinstance(device, (bool, np.bool_)) or not isinstance(device, (str, int, np.integer)):
        raise TypeError(f"device must be None, 'cpu', 'cuda', 'cuda:N' or an int, got {device!r}")
    if isinstance(device, str):
        text = device.strip().lower()
        if text == "cuda":
            env = os.environ.get("MTLX_DEVICE")
            index = int(env) if env not in (None, "") else (default_index or 0)
        elif text.startswith("cuda:") and text[5:].isdigit():
            index = int(text[5:])
        else:
            raise ValueError(f"device must be None, 'cpu', 'cuda', 'cuda:N' or an int, got {device!r}")
    else:
        index = int(device)
    if not must_exist:
        if index < 0:
            raise ValueError(f"device {device!r} is not a device index (cuda:0, cuda:1, ...)")
        return index
    require_cuda(f"device={device!r}")
    n = device_count()
    if not 0 <= index < n:
        visible = ", ".join(f"cuda:{i}" for i in range(n))
        raise ValueError(f"device {device!r} does not exist: {n} CUDA device{'s' if n != 1 else ''} visible "
                         f"({visible})")
    return index


def as_cupy(a, name: str, cupy):
    """A device array as a CuPy array, without a copy (a CuPy array as it is)."""
    if isinstance(a, cupy.ndarray):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return cupy.asarray(a)
    if hasattr(a, "__dlpack__"):
        return cupy.from_dlpack(a)
    raise TypeError(f"{name} is not a device array (got {type(a).__name__})")


def as_device_matrix(a, name: str, backend, dtypes=(np.float32, np.float64)):
    """``a`` as a 2-D C-contiguous array of the backend, of one of ``dtypes``, without a copy: else a
    TypeError or ValueError naming the array, what it is and what the kernels take."""
    arr = backend.adopt(a, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got a device array of shape {tuple(arr.shape)}")
    _check_dtype_and_layout(arr, name, dtypes)
    return arr


def as_device_vector(a, name: str, backend, dtype):
    """``a`` (1-D, or 2-D with one column) as a 1-D array of the backend, converted on the device to ``dtype``."""
    arr = backend.adopt(a, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got a device array of shape {tuple(arr.shape)}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} is a device array of dtype {arr.dtype}; expected real numbers")
    return backend.asarray(arr, dtype=dtype)


def _check_dtype_and_layout(arr, name: str, dtypes) -> None:
    if np.dtype(arr.dtype) not in [np.dtype(d) for d in dtypes]:
        expected = " or ".join(str(np.dtype(d)) for d in dtypes)
        raise TypeError(f"{name} is a device array of dtype {arr.dtype}; the CUDA kernels take {expected} "
                        f"(convert it on the device: {name}.astype(cupy.float64))")
    if arr.size and not arr.flags.c_contiguous:
        raise ValueError(f"{name} is a device array of shape {tuple(arr.shape)} with strides {tuple(arr.strides)}, "
                         "not C-contiguous (row-major); the CUDA kernels read rows: pass cupy.ascontiguousarray("
                         f"{name}) (mtlx does not copy device arrays behind your back)")
