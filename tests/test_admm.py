"""ADMM (mtlx.admm), the duality-gap certificate (mtlx.certificate) and FISTA's use of it.

References: the dual value computed sample by sample from its definition, cvxpy for the
optimum and the water-filling, and long solves of the other engine.
"""


import numpy as np
import pytest

import mtlx
from mtlx import penalties as P
from mtlx.certificate import GapCertificate
from mtlx.gram import GramSquaredLoss
from mtlx.objective import SmoothLoss
from mtlx.penalties.clustered import waterfill
from mtlx.problem import Problem

from conftest import make_tasks

cp = pytest.importorskip("cvxpy")


def ill_conditioned_tasks(seed=4, T=8, d=10, m=60):
    """Correlated features of scale 30 around a mean of 5 (condition number ~1e4 once centered)."""
    rng = np.random.default_rng(seed)
    A = np.linalg.qr(rng.standard_normal((d, d)))[0] * np.logspace(0, -2, d)
    base = rng.standard_normal(d)
    tasks = []
    for _ in range(T):
        X = rng.standard_normal((m, d)) @ A.T * 30 + 5
        tasks.append((X, X @ (base + 0.3 * rng.standard_normal(d)) + rng.standard_normal(m)))
    return tasks


DIRTY = P.Superpose(P.LInf1(1.0), P.L1(0.4))


# ------------------------------------------------------------------------------- the certificate
def dual_value_by_samples(tasks, c, W, b, penalty, alpha):
    """D at theta_t = c_t r_t / s, r the residuals at the intercepts' optimum (given b: used as is).

    D = sum_t theta_t' y_t - ||theta_t||^2 / (2 c_t), with s = max(1, g*(X' theta) / alpha) and the
    dual norm from its definition for the penalties used here.
    """
    r = [y - X @ W[:, t] - b[t] for t, (X, y) in enumerate(tasks)]
    M = np.stack([c[t] * X.T @ r[t] for t, (X, _) in enumerate(tasks)], axis=1)  # d x T

    def dual_norm(pen):
        if isinstance(pen, P.L21):
            return np.linalg.norm(M, axis=1).max() / pen.w
        if isinstance(pen, P.L21Columns):
            return np.linalg.norm(M, axis=0).max() / pen.w
        if isinstance(pen, P.L1):
            return np.abs(M).max() / pen.w
        if isinstance(pen, P.LInf1):
            return np.abs(M).sum(axis=1).max() / pen.w
        if isinstance(pen, P.Trace):
            return np.linalg.norm(M, 2) / pen.w
        raise AssertionError(pen)

    parts = penalty.parts if isinstance(penalty, P.Superpose) else [penalty]
    s = max(1.0, max(dual_norm(p) for p in parts) / alpha)
    return sum(float(c[t] * r[t] @ y / s - c[t] * r[t] @ r[t] / (2 * s * s)) for t, (_, y) in enumerate(tasks))


@pytest.mark.parametrize("penalty", [P.L21(1.0), P.Superpose(P.Trace(1.0), P.L21Columns(0.7)), DIRTY],
                         ids=["l21", "robust", "dirty"])
@pytest.mark.parametrize("gram", [False, True])
def test_gap_certificate_is_the_dual_value_and_bounds_the_suboptimality(rng, penalty, gram):
    tasks = make_tasks(rng, [30, 45, 25, 38], 5)
    data = mtlx.TaskData.from_tasks(tasks)
    c = np.array([0.5, 2.0, 1.0, 0.25])
    alpha = 0.3
    smooth = (GramSquaredLoss if gram else SmoothLoss)(data, "squared", c, n_threads=1)
    problem = Problem(smooth, penalty, alpha, 0.0, True)
    certificate = GapCertificate(problem)
    assert certificate.available
    # A point away from the optimum, intercepts included (the certificate moves them to their optimum).
    W = 0.1 * rng.standard_normal((5, 4))
    b = rng.standard_normal(4)
    theta = problem.initial_theta(W.T, b)
    grad = np.empty_like(theta)
    f = problem.f(theta, grad)
    D = certificate.at(theta, f, grad)
    b_opt = np.array([np.mean(y - X @ W[:, t]) for t, (X, y) in enumerate(tasks)])
    assert D == pytest.approx(dual_value_by_samples(tasks, c, W, b_opt, penalty, alpha), rel=1e-10)
    F_star = mtlx.solve(data, penalty=penalty, alpha=alpha, task_weights=c, fit_intercept=True, tol=1e-12,
                        solver="admm").objective
    F = f + problem.g(theta)
    assert D <= F_star * (1 + 1e-12) and F_star <= F
    assert certificate.relative_gap(F, D) >= (F - F_star) / F


