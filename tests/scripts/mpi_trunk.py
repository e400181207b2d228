"""A shared-trunk fit launched by tests/test_mpi.py, alone or under mpiexec.

    python mpi_trunk.py MODE CHECKPOINT_DIR OUT.npy

MODE: ``first`` fits 10 L-BFGS iterations with a checkpoint every 4; ``resume`` resumes from the
checkpoint to 24 iterations; ``whole`` fits the 24 iterations uninterrupted. Rank 0 saves the
parameters to OUT.npy.
"""

import os
import sys
import warnings

import numpy as np

import mtlx

mode, ckdir, out = sys.argv[1:4]
comm = None
if any(k in os.environ for k in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
rank, size = (0, 1) if comm is None else (comm.rank, comm.size)

rng = np.random.default_rng(8)
sizes = rng.integers(15, 40, 7)
tasks = [(rng.standard_normal((m, 5)), rng.standard_normal(m)) for m in sizes]
mine = mtlx.distributed.assign_tasks(sizes, size)[rank]
local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)
kw = dict(hidden=(6, 4), activation="tanh", task_weighting="uncertainty", tol=0.0, l2=1e-3)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # (max_iter reached: by design)
    if mode == "first":
        res = mtlx.fit_shared_trunk(local, max_iter=10, checkpoint=ckdir, checkpoint_every=4, comm=comm, **kw)
    else:
        res = mtlx.fit_shared_trunk(local, max_iter=24, checkpoint=ckdir if mode == "resume" else None,
                                    resume=mode == "resume", comm=comm, **kw)
if rank == 0:
    np.save(out, np.concatenate([res.params, res.log_vars]))
