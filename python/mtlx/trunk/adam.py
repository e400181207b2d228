"""Adam on minibatches that draw rows from every task in proportion.

Sampling rule: each epoch every task's rows are shuffled on their own (the shared layout: the
rows every task shares are shuffled once) and cut into the same number B of nearly equal
chunks (``numpy.array_split``); batch b holds chunk b of every task. So each batch holds about
m_t / B rows of task t, whatever the tasks' sizes, and every row is seen once per epoch.
B = ceil(total rows / batch_size), the total over every rank's tasks (the shared layout: the
number of shared rows). Each batch estimates F with each task's loss a mean over its rows in the
batch. The permutations are drawn from (random_state, epoch) and the task's position in the
global order: the same batches on any number of ranks.

Step: bias-corrected Adam (the core's ``adam_update``; scikit-learn's and PyTorch's update), the
trunk's gradient all-reduced once per batch. Stopping follows scikit-learn's MLP: after
``n_iter_no_change`` epochs whose loss (or, with early stopping, validation loss) did not improve
on the best by at least tol; tol = 0 runs max_iter epochs.
"""

from __future__ import annotations

import numpy as np

from .. import _core

__all__ = ["minimize_adam", "epoch_batches"]


def epoch_batches(rows, n_batches: int, seed: int, epoch: int, positions) -> list:
    """The batches of one epoch: per batch, the index argument of ``rows.take``."""
    if rows.shared:
        rng = np.random.default_rng([seed, 2, epoch])
        return np.array_split(rng.permutation(rows.X.shape[0]), n_batches)
    chunks = []
    for lo, hi, position in zip(rows.row_begin, rows.row_end, positions):
        rng = np.random.default_rng([seed, 3, epoch, int(position)])
        chunks.append(np.array_split(rng.permutation(int(hi - lo)), n_batches))
    return [[c[b] for c in chunks] for b in range(n_batches)]


def minimize_adam(objective, theta0, rows, *, n_batches: int, seed: int, positions, max_iter: int, tol: float,
                  learning_rate: float, validation=None, n_iter_no_change: int = 10, beta1: float = 0.9,
                  beta2: float = 0.999, epsilon: float = 1e-8, on_epoch=None):
    """Train by Adam; returns ``(theta, n_epochs, converged, message, curve, task_curve, failure)``.

    ``curve[e]`` is the mean batch F of epoch e (with ``validation``: ``(train, validation)``),
    ``task_curve[e]`` the mean per-task losses; ``failure`` names the epoch and batch where F or
    its gradient stopped being finite (training stopped there, keeping the last finite theta).
    """
    theta = np.array(theta0, dtype=np.float64, copy=True)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    best, best_theta, stale, step = np.inf, theta.copy(), 0, 0
    curve, task_curve = [], []
    for epoch in range(1, max_iter + 1):
        total, task_total = 0.0, 0.0
        for batch in epoch_batches(rows, n_batches, seed, epoch, positions):
            part = rows.take(batch).normalized()
            F, g, task_loss = objective(theta, part)
            # F and the trunk's gradient are global (all-reduced): every rank stops at the same step.
            if not np.isfinite(F) or not np.all(np.isfinite(g[: objective.net.n_trunk])):
                return theta, epoch - 1, False, "stopped", curve, task_curve, (
                    f"F or its gradient became non-finite in epoch {epoch} (batch step {step + 1}); training "
                    f"stopped and kept the weights of the last finite step")
            step += 1
            _core.adam_update(theta, g, m, v, learning_rate, beta1, beta2, epsilon, step)
            total += F
            task_total = task_total + task_loss
        loss = total / n_batches
        curve.append(loss)
        task_curve.append(task_total / n_batches)
        score = loss
        if validation is not None:
            score = objective(theta, validation, grad=False)[0]
            curve[-1] = (loss, score)
        if on_epoch is not None and on_epoch(epoch, theta, loss):
            return theta, epoch, False, f"stopped by the caller after {epoch} epochs", curve, task_curve, None
        if tol > 0:
            stale = stale + 1 if score > best - tol else 0
            if score < best:
                best, best_theta = score, theta.copy()
            if stale > n_iter_no_change:
                what = "validation loss" if validation is not None else "training loss"
                if validation is not None:
                    theta = best_theta
                return theta, epoch, True, (f"{what} did not improve by tol for {n_iter_no_change} consecutive "
                                            f"epochs (epoch {epoch})"), curve, task_curve, None
        elif validation is not None and score < best:
            best, best_theta = score, theta.copy()
    if validation is not None:  # (scikit-learn's MLP keeps the best validation weights too)
        theta = best_theta
    return theta, max_iter, False, f"max_iter={max_iter} epochs reached", curve, task_curve, None
