"""``fit_shared_trunk``: train a shared-trunk network on a TaskData (the low-level API)."""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._config import resolve_n_threads
from .._progress import is_root
from .._reduction import LocalReduction
from .._validate import MAX_THREADS, as_real_array, check_comm, check_int, check_real
from ..data import TaskData
from ..losses import Loss, Multinomial, get_loss
from ..objective import overflow_message
from ..results import ConvergenceWarning
from .adam import AdamState, minimize_adam
from .checkpoint import TrunkCheckpoint
from .lbfgs import LbfgsState, minimize_lbfgs
from .network import ACTIVATIONS, TrunkNetwork
from .objective import Rows, TrunkObjective

__all__ = ["SharedTrunkResult", "fit_shared_trunk", "SOLVERS", "WEIGHTINGS"]

logger = logging.getLogger("mtlx")

SOLVERS = ("lbfgs", "adam")
WEIGHTINGS = ("equal", "uncertainty")


@dataclass
class SharedTrunkResult:
    """A trained shared-trunk network (every rank's tasks, on every rank).

    Attributes
    ----------
    network : TrunkNetwork
        The architecture, with one head per task in global order.
    params : ndarray (float64)
        The flat parameter vector (layout: :mod:`mtlx.trunk.network`).
    task_ids : ndarray
        Task ids in global order (the order of the heads).
    losses : list of Loss
        Each task's head loss (:class:`mtlx.losses.Multinomial` for a softmax head).
    log_vars : ndarray or None
        The learned log-variances s_t of ``task_weighting="uncertainty"``.
    history : dict
        ``"objective"``: F after each iteration (L-BFGS; index 0 at the start) or the mean batch F
        of each epoch (Adam); ``"task_loss"``: each task's mean loss alongside (n_points x T);
        ``"validation"``: the validation F per epoch (Adam with early stopping).
    n_iter : int
        L-BFGS iterations or Adam epochs.
    converged : bool
    message : str
    solver : str
    time : float
    """

    network: TrunkNetwork
    params: np.ndarray
    task_ids: np.ndarray
    losses: list
    log_vars: np.ndarray | None
    history: dict = field(default_factory=dict)
    n_iter: int = 0
    converged: bool = False
    message: str = ""
    solver: str = "lbfgs"
    time: float = 0.0

    @property
    def trunk(self) -> list:
        """``[(W_l, b_l), ...]``: the shared layers (W_l of shape (n_{l-1}, n_l))."""
        return self.network.trunk_layers(self.params)

    @property
    def task_layers(self) -> list:
        """Per task, its own layers ``[(V_m, c_m), ...]``."""
        return [self.network.task_layers(self.params, t)[0] for t in range(self.network.n_tasks)]

    @property
    def heads(self) -> list:
        """Per task, its head ``(A_t, a_t)`` (A_t of shape (width, K_t))."""
        return [self.network.task_layers(self.params, t)[1] for t in range(self.network.n_tasks)]

    def decision(self, X: np.ndarray, n_threads: int = 1) -> list:
        """Each task's head outputs on the rows of X: a list of (n, K_t) arrays."""
        X, n_threads = self._checked(X, n_threads)
        out = self.network.predict(X, self.params, n_threads=n_threads)
        edges = np.concatenate([[0], np.cumsum(self.network.out_dims)])
        return [out[:, lo:hi] for lo, hi in zip(edges[:-1], edges[1:])]

    def representation(self, X: np.ndarray, n_threads: int = 1) -> np.ndarray:
        """The shared representation (n x hidden[-1])."""
        X, n_threads = self._checked(X, n_threads)
        return self.network.representation(X, self.params, n_threads=n_threads)

    def _checked(self, X, n_threads):
        """X as a float32/float64 (n, n_features) array (integers and booleans as float64), and
        n_threads a positive int."""
        X = as_real_array(X, "X", ndim=2)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        if X.shape[1] != self.network.n_features:
            raise ValueError(f"X has {X.shape[1]} features, the network was fitted on {self.network.n_features}")
        return X, check_int(n_threads, "n_threads", 1, MAX_THREADS)


