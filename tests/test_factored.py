"""The factored trace-norm engine against FISTA's optimum, its certificate, rank growth and warm starts."""

import warnings

import numpy as np
import pytest

import mtlx
from mtlx import penalties as P

from conftest import make_tasks


def low_rank_tasks(rng, T=6, d=8, rank=2, logistic=()):
    B = rng.standard_normal((d, rank)) @ rng.standard_normal((rank, T))
    tasks = []
    for t in range(T):
        X = rng.standard_normal((int(rng.integers(25, 60)), d))
        y = X @ B[:, t] + 0.5 + 0.3 * rng.standard_normal(len(X))
        tasks.append((X, np.where(y > 0.5, 1.0, -1.0) if t in logistic else y))
    return tasks


@pytest.mark.parametrize("loss", ["squared", "logistic", "mixed"])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_reaches_fistas_optimum_with_a_certified_gap(rng, loss, fit_intercept):
    T = 6
    logistic = {"squared": (), "logistic": tuple(range(T)), "mixed": (1, 3, 5)}[loss]
    losses = ["logistic" if t in logistic else "squared" for t in range(T)]
    data = mtlx.TaskData.from_tasks(low_rank_tasks(rng, T, logistic=logistic))
    kw = dict(loss=losses, penalty="trace", alpha=0.05, fit_intercept=fit_intercept)
    ref = mtlx.solve(data, tol=1e-11, max_iter=200_000, **kw)
    res = mtlx.solve(data, tol=1e-10, solver="factored", **kw)
    assert res.converged and res.solver == "factored" and "duality gap" in res.message
    assert res.objective == pytest.approx(ref.objective, rel=1e-9)
    assert res.optimality <= 1e-10  # the certified relative gap
    # The gap bounds the distance to the optimum: F(res) - F* <= gap * F(res).
    assert res.objective - min(ref.objective, res.objective) <= res.optimality * res.objective + 1e-12
    np.testing.assert_allclose(res.W, ref.W, atol=1e-5 * np.abs(ref.W).max())


def test_shared_input_float32_and_a_smooth_term(rng):
    X = rng.standard_normal((80, 7))
    Y = X @ rng.standard_normal((7, 2)) @ rng.standard_normal((2, 5)) + 0.2 * rng.standard_normal((80, 5))
    for dtype in (np.float64, np.float32):
        data = mtlx.TaskData.from_shared(X.astype(dtype), Y.astype(dtype))
        for penalty in ("trace", P.Trace(1.0) + P.Mean(0.5)):
            ref = mtlx.solve(data, penalty=penalty, alpha=0.1, tol=1e-12 if dtype == np.float64 else 1e-7,
                             max_iter=100_000)
            res = mtlx.solve(data, penalty=penalty, alpha=0.1, tol=1e-9 if dtype == np.float64 else 1e-6,
                             solver="factored")
            assert res.converged and res.W.dtype == dtype
            assert res.objective == pytest.approx(ref.objective, rel=1e-8 if dtype == np.float64 else 1e-5)


def test_rank_grows_from_zero_and_warm_starts_keep_the_optimum(rng):
    # Zero factors are a saddle point of the factored problem: from a zero warm start (what a
    # path or a warm-started estimator passes at large alpha) the rank must still grow.
    data = mtlx.TaskData.from_tasks(low_rank_tasks(rng))
    top = mtlx.alpha_max(data, "trace")
    big = mtlx.solve(data, penalty="trace", alpha=1.5 * top, solver="factored")
    assert big.converged and np.all(big.W == 0)
    res = mtlx.solve(data, penalty="trace", alpha=0.02, tol=1e-10, solver="factored", W0=big.W)
    ref = mtlx.solve(data, penalty="trace", alpha=0.02, tol=1e-12, max_iter=200_000)
    assert res.converged and res.objective == pytest.approx(ref.objective, rel=1e-9)
    again = mtlx.solve(data, penalty="trace", alpha=0.02, tol=1e-10, solver="factored", W0=res.W)
    assert again.n_iter <= 30 and again.objective == pytest.approx(res.objective, rel=1e-10)


