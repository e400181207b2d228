"""Device arrays at the boundary: recognised, checked, and refused with the error that says why
(tests that run on every build; the CUDA ones skip without a device)."""

import sys
import types

import numpy as np
import pytest

import mtlx
from mtlx import _core
from mtlx.gpu import arrays

from device_backends import HostEmulation


class FakeDeviceArray:
    """The CUDA array interface of a (never dereferenced) device buffer."""

    def __init__(self, shape, typestr="<f8"):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (0, False), "version": 3,
                                         "strides": None}


class FakeDLPack:
    def __init__(self, device_type):
        self._type = device_type

    def __dlpack_device__(self):
        return (self._type, 0)


def test_device_arrays_are_recognised_by_either_protocol():
    assert arrays.is_device_array(FakeDeviceArray((3, 2)))
    assert arrays.is_device_array(FakeDLPack(2))  # kDLCUDA
    assert arrays.is_device_array(FakeDLPack(13))  # kDLCUDAManaged
    assert not arrays.is_device_array(FakeDLPack(1))  # kDLCPU
    assert not arrays.is_device_array(np.zeros(3))
    assert arrays.any_device_array(None, [np.zeros(2), (np.zeros(2), FakeDeviceArray((2,)))])
    assert not arrays.any_device_array(None, [np.zeros(2), (np.zeros(2), [1.0, 2.0])])


def test_has_cuda_reports_the_build():
    assert mtlx.HAS_CUDA is bool(_core.HAS_CUDA)
    assert (_core.cuda is not None) == mtlx.HAS_CUDA
    if not mtlx.HAS_CUDA:
        assert mtlx.gpu.device_count() == 0


@pytest.mark.skipif(mtlx.HAS_CUDA, reason="a build without CUDA")
def test_a_build_without_cuda_says_so_and_how_to_rebuild():
    X, Y = FakeDeviceArray((5, 3)), FakeDeviceArray((5, 2))
    for call in (lambda: mtlx.TaskData.from_shared(X, Y), lambda: mtlx.TaskData.from_stacked(X, Y, np.zeros(5)),
                 lambda: mtlx.TaskData.from_tasks([(X, Y)]),
                 lambda: mtlx.solve(mtlx.TaskData.from_shared(np.ones((4, 2)), np.ones((4, 1))), device="cuda")):
        with pytest.raises(RuntimeError, match="built without CUDA support.*MTLX_CUDA=ON pip install"):
            call()
    with pytest.raises(RuntimeError, match="built without CUDA support"):
        mtlx.MultiTaskRegressor(device="cuda:0").fit(np.ones((4, 2)), np.ones((4, 2)))


def test_host_and_device_arrays_mixed_in_one_call_are_refused_by_name():
    with pytest.raises(TypeError, match=r"X is a device array \(CUDA memory\) but Y, sample_weight are on the host"):
        arrays.check_not_mixed({"X": FakeDeviceArray((3, 2)), "Y": np.zeros((3, 1)), "sample_weight": np.ones(3)})
    arrays.check_not_mixed({"X": np.zeros((3, 2)), "Y": np.zeros((3, 1)), "sample_weight": None})


def test_device_strings_are_parsed_and_a_missing_device_is_named(monkeypatch):
    assert arrays.resolve_device(None) is None and arrays.resolve_device("cpu") is None
    for bad in ("gpu", "cuda:", "cuda:x"):
        with pytest.raises(ValueError, match="device must be None, 'cpu', 'cuda', 'cuda:N' or an int"):
            arrays.resolve_device(bad)
    with pytest.raises(TypeError, match="device must be"):
        arrays.resolve_device(True)
    # A build with CUDA, CuPy and one device (stand-ins): cuda:3 does not exist, cuda:0 does.
    monkeypatch.setattr(arrays, "HAS_CUDA", True)
    monkeypatch.setattr(arrays, "device_count", lambda: 1)
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))
    with pytest.raises(ValueError, match=r"device 'cuda:3' does not exist: 1 CUDA device visible \(cuda:0\)"):
        arrays.resolve_device("cuda:3")
    assert arrays.resolve_device("cuda:0") == 0
    monkeypatch.setenv("MTLX_DEVICE", "0")
    assert arrays.resolve_device("cuda") == 0
    monkeypatch.setattr(arrays, "device_count", lambda: 0)
    with pytest.raises(RuntimeError, match="no CUDA device is visible"):
        arrays.resolve_device("cuda")


def test_device_arrays_of_a_dtype_or_layout_the_kernels_do_not_take_are_named():
    backend = HostEmulation()
    with pytest.raises(TypeError, match=r"X is a device array of dtype int64; the CUDA kernels take float32 or "
                                        r"float64"):
        arrays.as_device_matrix(np.ones((3, 2), dtype=np.int64), "X", backend)
    with pytest.raises(ValueError, match=r"X is a device array of shape \(3, 2\) with strides \(8, 24\), not "
                                         r"C-contiguous.*cupy.ascontiguousarray\(X\)"):
        arrays.as_device_matrix(np.asfortranarray(np.ones((3, 2))), "X", backend)
    with pytest.raises(ValueError, match=r"X must be 2-D, got a device array of shape \(3,\)"):
        arrays.as_device_matrix(np.ones(3), "X", backend)
    with pytest.raises(TypeError, match="y is a device array of dtype complex128; expected real numbers"):
        arrays.as_device_vector(np.ones(3, dtype=complex), "y", backend, np.float64)
    assert arrays.as_device_vector(np.ones((3, 1), dtype=np.int32), "y", backend, np.float32).dtype == np.float32


def test_estimators_fit_on_a_device_and_keep_numpy_attributes(monkeypatch, rng):
    # device="cuda" routed to the host emulation of the device backend.
    monkeypatch.setattr(mtlx.gpu, "resolve_device", lambda device, default_index=None: 0)
    monkeypatch.setattr(mtlx.gpu, "backend_for", lambda index: HostEmulation())
    X = rng.standard_normal((40, 6))
    Y = X @ rng.standard_normal((6, 3)) + 0.1 * rng.standard_normal((40, 3))
    ref = mtlx.MultiTaskRegressor(penalty="trace", alpha=0.05, solver="fista", tol=1e-10).fit(X, Y)
    est = mtlx.MultiTaskRegressor(penalty="trace", alpha=0.05, tol=1e-10, device="cuda").fit(X, Y)
    assert type(est.coef_) is np.ndarray and est.solver_ == "fista"
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(est.intercept_, ref.intercept_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-8, atol=1e-10)
    y = np.where(Y[:, 0] > 0, 1, -1)
    clf = mtlx.MultiTaskClassifier(alpha=0.01, device="cuda", tol=1e-10).fit(X, np.column_stack([y, -y]))
    ref = mtlx.MultiTaskClassifier(alpha=0.01, tol=1e-10).fit(X, np.column_stack([y, -y]))
    np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-7, atol=1e-9)
