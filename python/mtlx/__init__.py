"""mtlx: regularized multi-task learning with a native core.

Public API: :class:`TaskData` (the three data layouts), :func:`solve` (FISTA on the whole
objective), :func:`loss_grad` (smooth part and gradient in one core call), :func:`prox`
(proximal operator of a penalty in one core call), :func:`path` (warm-started regularization
path with gap-safe screening) and :func:`alpha_max`.
"""

import logging

from . import _lapack
from .data import TaskData
from .losses import LOSSES
from .objective import loss_grad
from .path import PathResult, alpha_max, path
from .penalties import PENALTIES, penalty_value, prox
from .solver import ConvergenceWarning, SolveResult, SolverState, solve

_lapack.register()
logging.getLogger("mtlx").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "PENALTIES",
    "ConvergenceWarning",
    "PathResult",
    "SolveResult",
    "SolverState",
    "TaskData",
    "alpha_max",
    "loss_grad",
    "path",
    "penalty_value",
    "prox",
    "solve",
]
