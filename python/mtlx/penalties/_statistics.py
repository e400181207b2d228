"""Statistics that penalties all-reduce under MPI, shared by several of them.

* the feature Gram matrix ``V' V = W W^T`` (d x d, a sum over tasks), packed as its upper
  triangle row by row: its eigendecomposition gives the singular values and left singular
  vectors of W (trace norm, clustered MTL);
* every task's row ``V`` gathered: each rank writes its rows into a zero T x d buffer and the
  sum over ranks is W itself (penalties whose prox needs whole rows of W, such as l1/l-inf).

Both are polynomial in the step s for ``V = Y - s G``: quadratic (``A - 2 s B + s^2 C``) and
linear (``Y - s G``), so they also provide the step-free pieces of the solver's one-Allreduce
iteration.
"""

from __future__ import annotations

import numpy as np

from .. import _core

__all__ = ["GatheredRows", "FeatureGram", "scaled_norms", "singular_values", "unpack_upper"]


def scaled_norms(M: np.ndarray, axis: int) -> np.ndarray:
    """Euclidean norms along ``axis``, each scaled by its largest entry first (as BLAS nrm2): the
    squares of a vector of norm 1e200 overflow and those of norm 1e-170 underflow otherwise.
    Host arrays take the core's pass; device arrays (CuPy) the numpy form, which CuPy runs."""
    if M.size == 0:  # (zeros beside M: on a device, device zeros)
        return np.zeros_like(M, dtype=np.float64, shape=tuple(int(s) for s in np.delete(M.shape, axis)))
    rows = M if axis in (1, -1) else M.T
    if type(rows) is np.ndarray and rows.ndim == 2 and rows.dtype == np.float64 and rows.flags.c_contiguous:
        # One native pass (a plain sum of squares where it is in range): the numpy form below
        # made five passes and three temporaries, a seventh of a sparse working-set solve.
        return _core.row_norms(rows)
    scale = np.abs(M).max(axis=axis, keepdims=True)
    safe = np.where(scale > 0, scale, 1.0)
    scale = np.squeeze(scale, axis=axis)
    with np.errstate(invalid="ignore"):  # (inf / inf in a row holding inf: its norm is inf)
        norms = scale * np.sqrt(np.sum((M / safe) ** 2, axis=axis))
    return np.where(np.isinf(scale), scale, norms)


def unpack_upper(packed: np.ndarray, d: int) -> np.ndarray:
    """The d x d matrix whose upper triangle (row by row) is ``packed`` (eigh with UPLO="U" reads only that)."""
    G = np.zeros_like(packed, dtype=np.float64, shape=(d, d))  # (beside packed: on a device, there)
    G[np.triu_indices(d)] = packed
    return G


def singular_values(lam: np.ndarray) -> np.ndarray:
    """Singular values of W from the eigenvalues of W W^T.

    Eigenvalues within rounding of zero (below d * eps * the largest, the Gram matrix's own
    error) are taken as zero: their square roots would be noise of size sqrt(eps) * s_max.
    """
    floor = lam.size * np.finfo(np.float64).eps * max(float(lam[-1]) if lam.size else 0.0, 0.0)
    return np.sqrt(np.where(lam > floor, lam, 0.0))


class FeatureGram:
    """``V' V`` (upper triangle, d (d + 1) / 2 numbers) as statistics and quadratic pieces."""

    @staticmethod
    def size(d: int) -> int:
        return d * (d + 1) // 2

    @staticmethod
    def local(V: np.ndarray, out: np.ndarray) -> None:
        d = V.shape[1]
        out[:] = (V.T @ V)[np.triu_indices(d)]

    @staticmethod
    def local_pieces(Y: np.ndarray, G: np.ndarray, out: np.ndarray) -> None:
        d = Y.shape[1]
        k = FeatureGram.size(d)
        upper = np.triu_indices(d)
        cross = Y.T @ G
        out[:k] = (Y.T @ Y)[upper]
        out[k : 2 * k] = (0.5 * (cross + cross.T))[upper]
        out[2 * k :] = (G.T @ G)[upper]

    @staticmethod
    def from_pieces(pieces: np.ndarray, step: float, d: int) -> np.ndarray:
        k = FeatureGram.size(d)
        return pieces[:k] - 2.0 * step * pieces[k : 2 * k] + step * step * pieces[2 * k :]

    @staticmethod
    def eigh(stats: np.ndarray, d: int):
        """(singular values of W, increasing; left singular vectors as columns) from the statistics."""
        lam, U = np.linalg.eigh(unpack_upper(stats, d), UPLO="U")
        return singular_values(lam), U


class GatheredRows:
    """Every task's row of V (T x d over all ranks) as statistics, and linear pieces ``[Y, G]``."""

    @staticmethod
    def size(d: int, n_tasks: int) -> int:
        return d * n_tasks

    @staticmethod
    def local(V: np.ndarray, out: np.ndarray, ctx) -> None:
        ctx.scatter_rows(V, out.reshape(ctx.n_tasks, -1))

    @staticmethod
    def local_pieces(Y: np.ndarray, G: np.ndarray, out: np.ndarray, ctx) -> None:
        k = ctx.n_tasks * Y.shape[1]
        ctx.scatter_rows(Y, out[:k].reshape(ctx.n_tasks, -1))
        ctx.scatter_rows(G, out[k:].reshape(ctx.n_tasks, -1))

    @staticmethod
    def from_pieces(pieces: np.ndarray, step: float, ctx) -> np.ndarray:
        k = pieces.size // 2
        return pieces[:k] - step * pieces[k:]

    @staticmethod
    def full(stats: np.ndarray, ctx) -> np.ndarray:
        """The gathered (T, d) matrix."""
        return stats.reshape(ctx.n_tasks, -1)