def check_architecture(hidden, task_hidden, activation):
    """``(hidden, task_hidden)`` as tuples of positive ints; the activation known."""
    def widths(value, name, allow_empty):
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = (value,)
        if isinstance(value, str):  # (a string is iterable: "64" read as widths "6" and "4")
            raise TypeError(f"{name} must be a tuple of layer widths, got the string {value!r}")
        try:
            out = tuple(value)
        except TypeError:
            raise TypeError(f"{name} must be a tuple of layer widths, got {value!r}") from None
        if not out and not allow_empty:
            raise ValueError(f"{name} must hold at least one layer width (the shared representation), got ()")
        for w in out:
            if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1:
                raise ValueError(f"{name} widths must be positive integers, got {out!r}")
        return tuple(int(w) for w in out)

    hidden = widths(hidden, "hidden", False)
    task_hidden = widths(task_hidden, "task_hidden", True)
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return hidden, task_hidden


def fit_shared_trunk(data: TaskData, loss="squared", hidden=(64,), task_hidden=(), activation="relu", l2=1e-4,
                     solver="lbfgs", task_weighting="equal", max_iter=200, tol=1e-4, batch_size="auto",
                     learning_rate=1e-3, random_state=0, early_stopping=False, validation_fraction=0.1,
                     n_iter_no_change=10, params0=None, verbose=0, n_threads=None, comm=None, checkpoint=None,
                     checkpoint_every=10, resume=False) -> SharedTrunkResult:
    """Train a shared-trunk network (hard parameter sharing) on the tasks of ``data``.

    Minimizes ``sum_t c_t L_t + (l2 / 2) ||weights||^2`` (:mod:`mtlx.trunk.objective`): L_t the
    mean loss of task t's head over its (labelled, weighted) rows.

    Parameters
    ----------
    data : TaskData
        Any layout; dense X. Under MPI, this rank's tasks (stacked rows or its columns of a
        shared X; task ids global).
    loss : str, Loss, list of them (one per task, in global task order), or dict by task id
        Head loss: ``"squared"``, ``"huber"``, ``"poisson"`` (regression), ``"logistic"``,
        ``"squared_hinge"`` (labels -1/+1), ``"multinomial"`` (targets are class indices 0..K-1;
        the head has K = max + 1 outputs and a softmax).
    hidden : tuple of int
        Widths of the shared layers.
    task_hidden : tuple of int
        Widths of each task's own layers between the trunk and its head.
    activation : {"relu", "tanh", "identity"}
    l2 : float
        Ridge strength on every weight matrix.
    solver : {"lbfgs", "adam"}
        Full-batch L-BFGS (:mod:`mtlx.trunk.lbfgs`) or minibatch Adam (:mod:`mtlx.trunk.adam`).
    task_weighting : {"equal", "uncertainty"}
    max_iter : int
        L-BFGS iterations or Adam epochs.
    tol : float
        L-BFGS: max |gradient|; Adam: the improvement an epoch must make. 0 runs max_iter in full.
    batch_size : int or "auto"
        Adam's rows per batch (``"auto"``: min(200, rows)); clipped, with a warning, to the rows.
    learning_rate : float
        Adam's step size.
    random_state : int, numpy Generator/RandomState, or None
        Seeds the initial weights, the batches and the validation split.
    early_stopping : bool
        Adam only: hold out ``validation_fraction`` of each task's rows, stop when their loss
        stops improving, keep the best weights (ignored by L-BFGS, as in scikit-learn's MLP).
    validation_fraction : float
    n_iter_no_change : int
    params0 : ndarray, optional
        Starting parameters (this rank's layout: trunk, then its tasks' blocks, then the
        log-variances with uncertainty weighting): a warm start.
    verbose : int
        Print F per iteration (rank 0).
    n_threads : int, optional
    comm : mpi4py communicator, optional
    checkpoint : path, optional
        Folder for a checkpoint (:mod:`mtlx.trunk.checkpoint`): the optimizer's whole state, its
        per-task parts keyed by task id, written atomically by rank 0 every ``checkpoint_every``
        iterations (epochs) and at the end.
    checkpoint_every : int
    resume : bool
        Continue from the checkpoint in ``checkpoint`` when there is one, on any number of ranks:
        the run then ends as an uninterrupted one would (the same bits for tasks with rows of
        their own under L-BFGS). A checkpoint of another fit is refused with a ``ValueError``.

    Returns
    -------
    SharedTrunkResult
    """
    start = time.perf_counter()
    check_comm(comm)
    if not isinstance(data, TaskData):  # (before anything reads its task ids)
        raise TypeError(f"data must be a mtlx.TaskData (TaskData.from_shared, from_stacked, from_tasks), got "
                        f"{type(data).__name__}")
    if comm is None:
        reduction = LocalReduction(data.task_ids)
        checked = _check(data, reduction, loss, hidden, task_hidden, activation, l2, solver, task_weighting,
                         max_iter, tol, batch_size, learning_rate, early_stopping, validation_fraction,
                         n_iter_no_change, n_threads, checkpoint, checkpoint_every, resume)
    else:
        from ..distributed import MPIReduction, agreed_errors

        reduction = MPIReduction(comm, data)
        data = reduction.conform(data)
        with agreed_errors(comm):
            checked = _check(data, reduction, loss, hidden, task_hidden, activation, l2, solver, task_weighting,
                             max_iter, tol, batch_size, learning_rate, early_stopping, validation_fraction,
                             n_iter_no_change, n_threads, checkpoint, checkpoint_every, resume)
        # One network over all ranks: differing options trained differing trunks without a word
        # (relu on one rank, tanh on another) or broke an Allreduce of differing sizes inside MPI.
        options = {k: checked[k] for k in ("hidden", "task_hidden", "activation", "l2", "solver", "uncertainty",
                                           "max_iter", "tol", "batch_size", "learning_rate", "early_stopping",
                                           "validation_fraction", "n_iter_no_change", "checkpoint_every", "resume")}
        options.update(loss="per-rank dict" if isinstance(loss, dict) else loss,
                       checkpoint=checked["checkpoint"] is not None, params0=params0 is None,
                       random_state=random_state if isinstance(random_state, (int, np.integer)) else "drawn")
        reduction.agree(options, "fit_shared_trunk")
    return _run(data, reduction, comm, start, checked, random_state, params0, verbose)


