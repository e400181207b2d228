"""The training objective of a shared-trunk network on one rank's tasks.

    F(theta) = sum_t c_t L_t(theta) + (l2 / 2) ||weights||^2,

L_t the (sample-weighted) mean loss of task t over its labelled rows, the sum over the tasks of
every rank, the ridge term over every weight matrix (biases are not penalized, as in
scikit-learn's MLP). Task weighting:

* ``"equal"``: c_t = 1 / T;
* ``"uncertainty"`` (Kendall, Gal & Cipolla 2018): each task has a learned log-variance s_t and
  contributes ``(exp(-s_t) L_t + s_t) / T`` (LibMTL's UW times 2 / T, so that s = 0 is the equal
  weighting). At the optimum over s_t, exp(s_t) = L_t: noisier tasks weigh less.

theta = [network parameters | s (local tasks, uncertainty only)]. The trunk's block is shared:
its gradient is all-reduced once per evaluation, in one buffer with the per-task losses and F.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._config import blas_threads

__all__ = ["Rows", "TrunkObjective", "BlockSpace"]


@dataclass
class Rows:
    """Rows the core reads: inputs, targets and weights (n x n_cols), and each task's row range
    and target column."""

    X: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    row_begin: np.ndarray
    row_end: np.ndarray
    target_col: np.ndarray
    shared: bool

    @classmethod
    def of(cls, data) -> Rows:
        """The rows of a :class:`mtlx.TaskData`, weights not yet normalized (sample weights, 0 for
        a missing label)."""
        T = data.n_tasks
        if data.layout == "shared":
            n = data.X.shape[0]
            W = np.ones_like(data.Y) if data.sample_weight is None else data.sample_weight
            return cls(data.X, data.Y, np.ascontiguousarray(W, dtype=data.dtype), np.zeros(T, dtype=np.int64),
                       np.full(T, n, dtype=np.int64), np.arange(T, dtype=np.int64), True)
        w = np.ones(data.X.shape[0], dtype=data.dtype) if data.sample_weight is None else data.sample_weight
        return cls(data.X, data.y.reshape(-1, 1), np.ascontiguousarray(w, dtype=data.dtype).reshape(-1, 1),
                   np.ascontiguousarray(data.offsets[:-1]), np.ascontiguousarray(data.offsets[1:]),
                   np.zeros(T, dtype=np.int64), False)

    def normalized(self) -> Rows:
        """The same rows with each task's weights summing to 1 (its loss becomes a mean); a task
        without weight here keeps weight 0."""
        W = np.array(self.weights, copy=True)
        for t, (lo, hi, c) in enumerate(zip(self.row_begin, self.row_end, self.target_col)):
            total = W[lo:hi, c].sum(dtype=np.float64)
            if total > 0:
                W[lo:hi, c] /= W.dtype.type(total)
        return Rows(self.X, self.targets, W, self.row_begin, self.row_end, self.target_col, self.shared)

    def task_totals(self) -> np.ndarray:
        """Total weight of each task's rows (float64)."""
        return np.array([self.weights[lo:hi, c].sum(dtype=np.float64)
                         for lo, hi, c in zip(self.row_begin, self.row_end, self.target_col)])

    def take(self, per_task_rows) -> Rows:
        """The rows ``per_task_rows[t]`` (indices into task t's row range) of each task, gathered
        into contiguous arrays (a minibatch or a validation split). In the shared layout pass one
        index array: the rows every task shares."""
        if self.shared:
            idx = per_task_rows
            n = len(idx)
            T = len(self.row_begin)
            return Rows(np.ascontiguousarray(self.X[idx]), np.ascontiguousarray(self.targets[idx]),
                        np.ascontiguousarray(self.weights[idx]), np.zeros(T, dtype=np.int64),
                        np.full(T, n, dtype=np.int64), self.target_col, True)
        idx = np.concatenate([lo + np.asarray(r, dtype=np.int64) for lo, r in zip(self.row_begin, per_task_rows)]
                             ) if len(per_task_rows) else np.zeros(0, dtype=np.int64)
        sizes = np.array([len(r) for r in per_task_rows], dtype=np.int64)
        ends = np.cumsum(sizes)
        return Rows(np.ascontiguousarray(self.X[idx]), np.ascontiguousarray(self.targets[idx]),
                    np.ascontiguousarray(self.weights[idx]), ends - sizes, ends, self.target_col, False)


