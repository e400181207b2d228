"""Coupling penalties g(W) and their proximal operators.

A penalty tells the solver three things (the interface later formulations implement too):

* ``value(Wt)``: g at W;
* ``prox(Vt, tau, out)``: ``out = argmin_U 0.5 ||U - V||_F^2 + tau g(U)`` and returns g(out);
* ``reduction``: the global quantity a distributed solve must all-reduce across ranks,
  when tasks (columns of W) live on different ranks, before the prox can be applied locally.

=============  ==================================  ==========================================
name           g(W)                                global reduction (tasks split over ranks)
=============  ==================================  ==========================================
``"none"``     0                                   nothing
``"l1"``       sum_jt |w_jt|                       a scalar (the value); the prox is local
``"l21"``      sum_j ||row j of W||_2              squared row norms, a d-vector
``"trace"``    sum of singular values of W         the Gram matrix W W^T (d (d + 1) / 2 numbers)
``"mean"``     0.5 sum_t ||w_t - mean_s w_s||^2    the sum of the columns, a d-vector (+ 2 scalars)
=============  ==================================  ==========================================

``"mean"`` is the mean-regularized model of Evgeniou & Pontil (KDD 2004): each task is pulled
toward the average task; with ``l2`` it is their regularized MTL.

Penalties still to come state theirs the same way: a task graph ||W R||_F^2 needs the
neighbours' columns (a d x T gather, or W R through a sparse Allreduce), a shared-plus-specific
split w_t = w_0 + v_t needs sum_t v_t (a d-vector, for the update of w_0), the mean-regularized
model (``"mean"``) needs the mean (a d-vector), and dirty models (W = P + Q with one
penalty per block) need the reductions of both blocks' penalties, packed in one buffer.

When the columns of W are split over ranks, a penalty with a reduction applies its prox in three
steps (:meth:`Penalty.local_stats`, an Allreduce of the statistics, :meth:`Penalty.prox_from_stats`),
so each rank shrinks only its own columns with the global statistics.

Internally W is handled as ``Wt``: T x d, row-major (row t = w_t), i.e. W (d x T) in
column-major order, so each task's coefficients are contiguous.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._config import resolve_n_threads
from ._validate import as_real_array, check_finite, check_nonnegative

__all__ = ["PENALTIES", "Penalty", "get_penalty", "penalty_value", "prox"]


class Penalty:
    """A penalty g computed by the core.

    Parameters
    ----------
    name : str
    code : int
        Code of ``mtlx::PenaltyKind`` in cpp/include/mtlx/prox.hpp.
    reduction : str
        What a distributed solve must all-reduce (see the module docstring).
    """

    def __init__(self, name: str, code: int, reduction: str):
        self.name = name
        self.code = code
        self.reduction = reduction

    def stats_size(self, n_features: int) -> int:
        """Length of the statistics a distributed prox must all-reduce (0: the prox is local)."""
        return {"l21": n_features, "trace": n_features * (n_features + 1) // 2, "mean": n_features + 2}.get(
            self.name, 0)

    def local_stats(self, Vt: np.ndarray, out: np.ndarray) -> None:
        """This rank's part of the global statistics of V, summed over its tasks, into ``out``.

        l21: the squared row norms of W, ``sum_t v_jt^2`` (d,); trace: the Gram matrix
        ``W W^T = sum_t v_t v_t^T``, its upper triangle packed row by row (d (d + 1) / 2 numbers:
        half the bytes of the full matrix on the wire); mean: ``sum_t v_t`` (d,), then
        ``sum_t ||v_t||^2`` and the number of tasks. Accumulated in float64.
        """
        V = Vt.astype(np.float64, copy=False)
        if self.name == "l21":
            np.einsum("tj,tj->j", V, V, out=out)
        elif self.name == "trace":
            out[:] = (V.T @ V)[np.triu_indices(V.shape[1])]
        elif self.name == "mean":
            d = V.shape[1]
            V.sum(axis=0, out=out[:d])
            out[d] = np.einsum("tj,tj->", V, V)
            out[d + 1] = V.shape[0]
        else:
            raise ValueError(f"penalty {self.name!r} has a local prox and no statistics")

    def pieces_size(self, n_features: int) -> int:
        """Length of :meth:`local_pieces`: what gives the statistics of Y - s G for any step s."""
        if self.name == "mean":
            return 2 * n_features + 4
        return 3 * self.stats_size(n_features)

    def local_pieces(self, Yt: np.ndarray, Gt: np.ndarray, out: np.ndarray) -> None:
        """This rank's step-free pieces of the statistics of V = Y - s G, summed over its tasks.

        The statistics are quadratic in V, so ``stats(Y - s G) = A - 2 s B + s^2 C`` with
        ``A = stats(Y)``, ``C = stats(G)`` and B their symmetric cross term (the mean's sums are
        linear: ``sum v = sum y - s sum g``). All-reducing the pieces once serves every step the
        line search tries, and lets the pieces of the next point travel with the current trial's
        scalars (one Allreduce per iteration).
        """
        Y, G = Yt.astype(np.float64, copy=False), Gt.astype(np.float64, copy=False)
        d = Y.shape[1]
        if self.name == "mean":
            Y.sum(axis=0, out=out[:d])
            G.sum(axis=0, out=out[d : 2 * d])
            out[2 * d : 2 * d + 4] = (np.einsum("tj,tj->", Y, Y), np.einsum("tj,tj->", Y, G),
                                      np.einsum("tj,tj->", G, G), Y.shape[0])
            return
        k = self.stats_size(d)
        if self.name == "l21":
            np.einsum("tj,tj->j", Y, Y, out=out[:k])
            np.einsum("tj,tj->j", Y, G, out=out[k : 2 * k])
            np.einsum("tj,tj->j", G, G, out=out[2 * k :])
        elif self.name == "trace":
            upper = np.triu_indices(d)
            cross = Y.T @ G
            out[:k] = (Y.T @ Y)[upper]
            out[k : 2 * k] = (0.5 * (cross + cross.T))[upper]
            out[2 * k :] = (G.T @ G)[upper]
        else:
            raise ValueError(f"penalty {self.name!r} has a local prox and no statistics")

    def stats_from_pieces(self, pieces: np.ndarray, step: float, n_features: int) -> np.ndarray:
        """Global statistics of ``V = Y - step * G`` from the all-reduced :meth:`local_pieces`."""
        d = n_features
        if self.name == "mean":
            yy, yg, gg, count = pieces[2 * d : 2 * d + 4]
            return np.concatenate([pieces[:d] - step * pieces[d : 2 * d],
                                   [max(yy - 2.0 * step * yg + step * step * gg, 0.0), count]])
        k = self.stats_size(d)
        stats = pieces[:k] - 2.0 * step * pieces[k : 2 * k] + step * step * pieces[2 * k :]
        if self.name == "l21":
            np.maximum(stats, 0.0, out=stats)  # squared norms: rounding must not make them negative
        return stats

    def prox_from_stats(self, Vt: np.ndarray, stats: np.ndarray, tau: float, out: np.ndarray) -> float:
        """``out = prox_{tau g}(V)`` on this rank's columns given the global statistics of V.

        Returns the global g(out) (the same on every rank).

        Notes
        -----
        l21: row j scaled by ``max(0, 1 - tau / n_j)`` with ``n_j = sqrt(stats_j)``, and
        ``g(out) = sum_j max(n_j - tau, 0)``. trace: with ``W W^T = U diag(s^2) U^T`` (LAPACK
        ``syevd``), ``out = U diag(max(s - tau, 0) / s) U^T V`` (singular value thresholding
        applied to the local columns), ``g(out) = sum max(s - tau, 0)``. An eigenvalue of the
        Gram matrix carries an absolute error of about eps * s_max^2, so a singular value s near
        tau is off by eps * s_max^2 / s: relative to W that is eps * s_max / tau, far below the
        solver's tolerances for any step size the line search takes.
        """
        if self.name == "l21":
            norms = np.sqrt(stats)
            factor = np.where(norms > tau, 1.0 - tau / np.where(norms > 0, norms, 1.0), 0.0)
            np.multiply(Vt, factor.astype(Vt.dtype, copy=False), out=out)
            return float(np.dot(factor, norms))
        if self.name == "trace":
            lam, U = np.linalg.eigh(_unpack_upper(stats, Vt.shape[1]), UPLO="U")
            s = _singular_values(lam)
            keep = s > tau
            shrink = np.zeros_like(s)
            shrink[keep] = 1.0 - tau / s[keep]
            M = (U[:, keep] * shrink[keep]) @ U[:, keep].T  # symmetric: out_t = M v_t
            out[...] = Vt @ M.astype(Vt.dtype, copy=False)  # a temporary first: out may alias Vt
            return float(np.sum(s[keep] - tau))
        if self.name == "mean":
            mean, spread = _mean_and_spread(stats)
            shrink = 1.0 / (1.0 + tau)
            np.add(mean, (Vt - mean) * shrink, out=out, casting="unsafe")
            return 0.5 * spread * shrink * shrink
        raise ValueError(f"penalty {self.name!r} has a local prox and no statistics")

    def value_from_stats(self, stats: np.ndarray) -> float:
        """The global g(W) from the global statistics of W."""
        if self.name == "l21":
            return float(np.sum(np.sqrt(stats)))
        if self.name == "trace":
            d = int(round((np.sqrt(8 * stats.size + 1) - 1) / 2))
            return float(np.sum(_singular_values(np.linalg.eigvalsh(_unpack_upper(stats, d), UPLO="U"))))
        if self.name == "mean":
            return 0.5 * _mean_and_spread(stats)[1]
        raise ValueError(f"penalty {self.name!r} has a local value and no statistics")

    def value(self, Wt: np.ndarray, n_threads: int = 1) -> float:
        """g(W) for ``Wt`` of shape (T, d), C-contiguous."""
        return _core.penalty_value(self.code, Wt, n_threads)

    def prox(self, Vt: np.ndarray, tau: float, out: np.ndarray, n_threads: int = 1) -> float:
        """``out = prox_{tau g}(V)`` (``out`` may be ``Vt`` itself); returns g(out)."""
        return _core.prox(self.code, Vt, tau, out, n_threads)

    def __repr__(self) -> str:
        return f"Penalty({self.name!r})"


def _mean_and_spread(stats: np.ndarray):
    """Mean task vector and ``sum_t ||v_t - mean||^2`` from ``[sum_t v_t, sum_t ||v_t||^2, T]``.

    The spread comes from ``sum ||v_t||^2 - T ||mean||^2``: it loses digits when the tasks are
    nearly equal, an absolute error of about eps * sum ||v_t||^2 in the objective only (the
    prox itself needs just the mean, which is exact to rounding).
    """
    d = stats.size - 2
    n_tasks = stats[d + 1]
    if n_tasks == 0:
        return np.zeros(d), 0.0
    mean = stats[:d] / n_tasks
    return mean, max(float(stats[d] - n_tasks * np.dot(mean, mean)), 0.0)


def _unpack_upper(packed: np.ndarray, d: int) -> np.ndarray:
    """The d x d matrix whose upper triangle (row by row) is ``packed`` (eigh with UPLO="U" reads only that)."""
    G = np.zeros((d, d))
    G[np.triu_indices(d)] = packed
    return G


def _singular_values(lam: np.ndarray) -> np.ndarray:
    """Singular values of W from the eigenvalues of W W^T.

    Eigenvalues within rounding of zero (below d * eps * the largest, the Gram matrix's own
    error) are taken as zero: their square roots would be noise of size sqrt(eps) * s_max.
    """
    floor = lam.size * np.finfo(np.float64).eps * max(float(lam[-1]) if lam.size else 0.0, 0.0)
    return np.sqrt(np.where(lam > floor, lam, 0.0))


#: Every penalty by name.
PENALTIES = {
    "none": Penalty("none", 0, "nothing"),
    "l1": Penalty("l1", 1, "the value (a scalar)"),
    "l21": Penalty("l21", 2, "squared row norms of W (a d-vector)"),
    "trace": Penalty("trace", 3, "the Gram matrix W W^T (d x d, its upper triangle)"),
    "mean": Penalty("mean", 4, "the sum of the task vectors (a d-vector, for the mean)"),
}


def get_penalty(penalty) -> Penalty:
    """The :class:`Penalty` for a name (or the penalty itself)."""
    if isinstance(penalty, Penalty):
        return penalty
    if not isinstance(penalty, str) or penalty not in PENALTIES:
        raise ValueError(f"unknown penalty {penalty!r}; choose one of {sorted(PENALTIES)}")
    return PENALTIES[penalty]


def _as_task_major(W, name: str = "W") -> np.ndarray:
    """W (d, T) as a C-contiguous (T, d) float array; a Fortran-ordered W costs no copy."""
    W = as_real_array(W, name, ndim=2)
    dtype = W.dtype if W.dtype in (np.float32, np.float64) else np.float64
    Wt = np.ascontiguousarray(W.T, dtype=dtype)
    check_finite(Wt, name)
    return Wt


def prox(W, penalty: str = "l21", step: float = 1.0, alpha: float = 1.0, *, n_threads: int | None = None):
    """Proximal operator of ``step * alpha * g`` at ``W``.

    Parameters
    ----------
    W : array_like, shape (n_features, n_tasks)
        Column t holds task t (float32 stays float32).
    penalty : {"none", "l1", "l21", "trace", "mean"}
    step : float
        Step size (> 0 in a proximal-gradient method; 0 returns W).
    alpha : float
        Regularization strength.
    n_threads : int, optional

    Returns
    -------
    ndarray, shape (n_features, n_tasks)
        ``argmin_U 0.5 ||U - W||_F^2 + step * alpha * g(U)``.

    Notes
    -----
    l1: soft thresholding ``sign(w) max(|w| - tau, 0)``; l21: each row scaled by
    ``max(0, 1 - tau / ||row||)``; trace: singular values shrunk, ``U max(s - tau, 0) V^T``
    (LAPACK ``gesdd``); mean: ``m + (w_t - m) / (1 + tau)`` with m the mean of the columns.
    Here ``tau = step * alpha``.
    """
    pen = get_penalty(penalty)
    tau = check_nonnegative(step, "step") * check_nonnegative(alpha, "alpha")
    Vt = _as_task_major(W)
    out = np.empty_like(Vt)
    pen.prox(Vt, tau, out, resolve_n_threads(n_threads))
    return out.T


def penalty_value(W, penalty: str = "l21", *, n_threads: int | None = None) -> float:
    """g(W) for ``W`` of shape (n_features, n_tasks)."""
    pen = get_penalty(penalty)
    return pen.value(_as_task_major(W), resolve_n_threads(n_threads))
