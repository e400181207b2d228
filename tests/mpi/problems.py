"""Problems shared by the MPI tests: the same data on every rank (same seed)."""

import numpy as np


def make_problem(n_tasks, d=6, seed=3, logistic=(), min_rows=20, max_rows=80):
    """Ragged tasks, the same on every rank (same seed); logistic tasks get -1/+1 labels."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(min_rows, max_rows, n_tasks)
    tasks = []
    for t, m in enumerate(sizes):
        X = rng.standard_normal((m, d))
        y = X @ rng.standard_normal(d) + 0.3 * rng.standard_normal(m)
        if t in logistic:
            y = np.where(y > 0, 1.0, -1.0)
        tasks.append((X, y))
    return tasks, sizes


def rel_err(res, ref):
    """Largest difference of (W, b), relative to the largest entry of the reference."""
    scale = max(np.abs(ref.W).max(), np.abs(ref.b).max())
    return max(np.abs(res.W - ref.W).max(), np.abs(res.b - ref.b).max()) / scale
