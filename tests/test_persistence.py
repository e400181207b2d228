"""mtlx.save / mtlx.load: round trips, and a loaded model checked as strictly as a fitted one.

A model file may come from anywhere: every test here edits a real saved file the way a
corrupt or crafted one would differ, and checks that ``load`` refuses it with a ValueError
naming the file and the problem (never AttributeError/KeyError, never a model that predicts
something else), without reading more than the file holds.
"""

import copy
import inspect
import io
import json
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.model_selection import KFold

import mtlx
from mtlx.persistence import _estimator_classes, check_model

from conftest import make_tasks


def members(path) -> dict:
    """The arrays of a model file as stored (the file is our own: reading it with numpy is safe)."""
    with np.load(path, allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


def rewrite(path, **changes) -> None:
    """Rewrite the model file at ``path`` with some members replaced (None: removed)."""
    arrays = members(path)
    for name, value in changes.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = np.asarray(value)
    np.savez(path, **arrays)


def meta(path) -> dict:
    return json.loads(str(members(path)["__meta__"]))


def with_meta(path, **fields) -> None:
    new = {**meta(path), **fields}
    rewrite(path, __meta__=json.dumps(new))


@pytest.fixture
def stacked_rows(rng):
    X = rng.standard_normal((90, 4))
    task = rng.integers(0, 3, 90) * 10 + 5  # ids 5, 15, 25
    y = X @ np.array([1.0, -2.0, 0.0, 0.5]) + 0.1 * rng.standard_normal(90)
    return X, y, task


@pytest.fixture
def regressor_file(tmp_path, stacked_rows):
    X, y, task = stacked_rows
    model = mtlx.MultiTaskRegressor(alpha=0.01, fit_intercept=True).fit(X, y, task=task)
    mtlx.save(model, tmp_path / "m.npz")
    return tmp_path / "m.npz", model


@pytest.fixture
def classifier_file(tmp_path, stacked_rows):
    X, y, task = stacked_rows
    model = mtlx.MultiTaskClassifier(alpha=0.01).fit(X, np.where(y > 0, "up", "down"), task=task)
    mtlx.save(model, tmp_path / "c.npz")
    return tmp_path / "c.npz", model


def fitted_attributes(model) -> dict:
    names = ["coef_", "intercept_", "n_iter_", "objective_history_", "n_tasks_", "tasks_", "n_features_in_",
             "fit_layout_", "alpha_", "alphas_", "mse_path_", "feature_names_in_", "solver_"]
    return {name: getattr(model, name) for name in names if hasattr(model, name)}


def assert_same_model(loaded, model):
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    expected = fitted_attributes(model)
    assert fitted_attributes(loaded).keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(getattr(loaded, name), value, err_msg=name)
    if hasattr(model, "classes_"):
        assert [list(c) for c in np.atleast_2d(loaded.classes_)] == [list(c) for c in np.atleast_2d(model.classes_)]


# ------------------------------------------------------------------------------ round trips
def predictions(model, inputs, task) -> list:
    out = model.predict(inputs, task=task)
    return out if isinstance(out, list) else [out]


def test_every_layout_and_estimator_round_trips(tmp_path, rng):
    """check_model accepts what every fit makes; load gives back every fitted attribute exactly."""
    pd = pytest.importorskip("pandas")
    X, Y = rng.standard_normal((60, 3)), rng.standard_normal((60, 2))
    labels = np.where(Y > 0, "yes", "no")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    tasks = make_tasks(rng, [20, 30], 3)
    inputs = [x for x, _ in tasks]
    two, three = np.arange(60) % 2, np.arange(60) % 3
    cases = [  # (fitted model, predict's X, predict's task)
        (mtlx.MultiTaskRegressor(alpha=0.05).fit(X, Y[:, 0]), X, None),  # single
        (mtlx.MultiTaskRegressor(alpha=0.05, fit_intercept=False, task_weights=[1.0, 2.0]).fit(frame, Y), frame, None),
        (mtlx.MultiTaskRegressor(solver="fista").fit(X.astype(np.float32), Y.astype(np.float32)), X, None),
        (mtlx.MultiTaskRegressor(alpha=0.1, penalty="trace").fit(tasks), inputs, None),  # per-task lists
        (mtlx.MultiTaskRegressor().fit(mtlx.TaskData.from_tasks(tasks, task_ids=["north", "south"])), inputs, None),
        (mtlx.MultiTaskClassifier(alpha=0.01).fit(X, labels[:, 0]), X, None),  # one classes_ array
        (mtlx.MultiTaskClassifier(alpha=0.01).fit(X, labels), X, None),  # a list of them
        (mtlx.MultiTaskClassifier(alpha=0.01).fit(X, Y[:, 0] > 0, task=two), X, two),  # boolean labels
        (mtlx.MultiTaskRegressorCV(cv=3, alphas=4).fit(X, Y), X, None),
        (mtlx.MultiTaskRegressorCV(alphas=[0.5, 0.05], cv=4).fit(X, Y[:, 0], task=three), X, three),
    ]
    for k, (model, X_new, task) in enumerate(cases):
        check_model(model)
        mtlx.save(model, tmp_path / f"m{k}")  # .npz appended
        loaded = mtlx.load(tmp_path / f"m{k}.npz")
        assert_same_model(loaded, model)
        for got, expected in zip(predictions(loaded, X_new, task), predictions(model, X_new, task)):
            np.testing.assert_array_equal(got, expected)


def test_cv_search_results_survive(tmp_path, rng):
    """Regression: alpha_, alphas_ and mse_path_ of a MultiTaskRegressorCV were lost on save."""
    X, Y = rng.standard_normal((50, 4)), rng.standard_normal((50, 2))
    model = mtlx.MultiTaskRegressorCV(cv=3, alphas=5).fit(X, Y)
    mtlx.save(model, tmp_path / "cv.npz")
    loaded = mtlx.load(tmp_path / "cv.npz")
    assert loaded.alpha_ == model.alpha_ and loaded.alpha_ in loaded.alphas_
    np.testing.assert_array_equal(loaded.alphas_, model.alphas_)
    np.testing.assert_array_equal(loaded.mse_path_, model.mse_path_)
    assert loaded.mse_path_.shape == (5, 3)


def test_numpy_scalar_parameters_are_stored(tmp_path, stacked_rows):
    """Regression: np.int64/np.float32 parameters are not JSON types and came back as None."""
    X, y, task = stacked_rows
    model = mtlx.MultiTaskRegressor(alpha=np.float32(0.25), max_iter=np.int64(300), tol=np.float64(1e-7))
    model.fit(X, y, task=task)
    mtlx.save(model, tmp_path / "m.npz")
    params = mtlx.load(tmp_path / "m.npz").get_params()
    assert params["max_iter"] == 300 and isinstance(params["max_iter"], int)
    assert params["alpha"] == float(np.float32(0.25)) and params["tol"] == 1e-7


def test_a_parameter_json_cannot_hold_is_announced(tmp_path, rng):
    X, Y = rng.standard_normal((40, 3)), rng.standard_normal((40, 2))
    model = mtlx.MultiTaskRegressorCV(cv=KFold(3), alphas=3).fit(X, Y)
    with pytest.warns(UserWarning, match=r"parameter cv=KFold\(.*cannot be stored.*cv=None"):
        mtlx.save(model, tmp_path / "cv.npz")
    loaded = mtlx.load(tmp_path / "cv.npz")
    assert loaded.cv is None
    np.testing.assert_array_equal(loaded.mse_path_, model.mse_path_)


def test_callback_is_dropped_silently(tmp_path, stacked_rows):
    X, y, task = stacked_rows
    model = mtlx.MultiTaskRegressor(solver="fista", callback=lambda state: None, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        model.fit(X, y, task=task)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mtlx.save(model, tmp_path / "m.npz")
    assert mtlx.load(tmp_path / "m.npz").callback is None


def test_version_mismatch_warns_and_loads(regressor_file):
    path, model = regressor_file
    with_meta(path, mtlx_version="0.0.1")
    with pytest.warns(UserWarning, match=f"saved by mtlx 0.0.1, loading with {mtlx.__version__}"):
        loaded = mtlx.load(path)
    np.testing.assert_array_equal(loaded.coef_, model.coef_)


def test_save_refuses_a_model_load_would_refuse(tmp_path, regressor_file):
    _, model = regressor_file
    model.coef_[1, 2] = np.nan
    with pytest.raises(ValueError, match="cannot save this MultiTaskRegressor: coef_ contains NaN"):
        mtlx.save(model, tmp_path / "broken.npz")
    assert not (tmp_path / "broken.npz").exists()


def test_every_parameter_of_every_registered_estimator_has_a_check(rng):
    """Every parameter of a registered class is checked on load: a value no fit accepts is refused."""
    X = rng.standard_normal((30, 3))
    Y = np.column_stack([X @ rng.standard_normal(3), X @ rng.standard_normal(3)])
    for entry in _estimator_classes().values():
        fitted = entry.cls(**({"alphas": 3, "cv": 3} if "alphas" in inspect.signature(entry.cls).parameters else {}))
        fitted.fit(X, np.sign(Y) if entry.is_classifier else Y)
        check_model(fitted)
        for param in inspect.signature(entry.cls.__init__).parameters:
            if param == "self":
                continue
            broken = copy.copy(fitted)
            setattr(broken, param, object())
            with pytest.raises(ValueError, match=param):
                check_model(broken)


# ------------------------------------------------------------------------------ fitted state
def test_one_intercept_is_not_broadcast_to_every_task(regressor_file, stacked_rows):
    """Regression: a 1-element intercept_ loaded and shifted every task's predictions by it."""
    path, _ = regressor_file
    rewrite(path, intercept_=np.array([5.0]))
    with pytest.raises(ValueError, match=r"m\.npz.*intercept_ has shape \(1,\), expected \(n_tasks_,\) = \(3,\)"):
        mtlx.load(path)


def test_single_layout_needs_one_task(regressor_file):
    """Regression: fit_layout_ edited to 'single' made predict return one column of three tasks."""
    path, _ = regressor_file
    rewrite(path, fit_layout_="single")
    with pytest.raises(ValueError, match="fit_layout_ is 'single' but n_tasks_ is 3"):
        mtlx.load(path)


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: {"coef_": np.where(np.arange(a["coef_"].size).reshape(a["coef_"].shape) == 4, np.nan, a["coef_"])},
     "coef_ contains NaN or infinity"),
    (lambda a: {"intercept_": np.array([0.0, np.inf, 1.0])}, "intercept_ contains NaN or infinity"),
    (lambda a: {"n_tasks_": 2}, r"coef_ has shape \(3, 4\), expected \(n_tasks_, n_features_in_\) = \(2, 4\)"),
    (lambda a: {"n_features_in_": 5}, r"coef_ has shape \(3, 4\), expected .* = \(3, 5\)"),
    (lambda a: {"n_tasks_": 0}, "n_tasks_ must be an integer >= 1, got 0"),
    # (task_weights was checked against np.ones(n_tasks_) first: a MemoryError of 7 TiB)
    (lambda a: {"n_tasks_": 10**12}, r"coef_ has shape \(3, 4\), expected .* = \(1000000000000, 4\)"),
    (lambda a: {"n_tasks_": 3.0}, "n_tasks_ must be an integer >= 1, got 3.0"),
    (lambda a: {"n_iter_": -1}, "n_iter_ must be an integer >= 0, got -1"),
    (lambda a: {"n_iter_": np.array([4, 5])}, r"n_iter_ must be an integer >= 0, got array\(\[4, 5\]\)"),
    (lambda a: {"fit_layout_": "diagonal"}, "fit_layout_ must be one of"),
    (lambda a: {"fit_layout_": np.array(["single"])}, "fit_layout_ must be one of"),
    (lambda a: {"coef_": a["coef_"].astype(np.int64)}, "coef_ must be a float32 or float64 array, got a int64"),
    (lambda a: {"coef_": a["coef_"].astype(str)}, "coef_ must be a float32 or float64 array"),
    (lambda a: {"tasks_": np.array([5, 5, 25])}, "tasks_ holds a task id more than once"),
    (lambda a: {"tasks_": np.array([5, 15])}, r"tasks_ has shape \(2,\), expected \(n_tasks_,\) = \(3,\)"),
    (lambda a: {"tasks_": np.array([5.0, np.nan, 25.0])}, "tasks_ contains NaN"),
    (lambda a: {"objective_history_": np.ones((2, 2))}, "objective_history_ must be a non-empty 1-D float array"),
    (lambda a: {"objective_history_": np.array([], dtype=float)}, "objective_history_ must be a non-empty"),
    (lambda a: {"feature_names_in_": np.array(["a", "b"])}, "feature_names_in_ must hold n_features_in_ = 4 strings"),
    (lambda a: {"feature_names_in_": np.arange(4)}, "feature_names_in_ must hold strings"),
    (lambda a: {"coef_": None}, r"lacks the fitted arrays \['coef_'\]"),
    (lambda a: {"classes_0": np.array([0, 1])}, "unexpected array 'classes_0'"),
    (lambda a: {"solver_": "newton"}, r"solver_ must name the engine that ran, one of \['fista'"),
    (lambda a: {"solver_": np.array(["cd", "cd"])}, "solver_ must name the engine that ran"),
])
def test_a_fitted_array_unlike_a_fit_is_refused(regressor_file, change, message):
    path, _ = regressor_file
    rewrite(path, **change(members(path)))
    with pytest.raises(ValueError, match=message) as info:
        mtlx.load(path)
    assert str(path) in str(info.value)


