"""Per-sample losses: what the core computes for each, and what the Python layer needs around it.

================  ============================  ==================  ===================
name              L(y, z)                       targets             prediction
================  ============================  ==================  ===================
``"squared"``     0.5 (y - z)^2                 real numbers        z
``"logistic"``    log(1 + exp(-y z))            labels in {-1, +1}  P(y = +1) = 1 / (1 + exp(-z))
================  ============================  ==================  ===================

A loss object carries its name, its code in the core (``mtlx._core.LossKind``, the only place
the numbering is written), the bound on its second derivative the solver uses to balance the
intercepts against the coefficients, its label check, and its prediction transform. A new
loss is one functor in ``cpp/include/mtlx/losses.hpp`` plus one subclass here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit

from . import _core

__all__ = ["LOSSES", "Logistic", "Loss", "Squared", "get_loss", "resolve_losses"]


class Loss:
    """A per-sample loss L(y, z) of a margin z = x . w + b."""

    #: Name used by ``solve(loss=...)``.
    name: str = ""
    #: Code in the core's ``LossKind``.
    kind = None
    #: A bound on d^2 L / dz^2 (the intercepts' curvature per unit of task weight and row).
    curvature: float = 1.0
    #: Whether f is quadratic in (W, b) for this loss (an affine gradient).
    quadratic = False

    @property
    def code(self) -> int:
        return int(self.kind)

    def valid(self, y: np.ndarray) -> np.ndarray:
        """Which targets lie in the loss's domain (a boolean array like y)."""
        return np.ones(np.shape(y), dtype=bool)

    def check_targets(self, y: np.ndarray, where: str) -> None:
        """Raise ValueError naming ``where`` when ``y`` holds targets outside the loss's domain."""

    def predict(self, z: np.ndarray) -> np.ndarray:
        """The prediction at margins z (the mean of y under the loss's model)."""
        return z

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Squared(Loss):
    """0.5 (y - z)^2: regression."""

    name = "squared"
    kind = _core.LossKind.squared
    curvature = 1.0
    quadratic = True


class Logistic(Loss):
    """log(1 + exp(-y z)) with y in {-1, +1}: binary classification (curvature at most 1/4)."""

    name = "logistic"
    kind = _core.LossKind.logistic
    curvature = 0.25

    def valid(self, y):
        return (y == 1) | (y == -1)

    def check_targets(self, y, where):
        ok = self.valid(y)
        if not ok.all():
            found = np.unique(y[~ok])[:5]
            raise ValueError(f"{where}: y holds labels {found.tolist()} but the logistic loss needs labels in "
                             "{-1, +1}")

    def predict(self, z):
        return expit(z)


#: Every loss by name.
LOSSES = {cls.name: cls() for cls in (Squared, Logistic)}


def get_loss(loss, where: str = "loss") -> Loss:
    """The :class:`Loss` for a name (or the loss itself)."""
    if isinstance(loss, Loss):
        return loss
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"{where}: unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[loss]


def resolve_losses(loss, n_tasks: int) -> list:
    """One :class:`Loss` per task.

    Parameters
    ----------
    loss : str, Loss, or sequence of them
        One loss for every task, or one per task (length ``n_tasks``).
    n_tasks : int

    Returns
    -------
    list of Loss, length n_tasks
    """
    if isinstance(loss, (str, Loss)):
        return [get_loss(loss)] * n_tasks
    if not isinstance(loss, (Sequence, np.ndarray)):
        raise TypeError(f"loss must be a name or a sequence of {n_tasks} names, got {type(loss).__name__}")
    names = list(loss)
    if len(names) != n_tasks:
        raise ValueError(f"loss has {len(names)} names but there are {n_tasks} tasks")
    return [get_loss(n, f"loss of task {t}") for t, n in enumerate(names)]


def loss_codes(losses: list) -> np.ndarray:
    """The core's per-task loss codes (uint8) of a list of losses."""
    return np.array([loss.code for loss in losses], dtype=np.uint8)
