"""scikit-learn estimators over :func:`fit_shared_trunk`: SharedTrunkRegressor and SharedTrunkClassifier.

The layouts are those of :class:`mtlx.MultiTaskRegressor`: ``fit(X, Y)`` (one input shared by
every task: the trunk runs once per row for all tasks; NaN in Y marks a missing label),
``fit(X, y, task=ids)`` (stacked rows), ``fit([(X_1, y_1), ...])`` (each task its own input),
``fit(X, y)`` (one task), or a :class:`mtlx.TaskData`.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, validate_data

from .._layouts import group_rows, is_input_list, is_task_list, missing_labels, task_positions
from .._probabilities import log_proba_from_scores, proba_from_scores
from .._scoring import accuracy, pooled_weights, regression_score
from .._validate import (
    MAX_THREADS,
    check_comm,
    check_int,
    check_real,
    check_task_feature_names,
    check_task_ids,
    reset_feature_names,
    task_list_feature_names,
)
from ..data import TaskData
from ..losses import get_loss
from .fit import SOLVERS, WEIGHTINGS, check_architecture, fit_shared_trunk

__all__ = ["SharedTrunkClassifier", "SharedTrunkRegressor"]

_FLOATS = (np.float64, np.float32)

_PARAMS_DOC = """
    Parameters
    ----------
    hidden : tuple of int, default=(64,)
        Widths of the shared layers (the trunk); ``hidden[-1]`` is the width of the shared
        representation (:meth:`transform`).
    task_hidden : tuple of int, default=()
        Widths of each task's own layers between the trunk and its head.
    activation : {"relu", "tanh", "identity"}, default="relu"
        Of every hidden layer (heads are linear). ``hidden=(k,)`` with ``"identity"`` is the
        linear shared subspace W = U A (U: d x k shared, A: k x T).
    l2 : float, default=1e-4
        Ridge strength ``(l2 / 2) ||weights||^2`` on every weight matrix (not on biases).
    solver : {"lbfgs", "adam"}, default="lbfgs"
        Full-batch L-BFGS, or Adam on minibatches drawing rows from every task in proportion
        (:mod:`mtlx.trunk.adam`).
    task_weighting : {"equal", "uncertainty"}, default="equal"
        ``"equal"``: F = (1/T) sum_t L_t (L_t: task t's mean loss); ``"uncertainty"``: learned
        log-variances s_t, F = (1/T) sum_t (exp(-s_t) L_t + s_t) (Kendall, Gal & Cipolla 2018).
    max_iter : int, default=200
        L-BFGS iterations, or epochs for ``"adam"`` (scikit-learn's MLP convention).
    tol : float, default=1e-4
        L-BFGS: max |gradient|; Adam: the improvement an epoch must make (``n_iter_no_change``
        = 10 epochs). ``tol=0`` runs ``max_iter`` in full.
    batch_size : int or "auto", default="auto"
        Adam's rows per batch (``"auto"``: min(200, rows)); larger than the data: clipped with a warning.
    learning_rate : float, default=1e-3
        Adam's step size.
    random_state : int, Generator, RandomState or None, default=0
        Initial weights (Glorot uniform), batches, validation split.
    early_stopping : bool, default=False
        Adam only: hold out ``validation_fraction`` of each task's rows and keep the weights of
        the best validation loss.
    validation_fraction : float, default=0.1
    warm_start : bool, default=False
        Start from the previous fit's weights when the network and tasks still fit; ``loss_curve_``
        and ``n_iter_`` then continue the previous fit's (scikit-learn's MLP), ``history_`` is this
        fit's.
    verbose : int, default=0
        Print F per iteration.
    n_threads : int, default=None
        Threads of the core's loops and of BLAS.
    comm : mpi4py communicator, default=None
        Each rank fits its own tasks (stacked rows with global task ids, or a TaskData); the
        trunk's gradient is all-reduced, the heads stay on their rank.
"""

_ATTRS_DOC = """
    Attributes
    ----------
    coefs_, intercepts_ : list of ndarray
        The trunk's layers: ``coefs_[l]`` of shape (n_{l-1}, n_l), ``intercepts_[l]`` (n_l,).
    task_layers_ : list
        Per task, its own layers ``[(V, c), ...]``.
    heads_ : list of (ndarray, ndarray)
        Per task, its head ``(A_t, a_t)``, A_t of shape (width, K_t).
    log_vars_ : ndarray of shape (n_tasks,)
        The learned log-variances (``task_weighting="uncertainty"`` only).
    history_ : dict
        ``"objective"`` (F per iteration or epoch), ``"task_loss"`` (each task's mean loss
        alongside, shape (n_points, n_tasks)), ``"validation"`` (early stopping).
    loss_curve_ : list of float
        ``history_["objective"]`` as a list (scikit-learn's MLP attribute).
    n_iter_ : int
    tasks_ : ndarray
        Task ids in the order of the heads.
    n_tasks_, n_features_in_ : int
    fit_layout_ : {"single", "shared", "stacked", "tasks"}
    result_ : SharedTrunkResult
"""


class _SharedTrunkModel(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Layouts, the fit and the forward passes; subclasses encode targets and read outputs."""

    __metadata_request__fit = {"task": True}
    __metadata_request__predict = {"task": True}
    __metadata_request__score = {"task": True}

    def __init__(self, hidden=(64,), task_hidden=(), activation="relu", l2=1e-4, solver="lbfgs",
                 task_weighting="equal", max_iter=200, tol=1e-4, batch_size="auto", learning_rate=1e-3,
                 random_state=0, early_stopping=False, validation_fraction=0.1, warm_start=False, verbose=0,
                 n_threads=None, comm=None):
        self.hidden = hidden
        self.task_hidden = task_hidden
        self.activation = activation
        self.l2 = l2
        self.solver = solver
        self.task_weighting = task_weighting
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.verbose = verbose
        self.n_threads = n_threads
        self.comm = comm

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, task=None, sample_weight=None):
        """Train the trunk and every task's head jointly.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), list of (X_t, y_t) pairs, or TaskData
        y : array-like of shape (n_samples,) or (n_samples, n_tasks), default=None
            A 2-D ``y``: one column per task on the shared X (NaN: row not labelled for that task).
        task : array-like of shape (n_samples,), default=None
            Task id of each row (stacked layout).
        sample_weight : array-like of shape (n_samples,), or list of per-task arrays, default=None
            Weight of each row in its task's mean loss.

        Returns
        -------
        self
        """
        if self.comm is None:
            self._check_params()
            data = self._fit_data(X, y, task, sample_weight)
        else:
            from ..distributed import agreed_errors

            with agreed_errors(self.comm):  # bad input on one rank stops every rank, same message
                self._check_params()
                data = self._fit_data(X, y, task, sample_weight)
                if self.fit_layout_ != "stacked" and not isinstance(X, TaskData):
                    raise ValueError("under MPI (comm=...) pass each rank's tasks as stacked rows with global task "
                                     "ids (fit(X, y, task=ids)) or as a TaskData with task_ids")
        losses = self._head_losses(data)
        params0 = self._warm_params(data)
        previous = (list(self.loss_curve_), self.n_iter_) if params0 is not None else None
        res = _warning_at_caller(
            fit_shared_trunk,
            data, loss=losses, hidden=self.hidden, task_hidden=self.task_hidden, activation=self.activation,
            l2=self.l2, solver=self.solver, task_weighting=self.task_weighting, max_iter=self.max_iter, tol=self.tol,
            batch_size=self.batch_size, learning_rate=self.learning_rate, random_state=self.random_state,
            early_stopping=self.early_stopping, validation_fraction=self.validation_fraction,
            params0=params0, verbose=self.verbose, n_threads=self.n_threads, comm=self.comm)
        self._set_fitted(res)
        if previous is not None:
            # A warm start goes on from the previous fit, as scikit-learn's MLP does: its loss curve
            # and iteration count continue (L-BFGS's first point is the previous fit's last).
            curve, n_iter = previous
            self.loss_curve_ = curve + self.loss_curve_[1 if self.solver == "lbfgs" else 0:]
            self.n_iter_ = n_iter + res.n_iter
        self._after_fit(res)
        return self

    def _set_fitted(self, res) -> None:
        """The fitted attributes of a trained network (what fit sets, and mtlx.load from a file)."""
        self.result_ = res
        self.coefs_ = [np.array(W) for W, _ in res.trunk]
        self.intercepts_ = [np.array(b) for _, b in res.trunk]
        self.task_layers_ = [[(np.array(V), np.array(c)) for V, c in layers] for layers in res.task_layers]
        self.heads_ = [(np.array(A), np.array(a)) for A, a in res.heads]
        if res.log_vars is not None:
            self.log_vars_ = res.log_vars
        elif hasattr(self, "log_vars_"):
            del self.log_vars_
        self.history_ = res.history
        self.loss_curve_ = res.history["objective"].tolist()
        self.n_iter_ = res.n_iter
        self.tasks_ = np.asarray(res.task_ids)
        self.n_tasks_ = len(self.tasks_)

    def _check_params(self) -> None:
        check_architecture(self.hidden, self.task_hidden, self.activation)
        check_real(self.l2, "l2")
        check_real(self.tol, "tol")
        check_int(self.max_iter, "max_iter", 1)
        if self.solver not in SOLVERS:
            raise ValueError(f"The 'solver' parameter must be one of {SOLVERS}. Got {self.solver!r} instead.")
        if self.task_weighting not in WEIGHTINGS:
            raise ValueError(f"The 'task_weighting' parameter must be one of {WEIGHTINGS}. Got "
                             f"{self.task_weighting!r} instead.")
        for name in ("early_stopping", "warm_start"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"The {name!r} parameter must be a bool. Got {getattr(self, name)!r} instead.")
        check_real(self.learning_rate, "learning_rate", 0.0, low_open=True)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            check_int(self.batch_size, "batch_size", 1)
        if not 0.0 < check_real(self.validation_fraction, "validation_fraction", 0.0, low_open=True) < 1.0:
            raise ValueError(f"The 'validation_fraction' parameter must be in (0, 1). Got {self.validation_fraction!r} "
                             "instead.")
        if not (self.random_state is None or isinstance(self.random_state, (np.random.Generator,
                                                                             np.random.RandomState))):
            check_int(self.random_state, "random_state", 0)
        check_int(self.verbose, "verbose", 0)
        if self.n_threads is not None:
            check_int(self.n_threads, "n_threads", 1, MAX_THREADS)
        check_comm(self.comm)

    def _warm_params(self, data: TaskData):
        """This rank's slice of the previous fit's weights, when warm_start and the shapes fit."""
        if not self.warm_start or not hasattr(self, "result_"):
            return None
        net = self.result_.network
        hidden, task_hidden = check_architecture(self.hidden, self.task_hidden, self.activation)
        if (net.hidden, net.task_hidden, net.activation, net.n_features) != (hidden, task_hidden, self.activation,
                                                                              data.n_features):
            return None
        where = {tid: t for t, tid in enumerate(self.tasks_.tolist())}
        local = [where.get(tid) for tid in np.asarray(data.task_ids).tolist()]
        if any(t is None for t in local) or not np.array_equal(net.out_dims[local], self._head_widths(data)):
            return None  # (a task unseen before, or a classifier task whose number of classes changed)
        params = self.result_.params
        parts = [params[: net.n_trunk]] + [net.task_block(params, t) for t in local]
        if self.task_weighting == "uncertainty":
            lv = self.result_.log_vars
            parts.append(np.zeros(len(local)) if lv is None else lv[local])
        return np.concatenate(parts)

    def _head_widths(self, data: TaskData) -> np.ndarray:
        """Outputs of each local task's head in this fit: one (regression)."""
        return np.ones(data.n_tasks, dtype=np.int64)

    # ------------------------------------------------------------------ data
    def _fit_data(self, X, y, task, sample_weight) -> TaskData:
        self._classes = {}
        if isinstance(X, (list, tuple)) and len(X) == 0 and y is None:
            raise ValueError("X is an empty list: a list input holds one (X_t, y_t) pair per task, and there is none")
        if isinstance(X, TaskData):
            if y is not None or task is not None or sample_weight is not None:
                raise ValueError("y, task and sample_weight must be None when X is a TaskData (it holds them)")
            self.fit_layout_ = X.layout
            self.n_features_in_ = X.n_features
            reset_feature_names(self)
            return self._encode_task_data(X)
        if is_task_list(X, y):
            if task is not None:
                raise ValueError("task must be None when X is a list of (X_t, y_t) pairs (each pair is one task)")
            pairs = []
            for t, (X_t, y_t) in enumerate(X):
                X_t = check_array(X_t, dtype=_FLOATS, input_name=f"X of task {t}")
                y_t = check_array(y_t, ensure_2d=False, dtype=None, input_name=f"y of task {t}")
                check_consistent_length(X_t, y_t)
                pairs.append((X_t, self._encode(y_t, t, f"task {t}")))
            weights = None
            if sample_weight is not None:
                sizes = [len(p[1]) for p in pairs]
                weights = np.split(pooled_weights(sample_weight, sizes), np.cumsum(sizes)[:-1])
            names = task_list_feature_names([X_t for X_t, _ in X])
            data = TaskData.from_tasks(pairs, sample_weight=weights)
            self.fit_layout_ = "tasks"
            self.n_features_in_ = data.n_features
            reset_feature_names(self, names)
            return data
        if task is None:
            X = validate_data(self, X, dtype=_FLOATS)
            if y is None:
                raise ValueError(f"requires y to be passed, but the target y is None ({type(self).__name__} is a "
                                 "supervised estimator)")
            y = check_array(y, ensure_2d=False, dtype=None, ensure_all_finite="allow-nan", input_name="y")
            if not self._classifies and y.dtype.kind == "O":
                y = y.astype(np.float64)
            if y.ndim > 2:
                raise ValueError(f"y must be 1-D or 2-D (one column per task), got shape {y.shape}")
            check_consistent_length(X, y)
            self.fit_layout_ = "single" if y.ndim == 1 else "shared"
            Y = y.reshape(len(y), -1)
            Y = np.column_stack([self._encode(Y[:, t], t, f"task {t} (column {t} of y)") for t in range(Y.shape[1])])
            return TaskData.from_shared(X, Y, sample_weight=sample_weight)
        # (under MPI a rank may hold no task: more ranks than tasks)
        X, y = validate_data(self, X, y, dtype=_FLOATS, y_numeric=not self._classifies,
                             ensure_min_samples=1 if self.comm is None else 0)
        task = check_task_ids(task, name="task") if np.ndim(task) == 1 else np.asarray(task)
        if task.ndim != 1 or task.shape[0] != X.shape[0]:
            raise ValueError(f"task must hold one id per row of X: X has {X.shape[0]} rows, task has shape "
                             f"{task.shape}")
        self.fit_layout_ = "stacked"
        if X.shape[0] == 0:
            return TaskData.empty(X.shape[1], X.dtype if X.dtype == np.float32 else np.float64)
        ids, positions = np.unique(task, return_inverse=True)
        coded = np.empty(len(y), dtype=np.float64)
        for t, rows in group_rows(positions):
            coded[rows] = self._encode(y[rows], ids[t].item(), f"task {ids[t].item()!r}")
        return TaskData.from_stacked(X, coded, task, sample_weight=sample_weight)

    def _encode_task_data(self, data: TaskData) -> TaskData:
        if not self._classifies or data.n_tasks == 0:  # (a rank without tasks under MPI: nothing to encode)
            return data
        coded = []
        for t in range(data.n_tasks):
            y_t, w_t = data.targets(t), data.task_weights_of(t)
            keep = np.ones(len(y_t), dtype=bool) if w_t is None else w_t > 0
            c = np.zeros(len(y_t))
            c[keep] = self._encode(y_t[keep], data.task_ids[t].item(), f"task {data.task_ids[t]!r}")
            coded.append(c)
        if data.layout == "shared":
            return TaskData(layout="shared", X=data.X, Y=np.column_stack(coded).astype(data.dtype),
                            task_ids=data.task_ids, sample_weight=data.sample_weight, row_weight=data.row_weight)
        return TaskData(layout="stacked", X=data.X, y=np.concatenate(coded).astype(data.dtype), offsets=data.offsets,
                        task_ids=data.task_ids, sample_weight=data.sample_weight)

    _classifies = False

    def _encode(self, y_t, task_id, where: str):
        return y_t

    def _after_fit(self, res) -> None:
        pass

    # ------------------------------------------------------------------ forward passes
    def _outputs(self, X, task):
        """Each task's head outputs: ``(list of (m, K_t) per task, None)`` for per-task and shared
        input, ``(list of (rows, (m_t, K_t)) per task, positions)`` for stacked input."""
        check_is_fitted(self)
        net, params = self.result_.network, self.result_.params
        n_threads = 1 if self.n_threads is None else self.n_threads
        edges = np.concatenate([[0], np.cumsum(net.out_dims)])
        if is_input_list(X):
            if task is not None:
                raise ValueError("task must be None when X is a list of per-task inputs")
            if len(X) != self.n_tasks_:
                raise ValueError(f"X is a list of {len(X)} per-task inputs but the model has {self.n_tasks_} tasks")
            check_task_feature_names(self, X)
            inputs = [self._checked(check_array(X_t, dtype=_FLOATS, input_name=f"X[{t}]"), f"task {self.tasks_[t]}")
                      for t, X_t in enumerate(X)]
            dtype = np.result_type(*inputs)
            sizes = np.array([len(X_t) for X_t in inputs])
            ends = np.cumsum(sizes)
            out = net.predict(np.ascontiguousarray(np.vstack(inputs), dtype=dtype), params,
                              rows=list(zip(ends - sizes, ends)), n_threads=n_threads)
            return [out[lo:hi, edges[t]: edges[t + 1]] for t, (lo, hi) in enumerate(zip(ends - sizes, ends))], None
        X = validate_data(self, X, reset=False, dtype=_FLOATS)
        if task is None:
            if self.fit_layout_ == "stacked":
                raise ValueError(f"this {type(self).__name__} was fit on stacked rows with task ids (fit(X, y, "
                                 "task=...)): predict and score need the task id of each row too (task=...)")
            out = net.predict(X, params, n_threads=n_threads)
            return [out[:, edges[t]: edges[t + 1]] for t in range(self.n_tasks_)], None
        positions = task_positions(task, X.shape[0], self.tasks_)
        order = np.argsort(positions, kind="stable")
        counts = np.bincount(positions, minlength=self.n_tasks_)
        ends = np.cumsum(counts)
        out = net.predict(np.ascontiguousarray(X[order]), params, rows=list(zip(ends - counts, ends)),
                          n_threads=n_threads)
        return [(order[lo:hi], out[lo:hi, edges[t]: edges[t + 1]])
                for t, (lo, hi) in enumerate(zip(ends - counts, ends))], positions

    def _checked(self, X_t, name):
        if X_t.shape[1] != self.n_features_in_:
            raise ValueError(f"{name}: X has {X_t.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")
        return X_t

    def _per_task(self, X, task, of_output, dtype=None):
        """``of_output(t, S)`` (a 1-D array per row) in the layout of X."""
        outputs, positions = self._outputs(X, task)
        if positions is None:
            values = [of_output(t, S) for t, S in enumerate(outputs)]
            if is_input_list(X):
                return values
            if self.fit_layout_ == "single":
                return values[0]
            return np.column_stack(values) if dtype is None else np.column_stack(
                [np.asarray(v, dtype=dtype) for v in values])
        parts = [(rows, of_output(t, S)) for t, (rows, S) in enumerate(outputs) if len(rows)]
        result = np.empty(len(positions), dtype=dtype or np.result_type(*[np.asarray(v).dtype for _, v in parts]))
        for rows, values in parts:
            result[rows] = values
        return result

    @property
    def _n_features_out(self) -> int:
        """The representation's width (what get_feature_names_out names: ``sharedtrunkregressor0``, ...)."""
        return int(self.result_.network.trunk_sizes[-1])

    def transform(self, X):
        """The shared representation of the rows of X (n x hidden[-1]); a list for a list of inputs."""
        check_is_fitted(self)
        n_threads = 1 if self.n_threads is None else self.n_threads
        if is_input_list(X):
            check_task_feature_names(self, X)
            return [self.result_.representation(self._checked(check_array(X_t, dtype=_FLOATS), f"X[{t}]"), n_threads)
                    for t, X_t in enumerate(X)]
        X = validate_data(self, X, reset=False, dtype=_FLOATS)
        return self.result_.representation(X, n_threads)


def _warning_at_caller(function, *args, **kwargs):
    """``function(*args, **kwargs)``, its warnings raised again at the line that called ``fit``.

    :func:`fit_shared_trunk` points its warnings at its own caller, which here is ``fit``: a
    ConvergenceWarning named a line of this module, where scikit-learn's point at the user's.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            return function(*args, **kwargs)
    finally:  # (also those before an error)
        for w in caught:
            warnings.warn(w.message, w.category, stacklevel=3)


class SharedTrunkRegressor(RegressorMixin, _SharedTrunkModel):
    __doc__ = (
        """Multi-task regression by a shared trunk (hard parameter sharing).

    A network of dense layers shared by every task (``hidden``), optional layers of each task's
    own (``task_hidden``), and one linear head per task; trained by the native core (batched
    forward and backward passes of all tasks), L-BFGS or minibatch Adam. Minimizes
    ``(1/T) sum_t L_t + (l2 / 2) ||weights||^2`` with L_t task t's mean loss (``loss``: squared
    ``0.5 (y - f)^2``, Huber, Poisson).
