"""Every code block of the README runs as written and does what the text around it claims."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```(python|bash)\n(.*?)```", README.read_text(), re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
BASH = [code for lang, code in BLOCKS if lang == "bash"]


def test_every_python_block_runs_in_order(tmp_path, monkeypatch):
    # The blocks build on one another (the formulations block uses the quick start's X, Y).
    monkeypatch.chdir(tmp_path)  # they write model.npz and a checkpoint folder
    assert len(PYTHON) == 10
    env = {}
    for code in PYTHON:
        exec(compile(code, str(README), "exec"), env)
        if "huber" in env and "losses_env" not in env:
            env["losses_env"] = dict(env)  # before later blocks rebind X and Y
        if "partial" in env and "weights_env" not in env:
            env["weights_env"] = dict(env)
    import mtlx

    # Shared trunk: the network fits the shared nonlinear signal; mixed heads; probabilities.
    assert env["net"].score(env["Xn"], env["Yn"]) > 0.95 and env["net"].transform(env["Xn"]).shape == (400, 32)
    assert [A.shape for A, _ in env["fit"].heads] == [(8, 1), (8, 3), (8, 1)]
    assert env["fit"].history["task_loss"][-1][0] < env["fit"].history["task_loss"][0][0]
    for p in env["trunk_clf"].predict_proba(env["Xn"][:2]):
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    margins = env["trunk_clf"].decision_function(env["Xn"][:2])
    assert margins.shape == (2, 4)
    assert np.array_equal(env["trunk_clf"].predict(env["Xn"][:2]), margins > 0)  # the labels: False, True
    # Quick start: the layouts, the per-task labels, the saved model.
    assert [list(c) for c in env["clf"].classes_] == [["no", "yes"]] * 3
    loaded = mtlx.load(tmp_path / "model.npz")
    # Formulations: the robust decomposition's parts sum to its coefficients.
    robust = env["robust"]
    np.testing.assert_allclose(env["low_rank"] + env["outliers"], robust.coef_, atol=1e-12)
    assert env["sgl"].penalty == "L1(0.5) + L21(1)" and env["cv"].mse_path_.shape == (10, 3)
    assert loaded.fit_layout_ == "stacked"
    # Other losses: Huber shrugs off the outliers that move least squares; Poisson predicts means.
    at = env["losses_env"]
    X, Y = at["X"], at["Y"]
    huber_err = np.abs(at["huber"].predict(X) - Y)[5:].mean()
    squared_err = np.abs(mtlx.MultiTaskRegressor(alpha=0.01).fit(X, at["Y_out"]).predict(X) - Y)[5:].mean()
    assert huber_err < 0.5 * squared_err
    poisson = at["poisson"]
    np.testing.assert_allclose(poisson.predict(X[:2]), np.exp(X[:2] @ poisson.coef_.T + poisson.intercept_),
                               rtol=1e-12)
    assert not hasattr(at["svm"], "predict_proba") and at["svm"].score(X, Y > 0) > 0.8
    multi = at["multi"]
    assert multi.coef_.shape == (5, 20) and [len(c) for c in multi.classes_] == [4, 2]
    np.testing.assert_allclose(multi.predict_proba(X)[0].sum(axis=1), 1.0, rtol=1e-13)
    # Sample weights and missing labels: the weighted fit is the repeated-rows fit for integer
    # weights, and the partial fit uses the labelled entries only.
    weights_env = env["weights_env"]
    missing = np.isnan(weights_env["Y_missing"])
    pairs = [(X[~missing[:, t]], Y[~missing[:, t], t]) for t in range(Y.shape[1])]
    separate = mtlx.MultiTaskRegressor(penalty="l21", alpha=0.05).fit(pairs)
    np.testing.assert_allclose(weights_env["partial"].coef_, separate.coef_, atol=1e-6)
    assert weights_env["weighted"].coef_.shape == (4, 20)
    # The sparse example: the newsgroups fit is accurate and keeps X sparse.
    import scipy.sparse as sp

    assert sp.issparse(env["news"].X) and env["text"].score(env["news"].X, env["news"].y, task=env["news"].task) > 0.9
    # Low-level API and building blocks: W = 0 with mean weights gives -X_t^T y_t / m_t.
    assert env["res"].W.shape[0] == 10  # the MPI block's result, the last one bound
    gW, tasks = env["gW"], env["tasks"]
    # The GPU block (on the host here, unless a device is there): the 5 active features of 30 found.
    assert env["gpu_res"].converged and env["gpu_res"].W.shape == (30, 8)
    np.testing.assert_array_equal(np.flatnonzero(np.abs(env["gpu_res"].W).sum(axis=1) > 1e-8), np.arange(5))
    X_first, y_first = tasks[0]
    np.testing.assert_allclose(gW[:, 0], -X_first.T @ y_first / len(y_first), rtol=1e-12)
    assert (tmp_path / "ckpt").is_dir()  # the checkpoint folder (it converged before the first checkpoint)


def test_the_shell_block_runs_in_an_empty_folder(tmp_path):
    (block,) = BASH
    env = dict(os.environ, MTLX_NUM_THREADS="1")
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    for line in block.strip().splitlines():
        words = shlex.split(line)
        words[0] = sys.executable if words[0] == "python" else words[0]
        if words[0] == "mtlx":
            words[:1] = [sys.executable, "-m", "mtlx"]
        done = subprocess.run(words, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert np.load(tmp_path / "predictions.npy").shape == (15362,)
    assert (tmp_path / "school.png").exists() and (tmp_path / "model.npz").exists()


def test_the_mpi_block_runs_under_mpiexec(tmp_path):
    import shutil

    pytest.importorskip("mpi4py")
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec (pip install mpich)")
    script = tmp_path / "fit.py"
    script.write_text(PYTHON[-1])
    env = dict(os.environ, MTLX_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    for key in [k for k in env if k.startswith(("PMI_", "OMPI_", "HYDRA_"))]:
        del env[key]
    done = subprocess.run([mpiexec, "-n", "2", sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.strip() == "(10, 12) True"


def test_demo_runs_on_one_split_and_writes_its_figure(tmp_path):
    import matplotlib.image

    from mtlx.demo import METHODS, SCHOOL_TRUNK, SURVEY_METHODS, SURVEY_TRUNK, run

    lines = []
    results = run(1, print_fn=lines.append, plot=str(tmp_path / "school.png"), progress=False)
    # school: title, header, a row per method and the trunk's, the figure line; survey: title, header, rows
    assert len(lines) == 2 + len(METHODS) + 1 + 1 + 2 + len(SURVEY_METHODS) + 1
    for method in METHODS + (SCHOOL_TRUNK,):
        entry = results[method.label]
        assert 0.2 < entry["explained_variance"][0] < 0.5, method.label  # explained variance on school
        assert entry["chosen"][0] in method.grid
    survey = results["computer survey"]
    for method in SURVEY_METHODS + (SURVEY_TRUNK,):
        entry = survey[method.label]
        assert entry["chosen"][0] in method.grid
        # RMSE on held-out ratings (0-10): the pooled model ~2.4, the coupled ones ~1.9 (Argyriou et al. 2008)
        assert 1.6 < entry["rmse"][0] < 2.7, method.label
    assert survey[SURVEY_TRUNK.label]["rmse"][0] < survey["independent ridge (STL)"]["rmse"][0]
    image = matplotlib.image.imread(tmp_path / "school.png")
    assert image.shape[:2] == (800, 1100)  # the 2 x 2 panel figure at 11 x 8 inches, 100 dpi
