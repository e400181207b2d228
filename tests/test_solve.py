"""End-to-end solves against scikit-learn and an independent numpy FISTA."""

import warnings

import numpy as np
import pytest

import mtlx
from mtlx.datasets import load_school

from conftest import make_tasks
from reference import fista_squared_ref, loss_grad_ref, penalty_ref


def objective_ref(tasks, W, b, losses, weights, alpha, penalty, l2=0.0):
    value = loss_grad_ref(tasks, W, b, losses, weights)[0]
    return value + alpha * penalty_ref(W, penalty) + 0.5 * l2 * np.sum(W**2)


def shared_problem(seed=0, n=200, d=30, T=5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W_true = np.zeros((d, T))
    W_true[:5] = rng.standard_normal((5, T))
    Y = X @ W_true + 0.5 * rng.standard_normal((n, T)) + 3.0
    return X, Y


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_l21_reaches_sklearn_multitasklasso_objective(fit_intercept):
    from sklearn.linear_model import MultiTaskLasso

    X, Y = shared_problem()
    n, T = Y.shape
    Xc = X - X.mean(0)
    alpha_max = np.sqrt(np.sum((Xc.T @ (Y - Y.mean(0))) ** 2, axis=1)).max() / n
    alpha = 0.05 * alpha_max
    sk = MultiTaskLasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-14, max_iter=100_000).fit(X, Y)
    W_sk, b_sk = sk.coef_.T, (sk.intercept_ if fit_intercept else np.zeros(T))
    tasks = [(X, Y[:, t]) for t in range(T)]
    weights = np.full(T, 1.0 / n)  # (1/2n)||Y - XW||^2 is F with task_weights="mean"
    F_sk = objective_ref(tasks, W_sk, b_sk, ["squared"] * T, weights, alpha, "l21")

    res = mtlx.solve(mtlx.TaskData.from_shared(X, Y), penalty="l21", alpha=alpha,
                     fit_intercept=fit_intercept, tol=1e-13, max_iter=100_000)
    F_ours = objective_ref(tasks, res.W, res.b, ["squared"] * T, weights, alpha, "l21")
    assert res.converged
    assert res.objective == pytest.approx(F_ours, rel=1e-13)
    assert (F_ours - F_sk) / F_sk <= 1e-9
    np.testing.assert_allclose(res.W, W_sk, atol=1e-5)


SCHOOL_CASES = [("l1", 1000.0), ("l21", 1400.0), ("trace", 10000.0), ("trace", 1000.0)]


@pytest.fixture(scope="module")
def school_tasks():
    return load_school().tasks()


@pytest.mark.parametrize("penalty,alpha", SCHOOL_CASES)
def test_school_matches_numpy_fista(school_tasks, penalty, alpha):
    T = len(school_tasks)
    _, F_ref = fista_squared_ref(school_tasks, np.ones(T), penalty, alpha)
    res = mtlx.solve(mtlx.TaskData.from_tasks(school_tasks), penalty=penalty, alpha=alpha,
                     task_weights="sum", tol=1e-9, max_iter=100_000)
    assert res.converged
    F_direct = objective_ref(school_tasks, res.W, None, ["squared"] * T, np.ones(T), alpha, penalty)
    assert res.objective == pytest.approx(F_direct, rel=1e-12)
    assert abs(res.objective - F_ref) / F_ref <= 1e-8


def test_logistic_matches_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 8))
    y = np.where(X @ rng.standard_normal(8) + 0.5 * rng.standard_normal(300) > 0, 1.0, -1.0)
    l2 = 2.0
    sk = LogisticRegression(C=1.0 / l2, fit_intercept=False, tol=1e-12, max_iter=10_000).fit(X, y)
    res = mtlx.solve(mtlx.TaskData.from_tasks([(X, y)]), loss="logistic", penalty="none", l2=l2,
                     task_weights="sum", tol=1e-13, max_iter=100_000)
    F = lambda w: np.sum(np.logaddexp(0, -y * (X @ w))) + 0.5 * l2 * w @ w  # noqa: E731
    assert res.objective == pytest.approx(F(res.W[:, 0]), rel=1e-13)
    assert F(res.W[:, 0]) <= F(sk.coef_[0]) * (1 + 1e-10)
    np.testing.assert_allclose(res.W[:, 0], sk.coef_[0], rtol=1e-5, atol=1e-6)


