"""mtlx: regularized multi-task learning with a native core.

Public API: :class:`TaskData` (the three data layouts), :func:`solve` (FISTA on the whole
objective), :func:`loss_grad` (smooth part and gradient in one core call) and :func:`prox`
(proximal operator of a penalty in one core call); :func:`distribute` and
:mod:`mtlx.distributed` for solves over MPI ranks (``solve(..., comm=comm)``).
"""

from . import _lapack, distributed
from .data import TaskData
from .distributed import distribute
from .losses import LOSSES
from .objective import loss_grad
from .penalties import PENALTIES, penalty_value, prox
from .solver import ConvergenceWarning, SolveResult, SolverState, solve

_lapack.register()

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "PENALTIES",
    "ConvergenceWarning",
    "SolveResult",
    "SolverState",
    "TaskData",
    "distribute",
    "distributed",
    "loss_grad",
    "penalty_value",
    "prox",
    "solve",
]
