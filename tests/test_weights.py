"""Sample weights and missing labels: integer weights against repeated rows, weight 0 against a
dropped row, scikit-learn's weighted MultiTaskElasticNet and Ridge, NaN targets of shared X
against the labelled rows fit as separate tasks, every engine, paths, estimators and errors."""

import numpy as np
import pytest

import mtlx
import mtlx.io

D, T = 7, 4


@pytest.fixture
def shared(rng):
    X = rng.standard_normal((70, D))
    Y = X[:, :3] @ rng.standard_normal((3, T)) + 0.3 * rng.standard_normal((70, T))
    s = rng.integers(0, 4, size=70).astype(float)
    s[:3] = [0.0, 1.0, 3.0]
    return X, Y, s


def targets_for(loss, Y):
    if loss in ("logistic", "squared_hinge"):
        return np.where(Y > np.median(Y, axis=0), 1.0, -1.0)
    if loss == "poisson":
        return np.round(np.exp(0.3 * Y)).astype(float)
    return Y


def assert_same_fit(a, b, atol=1e-9):
    np.testing.assert_allclose(a.W, b.W, atol=atol)
    np.testing.assert_allclose(a.b, b.b, atol=atol)
    assert a.objective == pytest.approx(b.objective, rel=1e-10)


@pytest.mark.parametrize("solver", ["auto", "fista", "cd", "admm"])
@pytest.mark.parametrize("layout", ["shared", "stacked", "tasks"])
@pytest.mark.parametrize("intercept", [False, True])
def test_integer_weights_are_repeated_rows_least_squares(shared, solver, layout, intercept):
    X, Y, s = shared
    rep = np.repeat(np.arange(len(s)), s.astype(int))
    task = np.arange(len(s)) % T
    if layout == "shared":
        weighted, repeated = mtlx.TaskData.from_shared(X, Y, sample_weight=s), mtlx.TaskData.from_shared(X[rep], Y[rep])
    elif layout == "stacked":
        weighted = mtlx.TaskData.from_stacked(X, Y[:, 0], task, sample_weight=s)
        repeated = mtlx.TaskData.from_stacked(X[rep], Y[rep, 0], task[rep])
    else:
        rows = [task == t for t in range(T)]
        weighted = mtlx.TaskData.from_tasks([(X[r], Y[r, t]) for t, r in enumerate(rows)],
                                            sample_weight=[s[r] for r in rows])
        repeated = mtlx.TaskData.from_tasks([(X[r][np.repeat(np.arange(r.sum()), s[r].astype(int))],
                                              Y[r, t][np.repeat(np.arange(r.sum()), s[r].astype(int))])
                                             for t, r in enumerate(rows)])
    kw = dict(penalty="l21", alpha=0.05, fit_intercept=intercept, tol=1e-12, solver=solver)
    assert_same_fit(mtlx.solve(weighted, **kw), mtlx.solve(repeated, **kw), atol=1e-8 if solver == "fista" else 1e-10)


@pytest.mark.parametrize("loss", ["logistic", "huber", "squared_hinge", "poisson"])
@pytest.mark.parametrize("layout", ["shared", "stacked"])
def test_integer_weights_are_repeated_rows_other_losses(shared, loss, layout):
    X, Y, s = shared
    Y = targets_for(loss, Y)
    rep = np.repeat(np.arange(len(s)), s.astype(int))
    task = np.arange(len(s)) % 2
    if layout == "shared":
        weighted, repeated = mtlx.TaskData.from_shared(X, Y, sample_weight=s), mtlx.TaskData.from_shared(X[rep], Y[rep])
    else:
        weighted = mtlx.TaskData.from_stacked(X, Y[:, 0], task, sample_weight=s)
        repeated = mtlx.TaskData.from_stacked(X[rep], Y[rep, 0], task[rep])
    kw = dict(loss=loss, penalty="trace", alpha=0.02, fit_intercept=True, tol=1e-12)
    assert_same_fit(mtlx.solve(weighted, **kw), mtlx.solve(repeated, **kw), atol=1e-8)


