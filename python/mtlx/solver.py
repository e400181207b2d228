"""``mtlx.solve``: the entry point of every fit; checks the arguments, builds the problem, runs an engine.

The engines are written against :class:`mtlx.problem.Problem` (FISTA, :mod:`mtlx.fista`) or
their own statistics (working sets and coordinate descent, :mod:`mtlx.working_set`); this
module only chooses and drives them.
"""

from __future__ import annotations

import contextlib
import time
import warnings

import numpy as np

from . import gpu
from ._config import blas_threads, resolve_n_threads
from ._reduction import LocalReduction
from ._validate import check_comm, check_int, check_nonnegative, check_real
from ._weights import UnweightedEquivalent, applies
from .data import TaskData
from .fista import FistaState, fista
from .gram import GramSquaredLoss, smooth_loss, work_per_call
from .losses import Loss, resolve_losses
from .objective import as_parameters, numerical_failure_message
from .penalties import get_penalty
from .problem import Problem
from .results import SolveResult, SolverState, convergence_warning

__all__ = ["SOLVERS", "FistaState", "SolveResult", "SolverState", "check_options", "choose_solver", "solve"]


def __getattr__(name):
    if name == "ConvergenceWarning":
        return convergence_warning()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The engines: FISTA for everything; working sets + coordinate descent for L1/L21 least squares;
#: quasi-Newton on the factors for the trace norm; ADMM for least squares in the Gram form with a
#: prox-only penalty (decompositions, spectral couplings); "auto" picks by the problem.
SOLVERS = ("auto", "fista", "cd", "factored", "admm")
#: The engines a SolveResult's ``solver`` names (a choice of "auto" is one of them).
ENGINES = (*SOLVERS[1:], "fista+factored")

#: Under "auto", FISTA iterations on a trace norm before the factored engine takes over.
TRACE_FISTA_ITERATIONS = 300


