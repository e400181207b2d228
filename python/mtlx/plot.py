"""Pictures of what a multi-task model learned (matplotlib, from the ``[plot]`` extra).

Each function draws on ``ax`` (a new figure's axes when None) and returns the axes, so
figures compose. Models are fitted mtlx estimators; plain arrays work too.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_coefficients", "plot_convergence", "plot_path", "plot_spectrum"]


def _axes(ax):
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError("mtlx.plot needs matplotlib: pip install 'mtlx[plot]'") from None
    return plt.figure().add_subplot()


def _W(model_or_W) -> np.ndarray:
    """W (d x T) of a fitted estimator (its ``coef_`` is T x d) or of an array given as W."""
    if hasattr(model_or_W, "coef_"):
        return np.asarray(model_or_W.coef_).T
    if hasattr(model_or_W, "W"):  # a SolveResult
        return np.asarray(model_or_W.W)
    W = np.asarray(model_or_W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (n_features, n_tasks), got shape {W.shape}")
    return W


def plot_convergence(history, ax=None, label=None):
    """Objective gap ``F_k - F*`` against iteration k on a log scale.

    Parameters
    ----------
    history : fitted estimator, SolveResult or array-like
        The objective after each iteration (``objective_history_``, ``history`` or the values).
    ax : matplotlib Axes, optional
    label : str, optional

    Notes
    -----
    F* is the lowest value in the history (the last one for a converged monotone run), so the
    curve shows how fast the solver approached its own answer; iterations where the gap is
    exactly 0 (F* itself) are left out of the log plot.
    """
    values = getattr(history, "objective_history_", getattr(history, "history", history))
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"history must be a non-empty 1-D sequence of objective values, got shape {values.shape}")
    gap = values - values.min()
    keep = gap > 0
    ax = _axes(ax)
    ax.semilogy(np.flatnonzero(keep), gap[keep], label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("F - F*")
    ax.set_title("convergence")
    return ax


def plot_coefficients(model_or_W, ax=None, cmap="viridis"):
    """Heat map of |W|: features down, tasks across (l21 shows as whole empty rows).

    Parameters
    ----------
    model_or_W : fitted estimator, SolveResult or array of shape (n_features, n_tasks)
    ax : matplotlib Axes, optional
    cmap : str
    """
    W = np.abs(_W(model_or_W))
    ax = _axes(ax)
    image = ax.imshow(W, aspect="auto", interpolation="nearest", cmap=cmap)
    ax.figure.colorbar(image, ax=ax, label="|w_jt|")
    ax.set_xlabel("task")
    ax.set_ylabel("feature")
    ax.set_title(f"coefficients ({int((np.abs(W).sum(axis=1) > 0).sum())} of {W.shape[0]} features used)")
    return ax


def plot_spectrum(model_or_W, ax=None, label=None):
    """Singular values of W in decreasing order (the trace norm makes the tail vanish).

    Parameters
    ----------
    model_or_W : fitted estimator, SolveResult or array of shape (n_features, n_tasks)
    ax : matplotlib Axes, optional
    label : str, optional
    """
    s = np.linalg.svd(_W(model_or_W), compute_uv=False)
    ax = _axes(ax)
    ax.plot(np.arange(1, s.size + 1), s, marker="o", label=label)
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    ax.set_title("spectrum of W")
    return ax


def plot_path(alphas, models_or_Ws, ax=None):
    """Regularization path: the norm of each feature's row of W against alpha.

    Parameters
    ----------
    alphas : array-like of shape (n_alphas,)
    models_or_Ws : sequence of fitted estimators or W arrays (n_features, n_tasks), one per alpha
    ax : matplotlib Axes, optional

    Notes
    -----
    One line per feature, ``||row j of W||_2`` (the quantity l21 thresholds), alpha on a
    log axis decreasing to the right, as a path is computed.
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or len(models_or_Ws) != alphas.size:
        raise ValueError(f"need one model or W per alpha: {alphas.size} alphas, {len(models_or_Ws)} models")
    norms = np.array([np.linalg.norm(_W(m), axis=1) for m in models_or_Ws])  # (n_alphas, d)
    ax = _axes(ax)
    for j in range(norms.shape[1]):
        ax.plot(alphas, norms[:, j], linewidth=1)
    ax.set_xscale("log")
    if not ax.xaxis_inverted():
        ax.invert_xaxis()
    ax.set_xlabel("alpha")
    ax.set_ylabel("||row j of W||")
    ax.set_title("regularization path")
    return ax
