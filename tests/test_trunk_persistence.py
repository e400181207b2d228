"""mtlx.save / mtlx.load of the shared-trunk estimators: the loaded model predicts as the saved one,
and a file whose network does not add up is refused naming the problem."""

import numpy as np
import pytest

import mtlx
from test_persistence import members, rewrite

pytestmark = pytest.mark.filterwarnings("ignore::mtlx.ConvergenceWarning")  # short fits: the files are the point


@pytest.fixture
def data(rng):
    X = rng.standard_normal((120, 5))
    Y = np.column_stack([np.tanh(X @ rng.standard_normal(5)) + 0.1 * rng.standard_normal(120) for _ in range(3)])
    return X, Y


def _same_predictions(a, b, X, proba=False):
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    if proba:
        for p, q in zip(a.predict_proba(X), b.predict_proba(X)):
            np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("options", [dict(hidden=(8,), task_weighting="uncertainty", task_hidden=(4,)),
                                     dict(hidden=(6, 5), activation="tanh", loss="huber", max_iter=30),
                                     dict(hidden=(8,), solver="adam", max_iter=15, early_stopping=True,
                                          batch_size=16)])
def test_regressors_round_trip(tmp_path, data, options):
    X, Y = data
    model = mtlx.SharedTrunkRegressor(**options, random_state=3).fit(X, Y)
    mtlx.save(model, tmp_path / "m.npz")
    loaded = mtlx.load(tmp_path / "m.npz")
    assert type(loaded) is mtlx.SharedTrunkRegressor and loaded.get_params()["hidden"] == tuple(options["hidden"])
    _same_predictions(model, loaded, X)
    np.testing.assert_array_equal(loaded.result_.params, model.result_.params)
    assert loaded.n_iter_ == model.n_iter_ and loaded.loss_curve_ == model.loss_curve_
    for key, curve in model.history_.items():
        np.testing.assert_array_equal(loaded.history_[key], curve)
    if "uncertainty" in options.values():
        np.testing.assert_array_equal(loaded.log_vars_, model.log_vars_)
    for W, W2 in zip(model.coefs_ + model.intercepts_, loaded.coefs_ + loaded.intercepts_):
        np.testing.assert_array_equal(W, W2)
    assert loaded.score(X, Y) == model.score(X, Y)


def test_classifier_with_binary_and_multiclass_tasks_round_trips(tmp_path, data):
    X, Y = data
    labels = np.column_stack([np.where(Y[:, 0] > 0, "yes", "no"), np.digitize(Y[:, 1], [-0.5, 0.0, 0.5]),
                              np.where(Y[:, 2] > 0, 1.0, -1.0)]).astype(object)
    pairs = [(X, labels[:, 0].astype(str)), (X, labels[:, 1].astype(int)), (X, labels[:, 2].astype(float))]
    model = mtlx.SharedTrunkClassifier(hidden=(8,), random_state=1).fit(pairs)
    mtlx.save(model, tmp_path / "c")
    loaded = mtlx.load(tmp_path / "c.npz")
    assert [list(c) for c in loaded.classes_] == [list(c) for c in model.classes_]
    assert loaded.result_.network.out_dims.tolist() == [1, 4, 1]
    for p, q in zip(model.predict([X, X, X]), loaded.predict([X, X, X])):
        np.testing.assert_array_equal(p, q)
    for p, q in zip(model.predict_proba([X, X, X]), loaded.predict_proba([X, X, X])):
        np.testing.assert_array_equal(p, q)


@pytest.fixture
def trunk_file(tmp_path, data):
    X, Y = data
    model = mtlx.SharedTrunkRegressor(hidden=(8,), max_iter=20, task_weighting="uncertainty").fit(X, Y)
    path = tmp_path / "t.npz"
    mtlx.save(model, path)
    return path


@pytest.mark.parametrize("change, message", [
    # 5 inputs, 8 hidden units, 3 heads of 8 + 1 weights: 5 * 8 + 8 + 3 * 9 = 75 parameters
    (dict(params_=np.zeros(7)), r"params_ must be a float array of shape \(75,\)"),
    (dict(out_dims_=np.array([1, 2, 1]), params_=np.zeros(84)), r"task 1: a head of 2 output\(s\) with the"),
    (dict(out_dims_=np.array([1, 0, 1])), "out_dims_ must hold n_tasks_ = 3 head widths >= 1"),
    (dict(losses_=np.array([[0.0, 0.0], [9.0, 0.0], [0.0, 0.0]])), "losses_ holds unknown loss codes"),
    (dict(log_vars_=None), "log_vars_ is stored exactly when task_weighting='uncertainty'"),
    (dict(task_loss_=np.zeros((2, 3))), "task_loss_ must be a float array of shape"),
    (dict(converged_=np.array([1, 2])), "converged_"),
    (dict(tasks_=np.array([0, 0, 1])), "tasks_ must hold n_tasks_ = 3 distinct task ids"),
])
def test_a_network_that_does_not_add_up_is_refused(trunk_file, change, message):
    rewrite(trunk_file, **change)
    with pytest.raises(ValueError, match=message):
        mtlx.load(trunk_file)


def test_a_params_member_larger_than_the_network_is_refused_before_reading(trunk_file):
    rewrite(trunk_file, params_=np.zeros(10**6))
    with pytest.raises(ValueError, match="array 'params_'"):
        mtlx.load(trunk_file)


def test_the_architecture_of_the_parameters_is_checked(trunk_file):
    import json

    arrays = members(trunk_file)
    meta = json.loads(arrays["__meta__"].item())
    meta["params"]["hidden"] = [9]  # the stored params_ were made for hidden (8,)
    rewrite(trunk_file, __meta__=np.asarray(json.dumps(meta)))
    with pytest.raises(ValueError, match=r"params_ must be a float array of shape \(84,\)"):
        mtlx.load(trunk_file)


def test_widths_given_as_an_int_or_numpy_integers_round_trip(tmp_path, data):
    X, Y = data
    for options in (dict(hidden=8), dict(hidden=(np.int64(6),), task_hidden=np.int64(3))):
        model = mtlx.SharedTrunkRegressor(max_iter=5, **options).fit(X, Y)
        mtlx.save(model, tmp_path / "w.npz")
        np.testing.assert_array_equal(mtlx.load(tmp_path / "w.npz").predict(X), model.predict(X))


@pytest.mark.parametrize("params, message", [
    (dict(hidden=None), "the architecture: hidden must be a tuple of layer widths"),
    (dict(hidden=[]), "the architecture: hidden must hold at least one layer width"),
    (dict(hidden=[10**30]), "the architecture"),
    (dict(activation="foo"), "activation must be one of"),
    (dict(hidden=[[8]]), "hidden widths must be positive integers"),
])
def test_an_architecture_fit_would_refuse_is_a_value_error(trunk_file, params, message):
    import json

    meta = json.loads(members(trunk_file)["__meta__"].item())
    meta["params"].update(params)
    rewrite(trunk_file, __meta__=np.asarray(json.dumps(meta)))
    with pytest.raises(ValueError, match=message):
        mtlx.load(trunk_file)
