"""``mpirun -n N mtlx fit`` and the estimators' ``comm=``: the same model as one process."""

import os
import warnings

import numpy as np
import pytest

import mtlx
from mtlx.cli import main
from mtlx.io import save_dataset

from .problems import make_problem


def write_dataset(comm, folder, tasks, ids, labels=False):
    if comm.rank == 0:
        pairs = [(X, (y > 0).astype(np.float64) if labels else y) for X, y in tasks]
        save_dataset(folder, mtlx.TaskData.from_tasks(pairs, task_ids=ids))
    comm.Barrier()


def write_raw_dataset(comm, folder, tasks, ids):
    """The arrays as they are, unchecked (save_dataset would refuse non-finite data)."""
    if comm.rank == 0:
        os.makedirs(folder)
        np.save(f"{folder}/X.npy", np.vstack([X for X, _ in tasks]))
        np.save(f"{folder}/y.npy", np.concatenate([y for _, y in tasks]))
        np.save(f"{folder}/task.npy", np.repeat(ids, [len(y) for _, y in tasks]))
    comm.Barrier()


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_cli_fit_predict_matches_one_process(comm, shared_tmp, loss):
    tasks, _ = make_problem(7, seed=21)
    ids = np.array([3, 8, 11, 20, 21, 40, 41])
    folder, model_path = f"{shared_tmp}/data", f"{shared_tmp}/model.npz"
    write_dataset(comm, folder, tasks, ids, labels=loss == "logistic")
    rc = main(["fit", folder, "--loss", loss, "--penalty", "l21", "--alpha", "0.02", "--intercept",
               "--tol", "1e-12", "--out", model_path])
    assert comm.allgather(rc) == [0] * comm.size
    comm.Barrier()
    model = mtlx.load(model_path)  # rank 0 wrote it; every rank reads it
    Model = mtlx.MultiTaskRegressor if loss == "squared" else mtlx.MultiTaskClassifier
    pairs = [(X, (y > 0).astype(np.float64) if loss == "logistic" else y) for X, y in tasks]
    ref = Model(penalty="l21", alpha=0.02, tol=1e-12).fit(mtlx.TaskData.from_tasks(pairs, task_ids=ids))
    np.testing.assert_array_equal(model.tasks_, ids)
    scale = np.abs(ref.coef_).max()
    assert np.abs(model.coef_ - ref.coef_).max() <= 1e-10 * scale
    assert np.abs(model.intercept_ - ref.intercept_).max() <= 1e-10 * max(scale, 1.0)
    if loss == "logistic":
        assert [list(c) for c in model.classes_] == [[0.0, 1.0]] * 7
    if comm.rank == 0:
        assert main(["predict", model_path, folder, "--out", f"{shared_tmp}/p.npy"]) == 0
        X = np.vstack([X for X, _ in tasks])
        task = np.repeat(ids, [len(y) for _, y in tasks])
        np.testing.assert_array_equal(np.load(f"{shared_tmp}/p.npy"), model.predict(X, task=task))


def test_cli_checkpoint_then_resume_matches_an_uninterrupted_fit(comm, shared_tmp):
    tasks, _ = make_problem(5, seed=4)
    ids = np.arange(5)
    folder, ck = f"{shared_tmp}/data", f"{shared_tmp}/ck"
    write_dataset(comm, folder, tasks, ids)
    common = [folder, "--penalty", "trace", "--alpha", "0.05", "--intercept", "--tol", "1e-12", "--checkpoint", ck,
              "--checkpoint-every", "5"]
    with pytest.warns(mtlx.ConvergenceWarning):
        assert main(["fit", *common, "--max-iter", "10", "--out", f"{shared_tmp}/part.npz"]) == 0
    assert main(["fit", *common, "--resume", "--out", f"{shared_tmp}/full.npz"]) == 0
    comm.Barrier()
    resumed = mtlx.load(f"{shared_tmp}/full.npz")
    ref = mtlx.MultiTaskRegressor(penalty="trace", alpha=0.05, tol=1e-12).fit(mtlx.TaskData.from_tasks(tasks))
    assert np.abs(resumed.coef_ - ref.coef_).max() <= 1e-10 * np.abs(ref.coef_).max()


def test_cli_bad_input_on_one_rank_fails_every_rank(comm, shared_tmp, capsys):
    tasks, _ = make_problem(6, seed=8)
    tasks[4][0][2, 1] = np.inf
    folder = f"{shared_tmp}/data"
    write_raw_dataset(comm, folder, tasks, np.arange(6))
    rc = main(["fit", folder, "--out", f"{shared_tmp}/m.npz"])
    assert comm.allgather(rc) == [1] * comm.size
    assert "task 4: X contains infinity" in capsys.readouterr().err


