"""Working sets + coordinate descent (mtlx.working_set) against FISTA, scikit-learn and numpy."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import Lasso, MultiTaskLasso

import mtlx
import mtlx._residual_cd
from mtlx import _core
from mtlx.working_set import WorkingSetSolver, solve_working_set


def shared_data(seed=0, n=150, d=40, T=5, offset=2.0, noise=0.2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) + offset
    W = np.zeros((d, T))
    W[:min(6, d)] = rng.standard_normal((min(6, d), T))
    Y = X @ W + 0.7 + noise * rng.standard_normal((n, T))
    return X, Y


def ragged_tasks(seed=1, d=30, sizes=(1, 25, 90, 160)):
    rng = np.random.default_rng(seed)
    w = np.zeros(d)
    w[:5] = rng.standard_normal(5)
    tasks = []
    for t, m in enumerate(sizes):
        X = rng.uniform(0.5, 2.0) * rng.standard_normal((m, d)) + rng.uniform(-1, 1)
        tasks.append((X, X @ (w + 0.2 * rng.standard_normal(d)) + t + 0.1 * rng.standard_normal(m)))
    return tasks


def objective(tasks, W, b, alpha, penalty, l2, c):
    """F(W, b) in plain numpy, straight from its definition."""
    loss = sum(c[t] * 0.5 * np.sum((y - X @ W[:, t] - b[t]) ** 2) for t, (X, y) in enumerate(tasks))
    g = np.linalg.norm(W, axis=1).sum() if penalty == "l21" else np.abs(W).sum()
    return loss + alpha * g + 0.5 * l2 * np.sum(W * W)


@pytest.mark.parametrize("penalty", ["l1", "l21"])
@pytest.mark.parametrize("task_weights", ["mean", "sum"])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_matches_fista_on_ragged_tasks(penalty, task_weights, fit_intercept):
    tasks = ragged_tasks()
    data = mtlx.TaskData.from_tasks(tasks)
    alpha = (0.05 if task_weights == "mean" else 3.0) * (1 if penalty == "l1" else 2)
    kw = dict(penalty=penalty, alpha=alpha, l2=1e-3, fit_intercept=fit_intercept, task_weights=task_weights)
    res = solve_working_set(data, tol=1e-11, **kw)
    with warnings.catch_warnings():  # FISTA stops at the rounding floor, short of tol=1e-13
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        ref = mtlx.solve(data, tol=1e-13, max_iter=60_000, **kw)
    c = 1.0 / data.n_samples if task_weights == "mean" else np.ones(len(tasks))
    F = objective(tasks, np.asarray(res.W), np.asarray(res.b), alpha, penalty, 1e-3, c)
    assert res.converged and res.optimality <= 1e-11
    assert res.objective == pytest.approx(F, rel=1e-12)
    assert res.objective <= ref.objective * (1 + 1e-11)
    assert res.objective == pytest.approx(ref.objective, rel=1e-10)
    np.testing.assert_allclose(res.W, ref.W, atol=1e-6 * np.abs(ref.W).max())
    np.testing.assert_allclose(res.b, ref.b, atol=1e-6 * max(1.0, np.abs(ref.b).max()))


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_matches_sklearn_multitask_lasso(fit_intercept):
    X, Y = shared_data()
    alpha = 0.05
    res = solve_working_set(mtlx.TaskData.from_shared(X, Y), "l21", alpha, fit_intercept=fit_intercept, tol=1e-11)
    sk = MultiTaskLasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-14, max_iter=1_000_000).fit(X, Y)
    n = X.shape[0]
    F_sk = 0.5 / n * np.sum((Y - X @ sk.coef_.T - sk.intercept_) ** 2) + alpha * np.linalg.norm(sk.coef_, axis=0).sum()
    assert res.objective <= F_sk * (1 + 1e-12)
    assert res.objective == pytest.approx(F_sk, rel=1e-10)
    np.testing.assert_allclose(res.W, sk.coef_.T, atol=1e-6)
    np.testing.assert_allclose(res.b, sk.intercept_ if fit_intercept else 0.0, atol=1e-6)


def test_single_task_l1_matches_sklearn_lasso():
    X, Y = shared_data(T=1)
    res = solve_working_set(mtlx.TaskData.from_shared(X, Y), "l1", 0.02, fit_intercept=True, tol=1e-11)
    sk = Lasso(alpha=0.02, tol=1e-14, max_iter=1_000_000).fit(X, Y[:, 0])
    np.testing.assert_allclose(res.W[:, 0], sk.coef_, atol=1e-6)
    assert res.b[0] == pytest.approx(sk.intercept_, abs=1e-6)


def test_objective_stays_exact_when_the_fit_is_almost_perfect():
    # Nearly noise-free targets and a tiny alpha: F is ~1e-9 of ||y||^2 / n, where the Gram
    # expansion of the value would keep only ~7 digits; the certified value is computed directly.
    X, Y = shared_data(noise=1e-4, offset=5.0)
    alpha = 1e-7
    res = solve_working_set(mtlx.TaskData.from_shared(X, Y), "l21", alpha, fit_intercept=True, tol=1e-6)
    direct = (0.5 / X.shape[0] * np.sum((Y - X @ res.W - res.b) ** 2)
              + alpha * np.linalg.norm(res.W, axis=1).sum())
    assert res.objective == pytest.approx(direct, rel=1e-9)
    assert res.converged and res.objective < 1e-7 * np.sum(Y**2) / X.shape[0]


def test_float32_data_gives_float32_results_of_the_float64_fit():
    X, Y = shared_data()
    r64 = solve_working_set(mtlx.TaskData.from_shared(X, Y), "l21", 0.05, fit_intercept=True, tol=1e-10)
    data32 = mtlx.TaskData.from_shared(X.astype(np.float32), Y.astype(np.float32))
    r32 = solve_working_set(data32, "l21", 0.05, fit_intercept=True, tol=1e-10)
    assert r32.W.dtype == np.float32 and r32.b.dtype == np.float32
    assert r32.objective == pytest.approx(r64.objective, rel=1e-5)
    np.testing.assert_allclose(r32.W, r64.W, atol=1e-4)


def test_warm_start_at_the_optimum_needs_no_epoch():
    X, Y = shared_data()
    data = mtlx.TaskData.from_shared(X, Y)
    first = solve_working_set(data, "l21", 0.05, tol=1e-10)
    again = solve_working_set(data, "l21", 0.05, tol=1e-10, W0=first.W)
    assert again.n_iter == 0 and again.objective == pytest.approx(first.objective, rel=1e-14)


def test_working_sets_and_screening_leave_the_solution_unchanged():
    X, Y = shared_data(d=120)
    data = mtlx.TaskData.from_shared(X, Y)
    engine = WorkingSetSolver(data, "l21")
    full, info_full = engine.solve(0.1, tol=1e-11, screening=False, working_set=False)
    fast, info_fast = engine.solve(0.1, tol=1e-11)
    assert info_full["converged"] and info_fast["converged"]
    assert info_fast["n_screened"] > 60 and info_full["n_screened"] == 0
    np.testing.assert_allclose(fast, full, atol=1e-7)
    assert info_fast["primal"] == pytest.approx(info_full["primal"], rel=1e-11)


def test_estimator_solvers_agree_and_auto_picks_cd_where_it_applies(caplog):
    X, Y = shared_data()
    fista = mtlx.MultiTaskRegressor(alpha=0.05, tol=1e-12, max_iter=300_000, solver="fista").fit(X, Y)
    cd = mtlx.MultiTaskRegressor(alpha=0.05, tol=1e-11, solver="cd").fit(X, Y)
    auto = mtlx.MultiTaskRegressor(alpha=0.05, tol=1e-11).fit(X, Y)
    np.testing.assert_allclose(cd.coef_, fista.coef_, atol=1e-6)
    np.testing.assert_allclose(cd.intercept_, fista.intercept_, atol=1e-6)
    np.testing.assert_array_equal(auto.coef_, cd.coef_)
    # float32 data skips coordinate descent under "auto" (no float64 copy of X): ADMM on X' X.
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    auto32 = mtlx.MultiTaskRegressor(alpha=0.05, tol=1e-5).fit(X32, Y32)
    admm32 = mtlx.MultiTaskRegressor(alpha=0.05, tol=1e-5, solver="admm").fit(X32, Y32)
    assert auto32.solver_ == "admm"
    np.testing.assert_array_equal(auto32.coef_, admm32.coef_)


def test_solver_errors_name_the_reason():
    X, Y = shared_data(n=30, d=4, T=2)
    with pytest.raises(ValueError, match=r"The 'solver' parameter must be one of \('auto', 'fista', 'cd', 'fac"):
        mtlx.MultiTaskRegressor(solver="newton").fit(X, Y)
    with pytest.raises(ValueError, match=r"solver='cd' needs the squared loss with penalty L1 or L21 .*Trace\(1.0\)"):
        mtlx.MultiTaskRegressor(penalty="trace", solver="cd").fit(X, Y)
    # (the logistic loss has its own cd engine, proximal Newton, on a dense X: tests/test_prox_newton.py)
    import scipy.sparse as sp

    with pytest.raises(ValueError, match="solver='cd' with the logistic loss needs a dense X"):
        mtlx.MultiTaskClassifier(solver="cd").fit(sp.csr_matrix(X), np.sign(Y - Y.mean(axis=0)))
    with pytest.raises(ValueError, match="solver='cd' needs alpha > 0"):
        mtlx.MultiTaskRegressor(solver="cd", alpha=0.0).fit(X, Y)
    with pytest.raises(ValueError, match="solver='cd' needs a single process without checkpoints"):
        mtlx.MultiTaskRegressor(solver="cd")._fit(X, Y, checkpoint="somewhere")
    with pytest.raises(ValueError, match=r"handles L1 or L21 alone \(least squares\), not Trace\(1.0\)"):
        solve_working_set(mtlx.TaskData.from_shared(X, Y), "trace")
    with pytest.raises(ValueError, match=r"handles L1 or L21 alone \(least squares\), not L1\(1.0\) \+ L21\(2.0\)"):
        solve_working_set(mtlx.TaskData.from_shared(X, Y), "L1(1) + L21(2)")


def test_kernel_checks_its_arguments():
    k, T = 3, 2
    H, B, c = np.eye(k)[None], np.zeros((k, T)), np.ones(T)
    W, Q = np.zeros((k, T)), np.zeros((k, T))
    with pytest.raises(ValueError, match=r"H has shape \(1, 2, 2\), expected \(1, 3, 3\) or \(2, 3, 3\)"):
        _core.cd_epochs(np.eye(2)[None], B, c, 0.1, 0.0, 2, W, Q, 10, 1e-6)
    with pytest.raises(ValueError, match=r"W has shape \(3, 3\), expected \(3, 2\)"):
        _core.cd_epochs(H, B, c, 0.1, 0.0, 2, np.zeros((3, 3)), Q, 10, 1e-6)
    with pytest.raises(ValueError, match="l1 and l21 penalties, got code 3"):
        _core.cd_epochs(H, B, c, 0.1, 0.0, 3, W, Q, 10, 1e-6)
    with pytest.raises(ValueError, match="alpha and l2 must be >= 0"):
        _core.cd_epochs(H, B, c, -1.0, 0.0, 2, W, Q, 10, 1e-6)
    with pytest.raises(TypeError):
        _core.cd_epochs(H.astype(np.float32), B, c, 0.1, 0.0, 2, W, Q, 10, 1e-6)


def test_kernel_block_step_is_the_closed_form_on_an_orthonormal_design():
    # With H = I, one epoch is exact: W = shrink(B) row-wise (l21) or entry-wise (l1).
    rng = np.random.default_rng(3)
    k, T, alpha = 6, 4, 0.8
    B = rng.standard_normal((k, T))
    for code, expected in ((2, B * np.maximum(0, 1 - alpha / np.linalg.norm(B, axis=1, keepdims=True))),
                           (1, np.sign(B) * np.maximum(np.abs(B) - alpha, 0))):
        W, Q = np.zeros((k, T)), np.zeros((k, T))
        epochs, change, _ = _core.cd_epochs(np.eye(k)[None], B, np.ones(T), alpha, 0.0, code, W, Q, 5, 0.0)
        np.testing.assert_allclose(W, expected, rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(Q, W, rtol=0, atol=0)
        assert epochs <= 5 and change <= 1e-15


def test_gather_block_is_numpy_fancy_indexing():
    rng = np.random.default_rng(4)
    H = rng.standard_normal((3, 7, 11))
    rows, cols = np.array([5, 0, 3]), np.array([10, 2, 2, 7])
    out = np.empty((3, 3, 4))
    _core.gather_block(H, rows, cols, out)
    np.testing.assert_array_equal(out, H[:, rows[:, None], cols[None, :]])
    with pytest.raises(ValueError, match="cols out of range"):
        _core.gather_block(H, rows, np.array([11]), np.empty((3, 3, 1)))
    with pytest.raises(ValueError, match=r"out has shape \(3, 3, 3\), expected \(3, 3, 4\)"):
        _core.gather_block(H, rows, cols, np.empty((3, 3, 3)))


@pytest.mark.parametrize("layout", ["shared", "stacked"])
@pytest.mark.parametrize("penalty", ["l1", "l21"])
def test_results_are_bitwise_independent_of_the_thread_count(monkeypatch, layout, penalty):
    # The engine's products over X run in fixed row blocks (made small here so that there are
    # many), each entry summed by one thread: 1 and 2 threads give the same bits (BLAS's own
    # threading split the sums differently: up to 1.7e-15 apart).
    import mtlx._blocked

    monkeypatch.setattr(mtlx._blocked, "BLOCK_BYTES", 1 << 12)
    monkeypatch.setattr(mtlx._blocked, "CHUNK_COLUMNS", 7)  # several column chunks for the threads
    rng = np.random.default_rng(7)
    X = rng.standard_normal((600, 40))
    W = np.zeros((40, 6))
    W[:5] = rng.standard_normal((5, 6))
    Y = X @ W + 0.5 + 0.2 * rng.standard_normal((600, 6))
    data = mtlx.TaskData.from_shared(X, Y) if layout == "shared" else \
        mtlx.TaskData.from_tasks([(X[100 * t : 100 * t + 100], Y[100 * t : 100 * t + 100, t]) for t in range(6)])
    runs = [solve_working_set(data, penalty, alpha=0.02, fit_intercept=True, tol=1e-12, n_threads=n)
            for n in (1, 2)]
    assert runs[0].converged
    np.testing.assert_array_equal(runs[0].W, runs[1].W)
    np.testing.assert_array_equal(runs[0].b, runs[1].b)
    assert runs[0].objective == runs[1].objective


# -- d >> n: the residual form of the epochs and of the gap checks (mtlx._residual_cd) ----------


def wide_data(seed=3, n=40, d=400, T=4):
    """A d >> n problem whose support (about n) outgrows the rows: the residual form's regime."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) + 0.5
    W = np.zeros((d, T))
    W[: d // 8] = rng.standard_normal((d // 8, T))
    Y = X @ W + 1.0 + 0.3 * rng.standard_normal((n, T))
    return X, Y


def count_residual_calls(monkeypatch):
    calls = {"residual": 0}
    kernel = _core.cd_epochs_residual

    def counted(*args):
        calls["residual"] += 1
        return kernel(*args)

    monkeypatch.setattr(mtlx._residual_cd._core, "cd_epochs_residual", counted)
    return calls


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_wide_l21_uses_residual_epochs_and_matches_sklearn(monkeypatch, fit_intercept):
    X, Y = wide_data()
    calls = count_residual_calls(monkeypatch)
    data = mtlx.TaskData.from_shared(X, Y)
    alpha = 0.05 * mtlx.alpha_max(data, "l21", fit_intercept=fit_intercept)
    res = solve_working_set(data, "l21", alpha, fit_intercept=fit_intercept, tol=1e-12)
    assert calls["residual"] > 0 and res.converged
    sk = MultiTaskLasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-16, max_iter=1_000_000).fit(X, Y)
    n = X.shape[0]
    F_sk = 0.5 / n * np.sum((Y - X @ sk.coef_.T - sk.intercept_) ** 2) + alpha * np.linalg.norm(sk.coef_, axis=0).sum()
    F = 0.5 / n * np.sum((Y - X @ res.W - res.b) ** 2) + alpha * np.linalg.norm(res.W, axis=1).sum()
    assert res.objective == pytest.approx(F, rel=1e-12)
    assert F <= F_sk * (1 + 1e-12)
    assert F == pytest.approx(F_sk, rel=1e-9)
    np.testing.assert_allclose(res.W, sk.coef_.T, atol=1e-5 * np.abs(sk.coef_).max())


