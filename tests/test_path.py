"""alpha_max, the duality gap, gap-safe screening and the regularization path."""

import numpy as np
import pytest

import mtlx
from mtlx.working_set import WorkingSetSolver, certificate


def shared(seed=0, n=60, d=120, T=4, k=6):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = np.zeros((d, T))
    W[:k] = rng.standard_normal((k, T))
    return mtlx.TaskData.from_shared(X, X @ W + 0.3 * rng.standard_normal((n, T)))


def stacked(seed=1, d=50, sizes=(40, 70, 30)):
    rng = np.random.default_rng(seed)
    w = np.zeros(d)
    w[:4] = 1.0
    tasks = []
    for m in sizes:
        X = rng.standard_normal((m, d))
        tasks.append((X, X @ (w + 0.1 * rng.standard_normal(d)) + 0.2 * rng.standard_normal(m)))
    return mtlx.TaskData.from_tasks(tasks)


def evaluate(engine, W, alpha):
    """Primal value, gap and gap-safe bounds at W, from the exact value."""
    corr, f, _ = engine.gradient_and_value(W, direct=True)
    return certificate(f, corr, W, alpha, engine.penalty, engine.radius_scale)


@pytest.mark.parametrize("penalty", ["l1", "l21", "trace"])
@pytest.mark.parametrize("task_weights", ["mean", "sum"])
def test_alpha_max_is_the_smallest_alpha_giving_zero(penalty, task_weights):
    data = stacked()
    a = mtlx.alpha_max(data, penalty, task_weights)
    kw = dict(penalty=penalty, task_weights=task_weights, tol=1e-10, max_iter=50_000)
    assert np.all(mtlx.solve(data, alpha=a * 1.0001, **kw).W == 0)
    assert np.any(mtlx.solve(data, alpha=a * 0.99, **kw).W != 0)


def test_alpha_max_matches_sklearn():
    from sklearn.linear_model import MultiTaskLasso

    data = shared()
    a = mtlx.alpha_max(data, "l21")
    X, Y = data.X, data.Y
    assert a == pytest.approx(np.linalg.norm(X.T @ Y, axis=1).max() / len(X), rel=1e-12)
    assert np.all(MultiTaskLasso(alpha=a * 1.0001, fit_intercept=False).fit(X, Y).coef_ == 0)


@pytest.mark.parametrize("penalty", ["l1", "l21"])
def test_gap_is_zero_at_the_optimum_and_screening_is_safe(penalty):
    for data in (shared(), stacked()):
        alpha = 0.3 * mtlx.alpha_max(data, penalty)
        res = mtlx.solve(data, penalty=penalty, alpha=alpha, tol=1e-13, max_iter=200_000)
        engine = WorkingSetSolver(data, penalty, n_threads=1)
        primal, gap, bound, _ = evaluate(engine, np.array(res.W, dtype=np.float64), alpha)
        assert primal == pytest.approx(res.objective, rel=1e-12)
        assert 0 <= gap <= 1e-9 * primal
        # Far from the optimum the gap is large, and what it screens is zero at the optimum.
        W0 = np.zeros_like(res.W)
        _, gap0, bound0, _ = evaluate(engine, W0.astype(np.float64), alpha)
        assert gap0 > 1e-3 * primal
        screened = bound0 < alpha
        assert np.all(res.W[screened] == 0)
        assert np.sum(bound < alpha) >= np.sum(screened)
        assert np.all(res.W[bound < alpha] == 0)


@pytest.mark.parametrize("penalty", ["l1", "l21"])
def test_path_with_and_without_screening_agree(penalty):
    for data in (shared(), stacked()):
        kw = dict(n_alphas=8, eps=5e-2, tol=1e-8, n_threads=1)
        fast = mtlx.path(data, penalty, **kw)
        plain = mtlx.path(data, penalty, screening=False, working_set=False, **kw)
        np.testing.assert_allclose(fast.alphas, plain.alphas)
        assert fast.alphas[0] == pytest.approx(mtlx.alpha_max(data, penalty))
        assert np.all(fast.coefs[0] == 0)
        assert np.all(fast.gaps <= 1e-8 * fast.objectives)
        np.testing.assert_allclose(fast.objectives, plain.objectives, rtol=2e-8)
        np.testing.assert_allclose(fast.coefs, plain.coefs, atol=1e-2 * np.abs(plain.coefs).max())
        assert fast.n_screened[1] > 0


