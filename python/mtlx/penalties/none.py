"""No penalty: g = 0 (with ``l2``, independent ridge per task)."""

from __future__ import annotations

import numpy as np

from .base import Penalty, register

__all__ = ["NoPenalty"]


@register
class NoPenalty(Penalty):
    """g(W) = 0: nothing couples the tasks.

    Parameters
    ----------
    w : float, default 1.0
        Ignored (kept so every penalty takes a weight).
    """

    name = "none"
    smooth = True
    quadratic = True
    runs_on_device = True

    def prox(self, V, tau, out, ctx):
        if out is not V:
            np.copyto(out, V)
        return 0.0

    def value(self, V, ctx):
        return 0.0

    def value_and_gradient(self, V, grad, ctx):
        return 0.0

    def lipschitz(self, ctx):
        return 0.0