def test_auto_picks_it_and_callbacks_stop_it(rng):
    data = mtlx.TaskData.from_tasks(make_tasks(rng, [30, 40, 25, 35], 5))
    model = mtlx.MultiTaskRegressor(penalty="trace", alpha=0.1).fit(data)
    assert model.solver_ == "admm"  # least squares in the Gram form: ADMM
    # Without the Gram form: FISTA first, converged within its share of iterations ...
    res = mtlx.solve(data, penalty="trace", alpha=0.1, solver="auto", gram=False)
    assert res.solver == "fista" and res.converged
    slow = mtlx.TaskData.from_tasks([(X * np.logspace(0, 3, X.shape[1]), y) for X, y in make_tasks(rng, [40, 60], 5)])
    res = mtlx.solve(slow, penalty="trace", alpha=0.01, tol=1e-10, solver="auto", gram=False)
    assert res.solver == "fista+factored" and res.converged  # ... FISTA too slow: the factored engine finished
    seen = []

    def stop_after_three(state):
        seen.append(state.objective)
        if len(seen) == 3:
            raise StopIteration

    res = mtlx.solve(data, penalty="trace", alpha=0.1, solver="factored", callback=stop_after_three)
    assert len(seen) == 3 and not res.converged and res.message == "stopped by callback"
    assert np.all(np.diff(seen) <= 1e-12 * abs(seen[0]))  # phi decreases along L-BFGS
    with pytest.raises(ValueError, match="solver='factored' needs a trace norm"):
        mtlx.solve(data, penalty="l21", solver="factored")
    with pytest.raises(ValueError, match="solver='factored' needs alpha > 0"):
        mtlx.solve(data, penalty="trace", alpha=0.0, solver="factored")


def test_zero_is_certified_with_a_ridge_term(rng):
    # With a ridge term there is no duality gap: the first-order conditions certify. Above the
    # spectral threshold W = 0 is optimal and the factors are exactly zero, where the factored
    # gradient relative to the factors' scale is 0/0: only the intercepts' gradient may count.
    data = mtlx.TaskData.from_tasks(low_rank_tasks(rng))
    top = mtlx.alpha_max(data, "trace")  # with fitted intercepts: ||G(0, b*)||_2 <= alpha makes W = 0 optimal
    res = mtlx.solve(data, penalty="trace", alpha=2.0 * top, l2=1.0, fit_intercept=True, solver="factored",
                     tol=1e-9)
    assert res.converged and np.all(res.W == 0), res.message
    # The intercepts alone: the mean of each task's targets (the squared loss, W = 0).
    means = [y.mean() for _, y in (data.task(t) for t in range(data.n_tasks))]
    np.testing.assert_allclose(res.b, means, rtol=1e-9)


def test_auto_leaves_float32_data_to_engines_that_certify_it(rng):
    """The factored engine stalls on float32 data near 1e-5 of W (FISTA and ADMM reach 2e-7), and
    said "raise max_iter" after 57 of 10,000 iterations: "auto" takes it for float64 data only,
    and a stall names the precision."""
    slow = [(X * np.logspace(0, 3, X.shape[1]), y) for X, y in make_tasks(rng, [40, 60], 5)]
    for dtype, expected in ((np.float64, "fista+factored"), (np.float32, "fista")):
        data = mtlx.TaskData.from_tasks([(X.astype(dtype), y.astype(dtype)) for X, y in slow])
        res = mtlx.solve(data, penalty="trace", alpha=0.01, tol=1e-10 if dtype == np.float64 else 1e-6,
                         solver="auto", gram=False)
        assert res.solver == expected
    X = rng.standard_normal((120, 12))
    Y = X @ rng.standard_normal((12, 2)) @ rng.standard_normal((2, 6)) + 0.05 * rng.standard_normal((120, 6))
    data32 = mtlx.TaskData.from_shared(X.astype(np.float32), Y.astype(np.float32))
    assert mtlx.solve(data32, penalty="trace", alpha=0.05, tol=1e-6).solver != "factored"
    reference = mtlx.solve(mtlx.TaskData.from_shared(X, Y), penalty="trace", alpha=0.05, tol=1e-12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = mtlx.solve(data32, penalty="trace", alpha=0.05, tol=1e-9, solver="factored")
    messages = [str(w.message) for w in caught if issubclass(w.category, mtlx.ConvergenceWarning)]
    assert not res.converged and res.n_iter < 10_000  # float32 rounding stalls it before the certificate
    assert any("stalled at the resolution of its float32 arithmetic: solve in float64 or with solver='fista'" in m
               for m in messages), messages
    np.testing.assert_allclose(res.W, reference.W, atol=1e-3 * np.abs(reference.W).max())