class BlockSpace:
    """Inner products of vectors made of a shared block (the same on every rank, counted once)
    and local blocks (summed over ranks)."""

    def __init__(self, n_shared: int, reduction):
        self.n_shared = n_shared
        self.reduction = reduction

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        ns = self.n_shared
        local = float(a[ns:] @ b[ns:])
        if self.reduction.distributed:
            local = float(self.reduction.allreduce(np.array([local, 0.0]))[0])
        return float(a[:ns] @ b[:ns]) + local

    def max_abs(self, a: np.ndarray) -> float:
        return self.reduction.max(float(np.max(np.abs(a), initial=0.0)))


class TrunkObjective:
    """F and its gradient for one rank's tasks (see the module docstring).

    Parameters
    ----------
    network : TrunkNetwork
        With this rank's heads.
    losses : list of Loss or None
        Loss of each local task (None for a softmax head).
    l2 : float
    uncertainty : bool
    reduction : LocalReduction or MPIReduction
    n_threads : int
    """

    def __init__(self, network, losses, l2: float, uncertainty: bool, reduction, n_threads: int):
        self.net = network
        self.codes = np.array([0 if loss is None else int(loss.code) for loss in losses], dtype=np.uint8)
        self.params = np.array([0.0 if loss is None else loss.param for loss in losses], dtype=np.float64)
        self.l2 = float(l2)
        self.uncertainty = bool(uncertainty)
        self.reduction = reduction
        self.n_threads = int(n_threads)
        self.T_global = len(reduction.global_ids)
        self.local_index = np.asarray(reduction.local_index, dtype=np.int64)
        self.mask = network.weight_mask()
        self.n_theta = network.n_params + (network.n_tasks if uncertainty else 0)
        self.space = BlockSpace(network.n_trunk, reduction)
        self.n_evaluations = 0

    def __call__(self, theta: np.ndarray, rows: Rows, grad: bool = True):
        """``(F, dF/dtheta or None, per-task losses L_t of every rank's tasks)`` on ``rows``
        (normalized weights)."""
        net, P, nt, T = self.net, self.net.n_params, self.net.n_trunk, self.T_global
        dtype = rows.X.dtype
        params = theta[:P]
        s = theta[P:] if self.uncertainty else None
        scale = np.full(net.n_tasks, 1.0 / T) if s is None else np.exp(-s) / T
        g_core = np.empty(P, dtype=dtype) if grad else None
        task_loss = np.zeros(net.n_tasks)
        buf = np.zeros((nt if grad else 0) + T + 2)
        failure = None
        F_local = 0.0
        try:
            with blas_threads(self.n_threads):
                F_local = _core.trunk_loss_grad(
                    rows.X, np.ascontiguousarray(params, dtype=dtype), g_core, task_loss, net.trunk_sizes,
                    net.task_sizes, net.code, rows.row_begin, rows.row_end, net.out_dims, self.codes, self.params,
                    rows.targets, rows.weights, rows.target_col, scale, self.n_threads)
        except Exception as exc:  # every rank must reach the Allreduce; it raises this on all of them
            failure = exc
        self.n_evaluations += 1
        mask = self.mask
        local = params[nt:]
        F_local += 0.5 * self.l2 * float(np.sum(local[mask[nt:]] ** 2))
        g = None
        if grad:
            g = np.empty(self.n_theta)
            g[:P] = g_core if failure is None else 0.0
            g[nt:P] += self.l2 * np.where(mask[nt:], local, 0.0)
            buf[:nt] = g[:nt]
        if s is not None:
            F_local += float(s.sum()) / T
            if grad:
                g[P:] = (1.0 - np.exp(-s) * task_loss) / T
        off = nt if grad else 0
        buf[off + self.local_index] = task_loss
        buf[-2] = F_local
        self.reduction.allreduce(buf, failure)
        trunk = params[:nt]
        F = float(buf[-2]) + 0.5 * self.l2 * float(np.sum(trunk[mask[:nt]] ** 2))
        if grad:
            g[:nt] = buf[:nt] + self.l2 * np.where(mask[:nt], trunk, 0.0)
        return F, g, buf[off: off + T].copy()
