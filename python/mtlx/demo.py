"""Does learning the school tasks jointly help? A comparison on the bundled data.

Run ``mtlx demo`` (or ``python -m mtlx demo``). On the 10 standard 75/25 splits of the school
data (139 schools, one regression task each) it fits single-task ridge, one pooled model and
mtlx's coupled penalties, each with its strength chosen by 3-fold cross-validation on the
training part only, and prints the test explained variance ``1 - MSE / Var(y)`` (pooled over
all test students, the benchmark's metric) as mean +- std over the splits, with fit times.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold

from .datasets import load_school
from .estimators import MultiTaskRegressor
from .penalties import get_penalty
from .results import convergence_warning


@dataclass(frozen=True)
class Method:
    """One row of the table: the estimator settings and the grid cross-validation searches.

    ``penalty`` is a name or a spec string of :mod:`mtlx.penalties` (its relative weights fixed;
    cross-validation chooses ``alpha``, or ``l2`` for the ridge rows).
    """

    label: str
    penalty: str
    tuned: str  # "alpha" or "l2"
    grid: tuple
    pooled: bool = False
    l2: float = 0.0


#: Grids run from strong to weak regularization so each fit warm-starts from the previous one.
METHODS = (
    Method("independent ridge (STL)", "none", "l2", (10.0, 3.0, 1.0, 0.3, 0.1, 0.03)),
    Method("pooled ridge (one model)", "none", "l2", (0.1, 0.01, 0.001, 1e-4, 1e-5, 1e-6), pooled=True),
    Method("mtlx l21 (shared features)", "l21", "alpha", (30.0, 10.0, 3.0, 1.0, 0.3, 0.1)),
    Method("mtlx trace (low rank)", "trace", "alpha", (100.0, 30.0, 10.0, 3.0, 1.0, 0.3)),
    Method("mtlx mean-regularized (l2 MTL)", "mean", "alpha", (100.0, 30.0, 10.0, 3.0, 1.0, 0.3), l2=0.1),
    Method("mtlx shared + specific (E&P)", "Superpose(Shared(0.01), Ridge(1))", "alpha",
           (100.0, 30.0, 10.0, 3.0, 1.0, 0.3)),
    Method("mtlx clustered (k = 3)", "Clustered(k=3, eta=0.1, w=1)", "alpha", (10.0, 3.0, 1.0, 0.3, 0.1, 0.03)),
    Method("mtlx robust (low rank + outliers)", "Superpose(Trace(1), L21Columns(3))", "alpha",
           (100.0, 30.0, 10.0, 3.0, 1.0, 0.3)),
    Method("mtlx sparse group lasso", "L1(0.5) + L21(1)", "alpha", (10.0, 3.0, 1.0, 0.3, 0.1, 0.03)),
    Method("mtlx dirty (l1/linf + l1)", "Superpose(LInf1(1), L1(1))", "alpha", (300.0, 100.0, 30.0, 10.0, 3.0, 1.0)),
)

CV_TOL = 1e-4  # model selection compares scores, it does not need the last digits
FINAL_TOL = 1e-6


def _standardize(X, train):
    """z-score the 27 attributes with training statistics (the constant column is dropped:
    every estimator fits its own unpenalized intercept per school)."""
    X = X[:, :-1]
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    std[std == 0] = 1.0
    return (X - mean) / std


def _model(method: Method, value: float, tol: float) -> MultiTaskRegressor:
    strength = {"alpha": value, "l2": method.l2} if method.tuned == "alpha" else {"alpha": 0.0, "l2": value}
    return MultiTaskRegressor(penalty=get_penalty(method.penalty), fit_intercept=True, tol=tol, warm_start=True,
                              **strength)


def _task_ids(method: Method, task: np.ndarray) -> np.ndarray:
    return np.zeros_like(task) if method.pooled else task


def select_strength(method: Method, X, y, task, n_folds: int = 3, seed: int = 0):
    """Cross-validate ``method``'s grid on (X, y, task); returns (best value, scores, fold-0 models)."""
    scores = np.zeros((n_folds, len(method.grid)))
    first_fold_models = []
    for k, (fit_rows, val_rows) in enumerate(KFold(n_folds, shuffle=True, random_state=seed).split(X)):
        model = _model(method, method.grid[0], CV_TOL)
        for i, value in enumerate(method.grid):
            model.set_params(**{method.tuned: value})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", convergence_warning())
                model.fit(X[fit_rows], y[fit_rows], task=_task_ids(method, task[fit_rows]))
            known = np.isin(task[val_rows], task[fit_rows])  # a school absent from the fold has no model
            rows = val_rows[known]
            scores[k, i] = model.score(X[rows], y[rows], task=_task_ids(method, task[rows]))
            if k == 0:
                first_fold_models.append(_copy_fit(model))
    return method.grid[int(np.argmax(scores.mean(axis=0)))], scores, first_fold_models


