"""mtlx: regularized multi-task learning with a native core.

Public API: :class:`TaskData` (the three data layouts), :func:`solve` (FISTA on the whole
objective), :func:`loss_grad` (smooth part and gradient in one core call), :func:`prox`
(proximal operator of a penalty in one core call), the scikit-learn estimators
:class:`MultiTaskRegressor` and :class:`MultiTaskClassifier`, :func:`save`/:func:`load`
for fitted estimators, and :func:`distribute` with :mod:`mtlx.distributed` for solves over
MPI ranks (``solve(..., comm=comm)``), :func:`path` (warm-started regularization path with
gap-safe screening) and :func:`alpha_max`. ``HAS_CUDA`` says whether this build has the CUDA
backend (:mod:`mtlx.gpu`: device arrays in ``TaskData.from_*``, ``solve(..., device="cuda")``).
The estimators, persistence and :mod:`mtlx.io` load scikit-learn on first use, so
``import mtlx`` stays light.
"""

import logging
import os

# Idle OpenMP threads of the core sleep instead of spinning. A spinning thread steals its core
# from whatever else runs (another process, another MPI rank, the BLAS): on a loaded 2-core
# machine the default policy made 2-thread solves 30x slower than 1-thread ones. libgomp reads
# this once, when the core loads; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import _lapack, distributed, penalties
from .data import TaskData
from .distributed import distribute
from .gpu import HAS_CUDA
from .losses import LOSSES
from .objective import loss_grad
from .paths import PathResult, alpha_grid, alpha_max, path
from .penalties import penalty_value, prox
from .results import SolveResult, SolverState
from .solver import solve

_lapack.register()
# Under mpiexec, an unhandled exception on one rank ends the job instead of leaving the other
# ranks in a collective for ever (see mtlx.distributed.install_crash_abort).
distributed.install_crash_abort()
# A library logs, the application decides where it goes (Python logging HOWTO).
logging.getLogger("mtlx").addHandler(logging.NullHandler())

__version__ = "0.1.0"

_LAZY = {
    "ConvergenceWarning": "results",
    "MultiTaskRegressor": "estimators",
    "MultiTaskClassifier": "estimators",
    "MultiTaskRegressorCV": "cv",
    "MultiTaskClassifierCV": "cv",
    "SharedTrunkRegressor": "trunk.estimators",
    "SharedTrunkClassifier": "trunk.estimators",
    "SharedTrunkResult": "trunk",
    "fit_shared_trunk": "trunk",
    "save": "persistence",
    "load": "persistence",
}

__all__ = [
    "HAS_CUDA",
    "LOSSES",
    "ConvergenceWarning",
    "MultiTaskClassifier",
    "MultiTaskClassifierCV",
    "MultiTaskRegressor",
    "MultiTaskRegressorCV",
    "PathResult",
    "SharedTrunkClassifier",
    "SharedTrunkRegressor",
    "SharedTrunkResult",
    "SolveResult",
    "SolverState",
    "TaskData",
    "alpha_grid",
    "alpha_max",
    "distribute",
    "distributed",
    "fit_shared_trunk",
    "load",
    "loss_grad",
    "path",
    "penalties",
    "penalty_value",
    "prox",
    "save",
    "solve",
]


#: Submodules imported on first attribute access (``mtlx.io.save_dataset`` works after ``import mtlx``).
_SUBMODULES = ("datasets", "gpu", "io", "plot", "working_set")


def __getattr__(name):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'mtlx' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
