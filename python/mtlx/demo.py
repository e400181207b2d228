"""Does learning the school tasks jointly help? A small comparison on the bundled data.

Run ``python -m mtlx demo``. Fits on the standard 75/25 splits of the school data (139
schools, one regression task each) and prints test explained variance, ``1 - MSE / Var(y)``,
for single-task ridge, one pooled model and three coupled multi-task penalties.
The strengths are fixed, not tuned (tuning by cross-validation belongs to the estimators).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from .data import TaskData
from .datasets import load_school
from .solver import solve

#: (label, penalty, alpha, l2, pooled): one model per row of the table.
METHODS = [
    ("independent ridge (STL)", "none", 0.0, 0.1, False),
    ("pooled ridge (one model)", "none", 0.0, 0.1, True),
    ("mtlx l21 (shared features)", "l21", 3.0, 0.0, False),
    ("mtlx trace (low rank)", "trace", 10.0, 0.0, False),
    ("mtlx l1 (independent sparsity)", "l1", 0.3, 0.0, False),
]


def _standardize(X, train):
    """z-score the 27 attributes with training statistics; keep the constant bias column."""
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    std[std == 0] = 1.0
    Z = (X - mean) / std
    Z[:, -1] = 1.0
    return Z


def explained_variance(tasks, W):
    """1 - MSE / Var(y) over all test rows of all tasks (the school benchmark's metric)."""
    residuals = np.concatenate([X @ W[:, min(t, W.shape[1] - 1)] - y for t, (X, y) in enumerate(tasks)])
    y = np.concatenate([y for _, y in tasks])
    return 1.0 - np.mean(residuals**2) / np.var(y)


def run(n_splits: int = 10, print_fn=print) -> dict:
    """Fit every method on ``n_splits`` splits; print and return {label: (ev list, seconds list)}."""
    school = load_school()
    results = {label: ([], []) for label, *_ in METHODS}
    for train, test in school.splits[:n_splits]:
        X = _standardize(school.X, train)
        data = dataclasses.replace(school, X=X)
        train_tasks, test_tasks = data.tasks(train), data.tasks(test)
        for label, penalty, alpha, l2, pooled in METHODS:
            if pooled:
                fit_tasks = [(np.vstack([x for x, _ in train_tasks]), np.concatenate([y for _, y in train_tasks]))]
            else:
                fit_tasks = train_tasks
            start = time.perf_counter()
            res = solve(TaskData.from_tasks(fit_tasks), penalty=penalty, alpha=alpha, l2=l2, tol=1e-6)
            seconds = time.perf_counter() - start
            results[label][0].append(explained_variance(test_tasks, res.W))
            results[label][1].append(seconds)
    print_fn(f"school: 139 tasks, 15362 students, test explained variance over {n_splits} splits")
    print_fn(f"{'method':32s} {'explained variance':>20s} {'fit time (s)':>13s}")
    for label, (ev, secs) in results.items():
        print_fn(f"{label:32s} {np.mean(ev):11.4f} +- {np.std(ev):.4f} {np.mean(secs):13.3f}")
    return results
