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
F and the per-task losses go through one Allreduce per evaluation, with the trunk's gradient as
a float sum (minibatches, one shared X) or beside it as an order-free sum (see TrunkObjective).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._config import blas_threads
from .._exact_sum import exact_row_sum

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
        totals = self.task_totals()
        inverse = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
        if self.shared:  # one column per task over every row
            W = self.weights * inverse.astype(self.weights.dtype)
        else:  # one column; task t's rows a range
            W = self.weights * np.repeat(inverse, self.row_end - self.row_begin).astype(self.weights.dtype)[:, None]
        return Rows(self.X, self.targets, np.ascontiguousarray(W), self.row_begin, self.row_end, self.target_col,
                    self.shared)

    def task_totals(self) -> np.ndarray:
        """Total weight of each task's rows (float64)."""
        if self.shared:
            return self.weights.sum(axis=0, dtype=np.float64)
        # Stacked ranges are consecutive and cover the rows: each non-empty task's segment ends where
        # the next non-empty one starts. (Each sum reads its own task's rows only, in order.)
        sums = np.zeros(len(self.row_begin))
        nonempty = self.row_end > self.row_begin
        if nonempty.any():
            sums[nonempty] = np.add.reduceat(self.weights[:, 0].astype(np.float64), self.row_begin[nonempty])
        return sums

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


def inner(a: np.ndarray, b: np.ndarray) -> float:
    """a . b without BLAS: numpy's ``@`` wakes its own OpenBLAS pool, whose threads then spin
    on the cores the core's products need (on 2 cores a full-batch step ran at 1.1x its one-thread
    speed instead of 1.9x)."""
    return float(np.einsum("i,i->", a, b))