def test_no_certificate_where_the_dual_point_is_not_built(rng):
    mixed = mtlx.TaskData.from_tasks(make_tasks(rng, [30, 40], 4, logistic=(1,)))
    squared = mtlx.TaskData.from_tasks(make_tasks(rng, [30, 40], 4))
    cases = [(SmoothLoss(mixed, ["squared", "logistic"]), P.L21(), 0.0),  # a logistic task
             (SmoothLoss(squared), P.L21(), 0.1),  # a ridge term
             (SmoothLoss(squared), P.Graph(np.ones((2, 1))) + P.L1(), 0.0),  # a smooth term
             (SmoothLoss(squared), P.Clustered(1, 0.5), 0.0)]  # not a norm
    for smooth, penalty, l2 in cases:
        assert not GapCertificate(Problem(smooth, penalty, 0.1, l2, False)).available
    assert GapCertificate(Problem(SmoothLoss(squared), P.L21(), 0.1, 0.0, False)).available


# ------------------------------------------------------------------------------- FISTA's test
@pytest.mark.parametrize("tol", [1e-4, 1e-6])
def test_fista_converged_means_within_tol_of_the_optimum(tol):
    # Short proximal-gradient steps on correlated features passed FISTA's step test 1.4% (tol
    # 1e-4) and 2e-6 (tol 1e-6) above the optimum; the duality gap now has the last word.
    data = mtlx.TaskData.from_tasks(ill_conditioned_tasks())
    kw = dict(penalty=DIRTY, alpha=0.5, fit_intercept=True)
    F_star = mtlx.solve(data, tol=1e-12, solver="admm", max_iter=100_000, **kw).objective
    res = mtlx.solve(data, tol=tol, solver="fista", max_iter=100_000, **kw)
    assert res.converged and res.solver == "fista"
    assert 0 <= (res.objective - F_star) / F_star <= tol


# ------------------------------------------------------------------------------- ADMM
def test_admm_is_auto_for_least_squares_in_the_gram_form_and_reaches_the_optimum():
    data = mtlx.TaskData.from_tasks(ill_conditioned_tasks())
    kw = dict(penalty=DIRTY, alpha=0.5, fit_intercept=True)
    fista = mtlx.solve(data, tol=1e-8, solver="fista", max_iter=200_000, **kw)  # gap-certified: F - F* <= 1e-8 F
    assert fista.converged
    for tol in (1e-6, 1e-10):
        res = mtlx.solve(data, tol=tol, **kw)
        assert res.solver == "admm" and res.converged and res.optimality <= tol
        assert -1e-8 <= (res.objective - fista.objective) / fista.objective <= tol
        assert res.n_iter < fista.n_iter / 5
    np.testing.assert_allclose(sum(res.components), res.W, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.W, fista.W, atol=1e-4 * np.abs(fista.W).max())


def test_admm_warm_start_at_the_optimum(rng):
    # At a solution, ADMM with its duals started at -grad f / rho is at a fixed point; the gap of the
    # gradient's dual point certifies at once where it is tight (one norm), else the iterates settle
    # within fewer iterations than from zero.
    data = mtlx.TaskData.from_tasks(make_tasks(rng, [60, 80, 45], 6))
    for penalty, most in ((P.L21(1.0), 0), (P.Superpose(P.Trace(1.0), P.L21Columns(0.8)), 0.75)):
        kw = dict(penalty=penalty, alpha=0.2, tol=1e-9, solver="admm")
        res = mtlx.solve(data, **kw)
        assert res.converged and res.n_iter > 5
        again = mtlx.solve(data, W0=res.W, **kw)
        assert again.converged and again.n_iter <= most * res.n_iter
        assert again.objective == pytest.approx(res.objective, rel=2e-9)
    with_b = mtlx.solve(data, fit_intercept=True, **kw)
    again = mtlx.solve(data, fit_intercept=True, W0=with_b.W, b0=with_b.b, **kw)
    assert again.converged and again.n_iter <= 0.75 * with_b.n_iter and len(again.history) == again.n_iter + 1