"""
        + _PARAMS_DOC
        + """    loss : {"squared", "huber", "poisson"}, default="squared"
        The loss of every head (``"poisson"``: the head is the log of the mean; ``predict``
        returns ``exp``).
"""
        + _ATTRS_DOC
    )

    _losses = ("squared", "huber", "poisson")

    def __init__(self, hidden=(64,), task_hidden=(), activation="relu", loss="squared", l2=1e-4, solver="lbfgs",
                 task_weighting="equal", max_iter=200, tol=1e-4, batch_size="auto", learning_rate=1e-3,
                 random_state=0, early_stopping=False, validation_fraction=0.1, warm_start=False, verbose=0,
                 n_threads=None, comm=None):
        super().__init__(hidden=hidden, task_hidden=task_hidden, activation=activation, l2=l2, solver=solver,
                         task_weighting=task_weighting, max_iter=max_iter, tol=tol, batch_size=batch_size,
                         learning_rate=learning_rate, random_state=random_state, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, warm_start=warm_start, verbose=verbose,
                         n_threads=n_threads, comm=comm)
        self.loss = loss

    def _check_params(self):
        super()._check_params()
        if not (isinstance(self.loss, str) and self.loss in self._losses):
            raise ValueError(f"The 'loss' parameter of {type(self).__name__} must be one of {self._losses}. Got "
                             f"{self.loss!r} instead.")

    def _head_losses(self, data):
        return self.loss

    def predict(self, X, task=None):
        """Predictions in the layout of X: (n, T) for a shared X, (n,) for stacked rows (with
        ``task``) and single-task fits, a list of per-task arrays for a list of inputs."""
        loss = get_loss(self.loss)
        return self._per_task(X, task, lambda t, S: loss.predict(S[:, 0]))

    def score(self, X, y=None, task=None, sample_weight=None):
        """R^2, as :meth:`mtlx.MultiTaskRegressor.score` (per task averaged for a shared X; pooled
        over rows for stacked and per-task input; missing labels left out)."""
        return regression_score(self.predict, X, y, task, sample_weight)


class SharedTrunkClassifier(ClassifierMixin, _SharedTrunkModel):
    __doc__ = (
        """Multi-task classification by a shared trunk (hard parameter sharing).

    As :class:`SharedTrunkRegressor`, with one classification head per task: a task of two
    classes has one output and the logistic loss, a task of K > 2 classes has K outputs and the
    softmax (multinomial) loss; tasks with different numbers of classes mix freely.
