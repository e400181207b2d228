"""Checkpoints are keyed by task id: a run resumes on another number of ranks."""

import warnings

import numpy as np

import mtlx

from .problems import make_problem, rel_err

KW = dict(penalty="l21", alpha=0.05, l2=0.1, fit_intercept=True, tol=1e-12, max_iter=5000, solver="fista")


def test_resume_single_process_checkpoint_on_all_ranks(comm, shared_tmp):
    tasks, sizes = make_problem(7, seed=21)
    full = mtlx.TaskData.from_tasks(tasks)
    ref = mtlx.solve(full, **KW)
    if comm.rank == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
            mtlx.solve(full, **dict(KW, max_iter=12), checkpoint=shared_tmp, checkpoint_every=5)
    comm.Barrier()
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)
    res = mtlx.solve(local, comm=comm, checkpoint=shared_tmp, resume=True, **KW)
    assert len(res.history) == res.n_iter + 1 and res.n_iter > 10
    np.testing.assert_array_equal(res.history[:11], ref.history[:11])  # restored, not recomputed
    assert rel_err(res, ref) < 1e-10