@pytest.mark.parametrize("T", [2, 9])
def test_epochs_on_the_active_rows_keep_the_optimum(monkeypatch, T):
    """Active-set cycling (epochs on a working set's nonzero rows between full epochs) runs on a
    correlated wide problem, and the solve still lands on scikit-learn's MultiTaskLasso: the rows
    left out of the cycles enter through the full epochs."""
    rng = np.random.default_rng(12)
    n, d = 40, 600
    X = rng.standard_normal((n, d))
    for j in range(1, d):  # AR(1) columns: correlated neighbours, as in bench_highdim's Toeplitz design
        X[:, j] = 0.8 * X[:, j - 1] + 0.6 * X[:, j]
    W_true = np.zeros((d, T))
    W_true[rng.choice(d, 60, replace=False)] = rng.standard_normal((60, T))
    Y = X @ W_true + 0.5 * rng.standard_normal((n, T))
    subsets = []
    subset = mtlx._residual_cd.DenseColumns.subset

    def recording(self, rows):
        subsets.append((len(rows), self.columns.shape[0]))
        return subset(self, rows)

    monkeypatch.setattr(mtlx._residual_cd.DenseColumns, "subset", recording)
    data = mtlx.TaskData.from_shared(X, Y)
    alpha = 0.02 * mtlx.alpha_max(data, "l21")
    res = solve_working_set(data, "l21", alpha, tol=1e-12)
    assert res.converged and subsets and all(rows < k for rows, k in subsets)
    sk = MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=1e-16, max_iter=1_000_000).fit(X, Y)
    F_sk = 0.5 / n * np.sum((Y - X @ sk.coef_.T) ** 2) + alpha * np.linalg.norm(sk.coef_, axis=0).sum()
    assert res.objective <= F_sk * (1 + 1e-12)
    assert res.objective == pytest.approx(F_sk, rel=1e-9)
    np.testing.assert_allclose(res.W, sk.coef_.T, atol=1e-5 * np.abs(sk.coef_).max())


