"""The distributed solve gives the single-process result, whatever the number of ranks."""

import numpy as np
import pytest

import mtlx

from .problems import make_problem, rel_err

T = 7
LOSSES = {"squared": "squared", "logistic": "logistic",
          "mixed": ["squared" if t % 2 == 0 else "logistic" for t in range(T)]}
LOGISTIC = {"squared": (), "logistic": tuple(range(T)), "mixed": tuple(range(1, T, 2))}
KW = dict(alpha=0.05, l2=0.1, tol=1e-12, max_iter=5000, solver="fista")


def _local(comm, tasks, sizes):
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    return mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("loss", ["squared", "logistic", "mixed"])
@pytest.mark.parametrize("penalty", ["l1", "l21", "trace", "mean"])
def test_same_result_as_single_process(comm, penalty, loss, fit_intercept):
    tasks, sizes = make_problem(T, logistic=LOGISTIC[loss])
    kw = dict(KW, loss=LOSSES[loss], penalty=penalty, fit_intercept=fit_intercept)
    ref = mtlx.solve(mtlx.TaskData.from_tasks(tasks), **kw)
    res = mtlx.solve(_local(comm, tasks, sizes), comm=comm, **kw)
    assert res.W.shape == ref.W.shape and res.converged and ref.converged
    assert rel_err(res, ref) < 1e-10
    assert res.objective == pytest.approx(ref.objective, rel=1e-12)
    # Every rank holds the same bits.
    mine = np.concatenate([res.W.ravel(), res.b])
    assert np.array_equal(comm.bcast(mine, root=0), mine)


@pytest.mark.parametrize("penalty", ["l21", "trace"])
def test_reruns_are_bitwise_identical(comm, penalty):
    tasks, sizes = make_problem(T)
    local = _local(comm, tasks, sizes)
    a = mtlx.solve(local, penalty=penalty, comm=comm, **KW)
    b = mtlx.solve(local, penalty=penalty, comm=comm, **KW)
    assert np.array_equal(a.W, b.W) and np.array_equal(a.history, b.history)


@pytest.mark.parametrize("penalty", ["l1", "l21", "trace", "mean"])
def test_more_ranks_than_tasks(comm, penalty):
    n_tasks = comm.size - 1  # at least one rank holds no task
    tasks, sizes = make_problem(n_tasks, seed=11)
    ids = np.array([10 * t + 5 for t in range(n_tasks)])  # global ids need not be 0..T-1
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=ids[mine])
    assert comm.allreduce(int(local.n_tasks == 0)) >= 1
    kw = dict(KW, penalty=penalty, fit_intercept=True)
    ref = mtlx.solve(mtlx.TaskData.from_tasks(tasks, task_ids=ids), **kw)
    res = mtlx.solve(local, comm=comm, **kw)
    assert rel_err(res, ref) < 1e-10


def _sparsified(X, rng):
    import scipy.sparse as sp

    X = X * (rng.random(X.shape) < 0.4)  # about 60% zeros, stored as CSR
    return sp.csr_matrix(X)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("layout", ["stacked", "shared"])
def test_distribute_from_rank_0(comm, layout, sparse, shared_tmp):
    rng = np.random.default_rng(4)
    if layout == "shared":
        X = rng.standard_normal((90, 5))
        Y = X @ rng.standard_normal((5, 4)) + 0.1 * rng.standard_normal((90, 4))
        data = mtlx.TaskData.from_shared(_sparsified(X, rng) if sparse else X, Y)
    else:
        tasks, sizes = make_problem(5, d=5, seed=7)
        if sparse:
            tasks = [(_sparsified(X_t, rng), y_t) for X_t, y_t in tasks]
        data = mtlx.TaskData.from_tasks(tasks)
    assert data.sparse == sparse
    local = mtlx.distribute(data if comm.rank == 0 else None, comm)
    parts = mtlx.distributed.assign_tasks(data.n_samples, comm.size)
    assert np.array_equal(local.task_ids, parts[comm.rank]) and local.sparse == sparse
    dense = (lambda A: A.toarray()) if sparse else (lambda A: A)
    for pos, t in enumerate(local.task_ids):
        assert np.array_equal(dense(local.task(pos)[0]), dense(data.task(t)[0]))
        assert np.array_equal(local.task(pos)[1], data.task(t)[1])
    kw = dict(KW, penalty="trace", fit_intercept=True, task_weights=np.linspace(0.5, 1.5, data.n_tasks))
    ref = mtlx.solve(data, **kw)
    res = mtlx.solve(local, comm=comm, **kw)
    assert rel_err(res, ref) < 1e-10


def test_allreduce_count_and_bytes(comm):
    tasks, sizes = make_problem(T)
    ref = mtlx.solve(mtlx.TaskData.from_tasks(tasks), penalty="l21", **KW)
    res = mtlx.solve(_local(comm, tasks, sizes), penalty="l21", comm=comm, **KW)
    # One Allreduce per line-search trial: the 8 scalars, the step-free pieces of the l21
    # statistics (3 d-vectors) at both candidate next points, 2 flags. Plus the start (the
    # statistics of x0 for g, then f, g and ||grad f||^2, then the pieces at y0, each + 2 flags)
    # and the final flags. With the squared loss a trial is one evaluation after the start's.
    n_trials = res.n_evals - 1
    assert res.n_allreduce == n_trials + 4
    assert res.allreduce_bytes == 8 * ((8 + 2 * 3 * 6 + 2) * n_trials + (6 + 2) + (3 + 2) + (3 * 6 + 2) + 2)
    assert ref.n_allreduce == (ref.n_evals - 1) + 1


