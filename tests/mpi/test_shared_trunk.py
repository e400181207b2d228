"""Shared-trunk training under MPI equals one process (the trunk all-reduced, heads on their rank)."""

import warnings

import numpy as np
import pytest

import mtlx

KW = dict(hidden=(7, 5), activation="tanh", l2=1e-3, tol=0.0, max_iter=60)


def _tasks(seed=3, T=5):
    rng = np.random.default_rng(seed)
    tasks = []
    for t in range(T):
        X = rng.normal(size=(20 + 7 * t, 4))
        y = np.tanh(X @ rng.normal(size=4)) + 0.1 * rng.normal(size=len(X))
        if t % 2:  # a classification task among the regressions: a mixed problem
            y = (y > 0).astype(float) * 2 - 1
        tasks.append((X, y))
    return tasks


def _losses(T):
    return ["squared" if t % 2 == 0 else "logistic" for t in range(T)]


def _mine(comm, tasks):
    return mtlx.distributed.assign_tasks([len(y) for _, y in tasks], comm.size)[comm.rank]


def _fit(data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mtlx.fit_shared_trunk(data, **kw)


@pytest.mark.parametrize("weighting", ["equal", "uncertainty"])
@pytest.mark.parametrize("task_hidden", [(), (3,)])
def test_lbfgs_equals_one_process(comm, weighting, task_hidden):
    tasks = _tasks()
    kw = dict(KW, loss=_losses(len(tasks)), task_weighting=weighting, task_hidden=task_hidden)
    ref = _fit(mtlx.TaskData.from_tasks(tasks), **kw)
    mine = _mine(comm, tasks)
    res = _fit(mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine), comm=comm, **kw)
    assert res.params.shape == ref.params.shape
    # Tasks with rows of their own: the per-task shares of the trunk's gradient are summed without
    # regard to order, so any number of ranks computes the one-process bits.
    assert np.array_equal(res.params, ref.params)
    np.testing.assert_allclose(res.history["task_loss"], ref.history["task_loss"], rtol=1e-10, atol=1e-14)
    if weighting == "uncertainty":
        np.testing.assert_allclose(res.log_vars, ref.log_vars, rtol=0, atol=1e-10)
    # Every rank holds the same bits.
    assert np.array_equal(comm.bcast(res.params, root=0), res.params)


def test_shared_input_split_by_task_columns_equals_one_process(comm):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 4))
    Y = np.column_stack([np.sin(X @ rng.normal(size=4)) for _ in range(5)])
    Y[::7, 2] = np.nan
    ref = _fit(mtlx.TaskData.from_shared(X, Y), **KW)
    mine = np.array_split(np.arange(5), comm.size)[comm.rank]
    res = _fit(mtlx.TaskData.from_shared(X, Y[:, mine], task_ids=mine), comm=comm, **KW)
    assert np.abs(res.params - ref.params).max() <= 1e-10 * max(1.0, np.abs(ref.params).max())


@pytest.mark.parametrize("weighting", ["equal", "uncertainty"])
def test_adam_equals_one_process(comm, weighting):
    tasks = _tasks(seed=5)
    tasks.append((tasks[1][0][:3], tasks[1][1][:3]))  # 3 rows (a logistic task): absent from most batches
    kw = dict(KW, loss=_losses(len(tasks)), solver="adam", max_iter=5, batch_size=16, learning_rate=1e-2,
              task_weighting=weighting)
    ref = _fit(mtlx.TaskData.from_tasks(tasks), **kw)
    mine = _mine(comm, tasks)
    res = _fit(mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine), comm=comm, **kw)
    # (minibatches all-reduce the trunk's gradient as a float sum: equal to rounding)
    assert np.abs(res.params - ref.params).max() <= 1e-10 * max(1.0, np.abs(ref.params).max())
    # Each task's loss curve averages the batches that held it, on any number of ranks.
    np.testing.assert_allclose(res.history["task_loss"], ref.history["task_loss"], rtol=1e-10)
    if weighting == "uncertainty":
        np.testing.assert_allclose(res.log_vars, ref.log_vars, rtol=0, atol=1e-10)


