"""The working-set subproblem on shared X solved from the residuals, with Anderson acceleration.

The inner solver of :mod:`mtlx.working_set` when a working set outgrows the rows (d >> n): block
coordinate descent on ``R = Y - X_S W_S`` (``mtlx._core.cd_epochs_residual``, O(n T) per row),
one epoch per call, and:

* **Anderson acceleration** (Walker & Ni 2011; for coordinate descent, Bertrand & Massias 2021,
  as skglm does): every :data:`ANDERSON_K` epochs, the iterates after each of them give the
  affine combination whose differences are smallest; it is kept when it lowers the subproblem's
  objective. When the support outgrows n, plain epochs contract slowly (many collinear columns)
  and the extrapolation cuts their number several-fold.
* **active-set cycling** (glmnet): between two epochs over the whole set, epochs over its nonzero
  rows alone (:class:`_ActiveCycling`);
* the last K + 1 epochs' residuals give an extrapolated one, returned for the outer loop's
  duality gap (**dual extrapolation**, celer);
* every :data:`CHECK_EVERY` epochs, the **subproblem's duality gap** (the same certificate as the
  outer loop's, restricted to the working set): the epochs stop once it is below the target the
  outer loop sets (a fraction of its own gap, as celer does), so that early working sets are not
  solved far beyond what the next gap check can use.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from . import _core

__all__ = ["ANDERSON_K", "CHECK_EVERY", "DenseColumns", "SparseColumns", "sample_major", "solve_residual"]

#: Epochs between two extrapolations, each from the K + 1 iterates around them (skglm's default).
ANDERSON_K = 5
#: Epochs between two gaps of the subproblem.
CHECK_EVERY = 10


class DenseColumns:
    """A working set's (centered) columns as a dense (k, n) array, each column contiguous."""

    def __init__(self, columns: np.ndarray, sq_norms: np.ndarray | None = None):
        self.columns = columns
        self.sq_norms = np.einsum("ji,ji->j", columns, columns) if sq_norms is None else sq_norms

    def subset(self, rows: np.ndarray) -> DenseColumns:
        """The columns ``rows`` (a copy: the epochs read each column contiguously)."""
        return DenseColumns(self.columns[rows], self.sq_norms[rows])

    #: Epochs cost about a pass over R: Anderson acceleration and dual extrapolation pay.
    batched = False

    def epochs(self, c, alpha, l2, code, WS, R, count=1, entries=None):
        """``count`` coordinate-descent epochs in place (on ``entries`` only, l1, when given):
        (epochs, max_change, max_abs)."""
        return _core.cd_epochs_residual(self.columns, self.sq_norms, c, alpha, l2, code, WS, R, count, 0.0, entries)

    def products(self, R: np.ndarray) -> np.ndarray:
        """X_S,c' R' as (k, T) for R of shape (T, n)."""
        return self.columns @ R.T

    def times(self, V: np.ndarray) -> np.ndarray:
        """(X_S,c V)' as (T, n) for V of shape (k, T)."""
        return V.T @ self.columns

    def subtract_times(self, V: np.ndarray, R: np.ndarray) -> None:
        """R -= (X_S,c V)' in place."""
        R -= V.T @ self.columns


