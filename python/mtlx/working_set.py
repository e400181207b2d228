"""Least squares with an l1 or l2,1 penalty by working sets and coordinate descent.

The method of celer (Massias, Gramfort & Salmon 2018) and skglm, for the multi-task objective
``sum_t c_t 0.5 ||y_t - X_t w_t - b_t||^2 + (l2 / 2) ||W||^2 + alpha g(W)``:

* a duality gap on the whole problem certifies every answer (``gap <= tol * P``), and the
  gap-safe sphere (Ndiaye, Fercoq, Gramfort & Salmon 2015) drops features proven zero;
* between two gap checks, block coordinate descent (``mtlx._core.cd_epochs``) solves the
  problem restricted to a small working set: the active features plus those whose dual
  constraint is closest to its bound, doubled while the gap stays above the tolerance;
* the data enter through ``X' (y - ybar)`` (once) and the Gram columns ``X' (X_S - xbar_S)``
  of the features S that ever join a working set, so a sparse problem never pays for the
  d x d Gram matrix, and each gap check costs O(d s T) for a support of s features, plus one
  direct pass over those s columns for the exact value of F.

For one X shared by the tasks, when a working set or a support outgrows the rows (d >> n:
genomics, text), Gram rows of thousands of features cost more than passes over the data, and a
cost model (:meth:`WorkingSetSolver._residual_pays`, :meth:`WorkingSetSolver._data_pass_pays`)
switches to the residual form: epochs update ``R = Y - X_S W_S`` (``mtlx._core.cd_epochs_residual``,
O(n T) a row, as scikit-learn and celer do) and gap checks take ``X' R`` in one pass.

Intercepts are handled exactly by centering (the optimal b_t for a given w_t is
``ybar_t - xbar_t . w_t`` under any task weights). Everything runs in float64.
"""

from __future__ import annotations

import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _core
from ._blocked import column_chunks, column_products, row_sums
from ._config import blas_threads, resolve_n_threads
from ._per_task_sets import per_task_working_sets
from ._residual_cd import DenseColumns, SparseColumns, sample_major, solve_residual
from ._validate import check_int, resolve_task_weights
from .data import TaskData
from .objective import as_parameters, loss_grad, overflow_message
from .penalties import Penalty, get_penalty
from .results import SolveResult, SolverState, convergence_warning, gap_result
from .solver import check_options

__all__ = ["WorkingSetSolver", "certificate", "fits", "solve_working_set"]

log = logging.getLogger("mtlx")


#: A working set holds this many times the support: skglm's 2 on Gram rows and on a sparse X's
#: columns (a row outside the support costs its stored entries per epoch: the issue 12 case,
#: 100,000 x 50,000 at 0.1%, reached its support of 5,000 in two sets instead of three, 0.75 s ->
#: 0.57 s); 1.5 once the epochs run on dense residual columns, where each row outside the support
#: costs a pass over R every epoch (issue 15's shape: 7.7 s -> 6.0 s to 1e-8; on Gram rows 1.5 was
#: 10% slower on the small bench_sklearn shape).
_WS_GROWTH = 2.0
_WS_GROWTH_RESIDUAL = 1.5

#: Epochs a working set is assumed to take, in the cost model that picks Gram or residual epochs.
_EPOCHS_GUESS = 10

#: The extrapolated dual point is tried once the residual's gap is within this factor of tol (the
#: residual's gap lagged the primal by two to three decades on d >> n problems).
_EXTRAPOLATE_WITHIN = 1e3

#: The share of the whole problem's gap a working set's subproblem is solved to (celer's 0.3; see
#: WorkingSetSolver._subproblem_share for the settled sets that go deeper).
_SUBPROBLEM_SHARE = 0.3

#: Rows of a d x T array updated per block where a whole-array temporary would cost a copy of it.
_ROW_BLOCK = 4096


def certificate(f: float, corr: np.ndarray, W: np.ndarray, alpha: float, penalty: Penalty,
                radius_scale: np.ndarray, other=None):
    """Primal value, duality gap and gap-safe bounds of least squares with a penalty the engine supports.

    Parameters
    ----------
    f : float
        The smooth part at W (ridge term included).
    corr : ndarray, shape (d, T)
        Minus its gradient: ``c_t X_t' r_t - l2 w_t``.
    W : ndarray, shape (d, T)
    alpha : float
        > 0: the strength of the penalty's unweighted g (solve's alpha times its weight).
    penalty : Penalty
        L1 or L21 (what :meth:`feature_dual_norms`, :meth:`screening_bound`, :meth:`raw_value` give).
    radius_scale : ndarray, shape (d, T)
        ``sqrt(c_t ||x_tj||^2 + l2)`` (centered columns with intercepts).
    other : (corr_r, cry_r, f_r), optional
        A second dual candidate ``theta = C r / scale`` for any residual-like r (without ridge): its
        ``C X' r`` on the same features, ``sum_t c_t r_t' (y_t - ybar_t)`` and ``0.5 sum_t c_t ||r_t||^2``
        (celer's extrapolated residuals). The better of the two points gives the gap, the sphere and
        the scores.

    Returns
    -------
    primal, gap : float
    bound : ndarray, shape (d,)
        An upper bound of each feature's dual constraint over the gap-safe sphere: below alpha,
        the feature is zero at the optimum.
    score : ndarray, shape (d,)
        The constraint at the rescaled dual point (how close each feature is to entering).

    Notes
    -----
    The dual point is the residual rescaled into the dual feasible set, ``theta = C r / scale``
    with ``scale = max(1, g*(corr) / alpha)``: a lower bound of the optimum for alpha > 0 only
    (at alpha = 0 the dual feasible set is ``X' theta = 0``, which no rescaling reaches; the
    engine refuses alpha = 0).
    """
    if not alpha > 0:
        raise ValueError("the duality-gap certificate needs alpha > 0 (at alpha = 0 no rescaled residual is dual "
                         "feasible)")
    rows = penalty.feature_dual_norms(corr)
    scale = max(1.0, rows.max() / alpha) if rows.size else 1.0
    primal = f + alpha * penalty.raw_value(W)
    # With theta = C r / scale (the augmented residual when l2 > 0), the dual value is
    # D = sum c r.y / scale - f / scale^2, and sum c r.y = 2 f + <W, corr>.
    cry = 2.0 * f + float(np.einsum("jt,jt->", W, corr))  # (no d x T temporary)
    dual = cry / scale - f / scale / scale  # not scale**2: it overflows for scales past 1e154
    if other is not None:
        corr_r, cry_r, f_r = other
        rows_r = penalty.feature_dual_norms(corr_r)
        scale_r = max(1.0, rows_r.max() / alpha) if rows_r.size else 1.0
        dual_r = cry_r / scale_r - f_r / scale_r / scale_r
        if dual_r > dual:
            corr, rows, scale, dual = corr_r, rows_r, scale_r, dual_r
    gap = max(primal - dual, 0.0)
    # Rounding of P and D (each a few eps of |P|) must not shrink the ball below the truth.
    radius = np.sqrt(2.0 * (gap + 1e-13 * abs(primal)))
    # The bound over the sphere around corr / scale is positively homogeneous: the bound around corr
    # with radius * scale, over scale (no d x T quotient at the gap check's peak of memory).
    bound = penalty.screening_bound(corr, radius * scale, radius_scale) / scale
    return primal, gap, bound, rows / scale