def test_loss_grad_weights_every_row(shared, dtype):
    X, Y, s = shared
    X, Y = X.astype(dtype), Y.astype(dtype)
    W, b = np.full((D, T), 0.1, dtype=dtype), np.full(T, 0.2, dtype=dtype)
    f, gW, gb = mtlx.loss_grad(mtlx.TaskData.from_shared(X, Y, sample_weight=s), W, b, task_weights="sum")
    R = X.astype(np.float64) @ W + b - Y
    tol = dict(rtol=1e-12) if dtype == np.float64 else dict(rtol=3e-5, atol=1e-4)
    np.testing.assert_allclose(f, 0.5 * np.sum(s[:, None] * R**2), **tol)
    np.testing.assert_allclose(gW, X.T.astype(np.float64) @ (s[:, None] * R), **tol)
    np.testing.assert_allclose(gb, (s[:, None] * R).sum(axis=0), **tol)


def test_weight_zero_drops_the_row(shared):
    X, Y, s = shared
    keep = s > 0
    for loss in ("squared", "logistic"):
        Yl = targets_for(loss, Y)
        Yl_bad = Yl.copy()
        Yl_bad[~keep] = 7.0  # outside the logistic domain, and an outlier for least squares: never read
        kw = dict(loss=loss, penalty="l21", alpha=0.02, fit_intercept=True, tol=1e-12)
        a = mtlx.solve(mtlx.TaskData.from_shared(X, Yl_bad, sample_weight=keep.astype(float)), **kw)
        b = mtlx.solve(mtlx.TaskData.from_shared(X[keep], Yl[keep]), **kw)
        assert_same_fit(a, b, atol=1e-8)


def test_matches_scikit_learn_multitask_elastic_net(shared):
    from sklearn.linear_model import MultiTaskElasticNet

    X, Y, s = shared
    s = s + 0.5  # fractional weights
    alpha = 0.05
    ref = MultiTaskElasticNet(alpha=alpha, l1_ratio=1.0, tol=1e-14, max_iter=100_000).fit(X, Y, sample_weight=s)
    ours = mtlx.MultiTaskRegressor(penalty="l21", alpha=alpha, tol=1e-12).fit(X, Y, sample_weight=s)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-8)


def test_matches_scikit_learn_ridge(shared):
    from sklearn.linear_model import Ridge

    X, Y, s = shared
    ref = Ridge(alpha=2.0, solver="cholesky").fit(X, Y[:, 0], sample_weight=s + 0.1)
    # Ridge: sum_i s_i r_i^2 + alpha ||w||^2 = 2 (sum_i s_i r_i^2 / 2 + (l2 / 2) ||w||^2) at l2 = alpha.
    ours = mtlx.MultiTaskRegressor(penalty="none", alpha=0.0, l2=2.0, task_weights="sum", tol=1e-12)
    ours.fit(X, Y[:, 0], sample_weight=s + 0.1)
    np.testing.assert_allclose(ours.coef_[0], ref.coef_, atol=1e-9)
    assert ours.intercept_[0] == pytest.approx(ref.intercept_, abs=1e-9)


# ----------------------------------------------------------------------------- missing labels
@pytest.mark.parametrize("loss", ["squared", "logistic", "poisson"])
@pytest.mark.parametrize("penalty", ["l21", "trace", "mean"])
def test_missing_labels_are_the_labelled_rows_as_separate_tasks(shared, loss, penalty):
    X, Y, s = shared
    Y = targets_for(loss, Y)
    missing = np.random.default_rng(5).random(Y.shape) < 0.3
    Y_nan = np.where(missing, np.nan, Y)
    kw = dict(loss=loss, penalty=penalty, alpha=0.03, fit_intercept=True, tol=1e-12)
    a = mtlx.solve(mtlx.TaskData.from_shared(X, Y_nan, sample_weight=s), **kw)
    pairs = [(X[~missing[:, t]], Y[~missing[:, t], t]) for t in range(T)]
    b = mtlx.solve(mtlx.TaskData.from_tasks(pairs, sample_weight=[s[~missing[:, t]] for t in range(T)]), **kw)
    assert_same_fit(a, b, atol=1e-8)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("penalty", ["l21", "l1"])