def choose_solver(solver, data: TaskData, loss, penalty, alpha: float, *, distributed: bool = False,
                  checkpoint: bool = False, gram="auto", task_weights="mean", fit_intercept: bool = False,
                  l2: float = 0.0) -> str:
    """The engine for a fit: ``solver`` checked against the problem, or chosen by it ("auto").

    "auto", in one process without checkpoints:

    1. working sets + coordinate descent for least squares with L1 or L21 alone at alpha > 0 on
       float64 data (their duality-gap certificate; per-task Gram rows within 1 GiB), except
       per-task inputs that the Gram form serves (a few features against many rows per task, as
       the school data: there coordinate descent's row steps take the largest task's curvature);
    2. ADMM (:mod:`mtlx.admm`) for least squares in the Gram form with a penalty its prox applies
       whole (every norm, their sums and decompositions, the trace norm, clustered MTL), where
       its eigendecompositions are cheap (:func:`mtlx.admm.setup_affordable`), unless the
       solution looks sparse or low-rank for L1, L21 or the trace norm (at most
       :data:`SPARSE_AT_ZERO` of the groups active at W = 0: working sets or the factored
       engine then cost less): it solves
       the quadratic exactly where proximal-gradient steps crawl (the raw school data: the dirty
       model 1e-8 from its optimum in 0.4 s, where FISTA was still 3e-6 away after 30,000
       iterations), certified by a duality gap for norms;
    3. for a trace norm (with smooth terms) on float64 data, "fista+factored": FISTA first, which
       on a well-conditioned problem converges in tens of cheap iterations, handing over to the
       factored quasi-Newton engine after :data:`TRACE_FISTA_ITERATIONS` (float32 data stall
       that engine near 1e-5 of W: they stay with FISTA, or ADMM in 2.);
    4. for smooth losses on every task (logistic, squared hinge, Huber, Poisson, mixed with each
       other and with squared tasks) with L1 or L21 on a dense float64 X (shared, or each task
       its own rows; l2 = 0, alpha > 0), "cd": proximal Newton with working sets
       (:mod:`mtlx.prox_newton`);
    5. FISTA for the rest (those losses on a sparse X, smooth couplings such as a task graph or
       the mean penalty), and always under MPI or with checkpoints.

    Verbosity and callbacks never change the choice.
    """
    from . import admm, factored, working_set
    from .gram import gram_preferred
    from .losses import resolve_losses

    if solver not in SOLVERS:
        raise ValueError(f"The 'solver' parameter must be one of {SOLVERS}. Got {solver!r} instead.")
    if solver == "fista":
        return solver
    # (gram=True asks for the Gram form of the squared loss, which proximal Newton does not use)
    newton = _prox_newton_engine(solver, data, loss, penalty, alpha, distributed or checkpoint or gram is True, l2)
    if newton is not None:
        return newton
    where = "a single process without checkpoints" if (distributed or checkpoint) else None
    where = where or ("at least one feature" if data.n_features == 0 else None)
    where = where or ("data on the host (data on a GPU run FISTA)" if data.device is not None else None)
    # (solve() hands dense row-weighted least squares over as an unweighted problem, mtlx._weights:
    # weighted data here has per-entry weights (missing labels), a sparse X, or another loss.)
    weighted = _weights_reason(data)
    losses = resolve_losses(loss, data.n_tasks) if data.n_tasks and not where else []
    squared = all(x.quadratic for x in losses)
    if (where or (weighted and not squared)) and solver == "auto":
        return "fista"  # (under MPI, ``loss`` lists every rank's tasks: not checked against this rank's)
    vanishing = f"a penalty that is not 0 ({penalty!r} has weight 0: the problem is unpenalized)" \
        if _vanishes(penalty) else None
    why_cd = where or vanishing or (f"the squared loss with penalty L1 or L21 (this fit: {penalty!r})"
                                    if not squared or working_set.unsupported(penalty) else None) or \
        ("alpha > 0 (its duality-gap certificate has no dual feasible point at alpha = 0)" if not alpha > 0 else None)
    dense_only = "a dense X (it reads dense rows; a sparse X runs in working sets or FISTA)" if data.sparse else None
    why_factored = where or weighted or dense_only or vanishing or \
        (f"a trace norm (with smooth terms) (this fit: {penalty!r})" if factored.unsupported(penalty) else None) or \
        ("alpha > 0 (at alpha = 0 there is no trace norm to factor)" if not alpha > 0 else None)
    if solver == "cd":
        if why_cd:
            raise ValueError(f"solver='cd' needs {why_cd}; use solver='fista'")
        return solver
    if solver == "factored":
        if why_factored:
            raise ValueError(f"solver='factored' needs {why_factored}; use solver='fista'")
        return solver
    gram_form = gram is True or (gram == "auto" and data.n_tasks > 0 and gram_preferred(data))
    why_admm = where or weighted or dense_only or (None if squared else "the squared loss for every task") or \
        (None if gram_form else "the squared loss in the Gram form (gram=True, or 'auto' where it pays)") or \
        ("alpha > 0" if not alpha > 0 else None) or admm.unsupported_penalty(penalty)
    if solver == "admm":
        if why_admm:
            raise ValueError(f"solver='admm' needs {why_admm}; use solver='fista'")
        return solver
    cd_fits = not why_cd and data.dtype == np.float64 and working_set.fits(data)
    if cd_fits and not (data.layout == "stacked" and gram_preferred(data)):
        return "cd"
    # The factored engine certifies its result to the data's precision: float32 data stall it near
    # 1e-5 of W where FISTA and ADMM reach 2e-7, so "auto" leaves it float64 data (as cd).
    factored_fits = not why_factored and data.dtype == np.float64
    if not why_admm and admm.setup_affordable(data):
        if (cd_fits or factored_fits) and _sparse_at_zero(data, loss, penalty, alpha, task_weights, fit_intercept):
            return "cd" if cd_fits else "factored"
        return "admm"
    if factored_fits:
        return "fista+factored"
    return "fista"


def _newton_losses(loss, data) -> bool:
    """Whether the tasks' losses are proximal Newton's (:func:`mtlx.prox_newton.takes_losses`:
    logistic, squared hinge, Huber, Poisson, squared, not all squared): the cd engine is then
    proximal Newton, which takes b0."""
    from .losses import resolve_losses
    from .prox_newton import takes_losses

    return data.n_tasks > 0 and takes_losses(resolve_losses(loss, data.n_tasks))


def _loss_names(loss, data) -> str:
    from .losses import resolve_losses

    names = sorted({x.name for x in resolve_losses(loss, data.n_tasks)})
    return f"the {names[0]} loss" if len(names) == 1 else "the losses " + ", ".join(names)