def test_float32_tasks(comm):
    tasks, sizes = make_problem(T, seed=8)
    tasks = [(X.astype(np.float32), y.astype(np.float32)) for X, y in tasks]
    kw = dict(penalty="l21", alpha=0.05, l2=0.1, tol=1e-6, fit_intercept=True)
    ref = mtlx.solve(mtlx.TaskData.from_tasks(tasks), **kw)
    res = mtlx.solve(_local(comm, tasks, sizes), comm=comm, **kw)
    assert res.W.dtype == np.float32 and res.converged
    assert rel_err(res, ref) < 1e-4  # float32 rounding, amplified by a tol of 1e-6


def _formulation(name):
    from mtlx import penalties as P

    R = np.zeros((T, T - 1))
    R[np.arange(T - 1), np.arange(T - 1)], R[np.arange(1, T), np.arange(T - 1)] = 1.0, -1.0  # a chain of tasks
    return {
        "l21_columns": P.L21Columns(1.0), "linf1": P.LInf1(1.0), "graph": P.Graph(R, 2.0),
        "clustered": P.Clustered(k=2, eta=0.5, w=2.0), "shared": P.Shared(0.5),
        "sparse group lasso": P.L1(0.5) + P.L21(1.0), "srmtl": P.Graph(R, 2.0) + P.L1(0.5),
        "clustered + l1": P.Clustered(2, 0.5, 2.0) + P.L1(0.5),
        "dirty": P.Superpose(P.LInf1(1.0), P.L1(0.6)), "robust": P.Superpose(P.Trace(1.0), P.L21Columns(0.8)),
        "rmtfl": P.Superpose(P.L21(1.0), P.L21Columns(0.8)), "sparse + low rank": P.Superpose(P.L1(0.5), P.Trace(1.0)),
        "shared + specific": P.Superpose(P.Shared(0.2), P.L1(0.5)),
    }[name]


@pytest.mark.parametrize("loss", ["squared", "mixed"])
@pytest.mark.parametrize("name", ["l21_columns", "linf1", "graph", "clustered", "shared", "sparse group lasso",
                                  "srmtl", "clustered + l1", "dirty", "robust", "rmtfl", "sparse + low rank",
                                  "shared + specific"])
def test_every_formulation_matches_single_process(comm, name, loss):
    # Each formulation's statistics (gathered rows, W W^T, shared gradients...) make the
    # distributed solve reach the single-process optimum. tol 1e-14: the decompositions W = U + V
    # move along directions where F is flat to its rounding, so only the steps resolve their
    # optimum (an error of 1e-8 in W changes F by 1e-17); both solves must get there.
    tasks, sizes = make_problem(T, logistic=LOGISTIC[loss])
    kw = dict(KW, loss=LOSSES[loss], penalty=_formulation(name), fit_intercept=True, tol=1e-14, max_iter=50_000)
    ref = mtlx.solve(mtlx.TaskData.from_tasks(tasks), **kw)
    res = mtlx.solve(_local(comm, tasks, sizes), comm=comm, **kw)
    assert res.converged and ref.converged
    assert rel_err(res, ref) < 1e-10
    assert res.objective == pytest.approx(ref.objective, rel=1e-12)
    for part, part_ref in zip(res.components, ref.components):
        np.testing.assert_allclose(part, part_ref, rtol=0, atol=1e-10 * np.abs(ref.W).max())


@pytest.mark.parametrize("loss", ["squared", "mixed"])
def test_weighted_rows_and_new_losses_same_as_single_process(comm, loss):
    """Sample weights travel with each rank's rows; Huber and Poisson tasks beside the others."""
    tasks, sizes = make_problem(T, logistic=LOGISTIC[loss])
    rng = np.random.default_rng(3)
    weights = [rng.integers(0, 3, size=len(y)).astype(float) + 0.5 * (t % 2) for t, (_, y) in enumerate(tasks)]
    names = LOSSES[loss] if loss == "squared" else \
        ["huber" if t % 4 == 0 else ("logistic" if t % 2 else "poisson") for t in range(T)]
    if loss == "mixed":
        tasks = [(X, np.abs(np.round(y)) if names[t] == "poisson" else y) for t, (X, y) in enumerate(tasks)]
    kw = dict(KW, loss=names, penalty="l21", fit_intercept=True)
    ref = mtlx.solve(mtlx.TaskData.from_tasks(tasks, sample_weight=weights), **kw)
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine, sample_weight=[weights[t] for t in mine])
    res = mtlx.solve(local, comm=comm, **kw)
    assert res.converged and ref.converged
    assert rel_err(res, ref) < 1e-10


@pytest.mark.parametrize("layout", ["stacked", "shared"])
def test_distribute_carries_weights_and_missing_labels(comm, layout):
    tasks, _ = make_problem(T, min_rows=40, max_rows=41)
    rng = np.random.default_rng(4)
    if layout == "shared":
        X = tasks[0][0]
        Y = np.column_stack([X @ rng.standard_normal(X.shape[1]) for _ in range(T)])
        Y[rng.random(Y.shape) < 0.2] = np.nan
        full = mtlx.TaskData.from_shared(X, Y, sample_weight=rng.integers(1, 4, size=len(X)).astype(float))
    else:
        full = mtlx.TaskData.from_tasks(tasks, sample_weight=[rng.integers(0, 3, size=len(y)) + 0.5 for _, y in tasks])
    kw = dict(KW, penalty="l21", fit_intercept=True)
    ref = mtlx.solve(full, **kw)
    local = mtlx.distributed.distribute(full if comm.rank == 0 else None, comm)
    res = mtlx.solve(local, comm=comm, **kw)
    assert rel_err(res, ref) < 1e-10
