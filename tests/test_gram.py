"""The Gram form of the squared loss against the direct form and extended-precision references."""

import logging

import numpy as np
import pytest

import mtlx
from mtlx.gram import GramSquaredLoss, gram_cost
from mtlx.objective import SmoothLoss

from conftest import make_tasks
from reference import loss_grad_ref


def both_layouts(rng, dtype=np.float64):
    tasks = make_tasks(rng, [40, 75, 23, 60], 9, dtype)
    X, Y = rng.standard_normal((70, 9)).astype(dtype), rng.standard_normal((70, 4)).astype(dtype)
    return [mtlx.TaskData.from_tasks(tasks), mtlx.TaskData.from_shared(X, Y)]


def call(f, Wt, b):
    gWt, gb = np.empty_like(Wt), np.empty(len(Wt), dtype=Wt.dtype)
    return f(Wt, b, gWt, gb), gWt, gb


@pytest.mark.parametrize("task_weights", ["mean", "sum", "custom"])
@pytest.mark.parametrize("with_b", [False, True])
def test_gram_matches_direct_along_a_path(rng, dtype, task_weights, with_b):
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for data in both_layouts(rng, dtype):
        T, d = data.n_tasks, data.n_features
        weights = rng.uniform(0.1, 2.0, T) if task_weights == "custom" else task_weights
        direct, gram = SmoothLoss(data, "squared", weights, 1), GramSquaredLoss(data, "squared", weights, 1)
        Wt = np.zeros((T, d), dtype=dtype)
        b = np.zeros(T, dtype=dtype) if with_b else None
        # Large moves (the reference follows) and small ones (the expansion is used).
        for scale in (1.0, 0.3, 1e-3, 1e-6, 0.5, 0.0):
            Wt = (Wt + scale * rng.standard_normal((T, d))).astype(dtype)
            if with_b:
                b = (b + scale * rng.standard_normal(T)).astype(dtype)
            v1, gW1, gb1 = call(direct, Wt, b)
            v2, gW2, gb2 = call(gram, Wt, b)
            assert v2 == pytest.approx(v1, rel=rtol)
            scale_g = np.abs(gW1).max()
            np.testing.assert_allclose(gW2, gW1, atol=rtol * 10 * scale_g, rtol=0)
            np.testing.assert_allclose(gb2, gb1, atol=rtol * 10 * np.abs(gb1).max(), rtol=0)
            assert gram(Wt, b) == pytest.approx(v1, rel=rtol)


def test_gram_value_has_no_cancellation_on_an_almost_exact_fit(rng):
    """||r|| ~ 1e-7 ||y||: the expansion around w = 0 would lose ~14 digits; ours loses none."""
    m, d, T = 400, 12, 3
    # Ill-conditioned inputs too: column scales over 6 decades.
    tasks, W_true = [], rng.standard_normal((d, T))
    for t in range(T):
        X = rng.standard_normal((m, d)) * np.logspace(-3, 3, d)
        tasks.append((X, X @ W_true[:, t] + 1e-7 * rng.standard_normal(m)))
    data = mtlx.TaskData.from_tasks(tasks)
    gram, direct = GramSquaredLoss(data, "squared", "sum", 1), SmoothLoss(data, "squared", "sum", 1)
    W_ls = np.stack([np.linalg.lstsq(X, y, rcond=None)[0] for X, y in tasks])
    gram(np.zeros((T, d)), None)
    for step in (1e-3, 1e-9, 1e-12, 0.0):
        Wt = np.ascontiguousarray(W_ls + step * rng.standard_normal((T, d)) / np.logspace(-3, 3, d))
        exact = 0.0
        for (X, y), w in zip(tasks, Wt):  # extended precision reference
            r = y.astype(np.longdouble) - X.astype(np.longdouble) @ w.astype(np.longdouble)
            exact += 0.5 * float(np.sum(r * r))
        assert gram(Wt, None) == pytest.approx(exact, rel=1e-8)
        assert direct(Wt, None) == pytest.approx(exact, rel=1e-8)


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_solve_gram_reaches_the_direct_optimum(rng, fit_intercept):
    for data in both_layouts(rng):
        kw = dict(penalty="l21", alpha=0.05, tol=1e-11, fit_intercept=fit_intercept, max_iter=50_000, solver="fista")
        a, b = mtlx.solve(data, gram=False, **kw), mtlx.solve(data, gram=True, **kw)
        assert b.gram and not a.gram
        assert b.objective == pytest.approx(a.objective, rel=1e-10)
        np.testing.assert_allclose(b.W, a.W, atol=1e-6)
        T = data.n_tasks
        tasks = [data.task(t) for t in range(T)]
        exact = loss_grad_ref(tasks, b.W, b.b if fit_intercept else None, ["squared"] * T,
                              1.0 / data.n_samples)[0] + 0.05 * np.linalg.norm(b.W, axis=1).sum()
        assert b.objective == pytest.approx(exact, rel=1e-12)