"""
        + _PARAMS_DOC
        + _ATTRS_DOC
        + """    classes_ : ndarray, or list of ndarrays (one per task)
        The labels of each task in sorted order (one array for a single-task fit).
"""
    )

    # Under scikit-learn's metadata routing a Pipeline hands ``task`` to the methods that ask for it.
    __metadata_request__predict_proba = {"task": True}
    __metadata_request__predict_log_proba = {"task": True}
    __metadata_request__decision_function = {"task": True}

    _classifies = True

    def _encode(self, y_t, task_id, where):
        y_t = np.asarray(y_t)
        if y_t.ndim == 2 and y_t.shape[1] == 1:
            y_t = y_t[:, 0]
        missing = missing_labels(y_t)
        labelled = y_t[~missing]
        check_classification_targets(labelled)
        classes = np.unique(labelled)
        if classes.size < 2:
            raise ValueError(f"{where}: y has only one class ({classes.tolist()}); {type(self).__name__} needs at "
                             "least two classes per task")
        self._classes[task_id] = classes
        index = np.searchsorted(classes, labelled)
        coded = np.full(len(y_t), np.nan)
        coded[~missing] = np.where(index == 1, 1.0, -1.0) if classes.size == 2 else index
        return coded

    def _head_losses(self, data):
        by_id = {}
        for tid in np.asarray(data.task_ids).tolist():
            by_id[tid] = "logistic" if len(self._classes[tid]) == 2 else "multinomial"
        return by_id

    def _head_widths(self, data):
        """One output per binary task, K per task of K > 2 classes (its softmax)."""
        return np.array([1 if len(self._classes[tid]) == 2 else len(self._classes[tid])
                         for tid in np.asarray(data.task_ids).tolist()], dtype=np.int64)

    def _after_fit(self, res):
        classes = dict(self._classes)
        if self.comm is not None:
            for part in self.comm.allgather(classes):
                classes.update(part)
        del self._classes
        per_task = [classes[tid] for tid in self.tasks_.tolist()]
        self.classes_ = per_task[0] if self.fit_layout_ == "single" else per_task

    def _classes_of(self, t):
        return self.classes_ if self.fit_layout_ == "single" else self.classes_[t]

    def _binary(self) -> bool:
        return all(len(self._classes_of(t)) == 2 for t in range(self.n_tasks_))

    def predict(self, X, task=None):
        """Predicted labels in the layout of X (as :meth:`SharedTrunkRegressor.predict`)."""
        def labels(t, S):
            classes = self._classes_of(t)
            return classes[(S[:, 0] > 0).astype(np.intp)] if S.shape[1] == 1 else classes[np.argmax(S, axis=1)]

        check_is_fitted(self)
        kinds = [self._classes_of(t).dtype for t in range(self.n_tasks_)]
        try:
            dtype = np.result_type(*kinds)
        except TypeError:
            dtype = object
        return self._per_task(X, task, labels, dtype=dtype)

    def predict_proba(self, X, task=None):
        """Class probabilities (columns in ``classes_`` order, rows summing to 1): a list of
        per-task arrays for shared and per-task input, one array for stacked rows (every task
        with the same number of classes) and single-task fits."""
        return self._per_task_columns(X, task, proba_from_scores, "predict_proba")

    def predict_log_proba(self, X, task=None):
        """Logarithms of :meth:`predict_proba` (computed without underflow), in its layout."""
        return self._per_task_columns(X, task, log_proba_from_scores, "predict_log_proba")

    def decision_function(self, X, task=None):
        """The heads' outputs: with binary tasks only, the margin of each row (positive: the
        task's second class) in the layout of :meth:`predict`; with a task of K > 2 classes, each
        task's scores, (n, 1) for a binary task and (n, K) for a softmax head, in the layout of
        :meth:`predict_proba`."""
        check_is_fitted(self)
        if self._binary():
            return self._per_task(X, task, lambda t, S: np.asarray(S[:, 0]))
        return self._per_task_columns(X, task, np.asarray, "decision_function")

    def _per_task_columns(self, X, task, of_scores, what: str):
        """``of_scores(S)`` (an array of rows) of each task's head scores: a list for shared and
        per-task input, one array over the rows for stacked input (every task as wide) and
        single-task fits."""
        outputs, positions = self._outputs(X, task)
        if positions is None:
            out = [of_scores(S) for S in outputs]
            return out[0] if self.fit_layout_ == "single" and not is_input_list(X) else out
        parts = [(rows, of_scores(S)) for rows, S in outputs if len(rows)]
        widths = {values.shape[1] for _, values in parts}
        if len(widths) > 1:
            raise ValueError(f"{what} of stacked rows needs every task to have the same number of classes; "
                             "call it per task (a list of per-task inputs)")
        result = np.empty((len(positions), widths.pop()))  # (X has rows: check_array refuses none)
        for rows, values in parts:
            result[rows] = values
        return result

    def score(self, X, y=None, task=None, sample_weight=None):
        """Mean accuracy over every prediction (missing labels left out)."""
        return accuracy(self.predict, X, y, task, sample_weight)
