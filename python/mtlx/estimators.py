"""scikit-learn estimators over the mtlx solver: MultiTaskRegressor and MultiTaskClassifier.

Both accept the three multi-task layouts in ``fit``, ``predict`` and ``score``:

* ``fit(X, Y)`` with ``Y`` of shape (n, T): one input matrix shared by every task;
* ``fit(X, y, task=task_ids)``: stacked rows with a task id per row (``task`` also reaches
  the estimator through scikit-learn's metadata routing, requested by default);
* ``fit([(X_1, y_1), (X_2, y_2), ...])``: each task its own inputs;
* ``fit(X, y)`` with a 1-D ``y``: a single task.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, validate_data

from . import gpu
from ._layouts import group_rows, is_input_list, is_task_list, missing_labels, preview, task_positions
from ._probabilities import log_proba_from_scores, proba_from_scores
from ._progress import IterationProgress, is_root
from ._scoring import accuracy, pooled_weights, regression_score
from ._validate import (
    MAX_THREADS,
    as_real_array,
    check_comm,
    check_int,
    check_real,
    check_task_feature_names,
    check_task_ids,
    reset_feature_names,
    task_list_feature_names,
)
from .data import TaskData
from .losses import Huber, Multinomial, get_loss
from .penalties import get_penalty
from .solver import SOLVERS, check_options, choose_solver, solve

__all__ = ["MultiTaskClassifier", "MultiTaskRegressor"]

logger = logging.getLogger("mtlx")

_FLOATS = (np.float64, np.float32)

#: Sparse inputs the estimators take (kept sparse: the core's CSR kernels; CSC is converted once).
_SPARSE = ("csr", "csc")

_PARAMS_DOC = """
    Parameters
    ----------
    penalty : {"l21", "trace", "l1", "mean", "none"}, default="l21"
        The coupling g(W): ``"l21"`` selects features jointly across tasks, ``"trace"`` keeps
        the tasks in a low-dimensional subspace, ``"l1"`` makes each task sparse on its own,
        ``"mean"`` pulls every task toward the average task (0.5 sum_t ||w_t - mean||^2).
    alpha : float, default=0.1
        Strength of the penalty (>= 0).
    l2 : float, default=0.0
        Ridge term ``(l2 / 2) ||W||_F^2`` (>= 0).
    fit_intercept : bool, default=True
        Fit an unpenalized intercept per task.
    task_weights : {"mean", "sum"} or array-like of shape (n_tasks,), default="mean"
        Weight c_t of task t's summed loss: ``"mean"`` = 1/m_t, ``"sum"`` = 1. (A classifier's
        K-class task: its K columns share its weight.)
    tol : float, default=1e-6
        Relative tolerance of the solver: FISTA's change of F and gradient-mapping measure (and
        the duality gap where the problem has one); the duality gap (``gap <= tol * F``, a
        certificate) of coordinate descent, ADMM on norms and the factored engine.
    max_iter : int, default=10000
        Iteration cap (FISTA iterations; coordinate-descent epochs over the working sets);
        reaching it emits a :class:`mtlx.ConvergenceWarning`.
    solver : {"auto", "fista", "cd", "factored", "admm"}, default="auto"
        ``"cd"``: working sets and block coordinate descent on Gram statistics with gap-safe
        screening (:func:`mtlx.working_set.solve_working_set`), for the squared loss with
        ``"l1"`` or ``"l21"``: on sparse problems many times faster than FISTA. ``"admm"``: for
        the squared loss in the Gram form with a penalty its prox applies whole (decompositions,
        the trace norm, clustered MTL; :mod:`mtlx.admm`). ``"factored"``:
        quasi-Newton on the factors of a trace norm, certified by a duality gap
        (:mod:`mtlx.factored`). ``"fista"``: the accelerated proximal-gradient solver, for every
        loss and penalty, under MPI and with checkpoints. ``"auto"`` chooses by the problem
        (:func:`mtlx.solver.choose_solver`); verbosity and callbacks never change the choice.
    warm_start : bool, default=False
        Start from the previous ``coef_``/``intercept_`` when their shapes still fit.
    verbose : int, default=0
        ``1`` shows a progress bar of the iterations with F and the optimality measure.
    callback : callable, default=None
        ``callback(state)`` after every iteration (:class:`mtlx.SolverState`); raising
        ``StopIteration`` stops the fit.
    n_threads : int, default=None
        Threads of the core and of BLAS (default: ``MTLX_NUM_THREADS``, else chosen by the size
        of the problem, see :func:`mtlx.solve`).
    comm : mpi4py communicator, default=None
        Distribute the tasks over the ranks of ``comm`` (each rank passes only its tasks).
    device : {None, "cpu", "cuda", "cuda:N"}, default=None
        Run the data pass on a GPU (``"cuda"``: device ``MTLX_DEVICE``, else 0): ``fit`` moves the
        data there once and solves by FISTA (see :func:`mtlx.solve`). Fitted attributes stay numpy
        arrays (scikit-learn's convention for fitted attributes), and ``predict`` runs on the host.
        Needs a build with the CUDA backend (``mtlx.HAS_CUDA``).
"""

_ATTRS_DOC = """
    Attributes
    ----------
    coef_ : ndarray of shape (n_tasks, n_features)
        Row t holds task t's coefficients (column t of the solver's W).
    intercept_ : ndarray of shape (n_tasks,)
        Zeros when ``fit_intercept=False``.
    n_tasks_ : int
    tasks_ : ndarray of shape (n_tasks,)
        The task ids, in the order of the rows of ``coef_`` (``0..T-1`` unless ``task`` ids
        were given).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.
    n_iter_ : int
        Solver iterations of the last fit.
    objective_history_ : ndarray
        F along the last fit, as its engine measures it (``solver_``; see
        :attr:`mtlx.SolveResult.history`): after each iteration of FISTA and ADMM (``[0]`` at
        the starting point), at each duality-gap check of coordinate descent.
    fit_layout_ : {"single", "shared", "stacked", "tasks"}
        The layout ``fit`` received; ``predict(X)`` without ``task`` returns a 1-D array only
        for ``"single"`` and an (n, n_tasks) array otherwise.