@pytest.mark.parametrize("penalty, l2", [(P.Clustered(2, 0.5, 1.0), 0.0), (DIRTY, 0.1), ("l21", 0.05)],
                         ids=["clustered", "dirty+l2", "l21+l2"])
def test_admm_without_a_gap_finishes_with_fistas_test(rng, penalty, l2):
    # No duality gap (a penalty that is not a norm, or a ridge term): ADMM stops on its residuals
    # and FISTA's stopping rule certifies the point.
    data = mtlx.TaskData.from_tasks(make_tasks(rng, [60, 80, 45, 70], 6))
    kw = dict(penalty=penalty, alpha=0.1, l2=l2, fit_intercept=True, tol=1e-11)
    res = mtlx.solve(data, solver="admm", **kw)
    ref = mtlx.solve(data, solver="fista", max_iter=100_000, **kw)
    assert res.converged and res.solver == "admm"
    assert res.objective == pytest.approx(ref.objective, rel=1e-10)
    np.testing.assert_allclose(res.W, ref.W, atol=1e-7 * np.abs(ref.W).max())
    np.testing.assert_allclose(res.b, ref.b, atol=1e-7 * np.abs(ref.b).max())


def test_admm_shared_layout_float32_and_task_weights(rng):
    X = rng.standard_normal((200, 6))
    Y = X @ rng.standard_normal((6, 4)) + 0.1 * rng.standard_normal((200, 4))
    weights = np.array([1.0, 0.5, 2.0, 1.5])
    pen = P.Superpose(P.L21(1.0), P.L21Columns(1.5))
    ref = mtlx.solve(mtlx.TaskData.from_shared(X, Y), penalty=pen, alpha=0.05, task_weights=weights, fit_intercept=True,
                     tol=1e-12, solver="fista", max_iter=100_000)
    res = mtlx.solve(mtlx.TaskData.from_shared(X, Y), penalty=pen, alpha=0.05, task_weights=weights, fit_intercept=True,
                     tol=1e-10)
    assert res.solver == "admm" and res.converged
    assert res.objective == pytest.approx(ref.objective, rel=1e-10)
    res32 = mtlx.solve(mtlx.TaskData.from_shared(X.astype(np.float32), Y.astype(np.float32)), penalty=pen, alpha=0.05,
                       task_weights=weights, fit_intercept=True, tol=1e-6)
    assert res32.solver == "admm" and res32.converged and res32.W.dtype == np.float32
    assert res32.objective == pytest.approx(ref.objective, rel=1e-5)


def test_admm_below_float32_resolution_stalls_with_a_warning(rng):
    tasks = [(X.astype(np.float32), y.astype(np.float32)) for X, y in make_tasks(rng, [40, 60, 50], 6)]
    with pytest.warns(mtlx.ConvergenceWarning, match="stalled"):
        res = mtlx.solve(mtlx.TaskData.from_tasks(tasks), penalty=DIRTY, alpha=0.05, tol=1e-13, solver="admm",
                         max_iter=100_000)
    assert not res.converged and res.n_iter < 20_000


def test_admm_callback_and_history(rng):
    data = mtlx.TaskData.from_tasks(make_tasks(rng, [60, 80, 45], 6))
    seen = []

    def stop_after_four(state):
        seen.append((state.n_iter, state.objective))
        if len(seen) == 4:
            raise StopIteration

    res = mtlx.solve(data, penalty=DIRTY, alpha=0.05, solver="admm", callback=stop_after_four)
    assert res.message == "stopped by callback" and not res.converged and res.n_iter == 4
    assert [n for n, _ in seen] == [1, 2, 3, 4] and len(res.history) == 5
    np.testing.assert_array_equal(res.history[1:], [F for _, F in seen])
    W = np.stack([np.zeros(6)] * 3, axis=1)
    tasks = [data.task(t) for t in range(3)]
    F0 = sum(0.5 * float(y @ y) / len(y) for _, y in tasks)
    assert res.history[0] == pytest.approx(F0, rel=1e-13) and W.shape == res.W.shape


