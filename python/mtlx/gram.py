"""The squared loss through Gram statistics: X_t' X_t once, then O(d^2) per task and call.

When every task uses the squared loss and d is small against the rows of a task, a call of
the smooth part need not read the data: with ``G_t = X_t' X_t`` the gradient of task t is
``c_t (G_t dw_t + db_t s_t - X_t' r0_t)`` around a reference point with residual ``r0_t``, and
the value follows from the same expansion without cancellation (see cpp/include/mtlx/gram.hpp).
"""

from __future__ import annotations

import logging

import numpy as np

from . import _core
from ._config import blas_threads
from .data import TaskData
from .objective import SmoothLoss, direct_loss

__all__ = ["GramSquaredLoss", "gram_cost", "smooth_loss"]

log = logging.getLogger("mtlx")

#: The Gram form is chosen when one call costs at most this fraction of a direct pass ...
_MAX_CALL_RATIO = 0.5
#: ... and building the Gram matrices costs at most this many direct passes.
_MAX_SETUP_PASSES = 100.0


def gram_cost(data: TaskData) -> tuple[float, float]:
    """Cost model of the Gram form, in units of one direct pass over the data.

    Returns
    -------
    call : float
        One loss-and-gradient call in the Gram form (``T d^2`` multiply-adds) over one in the
        direct form (``d`` per row and task: ``d * sum_t m_t``).
    setup : float
        Building the Gram matrices (``d^2 / 2`` per row of X, read once in the shared layout).
    """
    d, T = data.n_features, data.n_tasks
    rows = data.X.shape[0]
    direct = float(d) * (rows * T if data.layout == "shared" else rows)
    if direct == 0.0:  # no local rows (an idle MPI rank): nothing to gain
        return np.inf, np.inf
    return T * float(d) * d / direct, 0.5 * rows * float(d) * d / direct


def work_per_call(data: TaskData) -> float:
    """Entries a call of the smooth part reads: X's (a direct pass), or the Gram form's ``T d^2``
    where the cost model picks it (what :func:`mtlx._config.resolve_n_threads` sizes the default
    thread count by)."""
    direct = float(data.X.size)
    return min(direct, data.n_tasks * float(data.n_features) ** 2) if gram_preferred(data) else direct


def gram_preferred(data: TaskData) -> bool:
    """Whether the cost model picks the Gram form for this data (see :func:`gram_cost`)."""
    if data.n_tasks == 0:
        return False
    call, setup = gram_cost(data)
    return call <= _MAX_CALL_RATIO and setup <= _MAX_SETUP_PASSES


def use_gram(data: TaskData, losses: list, gram) -> bool:
    """Decide the form of the squared loss: ``gram`` is ``"auto"``, True or False."""
    if gram is not True and gram is not False and gram != "auto":
        raise ValueError(f"gram must be 'auto', True or False, got {gram!r}")
    all_squared = all(loss.quadratic for loss in losses)
    if gram is True and not all_squared:
        raise ValueError("gram=True needs the squared loss for every task (the Gram form is exact only for it)")
    if gram is True and data.weighted:
        raise ValueError("gram=True needs unweighted data: per-entry weights (missing labels of shared X) differ per "
                         "task; solve() turns row weights into an unweighted problem itself")
    if gram is True and data.sparse:
        raise ValueError("gram=True needs a dense X (the Gram form's reference residuals read dense rows)")
    if data.n_tasks == 0 or data.weighted or data.sparse or (gram is not True and (gram is False or not all_squared)):
        return False  # an idle MPI rank has nothing to precompute
    call, setup = gram_cost(data)
    chosen = gram is True or gram_preferred(data)
    log.info("squared loss in the %s form (%s; per call %.3g and setup %.3g direct passes; "
             "layout %s, T=%d, d=%d)", "Gram" if chosen else "direct", "forced" if gram is True else "auto",
             call, setup, data.layout, data.n_tasks, data.n_features)
    return chosen


