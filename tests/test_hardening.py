"""Regression tests of the defects a new user found (each fails on the code before its fix).

Numbered as in the report: 0 exact fits, 1 alpha = 0 in the working-set engine, 2 intercepts
hidden by the stopping test, 2b float32 claiming convergence, 3 one validation everywhere,
4 overflow at the boundary, 6-9 scikit-learn conventions, 12 and 14 newcomer friction.
"""

import logging
import re
import warnings

import numpy as np
import pytest

import mtlx
from mtlx import penalties as P

from reference import logistic_loss


def exact_problem(rng, n, d, T=1):
    X = rng.standard_normal((n, d))
    return X, X @ rng.standard_normal((d, T))


# ---------------------------------------------------------------------------------- 0: F = 0
@pytest.mark.parametrize("penalty", ["none", "l21", "l1", "trace", "mean"])
def test_problems_fitted_exactly_are_ordinary_optima(rng, penalty):
    # F -> 0 made the relative change of F stay near 1 until F underflowed and the line search
    # failed ("the smooth part is not finite").
    res = mtlx.solve(mtlx.TaskData.from_shared(np.array([[1.0, 2.0], [3.0, 1.0]]), np.array([1.0, 0.0])),
                     penalty="none")
    assert res.converged
    np.testing.assert_allclose(res.W.ravel(), np.linalg.solve([[1.0, 2.0], [3.0, 1.0]], [1.0, 0.0]), atol=1e-6)
    for _ in range(10):  # noise-free regression with n <= d: most runs failed for every penalty
        X, Y = exact_problem(rng, 4, 6, 3)
        res = mtlx.solve(mtlx.TaskData.from_shared(X, Y), penalty=penalty, alpha=0.0)
        assert res.converged and res.objective <= 1e-10 * 0.5 * np.sum(Y * Y) / 4
        np.testing.assert_allclose(X @ res.W, Y, atol=1e-5 * np.abs(Y).max())


def test_noise_free_regressor_fits(rng):
    for _ in range(20):
        X, Y = exact_problem(rng, 100, 5)
        model = mtlx.MultiTaskRegressor(penalty="none", fit_intercept=True).fit(X, Y[:, 0] + 3.0)
        np.testing.assert_allclose(model.predict(X), Y[:, 0] + 3.0, rtol=1e-5, atol=1e-5)  # default tol 1e-6


# ---------------------------------------------------------------------------------- 1: alpha = 0 with CD
def test_alpha_zero_is_never_certified_by_the_working_set_engine(rng):
    # The certificate never rescaled the dual point at alpha = 0: W = 0 came back with a "gap" of 0.
    X, Y = exact_problem(rng, 50, 4, 3)
    Y += 0.1 * rng.standard_normal(Y.shape)
    model = mtlx.MultiTaskRegressor(penalty="l21", alpha=0.0, fit_intercept=False, tol=1e-12).fit(X, Y)
    np.testing.assert_allclose(model.coef_.T, np.linalg.lstsq(X, Y, rcond=None)[0], atol=1e-6)
    assert model.solver_ == "fista"
    ridge = mtlx.MultiTaskRegressor(penalty="l1", alpha=0.0, l2=0.5, fit_intercept=False, tol=1e-12).fit(X, Y)
    from sklearn.linear_model import Ridge

    ref = Ridge(alpha=0.5 * len(X), fit_intercept=False).fit(X, Y)  # mean weights: (1/n) RSS/2 + 0.5 l2 |w|^2
    np.testing.assert_allclose(ridge.coef_, ref.coef_, atol=1e-6)
    with pytest.raises(ValueError, match="alpha > 0"):
        mtlx.working_set.solve_working_set(mtlx.TaskData.from_shared(X, Y), "l21", alpha=0.0)
    with pytest.raises(ValueError, match=r"alphas\[1\] = 0.0"):
        mtlx.path(mtlx.TaskData.from_shared(X, Y), "l21", alphas=[0.1, 0.0])