def test_intercepts_of_a_fit_without_intercepts_are_zero(tmp_path, stacked_rows):
    X, y, task = stacked_rows
    mtlx.save(mtlx.MultiTaskRegressor(fit_intercept=False).fit(X, y, task=task), tmp_path / "m.npz")
    rewrite(tmp_path / "m.npz", intercept_=np.array([0.0, 1.5, 0.0]))
    with pytest.raises(ValueError, match="intercept_ is not zero but fit_intercept is False"):
        mtlx.load(tmp_path / "m.npz")


@pytest.mark.parametrize(("change", "message"), [
    # A third label makes task 1 multinomial: three rows of coef_, which the file does not have.
    ({"classes_1": np.array(["down", "up", "zzz"])}, r"coef_ has shape \(3, 4\), expected \(columns: one per binary "
                                                      r"task, K per task of K classes, n_features_in_\) = \(5, 4\)"),
    ({"classes_1": np.array(["up", "down"])}, r"classes_ of task 1 is \['up', 'down'\]: distinct labels in sorted"),
    ({"classes_0": np.array(["up", "up"])}, "classes_ of task 0 is .*distinct labels in sorted"),
    ({"classes_2": np.array([0.0, np.nan])}, "classes_ of task 2 contains NaN"),
    ({"classes_2": None}, r"stores 3 labels arrays \(classes_0 ...\), found \['classes_0', 'classes_1'\]"),
    ({"classes_3": np.array(["a", "b"])}, r"found \['classes_0', 'classes_1', 'classes_2', 'classes_3'\]"),
    ({"classes_01": np.array(["a", "b"])}, "unexpected array 'classes_01'"),
    ({"fit_layout_": "single"}, "fit_layout_ is 'single' but n_tasks_ is 3"),
])
def test_classifier_labels_unlike_a_fit_are_refused(classifier_file, change, message):
    path, _ = classifier_file
    rewrite(path, **change)
    with pytest.raises(ValueError, match=message):
        mtlx.load(path)


