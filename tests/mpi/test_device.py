"""MPI with the device backend: each rank's tasks on its "device" (the host emulation of
tests/gpu/device_backends.py, which refuses host arrays mixed into device arithmetic), the
statistics staged to host buffers for each Allreduce, or handed to MPI in device memory where
MPI is CUDA-aware (forced here: the emulation's device arrays are host memory MPI can read).
The result equals the host solve's either way."""

import sys
from pathlib import Path

import numpy as np
import pytest

import mtlx

from .problems import make_problem, rel_err

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gpu"))
from conftest import chain_incidence  # noqa: E402
from device_backends import HostEmulation, to_host  # noqa: E402

T = 7
KW = dict(alpha=0.05, tol=1e-12, max_iter=5000, solver="fista")


def _local(comm, tasks, sizes):
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    return mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)


def _solved_on_host_and_device(comm, device_comm=None, **kw):
    """(the device solve with W and b on the host, the host solve, the device data) of this rank's tasks."""
    from mtlx.gpu.data import to_device

    tasks, sizes = make_problem(T)
    host = _local(comm, tasks, sizes)
    ref = mtlx.solve(host, comm=comm, **kw)
    device = to_device(host, HostEmulation())
    res = mtlx.solve(device, comm=comm if device_comm is None else device_comm, **kw)
    assert res.converged and ref.converged
    res.W, res.b = to_host(res.W), to_host(res.b)
    return res, ref, device


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("penalty", ["l1", "l21", "mean", "L1(0.5) + L21(1)", "L1(1) + Mean(2)", "ridge",
                                     "l21_columns", "Superpose(Shared(1), Ridge(2))", "Superpose(Shared(0.5), L1(1))"])
def test_device_ranks_give_the_host_result(comm, penalty, fit_intercept):
    res, ref, device = _solved_on_host_and_device(comm, **dict(KW, penalty=penalty, fit_intercept=fit_intercept))
    assert rel_err(res, ref) < 1e-10
    assert res.objective == pytest.approx(ref.objective, rel=1e-12)
    assert device.backend.transfers == 0  # the iterate stayed on the device; statistics were staged


class _SpyComm:
    """``comm``, recording the type of every buffer its Allreduce is handed."""

    def __init__(self, comm):
        self._comm = comm
        self.buffers = []

    def Allreduce(self, sendbuf, recvbuf, op):
        self.buffers.append(type(recvbuf).__name__)
        return self._comm.Allreduce(sendbuf, recvbuf, op=op)

    def __getattr__(self, name):
        return getattr(self._comm, name)


@pytest.mark.parametrize("aware", ["0", "1"])
@pytest.mark.parametrize("penalty", ["l21", "mean", "L1(1) + Mean(2)"])
def test_cuda_aware_mpi_is_handed_device_statistics(comm, monkeypatch, penalty, aware):
    """MTLX_CUDA_AWARE_MPI=1: the rounds of statistics used on the device (a penalty's, the mean's)
    go to MPI in device memory, synchronized first, with the host solve's result; =0 (and the
    bundled MPICH's own answer) stages every buffer through host memory."""
    monkeypatch.setenv("MTLX_CUDA_AWARE_MPI", aware)
    spy = _SpyComm(comm)
    res, ref, device = _solved_on_host_and_device(comm, spy, **dict(KW, penalty=penalty, fit_intercept=True))
    assert rel_err(res, ref) < 1e-10
    assert res.objective == pytest.approx(ref.objective, rel=1e-12)
    n_device = spy.buffers.count("DeviceArray")
    if aware == "1":
        assert n_device > 0 and "ndarray" in spy.buffers  # the line search's buffer is host memory
        assert device.backend.synchronizations == n_device
    else:
        assert n_device == 0 and device.backend.synchronizations == 0
    assert device.backend.transfers == 0


@pytest.mark.parametrize("aware", ["0", "1"])
@pytest.mark.parametrize("name", ["trace", "clustered", "linf1", "graph", "Superpose(L1(1), Trace(1))", "srmtl"])
def test_penalties_gathering_w_or_its_gram_matrix_run_on_device_ranks(comm, monkeypatch, name, aware):
    """Statistics that gather W (LInf1, Graph) or its Gram matrix (Trace, Clustered) over ranks,
    computed and used on each rank's device, staged or handed to a CUDA-aware MPI."""
    P = mtlx.penalties
    pen = {"clustered": P.Clustered(2, 0.5, 3.0), "graph": P.Graph(chain_incidence(T), 2.0),
           "srmtl": P.Graph(chain_incidence(T), 1.0) + P.L1(1.0)}.get(name, name)
    monkeypatch.setenv("MTLX_CUDA_AWARE_MPI", aware)
    res, ref, device = _solved_on_host_and_device(comm, **dict(KW, penalty=pen, fit_intercept=True))
    assert rel_err(res, ref) < 1e-9
    assert res.objective == pytest.approx(ref.objective, rel=1e-11)
    assert device.backend.transfers == 0


def test_penalties_without_device_statistics_are_refused_under_mpi(comm):
    from mtlx.gpu.data import to_device

    class HostStatsL21(mtlx.penalties.L21):
        stats_on_device = False

    tasks, sizes = make_problem(T)
    device = to_device(_local(comm, tasks, sizes), HostEmulation())
    with pytest.raises(ValueError, match=r"HostStatsL21\(1\.0\) does not run on GPUs under MPI \(every penalty"):
        mtlx.solve(device, comm=comm, penalty=HostStatsL21(), **{k: v for k, v in KW.items() if k != "penalty"})
    np.testing.assert_equal(comm.allgather(1), [1] * comm.size)  # every rank got here (no hang)