# ---------------------------------------------------------------------------------- 2: per-block convergence
def test_intercepts_converge_under_a_large_ridge(rng):
    # l2 = 1e6 made W tiny and hid the intercepts in one optimality measure: converged=True with
    # b 5.5e-4 from its optimum. The optimum is b_t = mean(y_t) - mean(x_t) . w_t with w -> 0.
    tasks = [(rng.standard_normal((m, 4)) + 2.0, rng.standard_normal(m) + 5.0 * t) for t, m in enumerate((30, 50))]
    res = mtlx.solve(mtlx.TaskData.from_tasks(tasks), penalty="none", l2=1e6, fit_intercept=True, tol=1e-10)
    assert res.converged
    for t, (X, y) in enumerate(tasks):
        Xc, yc = X - X.mean(axis=0), y - y.mean()
        w = np.linalg.solve(Xc.T @ Xc / len(y) + 1e6 * np.eye(4), Xc.T @ yc / len(y))
        np.testing.assert_allclose(res.W[:, t], w, rtol=1e-6, atol=1e-14)
        assert res.b[t] == pytest.approx(y.mean() - X.mean(axis=0) @ w, abs=1e-9)


# ---------------------------------------------------------------------------------- 2b: float32
def test_float32_reaches_the_float64_optimum(rng):
    # Logistic loss, X of order 1e3, l1 with intercept: float32 claimed convergence at F = 8.31e-4
    # against an optimum of 6.01e-4; of 40 random pairs 37 differed by > 0.1% in F.
    worst = 0.0
    for seed in range(12):
        r = np.random.default_rng(seed)
        X = 1e3 * r.standard_normal((60, 5)) + 500
        y = np.where(X[:, 0] * 1e-3 + 0.5 * r.standard_normal(60) > 0.8, 1.0, -1.0)
        kw = dict(loss="logistic", penalty="l1", alpha=1e-3, fit_intercept=True, max_iter=50_000)
        r64 = mtlx.solve(mtlx.TaskData.from_shared(X, y), tol=1e-9, **kw)
        r32 = mtlx.solve(mtlx.TaskData.from_shared(X.astype(np.float32), y.astype(np.float32)), **kw)
        assert r32.converged and r64.converged
        F32 = np.mean(logistic_loss(y, X @ r32.W[:, 0].astype(np.float64) + r32.b[0])) + 1e-3 * np.abs(r32.W).sum()
        worst = max(worst, (F32 - r64.objective) / r64.objective)
    assert worst < 1e-5


def test_tol_below_float32_resolution_stalls_with_a_warning(rng):
    tasks = [(rng.standard_normal((m, 6)).astype(np.float32), rng.standard_normal(m).astype(np.float32))
             for m in (14, 33, 21, 27)]
    with pytest.warns(mtlx.ConvergenceWarning, match="stalled after .* tol is below what the float32 data"):
        res = mtlx.solve(mtlx.TaskData.from_tasks(tasks), penalty="l21", alpha=0.05, tol=1e-9, max_iter=50_000)
    assert not res.converged and res.message == "stalled" and res.n_iter < 10_000
    ref = mtlx.solve(mtlx.TaskData.from_tasks([(X.astype(float), y.astype(float)) for X, y in tasks]),
                     penalty="l21", alpha=0.05, tol=1e-12)
    assert res.objective == pytest.approx(ref.objective, rel=1e-5)


# ---------------------------------------------------------------------------------- 3: one validation
@pytest.mark.parametrize("alpha, error, message", [
    (-1, ValueError, r"The 'alpha' parameter must be a float in the range \[0.0, inf\). Got -1"),
    (np.nan, ValueError, r"The 'alpha' parameter must be a float in the range \[0.0, inf\). Got nan"),
    (np.inf, ValueError, "Got inf"), ("0.1", TypeError, r"Got '0.1' \(str\)"), (True, TypeError, "bool")])
def test_alpha_is_checked_by_every_entry_point(rng, alpha, error, message):
    X, Y = exact_problem(rng, 20, 3, 2)
    data = mtlx.TaskData.from_shared(X, Y)
    for call in (lambda: mtlx.MultiTaskRegressor(alpha=alpha).fit(X, Y),
                 lambda: mtlx.MultiTaskRegressor(alpha=alpha, solver="fista").fit(X, Y),
                 lambda: mtlx.solve(data, alpha=alpha),
                 lambda: mtlx.working_set.solve_working_set(data, alpha=alpha)):
        with pytest.raises(error, match=message):
            call()


def test_path_checks_its_grid(rng):
    X, Y = exact_problem(rng, 20, 3, 2)
    data = mtlx.TaskData.from_shared(X, Y)
    for bad in ([0.1, -0.2], [np.nan], [], "many"):
        with pytest.raises((ValueError, TypeError), match="alpha"):
            mtlx.path(data, "l21", alphas=bad)
    with pytest.raises(ValueError, match="n_alphas"):
        mtlx.path(data, "l21", n_alphas=0)
    assert list(mtlx.path(data, "l21", alphas=[0.01, 1.0]).alphas) == [1.0, 0.01]