def test_working_sets_weigh_missing_labels_and_sparse_rows_natively(shared, sparse, penalty):
    """Missing labels (dense or sparse X) and row weights of a sparse X run in working sets, the
    engine weighing its per-task Gram rows (X' S_t X, X never copied per task): the labelled rows
    fit as separate tasks, and repeated rows, give the same fit to 1e-10."""
    import scipy.sparse as sp

    X, Y, s = shared
    to_x = sp.csr_matrix if sparse else np.asarray
    missing = np.random.default_rng(7).random(Y.shape) < 0.3
    kw = dict(penalty=penalty, alpha=0.03, fit_intercept=True, tol=1e-13)
    a = mtlx.solve(mtlx.TaskData.from_shared(to_x(X), np.where(missing, np.nan, Y), sample_weight=s), **kw)
    pairs = [(X[~missing[:, t]], Y[~missing[:, t], t]) for t in range(T)]
    b = mtlx.solve(mtlx.TaskData.from_tasks(pairs, sample_weight=[s[~missing[:, t]] for t in range(T)]),
                   solver="fista", max_iter=500_000, **kw)
    assert a.solver == "cd" and a.converged
    assert_same_fit(a, b, atol=1e-8)
    if sparse:  # row weights of a sparse X (no scaled copy of X is possible): against repeated rows
        rep = np.repeat(np.arange(len(s)), s.astype(int))
        task = np.arange(len(s)) % T
        # ("auto" leaves per-task rows with few features to ADMM's Gram form where it can, FISTA
        # here: solver="cd" asks for the working sets)
        for weighted, repeated, solver in [
            (mtlx.TaskData.from_shared(to_x(X), Y, sample_weight=s), mtlx.TaskData.from_shared(X[rep], Y[rep]),
             "auto"),
            (mtlx.TaskData.from_stacked(to_x(X), Y[:, 0], task, sample_weight=s),
             mtlx.TaskData.from_stacked(X[rep], Y[rep, 0], task[rep]), "cd")]:
            c = mtlx.solve(weighted, solver=solver, **kw)
            assert c.solver == "cd" and c.converged
            assert_same_fit(c, mtlx.solve(repeated, **kw), atol=1e-10)


def test_path_with_missing_labels_runs_in_working_sets(shared):
    """mtlx.path on shared X with NaN targets: each alpha certified by the working-set engine,
    the same path as the labelled rows fit as separate tasks."""
    X, Y, _ = shared
    missing = np.random.default_rng(8).random(Y.shape) < 0.3
    a = mtlx.path(mtlx.TaskData.from_shared(X, np.where(missing, np.nan, Y)), "l21", alphas=5, fit_intercept=True,
                  tol=1e-12)
    pairs = [(X[~missing[:, t]], Y[~missing[:, t], t]) for t in range(T)]
    b = mtlx.path(mtlx.TaskData.from_tasks(pairs), "l21", alphas=a.alphas, fit_intercept=True, tol=1e-12)
    assert np.all(np.isfinite(a.gaps)) and np.all(a.gaps <= 1e-12 * a.objectives + 1e-15)
    np.testing.assert_allclose(a.coefs, b.coefs, atol=1e-8)
    np.testing.assert_allclose(a.intercepts, b.intercepts, atol=1e-8)


def test_missing_labels_in_the_estimators(shared):
    X, Y, _ = shared
    missing = np.random.default_rng(6).random(Y.shape) < 0.25
    Y_nan = np.where(missing, np.nan, Y)
    reg = mtlx.MultiTaskRegressor(penalty="l21", alpha=0.02, tol=1e-11).fit(X, Y_nan)
    pairs = [(X[~missing[:, t]], Y[~missing[:, t], t]) for t in range(T)]
    ref = mtlx.MultiTaskRegressor(penalty="l21", alpha=0.02, tol=1e-11).fit(pairs)
    np.testing.assert_allclose(reg.coef_, ref.coef_, atol=1e-8)
    from sklearn.metrics import r2_score

    expected = np.mean([r2_score(Y[~missing[:, t], t], reg.predict(X)[~missing[:, t], t]) for t in range(T)])
    assert reg.score(X, Y_nan) == pytest.approx(expected, rel=1e-12)

    y_clf = np.where(missing, np.nan, (Y > 0).astype(float))
    clf = mtlx.MultiTaskClassifier(alpha=0.01, tol=1e-10).fit(X, y_clf)
    pairs = [(X[~missing[:, t]], (Y[~missing[:, t], t] > 0).astype(float)) for t in range(T)]
    ref = mtlx.MultiTaskClassifier(alpha=0.01, tol=1e-10).fit(pairs)
    np.testing.assert_allclose(clf.coef_, ref.coef_, atol=1e-8)
    hits = clf.predict(X) == (Y > 0)
    assert clf.score(X, y_clf) == pytest.approx(hits[~missing].mean(), rel=1e-12)