def _copy_fit(model):
    copy = MultiTaskRegressor(**model.get_params())
    copy.coef_, copy.intercept_ = model.coef_.copy(), model.intercept_.copy()
    return copy


def run(n_splits: int = 10, print_fn=print, plot: str | None = None, progress: bool = True) -> dict:
    """Cross-validate, fit and score every method on ``n_splits`` splits; print the table.

    Parameters
    ----------
    n_splits : int
        How many of the 10 standard splits to use.
    print_fn : callable
        Where the table goes.
    plot : str, optional
        Write a figure of split 0 to this path (convergence, coefficients, spectrum, path).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``{label: {"explained_variance": [...], "seconds": [...], "chosen": [...]}}``.
    """
    from tqdm.auto import tqdm

    school = load_school()
    results = {m.label: {"explained_variance": [], "seconds": [], "chosen": []} for m in METHODS}
    figure_parts = {}
    with tqdm(total=n_splits * len(METHODS), desc="school demo", unit="fit", disable=not progress) as bar:
        for split, (train, test) in enumerate(school.splits[:n_splits]):
            X = _standardize(school.X, train)
            for method in METHODS:
                bar.set_postfix_str(method.label, refresh=False)
                start = time.perf_counter()
                value, _, path_models = select_strength(method, X[train], school.y[train], school.task[train])
                model = _model(method, value, FINAL_TOL).set_params(warm_start=False)
                model.fit(X[train], school.y[train], task=_task_ids(method, school.task[train]))
                seconds = time.perf_counter() - start
                score = model.score(X[test], school.y[test], task=_task_ids(method, school.task[test]))
                entry = results[method.label]
                entry["explained_variance"].append(score)
                entry["seconds"].append(seconds)
                entry["chosen"].append(value)
                if split == 0:
                    figure_parts[method.label] = (model, method, path_models)
                bar.update(1)
    print_fn(f"school: 139 tasks, 15362 students; test explained variance over {n_splits} split(s), "
             "strength by 3-fold CV on each training part")
    print_fn(f"{'method':35s} {'explained variance':>20s} {'time, CV incl. (s)':>19s}  chosen strength")
    for label, entry in results.items():
        ev, secs = entry["explained_variance"], entry["seconds"]
        chosen = ", ".join(f"{v:g}" for v in sorted(set(entry["chosen"])))
        print_fn(f"{label:35s} {np.mean(ev):11.4f} +- {np.std(ev):.4f} {np.mean(secs):19.3f}  {chosen}")
    if plot:
        write_figure(plot, figure_parts)
        print_fn(f"figure written to {plot}")
    return results


def write_figure(path: str, parts: dict) -> None:
    """Four panels from split 0: l21 convergence and coefficients, spectra, the l21 CV path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plot import plot_coefficients, plot_convergence, plot_path, plot_spectrum

    stl, l21, trace = (parts[METHODS[i].label][0] for i in (0, 2, 3))
    _, l21_method, l21_path = parts[METHODS[2].label]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    plot_convergence(l21, ax=axes[0, 0], label="l21")
    plot_convergence(trace, ax=axes[0, 0], label="trace")
    axes[0, 0].legend()
    plot_coefficients(l21, ax=axes[0, 1])
    plot_spectrum(trace, ax=axes[1, 0], label="trace")
    plot_spectrum(stl, ax=axes[1, 0], label="independent ridge")
    axes[1, 0].legend()
    plot_path(l21_method.grid, l21_path, ax=axes[1, 1])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