def test_numpy_scalars_are_accepted_and_absurd_thread_counts_refused(rng):
    X, Y = exact_problem(rng, 20, 3, 2)
    data = mtlx.TaskData.from_shared(X, Y)
    res = mtlx.solve(data, alpha=np.float32(0.1), tol=np.float64(1e-8), max_iter=np.int64(500), n_threads=np.int32(1))
    assert res.converged
    with pytest.raises(ValueError, match=r"The 'n_threads' parameter must be an int in the range \[1, 65536\]"):
        mtlx.solve(data, n_threads=10**12)
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        mtlx.solve(data, comm="world")


# ---------------------------------------------------------------------------------- 4: overflow
def test_l21_prox_scales_before_the_norm():
    W = np.zeros((3, 4))
    W[0], W[1], W[2] = 1e200, 1e-170, 1.0
    out = mtlx.prox(W, "l21", 1.0, 1e-180)
    np.testing.assert_array_equal(out[0], W[0])  # 1 - 1e-380 is 1
    np.testing.assert_allclose(out[1], W[1] * (1 - 1e-180 / 2e-170), rtol=1e-15)  # shrunk, not zeroed
    assert mtlx.penalty_value(W, "l21") == pytest.approx(2e200 + 2e-170 + 2.0, rel=1e-15)
    assert np.all(np.isfinite(mtlx.prox(np.full((2, 3), 1e308), "mean", 1.0, 0.5)))


def test_float32_losses_beyond_its_range_are_named():
    X = np.full((4, 2), 1e19, dtype=np.float32)
    data = mtlx.TaskData.from_shared(X, np.zeros(4, np.float32))
    value, _, _ = mtlx.loss_grad(data, np.ones((2, 1), np.float32))  # residual 2e19: its square in double
    assert value == pytest.approx(4 * 0.5 * 4e38 / 4, rel=1e-6)
    with pytest.raises(ValueError, match=r"overflow float32 .* X holds values up to 1e\+19"):
        mtlx.loss_grad(data, np.full((2, 1), 1e18, np.float32))


@pytest.mark.parametrize("penalty", ["l21", "l1"])
@pytest.mark.parametrize("layout", ["shared", "stacked"])
@pytest.mark.parametrize("huge", ["X", "Y"])
def test_the_coordinate_descent_engine_names_an_overflow(rng, penalty, layout, huge):
    """Data past float64's range under working sets + coordinate descent (the default engine of
    shared-X least squares) is a ValueError naming the data's size, as under the other engines,
    not a zero model with a gap of NaN and a ConvergenceWarning."""
    X, Y = exact_problem(rng, 60, 5, 3)
    X, Y = (X * 1e200, Y) if huge == "X" else (X, Y * 1e300)
    kw = dict(penalty=penalty, fit_intercept=True)
    what = r"X holds values up to [\d.]+e\+200" if huge == "X" else r"targets up to [\d.]+e\+300"
    fit = (lambda m: m.fit(X, Y)) if layout == "shared" else (lambda m: m.fit(X, Y[:, 0], task=np.arange(60) % 3))
    with pytest.raises(ValueError, match=r"the losses overflow float64 .*" + what):
        fit(mtlx.MultiTaskRegressor(solver="cd", **kw))
    for solver in ("auto", "fista"):  # (FISTA's step from an eigensolver fails first on the huge X)
        with pytest.raises(ValueError, match=r"overflow float64|beyond what float64 carries"):
            fit(mtlx.MultiTaskRegressor(solver=solver, **kw))
    # Scaled to 1e100, the same data fits.
    X, Y = (X * 1e-100, Y) if huge == "X" else (X, Y * 1e-200)
    model = fit(mtlx.MultiTaskRegressor(alpha=1e-3, solver="cd", **kw))
    assert model.solver_ == "cd" and np.all(np.isfinite(model.coef_)) and np.any(model.coef_ != 0)
    if layout == "shared":
        assert fit(mtlx.MultiTaskRegressor(alpha=1e-3, **kw)).solver_ == "cd"