def test_path_matches_sklearn_multitasklasso_path():
    from sklearn.linear_model import MultiTaskLasso

    data = shared()
    res = mtlx.path(data, "l21", n_alphas=6, eps=0.1, tol=1e-10, n_threads=1)
    for alpha, W, F in zip(res.alphas[1:], res.coefs[1:], res.objectives[1:]):
        sk = MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(data.X, data.Y)
        W_sk = sk.coef_.T
        F_sk = 0.5 * np.sum((data.Y - data.X @ W_sk) ** 2) / len(data.X) + alpha * np.linalg.norm(W_sk, axis=1).sum()
        assert F <= F_sk * (1 + 1e-9)
        np.testing.assert_allclose(W, W_sk, atol=1e-4)


def test_trace_path_runs_without_screening():
    data = stacked()
    res = mtlx.path(data, "trace", n_alphas=5, eps=0.1)
    assert np.all(res.coefs[0] == 0) and np.isnan(res.gaps).all()
    assert np.all(np.diff(res.objectives) <= 1e-12)


def test_path_refuses_bad_grids():
    data = stacked()
    for bad, message in [([0.1, -1.0], r"alphas\[1\] = -1.0"), ([np.nan], r"alphas\[0\] = nan"),
                         ([], "non-empty"), (0, r"The 'alphas' parameter must be an int in the range \[1, inf\]"),
                         ([[0.1]], "1-D")]:
        with pytest.raises(ValueError, match=message):
            mtlx.path(data, "l21", alphas=bad)
    with pytest.raises(ValueError, match=r"The 'eps' parameter must be a float in the range \(0.0, 1.0\]"):
        mtlx.path(data, "l21", alphas=3, eps=2.0)
    with pytest.raises(ValueError, match="no scale to build an alpha grid"):
        mtlx.path(data, "none")
    res = mtlx.path(data, "l21", alphas=[0.01, 0.1, 0.05], tol=1e-8)  # sorted decreasing, as scikit-learn does
    np.testing.assert_array_equal(res.alphas, [0.1, 0.05, 0.01])


@pytest.mark.parametrize("penalty, loss", [("mean", "squared"), ("L1(0.5) + L21(1)", "squared"),
                                           ("l21", "logistic"), ("Superpose(L21(1), L21Columns(2))", "squared")])
def test_path_of_any_formulation_matches_independent_solves(penalty, loss):
    rng = np.random.default_rng(3)
    tasks = []
    for m in (40, 55, 30):
        X = rng.standard_normal((m, 6))
        y = X @ rng.standard_normal(6) + 0.5
        tasks.append((X, np.where(y > 0.5, 1.0, -1.0) if loss == "logistic" else y))
    data = mtlx.TaskData.from_tasks(tasks)
    res = mtlx.path(data, penalty, loss=loss, alphas=5, eps=0.05, fit_intercept=True, tol=1e-10, max_iter=100_000)
    assert np.all(np.diff(res.alphas) < 0) and res.converged.all()
    for k, alpha in enumerate(res.alphas):
        ref = mtlx.solve(data, loss=loss, penalty=penalty, alpha=alpha, fit_intercept=True, tol=1e-12,
                         max_iter=200_000)
        assert res.objectives[k] == pytest.approx(ref.objective, rel=1e-8)
        np.testing.assert_allclose(res.intercepts[k], ref.b, atol=1e-5)
    if penalty != "mean":  # a norm: the grid starts where W becomes zero, with the intercepts at their optimum
        assert np.all(res.coefs[0] == 0)
        assert mtlx.alpha_max(data, penalty, loss=loss, fit_intercept=True) == pytest.approx(res.alphas[0])


def test_path_on_tasks_too_big_for_gram_rows_falls_back_to_fista(monkeypatch, caplog):
    import mtlx.working_set

    data = stacked()
    kw = dict(n_alphas=5, eps=0.1, tol=1e-9, n_threads=1)
    engine = mtlx.path(data, "l21", **kw)
    monkeypatch.setattr(mtlx.working_set, "MAX_STACKED_GRAM_BYTES", 1)
    with caplog.at_level("WARNING", logger="mtlx"):
        fallback = mtlx.path(data, "l21", **kw)
    assert "solving each alpha by FISTA" in caplog.text
    assert np.isnan(fallback.gaps).all() and np.all(fallback.n_screened == 0)
    np.testing.assert_allclose(fallback.objectives, engine.objectives, rtol=1e-7)
