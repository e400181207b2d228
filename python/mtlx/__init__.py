"""mtlx: regularized multi-task learning with a native core.

Public API: :class:`TaskData` (the three data layouts), :func:`solve` (FISTA on the whole
objective), :func:`loss_grad` (smooth part and gradient in one core call) and :func:`prox`
(proximal operator of a penalty in one core call).
"""

import logging

from . import _lapack
from .data import TaskData
from .losses import LOSSES
from .objective import loss_grad
from .penalties import PENALTIES, penalty_value, prox
from .solver import ConvergenceWarning, SolveResult, SolverState, solve

_lapack.register()
logging.getLogger("mtlx").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "PENALTIES",
    "ConvergenceWarning",
    "SolveResult",
    "SolverState",
    "TaskData",
    "loss_grad",
    "penalty_value",
    "prox",
    "solve",
]