class GramSquaredLoss(SmoothLoss):
    """The squared loss of every task from per-task Gram statistics; same calls as SmoothLoss.

    Builds ``G_t = X_t' X_t`` and ``s_t = X_t' 1`` once (one ``G`` for the shared layout) and
    keeps, per task, a reference point whose residual was computed directly; the core moves it
    to the current point when the expansion around it would lose accuracy.

    Parameters
    ----------
    data : TaskData
    loss : str or sequence of str
        Must be ``"squared"`` for every task.
    task_weights : {"mean", "sum"} or array_like of shape (T,)
    n_threads : int, optional
    """

    def __init__(self, data: TaskData, loss="squared", task_weights="mean", n_threads: int | None = None):
        super().__init__(data, loss, task_weights, n_threads)
        if not self.quadratic:
            raise ValueError("the Gram form needs the squared loss for every task")
        T, d, dtype = data.n_tasks, data.n_features, data.dtype
        n_gram = 1 if data.layout == "shared" else T
        cached = getattr(data, "_gram_stats", None)  # sub-blocks of a parent's (see mtlx.path)
        if cached is not None:
            self.G, self.s = cached
        else:
            self.G = np.empty((n_gram, d, d), dtype=dtype)
            self.s = np.empty((n_gram, d), dtype=dtype)
            # On one BLAS thread: OpenBLAS's float32 syrk sums in an order that depends on its
            # thread count, and results must not (the build is once per fit).
            with blas_threads(1):
                if data.layout == "shared":
                    _core.gram_build_shared(data.X, self.G, self.s)
                else:
                    _core.gram_build_stacked(data.X, data.offsets, self.G, self.s)
        self.W0 = np.zeros((T, d), dtype=dtype)
        self.b0 = np.zeros(T, dtype=dtype)
        self.P0 = np.zeros((T, d))
        self.rr0 = np.full(T, np.nan)  # no reference yet: the first call computes it directly
        self.rs0 = np.zeros(T)

    def __call__(self, Wt: np.ndarray, b: np.ndarray | None, gWt: np.ndarray | None = None,
                 gb: np.ndarray | None = None) -> float:
        """f at (Wt, b); writes the gradient into ``gWt``, ``gb`` when given (as SmoothLoss)."""
        d = self.data
        ref = (self.G, self.s, self.W0, self.b0, self.P0, self.rr0, self.rs0)
        if d.layout == "shared":
            return _core.loss_grad_gram_shared(d.X, d.Y, self.weights, *ref, Wt, b, gWt, gb, self.n_threads)
        return _core.loss_grad_gram_stacked(d.X, d.y, d.offsets, self.weights, *ref, Wt, b, gWt, gb,
                                            self.n_threads)

    def eigen(self, centered: bool) -> tuple[np.ndarray, np.ndarray]:
        """Eigendecompositions of the (centered) Gram matrices, float64: ``(Q, lam)`` with
        ``G_g = Q_g diag(lam_g) Q_g'``, shapes (n_gram, d, d) and (n_gram, d).

        Centered: ``G_t - s_t s_t' / m_t``, the curvature of the coefficients once each task's
        intercept is at its optimum (the features centered per task). For the solvers that
        invert ``c_t G_t + r I`` for many r (:mod:`mtlx.admm`): one eigendecomposition each.
        """
        G = self.G.astype(np.float64)
        if centered:
            s = self.s.astype(np.float64)
            rows = np.full(1, float(self.data.X.shape[0])) if self.data.layout == "shared" else \
                self.data.n_samples.astype(np.float64)
            G = G - np.einsum("gj,gk->gjk", s, s) / np.maximum(rows, 1.0)[:, None, None]
        with blas_threads(1):  # (LAPACK's eigh on threaded BLAS: other bits for other thread counts)
            lam, Q = np.linalg.eigh(G)
        return Q, np.maximum(lam, 0.0)


def smooth_loss(data: TaskData, loss="squared", task_weights="mean", n_threads: int | None = None,
                gram="auto") -> SmoothLoss:
    """The smooth part in the form ``gram`` asks for (``"auto"``: by :func:`gram_cost`); data on a
    device are evaluated there, in the direct form."""
    if data.device is not None and gram is True:
        raise ValueError("gram=True: the Gram form runs on the host; data on a device are evaluated by the device "
                         "kernels (gram='auto' or False)")
    direct = direct_loss(data, loss, task_weights, n_threads)
    if data.device is not None:
        return direct
    if not use_gram(data, direct.loss_objects, gram):
        return direct
    return GramSquaredLoss(data, loss, task_weights, n_threads)
