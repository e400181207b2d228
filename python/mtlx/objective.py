"""The smooth part of the objective, evaluated by the core in one call for all tasks."""

from __future__ import annotations

import numpy as np

from . import _core
from ._config import blas_threads, resolve_n_threads
from ._validate import (
    as_real_array,
    check_finite,
    first_nonfinite_row,
    resolve_task_weights,
)
from .data import TaskData
from .gpu import to_host, wrap_result
from .losses import loss_codes, loss_params, resolve_losses, softmax_groups

__all__ = ["SmoothLoss", "direct_loss", "loss_grad", "numerical_failure_message", "overflow_message"]


class SmoothLoss:
    """``f(W, b) = sum_t c_t sum_{i in task t} L_t(y_ti, x_ti . w_t + b_t)`` bound to one dataset.

    Validates the per-task losses, labels and task weights once; each call is then a single
    core call with no conversion or copy.

    Parameters
    ----------
    data : TaskData
    loss : str or sequence of str
        One loss for all tasks or one per task (see :mod:`mtlx.losses`).
    task_weights : {"mean", "sum"} or array_like of shape (T,)
        c_t: ``"mean"`` is 1/m_t, ``"sum"`` is 1.
    n_threads : int, optional
    """

    def __init__(self, data: TaskData, loss="squared", task_weights="mean", n_threads: int | None = None):
        if not isinstance(data, TaskData):
            raise TypeError(f"data must be an mtlx.TaskData, got {type(data).__name__}")
        self.data = data
        #: One :class:`mtlx.losses.Loss` per task, and their codes for the core.
        self.loss_objects = resolve_losses(loss, data.n_tasks)
        self.losses = loss_codes(self.loss_objects)
        self.loss_params = loss_params(self.loss_objects)
        self.weights = resolve_task_weights(task_weights, data.weight_totals)
        self.n_threads = resolve_n_threads(n_threads)
        self._check_targets()
        #: Column ranges of the multinomial tasks (softmax over their columns), and the task weights
        #: the core sees: 0 on those columns, whose loss :meth:`_add_softmax` adds.
        self.softmax_groups = softmax_groups(self.loss_objects)
        self._core_weights = self.weights
        self._softmax = []  # per multinomial task: X's rows, one-hot Y (m, K), row weights or None
        if self.softmax_groups:
            self._check_softmax_groups()
            self._core_weights = self.weights.copy()
            for start, stop in self.softmax_groups:
                self._core_weights[start:stop] = 0.0

    @property
    def quadratic(self) -> bool:
        """Whether every (local) task's loss is quadratic (an affine gradient)."""
        return all(loss.quadratic for loss in self.loss_objects)

    def _check_targets(self) -> None:
        """Each task's targets in its loss's domain (rows of weight 0 aside: dropped, or not
        labelled): one vectorized pass per loss, then the first bad task is named."""
        d = self.data
        counted = None if d.sample_weight is None else d.sample_weight > 0
        for loss in {type(x): x for x in self.loss_objects}.values():
            uses = np.array([type(x) is type(loss) for x in self.loss_objects])
            if d.layout == "shared":
                bad = uses[None, :] & ~loss.valid(d.Y)
                bad = np.flatnonzero((bad if counted is None else bad & counted).any(axis=0))
                first_bad = int(bad[0]) if bad.size else None
            else:
                bad = np.repeat(uses, d.n_samples) & ~loss.valid(d.y)
                bad = np.flatnonzero(bad if counted is None else bad & counted)
                first_bad = d.task_of_row(bad[0]) if bad.size else None
            if first_bad is not None:
                loss.check_targets(d.counted_targets(first_bad), f"task {d.task_ids[first_bad]}")

    def _check_softmax_groups(self) -> None:
        """Each multinomial task's columns: the same rows, one class per counted row."""
        d = self.data
        for start, stop in self.softmax_groups:
            where = f"tasks {d.task_ids[start]}..{d.task_ids[stop - 1]} (one multinomial task)"
            if stop - start < 2:
                raise ValueError(f"{where}: a multinomial task needs at least 2 columns (classes), got 1")
            if d.layout == "stacked" and len(set(np.diff(d.offsets)[start:stop].tolist())) != 1:
                raise ValueError(f"{where}: the columns of a multinomial task hold the same rows, but their row "
                                 "counts differ")
            # Built once: X's rows (a view of dense rows; a sparse X's rows are sliced here, not per call).
            X, s = d.task(start)[0], d.task_weights_of(start)
            Y = np.column_stack([d.targets(t) for t in range(start, stop)]).astype(np.float64)
            self._softmax.append((X, Y, None if s is None else s.astype(np.float64)))
            counted = np.ones(len(Y), dtype=bool) if s is None else s > 0
            per_row = Y[counted].sum(axis=1)
            if not np.all(per_row == 1):
                i = int(np.flatnonzero(counted)[np.flatnonzero(per_row != 1)[0]])
                raise ValueError(f"{where}: row {i} has {per_row[per_row != 1][0]:g} classes marked; each row needs "
                                 "exactly one 1 among the task's columns")

    def _add_softmax(self, Wt, b, gWt, gb) -> float:
        """The multinomial tasks' losses (and gradients into gWt, gb): per task, Z = X W_g + b_g,
        ``sum_i s_i c (logsumexp(z_i) - z_i . y_i)``, gradient ``c X' S (softmax(Z) - Y)``."""
        total = 0.0
        for (start, stop), (X, Y, s) in zip(self.softmax_groups, self._softmax):
            Z = _dense(X @ Wt[start:stop].T).astype(np.float64, copy=False)
            if b is not None:
                Z += b[start:stop]
            top = Z.max(axis=1, keepdims=True)
            E = np.exp(Z - top)
            norm = E.sum(axis=1, keepdims=True)
            lse = (top + np.log(norm))[:, 0]
            rows = lse - np.einsum("ik,ik->i", Y, Z)
            c = float(self.weights[start])
            scale = c if s is None else c * s
            total += float(np.sum(scale * rows))
            if gWt is not None:
                G = (E / norm - Y) * (scale if s is None else scale[:, None])
                gWt[start:stop] = _dense(X.T @ G.astype(X.dtype, copy=False)).T
                gb[start:stop] = G.sum(axis=0)
        return total

    def check_intercepts_bounded(self) -> None:
        """An unpenalized intercept can have no finite optimum (a logistic task with one class,
        a Poisson task of zero counts): the loss says so, naming the task."""
        for t, loss in enumerate(self.loss_objects):
            loss.check_intercept(self.data.counted_targets(t), f"task {self.data.task_ids[t]}")

    def __call__(self, Wt: np.ndarray, b: np.ndarray | None, gWt: np.ndarray | None = None,
                 gb: np.ndarray | None = None) -> float:
        """f at (Wt, b); writes the gradient into ``gWt``, ``gb`` when given.

        ``Wt`` is (T, d) C-contiguous in the data's dtype; ``b`` is (T,) or None (no intercepts).
        """
        value = self._core_call(Wt, b, gWt, gb)
        if self.softmax_groups:
            value += self._add_softmax(Wt, b, gWt, gb)
        return value

    def _core_call(self, Wt, b, gWt, gb) -> float:
        d = self.data
        if d.sparse:
            X = d.X
            if d.layout == "shared":
                return _core.loss_grad_csr_shared(X.data, X.indices, X.indptr, X.shape[1], d.Y, self.losses,
                                                  self.loss_params, self._core_weights, Wt, b, gWt, gb, self.n_threads,
                                                  d.sample_weight)
            return _core.loss_grad_csr_stacked(X.data, X.indices, X.indptr, X.shape[1], d.y, d.offsets, self.losses,
                                               self.loss_params, self._core_weights, Wt, b, gWt, gb, self.n_threads,
                                               d.sample_weight)
        if d.layout == "shared":
            # The core's threads take lanes of row blocks, each with its own BLAS products: BLAS
            # single-threaded inside (threads of its own in every small product made a busy core
            # stall them all). Inside a one-thread solve the limit is already 1 and costs nothing.
            with blas_threads(1):
                return _core.loss_grad_shared(d.X, d.Y, self.losses, self.loss_params, self._core_weights, Wt, b, gWt,
                                              gb, self.n_threads, d.sample_weight)
        return _core.loss_grad_stacked(d.X, d.y, d.offsets, self.losses, self.loss_params, self._core_weights, Wt, b,
                                       gWt, gb, self.n_threads, d.sample_weight)