def test_cv_results_unlike_a_search_are_refused(tmp_path, rng):
    X, Y = rng.standard_normal((40, 3)), rng.standard_normal((40, 2))
    path = tmp_path / "cv.npz"
    mtlx.save(mtlx.MultiTaskRegressorCV(cv=3, alphas=4).fit(X, Y), path)
    saved = members(path)
    for change, message in [
        ({"alpha_": 123.0}, "alpha_ must be one of alphas_"),
        ({"alphas_": saved["alphas_"][:3]}, "alphas_ must hold the 4 positive alphas"),
        ({"mse_path_": saved["mse_path_"][:, :2]}, r"mse_path_ must hold finite scores of shape .* = \(4, 3\)"),
        ({"mse_path_": None}, r"lacks the fitted arrays \['mse_path_'\]"),
    ]:
        np.savez(path, **saved)
        rewrite(path, **change)
        with pytest.raises(ValueError, match=message):
            mtlx.load(path)
    np.savez(path, **saved)
    for params, message in [({"penalty": "l0"}, r"unknown penalty 'l0'"),
                            ({"cv": 1}, "cv must be an integer >= 2 or a cross-validation splitter"),
                            ({"eps": 0}, r"The 'eps' parameter must be a float in the range \(0.0, inf\)"),
                            ({"alphas": [0.1, -1]}, r"alphas\[1\] = -1.0: every alpha must be a finite number > 0")]:
        with_meta(path, params={**meta(path)["params"], **params})
        with pytest.raises(ValueError, match=message):
            mtlx.load(path)
        np.savez(path, **saved)


