"""Adam on minibatches that draw rows from every task in proportion.

Sampling rule: each epoch every task's rows are shuffled on their own (the shared layout: the
rows every task shares are shuffled once) and cut into the same number B of nearly equal
chunks (``numpy.array_split``); batch b holds chunk b of every task. So each batch holds about
m_t / B rows of task t, whatever the tasks' sizes, and every row is seen once per epoch. A task
of fewer than B rows is absent from some batches: their F leaves it out (no loss, no
uncertainty term) and its loss curve averages the batches that held it.
B = ceil(total rows / batch_size), the total over every rank's tasks (the shared layout: the
number of shared rows). Each batch estimates F with each task's loss a mean over its rows in the
batch. The permutations are drawn from (random_state, epoch) and the task's position in the
global order: the same batches on any number of ranks.

Step: bias-corrected Adam (the core's ``AdamStep``; scikit-learn's and PyTorch's update), the
trunk's gradient all-reduced once per batch. Stopping follows scikit-learn's MLP: after
``n_iter_no_change`` epochs whose loss (or, with early stopping, validation loss) did not improve
on the best by at least tol; tol = 0 runs max_iter epochs.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .._config import blas_threads

__all__ = ["AdamState", "epoch_batches", "minimize_adam"]


def _chunk_sizes(m: int, n_batches: int) -> np.ndarray:
    """Sizes of ``numpy.array_split``'s n_batches chunks of m items."""
    sizes = np.full(n_batches, m // n_batches, dtype=np.int64)
    sizes[: m % n_batches] += 1
    return sizes


def epoch_batches(rows, n_batches: int, seed: int, epoch: int, positions):
    """The batches of one epoch as ``(batch_rows, batch_sizes)``: the row indices of batch 0, then
    batch 1, ... (within a batch, task 0's rows, then task 1's, ...), and the number of rows of
    each task in each batch, (n_batches, T) (a shared X: (n_batches, 1))."""
    if rows.shared:
        perm = np.random.default_rng([seed, 2, epoch]).permutation(rows.X.shape[0])
        return perm.astype(np.int64), _chunk_sizes(len(perm), n_batches)[:, None]
    perms, batch_of, task_of, sizes = [], [], [], []
    for t, (lo, hi, position) in enumerate(zip(rows.row_begin, rows.row_end, positions)):
        m = int(hi - lo)
        perms.append(lo + np.random.default_rng([seed, 3, epoch, int(position)]).permutation(m))
        sizes.append(_chunk_sizes(m, n_batches))
        batch_of.append(np.repeat(np.arange(n_batches), sizes[-1]))
        task_of.append(np.full(m, t))
    if not perms:
        return np.zeros(0, dtype=np.int64), np.zeros((n_batches, 0), dtype=np.int64)
    order = np.lexsort((np.concatenate(task_of), np.concatenate(batch_of)))  # stable: each chunk keeps its order
    return np.concatenate(perms)[order].astype(np.int64), np.ascontiguousarray(np.column_stack(sizes))


class AdamState:
    """Where Adam stands after ``epoch`` epochs: weights, moments, step count, the early-stopping
    bookkeeping and the curves. Saved by a checkpoint, resumed from."""

    def __init__(self, theta: np.ndarray, epoch: int = 0, step: int = 0, m=None, v=None, best: float = np.inf,
                 best_theta=None, stale: int = 0, curve=(), task_curve=()):
        self.theta = theta
        self.m = np.zeros_like(theta) if m is None else m
        self.v = np.zeros_like(theta) if v is None else v
        self.epoch, self.step, self.best, self.stale = int(epoch), int(step), float(best), int(stale)
        self.best_theta = theta.copy() if best_theta is None else best_theta
        self.curve, self.task_curve = list(curve), list(task_curve)


def minimize_adam(objective, theta0, rows, *, n_batches: int, seed: int, positions, max_iter: int, tol: float,
                  learning_rate: float, validation=None, n_iter_no_change: int = 10, beta1: float = 0.9,
                  beta2: float = 0.999, epsilon: float = 1e-8, on_epoch=None, state: AdamState | None = None):
    """Train by Adam; returns ``(theta, n_epochs, converged, message, curve, task_curve, failure)``.

    Each epoch runs in the core (``trunk_adam_epoch``: gather, forward, backward, the one
    reduction, the step), so a batch costs no Python. ``rows`` holds the raw weights (each batch
    normalizes its own). ``curve[e]`` is the mean batch F of epoch e (with ``validation``:
    ``(train, validation)``), ``task_curve[e]`` the mean per-task losses; ``failure`` names the
    epoch where F or the trunk's gradient stopped being finite (training stopped before that
    step, keeping the last finite weights). ``on_epoch(state)`` runs after each epoch (True
    stops); ``state`` resumes a run (``max_iter`` counts every epoch, those before included).
    """
    net, reduction = objective.net, objective.reduction
    if state is None:
        state = AdamState(np.array(theta0, dtype=np.float64, copy=True))
    mask = np.ascontiguousarray(objective.mask[: net.n_params], dtype=np.uint8)
    T = objective.T_global
    reduce = reduction.allreduce if reduction.distributed else None
    st = state
    for epoch in range(st.epoch + 1, max_iter + 1):
        batch_rows, batch_sizes = epoch_batches(rows, n_batches, seed, epoch, positions)
        task_sum, task_batches = np.zeros(T), np.zeros(T)
        with blas_threads(objective.blas_threads(rows.shared, int(batch_sizes.sum(axis=1).max(initial=0)))):
            total, done, finite, step = _core.trunk_adam_epoch(
                rows.X, rows.targets, rows.weights, net.trunk_sizes, net.task_sizes, net.code, rows.row_begin,
                rows.row_end, net.out_dims, objective.codes, objective.params, rows.target_col, rows.shared,
                batch_rows, batch_sizes, st.theta, st.m, st.v, st.step, mask, learning_rate, beta1, beta2, epsilon,
                objective.l2, objective.uncertainty, 1.0 / T, objective.local_index, task_sum, task_batches,
                reduce, objective.n_threads)
        st.step = step
        if not finite:
            return st.theta, epoch - 1, False, "stopped", st.curve, st.task_curve, (
                f"F or its gradient became non-finite in epoch {epoch} (batch {done + 1} of {n_batches}, step "
                f"{step + 1}); training stopped and kept the weights of the last finite step")
        loss = total / n_batches
        st.curve.append(loss)
        # Each task's mean over the batches that held it (a task of fewer rows than batches is
        # absent from some).
        st.task_curve.append(task_sum / np.maximum(task_batches, 1.0))
        score = loss
        if validation is not None:
            score = objective(st.theta, validation, grad=False)[0]
            st.curve[-1] = (loss, score)
        st.epoch = epoch
        stop = None
        if tol > 0:
            st.stale = st.stale + 1 if score > st.best - tol else 0
            if score < st.best:
                st.best, st.best_theta = score, st.theta.copy()
            if st.stale > n_iter_no_change:
                what = "validation loss" if validation is not None else "training loss"
                stop = f"{what} did not improve by tol for {n_iter_no_change} consecutive epochs (epoch {epoch})"
        elif validation is not None and score < st.best:
            st.best, st.best_theta = score, st.theta.copy()
        if on_epoch is not None and on_epoch(st):
            return st.theta, epoch, False, f"stopped by the caller after {epoch} epochs", st.curve, st.task_curve, None
        if stop is not None:
            theta = st.best_theta if validation is not None else st.theta
            return theta, epoch, True, stop, st.curve, st.task_curve, None
    theta = st.best_theta if validation is not None else st.theta  # (scikit-learn's MLP keeps the best too)
    return theta, max(st.epoch, 0), False, f"max_iter={max_iter} epochs reached", st.curve, st.task_curve, None