"""


class _MultiTaskModel(BaseEstimator):
    """Shared machinery: layouts, the solve, margins. Subclasses set ``_loss`` (the default loss)
    and ``_losses`` (the names their ``loss`` parameter accepts)."""

    _loss = "squared"
    _losses = ("squared",)
    # ``task`` is routed to fit/predict/score by default (metadata routing), like ``groups``.
    __metadata_request__fit = {"task": True}
    __metadata_request__predict = {"task": True}
    __metadata_request__score = {"task": True}

    def __init__(self, penalty="l21", alpha=0.1, l2=0.0, fit_intercept=True, task_weights="mean", tol=1e-6,
                 max_iter=10_000, solver="auto", warm_start=False, verbose=0, callback=None, n_threads=None,
                 comm=None, device=None):
        self.penalty = penalty
        self.alpha = alpha
        self.l2 = l2
        self.fit_intercept = fit_intercept
        self.task_weights = task_weights
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.warm_start = warm_start
        self.verbose = verbose
        self.callback = callback
        self.n_threads = n_threads
        self.comm = comm
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        return tags

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, task=None, sample_weight=None):
        """Fit all tasks jointly.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), list of (X_t, y_t) pairs, or TaskData
        y : array-like of shape (n_samples,) or (n_samples, n_tasks), default=None
            Targets; a 2-D ``y`` means one column per task on the shared ``X``, where NaN marks
            a row not labelled for that task (the task fits its labelled rows only). Leave None
            when ``X`` is a list of pairs or a :class:`mtlx.TaskData`.
        task : array-like of shape (n_samples,), default=None
            Task id of each row (stacked layout).
        sample_weight : array-like of shape (n_samples,), or list of per-task arrays, default=None
            Non-negative weight of each row: its loss counts s_i times (an integer weight as
            that many copies of the row, 0 as no row). A list (one array per task) or one array
            over the pooled rows for list input; held by the TaskData for TaskData input.

        Returns
        -------
        self
        """
        return self._fit(X, y, task, sample_weight=sample_weight)

    def _fit(self, X, y=None, task=None, sample_weight=None, **solve_options):
        """:meth:`fit`, with extra keywords for :func:`mtlx.solve` (the CLI's checkpoints)."""
        if self.comm is None:
            self._check_params()
            data = self._fit_data(X, y, task, sample_weight)
        else:
            from .distributed import agreed_errors

            with agreed_errors(self.comm):  # bad input on one rank stops every rank, same message
                self._check_params()
                data = self._fit_data(X, y, task, sample_weight)
                if self.fit_layout_ not in ("stacked",) and not isinstance(X, TaskData):
                    raise ValueError("under MPI (comm=...) pass each rank's tasks as stacked rows with global task "
                                     "ids (fit(X, y, task=ids)) or as a TaskData with task_ids: in the other "
                                     "layouts the task ids of different ranks would collide")
            # (after the agreement: a collective of its own, which every rank reaches)
            data = self._distributed_columns(data)
        data = gpu.place(data, getattr(self, "device", None), self.comm)  # (the data pass on a GPU: moved once)
        T, d = len(self._global_task_ids(data)), data.n_features
        W0 = b0 = None
        if self.warm_start and getattr(self, "coef_", None) is not None and self.coef_.shape == (T, d):
            W0 = self.coef_.T
            b0 = self.intercept_ if self.fit_intercept else None
        enabled = bool(self.verbose) and is_root(self.comm)
        comm_kw = {} if self.comm is None else {"comm": self.comm}
        engine = self._solver_for(data, solve_options)
        logistic = getattr(self, "loss", self._loss) == "logistic"  # (its cd engine, proximal Newton, takes b0)
        with IterationProgress(self.tol, enabled, self.callback, type(self).__name__) as progress:
            callback = progress if (enabled or self.callback is not None) else None
            res = solve(data, loss=self._column_losses(), penalty=self.penalty, alpha=self.alpha, l2=self.l2,
                        fit_intercept=self.fit_intercept, task_weights=self._column_task_weights(), tol=self.tol,
                        max_iter=self.max_iter, W0=W0, b0=None if engine == "cd" and not logistic else b0,
                        callback=callback,
                        solver=getattr(self, "solver", "auto"), n_threads=self.n_threads, **comm_kw,
                        **solve_options)
        logger.info("%s: %d tasks, %d features, %s by %s after %d iterations (F = %.10g, %.3f s)",
                    type(self).__name__, T, d, res.message, engine, res.n_iter, res.objective, res.time)
        self.coef_ = np.ascontiguousarray(res.W.T)
        self.intercept_ = np.asarray(res.b)
        self.n_iter_ = int(res.n_iter)
        self.objective_history_ = res.history
        self.n_tasks_ = T
        self.tasks_ = np.asarray(res.task_ids)
        self.solver_ = res.solver
        if len(res.components) > 1:
            self.components_ = tuple(np.ascontiguousarray(c.T) for c in res.components)
        elif hasattr(self, "components_"):
            del self.components_
        self._gather_task_info(data)
        return self

    def _column_losses(self):
        """The loss of each column of W (each task's, by default)."""
        return self._loss_object()

    def _column_task_weights(self):
        """``task_weights`` for each column of W (each task's, by default)."""
        return self.task_weights

    def _loss_object(self):
        """The loss of every task: the ``loss`` parameter (with ``epsilon`` for Huber) where the
        estimator has one, else its fixed loss."""
        name = getattr(self, "loss", self._loss)
        if not (isinstance(name, str) and name in self._losses):
            raise ValueError(f"The 'loss' parameter of {type(self).__name__} must be one of {self._losses}. Got "
                             f"{name!r} instead.")
        loss = get_loss(name)
        return Huber(getattr(self, "epsilon", loss.epsilon)) if isinstance(loss, Huber) else loss

    def _check_params(self):
        """Check every constructor argument as ``fit`` needs it (also what :func:`mtlx.load` runs).

        Returns the penalty object. Messages follow scikit-learn's parameter validation.
        """
        pen = check_options(self.penalty, self.alpha, self.l2, self.tol, self.max_iter)[0]
        if hasattr(self, "epsilon"):
            check_real(self.epsilon, "epsilon", 0.0, low_open=True)
        self._loss_object()
        for name in ("fit_intercept", "warm_start"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"The {name!r} parameter must be a bool. Got {getattr(self, name)!r} instead.")
        if not (isinstance(self.task_weights, str) and self.task_weights in ("mean", "sum")):
            if isinstance(self.task_weights, str):
                raise ValueError(f"The 'task_weights' parameter must be 'mean', 'sum' or an array of weights. Got "
                                 f"{self.task_weights!r} instead.")
            as_real_array(self.task_weights, "task_weights", ndim=1)
        if getattr(self, "solver", "auto") not in SOLVERS:
            raise ValueError(f"The 'solver' parameter must be one of {SOLVERS}. Got {self.solver!r} instead.")
        check_int(self.verbose, "verbose", 0)
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"The 'callback' parameter must be a callable or None. Got {self.callback!r} instead.")
        if self.n_threads is not None:
            check_int(self.n_threads, "n_threads", 1, MAX_THREADS)
        check_comm(self.comm)
        device = getattr(self, "device", None)
        if device is not None:
            gpu.resolve_device(device)  # an unknown or absent device fails here, before any work
        return pen

    def _solver_for(self, data: TaskData, solve_options: dict) -> str:
        """The engine ``solver`` asks for, checked against this fit (:func:`mtlx.solver.choose_solver`)."""
        return choose_solver(getattr(self, "solver", "auto"), data, self._loss_object(), get_penalty(self.penalty),
                             self.alpha, distributed=self.comm is not None, checkpoint=bool(solve_options),
                             task_weights=self.task_weights, fit_intercept=self.fit_intercept, l2=self.l2)

    def _global_task_ids(self, data: TaskData) -> np.ndarray:
        """Ids of the tasks of all ranks in global (sorted) order; the local ids without MPI."""
        if self.comm is None:
            return np.asarray(data.task_ids)
        return np.sort(np.concatenate(self.comm.allgather(np.asarray(data.task_ids))))

    def _gather_task_info(self, data: TaskData) -> None:
        """Make per-task attributes cover every rank's tasks (the classifier's classes)."""

    def _distributed_columns(self, data: TaskData) -> TaskData:
        """Under MPI, after every rank built its data: the data with its columns' global ids
        (the classifier's multiclass tasks own several columns)."""
        return data

    def _fit_data(self, X, y, task, sample_weight=None) -> TaskData:
        """Validate the inputs of ``fit``, encode the targets, and build the TaskData."""
        if isinstance(X, (list, tuple)) and len(X) == 0 and y is None:
            raise ValueError("X is an empty list: a list input holds one (X_t, y_t) pair per task, and there is none")
        if isinstance(X, TaskData):
            if y is not None or task is not None:
                raise ValueError("y and task must be None when X is a TaskData (it holds the targets and task ids)")
            if sample_weight is not None:
                raise ValueError("sample_weight must be None when X is a TaskData: give the weights to its "
                                 "constructor (TaskData.from_*(..., sample_weight=...))")
            data = self._encode_task_data(X)
            reset_feature_names(self)
            self.n_features_in_ = data.n_features
            self.fit_layout_ = data.layout
            return data
        if is_task_list(X, y):
            if task is not None:
                raise ValueError("task must be None when X is a list of (X_t, y_t) pairs (each pair is one task)")
            pairs = [(X_t, self._encode_targets(y_t, f"task {t}", t)) for t, (X_t, y_t) in
                     enumerate(X)]
            weights = None
            if sample_weight is not None:
                sizes = [len(y_t) for _, y_t in pairs]
                pooled = pooled_weights(sample_weight, sizes)
                weights = np.split(pooled, np.cumsum(sizes)[:-1])
            names = task_list_feature_names([X_t for X_t, _ in X])
            pairs, weights = _one_column_per_target(pairs, weights)
            data = TaskData.from_tasks(pairs, sample_weight=weights)
            reset_feature_names(self, names)
            self.n_features_in_ = data.n_features
            self.fit_layout_ = "tasks"
            return data
        if task is None:
            X, y = self._validate_shared(X, y)
            self.fit_layout_ = "single" if y.ndim == 1 else "shared"
            Y = y.reshape(len(y), -1)
            Y = np.column_stack([self._encode_targets(Y[:, t], f"task {t} (column {t} of y)", t)
                                 for t in range(Y.shape[1])])
            return TaskData.from_shared(X, Y, sample_weight=sample_weight)
        # (under MPI a rank may hold no task: more ranks than tasks)
        X, y = validate_data(self, X, y, dtype=_FLOATS, y_numeric=not self._loss_object().labels,
                             accept_sparse=_SPARSE, ensure_min_samples=1 if self.comm is None else 0)
        task = check_task_ids(task, name="task") if np.ndim(task) == 1 else np.asarray(task)
        if task.ndim != 1 or task.shape[0] != X.shape[0]:
            raise ValueError(f"task must hold one id per row of X: X has {X.shape[0]} rows, task has shape "
                             f"{task.shape}")
        self.fit_layout_ = "stacked"
        if X.shape[0] == 0:
            return TaskData.empty(X.shape[1], X.dtype if X.dtype == np.float32 else np.float64)
        ids, positions = np.unique(task, return_inverse=True)
        coded = [(rows, self._encode_targets(y[rows], f"task {ids[t]}", t)) for t, rows in group_rows(positions)]
        if any(np.ndim(c) == 2 for _, c in coded):  # a task of several target columns: its rows once per column
            s = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
            pairs, weights = _one_column_per_target([(X[rows], c) for rows, c in coded],
                                                    None if s is None else [s[rows] for rows, _ in coded])
            return TaskData.from_tasks(pairs, sample_weight=weights)
        y_coded = np.empty(len(y), dtype=np.float64)
        for rows, c in coded:
            y_coded[rows] = c
        return TaskData.from_stacked(X, y_coded, task, sample_weight=sample_weight)

    def _validate_shared(self, X, y):
        """``validate_data`` for one X shared by every column of y, NaN in y allowed (a missing label).

        scikit-learn's check of y refuses NaN; X is checked as usual, y here (infinity refused)."""
        X = validate_data(self, X, dtype=_FLOATS, accept_sparse=_SPARSE)
        if y is None:
            raise ValueError(f"requires y to be passed, but the target y is None ({type(self).__name__} is a "
                             "supervised estimator)")
        y = check_array(y, ensure_2d=False, dtype=None, ensure_all_finite="allow-nan", input_name="y")
        if y.ndim > 2:
            raise ValueError(f"y must be 1-D or 2-D (one column per task), got shape {y.shape}")
        check_consistent_length(X, y)
        if not self._loss_object().labels and y.dtype.kind == "O":
            y = y.astype(np.float64)
        return X, y

    def _encode_task_data(self, data: TaskData) -> TaskData:
        """``data`` with encoded targets; the same object when encoding changes nothing (no copy of X ever).

        Only the targets that count are encoded (weight > 0): the others are placeholders."""
        coded, changed = [], False
        for t in range(data.n_tasks):
            y_t, w_t = data.targets(t), data.task_weights_of(t)
            if w_t is None or np.all(w_t > 0):
                c = self._encode_targets(y_t, f"task {data.task_ids[t]}", t)
            else:
                counted = self._encode_targets(y_t[w_t > 0], f"task {data.task_ids[t]}", t)
                c = np.zeros((len(y_t),) + counted.shape[1:])
                c[w_t > 0] = counted
            changed = changed or c is not y_t
            coded.append(c)
        if not changed:
            return data
        if data.device is not None:
            raise ValueError("a classifier encodes its targets on the host: fit it on numpy arrays with device='cuda' "
                             "(the data then move to the GPU once), not on a TaskData of device arrays")
        widths = [1 if np.ndim(c) == 1 else np.shape(c)[1] for c in coded]
        if max(widths) > 1:  # a multiclass task: one column per class (ids 0..C-1; the tasks' ids are kept apart)
            columns = np.arange(sum(widths))
            if data.layout == "shared":
                S = None if data.sample_weight is None else np.repeat(data.sample_weight, widths, axis=1)
                return TaskData(layout="shared", X=data.X, Y=np.column_stack(coded).astype(data.dtype),
                                task_ids=columns, sample_weight=S, row_weight=data.row_weight)
            weights = None if data.sample_weight is None else [data.task_weights_of(t) for t in range(data.n_tasks)]
            pairs, weights = _one_column_per_target([(data.task(t)[0], c) for t, c in enumerate(coded)], weights)
            return TaskData.from_tasks(pairs, task_ids=columns, sample_weight=weights)
        if data.layout == "shared":
            return TaskData(layout="shared", X=data.X, Y=np.column_stack(coded).astype(data.dtype),
                            task_ids=data.task_ids, sample_weight=data.sample_weight, row_weight=data.row_weight)
        return TaskData(layout="stacked", X=data.X, y=np.concatenate(coded).astype(data.dtype), offsets=data.offsets,
                        task_ids=data.task_ids, sample_weight=data.sample_weight)

    def _encode_targets(self, y_t, where: str, t: int):
        """Targets of task ``t`` as the loss expects them (regression: unchanged)."""
        return y_t

    # ------------------------------------------------------------------ margins
    def _margins(self, X, task):
        """Linear predictions ``x . w_t + b_t`` in the layout of the input.

        Returns ``(z, positions)``: ``z`` is a list of per-task arrays (list input), an
        (n,) array with the task position of each row in ``positions`` (stacked input), or an
        (n, T) array (one X for every task; (n,) for a single-task fit), ``positions`` None.
        """
        check_is_fitted(self)
        # In the wider of the input's and the model's dtypes, as scikit-learn's linear models: a
        # float64 model predicting float32 rows keeps its float64 weights (cast to float32, the
        # predictions of targets near 1e5 were off by 1e-2, and a float64 model of targets past
        # 3e38 predicted inf).
        if is_input_list(X):
            out = []
            for t, X_t in enumerate(self._list_inputs(X, task)):
                dtype = np.result_type(X_t.dtype, self.coef_.dtype)
                out.append(X_t @ self.coef_[t].astype(dtype, copy=False) + self.intercept_[t].astype(dtype))
            return out, None
        X = validate_data(self, X, reset=False, dtype=_FLOATS, accept_sparse=_SPARSE)
        dtype = np.result_type(X.dtype, self.coef_.dtype)
        coef = self.coef_.astype(dtype, copy=False)
        if task is None and self.fit_layout_ == "stacked":
            raise ValueError(
                f"this {type(self).__name__} was fit on stacked rows with task ids (fit(X, y, task=...)): predict "
                "and score need the task id of each row too (task=...); in a Pipeline or GridSearchCV, enable "
                "scikit-learn's metadata routing (sklearn.set_config(enable_metadata_routing=True)) so that task "
                "reaches them")
        if task is None:
            Z = X @ coef.T + self.intercept_.astype(dtype, copy=False)
            return (Z[:, 0] if self.fit_layout_ == "single" else Z), None
        positions = self._task_positions(task, X.shape[0])
        z = np.empty(X.shape[0], dtype=dtype)
        for t, rows in group_rows(positions):
            z[rows] = X[rows] @ coef[t] + self.intercept_[t]
        return z, positions

    def _list_inputs(self, X, task) -> list:
        """A list of per-task inputs, each checked (one per task, the fitted number of features)."""
        if task is not None:
            raise ValueError("task must be None when X is a list of per-task inputs")
        if len(X) != self.n_tasks_:
            raise ValueError(f"X is a list of {len(X)} per-task inputs but the model has {self.n_tasks_} tasks")
        check_task_feature_names(self, X)
        out = []
        for t, X_t in enumerate(X):
            X_t = check_array(X_t, dtype=_FLOATS, input_name=f"X[{t}]", accept_sparse=_SPARSE)
            self._check_n_features(X_t, f"task {self.tasks_[t]}: X")
            out.append(X_t)
        return out

    def _check_n_features(self, X, name: str) -> None:
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"{name} has {X.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")

    def _task_positions(self, task, n_rows: int) -> np.ndarray:
        """Position in ``tasks_`` of each row's task id; unknown ids are an error."""
        return task_positions(task, n_rows, self.tasks_)


