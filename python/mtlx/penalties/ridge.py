"""Ridge on one block: squared Frobenius norm (the task-specific part of shared + specific models)."""

from __future__ import annotations

import numpy as np

from .base import Penalty, register

__all__ = ["Ridge"]


@register
class Ridge(Penalty):
    """``w * 0.5 * ||U||_F^2`` on the block it is given.

    On W itself it is solve's ``l2`` again; its use is inside :class:`Superpose`, where ``l2``
    would act on the sum: Evgeniou & Pontil's regularized MTL, ``w_t = w0 + v_t`` with
    ``a/2 ||w0||^2 + b/2 sum_t ||v_t||^2``, is ``Superpose(Shared(a), Ridge(b))``. Smooth and
    quadratic (gradient ``w U``), proximable (``v / (1 + tau w)``), local to each rank's tasks.
    """

    name = "ridge"
    smooth = True
    quadratic = True
    runs_on_device = True  # (elementwise, through numpy's dispatch to the arrays' own library)

    def prox(self, V, tau, out, ctx):
        np.multiply(V, 1.0 / (1.0 + tau * self.w), out=out)
        return self.value(out, ctx)

    def value(self, V, ctx):
        return 0.5 * self.w * float(np.einsum("tj,tj->", V, V))

    def value_and_gradient(self, V, grad, ctx):
        if grad is not None:
            grad += self.w * V
        return self.value(V, ctx)

    def lipschitz(self, ctx):
        return self.w