class SparseColumns:
    """A working set's columns of a sparse X, centered implicitly (x_j - xbar_j 1 never formed).

    Parameters
    ----------
    X_S : scipy.sparse matrix, shape (n, k)
        The working set's columns (or :meth:`of`: gathered from a CSR X, given X's stored
        entries per column as ``counts`` when the caller has them).
    xbar : ndarray of shape (k,) or None
        Their means, subtracted (None: no centering).
    n_threads : int, default=1
        Threads of the products with the columns (results bitwise the same for any count).
    """

    @classmethod
    def of(cls, X, features: np.ndarray, xbar, n_threads: int = 1, counts=None) -> SparseColumns:
        """The columns ``features`` of a CSR X, gathered natively in one pass over its stored entries
        (a counting sort by column: memory of the selected entries only; scipy's column indexing
        made temporaries of X's size, 80 MB for 10^7 entries, and the earlier numpy gather spent
        a third of a sparse solve sorting)."""
        position = np.full(X.shape[1], -1, dtype=np.int64)
        position[features] = np.arange(len(features))
        starts = None
        if counts is not None:  # X's stored entries per column (np.bincount of its indices): no counting pass
            starts = np.zeros(len(features) + 1, dtype=X.indices.dtype)
            np.cumsum(counts[features], out=starts[1:])
        data, rows, indptr, sums, squares = _core.csr_select_columns(X.data, X.indices, X.indptr, X.shape[1], position,
                                                                     len(features), starts)
        self = cls.__new__(cls)
        # (kept as plain arrays: a scipy matrix made of them would downcast the indices to int32)
        self._set_rows(data, rows, indptr, X.shape[0], xbar, sums, squares)
        self.n_threads = n_threads
        return self

    def __init__(self, X_S, xbar, n_threads: int = 1):
        self.n_threads = n_threads
        rows = X_S.T.tocsr()  # column j of X_S as row j: contiguous for the epochs
        rows.sum_duplicates()
        self._set_rows(rows.data.astype(np.float64), rows.indices.astype(np.int64), rows.indptr.astype(np.int64),
                       X_S.shape[0], xbar)

    def _set_rows(self, data, indices, indptr, n: int, xbar, sums=None, squares=None) -> None:
        """From the columns laid out as the rows of a (k, n) CSR matrix, float64 entries and int64
        indices (with their sums and squared norms when the gather computed them)."""
        self.data, self.indices, self.indptr, self.n = data, indices, indptr, n
        self.xbar = None if xbar is None else np.ascontiguousarray(xbar, dtype=np.float64)
        if sums is None:
            k = len(indptr) - 1
            column_of = np.repeat(np.arange(k), np.diff(indptr))
            sums = np.bincount(column_of, weights=data, minlength=k)
            squares = np.bincount(column_of, weights=data * data, minlength=k)
        self.col_sums = sums
        self.sq_norms = squares if self.xbar is None else np.maximum(
            squares - 2.0 * self.xbar * self.col_sums + self.n * self.xbar**2, 0.0)

    #: Epochs cost far less than a pass over R (see :func:`_solve_batched`).
    batched = True

    @staticmethod
    def empty_residuals(n: int, T: int) -> np.ndarray:
        """An uninitialized R of shape (T, n) as these columns take it: the transposed view of a
        row-major (n, T) array (a sample's T residuals side by side, what the kernels read)."""
        return np.empty((n, T)).T

    def epochs(self, c, alpha, l2, code, WS, R, count=1):
        return _core.cd_epochs_residual_sparse(self.data, self.indices, self.indptr, self.xbar, self.col_sums,
                                               self.sq_norms, c, alpha, l2, code, WS, sample_major(R), count, 0.0)

    def products(self, R: np.ndarray) -> np.ndarray:
        # From the stored entries, natively (R as :meth:`empty_residuals` makes it: no copy).
        out = np.empty((len(self.indptr) - 1, R.shape[0]))
        _core.csr_times(self.data, self.indices, self.indptr, self.n, np.ascontiguousarray(R.T), out,
                        n_threads=self.n_threads)
        if self.xbar is not None:
            out -= np.outer(self.xbar, R.sum(axis=1))
        return out

    def times(self, V: np.ndarray) -> np.ndarray:
        out = self.empty_residuals(self.n, V.shape[1])
        self.subtract_times(V, out, accumulate=False, sign=1.0)
        return out

    def subtract_times(self, V: np.ndarray, R: np.ndarray, accumulate: bool = True, sign: float = -1.0) -> None:
        """R -= (X_S,c V)' in place (T, n) (or R = (X_S,c V)' without ``accumulate``, sign 1): the
        stored entries scattered straight into R (as :meth:`empty_residuals` makes it), no temporary."""
        _core.csr_transpose_times(self.data, self.indices, self.indptr, self.n, np.ascontiguousarray(sign * V),
                                  sample_major(R), accumulate, self.n_threads)
        if self.xbar is not None:
            R -= (sign * (self.xbar @ V))[:, None]


def sample_major(R: np.ndarray) -> np.ndarray:
    """The row-major (n, T) array behind residuals R of shape (T, n) (``R.T``, no copy); a
    ValueError for any other layout (the sparse kernels would otherwise work on a copy)."""
    rows = R.T
    if not (rows.flags.c_contiguous and rows.dtype == np.float64):
        raise ValueError("sparse working sets need R of shape (T, n) as the transposed view of a C-contiguous "
                         "float64 (n, T) array (SparseColumns.empty_residuals)")
    return rows


def _smooth(R: np.ndarray, WS: np.ndarray, c: np.ndarray, l2: float) -> float:
    """The subproblem's smooth part at (WS, its residuals R): losses and ridge."""
    return 0.5 * float(np.einsum("ti,ti->t", R, R) @ c) + 0.5 * l2 * float(np.vdot(WS, WS))


def _value(R: np.ndarray, WS: np.ndarray, c: np.ndarray, alpha: float, l2: float, penalty) -> float:
    """The subproblem's objective at (WS, its residuals R)."""
    return _smooth(R, WS, c, l2) + alpha * penalty.raw_value(WS)