def _check(data, reduction, loss, hidden, task_hidden, activation, l2, solver, task_weighting, max_iter, tol,
           batch_size, learning_rate, early_stopping, validation_fraction, n_iter_no_change, n_threads,
           checkpoint=None, checkpoint_every=10, resume=False) -> dict:
    if not isinstance(data, TaskData):
        raise TypeError(f"data must be a mtlx.TaskData, got {type(data).__name__}")
    if data.sparse:
        raise TypeError("shared-trunk models take a dense X (the layers are dense products); pass X.toarray()")
    hidden, task_hidden = check_architecture(hidden, task_hidden, activation)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if task_weighting not in WEIGHTINGS:
        raise ValueError(f"task_weighting must be one of {WEIGHTINGS}, got {task_weighting!r}")
    l2 = check_real(l2, "l2")
    tol = check_real(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", 1)
    learning_rate = check_real(learning_rate, "learning_rate", 0.0, low_open=True)
    n_iter_no_change = check_int(n_iter_no_change, "n_iter_no_change", 1)
    if not (isinstance(batch_size, str) and batch_size == "auto"):
        batch_size = check_int(batch_size, "batch_size", 1)
    validation_fraction = check_real(validation_fraction, "validation_fraction", 0.0, low_open=True)
    if validation_fraction >= 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
    if n_threads is not None:
        check_int(n_threads, "n_threads", 1, MAX_THREADS)
    if data.n_features == 0:
        raise ValueError("X has 0 features; a shared trunk needs at least one input feature")
    if checkpoint is None and resume:
        raise ValueError("resume=True needs a checkpoint folder (checkpoint=DIR)")
    checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 1)
    losses, out_dims = _heads(data, reduction, loss)
    return dict(checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=bool(resume), hidden=hidden,
                task_hidden=task_hidden, activation=activation, l2=l2, solver=solver,
                uncertainty=task_weighting == "uncertainty", max_iter=max_iter, tol=tol, batch_size=batch_size,
                learning_rate=learning_rate, early_stopping=bool(early_stopping),
                validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change, losses=losses,
                out_dims=out_dims, n_threads=n_threads)