def test_mixed_losses_with_intercepts_reach_a_stationary_point(rng):
    sizes = [40, 1, 25, 60]
    tasks = make_tasks(rng, sizes, 4, logistic=(0, 3))
    losses = ["logistic", "squared", "squared", "logistic"]
    l2 = 0.3
    res = mtlx.solve(mtlx.TaskData.from_tasks(tasks), loss=losses, penalty="none", l2=l2,
                     fit_intercept=True, tol=1e-14, max_iter=100_000)
    _, gW, gb = loss_grad_ref(tasks, res.W, res.b, losses, 1.0 / np.array(sizes))
    np.testing.assert_allclose(gW + l2 * res.W, 0.0, atol=1e-9)
    np.testing.assert_allclose(gb, 0.0, atol=1e-9)


@pytest.mark.parametrize("penalty", ["l1", "l21", "trace", "mean"])
def test_float32_agrees_with_float64(rng, penalty):
    tasks = make_tasks(rng, [50, 80, 30], 6)
    r64 = mtlx.solve(mtlx.TaskData.from_tasks(tasks), penalty=penalty, alpha=0.05, tol=1e-10)
    tasks32 = [(X.astype(np.float32), y.astype(np.float32)) for X, y in tasks]
    r32 = mtlx.solve(mtlx.TaskData.from_tasks(tasks32), penalty=penalty, alpha=0.05, tol=1e-5)
    assert r32.W.dtype == np.float32
    assert r32.objective == pytest.approx(r64.objective, rel=1e-5)
    np.testing.assert_allclose(r32.W, r64.W, atol=2e-3)


def test_result_is_independent_of_thread_count(rng):
    data = mtlx.TaskData.from_tasks(make_tasks(rng, [500, 30, 900], 40))
    a = mtlx.solve(data, penalty="l21", alpha=0.02, n_threads=1, tol=1e-8)
    b = mtlx.solve(data, penalty="l21", alpha=0.02, n_threads=2, tol=1e-8)
    np.testing.assert_array_equal(a.W, b.W)
    assert a.n_iter == b.n_iter


def test_history_warm_start_and_objective(rng):
    tasks = make_tasks(rng, [30, 45], 5)
    data = mtlx.TaskData.from_tasks(tasks)
    res = mtlx.solve(data, penalty="l21", alpha=0.1, fit_intercept=True, tol=1e-12)
    weights = 1.0 / np.array([30, 45])
    F0 = objective_ref(tasks, np.zeros((5, 2)), np.zeros(2), ["squared"] * 2, weights, 0.1, "l21")
    assert res.history[0] == pytest.approx(F0, rel=1e-13)
    assert res.history[-1] == res.objective
    assert len(res.history) == res.n_iter + 1
    assert res.objective <= res.history[0]
    warm = mtlx.solve(data, penalty="l21", alpha=0.1, fit_intercept=True, tol=1e-12, W0=res.W, b0=res.b)
    assert warm.history[0] == pytest.approx(res.objective, rel=1e-13)
    assert warm.n_iter < res.n_iter / 4
    assert warm.objective == pytest.approx(res.objective, rel=1e-12)


def test_alpha_above_alpha_max_gives_zero(rng):
    tasks = make_tasks(rng, [30, 20], 4)
    grads = np.stack([X.T @ y / len(y) for X, y in tasks], axis=1)
    alpha_max = np.linalg.norm(grads, axis=1).max()  # smallest alpha with W = 0 (l21, mean weights)
    res = mtlx.solve(mtlx.TaskData.from_tasks(tasks), penalty="l21", alpha=1.01 * alpha_max)
    assert res.converged and np.all(res.W == 0)
    res = mtlx.solve(mtlx.TaskData.from_tasks(tasks), penalty="l21", alpha=0.9 * alpha_max)
    assert np.any(res.W != 0)


def test_callback_stop_iteration_stops_cleanly(rng):
    data = mtlx.TaskData.from_tasks(make_tasks(rng, [30, 40], 5))
    seen = []

    def callback(state):
        seen.append((state.n_iter, state.objective, state.W.shape))
        if state.n_iter == 3:
            raise StopIteration

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = mtlx.solve(data, penalty="l1", alpha=0.01, tol=1e-14, callback=callback)
    assert res.n_iter == 3 and not res.converged
    assert [s[0] for s in seen] == [1, 2, 3]
    assert seen[-1][1] == res.objective and seen[0][2] == (5, 2)


