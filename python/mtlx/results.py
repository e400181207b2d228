"""What a solve returns and what a callback sees; the warning a solver gives when it stops early.

``ConvergenceWarning`` subclasses scikit-learn's, so ``warnings.filterwarnings`` and
``pytest.warns`` written for scikit-learn catch mtlx's too. scikit-learn takes a second to
import, so the class is made on first use (module ``__getattr__``), keeping ``import mtlx`` light.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SolveResult", "SolverState", "convergence_warning"]

_WARNING = None


def convergence_warning() -> type:
    """mtlx's ConvergenceWarning class (a subclass of ``sklearn.exceptions.ConvergenceWarning``)."""
    global _WARNING
    if _WARNING is None:
        from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

        _WARNING = type("ConvergenceWarning", (SklearnConvergenceWarning,), {
            "__doc__": "A solver stopped at its iteration cap before meeting its tolerance (a subclass of "
                       "sklearn.exceptions.ConvergenceWarning).",
            "__module__": "mtlx"})
    return _WARNING


def __getattr__(name):
    if name == "ConvergenceWarning":
        return convergence_warning()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class SolverState:
    """What a ``callback`` sees after each iteration (arrays are views or fresh copies: copy to keep them)."""

    n_iter: int
    W: np.ndarray
    b: np.ndarray
    objective: float
    rel_change: float
    optimality: float
    step: float


@dataclass
class SolveResult:
    """Outcome of :func:`mtlx.solve`.

    Attributes
    ----------
    W : ndarray, shape (n_features, n_tasks)
        The coefficients (the sum of the parameter blocks).
    b : ndarray, shape (n_tasks,)
        Intercepts (zeros without ``fit_intercept``).
    objective : float
        F(W, b) at the returned point.
    history : ndarray
        F along the solve, as each engine measures it: FISTA and ADMM after each iteration,
        ``history[0]`` at the starting point (``n_iter + 1`` values); coordinate descent and
        proximal Newton at each duality-gap check (``history[0]`` at the starting W with the
        intercepts already at their optimum; an epoch count is not a gap check, so there are
        fewer values than ``n_iter``); the factored engine at the end of each round of its rank
        search. Where one engine hands over to another (``solver`` ``"fista+factored"``), their
        histories follow one another.
    n_iter : int
    converged : bool
    optimality : float
        FISTA: the largest over the parameter blocks of the last relative proximal-gradient step
        ``||x+_B - y_B|| / max(||x+_B||, ||y_B||, ||grad_B f(x0)|| / L)``. The engines that stop
        on a duality gap (coordinate descent, the factored engine, ADMM on norms): the last
        relative gap; ADMM without one: its largest relative residual.
    rel_change : float
        Last relative change of F, ``|dF| / max(|F|, tol |F(x0)|)``.
    n_evals : int
        Smooth-part evaluations (gradient and line-search passes).
    step : float
        Last step size 1/L.
    time : float
        Wall time of the solve in seconds.
    message : str
    gram : bool
        Whether the squared loss ran in the Gram form (see ``solve(gram=...)``).
    task_ids : ndarray, shape (n_tasks,)
        The id of the task of each column of W (under MPI: all ranks' tasks, in global order).
    n_allreduce : int
        Allreduce calls of this solve (in one process: the calls an MPI run would make).
    allreduce_bytes : int
        Bytes all-reduced by this solve (the size of the buffers, per rank).
    components : tuple of ndarray
        One (n_features, n_tasks) array per block of W (a :class:`~mtlx.penalties.Superpose`
        penalty's parts; a shared block has equal columns); ``(W,)`` otherwise.
    solver : str
        The engine that produced the result ("fista", "cd", "admm", "factored", "fista+factored").
    """

    W: np.ndarray
    b: np.ndarray
    objective: float
    history: np.ndarray
    n_iter: int
    converged: bool
    optimality: float
    rel_change: float
    n_evals: int
    step: float
    time: float
    message: str = field(default="")
    gram: bool = False
    task_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_allreduce: int = 0
    allreduce_bytes: int = 0
    components: tuple = ()
    solver: str = "fista"


def gap_result(data, W, b, info: dict, message: str, seconds: float, solver: str) -> "SolveResult":
    """The SolveResult of an engine certified by a duality gap (working sets, proximal Newton):
    ``info`` holds primal, gap, history, epochs (n_iter), outer (n_evals) and converged."""
    dtype = data.dtype
    return SolveResult(W=W.astype(dtype, copy=False), b=b.astype(dtype), objective=float(info["primal"]),
                       history=info["history"], n_iter=int(info["epochs"]), converged=bool(info["converged"]),
                       optimality=float(info["gap"] / max(abs(info["primal"]), np.finfo(float).tiny)),
                       rel_change=np.nan, n_evals=int(info["outer"]), step=np.nan, time=seconds, message=message,
                       task_ids=data.task_ids.copy(), components=(W.astype(dtype, copy=False),), solver=solver)
