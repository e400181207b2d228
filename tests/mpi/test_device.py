"""MPI with the device backend: each rank's tasks on its "device" (the host emulation of
tests/gpu/device_backends.py, which refuses host arrays mixed into device arithmetic), the
statistics staged to host buffers for each Allreduce. The result equals the host solve's."""

import sys
from pathlib import Path

import numpy as np
import pytest

import mtlx

from .problems import make_problem, rel_err

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gpu"))
from device_backends import HostEmulation, to_host  # noqa: E402

T = 7
KW = dict(alpha=0.05, tol=1e-12, max_iter=5000, solver="fista")


def _local(comm, tasks, sizes):
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    return mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("penalty", ["l1", "l21", "mean", "L1(0.5) + L21(1)", "L1(1) + Mean(2)"])
def test_device_ranks_give_the_host_result(comm, penalty, fit_intercept):
    from mtlx.gpu.data import to_device

    tasks, sizes = make_problem(T)
    kw = dict(KW, penalty=penalty, fit_intercept=fit_intercept)
    host = _local(comm, tasks, sizes)
    ref = mtlx.solve(host, comm=comm, **kw)
    device = to_device(host, HostEmulation())
    res = mtlx.solve(device, comm=comm, **kw)
    assert res.converged and ref.converged
    res.W, res.b = to_host(res.W), to_host(res.b)
    assert rel_err(res, ref) < 1e-10
    assert res.objective == pytest.approx(ref.objective, rel=1e-12)
    assert device.backend.transfers == 0  # the iterate stayed on the device; statistics were staged


def test_penalties_without_device_statistics_are_refused_under_mpi(comm):
    from mtlx.gpu.data import to_device

    tasks, sizes = make_problem(T)
    device = to_device(_local(comm, tasks, sizes), HostEmulation())
    with pytest.raises(ValueError, match="does not run on GPUs under MPI yet"):
        mtlx.solve(device, comm=comm, penalty="trace", **{k: v for k, v in KW.items() if k != "penalty"})
    np.testing.assert_equal(comm.allgather(1), [1] * comm.size)  # every rank got here (no hang)
