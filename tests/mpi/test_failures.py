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


# ---------------------------------------------------------------------------------- one problem
@pytest.mark.parametrize("loss, labels, message", [
    ("logistic", "01", r"y holds labels \[0\.0\] but the logistic loss needs labels in \{-1, \+1\}"),
    ("poisson", "negative", r"negative values .* the poisson loss needs counts"),
])
def test_bad_targets_on_one_rank_fail_every_rank_inside_solve(comm, loss, labels, message):
    """A rank whose targets its loss refuses fails inside solve (while the problem is made, whose
    first collective the other ranks had entered: they waited there forever)."""
    tasks, sizes = make_problem(4 * comm.size, d=3, seed=4)
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    pairs = []
    for t in mine:
        X, y = tasks[t]
        y = np.where(y > 0, 1.0, -1.0) if loss == "logistic" else np.round(np.abs(y) * 3)
        if comm.rank == comm.size - 1 and t == mine[0]:
            y = (y > 0).astype(float) if labels == "01" else -y - 1
        pairs.append((X, y))
    local = mtlx.TaskData.from_tasks(pairs, task_ids=mine)
    with pytest.raises(ValueError, match=message) as info:
        mtlx.solve(local, loss=loss, penalty="l21", alpha=0.05, comm=comm)
    assert len(set(comm.allgather(str(info.value)))) == 1
    assert f"[raised on rank {comm.size - 1} of {comm.size}]" in str(info.value)


@pytest.mark.parametrize("name, ours, theirs", [
    ("alpha", dict(alpha=0.05), dict(alpha=0.5)),
    ("l2", dict(l2=0.01), dict(l2=1.0)),
    ("penalty", dict(penalty="l21"), dict(penalty="l1")),
    ("max_iter", dict(max_iter=500), dict(max_iter=3)),
    ("fit_intercept", dict(fit_intercept=True), dict(fit_intercept=False)),
])
def test_options_that_differ_across_ranks_are_refused_on_every_rank(comm, name, ours, theirs):
    """Alpha 0.05 on one rank and 0.5 on another converged to an answer of neither; a max_iter or a
    penalty that differed broke an Allreduce inside MPI. Now a ValueError naming the option and
    each rank's value, on every rank."""
    tasks, sizes = make_problem(3 * comm.size, d=4, seed=6)
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)
    kw = dict(penalty="l21", alpha=0.05)
    kw.update(theirs if comm.rank == comm.size - 1 else ours)
    with pytest.raises(ValueError, match=rf"mtlx\.solve needs the same options on every rank.* {name}: rank 0 "):
        mtlx.solve(local, comm=comm, **kw)
    # The estimators pass theirs through solve.
    est = dict(alpha=0.05 if comm.rank else 0.01)
    with pytest.raises(ValueError, match=r"they differ in alpha: rank 0 0\.01, rank 1 0\.05"):
        mtlx.MultiTaskRegressor(comm=comm, **est).fit(local)
    # Numerically equal options of other types agree (numpy scalars, an int for a float).
    res = mtlx.solve(local, penalty="l21", alpha=np.float64(0.05) if comm.rank else 0.05,
                     max_iter=np.int64(300) if comm.rank else 300, comm=comm)
    assert len(set(comm.allgather(res.W.tobytes()))) == 1
