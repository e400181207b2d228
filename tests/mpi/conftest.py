"""Tests that run on every rank of ``mpiexec -n N python -m pytest tests/mpi`` (N = 2 and 3).

Outside mpiexec nothing here is collected: ``tests/test_mpi.py`` launches these runs. Each rank
runs the same tests; at the end the ranks reduce their exit status, so a failure on any rank
fails the run on all (and mpiexec returns non-zero).
"""

import os

import pytest


def under_mpiexec() -> bool:
    return any(k in os.environ for k in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE"))


if not under_mpiexec():
    collect_ignore_glob = ["test_*.py"]
else:
    from mpi4py import MPI

    def pytest_sessionfinish(session, exitstatus):
        session.exitstatus = MPI.COMM_WORLD.allreduce(int(exitstatus), op=MPI.MAX)


@pytest.fixture
def comm():
    from mpi4py import MPI

    return MPI.COMM_WORLD


@pytest.fixture
def shared_tmp(comm, tmp_path):
    """A folder every rank sees (rank 0's tmp_path)."""
    return comm.bcast(str(tmp_path) if comm.rank == 0 else None, root=0)
