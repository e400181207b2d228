"""The README's Python snippets run as written and solve what they claim."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_snippets_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 2
    env = {}
    exec(blocks[0], env)
    assert env["res"].converged and env["res"].W.shape == (20, 5)
    exec(blocks[1], env)
    gW = env["gW"]
    assert gW.shape == (20, 3) and np.isfinite(env["value"])
    # W = 0 with mean weights: the squared tasks' gradient is -X_t^T y_t / m_t
    X0, y0 = env["tasks"][0]
    np.testing.assert_allclose(gW[:, 0], -X0.T @ y0 / len(y0), rtol=1e-12)


def test_demo_runs_on_one_split():
    from mtlx.demo import METHODS, run

    lines = []
    results = run(1, print_fn=lines.append)
    assert len(lines) == 2 + len(METHODS)
    for label, (ev, _) in results.items():
        assert 0.2 < ev[0] < 0.5, label  # explained variance on the school data
