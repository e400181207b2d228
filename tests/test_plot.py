"""mtlx.plot draws the data it is given: checked on the artists, not only for the absence of errors."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import mtlx  # noqa: E402
from mtlx.plot import plot_coefficients, plot_convergence, plot_path, plot_spectrum  # noqa: E402


@pytest.fixture
def model(rng):
    X = rng.standard_normal((60, 8))
    W = rng.standard_normal((8, 4))
    W[[1, 5]] = 0.0
    return mtlx.MultiTaskRegressor(penalty="l21", alpha=0.2).fit(X, X @ W + 0.1 * rng.standard_normal((60, 4)))


def test_convergence_plots_the_gap(model):
    ax = plot_convergence(model)
    x, y = ax.get_lines()[0].get_data()
    h = model.objective_history_
    gap = h - h.min()
    np.testing.assert_array_equal(x, np.flatnonzero(gap > 0))
    np.testing.assert_allclose(y, gap[gap > 0])
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "iteration" and ax.get_ylabel() == "F - F*"
    plt.close("all")


def test_coefficients_heat_map_shows_abs_W(model):
    ax = plot_coefficients(model)
    np.testing.assert_array_equal(ax.images[0].get_array(), np.abs(model.coef_.T))
    assert ax.get_xlabel() == "task" and ax.get_ylabel() == "feature"
    used = int((np.abs(model.coef_).sum(axis=0) > 0).sum())
    assert f"{used} of 8 features" in ax.get_title()
    plt.close("all")


def test_spectrum_is_the_singular_values(model):
    ax = plot_spectrum(model.coef_.T)
    x, y = ax.get_lines()[0].get_data()
    np.testing.assert_allclose(y, np.linalg.svd(model.coef_, compute_uv=False))
    np.testing.assert_array_equal(x, [1, 2, 3, 4])
    plt.close("all")


def test_path_draws_one_line_per_feature(rng):
    X = rng.standard_normal((50, 5))
    Y = X @ rng.standard_normal((5, 3))
    alphas = [1.0, 0.3, 0.1]
    models = [mtlx.MultiTaskRegressor(alpha=a).fit(X, Y) for a in alphas]
    ax = plot_path(alphas, models)
    lines = ax.get_lines()
    assert len(lines) == 5 and ax.get_xscale() == "log" and ax.xaxis_inverted()
    for j, line in enumerate(lines):
        np.testing.assert_allclose(line.get_ydata(), [np.linalg.norm(m.coef_[:, j]) for m in models])
    with pytest.raises(ValueError, match="one model or W per alpha"):
        plot_path([1.0], models)
    plt.close("all")