def _heads(data, reduction, loss):
    """Each local task's loss (None for a softmax head) and head width, its targets checked."""
    T = len(reduction.global_ids)
    ids = np.asarray(data.task_ids).tolist()
    if isinstance(loss, (str, Loss)):
        local = [loss] * len(ids)
    elif isinstance(loss, dict):
        absent = [i for i in ids if i not in loss]
        if absent:
            raise ValueError(f"loss has no entry for task {absent[0]!r}")
        local = [loss[i] for i in ids]
    else:
        try:
            names = list(loss)
        except TypeError:
            raise TypeError(f"loss must be a loss name, a mtlx.losses.Loss, a list of one per task or a dict by task "
                            f"id, got {loss!r}") from None
        if len(names) != T:
            raise ValueError(f"loss has {len(names)} entries but there are {T} tasks (one loss per task, in global "
                             "task order)")
        local = [names[p] for p in reduction.local_index]
    losses, out_dims = [], []
    for t in range(len(ids)):
        where = f"task {_plain(ids[t])!r}"
        obj = get_loss(local[t], f"loss of {where}")
        y = np.asarray(data.counted_targets(t), dtype=np.float64)
        if isinstance(obj, Multinomial):
            if y.size and not (np.all(y >= 0) and np.all(y == np.floor(y))):
                raise ValueError(f"{where}: the multinomial loss needs class indices 0, 1, ..., K-1 as targets")
            K = int(y.max()) + 1 if y.size else 2
            if K < 2:
                raise ValueError(f"{where}: the multinomial loss needs at least two classes, the targets hold one")
            # The targets are read as class indices: a label of 1e9 asked for a head of 1e9 outputs
            # (a 37 GiB allocation), labels {5, 7} silently for 8 classes.
            if K > y.size:
                raise ValueError(f"{where}: the multinomial loss reads the targets as class indices 0..K-1, and the "
                                 f"largest, {K - 1}, asks for {K} classes from {y.size} labelled rows: encode the "
                                 "labels as 0..K-1 (np.unique(y, return_inverse=True)[1])")
            absent = np.setdiff1d(np.arange(K), y)
            if absent.size:
                warnings.warn(f"{where}: classes {absent.tolist()[:10]}{' ...' if absent.size > 10 else ''} of the "
                              f"multinomial head's 0..{K - 1} never occur in the targets (read as class indices)",
                              UserWarning, stacklevel=4)
            losses.append(None)
            out_dims.append(K)
        else:
            obj.check_targets(y, where)
            losses.append(obj)
            out_dims.append(1)
    return losses, out_dims


def _seed(random_state, reduction) -> int:
    if random_state is None:
        draw = int(np.random.SeedSequence().entropy % (2**31))
        return int(reduction.max(float(draw)))
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        draw = int(random_state.integers(2**31) if isinstance(random_state, np.random.Generator)
                   else random_state.randint(2**31))
        # Under MPI an unseeded generator draws differently on every rank: one trunk, one seed.
        return int(reduction.max(float(draw)))
    return check_int(random_state, "random_state", 0)


