"""Proximal Newton (mtlx.prox_newton) beyond the logistic loss: squared hinge, Huber and Poisson
tasks, alone or mixed per task, against cvxpy; the core's per-entry terms and conjugates the
engine reads, against finite differences and numerical suprema."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import mtlx
from mtlx.losses import Huber, Logistic, Poisson, Squared, SquaredHinge

LOSSES = [Squared(), Logistic(), Huber(0.7), SquaredHinge(), Poisson()]


def _targets(loss, rng, size):
    if loss.labels:
        return np.where(rng.random(size) < 0.5, 1.0, -1.0)
    if loss.name == "poisson":
        return rng.poisson(2.0, size).astype(float)
    return 2.0 * rng.standard_normal(size)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda x: x.name)
def test_terms_match_finite_differences(rng, loss):
    y = _targets(loss, rng, 200)
    z = 1.5 * rng.standard_normal(200)
    value, deriv, curvature = loss.terms(y, z)
    h = 1e-6
    up, down = loss.terms(y, z + h), loss.terms(y, z - h)
    np.testing.assert_allclose(deriv, (up[0] - down[0]) / (2 * h), rtol=1e-6, atol=1e-7)
    # the second derivative away from the kinks of L' (Huber's |r| = eps, the hinge's y z = 1)
    kink = {"huber": np.abs(np.abs(y - z) - loss.param), "squared_hinge": np.abs(y * z - 1.0)}.get(loss.name)
    smooth = np.ones_like(z, dtype=bool) if kink is None else kink > 1e-3
    np.testing.assert_allclose(curvature[smooth], ((up[1] - down[1]) / (2 * h))[smooth], rtol=1e-5, atol=1e-6)
    # the value against numpy
    reference = {"squared": 0.5 * (y - z) ** 2, "logistic": np.logaddexp(0.0, -y * z),
                 "huber": np.where(np.abs(y - z) <= 0.7, (y - z) ** 2, 2 * 0.7 * np.abs(y - z) - 0.49),
                 "squared_hinge": np.maximum(0.0, 1.0 - y * z) ** 2,
                 "poisson": np.exp(z) - y * z + np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0) - y}
    np.testing.assert_allclose(value, reference[loss.name], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda x: x.name)
def test_conjugates_are_the_suprema(rng, loss):
    """L*(y, u) = sup_z (u z - L(y, z)) by numerical maximization at the dual points the engine
    forms (u = L'(y, z) / s, s >= 1), and +inf outside the domain."""
    for _ in range(12):
        y = _targets(loss, rng, 1)
        z0 = rng.standard_normal(1)
        s = rng.uniform(1.0, 3.0)
        u = loss.terms(y, z0)[1] / s
        found = minimize_scalar(lambda z, u=u, y=y: -(u[0] * z - loss.terms(y, np.array([z]))[0][0]), bounds=(-60, 60),
                                method="bounded", options={"xatol": 1e-12})
        conjugate = loss.conjugate(y, u)[0]
        if loss.name == "squared_hinge" and u[0] == 0:
            continue  # (the supremum is approached as z -> y inf: 0, checked below)
        assert conjugate == pytest.approx(-found.fun, abs=1e-7)
    outside = {"logistic": (1.0, 0.5), "huber": (0.0, 1.5), "squared_hinge": (1.0, 0.1), "poisson": (1.0, -1.5)}
    if loss.name in outside:
        y, u = outside[loss.name]
        assert loss.conjugate(np.array([y]), np.array([u]))[0] == np.inf
    if loss.name == "squared_hinge":
        assert loss.conjugate(np.array([1.0]), np.array([0.0]))[0] == 0.0


def _cvxpy_loss(cp, name, y, z, epsilon=1.35):
    if name == "huber":
        return cp.sum(cp.huber(y - z, epsilon))  # r^2 within epsilon, 2 eps |r| - eps^2 beyond: ours
    if name == "squared_hinge":
        return cp.sum(cp.square(cp.pos(1 - cp.multiply(y, z))))
    if name == "poisson":
        const = float(np.sum(np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0) - y))
        return cp.sum(cp.exp(z) - cp.multiply(y, z)) + const
    if name == "logistic":
        return cp.sum(cp.logistic(cp.multiply(-y, z)))
    return 0.5 * cp.sum_squares(y - z)