@pytest.mark.parametrize("penalty", ["l1", "l21"])
def test_wide_problem_with_task_weights_and_ridge_matches_fista(monkeypatch, penalty):
    X, Y = wide_data(seed=4, n=30, d=300, T=3)
    calls = count_residual_calls(monkeypatch)
    data = mtlx.TaskData.from_shared(X, Y)
    c = np.array([0.5, 1.0, 2.0])
    kw = dict(penalty=penalty, l2=0.3, fit_intercept=True, task_weights=c)
    alpha = 0.05 * mtlx.alpha_max(data, penalty, fit_intercept=True, task_weights=c)
    res = solve_working_set(data, alpha=alpha, tol=1e-12, **kw)
    assert calls["residual"] > 0 and res.converged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        ref = mtlx.solve(data, alpha=alpha, tol=1e-13, max_iter=200_000, solver="fista", **kw)
    tasks = [(X, Y[:, t]) for t in range(3)]
    F = objective(tasks, np.asarray(res.W), np.asarray(res.b), alpha, penalty, 0.3, c)
    assert res.objective == pytest.approx(F, rel=1e-12)
    assert F <= ref.objective * (1 + 1e-11)
    assert F == pytest.approx(ref.objective, rel=1e-10)
    np.testing.assert_allclose(res.W, ref.W, atol=1e-5 * np.abs(ref.W).max())