def _prox_newton_engine(solver, data, loss, penalty, alpha, collective: bool, l2: float) -> str | None:
    """For the losses of proximal Newton on every task: "cd" (proximal Newton with working sets,
    :mod:`mtlx.prox_newton`) where it applies, "fista" under "auto" where it does not; None for
    other losses (the rules above)."""
    from . import prox_newton

    if collective or solver not in ("auto", "cd") or not _newton_losses(loss, data):
        return None
    why = ("at least one feature" if data.n_features == 0 else None) or \
        ("data on the host (data on a GPU run FISTA)" if data.device is not None else None) or \
        prox_newton.supports(data, penalty, l2) or ("alpha > 0" if not alpha > 0 else None)
    if solver == "cd" and why:
        raise ValueError(f"solver='cd' with {_loss_names(loss, data)} needs {why}; use solver='fista'")
    return "fista" if why else "cd"


#: "auto" prefers the engines whose cost follows the support or the rank (working sets, the
#: factored trace norm) over ADMM, whose iterations cost the same whatever the solution, when at
#: most this share of the penalty's groups is active at W = 0 (:meth:`Penalty.active_share`). On
#: the school data (bench_auto.py) the share was 0.28 and 0.21 where they were 3.5x and 1.5x faster
#: than ADMM (l1 at 1000, trace at 1e4), and 0.52-1.0 where ADMM was 1.4-90x faster than them.
SPARSE_AT_ZERO = 1.0 / 3.0


def _sparse_at_zero(data, loss, penalty, alpha, task_weights, fit_intercept) -> bool:
    """Whether the solution looks sparse or low-rank: few groups active at W = 0 (one pass over the data)."""
    from .paths import _gradient_at_zero

    _, grad = _gradient_at_zero(data, loss, task_weights, fit_intercept, n_threads=None)
    share = penalty.active_share(np.ascontiguousarray(grad.T), alpha)
    return share is not None and share <= SPARSE_AT_ZERO


def check_options(penalty, alpha, l2, tol, max_iter):
    """The options every entry point shares, checked once: (Penalty, alpha, l2, tol, max_iter)."""
    pen = get_penalty(penalty)
    return (pen, check_nonnegative(alpha, "alpha"), check_nonnegative(l2, "l2"), check_real(tol, "tol"),
            check_int(max_iter, "max_iter", 1))


def _vanishes(penalty) -> bool:
    """Whether the penalty is 0 for every W: weight 0 (L21(0)), or a sum of such terms. (Not a
    superposition: a block of weight 0 there is a free block, another problem.)"""
    from .penalties import Sum, Superpose

    if isinstance(penalty, Superpose):
        return False
    if isinstance(penalty, Sum):
        return all(_vanishes(part) for part in penalty.parts)
    return getattr(penalty, "w", None) == 0.0


def _check_task_weights_not_all_zero(task_weights) -> None:
    """Task weights all zero leave no data term (the fit returned W = 0 after 0 iterations, silently,
    where an all-zero sample_weight is refused). The whole vector is checked here, before it is
    split over ranks: one rank's tasks may all weigh 0."""
    if isinstance(task_weights, str):
        return
    try:
        weights = np.asarray(task_weights, dtype=np.float64)
    except (TypeError, ValueError):
        return  # (resolve_task_weights names what is wrong)
    if weights.size and np.all(weights == 0):
        raise ValueError(f"task_weights are all zero ({weights.size} tasks): the fit would have no data term; give "
                         "at least one task a positive weight")


@contextlib.contextmanager
def _numerical_failures_named(data: TaskData):
    """An engine whose arithmetic fails (LAPACK's SVD or eigendecomposition not converging, a step
    of 1/0 from values at 1e-150, or 1e20 in float32) raises a ValueError naming the data's scale,
    as an overflow of the losses does, not numpy's or Python's bare error. (A context, not a
    decorator: a frame more would move the warnings' stacklevel off the caller.)"""
    try:
        yield
    except (np.linalg.LinAlgError, ZeroDivisionError) as exc:
        raise ValueError(numerical_failure_message(data, exc)) from exc