class MultiTaskRegressor(RegressorMixin, _MultiTaskModel):
    __doc__ = (
        """Multi-task regression with a coupling penalty (least squares by default).

    Minimizes ``sum_t c_t sum_i L(y_ti, x_ti . w_t + b_t) + alpha g(W) + (l2/2) ||W||_F^2`` with
    the mtlx solver, L the squared loss ``0.5 (y - z)^2`` unless ``loss`` says otherwise. With
    shared ``X``, ``penalty="l21"``, ``task_weights="mean"`` and ``fit_intercept=False`` this is
    scikit-learn's ``MultiTaskLasso`` objective.
"""
        + _PARAMS_DOC
        + """    loss : {"squared", "huber", "poisson"}, default="squared"
        The loss of every task (:mod:`mtlx.losses`): ``"huber"`` is robust to outliers
        (scikit-learn's HuberRegressor loss, scale fixed at 1), ``"poisson"`` fits counts with the
        log link (``predict`` returns the mean ``exp(x . w + b)``). Losses other than squared are
        solved by FISTA.
    epsilon : float, default=1.35
        The Huber loss's threshold, in the targets' units (only with ``loss="huber"``).
"""
        + _ATTRS_DOC
        + """
    Examples
    --------
    >>> import numpy as np, mtlx
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(50, 8)), rng.normal(size=(50, 3))
    >>> mtlx.MultiTaskRegressor(penalty="l21", alpha=0.05).fit(X, Y).coef_.shape
    (3, 8)
"""
    )

    _loss = "squared"
    _losses = ("squared", "huber", "poisson")

    def __init__(self, penalty="l21", alpha=0.1, l2=0.0, fit_intercept=True, task_weights="mean", tol=1e-6,
                 max_iter=10_000, solver="auto", warm_start=False, verbose=0, callback=None, n_threads=None,
                 comm=None, device=None, loss="squared", epsilon=1.35):
        super().__init__(penalty=penalty, alpha=alpha, l2=l2, fit_intercept=fit_intercept,
                         task_weights=task_weights, tol=tol, max_iter=max_iter, solver=solver,
                         warm_start=warm_start, verbose=verbose, callback=callback, n_threads=n_threads, comm=comm,
                         device=device)
        self.loss = loss
        self.epsilon = epsilon

    def predict(self, X, task=None):
        """Predict every task's target (the mean ``exp(z)`` for the Poisson loss).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of per-task inputs X_t
        task : array-like of shape (n_samples,), default=None
            Task id of each row; without it every task is predicted on every row.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_tasks), or list of ndarray
            (n,) for stacked input and for a single-task fit, (n, T) for one X shared by all
            tasks, one array per task for list input.
        """
        z = self._margins(X, task)[0]
        loss = self._loss_object()
        return [loss.predict(z_t) for z_t in z] if isinstance(z, list) else loss.predict(z)

    def score(self, X, y=None, task=None, sample_weight=None):
        """Coefficient of determination R^2 of the predictions.

        For shared input (y of shape (n, T)) the R^2 of each task averaged uniformly, as
        scikit-learn scores multi-output regression; for stacked rows and per-task lists the
        R^2 over all rows pooled (1 - SSE / total sum of squares), the school benchmark's
        explained variance.

        Parameters
        ----------
        X, y, task :
            As for :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), or list of per-task arrays, default=None
            Weight of each row in the sums of squares (scikit-learn's ``r2_score``).

        NaN in a shared ``y`` (a missing label) is left out: each task's R^2 over its labelled
        rows, averaged uniformly.
        """
        return regression_score(self.predict, X, y, task, sample_weight)