@pytest.mark.parametrize("T", [3, 11])
def test_residual_kernel_runs_the_gram_kernels_steps(T):
    # Same steps, same order, gradients from R instead of Q: after a few epochs both kernels hold
    # the same W (to rounding), and R stays Y - X_S W. (T = 3: one row at a time; T = 11: blocks
    # of four rows, tasks in fours, a pair and one alone; k = 50 ends on a short block.)
    rng = np.random.default_rng(5)
    n, k = 30, 50
    X = rng.standard_normal((n, k))
    Y = rng.standard_normal((n, T))
    c = rng.uniform(0.2, 1.0, T)
    for code in (int(_core.PenaltyKind.l1), int(_core.PenaltyKind.l21)):
        W_gram, W_res = np.zeros((k, T)), np.zeros((k, T))
        H = (X.T @ X)[None]
        B = (X.T @ Y) * c
        Q = np.zeros((k, T))
        _core.cd_epochs(H, B, c, 0.3, 0.1, code, W_gram, Q, 7, 0.0)
        R = np.ascontiguousarray(Y.T)
        columns = np.ascontiguousarray(X.T)
        _core.cd_epochs_residual(columns, np.sum(X * X, axis=0), c, 0.3, 0.1, code, W_res, R, 7, 0.0)
        np.testing.assert_allclose(W_res, W_gram, rtol=0, atol=1e-12 * np.abs(W_gram).max())
        np.testing.assert_allclose(R, (Y - X @ W_res).T, atol=1e-12 * np.abs(Y).max())
    with pytest.raises(ValueError, match=rf"R has shape \({T}, 29\), expected \({T}, 30\)"):
        _core.cd_epochs_residual(columns, np.ones(k), c, 0.3, 0.1, code, W_res, np.zeros((T, 29)), 1, 0.0)


