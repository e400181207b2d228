"""A solve launched by tests/test_mpi.py, alone or under mpiexec.

    python mpi_fit.py MODE CHECKPOINT_DIR OUT.npy

MODE: ``kill`` checkpoints every 5 iterations and SIGKILLs rank 0 after iteration 23;
``resume`` resumes from the checkpoint; ``nan`` puts a NaN in task 17 (on whichever rank
holds it), validated under agreed errors; ``nan-abort`` does the same without agreement, for
a run under ``python -m mpi4py``; ``nan-hook`` likewise with
``mtlx.distributed.abort_on_unhandled_exception()``; ``nan-plain`` likewise with nothing but
``import mtlx`` (all three abort the job); ``stall`` makes the last rank sleep for ten minutes
before its solve (the others must end the job after MTLX_MPI_TIMEOUT seconds).
"""

import os
import signal
import sys

import numpy as np

import mtlx

mode, ckdir, out = sys.argv[1:4]
comm = None
if any(k in os.environ for k in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if mode == "nan-hook":
        mtlx.distributed.abort_on_unhandled_exception(comm)
rank, size = (0, 1) if comm is None else (comm.rank, comm.size)


def problem():
    rng = np.random.default_rng(5)
    sizes = rng.integers(20, 60, 20)
    tasks = [(rng.standard_normal((m, 8)), rng.standard_normal(m)) for m in sizes]
    return tasks, sizes


KW = dict(penalty="trace", alpha=0.05, l2=0.05, fit_intercept=True, tol=1e-12, max_iter=5000)

tasks, sizes = problem()
mine = mtlx.distributed.assign_tasks(sizes, size)[rank]
if mode == "stall" and rank == size - 1:
    import time

    time.sleep(600)
if mode.startswith("nan"):
    tasks[17][0][4, 1] = np.nan
    if mode == "nan":
        with mtlx.distributed.agreed_errors(comm):
            local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)
    else:
        local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)
    mtlx.solve(local, comm=comm, **KW)
    raise SystemExit("unreachable: the NaN was not detected")

local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)


def kill_after_23(state):
    if state.n_iter == 23 and rank == 0:
        os.kill(os.getpid(), signal.SIGKILL)


res = mtlx.solve(local, comm=comm, checkpoint=ckdir, checkpoint_every=5, resume=(mode == "resume"),
                 callback=kill_after_23 if mode == "kill" else None, **KW)
if rank == 0:
    np.save(out, np.concatenate([res.W, res.b[None, :]]))