#: Per-task Gram rows (stacked layout) are cached only while T d^2 doubles stay below this.
MAX_STACKED_GRAM_BYTES = 2**30


#: Residual rows up to which X' R streams X once natively (mtlx._core.dense_transpose_times: 3.1
#: against 5.5 ms for one residual on 500 x 20,000, 4.1 against 9.5 for two); BLAS's blocked
#: products beyond.
_STREAMED_PRODUCT_ROWS = 8


def _native_dense(X) -> bool:
    """Whether the dense kernels of mtlx._core take X as it is (row-major float32 or float64)."""
    return isinstance(X, np.ndarray) and X.flags.c_contiguous and X.dtype in (np.float32, np.float64)


def largest(values: np.ndarray, count: int) -> np.ndarray:
    """The indices of the ``count`` largest ``values`` in ascending order, ties going to the lower
    index (the first ``count`` of a stable descending sort, selected in O(len) rather than sorted:
    the sort of d = 20,000 priorities at every gap check was a twelfth of a task-by-task lasso)."""
    if count >= values.size:
        return np.arange(values.size)
    if count <= 0:
        return np.arange(0)
    if np.isnan(values).any():  # (no order to partition by: the stable sort's placement of NaN)
        return np.sort(np.argsort(-values, kind="stable")[:count])
    threshold = np.partition(values, values.size - count)[values.size - count]  # the count-th largest
    above = np.flatnonzero(values > threshold)
    ties = np.flatnonzero(values == threshold)[:count - above.size]
    return np.sort(np.concatenate([above, ties]))


def unsupported(penalty: Penalty) -> str:
    """Why the engine cannot solve ``penalty`` ("" when it can): one L1 or L21 term on W."""
    if penalty.cd_kind is None or len(penalty.components()) != 1 or len(penalty.terms()) != 1:
        return f"it handles L1 or L21 alone (least squares), not {penalty!r}"
    if penalty.w == 0:
        return "the penalty's weight is 0"
    return ""


def fits(data: TaskData) -> bool:
    """Whether the Gram-row cache stays bounded: always for one Gram matrix (shared X, at most
    d x d), for one per task (per-task X, or per-entry weights such as missing labels) while
    T d^2 doubles fit in :data:`MAX_STACKED_GRAM_BYTES`."""
    rows = len(data._groups())  # (one per task for per-task rows or per-entry weights)
    return rows == 1 or rows * float(data.n_features) ** 2 * 8 <= MAX_STACKED_GRAM_BYTES


def _sparse_transpose_times(X, rows_of, n_threads: int, block: int = 1 << 16) -> np.ndarray:
    """``X' M`` (d, T) for a CSR X and M given by blocks, ``rows_of(lo, hi)`` its rows lo..hi-1
    (float64): a block of M at a time, so that a centered copy of Y is never whole (n x T)."""
    n, d = X.shape
    out = None
    for lo in range(0, max(n, 1), block):  # (one empty block when n = 0)
        hi = min(lo + block, n)
        a, b = int(X.indptr[lo]), int(X.indptr[hi])
        M = np.ascontiguousarray(rows_of(lo, hi), dtype=np.float64)
        if out is None:
            out = np.zeros((d, M.shape[1]))
        _core.csr_transpose_times(X.data[a:b], X.indices[a:b], X.indptr[lo:hi + 1] - X.indptr[lo], d, M, out, True,
                                  n_threads)
    return out


