"""A shared block: one coefficient vector common to every task."""

from __future__ import annotations

import numpy as np

from .base import Penalty, register

__all__ = ["Shared"]


@register
class Shared(Penalty):
    """A shared d-vector ``w0`` with ``W = w0 1^T``, penalized by ``w * 0.5 * ||w0||^2`` (w = 0:
    unpenalized).

    Alone it is one pooled model for all tasks; as a part of :class:`Superpose` it is the common
    part of ``w_t = w0 + v_t``: Evgeniou & Pontil's regularized MTL is
    ``Superpose(Shared(a), Ridge(b))``, sparse task-specific parts ``Superpose(Shared(a), L1(b))``
    (not ``l2``, which acts on the sum W). Its gradient is the sum of the tasks' gradients (under MPI, one
    Allreduce of a d-vector); the block is held whole by every rank. Prox: ``v / (1 + tau w)``.
    """

    name = "shared"
    block = "shared"
    smooth = True
    quadratic = True
    runs_on_device = True  # (elementwise, through numpy's dispatch to the arrays' own library)

    def prox(self, V, tau, out, ctx):
        np.multiply(V, 1.0 / (1.0 + tau * self.w), out=out)
        return self.value(out, ctx)

    def value(self, V, ctx):
        return ctx.share(0.5 * self.w * float(np.dot(V, V)))

    def value_and_gradient(self, V, grad, ctx):
        if grad is not None:
            grad += self.w * V
        return self.value(V, ctx)

    def lipschitz(self, ctx):
        return self.w