# ------------------------------------------------------------------------------ parameters
@pytest.mark.parametrize(("params", "message"), [
    ({"shrinkage": 2}, r"Invalid parameter 'shrinkage' for estimator MultiTaskRegressor\. Valid parameters are: \["),
    ({"alpha": -1.0}, r"invalid parameters: The 'alpha' parameter must be a float in the range \[0.0, inf\)"),
    ({"alpha": "big"}, r"invalid parameters: The 'alpha' parameter must be a float .* Got 'big' \(str\)"),
    ({"penalty": "l3"}, "invalid parameters: unknown penalty 'l3'"),
    ({"task_weights": [1.0, 2.0]}, r"invalid parameter task_weights=\[1.0, 2.0\]: task_weights has shape \(2,\)"),
    ({"task_weights": "median"}, "The 'task_weights' parameter must be 'mean', 'sum' or an array"),
    ({"task_weights": {"__ndarray__": [1, 2, 3], "dtype": "|O"}},
     r"parameter task_weights is stored as an array of dtype '\|O'; only numbers and booleans"),
    ({"task_weights": {"__ndarray__": [1, "x", 3], "dtype": "<f8"}}, "task_weights: its stored array does not hold"),
    ({"max_iter": 0}, r"The 'max_iter' parameter must be an int in the range \[1, inf\]\. Got 0"),
    ({"tol": -1}, r"The 'tol' parameter must be a float in the range \[0.0, inf\)"),
    ({"solver": "newton"}, r"The 'solver' parameter must be one of \('auto', 'fista', 'cd', 'factored', 'admm'\)"),
    ({"fit_intercept": "yes"}, "The 'fit_intercept' parameter must be a bool"),
    ({"n_threads": 0}, r"The 'n_threads' parameter must be an int in the range \[1, 65536\]"),
    ({"callback": "print"}, "The 'callback' parameter must be a callable or None"),
    ({"comm": 3}, "comm must be an mpi4py communicator"),
    ({"penalty": {"__penalty__": {"class": "Clustered", "params": {"k": 9, "eta": 0.1, "w": 1.0}}}},
     r"Clustered: k = 9 clusters but there are only 3 tasks"),
])
def test_parameters_pass_the_checks_of_fit(regressor_file, params, message):
    path, _ = regressor_file
    with_meta(path, params={**meta(path)["params"], **params})
    with pytest.raises(ValueError, match=message):
        mtlx.load(path)