class BlockSpace:
    """Inner products of vectors made of a shared block (the same on every rank, counted once) and
    per-task blocks (each rank its tasks').

    The per-task parts go to one slot per task in the global order before they are summed, so
    the sum does not depend on how the tasks are spread over ranks.

    Parameters
    ----------
    n_shared : int
    block_starts : ndarray
        Start of each local task's block after the shared one (relative to ``n_shared``), and the
        end of the last one.
    n_extra : int
        Per-task scalars after the blocks (one per task, in task order), 0 or 1.
    reduction : LocalReduction or MPIReduction
    """

    def __init__(self, n_shared: int, block_starts: np.ndarray, n_extra: int, reduction):
        self.n_shared = n_shared
        self.starts = np.asarray(block_starts[:-1], dtype=np.int64)
        self.n_blocks = int(block_starts[-1])
        self.n_extra = n_extra
        self.reduction = reduction
        self.local_index = np.asarray(reduction.local_index, dtype=np.int64)
        self.n_global = len(reduction.global_ids)

    def per_task(self, values: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Slots (T_global + 1, the last a failure flag) with each local task's sum of ``values``
        over its block (plus its ``extra``)."""
        slots = np.zeros(self.n_global + 1)
        if len(self.starts):
            slots[self.local_index] = np.add.reduceat(values, self.starts)
            if extra is not None:
                slots[self.local_index] += extra
        return slots

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        ns, nb = self.n_shared, self.n_shared + self.n_blocks
        extra = a[nb:] * b[nb:] if self.n_extra else None
        slots = self.reduction.allreduce(self.per_task(a[ns:nb] * b[ns:nb], extra))
        return inner(a[:ns], b[:ns]) + float(np.sum(slots[:-1]))

    def max_abs(self, a: np.ndarray) -> float:
        return self.reduction.max(float(np.max(np.abs(a), initial=0.0)))


class TrunkObjective:
    """F and its gradient for one rank's tasks (see the module docstring).

    Every per-task quantity (loss, ridge term, inner product) is summed through one slot per task
    in the global order, and on tasks with rows of their own (stacked or per-task inputs) the
    trunk's gradient is the order-free sum of the tasks' shares (:mod:`mtlx._exact_sum`): one
    process and any number of ranks then compute the same bits. On one X shared by every task
    (the tasks' columns split over ranks) the trunk's gradient is all-reduced as a float sum
    (equal to rounding).

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
    exact : bool
        Sum the tasks' shares of the trunk's gradient order-free (tasks with rows of their own):
        the full-batch objective of L-BFGS. Minibatches (Adam) hold a few rows per task, where a
        per-task backward pass costs more than the whole batch: they all-reduce the float sum.
    """

    def __init__(self, network, losses, l2: float, uncertainty: bool, reduction, n_threads: int,
                 exact: bool = True):
        self.net = network
        self.codes = np.array([0 if loss is None else int(loss.code) for loss in losses], dtype=np.uint8)
        self.params = np.array([0.0 if loss is None else loss.param for loss in losses], dtype=np.float64)
        self.l2 = float(l2)
        self.uncertainty = bool(uncertainty)
        self.reduction = reduction
        self.n_threads = int(n_threads)
        self.T_global = len(reduction.global_ids)
        self.local_index = np.asarray(reduction.local_index, dtype=np.int64)
        self.exact = bool(exact)
        self._g_core = None  # the kernel's gradient, kept between calls (never returned)
        self.mask = network.weight_mask().astype(np.float64)  # 1 on weight matrices, 0 on biases
        self.n_theta = network.n_params + (network.n_tasks if uncertainty else 0)
        nt = network.n_trunk
        self.space = BlockSpace(nt, network.task_starts - nt, int(uncertainty), reduction)

    def blas_threads(self, shared: bool, n_rows: int) -> int:
        """BLAS's threads for the core's passes over ``n_rows`` rows: one X shared by every task
        over more rows than a block (``_core.trunk_block_rows``) is evaluated in runs of blocks
        that the core's threads take, each calling BLAS on its own (one thread each); otherwise
        BLAS threads the layer products."""
        return 1 if shared and n_rows > _core.trunk_block_rows else self.n_threads

    def __call__(self, theta: np.ndarray, rows: Rows, grad: bool = True):
        """``(F, dF/dtheta or None, per-task losses L_t of every rank's tasks)`` on ``rows``
        (normalized weights)."""
        net, P, nt, T = self.net, self.net.n_params, self.net.n_trunk, self.T_global
        dtype = rows.X.dtype
        params = theta[:P]
        s = theta[P:] if self.uncertainty else None
        scale = np.full(net.n_tasks, 1.0 / T) if s is None else np.exp(-s) / T
        if grad and (self._g_core is None or self._g_core.dtype != dtype):
            self._g_core = np.empty(P, dtype=dtype)
        g_core = self._g_core if grad else None
        exact = grad and self.exact and not rows.shared
        per_task = np.empty((net.n_tasks, nt), dtype=dtype) if exact else None
        task_loss = np.zeros(net.n_tasks)
        failure = None
        try:
            with blas_threads(self.blas_threads(rows.shared, rows.X.shape[0])):
                _core.trunk_loss_grad(
                    rows.X, params if params.dtype == dtype else params.astype(dtype), g_core, task_loss,
                    net.trunk_sizes, net.task_sizes, net.code, rows.row_begin, rows.row_end, net.out_dims,
                    self.codes, self.params, rows.targets, rows.weights, rows.target_col, scale, self.n_threads,
                    per_task, rows.shared)
        except Exception as exc:  # every rank must reach the Allreduce; it raises this on all of them
            failure = exc
        weights = params[nt:] * self.mask[nt:]
        # Per task: its weighted loss, its ridge term, and (uncertainty) its s_t / T.
        F_slots = self.space.per_task(0.5 * self.l2 * weights * weights,
                                      scale * task_loss + (0.0 if s is None else s / T))
        n_sum = nt if grad and not exact else 0
        buf = np.empty(2 * T + n_sum + 1)
        buf[:T] = F_slots[:-1]
        buf[T: 2 * T] = 0.0
        buf[T + self.local_index] = task_loss
        if n_sum:
            buf[2 * T: 2 * T + nt] = g_core[:nt] if failure is None else 0.0
        buf[-1] = 0.0
        self.reduction.allreduce(buf, failure)
        trunk_weights = params[:nt] * self.mask[:nt]
        F = float(np.sum(buf[:T])) + 0.5 * self.l2 * inner(trunk_weights, trunk_weights)
        if not grad:
            return F, None, buf[T: 2 * T].copy()
        g = np.empty(self.n_theta)
        g[nt:P] = g_core[nt:]
        g[nt:P] += self.l2 * weights
        if s is not None:
            g[P:] = (1.0 - np.exp(-s) * task_loss) / T
        if exact:
            g[:nt] = exact_row_sum(per_task, self.reduction) + self.l2 * trunk_weights
        else:
            g[:nt] = buf[2 * T: 2 * T + nt] + self.l2 * trunk_weights
        return F, g, buf[T: 2 * T].copy()