def test_estimator_sample_weight_in_every_layout(shared):
    X, Y, s = shared
    task = np.arange(len(s)) % T
    rep = np.repeat(np.arange(len(s)), s.astype(int))
    kw = dict(penalty="l1", alpha=0.02, tol=1e-12)
    a = mtlx.MultiTaskRegressor(**kw).fit(X, Y[:, 0], task=task, sample_weight=s)
    b = mtlx.MultiTaskRegressor(**kw).fit(X[rep], Y[rep, 0], task=task[rep])
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-9)
    rows = [task == t for t in range(T)]
    c = mtlx.MultiTaskRegressor(**kw).fit([(X[r], Y[r, 0]) for r in rows], sample_weight=[s[r] for r in rows])
    np.testing.assert_allclose(c.coef_, a.coef_, atol=1e-9)


def test_path_with_weights_is_the_path_of_repeated_rows(shared):
    X, Y, s = shared
    rep = np.repeat(np.arange(len(s)), s.astype(int))
    a = mtlx.path(mtlx.TaskData.from_shared(X, Y, sample_weight=s), "l21", alphas=6, fit_intercept=True, tol=1e-12)
    b = mtlx.path(mtlx.TaskData.from_shared(X[rep], Y[rep]), "l21", alphas=6, fit_intercept=True, tol=1e-12)
    np.testing.assert_allclose(a.alphas, b.alphas, rtol=1e-12)
    np.testing.assert_allclose(a.coefs, b.coefs, atol=1e-9)
    np.testing.assert_allclose(a.intercepts, b.intercepts, atol=1e-9)