# ---------------------------------------------------------------------------------- 6-9: scikit-learn
def test_pipeline_score_under_metadata_routing(rng):
    import sklearn
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, Y = exact_problem(rng, 60, 4, 3)
    Y += 0.1 * rng.standard_normal(Y.shape)
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = Pipeline([("scale", StandardScaler()), ("mtl", mtlx.MultiTaskRegressor())]).fit(X, Y)
        assert pipe.score(X, Y) == pytest.approx(pipe[-1].score(pipe[0].transform(X), Y))
        search = GridSearchCV(pipe, {"mtl__alpha": [0.01, 0.1]}, cv=3).fit(X, Y)
        assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
        task = np.repeat([0, 1, 2], 20)
        y = Y[np.arange(60), task]
        folds = KFold(3, shuffle=True, random_state=0)  # every task in every training part
        search = GridSearchCV(mtlx.MultiTaskRegressor(), {"alpha": [0.01, 0.1]}, cv=folds).fit(X, y, task=task)
        assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    # Weighted scores: scikit-learn's r2_score with the same weights.
    from sklearn.metrics import r2_score

    w = rng.random(60)
    assert pipe.score(X, Y, sample_weight=w) == pytest.approx(r2_score(Y, pipe.predict(X), sample_weight=w))


def test_a_stacked_model_needs_task_to_predict(rng):
    X, Y = exact_problem(rng, 30, 3, 1)
    model = mtlx.MultiTaskRegressor().fit(X, Y[:, 0], task=np.repeat([1, 2, 3], 10))
    with pytest.raises(ValueError, match=r"fit on stacked rows .*enable_metadata_routing=True"):
        model.predict(X)
    from sklearn.model_selection import GridSearchCV, KFold

    task = np.repeat([1, 2, 3], 10)
    with warnings.catch_warnings(record=True) as caught:  # without routing, score sees no task
        warnings.simplefilter("always")
        folds = KFold(3, shuffle=True, random_state=0)
        GridSearchCV(mtlx.MultiTaskRegressor(), {"alpha": [0.1]}, cv=folds).fit(X, Y[:, 0], task=task)
    assert any("enable_metadata_routing" in str(w.message) for w in caught)


def test_convergence_warning_is_sklearns():
    from sklearn.exceptions import ConvergenceWarning

    assert issubclass(mtlx.ConvergenceWarning, ConvergenceWarning)
    data = mtlx.TaskData.from_tasks([(np.eye(3), np.arange(3.0))])
    with pytest.warns(ConvergenceWarning):
        mtlx.solve(data, penalty="l1", alpha=1e-3, tol=1e-14, max_iter=2, solver="fista")


def test_cv_estimators_take_any_penalty_and_sklearns_spelling(rng):
    X = rng.standard_normal((90, 5))
    task = np.repeat([0, 1, 2], 30)
    y = X @ rng.standard_normal(5) + 0.3 * task + 0.2 * rng.standard_normal(90)
    model = mtlx.MultiTaskRegressorCV(penalty="mean", alphas=4, cv=3).fit(X, y, task=task)
    assert model.alphas_.shape == (4,) and model.alpha_ in model.alphas_ and model.mse_path_.shape == (4, 3)
    with pytest.warns(FutureWarning, match="n_alphas is deprecated"):
        mtlx.MultiTaskRegressorCV(alphas=3, n_alphas=3, cv=3).fit(X, y, task=task)
    labels = np.where(y > np.median(y), "up", "down")
    clf = mtlx.MultiTaskClassifierCV(penalty=P.L21(), alphas=5, cv=3).fit(X, labels, task=task)
    assert clf.scores_path_.shape == (5, 3) and list(clf.classes_[0]) == ["down", "up"]
    # The chosen alpha's refit is the plain classifier at that alpha.
    ref = mtlx.MultiTaskClassifier(penalty="l21", alpha=clf.alpha_).fit(X, labels, task=task)
    np.testing.assert_allclose(clf.coef_, ref.coef_, atol=1e-8)


def test_verbosity_never_changes_the_result(rng, capsys, caplog):
    X, Y = exact_problem(rng, 80, 10, 3)
    Y += 0.1 * rng.standard_normal(Y.shape)
    quiet = mtlx.MultiTaskRegressor(alpha=0.05).fit(X, Y)
    loud = mtlx.MultiTaskRegressor(alpha=0.05, verbose=1).fit(X, Y)
    assert quiet.solver_ == loud.solver_ == "cd"
    np.testing.assert_array_equal(quiet.coef_, loud.coef_)
    err = capsys.readouterr().err
    assert "decades of optimality" in err and "10000" not in err  # the bar counts decades down to tol
    with caplog.at_level(logging.INFO, logger="mtlx"):
        mtlx.MultiTaskRegressor(alpha=0.05, verbose=1).fit(X, Y)
    assert not any(r.getMessage().startswith("mtlx:") for r in caplog.records)  # no doubled prefix


