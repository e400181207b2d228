"""Task-graph regularization: tasks joined by an edge are pulled toward each other."""

from __future__ import annotations

import numpy as np

from ._statistics import GatheredRows
from .base import Penalty

__all__ = ["Graph"]


class Graph(Penalty):
    """``w * ||W R||_F^2`` for an incidence matrix R (T x E): an edge (s, t) is a column with +1 at
    s and -1 at t, so the penalty is ``w * sum_edges ||w_s - w_t||^2`` (MALSAR's SRMTL, Zhou et
    al.; any real R works, e.g. ``R = I - 11^T / T`` gives twice the mean penalty).

    Parameters
    ----------
    R : array_like or scipy.sparse matrix of shape (n_tasks, n_edges)
    w : float, default 1.0

    Notes
    -----
    With ``L = R R^T`` (T x T, formed once) the penalty is ``w tr(W L W^T)``: smooth and
    quadratic, gradient ``2 w W L`` (Lipschitz constant ``2 w lambda_max(L)``). Alone it is
    applied by its prox, the linear map ``V (I + 2 tau w L)^-1``, through the eigendecomposition
    of L (computed once); beside a non-smooth penalty (SRMTL: ``Graph(R, a) + L1(b)``) it joins
    the smooth part. Under MPI ``W L`` needs the neighbours' columns: the statistics are W itself
    (gathered by an Allreduce of a zero-padded T x d buffer).
    """

    smooth = True
    quadratic = True
    runs_on_device = True  # (L and its eigenvectors moved to the device once, T x T each)
    stats_on_device = True
    _fields = ("R", "w")

    def __init__(self, R, w=1.0):
        super().__init__(w)
        if hasattr(R, "tocsr") and hasattr(R, "nnz"):
            self.R = R.tocsr()
            if not np.all(np.isfinite(self.R.data)):
                raise ValueError("Graph: R contains NaN or infinity")
            self._L = np.asarray((self.R @ self.R.T).toarray(), dtype=np.float64)
        else:
            self.R = np.asarray(R, dtype=np.float64)
            if self.R.ndim != 2:
                raise ValueError(f"Graph: R must be 2-D (n_tasks, n_edges), got shape {self.R.shape}")
            if not np.all(np.isfinite(self.R)):
                raise ValueError("Graph: R contains NaN or infinity")
            self._L = self.R @ self.R.T
        self._eig = None
        self._device = None  # (ops, L, mu, P) in a device's memory, made on its first use there

    def check(self, n_features, n_tasks):
        if self.R.shape[0] != n_tasks:
            raise ValueError(f"Graph: R has shape {self.R.shape}, expected ({n_tasks}, n_edges): one row per task")

    def _eigen(self):
        if self._eig is None:
            mu, P = np.linalg.eigh(self._L)
            self._eig = (np.maximum(mu, 0.0), P)
        return self._eig

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_device"] = None  # device memory is not copied or pickled
        return state

    def _matrices(self, ctx):
        """(L, mu, P) where the block's arrays live: moved to a device once (T x T each)."""
        mu, P = self._eigen()
        if not ctx.ops.on_device:
            return self._L, mu, P
        if self._device is None or self._device[0] is not ctx.ops:
            self._device = (ctx.ops, *(ctx.ops.asarray(a) for a in (self._L, mu, P)))
        return self._device[1:]

    def lipschitz(self, ctx):
        return 2.0 * self.w * float(self._eigen()[0][-1]) if self._L.size else 0.0

    def _value_of_full(self, W_rows: np.ndarray, L: np.ndarray) -> float:
        return self.w * float(np.einsum("tj,tj->", W_rows, L @ W_rows))

    def value(self, V, ctx):
        return self._value_of_full(V, self._matrices(ctx)[0])

    def value_and_gradient(self, V, grad, ctx):
        LV = self._matrices(ctx)[0] @ V
        if grad is not None:
            grad += 2.0 * self.w * LV
        return self.w * float(np.einsum("tj,tj->", V, LV))

    def prox(self, V, tau, out, ctx):
        L, mu, P = self._matrices(ctx)
        out[...] = P @ ((P.T @ V) / (1.0 + 2.0 * tau * self.w * mu)[:, None])
        return self._value_of_full(out, L)

    # -- distributed: W gathered ---------------------------------------------------------------------
    def n_stats(self, ctx):
        return GatheredRows.size(ctx.n_features, ctx.n_tasks)

    def local_stats(self, V, tau, out, stats, ctx):
        GatheredRows.local(V, stats, ctx)

    def prox_from_stats(self, V, stats, tau, out, ctx):
        full = GatheredRows.full(stats, ctx)
        result = np.empty_like(full)
        value = self.prox(full, tau, result, ctx)
        out[...] = result[ctx.local_index]
        return ctx.share(value)

    def value_from_stats(self, V, stats, ctx, grad=None):
        full = GatheredRows.full(stats, ctx)
        L = self._matrices(ctx)[0]
        LV = L[ctx.local_index] @ full  # the local rows of L W^T
        if grad is not None:
            grad += 2.0 * self.w * LV
        return ctx.share(self._value_of_full(full, L))

    def n_pieces(self, ctx):
        return 2 * self.n_stats(ctx)

    def local_pieces(self, Y, G, out, ctx):
        GatheredRows.local_pieces(Y, G, out, ctx)

    def stats_from_pieces(self, pieces, step, ctx):
        return GatheredRows.from_pieces(pieces, step, ctx)