@pytest.mark.parametrize("kw, reason", [
    (dict(loss="logistic"), "the squared loss for every task"),
    (dict(gram=False), "the squared loss in the Gram form"),
    (dict(alpha=0.0), "alpha > 0"),
    (dict(penalty=P.Graph(np.ones((3, 1))) + P.L1()), "without smooth terms"),
    (dict(penalty=P.Superpose(P.Shared(1.0), P.L1())), "no shared block"),
])
def test_admm_refuses_what_it_cannot_run(rng, kw, reason):
    tasks = make_tasks(rng, [60, 80, 45], 6, logistic=(0, 1, 2) if kw.get("loss") == "logistic" else ())
    data = mtlx.TaskData.from_tasks(tasks)
    kw = dict(dict(penalty="l21", alpha=0.1), **kw)
    with pytest.raises(ValueError, match=f"solver='admm' needs .*{reason}"):
        mtlx.solve(data, solver="admm", **kw)
    # what auto does instead (for the logistic loss, proximal Newton: tests/test_prox_newton.py)
    assert mtlx.solve(data, **kw).solver == ("cd" if kw.get("loss") == "logistic" else "fista")


# ------------------------------------------------------------------------------- water-filling
@pytest.mark.parametrize("seed", range(40))
def test_waterfill_with_a_near_zero_singular_value_spends_the_budget_optimally(seed):
    """One singular value of 1e-8 to 1e-22 beside values of order 1 (tasks nearly combinations of
    others): the budget spent exactly and the KKT conditions of the convex problem hold."""
    rng = np.random.default_rng(seed)
    T = int(rng.integers(2, 12))
    s = np.abs(rng.standard_normal(T))
    s[rng.integers(T)] = 10.0 ** -rng.uniform(8, 22)
    eta, k = float(rng.choice([0.01, 0.5, 3.0])), float(rng.uniform(1.0, T))
    m = waterfill(s, eta, k)
    assert np.all((m >= 0) & (m <= 1)) and m.sum() == pytest.approx(min(k, T), rel=1e-12)
    inside = (m > 1e-9) & (m < 1 - 1e-9)
    if inside.any():
        u = np.median((m[inside] + eta) / s[inside])
        np.testing.assert_allclose(m, np.clip(u * s - eta, 0, 1), atol=1e-8)


@pytest.mark.parametrize("seed", range(6))
def test_waterfill_matches_cvxpy(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(2, 12))
    s = np.abs(rng.standard_normal(T)) * rng.choice([1e-2, 1.0, 1e2])
    s[rng.random(T) < 0.25] = 0.0
    if seed == 5:
        s[:] = 1.5  # ties at every breakpoint
    eta, k = float(rng.choice([0.01, 0.5, 3.0])), float(rng.uniform(1.0, T))
    m = waterfill(s, eta, k)
    budget = min(k, np.count_nonzero(s))
    assert np.all((m >= 0) & (m <= 1)) and m.sum() == pytest.approx(budget, rel=1e-12)
    # Optimal by its KKT conditions: m_i = clip(u s_i - eta, 0, 1) with one multiplier u.
    positive = s > 0
    inside = positive & (m > 1e-12) & (m < 1 - 1e-12)
    if inside.any():
        u = (m[inside] + eta) / s[inside]
        assert np.ptp(u) <= 1e-10 * u.max()
        np.testing.assert_allclose(m[positive], np.clip(u[0] * s[positive] - eta, 0, 1), atol=1e-10)
    # And against cvxpy's minimum (an interior-point solution, to its own accuracy).
    var = cp.Variable(T)
    prob = cp.Problem(cp.Minimize(cp.sum(cp.multiply(s**2, cp.inv_pos(eta + var)))),
                      [cp.sum(var) == k, var >= 0, var <= 1])
    prob.solve(solver="CLARABEL")
    assert float(np.sum(s**2 / (eta + m))) == pytest.approx(prob.value, rel=1e-5, abs=1e-12)


