"""The Huber, squared hinge and Poisson losses: value and gradient against numpy definitions and
finite differences, optima against cvxpy and scikit-learn, mixed per task, the estimators and
the CLI, and the errors of targets outside a loss's domain."""

import numpy as np
import pytest

import mtlx
from mtlx.losses import Huber

from reference import LOSS_REFS, loss_grad_ref

cp = pytest.importorskip("cvxpy")

SIZES = [9, 1, 25, 4]
D = 5
NEW = ("huber", "squared_hinge", "poisson")


def targets(rng, loss, z, dtype=np.float64):
    """Targets in the loss's domain, loosely following margins z."""
    if loss in ("logistic", "squared_hinge"):
        y = np.where(z + 0.5 * rng.standard_normal(z.shape) > 0, 1.0, -1.0)
    elif loss == "poisson":
        y = rng.poisson(np.exp(np.clip(0.5 * z, -3, 3))).astype(float)
    else:
        y = z + rng.standard_t(2, size=z.shape)  # heavy tails: some residuals beyond epsilon
    return y.astype(dtype)


def ragged(rng, losses, dtype=np.float64, sizes=SIZES, d=D):
    tasks = []
    for m, loss in zip(sizes, losses):
        X = rng.standard_normal((m, d))
        tasks.append((X.astype(dtype), targets(rng, loss, X @ rng.standard_normal(d), dtype)))
    return tasks


@pytest.mark.parametrize("loss", NEW)
@pytest.mark.parametrize("intercept", [False, True])
def test_value_and_gradient_match_numpy(rng, dtype, loss, intercept):
    losses = [loss] * len(SIZES)
    tasks = ragged(rng, losses, dtype)
    data = mtlx.TaskData.from_tasks(tasks)
    W = (0.3 * rng.standard_normal((D, len(SIZES)))).astype(dtype)
    b = (0.3 * rng.standard_normal(len(SIZES))).astype(dtype) if intercept else None
    value, gW, gb = mtlx.loss_grad(data, W, b, loss=loss)
    ref_value, ref_gW, ref_gb = loss_grad_ref(tasks, W, b, losses, 1.0 / np.array(SIZES))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(value, ref_value, **tol)
    np.testing.assert_allclose(gW, ref_gW, **tol)
    np.testing.assert_allclose(gb, ref_gb, **tol)