def _extrapolation_weights(iterates) -> np.ndarray | None:
    """The weights (summing to 1) of the affine combination of ``iterates[1:]`` with the smallest
    combined difference, or None when the differences are degenerate."""
    U = np.diff(np.stack(iterates), axis=0).reshape(len(iterates) - 1, -1)
    gram = U @ U.T
    try:
        z = np.linalg.solve(gram, np.ones(gram.shape[0]))
    except np.linalg.LinAlgError:
        # Exactly singular: more differences than the dimensions they span, as when the iterates
        # have reached their affine hull's fixed point (LU's last pivot is then rounding noise,
        # exactly 0 with some BLAS kernels). The constrained minimum still exists: the minimum-norm
        # solution of the optimality system [G 1; 1^T 0] [w; -lambda] = [0; 1], G scaled to 1.
        return _minimum_norm_weights(gram)
    total = z.sum()
    if not np.all(np.isfinite(z)) or total == 0.0:
        return None
    return z / total


def _minimum_norm_weights(gram: np.ndarray) -> np.ndarray | None:
    """Weights summing to 1 minimizing ``w^T gram w`` for a singular ``gram`` (None where it is 0
    or not finite)."""
    scale = float(np.max(np.diag(gram))) if gram.size else 0.0
    if not (np.isfinite(scale) and scale > 0.0):
        return None
    k = gram.shape[0]
    system = np.zeros((k + 1, k + 1))
    system[:k, :k] = gram / scale
    system[:k, k] = system[k, :k] = 1.0
    rhs = np.zeros(k + 1)
    rhs[k] = 1.0
    weights = np.linalg.lstsq(system, rhs, rcond=None)[0][:k]
    return weights if np.all(np.isfinite(weights)) and abs(weights.sum() - 1.0) < 1e-8 else None


def _combine(weights: np.ndarray, points) -> np.ndarray:
    return np.tensordot(weights, np.stack(points), axes=1)


def _extrapolate(iterates: list) -> np.ndarray | None:
    """The affine combination of ``iterates[1:]`` with the smallest combined difference, or None
    when the differences are degenerate."""
    weights = _extrapolation_weights(iterates)
    return None if weights is None else _combine(weights, iterates[1:])


def solve_residual(columns, R: np.ndarray, WS: np.ndarray, c: np.ndarray, alpha: float, l2: float,
                   penalty, certificate, stop_gap: float, max_epochs: int, entries=None) -> tuple:
    """Minimizes the working-set problem in place (``WS`` and its residuals ``R``).

    Parameters
    ----------
    columns : DenseColumns or SparseColumns
        The working set's (centered) columns.
    R : ndarray, shape (T, n)
        ``Y - ybar - X_S WS``, kept consistent with ``WS``.
    WS : ndarray, shape (k, T)
    c : ndarray, shape (T,)
    alpha, l2 : float
        Strength of the unweighted penalty, ridge.
    penalty : Penalty
        L1 or L21 (its ``cd_kind`` and ``raw_value``).
    certificate : callable
        ``certificate(f, corr, WS) -> gap`` of the subproblem.
    stop_gap : float
        Stop once the subproblem's gap is at most this.
    max_epochs : int
    entries : ndarray of shape (k, T), uint8, optional
        With l1 on dense columns: the entries each task's working set holds; the epochs and the
        subproblem (its gap) keep to them, the other entries staying 0.

    Returns
    -------
    epochs : int
    extrapolated : ndarray of shape (T, n) or None
        The affine combination of the last K + 1 epochs' residuals with the smallest differences
        (celer's dual extrapolation, Massias et al. 2018/2020): a dual point that tracks the optimum
        far closer than the last residual (None after fewer than K + 1 epochs).
    """
    code = int(penalty.cd_kind)
    if getattr(columns, "batched", False):
        if entries is not None:
            raise ValueError("per-task entries are for dense columns (the sparse epochs update whole rows)")
        return _solve_batched(columns, R, WS, c, alpha, l2, code, certificate, stop_gap, max_epochs)
    keep = None if entries is None else entries.astype(bool)

    def point(WS):  # the iterate Anderson extrapolates: the kept entries only (the others stay 0)
        return WS.copy() if keep is None else WS[keep]

    iterates = [point(WS)]
    residuals = deque([R.copy()], maxlen=ANDERSON_K + 1)  # for the dual extrapolation
    epochs = 0
    cycle = _ActiveCycling(columns) if entries is None else None
    while epochs < max_epochs:
        if cycle is None:
            ran, max_change, _ = columns.epochs(c, alpha, l2, code, WS, R, 1, entries)
            whole = True
        else:
            ran, max_change, whole = cycle.epoch(c, alpha, l2, code, WS, R)
        epochs += ran
        if max_change == 0.0 and whole:  # a fixed point of the epochs: nothing left to do here
            break
        residuals.append(R.copy())
        iterates.append(point(WS))
        if len(iterates) == ANDERSON_K + 1:
            weights = _extrapolation_weights(iterates)
            accelerated = None if weights is None else _combine(weights, iterates[1:])
            if accelerated is not None and keep is not None:
                accelerated, kept = np.zeros_like(WS), accelerated
                accelerated[keep] = kept
            if accelerated is not None:
                # R is affine in WS, and the weights sum to 1: the same combination of the K epochs'
                # residuals is the extrapolated point's (O(K n T), where X_S (W_acc - W_S) cost a
                # product with the whole working set, a tenth of the solve).
                R_acc = _combine(weights, list(residuals)[-ANDERSON_K:])
                if _value(R_acc, accelerated, c, alpha, l2, penalty) < _value(R, WS, c, alpha, l2, penalty):
                    WS[...] = accelerated
                    R[...] = R_acc
                    residuals.clear()  # the dual extrapolation needs residuals of consecutive plain epochs
                    residuals.append(R.copy())
            iterates = [point(WS)]
        if epochs % CHECK_EVERY == 0 or epochs >= max_epochs:
            corr = c * columns.products(R) - l2 * WS
            if keep is not None:  # the subproblem is over the kept entries: the others are 0 by constraint
                corr[~keep] = 0.0
            if certificate(_smooth(R, WS, c, l2), corr, WS) <= stop_gap:
                break
    extrapolated = _extrapolate(list(residuals)) if len(residuals) == ANDERSON_K + 1 else None
    return epochs, extrapolated