def test_gram_result_is_independent_of_thread_count(rng):
    data = mtlx.TaskData.from_tasks(make_tasks(rng, [500, 30, 900, 200], 12))
    a = mtlx.solve(data, penalty="l1", alpha=0.01, n_threads=1, tol=1e-9, gram=True)
    b = mtlx.solve(data, penalty="l1", alpha=0.01, n_threads=2, tol=1e-9, gram=True)
    np.testing.assert_array_equal(a.W, b.W)


def test_auto_choice_follows_the_cost_model_and_is_logged(rng, caplog):
    tall = mtlx.TaskData.from_tasks(make_tasks(rng, [300, 200], 5))
    wide = mtlx.TaskData.from_tasks(make_tasks(rng, [20, 30], 40))
    assert gram_cost(tall)[0] <= 0.5 < gram_cost(wide)[0]
    with caplog.at_level(logging.INFO, logger="mtlx"):
        assert mtlx.solve(tall, alpha=0.01, solver="fista").gram
        assert "Gram form (auto" in caplog.text
        assert not mtlx.solve(wide, alpha=0.01, solver="fista").gram
        assert "direct form (auto" in caplog.text
    assert mtlx.solve(wide, alpha=0.01, gram=True, solver="fista").gram
    assert not mtlx.solve(tall, alpha=0.01, gram=False, solver="fista").gram


def test_gram_needs_the_squared_loss(rng):
    tasks = make_tasks(rng, [30, 40], 4, logistic=(1,))
    data = mtlx.TaskData.from_tasks(tasks)
    with pytest.raises(ValueError, match="squared loss for every task"):
        mtlx.solve(data, loss=["squared", "logistic"], gram=True)
    assert not mtlx.solve(data, loss=["squared", "logistic"], alpha=0.01).gram
    with pytest.raises(ValueError, match="gram must be"):
        mtlx.solve(data, gram="yes")


@pytest.mark.parametrize("case", ["float32-gram-l21", "float32-gram-trace", "float32-stacked", "float64-admm-eigh",
                                  "huber-newton", "poisson-newton"])
def test_engines_on_blas_are_independent_of_thread_count(case):
    """The engines whose products go to BLAS/LAPACK: the float32 Gram build (OpenBLAS's ssyrk sums
    in an order that depends on its threads), ADMM's eigendecomposition (LAPACK on threaded BLAS,
    d >= 100), proximal Newton's numpy products (threaded matrix-vector sums, 600 x 300). Each
    gave other bits on 2 threads than on 1; now the same bits, of a converged solve."""
    rng = np.random.default_rng(0)
    if case.startswith("float32"):
        X = rng.standard_normal((400, 60)).astype(np.float32)
        Y = rng.standard_normal((400, 4)).astype(np.float32)
        penalty = "trace" if case.endswith("trace") else "l21"
        data = mtlx.TaskData.from_stacked(X, Y[:, 0], np.repeat(np.arange(4), 100)) if case.endswith("stacked") \
            else mtlx.TaskData.from_shared(X, Y)
        kw = dict(penalty=penalty, alpha=0.02)
    elif case == "float64-admm-eigh":
        data = mtlx.TaskData.from_shared(rng.standard_normal((1000, 100)), rng.standard_normal((1000, 4)))
        kw = dict(penalty="trace", alpha=0.02, solver="admm")
    else:
        X = rng.standard_normal((600, 300))
        Y = X[:, :5] @ rng.standard_normal((5, 3)) + rng.standard_normal((600, 3))
        loss = case.split("-")[0]
        data = mtlx.TaskData.from_shared(X, np.abs(np.round(Y)) if loss == "poisson" else Y)
        kw = dict(loss=loss, penalty="l21", alpha=0.05, solver="cd")
    one, two = (mtlx.solve(data, n_threads=k, **kw) for k in (1, 2))
    assert one.converged
    np.testing.assert_array_equal(one.W, two.W)
    np.testing.assert_array_equal(one.b, two.b)