def test_shared_layout_mixes_every_loss(rng):
    """One X, one column per loss: the shared kernel against the numpy definitions."""
    names = ["squared", "logistic", *NEW]
    X = rng.standard_normal((40, D))
    Y = np.column_stack([targets(rng, name, X @ rng.standard_normal(D)) for name in names])
    W, b = 0.3 * rng.standard_normal((D, len(names))), 0.3 * rng.standard_normal(len(names))
    value, gW, gb = mtlx.loss_grad(mtlx.TaskData.from_shared(X, Y), W, b, loss=names, task_weights="sum")
    ref = loss_grad_ref([(X, Y[:, t]) for t in range(len(names))], W, b, names, np.ones(len(names)))
    np.testing.assert_allclose(value, ref[0], rtol=1e-12)
    np.testing.assert_allclose(gW, ref[1], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(gb, ref[2], rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("loss", [*NEW, Huber(0.3)])
def test_gradient_matches_central_differences(rng, loss):
    name = loss if isinstance(loss, str) else loss.name
    tasks = ragged(rng, [name] * len(SIZES))
    data = mtlx.TaskData.from_tasks(tasks)
    W, b = 0.3 * rng.standard_normal((D, len(SIZES))), 0.3 * rng.standard_normal(len(SIZES))
    _, gW, gb = mtlx.loss_grad(data, W, b, loss=loss, task_weights="sum")
    h = 1e-6

    def f(W_, b_):
        return mtlx.loss_grad(data, W_, b_, loss=loss, task_weights="sum")[0]

    for j in range(D):
        for t in range(len(SIZES)):
            E = np.zeros_like(W)
            E[j, t] = h
            assert (f(W + E, b) - f(W - E, b)) / (2 * h) == pytest.approx(gW[j, t], rel=1e-6, abs=1e-7)
    for t in range(len(SIZES)):
        e = np.zeros_like(b)
        e[t] = h
        assert (f(W, b + e) - f(W, b - e)) / (2 * h) == pytest.approx(gb[t], rel=1e-6, abs=1e-7)


def test_huber_epsilon_reaches_the_core(rng):
    X = rng.standard_normal((30, D))
    y = 3.0 * rng.standard_normal(30)
    data = mtlx.TaskData.from_tasks([(X, y)])
    W = np.zeros((D, 1))
    for eps in (0.1, 1.35, 10.0):
        value = mtlx.loss_grad(data, W, loss=Huber(eps), task_weights="sum")[0]
        assert value == pytest.approx(LOSS_REFS["huber"][0](y, 0.0, eps).sum(), rel=1e-13)


# ----------------------------------------------------------------------------- optima
def _cvx_loss(name, y, z):
    if name == "huber":
        return cp.sum(cp.huber(y - z, 1.35))
    if name == "squared_hinge":
        return cp.sum(cp.square(cp.pos(1 - cp.multiply(y, z))))
    if name == "poisson":
        return cp.sum(cp.exp(z) - cp.multiply(y, z))
    return 0.5 * cp.sum_squares(y - z)


#: Clarabel at its tightest: at its defaults the exponential cone's answer is 1e-5 off.
TIGHT = dict(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, tol_ktratio=1e-10)


@pytest.mark.parametrize("loss", NEW)
def test_one_task_optimum_matches_cvxpy(rng, loss):
    X = rng.standard_normal((60, D))
    y = targets(rng, loss, X @ rng.standard_normal(D))
    l2 = 0.05
    res = mtlx.solve(mtlx.TaskData.from_tasks([(X, y)]), loss=loss, penalty="none", alpha=0.0, l2=l2,
                     fit_intercept=True, task_weights="sum", tol=1e-12, max_iter=50_000)
    w, b = cp.Variable(D), cp.Variable()
    cp.Problem(cp.Minimize(_cvx_loss(loss, y, X @ w + b) + 0.5 * l2 * cp.sum_squares(w))).solve(**TIGHT)
    np.testing.assert_allclose(res.W[:, 0], w.value, atol=1e-8)
    assert res.b[0] == pytest.approx(float(b.value), abs=1e-8)


def test_mixed_losses_coupled_by_l21_match_cvxpy(rng):
    """Regression beside classification beside counts, one l21 penalty across them."""
    names = ["squared", "huber", "squared_hinge", "poisson"]
    tasks = ragged(rng, names, sizes=[30, 25, 40, 35], d=6)
    alpha = 0.05
    res = mtlx.solve(mtlx.TaskData.from_tasks(tasks), loss=names, penalty="l21", alpha=alpha, fit_intercept=True,
                     tol=1e-11, max_iter=100_000)
    W, b = cp.Variable((6, 4)), cp.Variable(4)
    f = sum(_cvx_loss(n, y, X @ W[:, t] + b[t]) / len(y) for t, (n, (X, y)) in enumerate(zip(names, tasks)))
    cp.Problem(cp.Minimize(f + alpha * cp.sum(cp.norm(W, 2, axis=1)))).solve(**TIGHT)
    np.testing.assert_allclose(res.W, W.value, atol=1e-8)
    np.testing.assert_allclose(res.b, b.value, atol=1e-8)


def test_poisson_matches_scikit_learn(rng):
    from sklearn.linear_model import PoissonRegressor

    X = rng.standard_normal((200, D))
    y = rng.poisson(np.exp(0.4 * X[:, 0] - 0.2 * X[:, 1] + 0.5)).astype(float)
    alpha = 0.01  # PoissonRegressor: mean half deviance + alpha/2 ||w||^2
    model = mtlx.MultiTaskRegressor(loss="poisson", penalty="none", alpha=0.0, l2=alpha, tol=1e-12).fit(X, y)
    ref = PoissonRegressor(alpha=alpha, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(model.coef_[0], ref.coef_, atol=1e-7)
    assert model.intercept_[0] == pytest.approx(ref.intercept_, abs=1e-7)
    np.testing.assert_allclose(model.predict(X), ref.predict(X), rtol=1e-6)


def test_squared_hinge_matches_linear_svc(rng):
    from sklearn.svm import LinearSVC

    X = rng.standard_normal((150, D))
    y = np.where(X @ rng.standard_normal(D) + 0.3 * rng.standard_normal(150) > 0, 1, 0)
    C = 0.5  # LinearSVC: 0.5 ||w||^2 + C sum max(0, 1 - y z)^2, intercept unpenalized here
    model = mtlx.MultiTaskClassifier(loss="squared_hinge", penalty="none", alpha=0.0, l2=1.0 / C,
                                     task_weights="sum", fit_intercept=False, tol=1e-12).fit(X, y)
    ref = LinearSVC(C=C, loss="squared_hinge", fit_intercept=False, tol=1e-10, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(model.coef_[0], ref.coef_[0], atol=1e-5)
    np.testing.assert_array_equal(model.predict(X), ref.predict(X))
    assert not hasattr(model, "predict_proba")  # a margin loss gives no probabilities
    assert hasattr(mtlx.MultiTaskClassifier().fit(X, y), "predict_proba")


def test_huber_resists_outliers_where_squared_does_not(rng):
    X = rng.standard_normal((200, D))
    w = rng.standard_normal(D)
    y = X @ w + 0.1 * rng.standard_normal(200)
    y[:10] += 100.0  # gross outliers
    huber = mtlx.MultiTaskRegressor(loss="huber", epsilon=0.5, penalty="none", alpha=0.0).fit(X, y)
    squared = mtlx.MultiTaskRegressor(penalty="none", alpha=0.0).fit(X, y)
    assert np.abs(huber.coef_[0] - w).max() < 0.1 < np.abs(squared.coef_[0] - w).max()


@pytest.mark.parametrize("loss", NEW)
def test_alpha_max_is_where_the_solution_leaves_zero(rng, loss):
    """alpha_max from each loss's own optimal intercept at W = 0 (bisection via the core for Huber)."""
    names = [loss] * 3
    tasks = ragged(rng, names, sizes=[40, 30, 50], d=6)
    data = mtlx.TaskData.from_tasks(tasks)
    top = mtlx.alpha_max(data, "l21", loss=loss, fit_intercept=True)
    above = mtlx.solve(data, loss=loss, penalty="l21", alpha=1.0001 * top, fit_intercept=True, tol=1e-10)
    below = mtlx.solve(data, loss=loss, penalty="l21", alpha=0.95 * top, fit_intercept=True, tol=1e-10)
    assert np.abs(above.W).max() < 1e-8 < np.abs(below.W).max()


# ----------------------------------------------------------------------------- errors, CLI
def test_targets_outside_a_loss_domain_are_named(rng):
    X = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match=r"task 1: y holds 1 negative value \(the first: -1\), but the poisson loss "
                                         r"needs counts"):
        y = np.arange(10.0)
        y_bad = y.copy()
        y_bad[2] = -1
        mtlx.solve(mtlx.TaskData.from_tasks([(X, y), (X, y_bad)]), loss="poisson")
    with pytest.raises(ValueError, match=r"task 0: y holds labels \[0.5\] but the squared_hinge loss needs"):
        mtlx.solve(mtlx.TaskData.from_tasks([(X, np.full(10, 0.5))]), loss="squared_hinge")
    with pytest.raises(ValueError, match="task 0: every count of the poisson task is 0"):
        mtlx.solve(mtlx.TaskData.from_tasks([(X, np.zeros(10))]), loss="poisson", fit_intercept=True)
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        Huber(0.0)
    with pytest.raises(ValueError, match=r"'epsilon' parameter must be a float in the range \(0.0, inf\)"):
        mtlx.MultiTaskRegressor(loss="huber", epsilon=-1.0).fit(X, np.arange(10.0))
    with pytest.raises(ValueError, match=r"'loss' parameter of MultiTaskRegressor must be one of"):
        mtlx.MultiTaskRegressor(loss="logistic").fit(X, np.arange(10.0))


def test_the_core_refuses_a_bad_huber_epsilon():
    from mtlx import _core

    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="task 0: the Huber loss needs a finite epsilon > 0"):
        _core.loss_grad_stacked(X, np.ones(3), np.array([0, 3]), np.array([int(_core.LossKind.huber)], np.uint8),
                                np.zeros(1), np.ones(1), np.ones((1, 2)), None, None, None, 1)


def test_cli_fits_each_new_loss(rng, tmp_path):
    from mtlx.cli import _FIT_LOSSES, main

    assert set(_FIT_LOSSES) == set(mtlx.MultiTaskRegressor._losses) | set(mtlx.MultiTaskClassifier._losses)
    assert set(_FIT_LOSSES) == set(mtlx.LOSSES) - {"multinomial"}  # (the classifier's, for K > 2 classes)
    X = rng.standard_normal((60, 4))
    z = X @ rng.standard_normal(4)
    for loss in NEW:
        y = targets(rng, loss, z)
        np.savez(tmp_path / f"{loss}.npz", X=X, y=y, task=np.repeat([0, 1], 30))
        out = tmp_path / f"{loss}-model.npz"
        assert main(["fit", str(tmp_path / f"{loss}.npz"), "--loss", loss, "--epsilon", "0.7", "--alpha", "0.01",
                     "--intercept", "--out", str(out)]) == 0
        model = mtlx.load(out)
        assert model.loss == loss
        Model = mtlx.MultiTaskClassifier if loss == "squared_hinge" else mtlx.MultiTaskRegressor
        extra = {"epsilon": 0.7} if loss != "squared_hinge" else {}
        ref = Model(loss=loss, alpha=0.01, **extra).fit(X, y, task=np.repeat([0, 1], 30))
        np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