def loss_grad(data: TaskData, W, b=None, loss="squared", task_weights="mean", *, n_threads: int | None = None):
    """The smooth part of the objective and its gradient, in one core call.

    Parameters
    ----------
    data : TaskData
    W : array_like, shape (n_features, n_tasks)
    b : array_like of shape (n_tasks,), optional
        Intercepts; ``None`` means none (b = 0).
    loss : str or sequence of str
    task_weights : {"mean", "sum"} or array_like of shape (n_tasks,)
    n_threads : int, optional

    Returns
    -------
    value : float
        ``sum_t c_t sum_i L_t(y_ti, x_ti . w_t + b_t)``.
    gW : ndarray, shape (n_features, n_tasks)
        Gradient with respect to W.
    gb : ndarray, shape (n_tasks,)
        Gradient with respect to the intercepts ``sum_i c_t L_t'(y_ti, z_ti)`` (also when
        ``b`` is None, where it is taken at b = 0).
    """
    f = direct_loss(data, loss, task_weights, n_threads)
    Wt, bv = as_parameters(data, W, b)
    gWt = np.empty_like(Wt)
    gb = np.empty(data.n_tasks, dtype=data.dtype)
    value = f(Wt, bv, gWt, gb)
    if not (np.isfinite(value) and np.isfinite(gWt).all() and np.isfinite(gb).all()):
        raise ValueError(overflow_message(data))
    return value, wrap_result(data, gWt.T), wrap_result(data, gb)