# ---------------------------------------------------------------------------------- 12, 14
def test_submodules_resolve_after_import_mtlx():
    import importlib
    import sys

    for name in ("io", "datasets", "plot"):
        sys.modules.pop(f"mtlx.{name}", None)
        mtlx.__dict__.pop(name, None)
        module = getattr(mtlx, name)
        assert module is importlib.import_module(f"mtlx.{name}")
    assert callable(mtlx.io.save_dataset) and callable(mtlx.datasets.load_school)


@pytest.mark.parametrize("task, error, message", [
    ([0, 1, np.nan, 1], ValueError, "task contains NaN"),
    ([0, "a", 1, "a"], TypeError, r"all of one kind; got \['int', 'str'\]"),
    ([None, 1, 1, 0], TypeError, "all of one kind"),
    ([True, False, True, False], TypeError, "booleans")])
def test_ambiguous_task_ids_are_refused(task, error, message):
    X, y = np.ones((4, 2)), np.ones(4)
    with pytest.raises(error, match=message):
        mtlx.TaskData.from_stacked(X, y, task)
    with pytest.raises(error, match=message):
        mtlx.MultiTaskRegressor().fit(X, y, task=task)


@pytest.mark.parametrize("dtype, scale, penalty, solver", [
    ("float32", 1e20, "l21", "auto"), ("float64", 1e-150, "mean", "auto"), ("float64", 1e-150, "l1", "admm"),
    ("float64", 1e150, "trace", "auto")])
def test_a_scale_the_solver_cannot_carry_is_a_value_error_naming_it(dtype, scale, penalty, solver):
    """Values at 1e20 in float32, or 1e+-150 in float64, made LAPACK's SVD or eigendecomposition
    fail to converge or a step divide by zero: numpy's LinAlgError or a bare ZeroDivisionError.
    Now a ValueError naming the data's range and the way out."""
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((30, 6)) * scale).astype(dtype)
    Y = (rng.standard_normal((30, 3)) * (scale if dtype == "float32" else 1.0)).astype(dtype)
    with pytest.raises(ValueError, match=r"the solve failed in its arithmetic .*nonzero \|X\| from .* rescale the "
                                         r"data"):
        mtlx.solve(mtlx.TaskData.from_shared(X, Y), penalty=penalty, alpha=0.1, n_threads=1, solver=solver)