def test_missing_parameters_take_their_default(regressor_file, stacked_rows):
    path, model = regressor_file
    stored = meta(path)["params"]
    del stored["l2"], stored["verbose"]
    with_meta(path, params=stored)
    loaded = mtlx.load(path)
    assert loaded.l2 == 0.0 and loaded.verbose == 0
    X, _, task = stacked_rows
    np.testing.assert_array_equal(loaded.predict(X, task=task), model.predict(X, task=task))


# ------------------------------------------------------------------------------ metadata
@pytest.mark.parametrize(("stored", "message"), [
    ("{not json", "'__meta__' is not valid JSON"),
    ("[" * 100_000, "'__meta__' is not valid JSON"),
    ("[1, 2]", "'__meta__' must be a JSON object, got list"),
    (json.dumps({"format": 1, "mtlx_version": "0.1.0", "estimator": "MultiTaskRegressor"}),
     r"lacks \['params'\]"),
    (json.dumps({"format": 1, "mtlx_version": "0.1.0", "estimator": "MultiTaskRegressor", "params": {}, "x": 1}),
     r"also holds \['x'\]"),
    (json.dumps({"format": "1", "mtlx_version": "0.1.0", "estimator": "MultiTaskRegressor", "params": {}}),
     "field 'format' must be a JSON int, got '1'"),
    (json.dumps({"format": 1, "mtlx_version": "0.1.0", "estimator": "MultiTaskRegressor", "params": []}),
     "field 'params' must be a JSON dict, got \\[\\]"),
    (json.dumps({"format": 1, "mtlx_version": 1, "estimator": "MultiTaskRegressor", "params": {}}),
     "field 'mtlx_version' must be a JSON str"),
    (json.dumps({"format": 2, "mtlx_version": "0.1.0", "estimator": "MultiTaskRegressor", "params": {}}),
     "model format 2; this mtlx reads format 1"),
    (json.dumps({"format": 1, "mtlx_version": "0.1.0", "estimator": "os.system", "params": {}}),
     "unknown estimator 'os.system'"),
    (np.array([b"{}"]), r"'__meta__' must be a JSON string, got a \|S2 array of shape \(1,\)"),
    (np.float64(3.0), "'__meta__' must be a JSON string, got a float64 array"),
], ids=["not-json", "deeply-nested", "list", "no-params", "extra-field", "format-str", "params-list", "version-int",
        "format-2", "unknown-estimator", "bytes-array", "float"])