class MultiTaskClassifier(ClassifierMixin, _MultiTaskModel):
    __doc__ = (
        """Multi-task classification: logistic loss per task with a coupling penalty.

    Each task has its own labels (any values). A task of two classes has one column of W: its
    labels become -1/+1 and its loss is ``log(1 + exp(-y_ti (x_ti . w_t + b_t)))`` (or the squared
    hinge ``max(0, 1 - y z)^2``, a linear SVM, with ``loss="squared_hinge"``). A task of K > 2
    classes has K columns of W, one per class, and the multinomial (softmax) loss
    ``log sum_k exp(z_ik) - z_i,y_i`` (:class:`mtlx.losses.Multinomial`; K columns, as scikit-learn's
    LogisticRegression, the penalty choosing among the equivalent shifts). ``coef_`` stacks the
    columns: one row per binary task, K rows per task of K classes, in task order. Penalties act on
    those columns: l21 couples a feature's rows across every column (every class of every task),
    l1 acts per entry, the trace norm on the whole stacked matrix; Graph, Mean and Clustered treat
    each column as a task (a multinomial task's classes as K tasks). Under MPI a task's columns stay
    on the rank that holds its rows; MultiTaskClassifierCV takes multiclass tasks too (folds by class).
"""
        + _PARAMS_DOC
        + """    loss : {"logistic", "squared_hinge"}, default="logistic"
        The loss of every task (:mod:`mtlx.losses`). ``predict_proba`` exists for the logistic
        loss only (the squared hinge gives margins, not probabilities).
"""
        + _ATTRS_DOC
        + """    classes_ : ndarray of shape (2,), or list of such arrays (one per task)
        The two labels of each task in sorted order; the second is the positive class. A
        single-task fit stores one array, as scikit-learn's binary classifiers do.
"""
    )

    # Under scikit-learn's metadata routing a Pipeline hands ``task`` to the methods that ask for it.
    __metadata_request__predict_proba = {"task": True}
    __metadata_request__predict_log_proba = {"task": True}
    __metadata_request__decision_function = {"task": True}

    _loss = "logistic"
    _losses = ("logistic", "squared_hinge")

    def __init__(self, penalty="l21", alpha=0.1, l2=0.0, fit_intercept=True, task_weights="mean", tol=1e-6,
                 max_iter=10_000, solver="auto", warm_start=False, verbose=0, callback=None, n_threads=None,
                 comm=None, device=None, loss="logistic"):
        super().__init__(penalty=penalty, alpha=alpha, l2=l2, fit_intercept=fit_intercept,
                         task_weights=task_weights, tol=tol, max_iter=max_iter, solver=solver,
                         warm_start=warm_start, verbose=verbose, callback=callback, n_threads=n_threads, comm=comm,
                         device=device)
        self.loss = loss

    def _has_proba(self) -> bool:
        return getattr(self, "loss", self._loss) == "logistic"

    def _fit_data(self, X, y, task, sample_weight=None):
        self._task_classes = []
        try:
            data = super()._fit_data(X, y, task, sample_weight)
        finally:
            classes = self._task_classes
            del self._task_classes
        self.classes_ = classes[0] if self.fit_layout_ == "single" else classes
        # The user's task ids: the columns of W are one per binary task and one per class of a
        # multinomial task, so the TaskData's ids (one per column) are not the tasks'.
        if isinstance(X, TaskData):
            self._task_ids = np.asarray(X.task_ids)
        elif self.fit_layout_ == "stacked":
            self._task_ids = np.unique(check_task_ids(task, name="task"))
        else:  # shared columns, a single task, a list of tasks: positions
            self._task_ids = np.arange(len(classes))
        self._global_classes = None
        return data

    def _distributed_columns(self, data: TaskData) -> TaskData:
        """Under MPI: every rank's tasks and labels (one allgather), and, where some task has more
        than two classes, the global column ids of this rank's columns (its tasks' columns, in
        the global task order: one per binary task, K per task of K classes)."""
        local_ids = np.asarray(data.task_ids) if not self._is_multinomial() else np.asarray(self._task_ids)
        by_id = {}
        for part in self.comm.allgather(list(zip(local_ids.tolist(), self._per_task_classes()))):
            by_id.update(part)
        ids = sorted(by_id)
        self._global_classes = (ids, [by_id[t] for t in ids])
        if not any(len(c) > 2 for c in self._global_classes[1]):
            return data
        widths = [1 if len(by_id[t]) == 2 else len(by_id[t]) for t in ids]
        first = dict(zip(ids, np.concatenate([[0], np.cumsum(widths)[:-1]]).tolist()))
        columns = [first[t] + k for t in local_ids.tolist() for k in range(1 if len(by_id[t]) == 2 else len(by_id[t]))]
        data.task_ids = np.asarray(columns, dtype=np.int64)
        return data

    # -- multinomial tasks: K columns of W each ---------------------------------------------------
    def _per_task_classes(self) -> list:
        return [self.classes_] if self.fit_layout_ == "single" else list(self.classes_)

    def _is_multinomial(self) -> bool:
        """Whether some task has more than two classes (then its K columns of W form a softmax)."""
        if not hasattr(self, "classes_"):  # unfitted: the binary paths raise NotFittedError
            return False
        return any(len(c) > 2 for c in self._per_task_classes())

    def _column_ranges(self) -> list:
        """The rows of ``coef_`` of each task: one for a binary task, K for a task of K classes."""
        edges = np.concatenate([[0], np.cumsum(_column_widths(self._per_task_classes()))]).astype(int)
        return list(zip(edges[:-1].tolist(), edges[1:].tolist()))

    def _column_task_weights(self):
        """An array of task_weights, one per task, repeated over a K-class task's K columns (which
        share its weight). One per column (as many as W has) is taken as it is."""
        weights = self.task_weights
        if isinstance(weights, str):
            return weights
        widths = _column_widths(self._classes_in_task_order())
        c = np.asarray(weights, dtype=np.float64).ravel()
        if np.ndim(weights) != 1 or c.size not in (len(widths), sum(widths)):
            raise ValueError(f"task_weights has shape {np.shape(weights)}, expected ({len(widths)},): one weight per "
                             "task")
        return np.repeat(c, widths) if c.size == len(widths) else c

    def _classes_in_task_order(self) -> list:
        """Each task's classes, in task order (under MPI: every rank's tasks, in global order)."""
        return self._per_task_classes() if getattr(self, "_global_classes", None) is None else \
            self._global_classes[1]

    def _column_losses(self):
        base = self._loss_object()
        per_task = self._classes_in_task_order()
        if not any(len(c) > 2 for c in per_task):
            return base
        out = []
        for c in per_task:
            out.extend([base] if len(c) == 2 else [Multinomial()] * len(c))  # one object per task: its group
        return out

    def _task_scores(self, X, task):
        """Each task's scores: (m, 1) margins of a binary task, (m, K) class scores of a multinomial
        one. Returns (list of per-task arrays, positions) as :meth:`_margins`; for stacked input the
        list holds (rows, scores) per task."""
        check_is_fitted(self)
        ranges = self._column_ranges()
        coef, b = self.coef_, self.intercept_
        if is_input_list(X):
            return [np.asarray(X_t @ coef[lo:hi].T.astype(X_t.dtype, copy=False)) + b[lo:hi]
                    for X_t, (lo, hi) in zip(self._list_inputs(X, task), ranges)], None
        if task is None and self.fit_layout_ == "stacked":
            return self._margins(X, task)  # (raises: a stacked model needs task)
        X = validate_data(self, X, reset=False, dtype=_FLOATS, accept_sparse=_SPARSE)
        if task is None:
            Z = np.asarray(X @ coef.T.astype(X.dtype, copy=False)) + b
            return [Z[:, lo:hi] for lo, hi in ranges], None
        positions = self._task_positions(task, X.shape[0])
        out = [(np.zeros(0, dtype=np.intp), None)] * self.n_tasks_
        for t, rows in group_rows(positions):
            lo, hi = ranges[t]
            out[t] = (rows, np.asarray(X[rows] @ coef[lo:hi].T.astype(X.dtype, copy=False)) + b[lo:hi])
        return out, positions

    def _stacked_same_width(self, what: str) -> int:
        widths = {hi - lo for lo, hi in self._column_ranges()}
        if len(widths) != 1:
            raise ValueError(f"{what} of stacked rows needs every task to have the same number of classes; these "
                             "tasks differ: call it per task (a list of per-task inputs)")
        return widths.pop()

    def _multinomial_output(self, X, task, of_scores, what: str):
        """``of_scores(t, S)`` per task, in the layout of X (a list for per-task and shared input, one
        array over the rows for stacked input)."""
        scores, positions = self._task_scores(X, task)
        if positions is None:
            out = [of_scores(t, S) for t, S in enumerate(scores)]
            return out[0] if self.fit_layout_ == "single" else out
        self._stacked_same_width(what)
        parts = [(rows, of_scores(t, S)) for t, (rows, S) in enumerate(scores) if S is not None]
        result = np.empty((len(positions),) + parts[0][1].shape[1:], dtype=np.result_type(*[p for _, p in parts]))
        for rows, values in parts:
            result[rows] = values
        return result

    def _labels_of(self, t: int, S: np.ndarray) -> np.ndarray:
        classes = self._per_task_classes()[t]
        return classes[(S[:, 0] > 0).astype(np.intp)] if S.shape[1] == 1 else classes[np.argmax(S, axis=1)]

    def _gather_task_info(self, data: TaskData) -> None:
        if self.comm is not None:  # every rank's tasks and labels, gathered with the data (_global_columns)
            ids, classes = self._global_classes
            self.classes_ = list(classes)
            self.tasks_ = np.asarray(ids)
            self.n_tasks_ = len(ids)
            return
        if self._is_multinomial():
            self.tasks_ = np.asarray(self._task_ids)
            self.n_tasks_ = len(self.tasks_)

    def _encode_targets(self, y_t, where: str, t: int):
        y_t = np.asarray(y_t)
        if y_t.ndim == 2 and y_t.shape[1] == 1:
            y_t = y_t[:, 0]
        missing = missing_labels(y_t)
        if missing.any():  # missing labels (shared X): encode the others
            inner = self._encode_targets(y_t[~missing], where, t)
            coded = np.full((len(y_t),) + inner.shape[1:], np.nan)
            coded[~missing] = inner
            return coded
        check_classification_targets(y_t)
        classes = np.unique(y_t)
        if classes.size < 2:
            raise ValueError(f"{where}: y has only one class ({preview(classes)}); {type(self).__name__} needs "
                             "at least two classes per task")
        if classes.size > 2:
            if self._loss_object().name != "logistic":
                raise ValueError(f"{where}: {classes.size} classes ({preview(classes)}), but the "
                                 f"{self._loss_object().name} loss separates two; use loss='logistic', which fits "
                                 "the multinomial (softmax) loss for a task of more than two classes")
            self._task_classes.append(classes)
            return (y_t[:, None] == classes[None, :]).astype(np.float64)  # one-hot: its K columns' targets
        self._task_classes.append(classes)
        return np.where(y_t == classes[1], 1.0, -1.0)

    def _classes_of(self, t: int) -> np.ndarray:
        return self.classes_ if self.fit_layout_ == "single" else self.classes_[t]

    def decision_function(self, X, task=None):
        """Margins ``x . w_t + b_t`` (positive: the task's second class); layouts as ``predict``.

        With a task of K > 2 classes, each task's scores: (n, 1) for a binary task, (n, K) for a
        multinomial one, in a list (one array per task) for shared and per-task input."""
        if self._is_multinomial():
            return self._multinomial_output(X, task, lambda t, S: S, "decision_function")
        return self._margins(X, task)[0]

    def predict(self, X, task=None):
        """Predicted labels, in the layout of ``X`` (see :meth:`MultiTaskRegressor.predict`)."""
        if self._is_multinomial():
            scores, positions = self._task_scores(X, task)
            if positions is None:
                labels = [self._labels_of(t, S) for t, S in enumerate(scores)]
                if is_input_list(X):
                    return labels
                return labels[0] if self.fit_layout_ == "single" else np.column_stack(
                    labels if _same_kind(labels) else [np.asarray(v, dtype=object) for v in labels])
            out = np.empty(len(positions), dtype=np.result_type(*self.classes_) if _same_kind(self.classes_)
                           else object)
            for t, (rows, S) in enumerate(scores):
                if S is not None:
                    out[rows] = self._labels_of(t, S)
            return out
        z, positions = self._margins(X, task)
        if isinstance(z, list):
            return [self._classes_of(t)[(z_t > 0).astype(np.intp)] for t, z_t in enumerate(z)]
        if positions is not None:
            labels = np.empty(len(z), dtype=np.result_type(*self.classes_) if _same_kind(self.classes_) else object)
            for t, rows in group_rows(positions):
                labels[rows] = self.classes_[t][(z[rows] > 0).astype(np.intp)]
            return labels
        if z.ndim == 1:
            return self._classes_of(0)[(z > 0).astype(np.intp)]
        return np.column_stack([self._classes_of(t)[(z[:, t] > 0).astype(np.intp)] for t in range(z.shape[1])])

    @available_if(_has_proba)
    def predict_proba(self, X, task=None):
        """Probabilities of the classes of each task.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), or list of them
            Columns: ``classes_`` order (for two classes, the second is the positive class);
            each row sums to 1. One array for stacked input and single-task fits, a list (one per
            task) otherwise.
        """
        if self._is_multinomial():
            return self._multinomial_output(X, task, lambda t, S: proba_from_scores(S), "predict_proba")
        z, _ = self._margins(X, task)
        if isinstance(z, list):
            return [_two_columns(z_t) for z_t in z]
        if z.ndim == 1:
            return _two_columns(z)
        return [_two_columns(z[:, t]) for t in range(z.shape[1])]

    @available_if(_has_proba)
    def predict_log_proba(self, X, task=None):
        """Logarithms of :meth:`predict_proba` (computed without underflow)."""
        if self._is_multinomial():
            return self._multinomial_output(X, task, lambda t, S: log_proba_from_scores(S), "predict_log_proba")
        z, _ = self._margins(X, task)

        def log_two(z_t):
            return log_proba_from_scores(np.reshape(z_t, (-1, 1)))

        if isinstance(z, list):
            return [log_two(z_t) for z_t in z]
        return log_two(z) if z.ndim == 1 else [log_two(z[:, t]) for t in range(z.shape[1])]

    def score(self, X, y=None, task=None, sample_weight=None):
        """Mean accuracy over every prediction (all rows of all tasks), weighted by ``sample_weight``.

        Parameters
        ----------
        X, y, task :
            As for :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), or list of per-task arrays, default=None
            Weight of each row (for one X shared by all tasks, each row's weight counts for
            every task).
        """
        return accuracy(self.predict, X, y, task, sample_weight)


def _two_columns(z: np.ndarray) -> np.ndarray:
    """P(first class), P(second class) at margins z (:func:`mtlx._probabilities.proba_from_scores`)."""
    return proba_from_scores(np.reshape(z, (-1, 1)))


def _column_widths(per_task_classes) -> list:
    """Columns of W per task: one for a binary task, K for a task of K classes."""
    return [1 if len(c) == 2 else len(c) for c in per_task_classes]


def _one_column_per_target(pairs, weights):
    """Per-task (X_t, targets) pairs with 2-D targets (a multinomial task's one-hot columns) split
    into one pair per column, X_t repeated (and the weights with it)."""
    out_pairs, out_weights = [], None if weights is None else []
    for t, (X_t, targets) in enumerate(pairs):
        columns = [targets] if np.ndim(targets) == 1 else list(np.asarray(targets).T)
        out_pairs.extend((X_t, column) for column in columns)
        if weights is not None:
            out_weights.extend([weights[t]] * len(columns))
    return out_pairs, out_weights


def _same_kind(class_lists) -> bool:
    try:
        np.result_type(*class_lists)
    except TypeError:
        return False
    return True