#: Epochs on the nonzero rows alone between two epochs on the whole working set ...
ACTIVE_EPOCHS = 4
#: ... when those rows are at most this share of the set.
ACTIVE_SHARE = 0.9


class _ActiveCycling:
    """glmnet's active-set cycling (Friedman, Hastie, Tibshirani 2010) inside a working set: after an
    epoch over every row, :data:`ACTIVE_EPOCHS` epochs over the rows that are nonzero. A zero row
    costs its gradient, O(n T), in every epoch and mostly stays zero (when the support outgrows n the
    sets hold thousands of such rows: a third of the last sets' epochs on a correlated design); the
    full epochs let the rows that should enter enter, and the subproblem's gap (of every row) still
    decides when to stop."""

    def __init__(self, columns: DenseColumns):
        self.columns = columns
        self.rows = self.active_columns = None
        self.pending = 0  # active epochs left before the next full one

    def epoch(self, c, alpha, l2, code, WS, R) -> tuple:
        """One epoch in place: (epochs run, largest change, whether it went over every row)."""
        if self.pending == 0:
            ran, max_change, _ = self.columns.epochs(c, alpha, l2, code, WS, R, 1)
            active = np.flatnonzero(np.any(WS != 0.0, axis=1))
            if active.size <= ACTIVE_SHARE * WS.shape[0]:
                if self.rows is None or not np.array_equal(active, self.rows):
                    self.rows, self.active_columns = active, self.columns.subset(active)
                self.pending = ACTIVE_EPOCHS
            return ran, max_change, True
        W_active = WS[self.rows]
        ran, max_change, _ = self.active_columns.epochs(c, alpha, l2, code, W_active, R, 1)
        WS[self.rows] = W_active
        # (still on the active rows: only a full epoch can tell whether others should move)
        self.pending = 0 if max_change == 0.0 else self.pending - 1
        return ran, max_change, False


def _solve_batched(columns, R, WS, c, alpha, l2, code, certificate, stop_gap, max_epochs) -> tuple:
    """:func:`solve_residual` for columns whose epochs cost less than a pass over R (a sparse
    working set: O(nnz_S T) against R's n T): CHECK_EVERY epochs per native call, then the
    subproblem's gap. Anderson's extrapolation and the residual history for the dual one would
    each copy and read R every epoch, several times what the epoch itself costs."""
    epochs = 0
    while epochs < max_epochs:
        ran, max_change, _ = columns.epochs(c, alpha, l2, code, WS, R, min(CHECK_EVERY, max_epochs - epochs))
        epochs += ran
        if max_change == 0.0:
            break
        corr = c * columns.products(R) - l2 * WS
        if certificate(_smooth(R, WS, c, l2), corr, WS) <= stop_gap:
            break
    return epochs, None