def test_malformed_metadata_is_a_value_error_naming_the_file(regressor_file, stored, message):
    """Regression: these raised AttributeError, KeyError or json's own errors."""
    path, _ = regressor_file
    rewrite(path, __meta__=stored)
    with pytest.raises(ValueError, match=message) as info:
        mtlx.load(path)
    assert f"model file {str(path)!r}" in str(info.value)


# ------------------------------------------------------------------------------ not a model
@pytest.mark.parametrize("content", [b"", b"model = 3\n", bytes(range(256)) * 40, b"PK\x03\x04 not really a zip"],
                         ids=["empty", "text", "binary", "zip-magic"])
def test_a_junk_file_is_not_a_model_file(tmp_path, content):
    """Regression: numpy's 'allow_pickle' hint (about loading pickles) was the message."""
    (tmp_path / "junk.npz").write_bytes(content)
    with pytest.raises(ValueError, match=r"junk\.npz' is not an mtlx model file \(not a zip file") as info:
        mtlx.load(tmp_path / "junk.npz")
    assert "pickle" not in str(info.value)


def test_other_files_are_not_model_files(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"a\.npy' is not an mtlx model file \(a single \.npy array"):
        mtlx.load(tmp_path / "a.npy")
    np.savez(tmp_path / "objects.npz", __meta__=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="holds Python objects") as info:
        mtlx.load(tmp_path / "objects.npz")
    assert "allow_pickle" not in str(info.value)
    with pytest.raises(FileNotFoundError, match=r"no model file at .*\(it is a folder\)"):
        mtlx.load(tmp_path)


# ------------------------------------------------------------------------------ zip bombs
def write_zip(path, entries) -> None:
    """An .npz written member by member: (name, npy bytes or a callable writing them, compression)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, method in entries:
            info = zipfile.ZipInfo(f"{name}.npy")
            info.compress_type = method
            with zf.open(info, "w", force_zip64=True) as f:
                data(f) if callable(data) else f.write(data)


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npy_header(shape) -> bytes:
    """A valid .npy header of a float64 array of ``shape``, without its data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def peak_bytes_of(function) -> int:
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def assert_refused_cheaply(path, message):
    def attempt():
        with pytest.raises(ValueError, match=message):
            mtlx.load(path)

    assert peak_bytes_of(attempt) < 16 << 20


