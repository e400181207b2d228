"""The command line's promise: bad input ends in one line ``mtlx <command>: error: ...`` and exit status 1.

No argparse usage block (status 2), no traceback, no internal names or temporary file names, a file
named once; warnings print as one line; ``--help`` and ``--version`` still exit 0.
"""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import mtlx
from mtlx.cli import main
from mtlx.io import save_dataset

from conftest import make_tasks


@pytest.fixture
def data_path(rng, tmp_path):
    path = tmp_path / "data.npz"
    save_dataset(path, mtlx.TaskData.from_tasks(make_tasks(rng, [30, 20, 25], 4)))
    return path


@pytest.fixture
def one_dimensional_Y(tmp_path):
    """A hand-written shared-layout dataset whose Y is 1-D: one column per task is what the layout needs."""
    path = tmp_path / "flat_Y.npz"
    np.savez(path, X=np.arange(12.0).reshape(6, 2), Y=np.arange(6.0))
    return path


def only_line(text):
    """``text`` checked to be exactly one line; returned without its newline."""
    lines = text.splitlines()
    assert len(lines) == 1 and text.endswith("\n"), text
    return lines[0]


def run_cli(*args, prelude=""):
    """``python -m mtlx args`` in a fresh process, or ``main(args)`` after ``prelude`` when one is given."""
    if prelude:
        code = f"import sys\n{prelude}\nfrom mtlx.cli import main\nraise SystemExit(main(sys.argv[1:]))"
        command = [sys.executable, "-c", code, *map(str, args)]
    else:
        command = [sys.executable, "-m", "mtlx", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------------------ usage errors
#: (options after ``mtlx fit DATA``, the whole message after ``mtlx fit: error: ``)
FIT_USAGE_ERRORS = [
    (["--alpha", "abc"], "argument --alpha: expected a number, got 'abc'"),
    (["--alpha", "-1"], "argument --alpha: must be a finite number >= 0, got '-1'"),
    (["--alpha", "inf"], "argument --alpha: must be a finite number >= 0, got 'inf'"),
    (["--alpha", "nan"], "argument --alpha: must be a finite number >= 0, got 'nan'"),
    (["--alpha", "1e400"], "argument --alpha: must be a finite number >= 0, got '1e400'"),  # overflows to inf
    (["--l2", "inf"], "argument --l2: must be a finite number >= 0, got 'inf'"),
    (["--tol", "nan"], "argument --tol: must be a finite number >= 0, got 'nan'"),
    (["--max-iter", "0"], "argument --max-iter: must be an integer >= 1, got '0'"),
    (["--max-iter", "2.5"], "argument --max-iter: must be an integer >= 1, got '2.5'"),
    (["--threads", "0"], "argument --threads: must be an integer >= 1, got '0'"),
    (["--checkpoint-every", "0"], "argument --checkpoint-every: must be an integer >= 1, got '0'"),
    (["--task-weights", "1,x,1"],
     "argument --task-weights: expected mean, sum or comma-separated numbers, got '1,x,1'"),
    (["--task-weights", "1,inf,1"], "argument --task-weights: task weights must be finite numbers >= 0, got '1,inf,1'"),
    (["--task-weights=-1,1,1"], "argument --task-weights: task weights must be finite numbers >= 0, got '-1,1,1'"),
    (["--task-weights", "-1,1,1"],
     "argument --task-weights: expected one argument (write a value that starts with '-' as --task-weights=VALUE)"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("options, message", FIT_USAGE_ERRORS, ids=[" ".join(o) for o, _ in FIT_USAGE_ERRORS])
def test_bad_fit_options_are_one_line_and_status_1(options, message, data_path, tmp_path, capsys):
    out = tmp_path / "model.npz"
    assert main(["fit", str(data_path), *options, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert only_line(captured.err) == f"mtlx fit: error: {message}"
    assert captured.out == ""
    assert not out.exists()  # refused before fitting: --alpha inf used to write a model with F = nan


@pytest.mark.parametrize("argv, message", [
    (["demo", "--splits", "0"], "mtlx demo: error: argument --splits: must be an integer from 1 to 10, got '0'"),
    (["demo", "--splits", "11"], "mtlx demo: error: argument --splits: must be an integer from 1 to 10, got '11'"),
    (["demo", "--splits", "three"],
     "mtlx demo: error: argument --splits: must be an integer from 1 to 10, got 'three'"),
    (["fit"], "mtlx fit: error: the following arguments are required: DATA"),
    (["predict", "model.npz"], "mtlx predict: error: the following arguments are required: DATA"),
    (["info", "a.npz", "b.npz"], "mtlx info: error: unrecognized arguments: b.npz"),
    ([], "mtlx: error: the following arguments are required: COMMAND"),
])
def test_other_usage_errors_are_one_line_and_status_1(argv, message, capsys):
    assert main(argv) == 1
    assert only_line(capsys.readouterr().err) == message


@pytest.mark.parametrize("argv, start", [
    (["fit", "data.npz", "--loss", "hinge"], "mtlx fit: error: argument --loss: invalid choice: 'hinge'"),
    (["frobnicate"], "mtlx: error: argument COMMAND: invalid choice: 'frobnicate'"),
])
def test_invalid_choices_are_one_line_and_status_1(argv, start, capsys):
    assert main(argv) == 1
    line = only_line(capsys.readouterr().err)  # the rest of the line is argparse's list of choices
    assert line.startswith(start)


def test_version_still_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"mtlx {mtlx.__version__}\n"


def test_usage_error_in_a_real_process(data_path, tmp_path):
    out = tmp_path / "model.npz"
    done = run_cli("fit", data_path, "--alpha", "inf", "--out", out)
    assert done.returncode == 1
    assert done.stderr == "mtlx fit: error: argument --alpha: must be a finite number >= 0, got 'inf'\n"
    assert done.stdout == ""
    assert not out.exists()


# ------------------------------------------------------------------------------ errors while running
@pytest.mark.parametrize("command", ["fit", "info"])
def test_one_dimensional_Y_is_one_line_naming_the_dataset_once(command, one_dimensional_Y, tmp_path, capsys):
    argv = [command, str(one_dimensional_Y)] + (["--out", str(tmp_path / "m.npz")] if command == "fit" else [])
    assert main(argv) == 1
    line = only_line(capsys.readouterr().err)
    assert line.startswith(f"mtlx {command}: error: ")
    assert line.count(repr(str(one_dimensional_Y))) == 1


def test_one_dimensional_Y_in_a_real_process(one_dimensional_Y, tmp_path):
    done = run_cli("fit", one_dimensional_Y, "--out", tmp_path / "m.npz")
    assert done.returncode == 1
    assert only_line(done.stderr).startswith("mtlx fit: error: ")
    assert "Traceback" not in done.stderr and not (tmp_path / "m.npz").exists()


def test_a_message_names_its_dataset_once(tmp_path, capsys):
    # mtlx.io has wrapped "dataset 'x': missing array 'Y'" in "dataset 'x': " a second time; the line
    # names the dataset once whichever way the library words it.
    path = tmp_path / "no_targets.npz"
    np.savez(path, X=np.ones((4, 2)))
    assert main(["fit", str(path), "--out", str(tmp_path / "m.npz")]) == 1
    line = only_line(capsys.readouterr().err)
    assert line.count(repr(str(path))) == 1
    assert line.startswith(f"mtlx fit: error: dataset {str(path)!r}: missing array 'Y'")


def test_info_on_an_empty_dataset(tmp_path, capsys):
    # min() of no rows per task used to end in numpy's "zero-size array to reduction operation ...".
    path = tmp_path / "empty.npz"
    np.savez(path, X=np.zeros((0, 2)), y=np.zeros(0), task=np.zeros(0, dtype=np.int64))
    assert main(["info", str(path)]) == 0
    captured = capsys.readouterr()
    assert "  0 tasks, 2 features, 0 rows\n" in captured.out and "rows per task" not in captured.out
    assert captured.err == ""


def test_an_unreadable_model_file_is_named(data_path, tmp_path, capsys):
    model = tmp_path / "model.npz"
    model.write_bytes(b"not a model\n")
    assert main(["predict", str(model), str(data_path), "--out", str(tmp_path / "p.npy")]) == 1
    line = only_line(capsys.readouterr().err)  # before: numpy's message alone, no file named
    assert line.startswith("mtlx predict: error: ")
    assert line.count(repr(str(model))) == 1


def test_a_model_file_with_malformed_metadata_is_one_line(data_path, tmp_path, capsys):
    model = tmp_path / "model.npz"
    assert main(["fit", str(data_path), "--out", str(model)]) == 0
    with np.load(model) as z:
        arrays = dict(z)
    meta = json.loads(str(arrays["__meta__"]))
    del meta["estimator"]  # mtlx.load looks it up: a KeyError, a traceback before
    arrays["__meta__"] = np.asarray(json.dumps(meta))
    np.savez(model, **arrays)
    capsys.readouterr()
    assert main(["predict", str(model), str(data_path), "--out", str(tmp_path / "p.npy")]) == 1
    line = only_line(capsys.readouterr().err)
    assert line.startswith("mtlx predict: error: ") and "'estimator'" in line
    assert line.count(repr(str(model))) == 1


def fail_if_data_is_read(monkeypatch):
    def read(*args, **kwargs):
        raise AssertionError("the dataset was read before the output was checked")

    monkeypatch.setattr("mtlx.io.load_dataset", read)


def test_fit_checks_its_output_folder_before_fitting(data_path, tmp_path, capsys, monkeypatch):
    fail_if_data_is_read(monkeypatch)
    out = tmp_path / "missing" / "model.npz"
    assert main(["fit", str(data_path), "--out", str(out)]) == 1
    # It used to fit, then fail on the temporary file: "... No such file or directory: '.model.npz.123.tmp'".
    assert only_line(capsys.readouterr().err) == \
        f"mtlx fit: error: --out {str(out)!r}: folder {str(out.parent)!r} does not exist"


def test_fit_refuses_a_folder_as_output(data_path, tmp_path, capsys, monkeypatch):
    fail_if_data_is_read(monkeypatch)
    out = tmp_path / "model.npz"
    out.mkdir()
    assert main(["fit", str(data_path), "--out", str(out)]) == 1
    assert only_line(capsys.readouterr().err) == (f"mtlx fit: error: --out {str(out)!r} is a folder; give a file name "
                                                  f"(such as {str(out / 'model.npz')!r})")


def test_fit_refuses_a_file_as_checkpoint_folder(data_path, tmp_path, capsys, monkeypatch):
    fail_if_data_is_read(monkeypatch)
    assert main(["fit", str(data_path), "--checkpoint", str(data_path), "--out", str(tmp_path / "m.npz")]) == 1
    assert only_line(capsys.readouterr().err) == \
        f"mtlx fit: error: --checkpoint {str(data_path)!r} is a file; give a folder"


def test_fit_and_predict_report_the_files_they_really_write(data_path, tmp_path, capsys):
    # mtlx.save appends .npz and np.save .npy to a name without them; the message said the bare name.
    assert main(["fit", str(data_path), "--out", str(tmp_path / "m")]) == 0
    assert capsys.readouterr().out.endswith(f"model written to {tmp_path / 'm.npz'}\n")
    model = mtlx.load(tmp_path / "m.npz")
    assert main(["predict", str(tmp_path / "m.npz"), str(data_path), "--out", str(tmp_path / "p")]) == 0
    assert capsys.readouterr().out == f"predictions of shape (75,) written to {tmp_path / 'p.npy'}\n"
    with np.load(data_path) as z:
        expected = model.predict(z["X"], task=z["task"])
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected)


def test_predict_checks_its_output_folder_first(data_path, tmp_path, capsys):
    out = tmp_path / "missing" / "p.npy"
    assert main(["predict", str(tmp_path / "no_model.npz"), str(data_path), "--out", str(out)]) == 1
    assert only_line(capsys.readouterr().err) == \
        f"mtlx predict: error: --out {str(out)!r}: folder {str(out.parent)!r} does not exist"


# ---------------------------------------------------------------------------------------- demo --plot
MATPLOTLIB_MISSING = 'mtlx demo: error: --plot needs matplotlib, which is not installed: pip install "mtlx[plot]"'


@pytest.fixture
def demo_must_not_run(monkeypatch):
    def run(*args, **kwargs):
        raise AssertionError("the demo ran before --plot was checked")

    monkeypatch.setattr("mtlx.demo.run", run)


def test_demo_plot_without_matplotlib_fails_up_front(tmp_path, capsys, monkeypatch, demo_must_not_run):
    # None in sys.modules makes an import fail; the submodule too, since an imported one would be reused.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backend_bases", None)
    assert main(["demo", "--splits", "1", "--plot", str(tmp_path / "school.png")]) == 1
    assert only_line(capsys.readouterr().err) == MATPLOTLIB_MISSING


def test_demo_plot_without_matplotlib_in_a_real_process(tmp_path):
    png = tmp_path / "school.png"
    done = run_cli("demo", "--splits", "1", "--no-progress", "--plot", png,
                   prelude="sys.modules['matplotlib'] = None")
    assert done.returncode == 1
    assert done.stderr == MATPLOTLIB_MISSING + "\n"
    assert done.stdout == ""  # not a line of the benchmark's table
    assert not png.exists()


def test_demo_plot_checks_folder_and_format_up_front(tmp_path, capsys, demo_must_not_run):
    pytest.importorskip("matplotlib")
    png = tmp_path / "missing" / "school.png"
    assert main(["demo", "--plot", str(png)]) == 1
    assert only_line(capsys.readouterr().err) == \
        f"mtlx demo: error: --plot {str(png)!r}: folder {str(png.parent)!r} does not exist"
    figure = tmp_path / "school.xyz"
    assert main(["demo", "--plot", str(figure)]) == 1
    line = only_line(capsys.readouterr().err)
    assert line.startswith(f"mtlx demo: error: --plot {str(figure)!r}: matplotlib cannot write .xyz files (it writes ")
    assert "png" in line


# ------------------------------------------------------------------------------------------- warnings
FIT_UNTIL_WARNING = ["--max-iter", "1", "--tol", "1e-14"]


def test_a_warning_is_one_line_and_formatting_is_restored(data_path, tmp_path, monkeypatch):
    # How logging.captureWarnings shows a warning: through warnings.formatwarning (pytest records
    # warnings before they are formatted, so this stands in for the terminal).
    shown = []
    monkeypatch.setattr(warnings, "showwarning",
                        lambda message, category, filename, lineno, file=None, line=None:
                        shown.append(warnings.formatwarning(message, category, filename, lineno, line)))
    format_before = warnings.formatwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["fit", str(data_path), *FIT_UNTIL_WARNING, "--out", str(tmp_path / "m.npz")]) == 0
    assert warnings.formatwarning is format_before
    assert len(shown) == 1
    line = only_line(shown[0])  # no Python source line after it
    assert line.startswith("mtlx fit: warning: ") and "did not converge" in line


def test_a_caller_still_records_warnings(data_path, tmp_path):
    with pytest.warns(mtlx.ConvergenceWarning, match="did not converge"):
        assert main(["fit", str(data_path), *FIT_UNTIL_WARNING, "--out", str(tmp_path / "m.npz")]) == 0


def test_a_warning_in_a_real_process(data_path, tmp_path):
    done = run_cli("fit", data_path, *FIT_UNTIL_WARNING, "--out", tmp_path / "m.npz")
    assert done.returncode == 0
    line = only_line(done.stderr)  # no Python source line after it
    assert line.startswith("mtlx fit: warning: ") and "did not converge" in line
    assert f"model written to {tmp_path / 'm.npz'}" in done.stdout


def test_a_warning_made_an_error_is_one_line(data_path, tmp_path):
    done = run_cli("fit", data_path, *FIT_UNTIL_WARNING, "--out", tmp_path / "m.npz",
                   prelude="import warnings; warnings.simplefilter('error')")
    assert done.returncode == 1
    line = only_line(done.stderr)
    assert line.startswith("mtlx fit: error: ") and "did not converge" in line


@pytest.mark.parametrize("command", ["fit", "predict"])
@pytest.mark.parametrize("out", ["results/", "results", ".", "{tmp}/"])
def test_out_naming_a_folder_is_refused(command, out, data_path, tmp_path, capsys, monkeypatch):
    """--out a folder wrote results.npz beside it (fit), a hidden results/.npy in it (predict), or
    failed on '.' with "PosixPath('.') has an empty name"; a file in the folder is written there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    assert main(["fit", str(data_path), "--out", "m"]) == 0
    out = out.format(tmp=tmp_path)
    argv = ["fit", str(data_path), "--out", out] if command == "fit" else ["predict", "m.npz", str(data_path),
                                                                          "--out", out]
    capsys.readouterr()
    assert main(argv) == 1
    example = "model.npz" if command == "fit" else "predictions.npy"
    assert f"--out {out!r} is a folder; give a file name (such as " in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", "m.npz", "results"]
    assert not any((tmp_path / "results").iterdir())
    name = "results/" + example.split(".")[0]
    argv[argv.index(out)] = name
    assert main(argv) == 0 and (tmp_path / "results" / example).is_file()


def test_sample_weight_from_an_npz_archive_is_named(data_path, tmp_path, capsys):
    np.savez(tmp_path / "w.npz", w=np.ones(75))
    assert main(["fit", str(data_path), "--sample-weight", str(tmp_path / "w.npz"), "--out", str(tmp_path / "m")]) == 1
    assert "--sample-weight needs a .npy file of one weight per row (np.save), got an .npz archive of arrays ['w']" \
        in capsys.readouterr().err


def test_python_m_mtlx_demo_is_the_demo_command():
    """``python -m mtlx.demo --help`` ran the module without a main block: nothing, exit 0."""
    done = subprocess.run([sys.executable, "-m", "mtlx.demo", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: mtlx demo")
    bad = subprocess.run([sys.executable, "-m", "mtlx.demo", "--splits", "0"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1 and "mtlx demo: error: argument --splits" in bad.stderr and bad.stdout == ""