def solve(data: TaskData, loss="squared", penalty="l21", alpha=0.1, l2=0.0, fit_intercept=False,
          task_weights="mean", tol=1e-6, max_iter=10_000, W0=None, b0=None, callback=None,
          *, solver="auto", n_threads: int | None = None, gram="auto", comm=None, checkpoint=None,
          checkpoint_every: int = 10, resume: bool = False, device=None) -> SolveResult:
    """Fit all tasks jointly by minimizing the regularized multi-task objective.

    Parameters
    ----------
    data : TaskData
        The tasks, in any of the three layouts. Under MPI: this rank's tasks only (possibly
        none, see :meth:`TaskData.empty`), with their global ids as ``task_ids``.
    loss : {"squared", "logistic", "huber", "squared_hinge", "poisson"}, Loss, or sequence of them
        One loss for every task, or one per task (regression beside classification); under
        MPI one per global task, in global task-id order.
    penalty : str or mtlx.penalties.Penalty
        The coupling penalty g: a name (``"l21"``, ``"trace"``, ``"l1"``, ``"mean"``, ``"none"``,
        ``"l21_columns"``, ``"linf1"``, ``"shared"``), a spec string (``"L1(0.5) + L21(1)"``), or a
        penalty object from :mod:`mtlx.penalties`, sums ``g1 + g2`` and decompositions
        ``Superpose(g1, g2)`` (W = U + V) included.
    alpha : float, default 0.1
        Strength of g (>= 0); multiplies the penalty's relative weights.
    l2 : float, default 0
        Ridge term (l2 / 2) ||W||_F^2 (>= 0).
    fit_intercept : bool, default False
        Fit an unpenalized intercept b_t per task.
    task_weights : {"mean", "sum"} or array_like of shape (n_tasks,)
        c_t: ``"mean"`` = 1/m_t, ``"sum"`` = 1 (MALSAR's scale), or given weights >= 0
        (under MPI one per global task, in global task-id order).
    tol : float, default 1e-6
        FISTA stops when, for every parameter block, the proximal-gradient step relative to the
        block (``||x+_B - y_B|| / max(||x+_B||, ||y_B||, ||grad_B f(x0)|| / L)``) and the relative
        change of F (``|dF| / max(|F|, tol |F(x0)|)``: an exact fit, F = 0, is an ordinary optimum)
        fall to ``tol`` or below, and, where the problem has one (a norm penalty on float64 data,
        every loss but the multinomial, also under MPI, :mod:`mtlx.certificate`), the relative
        duality gap too: ``F - F* <= tol F``; where it has none, the decrease of F still to come,
        extrapolated from the last iterations' (as if they shrink geometrically), relative to F.
        The other engines: see ``solver``.
    max_iter : int, default 10000
        Iteration cap (counted from the first iteration, also across a resume); reaching it
        without convergence emits a :class:`mtlx.ConvergenceWarning`.
    W0 : array_like of shape (n_features, n_tasks), optional
        Warm start (default zeros); under MPI the full matrix, columns in global task-id order.
        With a decomposition (Superpose) the first part takes W0, the others start at zero.
    b0 : array_like of shape (n_tasks,), optional
        Warm start of the intercepts (default zeros; needs ``fit_intercept``).
    callback : callable, optional
        ``callback(state)`` with a :class:`SolverState` after every iteration; raising
        ``StopIteration`` stops the solve cleanly (``converged`` is then False). Under MPI it
        sees this rank's columns, and a stop on any rank stops all at the next collective.
    solver : {"auto", "fista", "cd", "factored", "admm"}, default "auto"
        The engine; "auto" chooses by the problem (see :func:`choose_solver`). FISTA (every
        formulation, MPI, checkpoints), working sets + coordinate descent (L1/L21 least squares;
        for the logistic loss on a dense X, proximal Newton on working sets,
        :mod:`mtlx.prox_newton`; ``tol`` is a relative duality gap, ``max_iter`` caps the
        epochs), quasi-Newton on the
        factors of a trace norm (``tol`` is a relative duality gap where the loss gives a dual
        point, ``max_iter`` caps L-BFGS iterations), ADMM (least squares in the Gram form with a
        prox-only penalty; ``tol`` is a relative duality gap for norms, else its residuals, then
        FISTA's test; ``max_iter`` caps both).
    n_threads : int, optional
        Threads of the core and of BLAS (default ``MTLX_NUM_THREADS``, else chosen by the size
        of the problem: one thread per million entries a call reads, up to all cores; small
        problems run on one thread, which is faster on an idle machine and far faster on a busy one).
    gram : {"auto", True, False}, default "auto"
        Squared loss only: evaluate it from per-task Gram matrices ``X_t' X_t`` (one ``X' X``
        for the shared layout) instead of passing over the rows. ``"auto"`` picks it when a
        call is at least twice cheaper that way (``T d`` small against the rows; see
        :func:`mtlx.gram.gram_cost`) and logs the choice on the ``"mtlx"`` logger; True forces
        it, False forbids it. Values and gradients agree with the direct form to rounding.
    comm : mpi4py.MPI.Comm, optional
        Solve over the ranks of ``comm``, each holding the tasks in its ``data``; every rank
        gets the same result. Sums over tasks are combined by ``comm.Allreduce`` (see
        :mod:`mtlx.distributed`). Default: a single process.
    checkpoint : path, optional
        Folder for a checkpoint (every block, the solver state and a fingerprint of the
        problem), written atomically by rank 0 every ``checkpoint_every`` iterations.
    checkpoint_every : int, default 10
    resume : bool, default False
        Continue from the checkpoint in ``checkpoint`` when there is one (on any number of
        ranks); a checkpoint of a different problem is refused with a ``ValueError``.
    device : {None, "cpu", "cuda", "cuda:N"} or int, optional
        Where the data pass runs. ``None``: where the data are (a TaskData built from CuPy or other
        device arrays is on their GPU); ``"cuda"`` (device ``MTLX_DEVICE``, else 0) or ``"cuda:N"``
        moves host data to that GPU once; under MPI, ``"cuda"`` is each rank's own GPU
        (``MTLX_DEVICE``, else its index on the node modulo the node's GPUs). A device solve runs
        FISTA with everything on the GPU (data pass, iterate, vector steps, every penalty's prox):
        per iteration only scalars come back. Under MPI its statistics
        go to MPI in device memory where MPI is CUDA-aware, else through host memory
        (:func:`mtlx.distributed.cuda_aware_mpi`, ``MTLX_CUDA_AWARE_MPI``). With device input, ``W``,
        ``b`` and ``components`` come back as CuPy arrays. Needs a build with the CUDA backend
        (``mtlx.HAS_CUDA``).

    Returns
    -------
    SolveResult

    Notes
    -----
    Minimizes

        F(W, b) = sum_t c_t sum_{i in task t} L_t(y_ti, x_ti . w_t + b_t) + alpha g(W) + (l2/2) ||W||_F^2

    by FISTA (Beck & Teboulle 2009) on the parameter blocks of the penalty (see
    :mod:`mtlx.problem`). The step 1/L comes from a backtracking line search that also tries a
    larger step each iteration, so L follows the local curvature rather than the global
    Lipschitz bound; momentum is reset by the gradient and function schemes of O'Donoghue &
    Candes (2015). Each iteration costs one gradient pass and one value pass over the data
    (one in all for least squares, whose gradient is affine). The iterate is float64 for
    float32 data too (the data stay float32).

    Under MPI, each line-search trial all-reduces one buffer: the scalars and, for penalties
    with statistics (l21, trace, mean, ...), the step-free pieces of those statistics at the
    two points the next extrapolated point can be (see :func:`mtlx.fista.fista`): one
    Allreduce per iteration. Shared blocks and smooth terms that need every task add one
    Allreduce per gradient evaluation.
    """
    start = time.perf_counter()
    comm = check_comm(comm)
    # Under MPI a wrong argument on one rank must fail all ranks, not leave them in a collective.
    with contextlib.nullcontext() if comm is None else _agreed_errors(comm):
        pen, alpha, l2, tol, max_iter = check_options(penalty, alpha, l2, tol, max_iter)
        if _vanishes(pen):
            # alpha w g(W) = 0 for every W: the unpenalized problem, as alpha = 0 states it (with
            # L21(0) ADMM stalled for 2,000 iterations where alpha = 0 converged in 22, and the
            # engines that need a penalty said the penalty was missing).
            alpha = 0.0
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        if not isinstance(fit_intercept, (bool, np.bool_)):
            raise TypeError(f"The 'fit_intercept' parameter must be a bool. Got {fit_intercept!r} instead.")
        if b0 is not None and not fit_intercept:
            raise ValueError("b0 was given but fit_intercept is False")
        if checkpoint is None and resume:
            raise ValueError("resume=True needs a checkpoint folder (checkpoint=DIR)")
        checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 1)
        if gram is not True and gram is not False and not (isinstance(gram, str) and gram == "auto"):
            raise ValueError(f"gram must be 'auto', True or False, got {gram!r}")  # (every engine: it was FISTA's)
        if not isinstance(data, TaskData):
            raise TypeError(f"data must be an mtlx.TaskData, got {type(data).__name__}")
        _check_task_weights_not_all_zero(task_weights)
        data = gpu.place(data, device, comm)
    if comm is None and data.device is None and applies(data) and \
            all(x.quadratic for x in resolve_losses(loss, data.n_tasks)) and not (solver == "fista" and gram is False):
        # Row-weighted least squares: the unweighted problem of the scaled rows, so that every
        # engine (and the Gram form, the certificate) takes it (see mtlx._weights).
        equivalent = UnweightedEquivalent(data, task_weights, bool(fit_intercept))
        res = solve(equivalent.data, loss, pen, alpha, l2, False, equivalent.task_weights, tol, max_iter, W0, None,
                    callback, solver=solver, n_threads=n_threads, gram=gram, checkpoint=checkpoint,
                    checkpoint_every=checkpoint_every, resume=resume)
        res.b = equivalent.intercepts(res.W)
        return res
    if comm is None:
        engine = choose_solver(solver, data, loss, pen, alpha, checkpoint=checkpoint is not None, gram=gram,
                               task_weights=task_weights, fit_intercept=bool(fit_intercept), l2=l2)
        if engine == "cd" and b0 is not None and not _newton_losses(loss, data):
            # Coordinate descent sets the intercepts to their optimum itself: a warm start of them
            # is checked, then not needed (asked for by name too: a path's W and b warm-start any
            # engine).
            as_parameters(data, np.zeros((data.n_features, data.n_tasks)) if W0 is None else W0, b0, "W0", "b0")
            b0 = None
        if engine not in ("fista", "admm"):
            with _numerical_failures_named(data):
                return _other_engine(engine, data, loss, pen, alpha, l2, fit_intercept, task_weights, tol, max_iter,
                                     W0, b0, callback, n_threads, start)
        reduction = LocalReduction(data.task_ids)
    else:
        from .distributed import MPIReduction

        reduction = MPIReduction(comm, data)
        # One problem over all ranks: options that differ gave a converged wrong answer or broke an
        # Allreduce of differing sizes inside MPI.
        reduction.agree({"loss": loss, "penalty": pen, "alpha": alpha, "l2": l2, "fit_intercept": fit_intercept,
                         "task_weights": task_weights, "tol": tol, "max_iter": max_iter, "solver": solver,
                         "gram": gram, "checkpoint": checkpoint is not None, "checkpoint_every": checkpoint_every,
                         "resume": resume}, "mtlx.solve")
        data = reduction.conform(data)
        with reduction.agreed_errors():
            engine = choose_solver(solver, data, loss, pen, alpha, distributed=True)
        if engine != "fista":
            raise AssertionError("unreachable: every other engine needs one process")
    with reduction.agreed_errors():
        n_threads = resolve_n_threads(n_threads, work_per_call(data))
    with blas_threads(n_threads), gpu.activated(data), _numerical_failures_named(data):
        return _solve(data, loss, pen, alpha, l2, fit_intercept, task_weights, tol, max_iter, W0, b0, callback,
                      n_threads, gram, reduction, checkpoint, checkpoint_every, resume, start, engine)