@pytest.mark.parametrize("weight", [1e39, 1e-50])
def test_sample_weights_outside_the_dtype_are_named(weight):
    """float32 data with weights of 1e39 (infinite in float32) or 1e-50 (zero): named, where the
    first failed in LAPACK and the second read 'every row has sample weight zero'; float64 takes
    them."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((20, 4)), rng.standard_normal((20, 2))
    with pytest.raises(ValueError, match=re.escape(f"sample_weight[0] = {weight:g} is outside what float32 carries")):
        mtlx.TaskData.from_shared(X.astype(np.float32), Y.astype(np.float32), sample_weight=np.full(20, weight))
    data = mtlx.TaskData.from_shared(X, Y, sample_weight=np.full(20, weight))
    plain = mtlx.TaskData.from_shared(X, Y)
    np.testing.assert_allclose(mtlx.solve(data, alpha=0.1, tol=1e-10).W, mtlx.solve(plain, alpha=0.1, tol=1e-10).W,
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("penalty", ["L21(0)", "Trace(0)", "L1(0) + L21(0)"])
def test_a_penalty_of_weight_zero_is_the_unpenalized_problem(penalty):
    """alpha * 0 * g(W) = 0: the fit of alpha = 0 (least squares here: numpy's lstsq), in as many
    iterations. L21(0) ran ADMM for 2,000 iterations into a 'stalled' warning, and the engines that
    need a penalty said it was the wrong one."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    Y = X @ rng.standard_normal((5, 3)) + 0.1 * rng.standard_normal((40, 3))
    data = mtlx.TaskData.from_shared(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zero = mtlx.solve(data, penalty=penalty, alpha=0.3, tol=1e-12)
    unpenalized = mtlx.solve(data, penalty="l21", alpha=0.0, tol=1e-12)
    assert zero.converged and zero.n_iter == unpenalized.n_iter
    np.testing.assert_array_equal(zero.W, unpenalized.W)
    np.testing.assert_allclose(zero.W, np.linalg.lstsq(X, Y, rcond=None)[0], atol=1e-8)
    with pytest.raises(ValueError, match=r"solver='cd' needs a penalty that is not 0 \(.* has weight 0"):
        mtlx.solve(data, penalty=penalty, alpha=0.3, solver="cd")


def test_argument_mixups_are_refused_everywhere():
    """path(alphas=5, n_alphas=7) used 7 silently; gram='maybe' was checked on FISTA's path only."""
    rng = np.random.default_rng(0)
    data = mtlx.TaskData.from_shared(rng.standard_normal((40, 5)), rng.standard_normal((40, 3)))
    assert len(mtlx.path(data, n_alphas=7).alphas) == 7
    np.testing.assert_array_equal(mtlx.path(data, alphas=7, n_alphas=7).alphas, mtlx.path(data, alphas=7).alphas)
    for alphas in (5, [0.1, 0.01]):
        with pytest.raises(ValueError, match="n_alphas=7 and alphas=.* disagree"):
            mtlx.path(data, alphas=alphas, n_alphas=7)
    for solver in ("cd", "admm", "fista"):
        with pytest.raises(ValueError, match="gram must be 'auto', True or False, got 'maybe'"):
            mtlx.solve(data, gram="maybe", solver=solver)


def test_pandas_nullable_columns_are_numbers():
    """Float64 (nullable) frames came out of np.asarray as objects: 'object dtype' refused them.
    They are floats, a missing entry NaN: an error in X, a missing label in Y (the fit then
    equals the one on float64 with NaN)."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((40, 3)), rng.standard_normal((40, 2))
    Y[3, 1] = np.nan
    Yd = pd.DataFrame(Y).astype("Float64")
    assert Yd.isna().iloc[3, 1]
    a = mtlx.solve(mtlx.TaskData.from_shared(pd.DataFrame(X).astype("Float64"), Yd), alpha=0.05, tol=1e-10)
    b = mtlx.solve(mtlx.TaskData.from_shared(X, Y), alpha=0.05, tol=1e-10)
    np.testing.assert_array_equal(a.W, b.W)
    Xd = pd.DataFrame(X).astype("Float64")
    Xd.iloc[2, 0] = pd.NA
    with pytest.raises(ValueError, match=r"X contains NaN \(row 2\)"):
        mtlx.TaskData.from_shared(Xd, Y)


@pytest.mark.parametrize("make", [lambda: mtlx.MultiTaskClassifier(alpha=0.01),
                                  lambda: mtlx.SharedTrunkClassifier(hidden=(3,), max_iter=30, random_state=0)])
def test_probabilities_get_the_task_under_metadata_routing(rng, make):
    """predict_proba, predict_log_proba and decision_function of a Pipeline on stacked rows: they
    raised UnsetMetadataPassedError (only fit, predict and score asked for ``task``)."""
    import sklearn
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = rng.standard_normal((90, 4)) * 3 + 1
    task = np.arange(90) % 3
    y = (X[:, 0] + task > 2).astype(int)
    scaled = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        direct = make().fit(scaled, y, task=task)
        with sklearn.config_context(enable_metadata_routing=True):
            pipe = make_pipeline(StandardScaler(), make()).fit(X, y, task=task)
            for method in ("predict_proba", "predict_log_proba", "decision_function"):
                if hasattr(direct, method):
                    np.testing.assert_allclose(getattr(pipe, method)(X, task=task),
                                               getattr(direct, method)(scaled, task=task), rtol=1e-10, atol=1e-12)


def test_task_weights_all_zero_are_refused(rng):
    """No task weighing anything left no data term: W = 0 after 0 iterations, silently (an
    all-zero sample_weight is refused); one positive weight fits that task as alone."""
    X, Y = exact_problem(rng, 40, 3, 2)
    for weights in ([0, 0], np.zeros(2), (0.0, 0.0)):
        with pytest.raises(ValueError, match=r"task_weights are all zero \(2 tasks\)"):
            mtlx.MultiTaskRegressor(task_weights=weights).fit(X, Y)
    with pytest.raises(ValueError, match="task_weights are all zero"):
        mtlx.solve(mtlx.TaskData.from_shared(X, Y), task_weights=[0.0, 0.0])
    one = mtlx.MultiTaskRegressor(penalty="l1", alpha=0.01, task_weights=[0.0, 1.0], tol=1e-10).fit(X, Y)
    alone = mtlx.MultiTaskRegressor(penalty="l1", alpha=0.01, task_weights="sum", tol=1e-10).fit(X, Y[:, 1])
    np.testing.assert_allclose(one.coef_[1], alone.coef_.ravel(), atol=1e-8)
    np.testing.assert_array_equal(one.coef_[0], 0.0)