def test_estimator_on_stacked_rows_equals_one_process(comm):
    tasks = _tasks(seed=6)
    X = np.vstack([X_t for X_t, _ in tasks])
    y = np.concatenate([np.where(y_t > 0, 1.0, 0.0) for _, y_t in tasks])
    task = np.concatenate([np.full(len(y_t), 10 + t) for t, (_, y_t) in enumerate(tasks)])
    kw = dict(hidden=(6,), max_iter=40, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mtlx.SharedTrunkClassifier(**kw).fit(X, y, task=task)
        rows = np.isin(task, 10 + _mine(comm, tasks))
        m = mtlx.SharedTrunkClassifier(comm=comm, **kw).fit(X[rows], y[rows], task=task[rows])
    assert np.array_equal(m.tasks_, ref.tasks_) and len(m.classes_) == len(tasks)
    np.testing.assert_allclose(m.predict_proba(X, task=task), ref.predict_proba(X, task=task), rtol=0, atol=1e-10)


def test_bad_input_on_one_rank_fails_every_rank(comm):
    tasks = _tasks()
    mine = _mine(comm, tasks)
    local = [tasks[t] for t in mine]
    losses = {int(t): "squared" for t in mine}
    if comm.rank == comm.size - 1:
        losses[int(mine[0])] = "poisson"  # negative targets: refused on this rank only
    with pytest.raises(ValueError, match="poisson"):
        _fit(mtlx.TaskData.from_tasks(local, task_ids=mine), loss=losses, comm=comm, **KW)



@pytest.mark.parametrize("name, ours, theirs", [
    ("activation", dict(activation="relu"), dict(activation="tanh")),  # trained two trunks, silently
    ("hidden", dict(hidden=(6,)), dict(hidden=(7,))),  # broke an Allreduce inside MPI
    ("max_iter", dict(solver="adam", max_iter=5), dict(solver="adam", max_iter=2)),
    ("random_state", dict(random_state=0), dict(random_state=1)),
    ("params0", dict(), dict(params0=np.zeros(3))),
])
def test_options_that_differ_across_ranks_are_refused_on_every_rank(comm, name, ours, theirs):
    tasks = _tasks()
    mine = _mine(comm, tasks)
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)
    kw = dict(hidden=(5,), max_iter=5, loss=_losses(len(tasks)))
    kw.update(theirs if comm.rank == comm.size - 1 else ours)
    with pytest.raises(ValueError, match=rf"fit_shared_trunk needs the same options on every rank.* {name}: rank 0 ") \
            as info:
        _fit(local, comm=comm, **kw)
    assert len(set(comm.allgather(str(info.value)))) == 1


def test_a_wrong_params0_on_one_rank_fails_every_rank(comm):
    tasks = _tasks()
    mine = _mine(comm, tasks)
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)
    net = _fit(local, comm=comm, hidden=(4,), max_iter=2, loss=_losses(len(tasks))).network
    size = net.n_trunk + int(np.diff(net.task_starts)[mine].sum())  # this rank's layout (ids 0..T-1 in order)
    params0 = np.zeros(size - 1 if comm.rank == comm.size - 1 else size)
    with pytest.raises(ValueError, match=rf"params0 has \d+ entries, this rank's network has \d+ "
                                         rf"\[raised on rank {comm.size - 1} of {comm.size}\]"):
        _fit(local, comm=comm, hidden=(4,), max_iter=2, loss=_losses(len(tasks)), params0=params0)


@pytest.mark.parametrize("random_state", [None, "unseeded generator"])
def test_drawn_seeds_are_one_seed_over_the_ranks(comm, random_state):
    """An unseeded Generator drew its own seed on every rank: each rank trained its own trunk."""
    tasks = _tasks()
    mine = _mine(comm, tasks)
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)
    rs = np.random.default_rng() if random_state is not None else None
    res = _fit(local, comm=comm, hidden=(4,), max_iter=3, loss=_losses(len(tasks)), random_state=rs)
    trunks = comm.allgather(res.params)  # (every task on every rank)
    assert all(np.array_equal(trunks[0], t) for t in trunks[1:])


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_a_checkpoint_with_a_drawn_seed_resumes(comm, shared_tmp, solver):
    """random_state=None: the seed drawn by the first run is the checkpoint's, and a resume takes it
    (it drew its own, and every resume was refused as "another fit"); it then ends as an
    uninterrupted run of that seed does."""
    import json

    tasks = _tasks()
    mine = _mine(comm, tasks)
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)
    kw = dict(hidden=(4,), tol=0.0, loss=_losses(len(tasks)), solver=solver, batch_size=16, checkpoint=shared_tmp,
              checkpoint_every=2)
    _fit(local, comm=comm, max_iter=4, random_state=None, **kw)
    resumed = _fit(local, comm=comm, max_iter=9, random_state=None, resume=True, **kw)
    assert resumed.n_iter == 9 and len(resumed.history["objective"]) == (10 if solver == "lbfgs" else 9)
    seed = json.loads(str(np.load(f"{shared_tmp}/checkpoint.npz")["fp_settings"]))["seed"]
    kw.pop("checkpoint")
    whole = _fit(local, comm=comm, max_iter=9, random_state=seed, **kw)
    np.testing.assert_array_equal(resumed.params, whole.params)
