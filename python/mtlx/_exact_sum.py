"""Sums over rows (tasks) that give the same bits however the rows are spread over ranks.

A distributed sum of floating-point partial sums depends on how the terms were grouped: the trunk
gradient of a shared-trunk fit summed per rank, then across ranks, differs in the last bits from
the one-process sum, and a non-convex fit amplifies that. Here each task's row is cut into
integer limbs at an exponent common to its column (``mtlx/exact_sum.hpp``); integers add
exactly in any order.
"""

from __future__ import annotations

import numpy as np

from . import _core

__all__ = ["exact_row_sum"]


def exact_row_sum(rows: np.ndarray, reduction) -> np.ndarray:
    """The sum over every rank's rows of ``rows`` (k x n, float32 or float64: read as they are),
    independent of their order and distribution (two collectives under MPI: a MAX of n int32 and
    a SUM of 4n int64), in float64; NaN where a value is not finite."""
    dtype = rows.dtype if rows.dtype in (np.float32, np.float64) else np.float64
    rows = np.ascontiguousarray(rows, dtype=dtype)
    n = rows.shape[1]
    exponents = np.full(n, _core.exact_no_exponent, dtype=np.int32)
    _core.exact_column_exponents(rows, exponents)
    reduction.max_ints(exponents)
    limbs = np.zeros((4, n), dtype=np.int64)  # (row 3 counts non-finite values: their column's sum is NaN)
    _core.exact_accumulate(rows, exponents, limbs)
    reduction.sum_ints(limbs)
    out = np.empty(n)
    _core.exact_from_limbs(limbs, exponents, out)
    return out
