"""A failure on one rank is raised, with the same message, on every rank (no hang)."""

import numpy as np
import pytest

import mtlx

from .problems import make_problem


def test_nan_in_one_ranks_task_fails_every_rank(comm):
    tasks, sizes = make_problem(20, d=4, seed=2)
    tasks[17][0][3, 2] = np.nan
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    with pytest.raises(ValueError, match=r"task 17: X contains NaN") as info:
        with mtlx.distributed.agreed_errors(comm):
            mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)
    messages = comm.allgather(str(info.value))
    assert len(set(messages)) == 1 and "of %d]" % comm.size in messages[0]


def test_exception_inside_an_iteration_fails_every_rank(comm):
    tasks, sizes = make_problem(5, seed=9)
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)

    def callback(state):
        if comm.rank == comm.size - 1 and state.n_iter == 3:
            raise FloatingPointError("boom at iteration 3")

    with pytest.raises(FloatingPointError, match="boom at iteration 3") as info:
        mtlx.solve(local, penalty="l21", alpha=0.05, callback=callback, comm=comm)
    assert len(set(comm.allgather(str(info.value)))) == 1


def test_stop_on_one_rank_stops_every_rank(comm):
    tasks, sizes = make_problem(5, seed=9)
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)

    def callback(state):
        if comm.rank == 0 and state.n_iter == 4:
            raise StopIteration

    res = mtlx.solve(local, penalty="trace", alpha=0.05, tol=1e-14, callback=callback, comm=comm)
    assert res.n_iter == 4 and not res.converged
    assert len(res.history) == 5
    assert comm.allgather(res.n_iter) == [4] * comm.size


def test_inconsistent_ranks_are_refused_on_every_rank(comm):
    rng = np.random.default_rng(0)
    d = 3 + (comm.rank == 1)
    local = mtlx.TaskData.from_tasks([(rng.standard_normal((5, d)), rng.standard_normal(5))], task_ids=[comm.rank])
    with pytest.raises(ValueError, match="disagree on n_features"):
        mtlx.solve(local, comm=comm)
    dup = mtlx.TaskData.from_tasks([(rng.standard_normal((5, 3)), rng.standard_normal(5))], task_ids=[7])
    with pytest.raises(ValueError, match="task id 7 is held by more than one rank"):
        mtlx.solve(dup, comm=comm)


def test_failure_in_the_last_callback_is_not_lost(comm):
    tasks, sizes = make_problem(5, seed=9)
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)

    def callback(state):
        if comm.rank == 1 and state.n_iter == 6:
            raise RuntimeError("failed in the last iteration")

    with pytest.raises(RuntimeError, match="failed in the last iteration"):
        mtlx.solve(local, penalty="l1", alpha=0.05, max_iter=6, callback=callback, comm=comm)