def _tasks(rng, names, d, sizes):
    W = np.zeros((d, len(names)))
    W[:3] = rng.standard_normal((3, len(names)))
    tasks = []
    for t, (name, m) in enumerate(zip(names, sizes)):
        X = rng.standard_normal((m, d))
        z = X @ W[:, t]
        if name in ("logistic", "squared_hinge"):
            y = np.where(z + 0.5 * rng.standard_normal(m) > 0, 1.0, -1.0)
        elif name == "poisson":
            y = rng.poisson(np.exp(0.5 * z / max(z.std(), 1e-12))).astype(float)
        else:
            y = z + 0.3 * rng.standard_normal(m)
            y[:3] += 8.0  # outliers
        tasks.append((X, y))
    return tasks


@pytest.mark.parametrize("penalty", ["l1", "l21"])
@pytest.mark.parametrize("names", [["huber"] * 3, ["squared_hinge"] * 3, ["poisson"] * 3,
                                   ["huber", "logistic", "poisson"], ["squared", "squared_hinge", "huber"]],
                         ids="-".join)
def test_the_solution_and_its_gap_against_cvxpy(rng, penalty, names):
    """Stacked tasks of d >> m_t with intercepts: auto runs proximal Newton, its F within its
    certified gap of cvxpy's optimum, its W at cvxpy's."""
    cp = pytest.importorskip("cvxpy")
    d, sizes = 40, [25, 30, 20]
    data = mtlx.TaskData.from_tasks(_tasks(rng, names, d, sizes))
    alpha = 0.1 * mtlx.alpha_max(data, penalty, loss=names, fit_intercept=True)
    res = mtlx.solve(data, loss=names, penalty=penalty, alpha=alpha, fit_intercept=True, tol=1e-10)
    assert res.solver == "cd" and res.converged

    W, b = cp.Variable((d, 3)), cp.Variable(3)
    terms = []
    for t, (name, m) in enumerate(zip(names, sizes)):
        X_t, y_t = data.task(t)
        terms.append(_cvxpy_loss(cp, name, y_t, X_t @ W[:, t] + b[t]) / m)  # task_weights="mean": 1 / m_t
    g = cp.sum(cp.norm(W, 2, axis=1)) if penalty == "l21" else cp.sum(cp.abs(W))
    problem = cp.Problem(cp.Minimize(cp.sum(terms) + alpha * g))
    F_star = problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert res.objective - F_star <= res.optimality * res.objective + 1e-8 * abs(F_star)  # a true bound
    assert res.objective >= F_star - 1e-8 * abs(F_star)
    np.testing.assert_allclose(res.W, W.value, atol=2e-4 * max(np.abs(W.value).max(), 1.0))


@pytest.mark.parametrize("loss", ["huber", "squared_hinge", "poisson"])
def test_shared_x_equals_fista_and_classifier_regressor_take_it(rng, loss):
    n, d, T = 50, 120, 3
    tasks = _tasks(rng, [loss] * T, d, [n] * T)
    X = tasks[0][0]
    Y = np.column_stack([y for _, y in _tasks(rng, [loss] * T, d, [n] * T)])
    data = mtlx.TaskData.from_shared(X, Y)
    alpha = 0.1 * mtlx.alpha_max(data, "l21", loss=loss, fit_intercept=True)
    kw = dict(loss=loss, penalty="l21", alpha=alpha, fit_intercept=True)
    res = mtlx.solve(data, tol=1e-12, **kw)
    ref = mtlx.solve(data, solver="fista", tol=1e-13, max_iter=300_000, **kw)
    assert res.solver == "cd" and res.converged
    assert res.objective <= ref.objective * (1 + 1e-12)
    np.testing.assert_allclose(res.W, ref.W, atol=1e-5 * max(np.abs(ref.W).max(), 1.0))
    if loss == "squared_hinge":
        clf = mtlx.MultiTaskClassifier(loss=loss, alpha=alpha, tol=1e-10).fit(X, np.where(Y > 0, "a", "b"))
        assert clf.solver_ == "cd"
    else:
        reg = mtlx.MultiTaskRegressor(loss=loss, penalty="l21", alpha=alpha, tol=1e-10).fit(X, Y)
        assert reg.solver_ == "cd"
        np.testing.assert_allclose(reg.coef_.T, res.W, atol=1e-6 * max(np.abs(res.W).max(), 1.0))


def test_sparse_x_runs_fista_and_cd_says_why(rng):
    import scipy.sparse as sp

    X = sp.random(40, 60, density=0.2, random_state=1, format="csr")
    Y = rng.poisson(1.0, (40, 2)).astype(float)
    data = mtlx.TaskData.from_shared(X, Y)
    res = mtlx.solve(data, loss="poisson", penalty="l1", alpha=0.01, fit_intercept=True)
    assert res.solver == "fista"
    with pytest.raises(ValueError, match="solver='cd' with the poisson loss needs a dense X"):
        mtlx.solve(data, loss="poisson", penalty="l1", alpha=0.01, solver="cd")
