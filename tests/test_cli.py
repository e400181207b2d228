"""The mtlx command line: fit / predict / info round trips against the estimators, errors, help."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mtlx
from mtlx.cli import main
from mtlx.io import save_dataset

from conftest import make_tasks


@pytest.fixture
def stacked_file(rng, tmp_path):
    tasks = make_tasks(rng, [40, 25, 60], 5)
    path = tmp_path / "data.npz"
    save_dataset(path, mtlx.TaskData.from_tasks(tasks, task_ids=[3, 8, 11]))
    return path, tasks


def test_fit_predict_round_trip_matches_estimator(stacked_file, tmp_path, capsys):
    path, tasks = stacked_file
    model_path, pred_path = tmp_path / "m.npz", tmp_path / "p.npy"
    assert main(["fit", str(path), "--penalty", "trace", "--alpha", "0.3", "--intercept", "--task-weights", "sum",
                 "--tol", "1e-10", "--out", str(model_path)]) == 0
    assert "model written to" in capsys.readouterr().out
    assert main(["predict", str(model_path), str(path), "--out", str(pred_path)]) == 0
    direct = mtlx.MultiTaskRegressor(penalty="trace", alpha=0.3, fit_intercept=True, task_weights="sum",
                                     tol=1e-10).fit(tasks)
    expected = np.concatenate([direct.predict([x for x, _ in tasks])[t] for t in range(3)])
    np.testing.assert_allclose(np.load(pred_path), expected, rtol=1e-12, atol=1e-12)
    loaded = mtlx.load(model_path)
    np.testing.assert_array_equal(loaded.tasks_, [3, 8, 11])


def test_fit_logistic_on_a_folder_and_info(rng, tmp_path, capsys):
    X = rng.standard_normal((120, 4))
    Y = (X[:, :2] + 0.3 * rng.standard_normal((120, 2)) > 0).astype(np.float64) * 2 - 1
    save_dataset(tmp_path / "folder", mtlx.TaskData.from_shared(X, Y))
    assert main(["info", str(tmp_path / "folder")]) == 0
    out = capsys.readouterr().out
    assert "shared layout" in out and "2 tasks, 4 features, 120 rows" in out and "labels [-1.0, 1.0]" in out
    assert main(["fit", str(tmp_path / "folder"), "--loss", "logistic", "--alpha", "0.01",
                 "--out", str(tmp_path / "c.npz")]) == 0
    assert main(["predict", str(tmp_path / "c.npz"), str(tmp_path / "folder"), "--out", str(tmp_path / "p.npy")]) == 0
    direct = mtlx.MultiTaskClassifier(alpha=0.01, fit_intercept=False).fit(X, Y)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), direct.predict(X))


def test_errors_exit_nonzero_with_a_clear_message(stacked_file, tmp_path, capsys):
    path, _ = stacked_file
    assert main(["fit", str(tmp_path / "missing.npz")]) == 1
    assert "does not exist" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", X=np.zeros((4, 2)), task=np.zeros(4))
    assert main(["fit", str(tmp_path / "bad.npz")]) == 1
    assert "missing array 'y'" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nomodel.npz"), str(path)]) == 1
    assert "no model file" in capsys.readouterr().err
    assert main(["fit", str(path), "--alpha", "-1"]) == 1
    assert capsys.readouterr().err == "mtlx fit: error: argument --alpha: must be a finite number >= 0, got '-1'\n"


@pytest.mark.parametrize("command", ["fit", "predict", "info", "demo"])
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"mtlx {command}" in out


def test_python_dash_m_entry_point(stacked_file):
    path, _ = stacked_file
    done = subprocess.run([sys.executable, "-m", "mtlx", "info", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3 tasks, 5 features, 125 rows" in done.stdout


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("mtlx", path=str(Path(sys.executable).parent)) or shutil.which("mtlx")
    if exe is None:
        pytest.skip("the mtlx console script is not on PATH (package not installed with pip)")
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"mtlx {mtlx.__version__}"


def test_fit_takes_a_formulation_spec_and_string_labels(rng, tmp_path, capsys):
    X = rng.standard_normal((90, 4))
    task = np.repeat([3, 5, 7], 30)
    labels = np.where(X[:, 0] + 0.3 * rng.standard_normal(90) > 0, "yes", "no")
    path = tmp_path / "labels.npz"
    save_dataset(path, X, labels, task=task)
    spec = "Superpose(L21(1), L21Columns(2))"
    assert main(["fit", str(path), "--loss", "logistic", "--penalty", spec, "--alpha", "0.05", "--intercept",
                 "--tol", "1e-10", "--out", str(tmp_path / "m.npz")]) == 0
    model = mtlx.load(tmp_path / "m.npz")
    direct = mtlx.MultiTaskClassifier(penalty=mtlx.penalties.parse(spec), alpha=0.05, tol=1e-10).fit(X, labels,
                                                                                                       task=task)
    np.testing.assert_allclose(model.coef_, direct.coef_, atol=1e-9)
    assert model.penalty == direct.penalty and [list(c) for c in model.classes_] == [["no", "yes"]] * 3
    assert main(["fit", str(path), "--penalty", "L21 + Trace", "--out", str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no closed form" in err[0] and err[0].startswith("mtlx fit: error:")
    assert main(["fit", str(path), "--out", str(tmp_path / "x.npz")]) == 1  # labels need the logistic loss
    assert "holds labels, not numbers" in capsys.readouterr().err


def test_predict_on_a_shared_x_follows_the_datasets_task_ids(rng, tmp_path, capsys):
    """The columns of a shared-X prediction are the dataset's tasks in its order (they came in the
    model's order whatever the dataset said: 31-64 off per column on a dataset of reordered ids),
    and an id the model does not know is an error."""
    X = rng.standard_normal((50, 4))
    Y = X @ rng.standard_normal((4, 3))
    save_dataset(tmp_path / "fit.npz", X, Y, task_ids=["z", "a", "m"])
    assert main(["fit", str(tmp_path / "fit.npz"), "--alpha", "1e-6", "--tol", "1e-10",
                 "--out", str(tmp_path / "m.npz")]) == 0
    model = mtlx.load(tmp_path / "m.npz")
    for ids, cols in ((["z", "a", "m"], [0, 1, 2]), (["a", "m", "z"], [1, 2, 0]), (["m"], [2])):
        save_dataset(tmp_path / "d.npz", X, Y[:, cols], task_ids=ids)
        assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "d.npz"), "--out", str(tmp_path / "p")]) == 0
        np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), model.predict(X)[:, cols])
        np.testing.assert_allclose(np.load(tmp_path / "p.npy"), Y[:, cols], atol=1e-3)
    capsys.readouterr()
    save_dataset(tmp_path / "d.npz", X, Y[:, :2], task_ids=["q", "a"])
    assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "d.npz"), "--out", str(tmp_path / "p")]) == 1
    assert "task id 'q' was not seen in fit (the model knows 3 tasks: z, a, m)" in capsys.readouterr().err


def test_info_leaves_missing_targets_out(rng, tmp_path, capsys):
    X = rng.standard_normal((50, 4))
    Y = X @ rng.standard_normal((4, 3))
    Y[::5, 1] = np.nan
    for name, data, expected in (
            ("real", (X, Y), f"targets Y: range [{np.nanmin(Y):g}, {np.nanmax(Y):g}] (10 missing)"),
            ("binary", (X, np.where(np.isnan(Y), np.nan, Y > 0)), "targets Y: labels [0.0, 1.0] (10 missing)"),
            ("strings", (X, np.array(list("abcab") * 10)), "targets y: labels ['a', 'b', 'c']")):
        kw = {"task": np.repeat([0, 1], 25)} if name == "strings" else {}
        save_dataset(tmp_path / f"{name}.npz", *data, **kw)
        assert main(["info", str(tmp_path / f"{name}.npz")]) == 0
        assert expected in capsys.readouterr().out


def test_integer_labels_keep_their_type(rng, tmp_path, capsys):
    """Labels 0/1 (and 1/2/3) came back from mtlx fit as float classes_ and predictions 0.0/1.0: the
    dataset reached the classifier as a TaskData of numbers. The CLI now fits what the estimator fits."""
    X = rng.standard_normal((150, 4))
    y = np.where(X[:, 0] + 0.3 * rng.standard_normal(150) > 0, 1, 0)
    three = np.digitize(X[:, 1], [-0.5, 0.5]) + 1
    task = np.repeat([5, 9], 75)
    cases = {"stacked": (y, dict(task=task)), "shared": (np.column_stack([y, three]), {})}
    for name, (targets, layout) in cases.items():
        save_dataset(tmp_path / f"{name}.npz", X, targets, **layout)
        assert main(["fit", str(tmp_path / f"{name}.npz"), "--loss", "logistic", "--alpha", "0.01",
                     "--out", str(tmp_path / f"{name}_model.npz")]) == 0
        model = mtlx.load(tmp_path / f"{name}_model.npz")
        direct = mtlx.MultiTaskClassifier(alpha=0.01, fit_intercept=False).fit(X, targets, **layout)
        for got, expected in zip(model.classes_, direct.classes_):
            assert got.dtype.kind == "i" and np.array_equal(got, expected)
        assert main(["predict", str(tmp_path / f"{name}_model.npz"), str(tmp_path / f"{name}.npz"),
                     "--out", str(tmp_path / f"{name}_p.npy")]) == 0
        predicted = np.load(tmp_path / f"{name}_p.npy")
        assert predicted.dtype.kind == "i"
        np.testing.assert_array_equal(predicted, direct.predict(X, **layout))