def _weights_reason(data) -> str | None:
    """What an engine without per-row weights needs of weighted data, naming the weights this data
    has: missing labels (per-entry weights of a shared X) or sample weights."""
    if not data.weighted:
        return None
    if data.layout == "shared" and data.row_weight is None:
        return "data without missing labels (NaN in Y makes the weights differ per task)"
    where = " of a sparse X" if data.sparse else ""
    return f"data without sample weights{where} (mtlx.solve rescales the rows of a dense X for least squares)"


def _solve(data, loss, pen, alpha, l2, fit_intercept, task_weights, tol, max_iter, W0, b0, callback, n_threads,
           gram, reduction, checkpoint, checkpoint_every, resume, start, engine="fista") -> SolveResult:
    """:func:`solve` after argument checks, inside the BLAS thread limit."""
    # This rank's checks, agreed before Problem's first collective (a rank failing inside it left
    # the others waiting in that collective).
    with reduction.agreed_errors():
        smooth = smooth_loss(data, _local_part(loss, reduction, "loss"),
                             _local_part(task_weights, reduction, "task_weights"), n_threads, gram)
        if fit_intercept:
            smooth.check_intercepts_bounded()
        W_rows = b_init = None
        if W0 is not None or b0 is not None:
            W_init, b_init = _local_start(data, reduction, W0, b0)
            W_rows, b_init = as_parameters(data, W_init, b_init, "W0", "b0")
            W_rows = W_rows.astype(np.float64)
    problem = Problem(smooth, pen, alpha, l2, bool(fit_intercept), reduction)  # (its checks hold on all or none)
    theta0 = problem.initial_theta(W_rows, b_init)

    state = on_iteration = None
    if checkpoint is not None:
        from ._checkpoint import Checkpoint

        ckpt = Checkpoint(checkpoint, problem)
        state = ckpt.load() if resume else None
        on_iteration = ckpt.every(int(checkpoint_every))
    n_calls0, n_bytes0 = reduction.n_calls, reduction.n_bytes
    if engine == "admm":
        theta, info = _admm_then_fista(problem, theta0, float(tol), int(max_iter), callback)
    else:
        theta, info = fista(problem, theta0, float(tol), int(max_iter), callback, state, on_iteration)
    W_rows, b, parts = problem.user_parameters(theta)
    message = "converged" if info["converged"] else (
        "stopped by callback" if info["stopped_by_callback"] else "stalled" if info["stalled"] else "reached max_iter")
    measures = f"relative change {info['rel_change']:.2e}, optimality {info['optimality']:.2e}" + (
        f", relative duality gap {info['gap']:.2e}" if info.get("gap") is not None else "") + f", tol {tol:.1e}"
    if info["stalled"]:
        warnings.warn(
            f"mtlx.solve stalled after {info['n_iter']} iterations without progress ({measures}): tol is below what "
            f"the {data.dtype} data and the problem's conditioning resolve; the result is as accurate as they allow",
            convergence_warning(), stacklevel=3)
    elif not info["converged"] and not info["stopped_by_callback"]:
        warnings.warn(f"mtlx.solve did not converge in {max_iter} iterations ({measures}); raise max_iter or tol",
                      convergence_warning(), stacklevel=3)
    n_calls, n_bytes = reduction.n_calls - n_calls0, reduction.n_bytes - n_bytes0
    dtype = data.dtype
    if reduction.distributed:
        W = reduction.allgather_tasks(np.ascontiguousarray(W_rows)).T
        b = reduction.allgather_tasks(b) if b is not None else None
        parts = [reduction.allgather_tasks(np.ascontiguousarray(p)).T for p in parts]
    else:
        W = W_rows.T
        parts = [p.T for p in parts]
    W = W.astype(dtype, copy=False)
    res = SolveResult(
        W=W, b=(b.astype(dtype) if b is not None else np.zeros(W.shape[1], dtype=dtype)),
        objective=info["objective"], history=info["history"], n_iter=info["n_iter"],
        converged=info["converged"], optimality=info["optimality"], rel_change=info["rel_change"],
        n_evals=info["n_evals"], step=info["step"], time=time.perf_counter() - start, message=message,
        task_ids=np.asarray(reduction.global_ids), n_allreduce=n_calls, allreduce_bytes=n_bytes,
        gram=isinstance(smooth, GramSquaredLoss), solver=engine,
        components=tuple(p.astype(dtype, copy=False) for p in parts) if len(parts) > 1 else (W,))
    if data.from_device:  # device input, device output (one copy of the T x d result)
        res.W, res.b = gpu.wrap_result(data, res.W), gpu.wrap_result(data, res.b)
        res.components = tuple(gpu.wrap_result(data, p) for p in res.components)
    return res


