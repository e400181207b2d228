"""The README's Python snippets run as written and do what they claim; so does the demo."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the estimator snippet saves model.npz
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 3
    env = {}
    exec(blocks[0], env)
    import mtlx

    assert env["reg"].predict(env["X"], task=env["task"]).shape == (300,)
    assert [list(c) for c in env["clf"].classes_] == [["no", "yes"]] * 3
    loaded = mtlx.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded.predict(env["X"], task=env["task"]), env["reg"].predict(env["X"],
                                                                                                 task=env["task"]))
    exec(blocks[1], env)
    assert env["res"].converged and env["res"].W.shape == (20, 5)
    exec(blocks[2], env)
    gW = env["gW"]
    assert gW.shape == (20, 3) and np.isfinite(env["value"])
    # W = 0 with mean weights: the squared tasks' gradient is -X_t^T y_t / m_t
    X0, y0 = env["tasks"][0]
    np.testing.assert_allclose(gW[:, 0], -X0.T @ y0 / len(y0), rtol=1e-12)


def test_demo_runs_on_one_split_and_writes_its_figure(tmp_path):
    import matplotlib.image

    from mtlx.demo import METHODS, run

    lines = []
    results = run(1, print_fn=lines.append, plot=str(tmp_path / "school.png"), progress=False)
    assert len(lines) == 3 + len(METHODS)
    for method in METHODS:
        entry = results[method.label]
        assert 0.2 < entry["explained_variance"][0] < 0.5, method.label  # explained variance on school
        assert entry["chosen"][0] in method.grid
    image = matplotlib.image.imread(tmp_path / "school.png")
    assert image.shape[:2] == (800, 1100)  # the 2 x 2 panel figure at 11 x 8 inches, 100 dpi
