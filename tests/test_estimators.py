"""MultiTaskRegressor / MultiTaskClassifier against scikit-learn's own estimators and conventions."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

import mtlx

from conftest import make_tasks

# Each check listed here cannot apply, for the reason given.
_PER_TASK_CLASSES = (
    "assumes the multilabel convention of one classes_ array shared by every output "
    "(classes_[decision > 0]) and an (n, n_outputs) predict_proba; mtlx tasks each have their "
    "own two labels, so classes_ is per task and predict_proba returns one (n, 2) array per task, "
    "as MultiOutputClassifier does"
)
_CV_FOLDS_OF_ROWS = (
    "the folds split rows, not weight: a row repeated k times lands in several folds where its weight k "
    "stays in one, so the held-out scores and the chosen alpha differ (the fit at each alpha is checked on "
    "the base estimators, and tests/test_weights.py checks the CV estimators' weighting)"
)
_NON_CONVEX = (
    "a network's loss is not convex: a weighted fit and one on repeated rows have the same objective and "
    "start, but L-BFGS's rounding-level differences settle in different local minima (1e-4 apart here); "
    "tests/test_shared_trunk.py checks the equivalence over a fixed number of iterations"
)
EXPECTED_FAILED_CHECKS = {
    "SharedTrunkRegressor": {"check_sample_weight_equivalence_on_dense_data": _NON_CONVEX},
    "SharedTrunkClassifier": {"check_classifier_multioutput": _PER_TASK_CLASSES},
    "MultiTaskClassifier": {"check_classifier_multioutput": _PER_TASK_CLASSES},
    "MultiTaskClassifierCV": {"check_classifier_multioutput": _PER_TASK_CLASSES},
    "MultiTaskRegressorCV": {"check_sample_weight_equivalence_on_dense_data": _CV_FOLDS_OF_ROWS,
                             "check_sample_weight_equivalence_on_sparse_data": _CV_FOLDS_OF_ROWS},
}


# The regressor at tol=1e-10: the sample-weight checks compare a weighted fit with one on repeated rows to
# rtol 1e-7, finer than the default tol's solutions.
@parametrize_with_checks(
    [mtlx.MultiTaskRegressor(tol=1e-10), mtlx.MultiTaskClassifier(), mtlx.MultiTaskRegressorCV(alphas=5, cv=3),
     mtlx.MultiTaskClassifierCV(alphas=4, cv=3), mtlx.SharedTrunkRegressor(hidden=(8,)),
     mtlx.SharedTrunkClassifier(hidden=(8,))],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est).__name__, {}),
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def shared_problem(rng, n=80, d=6, T=3):
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, T)) * (rng.random(d) < 0.6)[:, None]
    return X, X @ W + 1.5 + 0.1 * rng.standard_normal((n, T))


def test_regressor_matches_sklearn_multitask_lasso_with_intercept(rng):
    from sklearn.linear_model import MultiTaskLasso

    X, Y = shared_problem(rng)
    ours = mtlx.MultiTaskRegressor(penalty="l21", alpha=0.05, tol=1e-12, max_iter=100_000).fit(X, Y)
    ref = MultiTaskLasso(alpha=0.05, tol=1e-14, max_iter=100_000).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-7)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-7)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), atol=1e-6)
    assert ours.score(X, Y) == pytest.approx(ref.score(X, Y), rel=1e-9)
    assert ours.coef_.shape == (3, 6) and ours.n_tasks_ == 3 and ours.n_features_in_ == 6


def test_single_task_regressor_is_ridge(rng):
    from sklearn.linear_model import Ridge

    X = rng.standard_normal((40, 5))
    y = X @ rng.standard_normal(5) + 0.3 * rng.standard_normal(40)
    l2 = 0.2
    ours = mtlx.MultiTaskRegressor(penalty="none", l2=l2, tol=1e-13).fit(X, y)
    # F = (1/m) 0.5 ||r||^2 + (l2/2) ||w||^2 is Ridge's ||r||^2 + alpha ||w||^2 divided by 2m.
    ref = Ridge(alpha=l2 * len(y)).fit(X, y)
    np.testing.assert_allclose(ours.coef_[0], ref.coef_, rtol=1e-8)
    assert ours.intercept_[0] == pytest.approx(ref.intercept_, rel=1e-8)
    assert ours.predict(X).shape == (40,)


def test_single_task_classifier_is_logistic_regression(rng):
    from sklearn.linear_model import LogisticRegression

    X = rng.standard_normal((120, 4))
    labels = np.array(["spam", "ham"])[(X @ [1.0, -2.0, 0.5, 0.0] + rng.standard_normal(120) > 0).astype(int)]
    l2 = 0.05
    ours = mtlx.MultiTaskClassifier(penalty="none", l2=l2, tol=1e-13).fit(X, labels)
    # (1/m) sum loss + (l2/2)||w||^2 is LogisticRegression's C sum loss + 0.5||w||^2 over m l2.
    ref = LogisticRegression(C=1.0 / (len(labels) * l2), tol=1e-12, max_iter=10_000).fit(X, labels)
    assert list(ours.classes_) == list(ref.classes_) == ["ham", "spam"]
    np.testing.assert_allclose(ours.coef_[0], ref.coef_[0], rtol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-7)
    np.testing.assert_allclose(ours.predict_log_proba(X), ref.predict_log_proba(X), atol=1e-6)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    assert ours.score(X, labels) == pytest.approx(ref.score(X, labels))


def test_three_layouts_fit_the_same_model(rng):
    X, Y = shared_problem(rng, n=50, d=5, T=3)
    shared = mtlx.MultiTaskRegressor(alpha=0.03, tol=1e-12).fit(X, Y)
    task = np.repeat([10, 20, 30], len(X))
    stacked = mtlx.MultiTaskRegressor(alpha=0.03, tol=1e-12).fit(np.tile(X, (3, 1)), Y.T.ravel(), task=task)
    listed = mtlx.MultiTaskRegressor(alpha=0.03, tol=1e-12).fit([(X, Y[:, t]) for t in range(3)])
    for other in (stacked, listed):
        np.testing.assert_allclose(other.coef_, shared.coef_, atol=1e-9)
        np.testing.assert_allclose(other.intercept_, shared.intercept_, atol=1e-9)
    np.testing.assert_array_equal(stacked.tasks_, [10, 20, 30])
    assert (shared.fit_layout_, stacked.fit_layout_, listed.fit_layout_) == ("shared", "stacked", "tasks")
    # predictions in each layout agree with X w_t + b_t
    expected = X @ shared.coef_.T + shared.intercept_
    np.testing.assert_allclose(shared.predict(X), expected, atol=1e-12)
    np.testing.assert_allclose(stacked.predict(np.tile(X, (3, 1)), task=task), expected.T.ravel(), atol=1e-8)
    for t, pred in enumerate(listed.predict([X, X, X])):
        np.testing.assert_allclose(pred, expected[:, t], atol=1e-8)
    assert listed.score([(X, Y[:, t]) for t in range(3)]) == pytest.approx(
        stacked.score(np.tile(X, (3, 1)), Y.T.ravel(), task=task), rel=1e-9)


def test_fit_accepts_task_data_and_matches_solve(rng):
    tasks = make_tasks(rng, [30, 1, 45], 4)
    data = mtlx.TaskData.from_tasks(tasks)
    model = mtlx.MultiTaskRegressor(penalty="trace", alpha=0.2, fit_intercept=False, tol=1e-10).fit(data)
    assert model.solver_ in ("admm", "factored")  # auto: least squares in the Gram form, a trace norm
    res = mtlx.solve(data, penalty="trace", alpha=0.2, tol=1e-10, solver="auto")
    np.testing.assert_array_equal(model.coef_, res.W.T)
    np.testing.assert_array_equal(model.objective_history_, res.history)
    assert model.n_iter_ == res.n_iter


def test_classifier_per_task_labels_stacked(rng):
    X = rng.standard_normal((200, 3))
    task = rng.integers(0, 2, 200)
    z = X @ [2.0, -1.0, 0.5]
    y = np.where(task == 0, np.where(z > 0, "yes", "no"), np.where(z > 0, "7", "3"))
    clf = mtlx.MultiTaskClassifier(alpha=0.001, tol=1e-8).fit(X, y, task=task)
    assert [list(c) for c in clf.classes_] == [["no", "yes"], ["3", "7"]]
    pred = clf.predict(X, task=task)
    assert set(pred[task == 0]) <= {"no", "yes"} and set(pred[task == 1]) <= {"3", "7"}
    assert clf.score(X, y, task=task) > 0.95
    proba = clf.predict_proba(X, task=task)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    z = clf.decision_function(X, task=task)
    np.testing.assert_allclose(proba[:, 1], 1.0 / (1.0 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_array_equal(pred == np.where(task == 0, "yes", "7"), z > 0)


def test_classifier_shared_layout_returns_per_task_probabilities(rng):
    X = rng.standard_normal((90, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 0] > 0]).astype(int)
    clf = mtlx.MultiTaskClassifier(alpha=0.001).fit(X, Y)
    proba = clf.predict_proba(X)
    assert isinstance(proba, list) and len(proba) == 2 and proba[0].shape == (90, 2)
    np.testing.assert_array_equal(clf.predict(X), np.column_stack([p.argmax(axis=1) for p in proba]))
    assert clf.decision_function(X).shape == (90, 2)


def test_pipeline_and_grid_search_route_task(rng):
    import sklearn
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tasks = make_tasks(rng, [60, 70, 50], 5)
    X = np.vstack([x for x, _ in tasks]) * 3.0 + 1.0
    y = np.concatenate([y for _, y in tasks]) + X[:, 0]
    task = np.repeat([0, 1, 2], [60, 70, 50])
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), mtlx.MultiTaskRegressor(alpha=0.01, tol=1e-10))
        pipe.fit(X, y, task=task)
        Z = StandardScaler().fit_transform(X)
        direct = mtlx.MultiTaskRegressor(alpha=0.01, tol=1e-10).fit(Z, y, task=task)
        np.testing.assert_allclose(pipe.predict(X, task=task), direct.predict(Z, task=task), atol=1e-9)

        search = GridSearchCV(mtlx.MultiTaskRegressor(tol=1e-9), {"alpha": [0.001, 0.1, 10.0]},
                              cv=KFold(3, shuffle=True, random_state=0))
        search.fit(X, y, task=task)
    scores = []
    for alpha in [0.001, 0.1, 10.0]:
        fold = []
        for tr, te in KFold(3, shuffle=True, random_state=0).split(X):
            m = mtlx.MultiTaskRegressor(alpha=alpha, tol=1e-9).fit(X[tr], y[tr], task=task[tr])
            fold.append(m.score(X[te], y[te], task=task[te]))
        scores.append(np.mean(fold))
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], scores, rtol=1e-9)
    assert search.best_params_["alpha"] == [0.001, 0.1, 10.0][int(np.argmax(scores))]


@pytest.mark.parametrize("Model", [mtlx.MultiTaskRegressor, mtlx.MultiTaskClassifier])
def test_pickle_joblib_and_npz_round_trips(rng, tmp_path, Model):
    X = rng.standard_normal((70, 4))
    task = rng.integers(0, 3, 70)
    y = X[:, 0] + 0.1 * rng.standard_normal(70)
    if Model is mtlx.MultiTaskClassifier:
        y = np.where(y > 0, "up", "down")
    model = Model(penalty="l21", alpha=0.01, task_weights="sum").fit(X, y, task=task)
    expected = model.predict(X, task=task)
    clones = [pickle.loads(pickle.dumps(model))]
    joblib.dump(model, tmp_path / "m.joblib")
    clones.append(joblib.load(tmp_path / "m.joblib"))
    mtlx.save(model, tmp_path / "m.npz")
    clones.append(mtlx.load(tmp_path / "m.npz"))
    for clone in clones:
        np.testing.assert_array_equal(clone.predict(X, task=task), expected)
        np.testing.assert_array_equal(clone.coef_, model.coef_)
        assert clone.get_params() == model.get_params()
    loaded = clones[-1]
    assert type(loaded) is Model and loaded.n_iter_ == model.n_iter_
    if Model is mtlx.MultiTaskClassifier:
        assert [list(c) for c in loaded.classes_] == [list(c) for c in model.classes_]
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:  # plain arrays only
        assert "coef_" in z.files and "__meta__" in z.files


def test_load_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        mtlx.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not an mtlx model file"):
        mtlx.load(tmp_path / "other.npz")
    with pytest.raises(TypeError, match="mtlx estimators"):
        mtlx.save(object(), tmp_path / "x.npz")


def test_verbose_progress_bar_and_logging(rng, capsys, caplog):
    import logging

    X, Y = shared_problem(rng, n=30, d=3, T=2)
    mtlx.MultiTaskRegressor(verbose=0).fit(X, Y)
    assert capsys.readouterr().err == ""
    with caplog.at_level(logging.INFO, logger="mtlx"):
        model = mtlx.MultiTaskRegressor(verbose=1).fit(X, Y)
    err = capsys.readouterr().err
    assert "MultiTaskRegressor" in err and "F=" in err and "opt=" in err
    assert any(f"after {model.n_iter_} iterations" in r.getMessage() for r in caplog.records)
    handlers = logging.getLogger("mtlx").handlers
    assert len(handlers) == 1 and isinstance(handlers[0], logging.NullHandler)


def test_warm_start_callback_and_convergence_warning(rng):
    X, Y = shared_problem(rng)
    model = mtlx.MultiTaskRegressor(alpha=0.05, tol=1e-10, warm_start=True).fit(X, Y)
    first = model.objective_history_[-1]
    model.fit(X, Y)
    assert model.objective_history_[0] == pytest.approx(first, rel=1e-12) and model.n_iter_ <= 3
    seen = []

    def stop_after_five(state):
        seen.append(state.objective)
        if state.n_iter == 5:
            raise StopIteration

    stopped = mtlx.MultiTaskRegressor(callback=stop_after_five, solver="fista").fit(X, Y)
    assert stopped.n_iter_ == 5 and len(seen) == 5
    np.testing.assert_allclose(stopped.objective_history_[1:], seen)
    # The working-set engine calls back after each gap check; its history is F at each of them.
    seen.clear()
    stopped = mtlx.MultiTaskRegressor(callback=stop_after_five, tol=1e-14).fit(X, Y)
    assert stopped.solver_ == "cd" and len(seen) == 5
    np.testing.assert_allclose(stopped.objective_history_, seen)
    for solver in ("fista", "cd"):
        with pytest.warns(mtlx.ConvergenceWarning, match="did not converge"):
            mtlx.MultiTaskRegressor(max_iter=2, tol=1e-15, solver=solver).fit(X, Y)


def test_errors_name_the_culprit(rng):
    X, Y = shared_problem(rng, n=40, d=4, T=2)
    with pytest.raises(NotFittedError):
        mtlx.MultiTaskRegressor().predict(X)
    model = mtlx.MultiTaskRegressor().fit(X, Y[:, 0], task=np.repeat([3, 5], 20))
    with pytest.raises(ValueError, match="task id 4 was not seen in fit"):
        model.predict(X, task=np.full(40, 4))
    with pytest.raises(ValueError, match="X has 3 features, but MultiTaskRegressor is expecting 4"):
        model.predict(X[:, :3], task=np.full(40, 3))
    with pytest.raises(ValueError, match="task must hold one id per row"):
        model.fit(X, Y[:, 0], task=np.zeros(39))
    with pytest.raises(ValueError, match="model has 2 tasks"):
        model.predict([X])
    clf = mtlx.MultiTaskClassifier()
    with pytest.raises(ValueError, match="task 1: 3 classes .*, but the squared_hinge loss separates two"):
        mtlx.MultiTaskClassifier(loss="squared_hinge").fit(
            X, np.concatenate([np.arange(20) % 2, np.arange(20) % 3]), task=np.repeat([0, 1], 20))
    with pytest.raises(ValueError, match="task 7: y has only one class"):
        clf.fit(X, np.repeat([0, 1], 20) * 0, task=np.repeat([7, 8], 20))
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(X, rng.standard_normal(40))
    with pytest.raises(ValueError, match="task 1: X has 3 features"):
        mtlx.MultiTaskRegressor().fit([(X, Y[:, 0]), (X[:, :3], Y[:, 1])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mtlx.MultiTaskRegressor().fit(X.astype(np.float32), Y.astype(np.float32))


@pytest.mark.parametrize("make", [lambda: mtlx.MultiTaskRegressor(alpha=0.1),
                                  lambda: mtlx.SharedTrunkRegressor(hidden=(4,), max_iter=30, n_threads=1)],
                         ids=["linear", "trunk"])
def test_per_task_dataframes_keep_their_feature_names(make):
    """A list of per-task DataFrames: feature_names_in_ is their shared columns, inputs with other
    columns (reordered, renamed) are refused at fit and at predict, and the predictions are those
    of the same fit on arrays."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = X @ [1.0, 2.0, 3.0, 4.0] + 0.1 * rng.standard_normal(60)
    df = pd.DataFrame(X, columns=list("abcd"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        named = make().fit([(df[:30], y[:30]), (df[30:], y[30:])])
        plain = make().fit([(X[:30], y[:30]), (X[30:], y[30:])])
        assert list(named.feature_names_in_) == list("abcd") and not hasattr(plain, "feature_names_in_")
        for got, expected in zip(named.predict([df[:5], df[40:45]]), plain.predict([X[:5], X[40:45]])):
            np.testing.assert_allclose(got, expected, rtol=1e-9)  # (a DataFrame's values: column-major)
        with pytest.raises(ValueError, match=r"X\[0\]: the feature names should match"):
            named.predict([df[:5][list("dcba")], df[40:45]])
        with pytest.raises(ValueError, match="task 1's X has the columns"):
            make().fit([(df[:30], y[:30]), (df[30:].rename(columns={"a": "z"}), y[30:])])
        named.fit([(X[:30], y[:30]), (X[30:], y[30:])])  # refit on arrays: the names are gone
    assert not hasattr(named, "feature_names_in_")


@pytest.mark.parametrize("make", [lambda: mtlx.MultiTaskRegressor(alpha=0.05),
                                  lambda: mtlx.SharedTrunkRegressor(hidden=(3,), max_iter=50, n_threads=1)],
                         ids=["linear", "trunk"])
def test_score_of_per_task_inputs_beside_per_task_targets(make):
    """score([X_1, X_2], [y_1, y_2]), as predict([X_1, X_2]): the pooled R^2 of sklearn's r2_score.
    numpy once stacked the per-task predictions into one array and scored them against y: 0.635
    where the model's R^2 is 0.997, silently."""
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    X1, X2 = rng.standard_normal((20, 3)), rng.standard_normal((25, 3))
    y1, y2 = X1 @ [1.0, 2.0, 3.0] + 0.1 * rng.standard_normal(20), X2 @ [1.0, 2.0, 2.5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        m = make().fit([(X1, y1), (X2, y2)])
    p1, p2 = m.predict([X1, X2])
    expected = r2_score(np.r_[y1, y2], np.r_[p1, p2])
    assert m.score([X1, X2], [y1, y2]) == pytest.approx(expected, rel=1e-12)
    assert m.score([(X1, y1), (X2, y2)]) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="y must be a list of as many per-task targets; got ndarray"):
        m.score([X1, X1], np.column_stack([y1, y1]))
    with pytest.raises(ValueError, match=r"task 1: X has 5 rows but y has shape \(25,\)"):
        m.score([X1, X2[:5]], [y1, y2])


def test_classifier_score_names_what_it_cannot_score():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(float)
    m = mtlx.MultiTaskClassifier().fit(X, Y)
    assert m.score(X, Y) == pytest.approx(np.mean(m.predict(X) == Y))
    assert m.score([X, X], [Y[:, 0], Y[:, 1]]) == pytest.approx(np.mean(m.predict(X) == Y))
    with pytest.raises(ValueError, match="no label to score"):
        m.score(X, np.full((30, 2), np.nan))
    with pytest.raises(ValueError, match=r"y has shape \(30,\), but the predictions for X have shape \(30, 2\)"):
        m.score(X, Y[:, 0])


@pytest.mark.parametrize("make", [lambda: mtlx.MultiTaskClassifier(alpha=0.05),
                                  lambda: mtlx.SharedTrunkClassifier(hidden=(4,), max_iter=40, n_threads=1)],
                         ids=["linear", "trunk"])
def test_string_labels_with_gaps_are_missing_labels(make):
    """A DataFrame of string labels with gaps (NaN, None): the gaps are missing labels, as NaN is in
    a float Y, and the fit equals the one on the same labels coded 0/1 with NaN gaps. np.unique
    could not sort NaN beside the strings: a bare TypeError naming no task."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    coded = np.column_stack([X[:, 0] > 0, X[:, 1] + 0.3 * X[:, 2] > 0]).astype(float)
    coded[3, 1] = coded[5, 0] = np.nan
    names = pd.DataFrame({"a": np.where(coded[:, 0] == 1, "p", "n"), "b": np.where(coded[:, 1] == 1, "yes", "no")},
                         dtype=object)
    names.iloc[3, 1], names.iloc[5, 0] = np.nan, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        by_name, by_code = make().fit(X, names), make().fit(X, coded)
    assert [c.tolist() for c in by_name.classes_] == [["n", "p"], ["no", "yes"]]
    for got, expected in zip(by_name.predict_proba(X), by_code.predict_proba(X)):
        np.testing.assert_array_equal(got, expected)
    # score leaves the gaps out, as fit does: the accuracy over the labelled entries (it counted
    # each gap as a miss: 0.73 where the labelled accuracy was 0.95).
    labelled = ~np.isnan(coded)
    expected = np.mean(by_code.predict(X)[labelled] == coded[labelled])
    assert by_name.score(X, names) == pytest.approx(expected, rel=1e-15)
    assert by_name.score(X, names.astype("string")) == pytest.approx(expected, rel=1e-15)  # pd.NA gaps


def test_regression_score_of_nullable_targets_leaves_the_gaps_out():
    """A pandas Float64 Y with pd.NA: fit takes the gaps for missing labels, and so does score (it
    raised "float() argument must be ... not 'NAType'"), per task over its labelled rows."""
    from sklearn.metrics import r2_score

    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 3))
    Y = X @ rng.standard_normal((3, 2)) + 0.5 * rng.standard_normal((50, 2))
    Y[[4, 9], 0] = Y[[1], 1] = np.nan
    frame = pd.DataFrame(Y, columns=["u", "v"]).astype("Float64")
    assert frame.isna().sum().sum() == 3
    model = mtlx.MultiTaskRegressor(alpha=0.01).fit(X, frame)
    pred = model.predict(X)
    expected = np.mean([r2_score(Y[~np.isnan(Y[:, t]), t], pred[~np.isnan(Y[:, t]), t]) for t in range(2)])
    assert model.score(X, frame) == pytest.approx(expected, rel=1e-13)
    assert model.score(X, Y) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("make", [lambda: mtlx.MultiTaskRegressor(alpha=0.05), lambda: mtlx.MultiTaskClassifier()],
                         ids=["regressor", "classifier"])
def test_float32_inputs_fit_in_float32_whatever_the_targets(rng, make):
    """scikit-learn's LogisticRegression and MultiTaskLasso keep a float32 X in float32: so do
    these, with float64 or boolean targets (the classifier's encoded targets were float64, and
    the fit copied X to float64: coef_ bit for bit the float64 fit's)."""
    X = rng.standard_normal((120, 5))
    Y = X @ rng.standard_normal((5, 3))
    Y = Y > 0 if isinstance(make(), mtlx.MultiTaskClassifier) else Y
    m32, m64 = make().fit(X.astype(np.float32), Y), make().fit(X, Y)
    assert m32.coef_.dtype == np.float32 and m64.coef_.dtype == np.float64
    assert not np.array_equal(m32.coef_, m64.coef_)
    np.testing.assert_allclose(m32.coef_, m64.coef_, rtol=1e-3, atol=1e-4 * np.abs(m64.coef_).max())


def test_predict_takes_per_task_nested_lists_as_fit_does(rng):
    """fit takes (list of lists, list) pairs; predict([X_1, X_2]) with nested lists failed ("setting
    an array element with a sequence", or "Found array with dim 3" for equal sizes)."""
    X, y = rng.standard_normal((40, 3)), rng.standard_normal(40)
    m = mtlx.MultiTaskRegressor(alpha=0.01).fit([(X[:25].tolist(), y[:25].tolist()), (X[25:].tolist(), y[25:])])
    for sizes in ((2, 3), (2, 2)):
        parts = [X[:sizes[0]], X[5:5 + sizes[1]]]
        for got, expected in zip(m.predict([p.tolist() for p in parts]), m.predict(parts)):
            np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(m.predict([X[:2].tolist(), X[:3].tolist()])[1], X[:3] @ m.coef_[1] + m.intercept_[1])


def test_predictions_take_the_wider_of_the_model_and_input_dtypes(rng):
    """As scikit-learn's linear models: a float64 model predicts float32 rows in float64 (it cast
    its weights to float32: 1e-2 off on targets near 1e5), a float32 model float32 rows in float32."""
    from sklearn.linear_model import LinearRegression

    X = rng.standard_normal((80, 5))
    Y = X @ rng.standard_normal((5, 3)) * 1e3 + 1e5
    X32 = X.astype(np.float32)
    model = mtlx.MultiTaskRegressor(alpha=1e-8, fit_intercept=True, tol=1e-12).fit(X, Y)
    reference = LinearRegression().fit(X, Y)
    for rows in (X32, sp.csr_matrix(X32)):
        pred = model.predict(rows)
        assert pred.dtype == np.float64
        # The float32 rows' own rounding, as in scikit-learn's prediction from them.
        np.testing.assert_allclose(pred, reference.predict(rows), rtol=0, atol=1e-6)
    per_task = model.predict([X32[:4], X[:5], X32[:6]])
    assert [p.dtype for p in per_task] == [np.float64] * 3
    np.testing.assert_allclose(per_task[0], reference.predict(X32[:4])[:, 0], rtol=0, atol=1e-6)
    stacked = mtlx.MultiTaskRegressor(alpha=1e-8, fit_intercept=True, tol=1e-12).fit(
        X, Y[np.arange(80), np.arange(80) % 3], task=np.arange(80) % 3)
    assert stacked.predict(X32, task=np.arange(80) % 3).dtype == np.float64
    small = mtlx.MultiTaskRegressor().fit(X32, Y.astype(np.float32))
    assert small.predict(X32).dtype == np.float32 and small.predict(X).dtype == np.float64
    assert mtlx.MultiTaskClassifier().fit(X, Y > 1e5).decision_function(X32).dtype == np.float64