def _admm_then_fista(problem: Problem, theta0: np.ndarray, tol: float, max_iter: int, callback):
    """ADMM (:mod:`mtlx.admm`), then FISTA from its point: the stopping rule every engine on a
    Problem answers to (from an accurate point, an iteration or two), and the finish where ADMM's
    own test was not met within ``max_iter``. The iterations of both count against ``max_iter``."""
    from .admm import admm, unsupported

    why = unsupported(problem)
    if why is not None:
        raise AssertionError(f"unreachable: solver='admm' was chosen for a problem that needs {why}")
    theta, first = admm(problem, theta0, tol, max_iter, callback)
    if first["stopped_by_callback"] or (first["converged"] and first["gap"] is not None):
        return theta, first  # stopped, or certified by its duality gap
    theta, info = fista(problem, theta, tol, max(max_iter - first["n_iter"], 0), callback)
    if info["n_iter"] == 0:  # (no iterations left: ADMM's measures describe the point, FISTA's are inf)
        info.update({key: first[key] for key in ("rel_change", "optimality", "gap")})
    info["history"] = np.concatenate([first["history"], info["history"][1:]])
    info["n_iter"] += first["n_iter"]
    info["n_evals"] += first["n_evals"]
    return theta, info


def _other_engine(engine, data, loss, pen, alpha, l2, fit_intercept, task_weights, tol, max_iter, W0, b0, callback,
                  n_threads, start) -> SolveResult:
    """Working sets or the factored engine, in one process, inside the BLAS thread limit."""
    n_threads = resolve_n_threads(n_threads, work_per_call(data))
    if engine == "fista+factored":
        first = min(max_iter, TRACE_FISTA_ITERATIONS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", convergence_warning())
            res = solve(data, loss, pen, alpha, l2, fit_intercept, task_weights, tol, first, W0, b0, callback,
                        solver="fista", n_threads=n_threads)
        if res.converged or res.message == "stopped by callback" or first == max_iter:
            if not res.converged and res.message != "stopped by callback":
                warnings.warn(f"mtlx.solve did not converge in {max_iter} iterations", convergence_warning(),
                              stacklevel=4)
            return res
        # From the start, not from FISTA's iterate: the factored engine grows its rank from the
        # top singular pairs, and a full-rank warm start made its iterations dearer (school, trace
        # 1000: 2,400 iterations from FISTA's point against 2,200 from nothing).
        rest = _other_engine("factored", data, loss, pen, alpha, l2, fit_intercept, task_weights, tol,
                             max_iter - res.n_iter, W0, b0, callback, n_threads, start)
        rest.n_iter += res.n_iter
        rest.n_evals += res.n_evals
        rest.solver = "fista+factored"
        return rest
    with blas_threads(n_threads):
        if engine == "cd" and _newton_losses(loss, data):
            from .prox_newton import solve_prox_newton

            return solve_prox_newton(data, pen, alpha, fit_intercept, task_weights, tol, max_iter, W0, b0, callback,
                                     start, loss)
        if engine == "cd":
            from .working_set import solve_working_set

            if b0 is not None:
                raise ValueError("solver='cd' computes the intercepts exactly: b0 is not used; leave it None")
            return solve_working_set(data, pen, alpha, l2, fit_intercept, task_weights, tol=tol, max_iter=max_iter,
                                     W0=W0, callback=callback, n_threads=n_threads)
        from .factored import solve_trace

        W_rows = b_start = None
        if W0 is not None or b0 is not None:
            W_rows, b_start = as_parameters(data, np.zeros((data.n_features, data.n_tasks)) if W0 is None else W0, b0,
                                            "W0", "b0")
            W_rows = W_rows.astype(np.float64)
        return solve_trace(data, loss, pen, alpha, l2, fit_intercept, task_weights, tol, max_iter, n_threads, W_rows,
                           b_start, callback=callback, start=start)


def _agreed_errors(comm):
    from .distributed import agreed_errors

    return agreed_errors(comm)


def _local_part(value, reduction, name: str):
    """A per-task option given for all tasks (global order) -> its entries for this rank's tasks."""
    if not reduction.distributed or isinstance(value, (str, Loss)):
        return value
    entries = value if isinstance(value, np.ndarray) else list(value)
    n = len(reduction.global_ids)
    if len(entries) != n:
        raise ValueError(f"{name} has {len(entries)} entries but there are {n} tasks over all ranks")
    if isinstance(entries, np.ndarray):
        return entries[reduction.local_index]
    return [entries[i] for i in reduction.local_index]


def _local_start(data: TaskData, reduction, W0, b0):
    """Warm starts (global under MPI) -> this rank's columns."""
    W_init = np.zeros((data.n_features, len(reduction.global_ids))) if W0 is None else W0
    if not reduction.distributed:
        return W_init, b0
    W_init = np.asarray(W_init)
    n = len(reduction.global_ids)
    if W_init.ndim != 2 or W_init.shape[1] != n:
        raise ValueError(f"W0 has shape {W_init.shape}, expected (n_features, n_tasks) = "
                         f"({data.n_features}, {n}) with the tasks of all ranks")
    b_init = None
    if b0 is not None:
        b_init = np.asarray(b0)
        if b_init.shape != (n,):
            raise ValueError(f"b0 has shape {b_init.shape}, expected ({n},) with the tasks of all ranks")
        b_init = b_init[reduction.local_index]
    return W_init[:, reduction.local_index], b_init