def _linear_fixed_point_iterates(m=4):
    """m + 2 iterates of x <- A x + b from 0 in m dimensions (A symmetric, contracting), and the fixed point."""
    rng = np.random.default_rng(6)
    Q, _ = np.linalg.qr(rng.standard_normal((m, m)))
    A = Q @ np.diag([0.99, 0.9, 0.5, -0.7]) @ Q.T
    b = rng.standard_normal(m)
    iterates = [np.zeros((m, 1))]
    for _ in range(m + 1):
        iterates.append(A @ iterates[-1] + b[:, None])
    return iterates, np.linalg.solve(np.eye(m) - A, b)


def test_anderson_extrapolation_solves_a_linear_fixed_point():
    # For x <- A x + b in m dimensions, m + 1 differences span the error: the extrapolation of
    # m + 2 iterates is the fixed point (to rounding), which plain iteration reaches only slowly.
    from mtlx._residual_cd import _extrapolate

    iterates, fixed = _linear_fixed_point_iterates()
    np.testing.assert_allclose(_extrapolate(iterates)[:, 0], fixed, rtol=1e-8)
    assert np.linalg.norm(iterates[-1][:, 0] - fixed) > 0.1 * np.linalg.norm(fixed)
    assert _extrapolate([np.ones((2, 1))] * 3) is None  # no differences: nothing to extrapolate


def test_anderson_weights_of_a_singular_gram_are_its_constrained_minimum():
    # m + 2 iterates of x <- A x + b in m dimensions: m + 1 differences in m dimensions, so their
    # Gram matrix is singular. The weights (summing to 1) that cancel the differences exist and
    # combine the iterates into the fixed point, whether LU's last pivot rounds to 0 or not.
    from mtlx._residual_cd import _combine, _minimum_norm_weights

    iterates, fixed = _linear_fixed_point_iterates()
    U = np.diff(np.stack(iterates), axis=0).reshape(len(iterates) - 1, -1)
    w = _minimum_norm_weights(U @ U.T)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.linalg.norm(U.T @ w) < 1e-10 * np.linalg.norm(U) * np.linalg.norm(w)
    np.testing.assert_allclose(_combine(w, iterates[1:])[:, 0], fixed, rtol=1e-8)
    assert _minimum_norm_weights(np.zeros((3, 3))) is None


