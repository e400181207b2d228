"""The CUDA backend's Python side: device arrays in, the data resident on the device, results out.

* :mod:`~mtlx.gpu.arrays`: recognising and checking device arrays (``__cuda_array_interface__``,
  DLPack), ``HAS_CUDA``, the device index, the errors of a build without CUDA;
* :mod:`~mtlx.gpu.backend`: CuPy memory with mtlx's kernels (``mtlx._core.cuda``) and cuBLAS;
* :mod:`~mtlx.gpu.data`: :class:`DeviceTaskData`, X kept on the device;
* :mod:`~mtlx.gpu.smooth`: the smooth part evaluated by the device kernels.

A solve on device data runs FISTA (:func:`mtlx.solve`) with everything on the device: the data
pass, the iterate and its vector steps, the native penalties' proxes (the backend is the
problem's ``ops``, :mod:`mtlx._ops`); only scalars come back per iteration.
"""

from __future__ import annotations

from .arrays import HAS_CUDA, any_device_array, device_count, is_device_array, require_cuda, resolve_device

__all__ = ["HAS_CUDA", "activated", "any_device_array", "backend_for", "device_count", "is_device_array", "place",
           "require_cuda", "resolve_device", "to_host", "wrap_result"]


def backend_for(index: int):
    """The backend of CUDA device ``index`` (checked to exist)."""
    from .backend import CudaBackend

    return CudaBackend(index)


def place(data, device, comm=None):
    """``data`` where ``device`` asks (see :func:`mtlx.solve`): host data stay on the host for
    ``device=None``; ``"cuda"``/``"cuda:N"`` moves host data there once; device data need
    ``device`` None or their own device. Under MPI (``comm``), ``"cuda"`` is the rank's own GPU:
    ``MTLX_DEVICE`` when set, else the rank's index on its node modulo the node's GPUs."""
    on_device = getattr(data, "device", None)
    if device is None:
        return data
    if isinstance(device, str) and device.strip().lower() == "cpu":
        if on_device is not None:
            raise ValueError(f"the data are on cuda:{on_device} but device='cpu': build the TaskData from host "
                             "(numpy) arrays to solve on the host")
        return data
    default = None
    if comm is not None and isinstance(device, str) and device.strip().lower() == "cuda":
        from ..distributed import local_rank

        default = local_rank(comm) % max(device_count(), 1)
    index = resolve_device(device, default)
    from .data import to_device

    return to_device(data, backend_for(index))


def activated(data):
    """A context in which the data's GPU is CuPy's current device (nothing for host data): every
    CuPy operation of a device solve then runs on that device and its stream, in order with mtlx's
    kernels."""
    import contextlib

    backend = getattr(data, "backend", None)
    return backend.activate() if getattr(data, "device", None) is not None else contextlib.nullcontext()


def to_host(a):
    """A device array copied to the host (numpy); anything else as it is (O(T d) parameters, not data)."""
    if a is None or not is_device_array(a):
        return a
    cupy = require_cuda("a device array")
    from .arrays import as_cupy

    return cupy.asnumpy(as_cupy(a, "the array", cupy))


def wrap_result(data, array):
    """A result array as the user's input was: a device array for device input, else as it is."""
    if array is None or not getattr(data, "from_device", False):
        return array
    return data.backend.asarray(array)
