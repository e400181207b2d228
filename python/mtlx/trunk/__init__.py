"""Shared-representation models (hard parameter sharing): a trunk of dense layers shared by
every task, optional task-specific layers, one head and one loss per task.

The core (``cpp/src/cpu/trunk.cpp``) computes the forward and backward passes of all tasks in
batched calls; Python drives the optimizers (:mod:`.lbfgs`, :mod:`.adam`). Under MPI the trunk is
the shared parameter block (its gradient all-reduced once per step) and each rank keeps its own
tasks' layers and heads.
"""

from .fit import SharedTrunkResult, fit_shared_trunk
from .network import TrunkNetwork

__all__ = ["SharedTrunkResult", "TrunkNetwork", "fit_shared_trunk"]
