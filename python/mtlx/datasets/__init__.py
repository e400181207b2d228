"""Real multi-task datasets shipped with mtlx (no download at run time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["COMPUTER_SURVEY_CITATION", "ComputerSurveyData", "NEWSGROUPS_CITATION", "NewsgroupsData", "SchoolData",
           "load_computer_survey", "load_newsgroups", "load_school"]

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


NEWSGROUPS_CITATION = (
    "20 Newsgroups (K. Lang, \"NewsWeeder: learning to filter netnews\", ICML 1995), as four binary "
    "term-count tasks (comp vs sci, rec vs talk; two each) distributed with MALSAR (J. Zhou, J. Chen & J. Ye, "
    "\"MALSAR: Multi-tAsk Learning via StructurAl Regularization\", Arizona State University, 2011)."
)


@dataclass
class NewsgroupsData:
    """Four sparse binary text-classification tasks: 20 Newsgroups documents as 2,000 term counts.

    Attributes
    ----------
    X : scipy.sparse.csr_matrix of float64, shape (7091, 2000)
        Term counts of every document, stacked in task order (about 5% of entries non-zero).
    y : ndarray of int64, shape (7091,)
        The label of each document, 1 or 2 (which of the task's two newsgroup families).
    task : ndarray of int64, shape (7091,)
        The task (0..3) of each row.
    names : list of str
        The tasks: comp_vs_sci_task1, comp_vs_sci_task2, rec_vs_talk_task1, rec_vs_talk_task2.
    citation : str
    """

    X: object
    y: np.ndarray
    task: np.ndarray
    names: list
    citation: str = NEWSGROUPS_CITATION

    def tasks(self) -> list:
        """``[(X_t, y_t), ...]`` per task (CSR row blocks)."""
        bounds = np.searchsorted(self.task, np.arange(len(self.names) + 1))
        return [(self.X[lo:hi], self.y[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]


def load_newsgroups() -> NewsgroupsData:
    """Load the four 20-Newsgroups tasks of MALSAR as one sparse CSR matrix (never densified).

    Returns
    -------
    NewsgroupsData
    """
    import scipy.sparse as sp

    with np.load(_DATA / "newsgroups.npz") as z:
        X = sp.csr_matrix((z["data"].astype(np.float64), z["indices"].astype(np.int32), z["indptr"].astype(np.int32)),
                          shape=(int(z["indptr"].size - 1), int(z["n_features"])))
        y = z["y"].astype(np.int64)
        task = np.repeat(np.arange(len(z["task_sizes"]), dtype=np.int64), z["task_sizes"])
        names = [str(n) for n in z["names"]]
    return NewsgroupsData(X=X, y=y, task=task, names=names)


COMPUTER_SURVEY_CITATION = (
    "P. J. Lenk, W. S. DeSarbo, P. E. Green & M. R. Young, \"Hierarchical Bayes conjoint analysis: recovery of "
    "partworth heterogeneity from reduced experimental designs\", Marketing Science 15 (1996) 173-191; as used for "
    "multi-task learning by A. Argyriou, T. Evgeniou & M. Pontil, \"Convex multi-task feature learning\", Machine "
    "Learning 73 (2008), and distributed with PyMTL."
)


@dataclass
class ComputerSurveyData:
    """Conjoint analysis: 190 people (tasks) rate the same 20 computer profiles, 0 to 10.

    The shared-input layout: one X for every task, Y with one column per person.

    Attributes
    ----------
    X : ndarray of float64, shape (20, 13)
        The profiles' 13 binary attributes coded -1/+1 (the design's constant column dropped:
        estimators fit their own intercepts).
    Y : ndarray of float64, shape (20, 190)
        ``Y[i, t]``: person t's rating (likelihood of buying) of profile i.
    covariates : ndarray of float64, shape (190, 7)
        Person covariates (not used as inputs here).
    citation : str
    """

    X: np.ndarray
    Y: np.ndarray
    covariates: np.ndarray
    citation: str = COMPUTER_SURVEY_CITATION

    def splits(self, n_splits: int = 10, n_test: int = 4) -> list:
        """Random train/test masks: for each person, ``n_test`` of the 20 ratings held out
        (Argyriou et al. 2008 hold out 4 of 20), drawn per person and split from seeds 0, 1, ...

        Returns
        -------
        list of boolean arrays of shape (20, 190)
            True on the test entries; fit on ``np.where(mask, nan, Y)`` (missing labels).
        """
        out = []
        for split in range(n_splits):
            rng = np.random.default_rng(split)
            mask = np.zeros(self.Y.shape, dtype=bool)
            for t in range(self.Y.shape[1]):
                mask[rng.choice(self.Y.shape[0], n_test, replace=False), t] = True
            out.append(mask)
        return out


def load_computer_survey() -> ComputerSurveyData:
    """Load the computer-survey conjoint data of Lenk et al. (1996).

    Returns
    -------
    ComputerSurveyData
    """
    with np.load(_DATA / "computer_survey.npz") as z:
        X = z["design"][:, 1:].astype(np.float64)
        Y = z["ratings"].T.astype(np.float64)
        covariates = z["covariates"].astype(np.float64)
    return ComputerSurveyData(X=np.ascontiguousarray(X), Y=np.ascontiguousarray(Y), covariates=covariates)