def test_estimator_comm_with_more_ranks_than_tasks(comm):
    tasks, sizes = make_problem(comm.size - 1, seed=13)
    ids = np.arange(comm.size - 1) * 7
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    X = np.vstack([tasks[t][0] for t in mine]) if len(mine) else np.empty((0, 6))
    y = np.concatenate([tasks[t][1] for t in mine]) if len(mine) else np.empty(0)
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=ids[mine]) if len(mine) else \
        mtlx.TaskData.empty(6)
    model = mtlx.MultiTaskRegressor(penalty="mean", alpha=0.3, tol=1e-12, comm=comm).fit(local)
    ref = mtlx.MultiTaskRegressor(penalty="mean", alpha=0.3, tol=1e-12).fit(mtlx.TaskData.from_tasks(tasks,
                                                                                                       task_ids=ids))
    np.testing.assert_array_equal(model.tasks_, ids)
    assert np.abs(model.coef_ - ref.coef_).max() <= 1e-10 * np.abs(ref.coef_).max()
    # Stacked rows: the rank without tasks passes none (it was refused: "Found array with 0 sample(s)").
    task = np.repeat(ids[mine], [len(tasks[t][1]) for t in mine]) if len(mine) else np.empty(0, dtype=np.int64)
    stacked = mtlx.MultiTaskRegressor(penalty="mean", alpha=0.3, tol=1e-12, comm=comm).fit(X, y, task=task)
    np.testing.assert_allclose(stacked.coef_, model.coef_, rtol=0, atol=1e-12 * np.abs(ref.coef_).max())
    X_all, y_all = np.vstack([X_t for X_t, _ in tasks]), np.concatenate([y_t for _, y_t in tasks])
    task_all = np.repeat(ids, [len(y_t) for _, y_t in tasks])
    cut = np.median(y_all)
    classifier = mtlx.MultiTaskClassifier(alpha=0.05, tol=1e-12, comm=comm).fit(X, np.where(y > cut, "hi", "lo"),
                                                                                task=task)
    expected = mtlx.MultiTaskClassifier(alpha=0.05, tol=1e-12).fit(X_all, np.where(y_all > cut, "hi", "lo"),
                                                                   task=task_all)
    assert [list(c) for c in np.atleast_2d(classifier.classes_)] == [list(c) for c in np.atleast_2d(expected.classes_)]
    assert np.abs(classifier.coef_ - expected.coef_).max() <= 1e-8 * np.abs(expected.coef_).max()
    kw = dict(hidden=(3,), max_iter=15, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        trunk = mtlx.SharedTrunkRegressor(comm=comm, **kw).fit(X, y, task=task)
        alone = mtlx.SharedTrunkRegressor(**kw).fit(X_all, y_all, task=task_all)
    np.testing.assert_allclose(trunk.predict(X_all, task=task_all), alone.predict(X_all, task=task_all),
                               rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="under MPI"):
        mtlx.MultiTaskRegressor(comm=comm).fit([(np.ones((3, 2)), np.ones(3))])


def test_multiclass_tasks_under_mpi_match_one_process(comm):
    """Tasks of 2, 3 and 4 classes spread over the ranks: the same model as one process."""
    rng = np.random.default_rng(5)
    ids = np.array([2, 5, 9, 12, 17])
    tasks = []
    for t, K in zip(ids, [3, 2, 4, 3, 2]):
        X = rng.standard_normal((40 + 3 * t, 4))
        tasks.append((X, np.argmax(X @ rng.standard_normal((4, K)) + rng.gumbel(size=(len(X), K)), axis=1)))
    kw = dict(penalty="l21", alpha=0.02, tol=1e-12, max_iter=50_000)
    X_all = np.vstack([X for X, _ in tasks])
    y_all = np.concatenate([y for _, y in tasks])
    task_all = np.repeat(ids, [len(y) for _, y in tasks])
    ref = mtlx.MultiTaskClassifier(**kw).fit(X_all, y_all, task=task_all)
    mine = mtlx.distributed.assign_tasks(np.array([len(y) for _, y in tasks]), comm.size)[comm.rank]
    rows = np.isin(task_all, ids[mine])
    model = mtlx.MultiTaskClassifier(comm=comm, **kw).fit(X_all[rows], y_all[rows], task=task_all[rows])
    np.testing.assert_array_equal(model.tasks_, ids)
    assert [len(c) for c in model.classes_] == [3, 2, 4, 3, 2]
    assert model.coef_.shape == ref.coef_.shape == (3 + 1 + 4 + 3 + 1, 4)
    assert np.abs(model.coef_ - ref.coef_).max() <= 1e-8 * np.abs(ref.coef_).max()
    assert (model.predict(X_all, task=task_all) == ref.predict(X_all, task=task_all)).all()


@pytest.mark.parametrize("labels", [False, True])
def test_cli_sample_weight_file_under_mpi_matches_one_process(comm, shared_tmp, labels):
    # The rows are shuffled in the file, so each rank's tasks' rows (and their weights) are scattered.
    tasks, _ = make_problem(7, seed=22)
    rng = np.random.default_rng(3)
    X = np.vstack([X_t for X_t, _ in tasks])
    y = np.concatenate([y_t for _, y_t in tasks])
    task = np.repeat(np.arange(7) * 2, [len(y_t) for _, y_t in tasks])
    order = rng.permutation(len(y))
    X, y, task = X[order], y[order], task[order]
    if labels:
        y = np.where(y > 0, "yes", "no")
    weights = rng.integers(0, 4, len(y)) + 0.5
    folder, wfile, model_path = f"{shared_tmp}/dw", f"{shared_tmp}/w.npy", f"{shared_tmp}/mw.npz"
    if comm.rank == 0:
        save_dataset(folder, X, y, task)
        np.save(wfile, weights)
    comm.Barrier()
    loss = "logistic" if labels else "squared"
    rc = main(["fit", folder, "--loss", loss, "--sample-weight", wfile, "--penalty", "l21", "--alpha", "0.02",
               "--intercept", "--tol", "1e-12", "--out", model_path])
    assert comm.allgather(rc) == [0] * comm.size
    comm.Barrier()
    model = mtlx.load(model_path)
    Model = mtlx.MultiTaskClassifier if labels else mtlx.MultiTaskRegressor
    ref = Model(penalty="l21", alpha=0.02, tol=1e-12).fit(X, y, task=task, sample_weight=weights)
    scale = np.abs(ref.coef_).max()
    assert np.abs(model.coef_ - ref.coef_).max() <= 1e-10 * scale
    assert np.abs(model.intercept_ - ref.intercept_).max() <= 1e-10 * max(scale, 1.0)