@pytest.mark.parametrize("penalty", ["l1", "l21"])
def test_wide_problem_is_bitwise_independent_of_the_thread_count(monkeypatch, penalty):
    import mtlx._blocked

    monkeypatch.setattr(mtlx._blocked, "CHUNK_COLUMNS", 37)  # several column chunks for the threads
    X, Y = wide_data(seed=8)
    data = mtlx.TaskData.from_shared(X, Y)
    alpha = 0.05 * mtlx.alpha_max(data, penalty, fit_intercept=True)
    runs = [solve_working_set(data, penalty, alpha=alpha, fit_intercept=True, tol=1e-10, n_threads=n) for n in (1, 2)]
    assert runs[0].converged
    np.testing.assert_array_equal(runs[0].W, runs[1].W)
    np.testing.assert_array_equal(runs[0].b, runs[1].b)


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_an_l21_row_step_is_the_exact_minimizer_when_task_curvatures_differ(rng, l2):
    """One feature, tasks of different curvatures c_t H_t: one epoch reaches the optimum of
    sum_t c_t (h_t w_t^2 / 2 - w_t b_t) + l2 ||w||^2 / 2 + alpha ||w||, checked against cvxpy."""
    cp = pytest.importorskip("cvxpy")
    from mtlx import _core

    T = 6
    h = rng.uniform(0.05, 20.0, T)  # per-task Gram entries (one feature)
    b = rng.standard_normal(T) * 3
    c = rng.uniform(0.5, 2.0, T)
    alpha = 0.4 * float(np.linalg.norm(c * b))
    H = h.reshape(T, 1, 1).copy()
    W = np.zeros((1, T))
    Q = np.zeros((1, T))  # [H_t w_t]_t at W = 0
    _core.cd_epochs(H, (c * b).reshape(1, T).copy(), c, alpha, l2, int(_core.PenaltyKind.l21), W, Q, 1, 0.0)
    w = cp.Variable(T)
    objective = cp.sum(cp.multiply(c * h / 2, cp.square(w)) - cp.multiply(c * b, w)) + l2 / 2 * cp.sum_squares(w) \
        + alpha * cp.norm(w, 2)
    cp.Problem(cp.Minimize(objective)).solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    np.testing.assert_allclose(W[0], w.value, atol=1e-7 * np.abs(w.value).max())
    assert np.abs(W[0]).max() > 0  # (alpha below the threshold: a non-trivial row)


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_l1_on_a_wide_shared_x_gives_each_task_its_own_working_set(rng, monkeypatch, fit_intercept):
    """l1 couples no tasks: with d >> n the residual epochs keep to each task's own entries (its
    support and its entries nearest their bound), and each column is that task's own lasso
    (scikit-learn's Lasso, the independent reference)."""
    n, d, T = 60, 1500, 5
    X = rng.standard_normal((n, d))
    W_true = np.zeros((d, T))
    for t in range(T):  # disjoint supports
        W_true[20 * t:20 * t + 6, t] = rng.standard_normal(6)
    Y = X @ W_true + 0.1 * rng.standard_normal((n, T)) + 3.0 * fit_intercept
    data = mtlx.TaskData.from_shared(X, Y)
    alpha = 0.05 * mtlx.alpha_max(data, "l1", fit_intercept=fit_intercept)
    densities = []
    kernel = _core.cd_epochs_residual

    def recording(*args):
        densities.append(1.0 if len(args) < 11 or args[10] is None else float(np.mean(args[10])))
        return kernel(*args)

    monkeypatch.setattr(_core, "cd_epochs_residual", recording)
    # (the engine on all tasks at once: mtlx.solve solves such lassos task by task, tested below)
    solver = WorkingSetSolver(data, "l1", fit_intercept=fit_intercept)
    W, info = solver.solve(alpha, tol=1e-12)
    b = solver.intercepts_of(np.arange(d), W)
    assert info["converged"]
    assert densities and max(densities) < 0.8  # per-task entries, not whole rows
    for t in range(T):
        ref = Lasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-14, max_iter=1_000_000).fit(X, Y[:, t])
        np.testing.assert_allclose(W[:, t], ref.coef_, atol=1e-8 * np.abs(ref.coef_).max())
        assert b[t] == pytest.approx(ref.intercept_, abs=1e-8 * max(1.0, abs(ref.intercept_)))


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_l1_on_a_wide_shared_x_is_solved_task_by_task(rng, monkeypatch, fit_intercept):
    """Independent lassos with d > n: mtlx.solve and mtlx.path run one single-task working-set
    solve per task (every epoch call sees one task), certify the sum of the tasks' gaps, and land
    on each task's own lasso (scikit-learn's Lasso) and, along a path, on the union engine's."""
    n, d, T = 50, 900, 4
    X = rng.standard_normal((n, d)) + 2.0
    W_true = np.zeros((d, T))
    for t in range(T):
        W_true[30 * t:30 * t + 5, t] = rng.standard_normal(5)
    Y = X @ W_true + 0.1 * rng.standard_normal((n, T)) + 3.0 * fit_intercept
    data = mtlx.TaskData.from_shared(X, Y)
    alpha = 0.05 * mtlx.alpha_max(data, "l1", fit_intercept=fit_intercept)
    tasks_per_call = []
    kernel = _core.cd_epochs_residual

    def recording(*args):
        tasks_per_call.append(args[6].shape[1])
        return kernel(*args)

    monkeypatch.setattr(_core, "cd_epochs_residual", recording)
    weights = np.array([1.0, 2.0, 0.5, 1.0])
    res = mtlx.solve(data, penalty="l1", alpha=alpha, fit_intercept=fit_intercept, solver="cd", tol=1e-12,
                     task_weights=weights / n)
    assert res.solver == "cd" and res.converged and res.optimality <= 1e-12
    assert tasks_per_call and set(tasks_per_call) == {1}
    assert len(res.history) == res.n_evals and res.objective == pytest.approx(res.history[-1])
    for t, c in enumerate(weights):
        # c (1/2n) ||y_t - X w_t||^2 + alpha ||w_t||_1 is scikit-learn's lasso at alpha / c
        ref = Lasso(alpha=alpha / c, fit_intercept=fit_intercept, tol=1e-14, max_iter=1_000_000).fit(X, Y[:, t])
        np.testing.assert_allclose(res.W[:, t], ref.coef_, atol=1e-8 * np.abs(ref.coef_).max())
        assert res.b[t] == pytest.approx(ref.intercept_, abs=1e-8 * max(1.0, abs(ref.intercept_)))
    monkeypatch.setattr(_core, "cd_epochs_residual", kernel)
    path = mtlx.path(data, "l1", alphas=4, eps=0.05, fit_intercept=fit_intercept, tol=1e-12)
    union = WorkingSetSolver(data, "l1", fit_intercept=fit_intercept)
    W = None
    for k, a in enumerate(path.alphas):
        W, info = union.solve(a, W, tol=1e-12)
        np.testing.assert_allclose(path.coefs[k], W, atol=1e-8 * max(np.abs(W).max(), 1.0))
        assert path.gaps[k] <= 1e-12 * path.objectives[k]