def _run(data, reduction, comm, start, c, random_state, params0, verbose) -> SharedTrunkResult:
    net = TrunkNetwork(data.n_features, c["hidden"], c["task_hidden"], c["activation"], c["out_dims"])
    rows = Rows.of(data)
    n_rows = rows.X.shape[0]
    layer_work = sum(a * b for a, b in zip(net.trunk_sizes[:-1], net.trunk_sizes[1:]))
    seed = _seed(random_state, reduction)
    positions = np.asarray(reduction.local_index, dtype=np.int64)
    theta0 = np.zeros(net.n_params + (net.n_tasks if c["uncertainty"] else 0))
    if params0 is None:
        theta0[: net.n_params] = net.initial_params(seed, positions, np.float64)
    else:
        with reduction.agreed_errors():  # (a rank's own layout: wrong on one rank, it must stop all)
            p0 = np.asarray(params0, dtype=np.float64).reshape(-1)
            if p0.shape != theta0.shape:
                raise ValueError(f"params0 has {p0.size} entries, this rank's network has {theta0.size}")
        theta0[:] = p0
    history = {}
    solver = c["solver"]
    checkpoint, checkpoint_every, resume = None, c["checkpoint_every"], c["resume"]
    if c["checkpoint"] is not None:
        settings = {k: c[k] for k in ("hidden", "task_hidden", "activation", "l2", "solver", "uncertainty",
                                      "batch_size", "learning_rate", "early_stopping", "validation_fraction")}
        settings.update(seed=seed, dtype=data.dtype.str)
        checkpoint = TrunkCheckpoint(c["checkpoint"], net, c["uncertainty"], reduction, data, settings,
                                     _loss_table(c["losses"]), seed_drawn=random_state is None)
    if solver == "lbfgs":
        n_threads = resolve_n_threads(c["n_threads"], n_rows * layer_work / 4)
        objective = TrunkObjective(net, c["losses"], c["l2"], c["uncertainty"], reduction, n_threads)
        full = rows.normalized()
        last = {}

        def fun(theta):
            F, g, task_loss = objective(theta, full)
            last["task_loss"] = task_loss
            return F, g

        state = None if checkpoint is None or not resume else checkpoint.load("lbfgs")
        if state is None:
            F0, g0 = fun(theta0)
            if not np.isfinite(F0):
                raise ValueError(f"the objective is not finite at the starting weights: {overflow_message(data)}")
            state = LbfgsState(theta0, F0, g0)
            state.curve, state.task_curve = [F0], [last["task_loss"]]

        def on_iteration(st):
            st.curve.append(st.F)
            st.task_curve.append(last["task_loss"])
            if verbose and is_root(comm):
                print(f"Iteration {st.k}, loss = {st.F:.8f}")
            if checkpoint is not None and st.k % checkpoint_every == 0:
                checkpoint.save(st)
            return False

        theta, F, n_iter, converged, message = minimize_lbfgs(fun, theta0, objective.space, c["max_iter"], c["tol"],
                                                              on_iteration=on_iteration, state=state)
        if checkpoint is not None:
            checkpoint.save(state)
        history["objective"] = np.asarray(state.curve)
        history["task_loss"] = np.asarray(state.task_curve)
        failure = None
    else:
        shared = rows.shared
        total_rows = n_rows if shared else int(round(reduction.allreduce(np.array([float(n_rows), 0.0]))[0]))
        batch_size = min(200, total_rows) if c["batch_size"] == "auto" else c["batch_size"]
        if batch_size > total_rows:
            warnings.warn(f"batch_size={batch_size} is larger than the {total_rows} rows of the data; clipping it "
                          f"to {total_rows}", UserWarning, stacklevel=3)
            batch_size = total_rows
        state = None if checkpoint is None or not resume else checkpoint.load("adam")
        if checkpoint is not None:
            seed = checkpoint.seed  # (a drawn seed is the checkpoint's: the same split and batches)
        validation = None
        train = rows
        if c["early_stopping"]:
            train, validation = _validation_split(rows, c["validation_fraction"], seed, positions)
            held_out = validation.X.shape[0] if shared else reduction.allreduce(
                np.array([float(validation.X.shape[0]), 0.0]))[0]
            if held_out == 0:
                raise ValueError("early_stopping=True needs a validation set, and no task has two rows to hold one "
                                 "out of: set early_stopping=False")
            validation = validation.normalized()
        n_batches = max(1, math.ceil(total_rows * (1 - (c["validation_fraction"] if c["early_stopping"] else 0.0))
                                     / batch_size))
        n_threads = resolve_n_threads(c["n_threads"], batch_size * layer_work / 4)
        objective = TrunkObjective(net, c["losses"], c["l2"], c["uncertainty"], reduction, n_threads, exact=False)

        def on_epoch(st):
            if verbose and is_root(comm):
                last = st.curve[-1]
                print(f"Iteration {st.epoch}, loss = {last[0] if isinstance(last, tuple) else last:.8f}")
            if checkpoint is not None and st.epoch % checkpoint_every == 0:
                checkpoint.save(st)
            return False

        state = AdamState(theta0.copy()) if state is None else state
        theta, n_iter, converged, message, curve, task_curve, failure = minimize_adam(
            objective, theta0, train, n_batches=n_batches, seed=seed, positions=positions, max_iter=c["max_iter"],
            tol=c["tol"], learning_rate=c["learning_rate"], validation=validation,
            n_iter_no_change=c["n_iter_no_change"], on_epoch=on_epoch, state=state)
        if failure is not None and state.step == 0:  # (the same on every rank: the flag is reduced)
            raise ValueError(f"the objective is not finite at the starting weights: {overflow_message(data)}")
        if checkpoint is not None:
            checkpoint.save(state)
        if validation is not None:
            history["objective"] = np.array([a for a, _ in curve])
            history["validation"] = np.array([b for _, b in curve])
        else:
            history["objective"] = np.asarray(curve, dtype=np.float64)
        # (A failure in the first epoch leaves no epoch behind: an empty curve of T columns.)
        history["task_loss"] = np.asarray(task_curve, dtype=np.float64).reshape(len(curve), objective.T_global)
        if failure is not None:
            message = failure
    if (failure is not None or not converged) and is_root(comm):
        warnings.warn(f"fit_shared_trunk: {message}", ConvergenceWarning, stacklevel=3)
    result = _gather(net, theta, data, reduction, c, n_iter, converged, message, solver, history)
    if c["uncertainty"] and is_root(comm):
        _warn_of_fitted_tasks(result)
    result.time = time.perf_counter() - start
    logger.info("fit_shared_trunk: %d tasks, %s by %s after %d iterations (%.3f s)", len(result.task_ids), message,
                solver, n_iter, result.time)
    return result


