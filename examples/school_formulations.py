"""Which coupling helps on the school data? Independent ridge against joint feature selection
(l21), a low-rank W (trace) and shared + specific models, on one of the 10 standard splits.

Run: python examples/school_formulations.py [split]   (about 10 seconds)

Each school is a task (139 of them, 15,362 students). Each formulation's strength alpha is chosen
by 3-fold cross-validation on the training part along a path of 8 alphas (MultiTaskRegressorCV:
the default grid from alpha_max down for the norms, a grid given for the smooth penalties);
the score is the pooled test explained variance, the benchmark's metric. ``mtlx demo`` runs the
full protocol (all 10 splits, more formulations, a shared-trunk network beside them).
"""

import sys

import numpy as np

import mtlx
from mtlx.datasets import load_school

school = load_school()
train, test = school.splits[int(sys.argv[1]) if len(sys.argv) > 1 else 0]
X = school.X[:, :27]  # (column 27 is a constant: the models fit intercepts)
mean, scale = X[train].mean(axis=0), X[train].std(axis=0)
X = (X - mean) / scale

models = {
    "independent ridge": mtlx.MultiTaskRegressorCV(penalty="ridge", alphas=np.geomspace(30.0, 0.03, 8), cv=3),
    "l21 (joint feature selection)": mtlx.MultiTaskRegressorCV(penalty="l21", alphas=8, cv=3),
    "trace (low rank)": mtlx.MultiTaskRegressorCV(penalty="trace", alphas=8, cv=3),
    "mean-regularized": mtlx.MultiTaskRegressorCV(penalty="mean", alphas=np.geomspace(300.0, 0.3, 8), l2=0.1, cv=3),
}
variance = np.var(school.y[test])
print(f"school, split {sys.argv[1] if len(sys.argv) > 1 else 0}: test explained variance (higher is better)")
for name, model in models.items():
    model.fit(X[train], school.y[train], task=school.task[train])
    residual = school.y[test] - model.predict(X[test], task=school.task[test])
    print(f"  {name:32s} {1.0 - np.mean(residual**2) / variance:.3f}   (alpha {model.alpha_:.3g}, {model.solver_})")