def test_auto_leaves_wide_inputs_to_the_other_engines():
    # One eigendecomposition per Gram matrix: 5 d^3 for d = 500 is more than twice the Gram
    # matrix of 2,000 rows costs; "auto" then takes the factored engine for a trace norm.
    from mtlx.admm import setup_affordable
    from mtlx.solver import choose_solver

    rng = np.random.default_rng(0)
    wide = mtlx.TaskData.from_shared(rng.standard_normal((2000, 500)), rng.standard_normal((2000, 3)))
    narrow = mtlx.TaskData.from_shared(rng.standard_normal((2000, 50)), rng.standard_normal((2000, 3)))
    assert not setup_affordable(wide) and setup_affordable(narrow)
    assert choose_solver("auto", wide, "squared", P.Trace(), 1e-3) == "fista+factored"
    assert choose_solver("auto", narrow, "squared", P.Trace(), 1e-3) == "admm"
    assert choose_solver("admm", wide, "squared", P.Trace(), 1e-3) == "admm"  # asked for: runs


def test_auto_prefers_the_sparse_engines_when_few_groups_are_active_at_zero():
    # l1 / trace on stacked tasks in the Gram form: ADMM, unless at most a third of the entries
    # (singular values) of grad f(0) exceed alpha: working sets (the factored engine) then.
    from mtlx.solver import SPARSE_AT_ZERO, choose_solver

    tasks = ill_conditioned_tasks()
    data = mtlx.TaskData.from_tasks(tasks)
    G = np.stack([X.T @ y / len(y) for X, y in tasks], axis=1)  # -grad f(0), mean weights
    for penalty, values in ((P.L1(), np.abs(G).ravel()), (P.Trace(), np.linalg.svd(G, compute_uv=False))):
        many, few = np.quantile(values, 0.3), np.quantile(values, 1 - 0.5 * SPARSE_AT_ZERO)
        assert choose_solver("auto", data, "squared", penalty, many) == "admm"
        assert choose_solver("auto", data, "squared", penalty, few) == ("cd" if isinstance(penalty, P.L1)
                                                                          else "factored")


def test_refusals_name_the_weights_the_data_has(rng):
    """Missing labels were refused as "sample weights or missing labels", whichever the data had."""
    import scipy.sparse as sparse

    X, Y = rng.standard_normal((60, 4)), rng.standard_normal((60, 2))
    missing = Y.copy()
    missing[::7, 0] = np.nan
    cases = [(mtlx.TaskData.from_shared(X, missing), r"needs data without missing labels \(NaN in Y"),
             (mtlx.TaskData.from_shared(sparse.csr_matrix(X), Y, sample_weight=rng.uniform(1, 2, 60)),
              "needs data without sample weights of a sparse X")]
    for data, message in cases:
        for solver in ("admm", "factored"):
            with pytest.raises(ValueError, match=message):
                mtlx.solve(data, penalty="trace", alpha=0.1, solver=solver)
    # Row weights of a dense X are no obstacle: solve rescales the rows.
    dense = mtlx.TaskData.from_shared(X, Y, sample_weight=rng.uniform(1, 2, 60))
    assert mtlx.solve(dense, penalty="trace", alpha=0.1, solver="admm").solver == "admm"


def test_max_iter_spent_by_admm_reports_its_measures(rng):
    """ADMM using up max_iter leaves FISTA no iteration: the result and the warning reported
    FISTA's initial inf ('relative change inf, optimality inf') whatever ADMM had reached."""
    X = rng.standard_normal((300, 6))
    data = mtlx.TaskData.from_shared(X, X @ rng.standard_normal((6, 4)) + 0.3 * rng.standard_normal((300, 4)))
    with pytest.warns(mtlx.ConvergenceWarning, match=r"did not converge in 10 iterations \(relative change "
                                                     r"[0-9.]+e-[0-9]+, optimality [0-9.]+e-[0-9]+"):
        res = mtlx.solve(data, penalty="trace", alpha=0.1, tol=1e-14, max_iter=10, solver="admm")
    assert res.solver == "admm" and res.n_iter == 10 and not res.converged
    assert 0 < res.optimality < 1e-3 and 0 <= res.rel_change < 1e-6
    # the optimality is ADMM's relative duality gap at the point returned
    best = mtlx.solve(data, penalty="trace", alpha=0.1, tol=1e-12, max_iter=10_000, solver="fista").objective
    assert res.objective - best <= res.optimality * res.objective