# -- the dense passes over a wide X (mtlx/dense_columns.hpp) ---------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", [1, 3, 8])
def test_dense_transpose_times_is_r_times_x_and_independent_of_threads(rng, dtype, m):
    n, d = 203, 4100  # (rows not a multiple of the kernel's four; columns over two ranges and a tail)
    X = rng.standard_normal((n, d)).astype(dtype)
    R = rng.standard_normal((m, n))
    out = np.full((m, d), np.nan)
    _core.dense_transpose_times(X, R, out, 1)
    np.testing.assert_allclose(out, R @ X.astype(np.float64), rtol=0, atol=1e-12 * np.sqrt(n) * 4)
    for n_threads in (2, 3):
        again = np.empty((m, d))
        _core.dense_transpose_times(X, R, again, n_threads)
        np.testing.assert_array_equal(again, out)
    with pytest.raises(ValueError, match=r"R must be \(m, 203\)"):
        _core.dense_transpose_times(X, R[:, :-1].copy(), out, 1)
    with pytest.raises(ValueError, match="out"):
        _core.dense_transpose_times(X, R, np.empty((m, d - 1)), 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dense_gather_columns_is_the_centered_transposed_selection(rng, dtype):
    n, d = 37, 500
    X = rng.standard_normal((n, d)).astype(dtype)
    features = np.sort(rng.choice(d, 60, replace=False)).astype(np.int64)
    xbar = rng.standard_normal(60)
    out = np.empty((60, n))
    _core.dense_gather_columns(X, features, xbar, out, 1)
    np.testing.assert_array_equal(out, X[:, features].T.astype(np.float64) - xbar[:, None])
    _core.dense_gather_columns(X, features, None, out, 2)
    np.testing.assert_array_equal(out, X[:, features].T.astype(np.float64))
    with pytest.raises(ValueError, match=r"features out of range \[0, 500\)"):
        _core.dense_gather_columns(X, np.array([3, 500], dtype=np.int64), None, np.empty((2, n)), 1)


def test_largest_selects_as_a_stable_descending_sort(rng):
    from mtlx.working_set import largest

    for trial in range(500):
        size = int(rng.integers(1, 40))
        values = rng.integers(0, 4, size).astype(float)  # many ties
        values[rng.random(size) < 0.2] = np.inf
        if trial % 5 == 0:
            values[rng.random(size) < 0.2] = np.nan
        count = int(rng.integers(0, size + 2))
        np.testing.assert_array_equal(largest(values, count), np.sort(np.argsort(-values, kind="stable")[:count]))


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_a_working_sets_columns_reuse_the_last_sets(rng, fit_intercept):
    """Columns the next working set shares with the last are copied from it: the result equals a
    fresh gather bit for bit, features of both old and new included."""
    X = rng.standard_normal((30, 200)) + 2.0
    Y = rng.standard_normal((30, 3))
    solver = WorkingSetSolver(mtlx.TaskData.from_shared(X, Y), "l21", fit_intercept=fit_intercept)
    first = np.array([3, 10, 11, 50, 120], dtype=np.int64)
    previous = (first, solver._centered_columns(first))
    for features in (np.array([3, 4, 11, 50, 199]), np.array([0, 1, 2]), first):
        reused = solver._centered_columns(features, previous)
        np.testing.assert_array_equal(reused.columns, solver._centered_columns(features).columns)
        np.testing.assert_array_equal(reused.sq_norms, solver._centered_columns(features).sq_norms)
        xbar = X[:, features].mean(axis=0) if fit_intercept else 0.0
        np.testing.assert_allclose(reused.columns, (X[:, features] - xbar).T, atol=1e-12)


@pytest.mark.parametrize("penalty", ["l1", "l21"])
def test_a_settled_working_set_is_solved_deeper(rng, penalty):
    """Residual epochs on a wide X: a working set that holds every alive feature whose dual
    constraint is violated is solved to k / d of the gap (its checks, passes over X, were the
    cost), any other to celer's 0.3; the deeper rule needs fewer gap checks to the same optimum
    (scikit-learn's)."""
    import mtlx.working_set as ws_module

    n, d, T = 60, 2400, 1 if penalty == "l1" else 3
    X = rng.standard_normal((n, d))
    W_true = np.zeros((d, T))
    W_true[:20] = rng.standard_normal((20, T))
    Y = X @ W_true + 0.1 * rng.standard_normal((n, T))
    data = mtlx.TaskData.from_shared(X, Y)
    solver = WorkingSetSolver(data, penalty)
    alpha = 0.1 * mtlx.alpha_max(data, penalty)
    corr = rng.uniform(-1, 1, (d, T)) * alpha / 4  # no constraint violated ...
    alive, ws = np.arange(d), np.arange(100)
    assert solver._residual_pays(ws)
    assert solver._subproblem_share(ws, alive, corr, alpha) == pytest.approx(100 / d)
    corr[50] = 2 * alpha  # ... one violated inside the set: still settled
    assert solver._subproblem_share(ws, alive, corr, alpha) == pytest.approx(100 / d)
    corr[700] = 2 * alpha  # ... one violated outside it: celer's share
    assert solver._subproblem_share(ws, alive, corr, alpha) == 0.3
    # (corr holds the rows of alive: feature 700 screened out leaves the set settled again)
    kept = np.delete(alive, 700)
    assert solver._subproblem_share(ws, kept, np.delete(corr, 700, axis=0), alpha) == pytest.approx(100 / d)

    def solve(share_rule):
        s = WorkingSetSolver(data, penalty)
        if share_rule is not None:
            s._subproblem_share = share_rule
        return s.solve(alpha, tol=1e-12)

    W_deep, deep = solve(None)
    W_flat, flat = solve(lambda *args: 0.3)
    assert deep["converged"] and flat["converged"] and deep["outer"] < flat["outer"]
    ref = (Lasso if penalty == "l1" else MultiTaskLasso)(alpha=alpha, fit_intercept=False, tol=1e-14,
                                                         max_iter=1_000_000).fit(X, Y.ravel() if T == 1 else Y)
    np.testing.assert_allclose(W_deep, ref.coef_.reshape(T, d).T, atol=1e-7 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(W_deep, W_flat, atol=1e-9 * np.abs(W_flat).max())
    assert ws_module._SUBPROBLEM_SHARE == 0.3


def test_solver_cd_takes_a_paths_warm_start_with_intercepts(rng):
    """solver="cd" refused b0 ("computes the intercepts exactly") where "auto" picking cd checked
    and dropped it: a path's (W, b) now warm-starts it by name too, to the same optimum."""
    X = rng.standard_normal((60, 5))
    Y = X @ rng.standard_normal((5, 3)) + 2.0
    data = mtlx.TaskData.from_shared(X, Y)
    cold = mtlx.solve(data, penalty="l21", alpha=0.05, fit_intercept=True, solver="cd", tol=1e-12)
    warm = mtlx.solve(data, penalty="l21", alpha=0.05, fit_intercept=True, solver="cd", tol=1e-12, W0=cold.W,
                      b0=cold.b)
    assert warm.solver == "cd"
    np.testing.assert_allclose(warm.W, cold.W, atol=1e-10)
    np.testing.assert_allclose(warm.b, Y.mean(axis=0) - X.mean(axis=0) @ warm.W, atol=1e-10)
    with pytest.raises(ValueError, match=r"b0 has shape \(2,\), expected \(n_tasks,\) = \(3,\)"):
        mtlx.solve(data, penalty="l21", alpha=0.05, fit_intercept=True, solver="cd", b0=np.zeros(2))