def test_a_compressed_bomb_is_refused_before_decompressing(regressor_file):
    """Regression: a few hundred KB of zip expanded to hundreds of MB in memory on load."""
    path, _ = regressor_file
    saved = members(path)
    def zeros(f):  # 256 MiB of float64 zeros
        f.write(npy_header((32, 1 << 20)))
        chunk = bytes(1 << 20)
        for _ in range(256):
            f.write(chunk)

    entries = [(name, npy_bytes(value), zipfile.ZIP_STORED) for name, value in saved.items() if name != "coef_"]
    write_zip(path, entries + [("coef_", zeros, zipfile.ZIP_DEFLATED)])
    assert path.stat().st_size < 2 << 20
    assert_refused_cheaply(path, r"is not an mtlx model file \(member 'coef_.npy' is compressed")


def test_members_larger_than_the_metadata_implies_are_refused(regressor_file):
    path, _ = regressor_file
    rewrite(path, coef_=np.zeros((3, 40_000)))  # n_tasks_ x n_features_in_ is 3 x 4
    assert_refused_cheaply(path, r"array 'coef_': it takes 960128 bytes, more than the 4192 its kind can take")
    rewrite(path, coef_=np.zeros((3, 4)), n_tasks_=np.zeros(100_000, dtype=np.int64))
    assert_refused_cheaply(path, r"array 'n_tasks_': it takes 800128 bytes, more than the 8192")


def test_a_header_promising_more_than_the_member_holds_is_refused(regressor_file):
    """A small member whose header claims 8 GB: refused before numpy allocates anything."""
    path, _ = regressor_file
    saved = members(path)
    lying = npy_header((1_000_000_000,)) + npy_bytes(np.zeros(3))[-24:]
    entries = [(name, npy_bytes(value), zipfile.ZIP_STORED) for name, value in saved.items() if name != "intercept_"]
    write_zip(path, entries + [("intercept_", lying, zipfile.ZIP_STORED)])
    assert_refused_cheaply(path, r"array 'intercept_': its header describes a float64 array of shape "
                                 r"\(1000000000,\) \(8000000000 bytes\) but 24 bytes of data follow it")


def test_unexpected_and_corrupt_members_are_refused(regressor_file):
    path, _ = regressor_file
    rewrite(path, payload=np.zeros(1_000_000))
    assert_refused_cheaply(path, "unexpected array 'payload': a MultiTaskRegressor file holds only")
    rewrite(path, payload=None)
    raw = bytearray(path.read_bytes())
    position = raw.index(npy_bytes(members(path)["coef_"])[-32:])  # inside coef_'s data
    raw[position] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"array 'coef_': it cannot be read \(Bad CRC-32"):
        mtlx.load(path)


def test_duplicate_members_are_refused(regressor_file):
    path, _ = regressor_file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate name
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("coef_.npy", npy_bytes(np.ones((3, 4))))
    with pytest.raises(ValueError, match=r"not an mtlx model file \(member 'coef_.npy' appears twice\)"):
        mtlx.load(path)


def test_deflate_is_refused_even_when_small(regressor_file):
    path, _ = regressor_file
    saved = members(path)
    write_zip(path, [(name, npy_bytes(v), zipfile.ZIP_DEFLATED) for name, v in saved.items()])
    with pytest.raises(ValueError, match=r"member '.*\.npy' is compressed \(zip method 8\); expected uncompressed"):
        mtlx.load(path)


def test_a_superposition_keeps_its_blocks(tmp_path, rng):
    """components_ (a Superpose penalty's blocks) survives save/load and the CV estimator's refit;
    blocks that do not sum to coef_ are refused. Both were dropped: the loaded model had no
    components_, and MultiTaskRegressorCV never had them."""
    X = rng.standard_normal((60, 5))
    Y = X @ rng.standard_normal((5, 3)) + 0.1 * rng.standard_normal((60, 3))
    pen = mtlx.penalties.Superpose(mtlx.penalties.L21(1.0), mtlx.penalties.L1(1.0))
    cv = mtlx.MultiTaskRegressorCV(penalty=pen, alphas=3, cv=3).fit(X, Y)
    base = mtlx.MultiTaskRegressor(penalty=pen, alpha=cv.alpha_).fit(X, Y)
    assert len(cv.components_) == 2
    for got, expected in zip(cv.components_, base.components_):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(sum(cv.components_), cv.coef_, rtol=1e-12, atol=1e-12)
    for model in (base, cv):
        path = tmp_path / f"{type(model).__name__}.npz"
        mtlx.save(model, path)
        loaded = mtlx.load(path)
        assert len(loaded.components_) == 2
        for got, expected in zip(loaded.components_, model.components_):
            np.testing.assert_array_equal(got, expected)
    rewrite(path, components_1=np.zeros_like(cv.components_[1]) + 1.0)
    with pytest.raises(ValueError, match="components_ do not sum to coef_"):
        mtlx.load(path)