class WorkingSetSolver:
    """Least squares with l1 or l2,1 on one dataset, for any number of alphas (a path).

    Parameters
    ----------
    data : TaskData
        Either layout; the statistics are computed in float64.
    penalty : str or Penalty
        A penalty the engine supports (``supports(penalty)``: L1 or L21, alone); its weight
        multiplies alpha.
    l2 : float, default 0
    fit_intercept : bool, default False
    task_weights : {"mean", "sum"} or array_like of shape (T,)
    n_threads : int, optional
        Threads of the core's passes and of BLAS.
    """

    def __init__(self, data: TaskData, penalty="l21", *, l2=0.0, fit_intercept=False, task_weights="mean",
                 n_threads: int | None = None):
        penalty = get_penalty(penalty)
        why_not = unsupported(penalty)
        if why_not:
            raise ValueError(f"working-set coordinate descent: {why_not}")
        if data.dtype != np.float64:
            # Gaps are certified to 1e-6 and below: the statistics need float64, and BLAS would
            # otherwise round every product to float32. One copy, made here, not per product.
            log.info("working-set solver converts the %s data to float64 once", data.dtype)
            data = TaskData(layout=data.layout, X=data.X.astype(np.float64),  # (a sparse X stays sparse)
                            y=None if data.y is None else data.y.astype(np.float64),
                            Y=None if data.Y is None else data.Y.astype(np.float64), offsets=data.offsets,
                            task_ids=data.task_ids,
                            sample_weight=None if data.sample_weight is None else data.sample_weight.astype(np.float64),
                            row_weight=None if data.row_weight is None else data.row_weight.astype(np.float64))
        self.data, self.penalty, self.l2 = data, penalty, float(l2)
        self.fit_intercept, self.task_weights = bool(fit_intercept), task_weights
        self.n_threads = resolve_n_threads(n_threads, float(data.X.size))
        self.c = resolve_task_weights(task_weights, data.weight_totals)
        d, T = data.n_features, data.n_tasks
        # One Gram matrix per group of tasks sharing rows and weights (TaskData._groups): one for
        # shared X (with common row weights or none), one per task for per-task rows or per-entry
        # weights (missing labels): X' S_t X, never X copied per task.
        self._groups = data._groups()
        self.n_gram = len(self._groups)
        with blas_threads(1):
            self._center()
            if data.layout == "shared" and not data.weighted:
                # B = X' (Y - ybar) C and f(0), over blocks of rows (no n x T copy of Y).
                ybar = self.ybar

                def centered_Y(lo, hi):
                    return data.Y[lo:hi] - ybar

                if data.sparse:  # X' (Y - ybar) from the stored entries, over blocks of rows
                    B = _sparse_transpose_times(data.X, centered_Y, self.n_threads)
                else:
                    B = np.zeros((T, d))
                    column_products(lambda lo, hi: centered_Y(lo, hi).T, data.X, B, self.n_threads)
                    B = B.T
                self.B = np.ascontiguousarray(B * self.c)
                sq = row_sums(lambda lo, hi: np.einsum("ij,ij->j", centered_Y(lo, hi), centered_Y(lo, hi)),
                              data.X.shape[0], 3 * 8 * T, T, self.n_threads)  # (the blocks touch Y only)
                self._values_at_zero = 0.5 * sq * self.c  # (per task: see task_view)
                self.value_at_zero = float(np.sum(self._values_at_zero))
            else:
                # Minus the gradient at W = 0 with b = ybar: one core pass over the tasks' rows
                # (the core weighs every row, or entry, by its sample weight).
                f0, g0, _ = loss_grad(data, np.zeros((d, T), dtype=data.dtype), self.ybar.astype(data.dtype),
                                      "squared", task_weights, n_threads=self.n_threads)
                self.B = np.ascontiguousarray(-g0, dtype=np.float64)
                self.value_at_zero = float(f0)
            self.radius_scale = np.sqrt(self.c * self._centered_sq_norms() + self.l2)
        # Values the dtype cannot carry (|Y| near 1e160 or X near 1e155 in float64) overflow these
        # sums: refused here, as the other engines refuse an infinite F (coordinate descent ran its
        # epochs on them and returned W = 0 with a gap of NaN).
        if not (np.isfinite(self.value_at_zero) and np.isfinite(self.B).all() and np.isfinite(self.radius_scale).all()):
            raise ValueError(overflow_message(data))
        self._means = None  # (every task's means, T x d, were for the norms only: not kept through the solve)
        self._start_caches()

    def _start_caches(self) -> None:
        """The state a solve builds up: the Gram cache, the last working set's columns, buffers."""
        data, d, T = self.data, self.data.n_features, self.data.n_tasks
        self._pos = np.full(d, -1, dtype=np.int64)  # feature -> column of the Gram cache
        self._H = np.empty((self.n_gram, 0, d))
        self._n_cols = 0
        self._last_columns = (None, None)  # the last residual epochs' working set and its columns
        self._residual_buffer = None  # see _residuals
        self._extrapolated = self._extrapolated_products = None  # see _extrapolated_dual
        self._column_counts = None  # a sparse X's stored entries per column, when the cost model asks
        # l1 couples no tasks: on a shared X each task gets its own working set (mtlx._per_task_sets).
        self._per_task_sets = (getattr(self.penalty, "cd_kind", None) == _core.PenaltyKind.l1
                               and data.layout == "shared" and not data.sparse and not data.weighted and T > 1)
        # What the statistics above and the caller's earlier steps (alpha_max's per-thread gradients)
        # freed is handed back before the solve's own buffers are made: glibc kept it resident in
        # the heap, in blocks the residuals and columns did not fit (+7 MB, 4% of bench_memory's
        # 10^7-entry sparse X; one call, well under a millisecond).
        _core.release_free_memory()

    def release_buffers(self) -> None:
        """Frees the last working set's columns and the residual buffer (made again when needed),
        keeping the Gram cache and the statistics: between the solves of :mod:`mtlx._task_by_task`."""
        self._last_columns, self._residual_buffer = (None, None), None

    def task_view(self, t: int) -> WorkingSetSolver:
        """The solver of task ``t`` alone, for one unweighted shared X, from this solver's statistics
        (no pass over X: a solver per task computed the same means, norms and X' y T times)."""
        data = self.data
        if data.layout != "shared" or data.weighted:
            raise ValueError("task_view needs one unweighted X shared by the tasks")
        view = WorkingSetSolver.__new__(WorkingSetSolver)
        view.data = TaskData(layout="shared", X=data.X, Y=np.ascontiguousarray(data.Y[:, t:t + 1]),
                             task_ids=data.task_ids[t:t + 1])
        view.penalty, view.l2, view.fit_intercept, view.n_threads = self.penalty, self.l2, self.fit_intercept, \
            self.n_threads
        view.c = self.c[t:t + 1].copy()
        view.task_weights = view.c
        view._groups, view.n_gram = view.data._groups(), 1
        view.xbar, view.ybar = self.xbar, self.ybar[t:t + 1].copy()
        view.B = np.ascontiguousarray(self.B[:, t:t + 1])
        view._values_at_zero = self._values_at_zero[t:t + 1].copy()
        view.value_at_zero = float(view._values_at_zero[0])
        view.radius_scale = np.ascontiguousarray(self.radius_scale[:, t:t + 1])
        view._start_caches()
        return view

    # -- statistics ---------------------------------------------------------------------------

    def _center(self) -> None:
        """xbar (n_gram x d) and ybar (T,): zeros without intercepts."""
        data, d, T = self.data, self.data.n_features, self.data.n_tasks
        self.xbar = np.zeros((self.n_gram, d))
        self.ybar = np.zeros(T)
        self._means = None  # every task's means (T, d), for the centered norms
        if not self.fit_intercept:
            return
        self._means = data.feature_means()  # (weighted by the sample weights, over labelled rows)
        self.xbar[:] = [self._means[tasks[0]] for _, _, tasks in self._groups]
        if data.layout == "shared" and not data.weighted:
            self.ybar[:] = data.Y.mean(axis=0, dtype=np.float64)
        elif data.layout == "shared":  # (an unlabelled entry holds 0 at weight 0)
            self.ybar[:] = [np.average(data.Y[:, t], weights=data.sample_weight[:, t]) for t in range(T)]
        else:
            self.ybar[:] = [np.average(data.targets(t), weights=data.task_weights_of(t)) for t in range(T)]

    def _centered_sq_norms(self) -> np.ndarray:
        """||x_tj - xbar_tj||^2 as (d, T), weighted by the sample weights (TaskData.column_sq_norms:
        blocks of rows, no centered copy of X), centered by the means :meth:`_center` took."""
        return np.ascontiguousarray(self.data.column_sq_norms(centered=self.fit_intercept, means=self._means).T)

    def _add_columns(self, features: np.ndarray) -> None:
        """Caches the Gram rows (X_t[:, S] - xbar_t[S])' X_t of the features not cached yet.

        Stored as rows (n_gram, cache, d): one (s x n) @ (n x d) product per task, which BLAS
        runs ~1.6x faster than the tall-skinny X' X_S of the same numbers.
        """
        new = features[self._pos[features] < 0]
        if new.size == 0:
            return
        data, d = self.data, self.data.n_features
        need = self._n_cols + new.size
        if need > self._H.shape[1]:
            grown = np.empty((self.n_gram, min(d, max(need, 2 * self._H.shape[1])), d))
            grown[:, :self._n_cols] = self._H[:, :self._n_cols]
            self._H = grown
        rows = slice(self._n_cols, need)
        if data.sparse:
            # (X_S - 1 xbar_S')' S X = X_S' S X - xbar_S (1' S X): the columns gathered natively (one
            # pass over X), scaled by their rows' weights, their product with X written straight
            # into the cache (scipy's X[:, S].T @ X converted formats three times: 3 ms a call on
            # the newsgroups tasks), then the dense centering correction (1' S X = (1' s) xbar).
            columns = None
            for g, ((lo, hi), w, _) in enumerate(self._groups):
                shared = (lo, hi) == (0, data.X.shape[0])
                X_g = data.X if shared else data.X[lo:hi]
                if columns is None or not shared:  # (tasks with missing labels share one gather)
                    columns = SparseColumns.of(X_g, new, None, counts=self._counts() if shared else None)
                scaled = columns.data if w is None else columns.data * w[columns.indices]
                _core.csr_gram_rows(scaled, columns.indices, columns.indptr, X_g.data, X_g.indices, X_g.indptr, d,
                                    self._H[g, rows], self.n_threads)
                if self.fit_intercept:
                    total = X_g.shape[0] if w is None else float(np.sum(w, dtype=np.float64))
                    self._H[g, rows] -= total * np.outer(self.xbar[g, new], self.xbar[g])
        elif data.layout == "shared":  # one pass over X per group (per task with missing labels)
            for g, (_, w, _) in enumerate(self._groups):
                def left(lo, hi, w=w, xbar=self.xbar[g, new]):  # a block's selected columns, centered, weighted
                    block = data.X[lo:hi, new] - xbar
                    if w is not None:
                        block *= w[lo:hi, None]
                    return np.ascontiguousarray(block.T)

                column_products(left, data.X, self._H[g, rows], self.n_threads)
        else:
            def task_rows(g):
                (lo, hi), w, _ = self._groups[g]
                left = data.X[lo:hi, new] - self.xbar[g, new]
                if w is not None:
                    left *= w[:, None]
                np.matmul(np.ascontiguousarray(left.T), data.X[lo:hi], out=self._H[g, rows])

            self._per_task(task_rows)
        self._pos[new] = np.arange(self._n_cols, need)
        self._n_cols = need

    def _per_task(self, work) -> None:
        """``work(t)`` for every task, tasks spread over the threads, BLAS single-threaded inside
        (each task's products by one thread: the result does not depend on the thread count)."""
        with blas_threads(1):
            if self.n_threads == 1 or self.n_gram == 1:
                for g in range(self.n_gram):
                    work(g)
                return
            with ThreadPoolExecutor(min(self.n_threads, self.n_gram)) as pool:
                list(pool.map(work, range(self.n_gram)))

    def _gram_block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """H_t[rows, cols] for every t (rows cached), shape (n_gram, len(rows), len(cols)).

        One native gather: numpy's fancy indexing of a block of a (cache x d) array took a
        quarter of a d = 20000 path's time.
        """
        out = np.empty((self.n_gram, len(rows), len(cols)))
        _core.gather_block(self._H, self._pos[rows], np.ascontiguousarray(cols, dtype=np.int64), out)
        return out

    def _products(self, H: np.ndarray, W: np.ndarray) -> np.ndarray:
        """[H_t w_t]_t for H (n_gram, r, s) and W (s, T): shape (r, T).

        Shared H: the tasks' columns in fixed chunks spread over the threads, each product
        single-threaded BLAS (every entry computed the same way whatever the thread count)."""
        if self.n_gram == 1:
            out = np.empty((H.shape[1], W.shape[1]))
            chunks = column_chunks(W.shape[1])

            def part(chunk):
                a, b = chunk
                out[:, a:b] = H[0] @ W[:, a:b]

            with blas_threads(1):
                if self.n_threads == 1 or len(chunks) == 1:
                    for chunk in chunks:
                        part(chunk)
                else:
                    with ThreadPoolExecutor(min(self.n_threads, len(chunks))) as pool:
                        list(pool.map(part, chunks))
            return out
        return np.einsum("trs,st->rt", H, W)

    def gradient_and_value(self, W: np.ndarray, features: np.ndarray | None = None, *, direct: bool = False):
        """(corr, f, exact): minus the gradient on ``features`` (all by default) and the smooth
        part at W, b*(W); W must be zero outside ``features``. ``exact``: whether f came from the
        residuals (a data pass, ``direct``, or W = 0) rather than the Gram expansion.

        Both come from the cached Gram rows of W's support: O(k s T) for k features and a
        support of s. The value by the expansion ``f(0) - <W, B> + sum_t c_t w_t' H_t w_t / 2``
        loses digits when the residual is far smaller than y, so with ``direct`` it is computed
        by one pass over the support's columns instead (done before an answer is certified).
        """
        support = np.flatnonzero(np.any(W != 0, axis=1))
        ridge = 0.5 * self.l2 * float(np.einsum("jt,jt->", W, W)) if self.l2 else 0.0
        rows = slice(None) if features is None else features
        if support.size and self._data_pass_pays(support):
            return *self._gradient_from_data(W, support, rows, ridge), True
        corr = self.B[rows] - self.l2 * W[rows]
        if support.size == 0:
            return corr, self.value_at_zero + ridge, True
        self._add_columns(support)
        WS = W[support]
        with blas_threads(1):
            if features is None:
                H = self._H[:, self._pos[support]]
            else:
                H = self._gram_block(support, features)
            corr -= self.c * self._products(H.transpose(0, 2, 1), WS)
            if direct:
                f = self._direct_value(support, WS)
            else:
                HSS = self._gram_block(support, support)
                f = self.value_at_zero - float(np.sum(WS * self.B[support])) + 0.5 * float(
                    np.sum(self.c * WS * self._products(HSS, WS)))
        return corr, f + ridge, direct

    def _uncached(self, features: np.ndarray) -> int:
        return int(np.count_nonzero(self._pos[features] < 0))

    def _data_pass_pays(self, support: np.ndarray) -> bool:
        """Whether ``X' R`` in one pass (shared X) is cheaper than the Gram rows of the support:
        their missing rows cost ``n d`` each, then ``s d T`` for the products, against ``n (s + d) T``."""
        if self.data.layout != "shared" or self.data.weighted:  # (the passes below weigh nothing)
            return False
        n, d, T = self.data.X.shape[0], self.data.n_features, self.data.n_tasks
        s = support.size
        if self.data.sparse:  # X' R from the stored entries (and R from the support's), against Gram rows
            if not self._sparse_gram_fits(support):
                return True
            data_pass = (self.data.X.nnz + self._stored(support)) * T
            return data_pass < self._sparse_gram_rows_cost(support) + s * d * T
        return n * (s + d) * T < n * self._uncached(support) * d + s * d * T

    def _residual_pays(self, ws: np.ndarray) -> bool:
        """Whether epochs on the residuals beat epochs on the Gram block for this working set (shared
        X): ``n k`` to copy its columns and ``2 n k T`` per epoch, against ``n d`` for each missing
        Gram row and ``k^2 T`` per epoch."""
        if self.data.layout != "shared" or self.data.weighted:  # (the residual epochs weigh nothing)
            return False
        if self.data.sparse:  # a gather pass over X, then O(nnz_S T) epochs, against Gram rows and k^2 T epochs
            if not self._sparse_gram_fits(ws):
                return True
            T, k, stored = self.data.n_tasks, ws.size, self._stored(ws)
            residual = self.data.X.nnz + stored * (1 + T) + 2 * stored * T * _EPOCHS_GUESS
            return residual < self._sparse_gram_rows_cost(ws) + k * k * T * _EPOCHS_GUESS
        n, d, T, k = self.data.X.shape[0], self.data.n_features, self.data.n_tasks, ws.size
        residual = n * k * (1 + T) + 2 * n * k * T * _EPOCHS_GUESS
        gram = n * self._uncached(ws) * d + k * k * T * _EPOCHS_GUESS
        return residual < gram

    # -- the sparse cost model: Gram rows where working sets stay small (n > d text, few features) --

    def _counts(self) -> np.ndarray:
        """A sparse X's stored entries per column (one pass over its indices, once)."""
        if self._column_counts is None:
            self._column_counts = np.bincount(self.data.X.indices, minlength=self.data.n_features)
        return self._column_counts

    def _stored(self, features: np.ndarray) -> int:
        """Stored entries of a sparse X in the columns ``features``."""
        return int(self._counts()[features].sum())

    def _sparse_gram_rows_cost(self, features: np.ndarray) -> float:
        """The sparse product ``X_new' X`` of the features without cached Gram rows: each stored
        entry of their columns meets the entries of its row of X (nnz / n of them on average)."""
        new = features[self._pos[features] < 0]
        if new.size == 0:
            return 0.0
        X = self.data.X  # (the gather's pass over X's entries, the product, the rows' initialisation)
        return X.nnz + self._stored(new) * (X.nnz / max(X.shape[0], 1)) + new.size * self.data.n_features

    def _sparse_gram_fits(self, features: np.ndarray) -> bool:
        """Whether the Gram cache, with the rows of ``features`` added, stays within half of X's own
        arrays (32 MB at least, MAX_STACKED_GRAM_BYTES at most): dense rows of d numbers each, which
        a sparse X's storage does not bound (the memory target is 1.5x X)."""
        X = self.data.X
        budget = min(MAX_STACKED_GRAM_BYTES, max(32 * 2**20, (X.data.nbytes + X.indices.nbytes) // 2))
        rows = self._n_cols + self._uncached(features)
        return rows * self.data.n_features * 8 <= budget

    def _balanced_size(self, alive: np.ndarray) -> int:
        """The smallest working set worth a gap check with residual epochs: one whose epochs
        (``_EPOCHS_GUESS`` of them, two passes over its columns each) cost about the pass over every
        alive column that the next check makes. A smaller one leaves that pass, not the epochs,
        as the solve's cost: from 10 rows, growing by 1.5 took 17 checks to a support of 4,000 of
        d = 50,000 (sparse X, 0.1% dense), 3 s of 6 in full passes. 0 where Gram epochs are chosen
        (their checks read cached Gram rows, not X)."""
        size = alive.size // (2 * _EPOCHS_GUESS)
        if size <= 10 or not self._residual_pays(alive[:size]):
            return 0
        return size

    def _subproblem_share(self, ws: np.ndarray, alive: np.ndarray, corr: np.ndarray, alpha: float) -> float:
        """The fraction of the whole problem's gap the working set's subproblem is solved to.

        celer's 0.3, except where the next gap check is a pass over X (residual epochs: each
        check costs about ``d / k`` epochs of a set of k rows) and the set already holds every
        alive feature whose dual constraint the check found violated: then the set is settled and
        its checks, not its epochs, were the cost, so it is solved to ``k / d`` of the gap. On
        independent lassos of n = 500, d = 20,000 (sets of 400-1,000 rows) that halved the gap
        checks, a third of the time; sets still missing violated features (a correlated design's,
        growing to 6,500 rows) keep 0.3, as over-solving a set that changes wastes its epochs.
        ``corr`` holds the rows of ``alive``.
        """
        d = self.data.n_features
        if ws.size >= d or not self._residual_pays(ws):
            return _SUBPROBLEM_SHARE
        outside = np.ones(d, dtype=bool)
        outside[ws] = False
        outside = outside[alive]
        if np.any(self.penalty.feature_dual_norms(corr[outside]) > alpha):
            return _SUBPROBLEM_SHARE
        return min(_SUBPROBLEM_SHARE, ws.size / d)

    def _centered_columns(self, features: np.ndarray, previous=(None, None)):
        """The columns X[:, features] - xbar: dense (k, n) with each column contiguous, or a sparse
        X's columns centered implicitly (:mod:`mtlx._residual_cd`). ``previous``: the last working
        set and its dense columns, whose rows the new set shares are copied rather than gathered
        (a gather reads a cache line of X per entry; the sets grow from the last support)."""
        if self.data.sparse:
            return SparseColumns.of(self.data.X, features, self.xbar[0, features] if self.fit_intercept else None,
                                    self.n_threads, self._counts())
        old_features, old_columns = previous
        if old_features is not None and old_features.size:
            at = np.minimum(np.searchsorted(old_features, features), old_features.size - 1)
            shared = old_features[at] == features
            if shared.any():
                cols = np.empty((len(features), self.data.X.shape[0]))
                cols[shared] = old_columns.columns[at[shared]]
                fresh = ~shared
                if fresh.any():
                    cols[fresh] = self._centered_columns(features[fresh]).columns
                return DenseColumns(cols)
        xbar = self.xbar[0, features] if self.fit_intercept else None
        X = self.data.X
        if _native_dense(X):  # (one native pass; numpy's X[:, S].T copy took two, the second a transpose)
            cols = np.empty((len(features), X.shape[0]))
            _core.dense_gather_columns(X, np.ascontiguousarray(features, dtype=np.int64),
                                       None if xbar is None else np.ascontiguousarray(xbar), cols, self.n_threads)
            return DenseColumns(cols)
        cols = X[:, features].T.astype(np.float64, order="C")
        if xbar is not None:
            cols -= xbar[:, None]
        return DenseColumns(cols)

    def _residual_storage(self) -> np.ndarray:
        """The (T, n) buffer every residual of a solve is written to (each is dead before the next is
        made; the dual extrapolation keeps copies): a fresh one per gap check and working set left
        the allocator's freed copies resident (+18 MB peak on a 10^6-row sparse fit). A sparse X's
        is the transposed view of a row-major (n, T) array, as its kernels take it."""
        if self._residual_buffer is None:
            n, T = self.data.X.shape[0], self.data.n_tasks
            self._residual_buffer = SparseColumns.empty_residuals(n, T) if self.data.sparse else np.empty((T, n))
        return self._residual_buffer

    def _residuals(self, columns, WS: np.ndarray) -> np.ndarray:
        """R = (Y - ybar) - X_S W_S as (T, n), from the support's centered columns (a sparse X's:
        the transposed view of a row-major array, :meth:`SparseColumns.empty_residuals`)."""
        R = self._residual_storage()
        np.subtract(self.data.Y.T, self.ybar[:, None], out=R)  # (no n x T temporary beside R)
        if WS.size:
            columns.subtract_times(WS, R)
        return R

    def _centered_products(self, R: np.ndarray) -> np.ndarray:
        """``X_c' R'`` as (d, T) for R of shape (T, n), by one pass over X (threads over fixed column
        chunks: bitwise the same for any thread count)."""
        with blas_threads(1):
            if self.data.sparse:  # one pass over the stored entries, R row-major behind its (T, n) view: no copy
                X = self.data.X
                XR = np.empty((X.shape[1], R.shape[0]))
                _core.csr_transpose_times(X.data, X.indices, X.indptr, X.shape[1], sample_major(R), XR,
                                          n_threads=self.n_threads)
                if self.fit_intercept:  # X_c' R = X' R - xbar (1' R): 1' R is 0 in exact arithmetic, not in floats
                    sums = R.sum(axis=1)
                    for lo in range(0, XR.shape[0], _ROW_BLOCK):  # (blocks: no d x T temporary beside XR)
                        XR[lo:lo + _ROW_BLOCK] -= np.outer(self.xbar[0, lo:lo + _ROW_BLOCK], sums)
                return XR
            X = self.data.X
            RX = np.empty((R.shape[0], self.data.n_features))
            if R.shape[0] <= _STREAMED_PRODUCT_ROWS and _native_dense(X):
                _core.dense_transpose_times(X, np.ascontiguousarray(R), RX, self.n_threads)
            else:
                column_products(lambda lo, hi: R[:, lo:hi], X, RX, self.n_threads)
            if self.fit_intercept:
                RX -= np.outer(R.sum(axis=1), self.xbar[0])
        return RX.T

    def _gradient_from_data(self, W: np.ndarray, support: np.ndarray, rows, ridge: float):
        """(corr, f) by one pass over X: ``corr = C X_c' R - l2 W`` and the exact f."""
        with blas_threads(1):
            features, columns = self._last_columns
            if features is None or not np.all(np.isin(support, features, assume_unique=True)):
                features, columns = support, self._centered_columns(support, self._last_columns)
            # (The last working set's columns hold the support's: W is 0 on the others, which
            # leaves R's bits as the support's own columns would.)
            R = self._residuals(columns, W[features])
        extra = self._extrapolated
        if (extra is not None and self.l2 == 0.0 and not self.data.sparse and _native_dense(self.data.X)
                and 2 * R.shape[0] <= _STREAMED_PRODUCT_ROWS):
            # The extrapolated residual's products in the same pass over X (a few residuals cost
            # about one): the dual point near the end (_extrapolated_dual) then costs no pass.
            both = self._centered_products(np.concatenate([R, extra]))
            corr, self._extrapolated_products = both[:, :R.shape[0]][rows], both[:, R.shape[0]:]
        else:
            corr = self._centered_products(R)[rows]
        corr *= self.c  # (in place: each d x T temporary is a third of the sparse X's own memory per task)
        if self.l2:
            corr -= self.l2 * W[rows]
        f = 0.5 * float(np.einsum("ti,ti->t", R, R) @ self.c)
        return corr, f + ridge

    def _extrapolated_dual(self, features: np.ndarray):
        """The dual candidate of the last residual epochs' extrapolated residual (celer's dual
        extrapolation: the rescaled residual lags the primal, here by three decades), as
        :func:`certificate` takes it; None without one, or with a ridge term (whose dual has a
        second block)."""
        r = self._extrapolated
        if r is None or self.l2 != 0.0:
            return None
        products = self._extrapolated_products
        corr = self.c * (self._centered_products(r) if products is None else products)[features]
        cry = float(np.einsum("it,ti->t", self.data.Y - self.ybar, r) @ self.c)
        return corr, cry, 0.5 * float(np.einsum("ti,ti->t", r, r) @ self.c)

    def _epochs(self, W: np.ndarray, ws: np.ndarray, alpha: float, code: int, max_epochs: int, inner_tol: float,
                stop_gap: float, entries: np.ndarray | None = None):
        """Coordinate-descent epochs on the working set ``ws``; returns its new rows and the epochs run.

        Gram epochs stop on ``inner_tol`` (the largest change against the largest entry); residual
        epochs on the subproblem's duality gap, ``stop_gap`` (:mod:`mtlx._residual_cd`). ``entries``
        (len(ws) x T, l1): each task's own working set among the rows, which dense residual epochs
        keep to (the others update whole rows: correct, and no slower than before).
        """
        WS = np.ascontiguousarray(W[ws])
        self._residual_epochs = self._residual_pays(ws)
        if self._residual_epochs:
            previous = self._last_columns
            if self.data.sparse:  # (the last set's columns freed before the next are gathered)
                self._last_columns = previous = (None, None)
            columns = self._centered_columns(ws, previous)
            self._last_columns = previous = (ws, columns)
            R = self._residuals(columns, WS)
            scale = self.radius_scale[ws]

            def subproblem_gap(f, corr, WS_now):
                return certificate(f, corr, WS_now, alpha, self.penalty, scale)[1]

            self._extrapolated_products = None  # (X' of the residual extrapolated below: not computed yet)
            ran, self._extrapolated = solve_residual(columns, R, WS, self.c, float(alpha), self.l2, self.penalty,
                                                     subproblem_gap, stop_gap, int(max_epochs),
                                                     None if self.data.sparse else entries)
            return WS, ran
        self._add_columns(ws)
        H = np.ascontiguousarray(self._gram_block(ws, ws))
        Q = np.ascontiguousarray(self._products(H, WS))
        ran, _, _ = _core.cd_epochs(H, np.ascontiguousarray(self.B[ws]), self.c, float(alpha), self.l2, code,
                                    WS, Q, int(max_epochs), float(inner_tol))
        return WS, ran

    def _direct_value(self, support: np.ndarray, WS: np.ndarray) -> float:
        """sum_t c_t 0.5 ||y_t - X_t[:, S] w_t - b_t||^2 by one core pass over the support."""
        data = self.data
        b = self.intercepts_of(support, WS)
        if data.layout == "shared" and data.sparse:
            # X_S W_S from the stored entries in one pass (W zero off the support), into the
            # residual buffer (scipy's row blocks and column selection took a third of a
            # newsgroups fit).
            W = np.zeros((data.n_features, data.n_tasks))
            W[support] = WS
            R = sample_major(self._residual_storage())
            X = data.X
            _core.csr_times(X.data, X.indices, X.indptr, X.shape[1], W, R, False, self.n_threads)
            np.subtract(data.Y, R, out=R)
            R -= b
            if data.weighted:
                return 0.5 * float(np.einsum("it,it,it->t", R, R, data.sample_weight) @ self.c)
            return 0.5 * float(np.einsum("it,it->t", R, R) @ self.c)
        if data.layout == "shared":  # residuals over blocks of rows and the support's columns
            def squares(lo, hi):
                R = data.Y[lo:hi] - np.asarray(data.X[lo:hi][:, support] @ WS) - b
                if data.weighted:
                    return np.einsum("ij,ij,ij->j", R, R, data.sample_weight[lo:hi])
                return np.einsum("ij,ij->j", R, R)

            n = data.X.shape[0]
            # (a block's bytes: its Y and residual rows, and X's rows: stored entries for a sparse X)
            x_row = 12 * data.X.nnz // max(n, 1) if data.sparse else 8 * data.X.shape[1]
            sq = row_sums(squares, n, x_row + 16 * data.n_tasks, data.n_tasks, self.n_threads)
            return 0.5 * float(sq @ self.c)
        sq = np.zeros(data.n_tasks)

        def task_squares(t):
            X_t, y_t = data.task(t)
            r = y_t - np.asarray(X_t[:, support] @ WS[:, t]).ravel() - b[t]
            w = data.task_weights_of(t)
            sq[t] = float(r @ r) if w is None else float(w @ (r * r))

        self._per_task(task_squares)
        return 0.5 * float(sq @ self.c)

    def intercepts_of(self, support: np.ndarray, WS: np.ndarray) -> np.ndarray:
        """b_t = ybar_t - xbar_t . w_t (zeros without intercepts)."""
        if not self.fit_intercept:
            return np.zeros(self.data.n_tasks)
        xbar = self.xbar[:, support]
        return self.ybar - (xbar @ WS if self.n_gram == 1 else np.einsum("ts,st->t", xbar, WS)).ravel()

    # -- the solver ---------------------------------------------------------------------------

    def solve(self, alpha: float, W0=None, *, tol=1e-6, screening=True, working_set=True, max_outer=100,
              max_epochs=100_000, callback=None):
        """Minimizes for one alpha from W0 until the duality gap is at most ``tol * P``, or
        ``max_outer`` gap checks, or ``max_epochs`` coordinate-descent epochs in all.

        ``callback(state)`` runs after every gap check with a :class:`mtlx.SolverState`
        (``optimality`` is the relative gap); raising StopIteration stops the solve.

        Returns
        -------
        W : ndarray, shape (d, T)
        info : dict
            ``primal``, ``gap``, ``converged``, ``epochs`` (coordinate-descent epochs),
            ``n_screened``, ``history`` (P at every gap check), ``outer`` (gap checks).
        """
        with blas_threads(1):  # BLAS single-threaded: the engine's parallel products are its own (mtlx._blocked)
            return self._solve(alpha, W0, tol, screening, working_set, max_outer, max_epochs, callback)

    def _solve(self, alpha, W0, tol, screening, working_set, max_outer, max_epochs, callback):
        d, T = self.data.n_features, self.data.n_tasks
        W = np.zeros((d, T)) if W0 is None else np.array(W0, dtype=np.float64, copy=True).reshape(d, T)
        alive = np.arange(d)  # the features not screened out (the gap is that of the problem on them)
        inner_tol, epochs, history = 1e-3, 0, []
        code = int(self.penalty.cd_kind)
        if not alpha > 0:
            raise ValueError("working-set coordinate descent needs alpha > 0: its duality-gap certificate has no "
                             "dual feasible point at alpha = 0 (use solver='fista')")
        alpha = alpha * self.penalty.w  # the engine works with the unweighted penalty
        converged = stopped = False
        primal = gap = np.nan
        self._extrapolated, self._residual_epochs = None, False
        self._extrapolated_products = None  # X_c' of the extrapolated residual, when a gap check computed it
        self._last_columns = (None, None)  # the last residual epochs' working set and its columns
        for _ in range(max_outer):
            # (views, not copies, while nothing is screened: W and its scales are d x T)
            WA, scale = (W, self.radius_scale) if alive.size == d else (W[alive], self.radius_scale[alive])
            corr, f, exact = self.gradient_and_value(W, alive if alive.size < d else None)
            primal, gap, bound, score = certificate(f, corr, WA, alpha, self.penalty, scale)
            other = None
            if tol * primal < gap <= _EXTRAPOLATE_WITHIN * tol * primal:
                # Near the end, the extrapolated residual's dual point may certify now (it costs a pass
                # over X, which earlier checks, far from tol, would not repay).
                other = self._extrapolated_dual(alive)
                if other is not None:
                    primal, gap, bound, score = certificate(f, corr, WA, alpha, self.penalty, scale, other)
            if gap <= tol * primal and not exact:  # confirm with the exact value before certifying
                # (an f from the Gram expansion loses digits; one from the residuals, a data pass's, does not)
                corr, f, _ = self.gradient_and_value(W, alive if alive.size < d else None, direct=True)
                primal, gap, bound, score = certificate(f, corr, WA, alpha, self.penalty, scale, other)
            history.append(primal)
            if callback is not None:
                support = np.flatnonzero(np.any(W != 0, axis=1))
                state = SolverState(len(history), W, self.intercepts_of(support, W[support]), primal, np.nan,
                                    gap / max(abs(primal), np.finfo(float).tiny), np.nan)
                try:
                    callback(state)
                except StopIteration:
                    stopped = True
                    break
            if screening:
                keep = bound >= alpha
                dropped = alive[~keep]
                if dropped.size:
                    alive, score, corr = alive[keep], score[keep], corr[keep]
                if dropped.size and np.any(np.any(W != 0, axis=1)[dropped]):  # proven zero: go on from there
                    W[dropped] = 0.0
                    continue
            if gap <= tol * primal:
                converged = True
                break
            entries = None
            if working_set:
                # A multiple of the support (skglm: twice), not of the last working set: doubling
                # with every gap check grew the sets to every surviving feature within one alpha
                # of a dense path (support 1,000 of d = 20,000: 37 s per alpha).
                growth = _WS_GROWTH_RESIDUAL if self._residual_epochs and not self.data.sparse else _WS_GROWTH
                floor = max(10, self._balanced_size(alive))
                if self._per_task_sets:
                    ws, entries = per_task_working_sets(W[alive], corr, alive, growth, floor)
                    if not self._residual_pays(ws):  # Gram epochs update whole rows: the rows' rule below
                        entries = None
                if entries is None:
                    is_active = np.any(W[alive] != 0, axis=1)
                    ws_size = min(alive.size, max(floor, int(growth * int(is_active.sum()))))
                    # Rank by how close each constraint is to its bound (celer's priority).
                    priority = np.where(is_active, np.inf, score)
                    ws = alive[largest(priority, ws_size)]
            else:
                ws = alive
            if epochs >= max_epochs:
                break
            # The subproblem need not be solved beyond a fraction of the whole problem's gap (celer's 0.3),
            # nor beyond what certifies tol; deeper once the set is settled (see _subproblem_share).
            stop_gap = max(self._subproblem_share(ws, alive, corr, alpha) * gap, 0.5 * tol * primal)
            corr = score = bound = WA = scale = None  # (d x T each: not held through the epochs)
            WS, ran = self._epochs(W, ws, alpha, code, max_epochs - epochs, inner_tol, stop_gap, entries)
            epochs += ran
            W[:] = 0.0
            W[ws] = WS
            inner_tol = max(inner_tol * 0.1, 1e-15)
        return W, dict(primal=primal, gap=gap, converged=converged, epochs=epochs, history=np.asarray(history),
                       n_screened=int(d - alive.size), outer=len(history), stopped=stopped)


def solve_working_set(data: TaskData, penalty="l21", alpha=0.1, l2=0.0, fit_intercept=False, task_weights="mean",
                      tol=1e-6, max_iter=10_000, W0=None, *, max_gap_checks=100, callback=None,
                      n_threads: int | None = None) -> SolveResult:
    """Least squares with l1 or l2,1 by working sets and coordinate descent.

    Same objective and result type as :func:`mtlx.solve` (squared loss).

    Parameters
    ----------
    data : TaskData
    penalty : {"l1", "l21"}
    alpha, l2, fit_intercept, task_weights, W0 :
        As for :func:`mtlx.solve`.
    tol : float, default 1e-6
        Relative duality gap certified at the returned point: ``gap <= tol * F``.
    max_iter : int, default 10000
        Cap on the coordinate-descent epochs (over working sets) in all.
    max_gap_checks : int, default 100
        Cap on the gap checks (one per working-set solve). Stopping at either cap with the gap
        above ``tol * F`` emits a :class:`mtlx.ConvergenceWarning`.
    callback : callable, optional
        ``callback(state)`` after every gap check (a :class:`mtlx.SolverState` whose
        ``optimality`` is the relative gap); raising StopIteration stops the solve.
    n_threads : int, optional

    Returns
    -------
    SolveResult
        ``n_iter`` counts coordinate-descent epochs (over working sets, not all features);
        ``history`` holds F at every gap check; ``optimality`` is the final gap over F.
    """
    start = time.perf_counter()
    penalty, alpha, l2, tol, max_iter = check_options(penalty, alpha, l2, tol, max_iter)
    max_gap_checks = check_int(max_gap_checks, "max_gap_checks", 1)
    if not isinstance(data, TaskData):
        raise TypeError(f"data must be an mtlx.TaskData, got {type(data).__name__}")
    from . import _task_by_task

    engine = _task_by_task.TaskByTaskSolver if _task_by_task.applies(data, penalty) else WorkingSetSolver
    solver = engine(data, penalty, l2=l2, fit_intercept=fit_intercept, task_weights=task_weights, n_threads=n_threads)
    if W0 is not None:
        W0 = as_parameters(data, W0, None, "W0")[0].T
    W, info = solver.solve(alpha, W0, tol=tol, max_outer=max_gap_checks, max_epochs=max_iter, callback=callback)
    support = np.flatnonzero(np.any(W != 0, axis=1))
    b = solver.intercepts_of(support, W[support])
    if info["converged"]:
        message = f"duality gap {info['gap']:.3g} <= tol * F"
    elif info["stopped"]:
        message = "stopped by callback"
    else:
        message = (f"did not converge: gap {info['gap']:.3g} > tol * F after {info['epochs']} epochs and "
                   f"{info['outer']} gap checks")
        warnings.warn(f"mtlx.solve_working_set {message}; raise max_iter (or max_gap_checks) or tol",
                      convergence_warning(), stacklevel=3)
    log.debug("working-set CD, %d epochs, %d gap checks, %s", info["epochs"], info["outer"], message)
    return gap_result(data, W, b, info, message, time.perf_counter() - start, "cd")
