"""Real multi-task datasets shipped with mtlx (no download at run time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SchoolData", "load_school"]

_DATA = Path(__file__).with_name("data")

SCHOOL_CITATION = (
    "Inner London Education Authority (ILEA) exam scores, via H. Goldstein, "
    '"Multilevel modelling of survey data", The Statistician 40 (1991) 235-244. '
    "Splits: the 10 random 75/25 train/test splits of Argyriou, Evgeniou & Pontil, "
    '"Convex multi-task feature learning", Machine Learning 73 (2008), as distributed with MALSAR.'
)


@dataclass
class SchoolData:
    """The school benchmark: 139 regression tasks (schools), 15,362 students, 28 features.

    Attributes
    ----------
    X : ndarray of float64, shape (15362, 28)
        Students stacked in task order; column 27 is a constant 1 (bias), the other 27 are raw
        student and school attributes.
    y : ndarray of float64, shape (15362,)
        Exam scores.
    task : ndarray of int64, shape (15362,)
        School (task id 0..138) of each row.
    splits : list of (train, test) index arrays
        The 10 standard 75/25 splits, 0-based indices into the rows of ``X``.
    citation : str
    """

    X: np.ndarray
    y: np.ndarray
    task: np.ndarray
    splits: list
    citation: str = SCHOOL_CITATION

    @property
    def n_tasks(self) -> int:
        """Number of schools (139)."""
        return int(self.task.max()) + 1

    def tasks(self, rows=None) -> list:
        """``[(X_t, y_t), ...]`` per school, over ``rows`` (all rows by default)."""
        rows = np.arange(len(self.y)) if rows is None else np.sort(np.asarray(rows))
        task = self.task[rows]
        bounds = np.searchsorted(task, np.arange(self.n_tasks + 1))
        return [(self.X[rows[lo:hi]], self.y[rows[lo:hi]]) for lo, hi in zip(bounds[:-1], bounds[1:])]


def load_school() -> SchoolData:
    """Load the school dataset and its 10 standard splits.

    Returns
    -------
    SchoolData

    Notes
    -----
    The usual metric is explained variance on the test part, ``1 - MSE / Var(y)``, averaged
    over the 10 splits. See ``SchoolData.citation`` for the sources.
    """
    with np.load(_DATA / "school.npz") as z:
        X = z["X"].astype(np.float64)
        y = z["y"].astype(np.float64)
        task = np.repeat(np.arange(len(z["task_sizes"]), dtype=np.int64), z["task_sizes"])
        splits = [(tr.astype(np.int64), te.astype(np.int64)) for tr, te in zip(z["train"], z["test"])]
    return SchoolData(X=X, y=y, task=task, splits=splits)