def test_max_iter_warns(rng):
    data = mtlx.TaskData.from_tasks(make_tasks(rng, [30, 40], 5))
    with pytest.warns(mtlx.ConvergenceWarning, match="did not converge in 2 iterations"):
        res = mtlx.solve(data, penalty="l1", alpha=0.01, tol=1e-14, max_iter=2)
    assert res.n_iter == 2 and not res.converged


def test_converges_when_the_optimum_is_zero():
    # Balanced labels on far-off-centre features: the optimum is exactly W = 0, b = 0 (the KKT
    # condition |grad_j f(0)| <= alpha holds), and the iterate has no size to measure steps by.
    rng = np.random.RandomState(0)
    X = rng.normal(loc=100, size=(100, 2))
    y = np.repeat([-1.0, 1.0], 50)
    grad0 = X.T @ (-0.5 * y) / len(y)
    assert np.all(np.abs(grad0) <= 0.1)
    res = mtlx.solve(mtlx.TaskData.from_shared(X, y), loss="logistic", penalty="l21", alpha=0.1,
                     fit_intercept=True, max_iter=1000)
    assert res.converged and res.n_iter < 10
    np.testing.assert_array_equal(res.W, 0.0)
    assert abs(res.b[0]) < 1e-12


@pytest.mark.parametrize("n_threads", [1, 2])
def test_blas_follows_n_threads_during_a_solve(rng, n_threads):
    # The BLAS libraries mtlx calls: numpy's and SciPy's (others loaded in the process, such as
    # the one SCS bundles for cvxpy, are not mtlx's to limit).
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen = []

    def ours():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["user_api"] == "blas" and ("numpy" in lib["filepath"] or "scipy" in lib["filepath"])]

    def record(state):
        seen.extend(ours())

    data = mtlx.TaskData.from_tasks(make_tasks(rng, [40, 60], 6))
    before = ours()
    with pytest.warns(mtlx.ConvergenceWarning):
        mtlx.solve(data, penalty="trace", alpha=0.1, n_threads=n_threads, max_iter=3, tol=0, callback=record)
    assert seen and set(seen) == {n_threads}
    assert ours() == before


def test_convergence_warning_points_at_the_caller(rng):
    data = mtlx.TaskData.from_tasks(make_tasks(rng, [40, 60], 6))
    with pytest.warns(mtlx.ConvergenceWarning) as record:
        mtlx.solve(data, max_iter=1, tol=0)
    assert record[0].filename == __file__


def test_mean_penalty_matches_its_linear_system(school_tasks):
    # Mean-regularized least squares is a linear system: X_t'(X_t w_t - y_t) + alpha (w_t - mean)
    # + l2 w_t = 0 for every t (the mean's own derivative cancels), solved here densely.
    rows = np.vstack([X[:, :-1] for X, _ in school_tasks[:30]])
    mean, std = rows.mean(axis=0), rows.std(axis=0)
    tasks = [((X[:, :-1] - mean) / std, y) for X, y in school_tasks[:30]]
    T, d, alpha, l2 = len(tasks), tasks[0][0].shape[1], 300.0, 1.0
    A = np.kron(np.eye(T), (alpha + l2) * np.eye(d)) - np.kron(np.full((T, T), alpha / T), np.eye(d))
    rhs = np.zeros(T * d)
    for t, (X, y) in enumerate(tasks):
        A[t * d : (t + 1) * d, t * d : (t + 1) * d] += X.T @ X
        rhs[t * d : (t + 1) * d] = X.T @ y
    W_ref = np.linalg.solve(A, rhs).reshape(T, d).T
    res = mtlx.solve(mtlx.TaskData.from_tasks(tasks), penalty="mean", alpha=alpha, l2=l2, task_weights="sum",
                     tol=1e-10, max_iter=100_000)
    assert res.converged
    np.testing.assert_allclose(res.W, W_ref, rtol=0, atol=5e-8 * np.abs(W_ref).max())
    F_ref = objective_ref(tasks, W_ref, None, ["squared"] * T, np.ones(T), alpha, "mean") + 0.5 * l2 * np.sum(W_ref**2)
    assert res.objective == pytest.approx(F_ref, rel=1e-12)