# ----------------------------------------------------------------------------- errors
def test_bad_weights_and_unlabelled_tasks_are_named(shared):
    X, Y, s = shared
    bad = s.copy()
    bad[4] = -1.0
    with pytest.raises(ValueError, match=r"sample_weight\[4\] is negative \(-1\); sample weights must be finite"):
        mtlx.TaskData.from_shared(X, Y, sample_weight=bad)
    bad[4] = np.nan
    with pytest.raises(ValueError, match=r"task 2: sample_weight\[4\] is NaN"):
        mtlx.TaskData.from_tasks([(X, Y[:, 0]), (X, Y[:, 1]), (X, Y[:, 2])], sample_weight=[s, None, bad])
    with pytest.raises(ValueError, match=r"sample_weight has shape \(69,\), expected \(70,\)"):
        mtlx.TaskData.from_stacked(X, Y[:, 0], np.zeros(70), sample_weight=s[1:])
    with pytest.raises(ValueError, match="task 1: every row of it has sample weight zero"):
        mtlx.TaskData.from_tasks([(X, Y[:, 0]), (X, Y[:, 1])], sample_weight=[s, np.zeros(70)])
    Y_nan = Y.copy()
    Y_nan[:, 3] = np.nan
    with pytest.raises(ValueError, match="task 3: every row of it is unlabelled"):
        mtlx.TaskData.from_shared(X, Y_nan)
    X_nan = X.copy()
    X_nan[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN \(row 5\)"):  # NaN in X stays an error
        mtlx.TaskData.from_shared(X_nan, Y)
    with pytest.raises(ValueError, match="sample_weight must be None when X is a TaskData"):
        mtlx.MultiTaskRegressor().fit(mtlx.TaskData.from_shared(X, Y), sample_weight=s)
    with pytest.raises(ValueError, match="gram=True needs unweighted data"):
        mtlx.solve(mtlx.TaskData.from_shared(X, np.where(Y > 2, np.nan, Y)), solver="fista", gram=True)


def test_cv_estimators_weigh_folds_and_scores(shared):
    X, Y, s = shared
    plain = mtlx.MultiTaskRegressorCV(alphas=5, cv=3).fit(X, Y)
    ones = mtlx.MultiTaskRegressorCV(alphas=5, cv=3).fit(X, Y, sample_weight=np.ones(len(s)))
    twos = mtlx.MultiTaskRegressorCV(alphas=5, cv=3).fit(X, Y, sample_weight=np.full(len(s), 2.0))
    np.testing.assert_allclose(ones.mse_path_, plain.mse_path_, rtol=1e-9)
    np.testing.assert_allclose(twos.mse_path_, plain.mse_path_, rtol=1e-9)  # "mean" task weights: scale-free
    weighted = mtlx.MultiTaskRegressorCV(alphas=5, cv=3).fit(X, Y, sample_weight=s + 0.5)
    assert not np.allclose(weighted.mse_path_, plain.mse_path_, rtol=1e-6)
    missing = np.random.default_rng(7).random(Y.shape) < 0.2
    cv = mtlx.MultiTaskRegressorCV(alphas=5, cv=3).fit(X, np.where(missing, np.nan, Y))
    assert np.isfinite(cv.mse_path_).all() and cv.coef_.shape == (T, D)


# ----------------------------------------------------------------------------- datasets, CLI
@pytest.mark.parametrize("suffix", [".npz", ""])
def test_datasets_keep_weights_and_missing_labels(shared, tmp_path, suffix):
    X, Y, s = shared
    Y_nan = np.where(np.random.default_rng(8).random(Y.shape) < 0.2, np.nan, Y)
    data = mtlx.TaskData.from_shared(X, Y_nan, sample_weight=s)
    mtlx.io.save_dataset(tmp_path / f"shared{suffix}", data)
    back = mtlx.io.load_dataset(tmp_path / f"shared{suffix}")
    kw = dict(penalty="l21", alpha=0.03, fit_intercept=True, tol=1e-12)
    assert_same_fit(mtlx.solve(back, **kw), mtlx.solve(data, **kw), atol=0)
    task = np.arange(len(s)) % T
    stacked = mtlx.TaskData.from_stacked(X, Y[:, 0], task, sample_weight=s)
    mtlx.io.save_dataset(tmp_path / f"stacked{suffix}", X, Y[:, 0], task, sample_weight=s)
    part = mtlx.io.load_dataset(tmp_path / f"stacked{suffix}", tasks=[1, 3])
    np.testing.assert_array_equal(part.sample_weight, np.concatenate([s[task == 1], s[task == 3]]))
    assert_same_fit(mtlx.solve(mtlx.io.load_dataset(tmp_path / f"stacked{suffix}"), **kw), mtlx.solve(stacked, **kw),
                    atol=0)


def test_cli_fit_takes_sample_weights(shared, tmp_path, capsys):
    from mtlx.cli import main

    X, Y, s = shared
    task = np.arange(len(s)) % T
    mtlx.io.save_dataset(tmp_path / "d.npz", X, Y[:, 0], task)
    np.save(tmp_path / "w.npy", s)
    assert main(["fit", str(tmp_path / "d.npz"), "--sample-weight", str(tmp_path / "w.npy"), "--alpha", "0.02",
                 "--intercept", "--tol", "1e-12", "--out", str(tmp_path / "m.npz")]) == 0
    ref = mtlx.MultiTaskRegressor(alpha=0.02, tol=1e-12).fit(X, Y[:, 0], task=task, sample_weight=s)
    np.testing.assert_allclose(mtlx.load(tmp_path / "m.npz").coef_, ref.coef_, atol=1e-12)
    labels = np.where(Y[:, 0] > 0, "yes", "no")
    mtlx.io.save_dataset(tmp_path / "c.npz", X, labels, task, sample_weight=s)  # weights stored in the dataset
    assert main(["fit", str(tmp_path / "c.npz"), "--loss", "logistic", "--alpha", "0.02", "--intercept",
                 "--out", str(tmp_path / "c-model.npz")]) == 0
    ref = mtlx.MultiTaskClassifier(alpha=0.02).fit(X, labels, task=task, sample_weight=s)
    np.testing.assert_allclose(mtlx.load(tmp_path / "c-model.npz").coef_, ref.coef_, atol=1e-12)
    np.save(tmp_path / "short.npy", s[1:])
    assert main(["fit", str(tmp_path / "d.npz"), "--sample-weight", str(tmp_path / "short.npy"),
                 "--out", str(tmp_path / "x.npz")]) != 0
    assert "sample_weight has shape (69,), expected (70,): one weight per row" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_feature_moments_with_missing_labels_are_each_tasks_labelled_rows(dtype):
    """Means and (centred) squared norms of a shared X with per-entry weights, computed for every
    task at once, against numpy on each task's labelled rows (features far from 0: the centring's
    cancellation is measured too)."""
    rng = np.random.default_rng(9)
    X = (rng.standard_normal((3000, 6)) * 3 + 50).astype(dtype)
    Y = rng.standard_normal((3000, 3))
    Y[rng.random(Y.shape) < 0.4] = np.nan
    s = rng.uniform(0.5, 2.0, size=3000)
    data = mtlx.TaskData.from_shared(X, Y, sample_weight=s)
    means, centred, raw = data.feature_means(), data.column_sq_norms(True), data.column_sq_norms(False)
    for t in range(3):
        rows = ~np.isnan(Y[:, t])
        Xt, st = X[rows].astype(np.float64), s[rows].astype(dtype).astype(np.float64)  # (weights in X's dtype)
        mean = st @ Xt / st.sum()
        np.testing.assert_allclose(means[t], mean, rtol=1e-13)
        np.testing.assert_allclose(centred[t], st @ (Xt - mean) ** 2, rtol=1e-10)
        np.testing.assert_allclose(raw[t], st @ Xt**2, rtol=1e-13)


def test_per_task_sample_weights_take_none_for_all_ones():
    """fit([(X_1, y_1), (X_2, y_2)], sample_weight=[None, w]): None is all 1 for that task, as
    TaskData.from_tasks takes it (it was read as one weight and refused with a shape error)."""
    rng = np.random.default_rng(0)
    X1, X2 = rng.standard_normal((50, 3)), rng.standard_normal((31, 3))
    y1, y2 = X1 @ [1.0, 0.0, 2.0], X2 @ [0.5, 1.0, 2.0] + 0.1 * rng.standard_normal(31)
    w = rng.uniform(0.5, 2.0, 31)
    a = mtlx.MultiTaskRegressor(alpha=0.01).fit([(X1, y1), (X2, y2)], sample_weight=[None, w])
    b = mtlx.MultiTaskRegressor(alpha=0.01).fit([(X1, y1), (X2, y2)], sample_weight=[np.ones(50), w])
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.score([(X1, y1), (X2, y2)], sample_weight=[None, w]) == pytest.approx(
        b.score([(X1, y1), (X2, y2)], sample_weight=[np.ones(50), w]), rel=1e-15)
    with pytest.raises(ValueError, match=r"sample_weight\[1\] has shape \(30,\), expected \(31,\)"):
        mtlx.MultiTaskRegressor().fit([(X1, y1), (X2, y2)], sample_weight=[None, np.ones(30)])


def test_a_multiclass_task_weight_covers_its_classes():
    """task_weights holds one weight per task, a K-class task's K columns sharing it: weights
    [1, 2] are task 1's rows at sample weight 2 under task_weights="sum" (the objective is the
    same sum). It was read per column of W, and refused with 'one weight per task'."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 4))
    tasks = [(X[:50], np.digitize(X[:50, 0], [-0.5, 0.5])), (X[50:], (X[50:, 1] > 0).astype(int))]
    kw = dict(alpha=0.05, tol=1e-12, max_iter=100_000)
    by_task = mtlx.MultiTaskClassifier(task_weights=[1.0, 2.0], **kw).fit(tasks)
    by_rows = mtlx.MultiTaskClassifier(task_weights="sum", **kw).fit(tasks, sample_weight=[None, np.full(40, 2.0)])
    assert by_task.coef_.shape == (4, 4)  # 3 class columns, then 1
    np.testing.assert_allclose(by_task.coef_, by_rows.coef_, atol=1e-7)
    with pytest.raises(ValueError, match=r"task_weights has shape \(3,\), expected \(2,\): one weight per task"):
        mtlx.MultiTaskClassifier(task_weights=[1.0, 2.0, 3.0]).fit(tasks)