def direct_loss(data: TaskData, loss="squared", task_weights="mean", n_threads: int | None = None) -> SmoothLoss:
    """The smooth part in the direct form, evaluated where the data are (the host's core, or a device's
    kernels: :class:`mtlx.gpu.smooth.DeviceSmoothLoss`)."""
    if getattr(data, "device", None) is not None:  # (anything else than a TaskData: SmoothLoss says so)
        from .gpu.smooth import DeviceSmoothLoss

        return DeviceSmoothLoss(data, loss, task_weights, n_threads)
    return SmoothLoss(data, loss, task_weights, n_threads)


def overflow_message(data: TaskData) -> str:
    """Why the losses or their gradient are not finite at finite parameters: values the data's
    dtype cannot carry (named with their size)."""
    values = data.X.data if data.sparse else data.X
    big = float(np.abs(values).max()) if values.size else 0.0
    targets = data.Y if data.layout == "shared" else data.y
    big_y = float(np.abs(targets).max()) if targets.size else 0.0
    return (f"the losses overflow {data.dtype} at finite parameters: X holds values up to {big:.3g} and the "
            f"targets up to {big_y:.3g}, whose products or squares exceed what {data.dtype} can carry "
            f"({np.finfo(data.dtype).max:.3g}); rescale the data (e.g. sklearn's StandardScaler) or use float64")


def numerical_failure_message(data: TaskData, exc: Exception) -> str:
    """Why a solve failed in its arithmetic (a LAPACK routine that did not converge, a step size
    of 1/0): data whose scale the dtype cannot carry through the solver, named with its range."""
    values = np.abs(data.X.data if data.sparse else data.X)
    nonzero = values[values > 0]
    low = float(nonzero.min()) if nonzero.size else 0.0
    high = float(values.max()) if values.size else 0.0
    weights = data.sample_weight
    weight_part = ""
    if weights is not None and np.size(weights):
        w = np.abs(np.asarray(weights, dtype=np.float64))
        weight_part = f", sample weights from {float(w[w > 0].min(initial=np.inf)):.3g} to {float(w.max()):.3g}"
    return (f"the solve failed in its arithmetic ({type(exc).__name__}: {exc}): the data's scale is beyond what "
            f"{data.dtype} carries through the solver (nonzero |X| from {low:.3g} to {high:.3g}{weight_part}); "
            "rescale the data (e.g. sklearn's StandardScaler) or use float64")


def as_parameters(data: TaskData, W, b, W_name: str = "W", b_name: str = "b"):
    """Validate (W, b) against ``data`` and return ``Wt`` (T, d) and ``b`` in the core's dtype.

    A Fortran-ordered W of the right dtype (such as a solver's ``res.W``) is used without a copy.
    """
    T, d = data.n_tasks, data.n_features
    W = as_real_array(to_host(W), W_name, ndim=2)
    if W.shape != (d, T):
        raise ValueError(f"{W_name} has shape {W.shape}, expected (n_features, n_tasks) = ({d}, {T})")
    _check_representable(W, W_name, data.dtype)
    Wt = np.ascontiguousarray(W.T, dtype=data.dtype)
    bad = first_nonfinite_row(Wt)
    if bad >= 0:
        raise ValueError(f"{W_name} contains NaN or infinity in column {bad} (task {data.task_ids[bad]})")
    if b is None:
        return Wt, None
    b = as_real_array(to_host(b), b_name)
    if b.shape != (T,):
        raise ValueError(f"{b_name} has shape {b.shape}, expected (n_tasks,) = ({T},)")
    _check_representable(b, b_name, data.dtype)
    b = np.ascontiguousarray(b, dtype=data.dtype)
    check_finite(b, b_name)
    return Wt, b


def _check_representable(a: np.ndarray, name: str, dtype) -> None:
    """Finite values beyond the data's dtype (a float64 W of 1e39 for float32 data) are named as such,
    rather than as the infinities the conversion would make of them."""
    if a.dtype.kind == "f" and a.dtype.itemsize > np.dtype(dtype).itemsize and a.size:
        finite = a[np.isfinite(a)]
        if finite.size and np.abs(finite).max() > np.finfo(dtype).max:
            raise ValueError(f"{name} holds values up to {np.abs(finite).max():.3g} that the data's dtype ({dtype}) "
                             "cannot carry")


def _dense(a):
    """A product's result as an array: scipy.sparse's matrix type gives np.matrix, which is made a
    plain ndarray; anything else (ndarrays, device arrays) as it is."""
    return np.asarray(a) if isinstance(a, np.matrix) else a
