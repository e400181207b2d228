"""The school benchmark as a cluster job: each rank reads only its schools, the estimator fits
all 139 jointly (the trace norm couples them), and the model equals a single process's.

Run: mpirun -n 4 python examples/mpi_school.py   (also as a plain script: one rank)

Every rank runs this script. The schools are dealt to the ranks by row counts
(``mtlx.distributed.assign_tasks``); a rank passes its schools' rows as stacked rows with their
global school ids, and the ranks exchange only sums over tasks (MPI.Allreduce). Rank 0 then
compares the model with the same fit in one process.
"""

import numpy as np
from mpi4py import MPI

import mtlx
from mtlx.datasets import load_school

comm = MPI.COMM_WORLD
school = load_school()  # (a real job would read only its own schools' files)
train, test = school.splits[0]
X = school.X[:, :27]
X = (X - X[train].mean(axis=0)) / X[train].std(axis=0)
rows_per_school = np.bincount(school.task[train], minlength=school.n_tasks)
mine = mtlx.distributed.assign_tasks(rows_per_school, comm.size)[comm.rank]
rows = train[np.isin(school.task[train], mine)]

model = mtlx.MultiTaskRegressor(penalty="trace", alpha=10.0, tol=1e-10, comm=comm)
model.fit(X[rows], school.y[rows], task=school.task[rows])  # this rank's schools only
# Every rank holds the whole model (every school's coefficients, in school-id order).
pred = model.predict(X[test], task=school.task[test])
explained = 1.0 - np.mean((school.y[test] - pred) ** 2) / np.var(school.y[test])

if comm.rank == 0:
    alone = mtlx.MultiTaskRegressor(penalty="trace", alpha=10.0, tol=1e-10)
    alone.fit(X[train], school.y[train], task=school.task[train])
    gap = np.abs(model.coef_ - alone.coef_).max() / np.abs(alone.coef_).max()
    print(f"{comm.size} rank(s), {len(mine)} schools on rank 0: test explained variance {explained:.4f}; "
          f"coefficients {gap:.1e} (relative) from one process's, {model.n_iter_} iterations")
