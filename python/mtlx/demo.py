"""Does learning the tasks jointly help? A comparison on the bundled data.

Run ``mtlx demo`` (or ``python -m mtlx demo``). On the 10 standard 75/25 splits of the school
data (139 schools, one regression task each) it fits single-task ridge, one pooled model,
mtlx's coupled penalties and a shared-trunk network (hard parameter sharing), each with its
strength (and the network its width) chosen by 3-fold cross-validation on the training part
only, and prints the test explained variance ``1 - MSE / Var(y)`` (pooled over all test
students, the benchmark's metric) as mean +- std over the splits, with fit times. Then the same
on the computer survey (190 people rating the same 20 profiles: one shared input; 4 of each
person's ratings held out per split, the others fitted as a Y with missing labels).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold

from .datasets import load_computer_survey, load_school
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

@dataclass(frozen=True)
class TrunkSearch:
    """The shared-trunk row: one ReLU layer shared by every task, a linear head per task;
    cross-validation chooses the width and the ridge strength l2 (targets standardized)."""

    label: str
    widths: tuple
    l2s: tuple

    @property
    def grid(self) -> tuple:
        return tuple((w, l2) for w in self.widths for l2 in self.l2s)

    def model(self, width: int, l2: float):
        from .trunk.estimators import SharedTrunkRegressor

        return SharedTrunkRegressor(hidden=(width,), l2=l2, max_iter=200, warm_start=True)


SCHOOL_TRUNK = TrunkSearch("mtlx shared trunk (ReLU MLP)", (16, 64), (0.03, 0.01, 0.003))

#: The computer survey's rows: the linear formulations that apply to one shared input, and the trunk.
SURVEY_METHODS = (
    Method("independent ridge (STL)", "none", "l2", (3.0, 1.0, 0.3, 0.1, 0.03)),
    Method("pooled ridge (one model)", "none", "l2", (1.0, 0.1, 0.01), pooled=True),
    Method("mtlx l21 (shared features)", "l21", "alpha", (10.0, 3.0, 1.0, 0.3)),
    Method("mtlx trace (low rank)", "trace", "alpha", (30.0, 10.0, 3.0, 1.0)),
    Method("mtlx mean-regularized (l2 MTL)", "mean", "alpha", (10.0, 3.0, 1.0, 0.3), l2=0.01),
)
SURVEY_TRUNK = TrunkSearch("mtlx shared trunk (ReLU MLP)", (8, 32), (0.03, 0.01, 0.003))

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


def _fit_trunk(search: TrunkSearch, value, X, y, model=None, **fit_kw):
    """A trunk model fitted on standardized targets (l2 then means the same on any scale);
    returns a function predicting in the targets' units. ``model``: a fitted one of the same
    width to warm-start from (the grid runs from strong to weak l2, as the linear rows' do)."""
    mean, std = float(np.nanmean(y)), float(np.nanstd(y))
    if model is None:
        model = search.model(*value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", convergence_warning())
        model.set_params(l2=value[1]).fit(X, (y - mean) / std, **fit_kw)
    predict = lambda X_new, **kw: model.predict(X_new, **kw) * std + mean  # noqa: E731
    predict.model = model
    return predict


def select_trunk(search: TrunkSearch, X, y, task, n_folds: int = 3, seed: int = 0):
    """Cross-validate the trunk's (width, l2) grid on stacked rows; returns the best pair."""
    scores = np.zeros((n_folds, len(search.grid)))
    for k, (fit_rows, val_rows) in enumerate(KFold(n_folds, shuffle=True, random_state=seed).split(X)):
        rows = val_rows[np.isin(task[val_rows], task[fit_rows])]
        models = {}
        for i, value in enumerate(search.grid):
            start = models.get(value[0])
            predict = _fit_trunk(search, value, X[fit_rows], y[fit_rows], model=start, task=task[fit_rows])
            models[value[0]] = predict.model
            scores[k, i] = _explained_variance(y[rows], predict(X[rows], task=task[rows]))
    return search.grid[int(np.argmax(scores.mean(axis=0)))]


def _explained_variance(y, pred) -> float:
    return 1.0 - float(np.mean((y - pred) ** 2)) / float(np.var(y))


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
    results = {m.label: {"explained_variance": [], "seconds": [], "chosen": []} for m in METHODS + (SCHOOL_TRUNK,)}
    figure_parts = {}
    with tqdm(total=n_splits * (len(METHODS) + 1), desc="school demo", unit="fit", disable=not progress) as bar:
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
            bar.set_postfix_str(SCHOOL_TRUNK.label, refresh=False)
            start = time.perf_counter()
            value = select_trunk(SCHOOL_TRUNK, X[train], school.y[train], school.task[train])
            predict = _fit_trunk(SCHOOL_TRUNK, value, X[train], school.y[train], task=school.task[train])
            entry = results[SCHOOL_TRUNK.label]
            entry["seconds"].append(time.perf_counter() - start)
            entry["explained_variance"].append(_explained_variance(school.y[test],
                                                                   predict(X[test], task=school.task[test])))
            entry["chosen"].append(value)
            bar.update(1)
    print_fn(f"school: 139 tasks, 15362 students; test explained variance over {n_splits} split(s), "
             "strength by 3-fold CV on each training part")
    _print_table(results, print_fn)
    if plot:
        write_figure(plot, figure_parts)
        print_fn(f"figure written to {plot}")
    results["computer survey"] = run_survey(n_splits, print_fn, progress)
    return results


def _print_table(results: dict, print_fn, metric: str = "explained variance") -> None:
    print_fn(f"{'method':35s} {metric:>20s} {'time, CV incl. (s)':>19s}  chosen strength")
    for label, entry in results.items():
        ev, secs = entry["explained_variance"], entry["seconds"]
        chosen = ", ".join(_chosen(v) for v in sorted(set(entry["chosen"])))
        line = f"{label:35s} {np.mean(ev):11.4f} +- {np.std(ev):.4f} {np.mean(secs):19.3f}  {chosen}"
        if "rmse" in entry:
            line += f"  (RMSE {np.mean(entry['rmse']):.3f})"
        print_fn(line)


def _chosen(value) -> str:
    return f"width {value[0]}, l2 {value[1]:g}" if isinstance(value, tuple) else f"{value:g}"


def run_survey(n_splits: int = 10, print_fn=print, progress: bool = True) -> dict:
    """The computer survey (190 people, the same 20 profiles): per split, 4 of each person's
    ratings held out, the rest fitted as one shared X with missing labels; strengths (and the
    trunk's width) by 3-fold CV over each person's remaining ratings. Prints the test explained
    variance (and RMSE, the literature's metric) as mean +- std over the splits.

    Returns
    -------
    dict
        ``{label: {"explained_variance": [...], "rmse": [...], "seconds": [...], "chosen": [...]}}``.
    """
    from tqdm.auto import tqdm

    survey = load_computer_survey()
    rows = SURVEY_METHODS + (SURVEY_TRUNK,)
    results = {m.label: {"explained_variance": [], "rmse": [], "seconds": [], "chosen": []} for m in rows}
    with tqdm(total=n_splits * len(rows), desc="survey demo", unit="fit", disable=not progress) as bar:
        for test in survey.splits(n_splits):
            train_Y = np.where(test, np.nan, survey.Y)
            folds = _entry_folds(train_Y, 3)
            for method in rows:
                bar.set_postfix_str(method.label, refresh=False)
                start = time.perf_counter()
                value = method.grid[int(np.argmax([_survey_cv(method, v, survey, train_Y, folds)
                                                   for v in method.grid]))]
                pred = _survey_fit(method, value, survey.X, train_Y)
                entry = results[method.label]
                entry["seconds"].append(time.perf_counter() - start)
                entry["explained_variance"].append(_explained_variance(survey.Y[test], pred[test]))
                entry["rmse"].append(float(np.sqrt(np.mean((survey.Y[test] - pred[test]) ** 2))))
                entry["chosen"].append(value)
                bar.update(1)
    print_fn(f"computer survey: 190 tasks (people) on the same 20 profiles; test explained variance over {n_splits} "
             "split(s), 4 ratings per person held out")
    _print_table(results, print_fn)
    return results


def _survey_cv(method, value, survey, train_Y, folds) -> float:
    """Mean validation explained variance of one grid value over the entry folds."""
    scores = []
    for fold in folds:
        pred = _survey_fit(method, value, survey.X, np.where(fold, np.nan, train_Y))
        scores.append(_explained_variance(survey.Y[fold], pred[fold]))
    return float(np.mean(scores))


def _entry_folds(Y, n_folds: int) -> list:
    """Masks of the labelled entries of Y, each person's entries dealt into n_folds at random."""
    rng = np.random.default_rng(0)
    fold_of = np.full(Y.shape, -1)
    for t in range(Y.shape[1]):
        labelled = np.flatnonzero(~np.isnan(Y[:, t]))
        fold_of[rng.permutation(labelled), t] = np.arange(len(labelled)) % n_folds
    return [fold_of == k for k in range(n_folds)]


def _survey_fit(method, value, X, Y):
    """Predictions (n x T) of one row's model fitted on Y (NaN: not labelled)."""
    if isinstance(method, TrunkSearch):
        return _fit_trunk(method, value, X, Y)(X)
    model = _model(method, value, CV_TOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", convergence_warning())
        if method.pooled:  # one model of every person's ratings: the mean rating per profile
            model.fit(X, np.nanmean(Y, axis=1))
            return np.repeat(model.predict(X)[:, None], Y.shape[1], axis=1)
        return model.fit(X, Y).predict(X)


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


if __name__ == "__main__":  # ``python -m mtlx.demo [options]``: the same as ``mtlx demo [options]``
    import sys

    from .cli import main

    raise SystemExit(main(["demo", *sys.argv[1:]]))