def test_tuple_parameters_come_back_as_tuples(tmp_path):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((40, 4)), rng.standard_normal((40, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        model = mtlx.SharedTrunkRegressor(hidden=(5, 3), task_hidden=(2,), max_iter=3).fit(X, Y)
    mtlx.save(model, tmp_path / "trunk.npz")
    loaded = mtlx.load(tmp_path / "trunk.npz")
    assert loaded.hidden == (5, 3) and loaded.task_hidden == (2,) and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("device", ["cuda", "cuda:1", 0])
def test_a_model_fitted_on_a_gpu_loads_and_predicts_on_the_host(regressor_file, stacked_rows, device):
    """A CUDA build's model keeps its device parameter; loading it needs no GPU (it failed with
    "needs CUDA" on every CPU-only machine): the device is checked as written."""
    path, model = regressor_file
    params = meta(path)["params"]
    assert "device" in params
    with_meta(path, params={**params, "device": device})
    loaded = mtlx.load(path)
    assert loaded.device == device
    X, _, task = stacked_rows
    np.testing.assert_array_equal(loaded.predict(X, task=task), model.predict(X, task=task))
    with_meta(path, params={**params, "device": "tpu"})
    with pytest.raises(ValueError, match=r"invalid parameters: device must be None, 'cpu', 'cuda', 'cuda:N' or an "
                                         r"int, got 'tpu'"):
        mtlx.load(path)


def test_a_trunk_models_task_ids_of_the_wrong_shape_are_named(tmp_path, rng):
    X = rng.standard_normal((30, 3))
    model = mtlx.SharedTrunkRegressor(hidden=(3,), max_iter=3).fit(X, X[:, :2])
    mtlx.save(model, tmp_path / "t.npz")
    rewrite(tmp_path / "t.npz", tasks_=np.array(5))  # (a TypeError from len() of a 0-d array)
    with pytest.raises(ValueError, match=r"tasks_ must hold n_tasks_ = 2 task ids, got a int64 array of shape \(\)"):
        mtlx.load(tmp_path / "t.npz")


def test_array_parameters_come_back_as_arrays(tmp_path, rng):
    """A task_weights or alphas array came back as a list: get_params() of the loaded model differed."""
    X, Y = rng.standard_normal((40, 3)), rng.standard_normal((40, 2))
    models = [mtlx.MultiTaskRegressor(alpha=0.05, task_weights=np.array([1.0, 2.5])).fit(X, Y),
              mtlx.MultiTaskRegressorCV(alphas=np.array([0.5, 0.05], dtype=np.float32), cv=3).fit(X, Y)]
    for k, model in enumerate(models):
        mtlx.save(model, tmp_path / f"m{k}.npz")
        loaded = mtlx.load(tmp_path / f"m{k}.npz")
        for name, value in model.get_params().items():
            got = loaded.get_params()[name]
            if isinstance(value, np.ndarray):
                assert isinstance(got, np.ndarray) and got.dtype == value.dtype, name
                np.testing.assert_array_equal(got, value)
            else:
                assert got == value, name
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_the_engine_that_ran_survives_and_older_files_load_without_it(regressor_file, stacked_rows):
    """solver_ (which engine ran, "said" by the README) was dropped by save: the loaded model had none.
    A file written before it was stored still loads, without it."""
    path, model = regressor_file
    assert mtlx.load(path).solver_ == model.solver_ and model.solver_ in ("fista", "cd", "admm")
    rewrite(path, solver_=None)
    older = mtlx.load(path)
    assert not hasattr(older, "solver_")
    X, _, task = stacked_rows
    np.testing.assert_array_equal(older.predict(X, task=task), model.predict(X, task=task))