def _warn_of_fitted_tasks(result) -> None:
    """Warns of each task whose loss fell below a millionth of its first: fitted (almost) exactly,
    it has no noise for the uncertainty weighting to measure, and (1/T) sum_t (exp(-s_t) L_t + s_t)
    then has no minimum: s_t falls without end and the task's weight exp(-s_t) grows, at the other
    tasks' expense (a task of 2 rows beside one of 200 took the large task's R^2 from 0.99 to 0.81,
    and L-BFGS still reported convergence)."""
    curve = np.asarray(result.history.get("task_loss", ()), dtype=np.float64)
    if curve.ndim != 2 or curve.shape[0] < 2:
        return
    first, last = curve[0], curve[-1]
    for t in np.flatnonzero((first > 0) & (last <= 1e-6 * first)):
        warnings.warn(f"task {_plain(result.task_ids[t])}: its loss fell to {last[t]:.3g} (from {first[t]:.3g}), "
                      f"fitted almost exactly, and task_weighting='uncertainty' has no minimum then: its "
                      f"log-variance ({result.log_vars[t]:.3g}) keeps falling and its weight exp(-s) growing, at "
                      "the other tasks' expense. Use task_weighting='equal', or give the task more rows.",
                      UserWarning, stacklevel=4)


def _plain(task_id):
    """A task id as the user wrote it (5, not np.int64(5))."""
    return task_id.item() if isinstance(task_id, np.generic) else task_id


def _validation_split(rows, fraction, seed, positions):
    """(train, validation) rows: ``fraction`` of each task's rows (of the shared rows) held out,
    rounded, and at least one of every task with two rows or more (rounded down to none, a task of
    up to 5 rows at the default 0.1 had no say in the validation loss)."""
    if rows.shared:
        n = rows.X.shape[0]
        perm = np.random.default_rng([seed, 4]).permutation(n)
        k = min(max(1, int(round(fraction * n))), n - 1)
        return rows.take(np.sort(perm[k:])), rows.take(np.sort(perm[:k]))
    train, val = [], []
    for lo, hi, position in zip(rows.row_begin, rows.row_end, positions):
        m = int(hi - lo)
        perm = np.random.default_rng([seed, 5, int(position)]).permutation(m)
        k = min(max(1, int(round(fraction * m))), m - 1)
        train.append(np.sort(perm[k:]))
        val.append(np.sort(perm[:k]))
    return rows.take(train), rows.take(val)


def _gather(net, theta, data, reduction, c, n_iter, converged, message, solver, history) -> SharedTrunkResult:
    """Every rank's heads, in global task order, on every rank."""
    n_extra = int(c["uncertainty"])
    width = int(reduction.max(float(np.max(np.diff(net.task_starts), initial=0)))) + n_extra
    every = reduction.allgather_tasks(np.column_stack([net.out_dims, net.task_rows(theta, n_extra, width)]))
    full = net.with_heads(every[:, 0].astype(np.int64))
    theta_all = full.theta_from_rows(theta[: net.n_trunk], every[:, 1:], n_extra)
    losses = [_loss_of(code, p) for code, p in reduction.allgather_tasks(_loss_table(c["losses"]))]
    return SharedTrunkResult(network=full, params=theta_all[: full.n_params], task_ids=np.asarray(reduction.global_ids),
                             losses=losses, log_vars=theta_all[full.n_params:] if n_extra else None, history=history,
                             n_iter=int(n_iter), converged=bool(converged), message=message, solver=solver)


def _loss_table(losses) -> np.ndarray:
    """(T, 2): each task's loss code (-1 for a softmax head) and parameter, as ranks exchange them."""
    return np.array([[-1.0, 0.0] if loss is None else [float(loss.code), loss.param] for loss in losses],
                    dtype=np.float64).reshape(-1, 2)


def _loss_of(code: float, param: float) -> Loss:
    from ..losses import LOSSES, Huber

    if code < 0:
        return LOSSES["multinomial"]
    for loss in LOSSES.values():
        if not isinstance(loss, Multinomial) and int(loss.code) == int(code):
            return Huber(param) if isinstance(loss, Huber) else loss
    raise AssertionError(f"unknown loss code {code}")
