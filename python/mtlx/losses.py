"""Names of the per-sample losses and their codes in the core (cpp/include/mtlx/losses.hpp).

================  ============================  ==================
name              L(y, z)                       targets
================  ============================  ==================
``"squared"``     0.5 (y - z)^2                 real numbers
``"logistic"``    log(1 + exp(-y z))            labels in {-1, +1}
================  ============================  ==================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["LOSSES", "resolve_losses"]

#: Loss name -> code understood by the core (same numbering as ``mtlx::LossKind``).
LOSSES = {"squared": 0, "logistic": 1}


def _code(name, where: str) -> int:
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"{where}: unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name]


def resolve_losses(loss: str | Sequence[str], n_tasks: int) -> np.ndarray:
    """Per-task loss codes.

    Parameters
    ----------
    loss : str or sequence of str
        One loss name for every task, or one name per task (length ``n_tasks``).
    n_tasks : int
        Number of tasks T.

    Returns
    -------
    ndarray of uint8, shape (T,)
    """
    if isinstance(loss, str):
        return np.full(n_tasks, _code(loss, "loss"), dtype=np.uint8)
    if not isinstance(loss, Sequence) and not isinstance(loss, np.ndarray):
        raise TypeError(f"loss must be a name or a sequence of {n_tasks} names, got {type(loss).__name__}")
    names = list(loss)
    if len(names) != n_tasks:
        raise ValueError(f"loss has {len(names)} names but there are {n_tasks} tasks")
    return np.array([_code(n, f"loss of task {t}") for t, n in enumerate(names)], dtype=np.uint8)
