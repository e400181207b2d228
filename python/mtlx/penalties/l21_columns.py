"""l2,1 over columns: whole tasks on or off (outlier tasks)."""

from __future__ import annotations

import numpy as np

from ._statistics import scaled_norms
from .base import Penalty, register
from .l1 import _ratio

__all__ = ["L21Columns"]


@register
class L21Columns(Penalty):
    """``w * sum_t ||W[:, t]||_2``: the group lasso with one group per task.

    Alone it switches whole tasks off; as the second part of a :class:`Superpose` it absorbs
    outlier tasks (robust MTL, rMTFL). Prox: each task vector scaled by
    ``max(0, 1 - tau w / ||w_t||)``, local to the rank holding the task. Dual norm: the largest
    column norm over w.
    """

    name = "l21_columns"
    nests_entries = True
    runs_on_device = True  # (column norms and a scaling, through numpy's dispatch)

    def prox(self, V, tau, out, ctx):
        norms = scaled_norms(V, axis=1)
        t = tau * self.w
        factor = np.where(norms > t, 1.0 - t / np.where(norms > 0, norms, 1.0), 0.0)
        np.multiply(V, factor[:, None], out=out)
        return self.w * float(np.dot(factor, norms))

    def value(self, V, ctx):
        return self.w * float(np.sum(scaled_norms(V, axis=1)))

    def dual_norm(self, M):
        return _ratio(float(scaled_norms(M, axis=1).max()) if np.size(M) else 0.0, self.w)
