"""Coupling penalties g(W): one class per file, composable with ``+`` and :class:`Superpose`.

=====================================  ==========================================================
penalty                                g (times the relative weight w; solve's alpha times all)
=====================================  ==========================================================
``NoPenalty()`` / ``"none"``           0
``L1(w)`` / ``"l1"``                   sum_jt |W_jt|
``L21(w)`` / ``"l21"``                 sum_j ||W[j, :]||_2             (joint feature selection)
``Trace(w)`` / ``"trace"``             sum of singular values          (low rank)
``Mean(w)`` / ``"mean"``               0.5 sum_t ||w_t - mean||^2      (tasks near their mean)
``L21Columns(w)`` / ``"l21_columns"``  sum_t ||W[:, t]||_2             (whole tasks on/off)
``LInf1(w)`` / ``"linf1"``             sum_j max_t |W_jt|              (l1/l-inf)
``Graph(R, w)``                        ||W R||_F^2                     (task graph)
``Clustered(k, eta, w)``               eta (1 + eta) min_M tr(W (eta I + M)^-1 W^T)   (clusters)
``Shared(w)`` / ``"shared"``           W = w0 1^T, 0.5 ||w0||^2        (one shared vector)
``g1 + g2``                            sum on the same W (e.g. ``L1(a) + L21(b)``, ``Graph(R, a) + L1(b)``)
``Superpose(g1, g2, ...)``             W = U_1 + U_2 + ..., g1(U_1) + g2(U_2) + ...   (dirty, robust MTL)
=====================================  ==========================================================

See :mod:`mtlx.penalties.base` for the interface a penalty implements; strings are looked up
in the registry (:func:`get_penalty`) or parsed as spec strings (:mod:`mtlx.penalties.spec`).
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np

from .._config import resolve_n_threads
from .._validate import as_real_array, check_finite, check_nonnegative
from .base import BlockContext, Penalty, Sum, Superpose, get_penalty, register, registered
from .spec import parse


def _discover() -> list:
    """Import every module of this package and re-export its penalty classes: a new penalty is a
    new file here and nothing else."""
    names = []
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_") or module.name in ("base", "spec"):
            continue
        namespace = importlib.import_module(f"{__name__}.{module.name}")
        for name in getattr(namespace, "__all__", ()):
            obj = getattr(namespace, name)
            if isinstance(obj, type) and issubclass(obj, Penalty):
                globals()[name] = obj
                names.append(name)
    return sorted(names)


__all__ = ["BlockContext", "Penalty", "Sum", "Superpose", *_discover(), "get_penalty", "parse", "penalty_value",
           "prox", "register", "registered"]


def _as_task_rows(W, name: str = "W") -> np.ndarray:
    """W (d, T) as C-contiguous float64 rows (T, d), checked finite."""
    W = as_real_array(W, name, ndim=2)
    Wt = np.ascontiguousarray(W.T, dtype=np.float64)
    check_finite(Wt, name)
    return Wt


def prox(W, penalty="l21", step: float = 1.0, alpha: float = 1.0, *, n_threads: int | None = None):
    """Proximal operator of ``step * alpha * g`` at ``W``.

    Parameters
    ----------
    W : array_like, shape (n_features, n_tasks)
        Column t holds task t; the result keeps W's floating dtype (float32 stays float32).
    penalty : str or Penalty
        A name, a spec string or a penalty object with a closed-form prox on one d x T block
        (not :class:`Superpose` or :class:`Shared`, whose blocks are not W itself).
    step : float
        Step size (> 0 in a proximal-gradient method; 0 returns W).
    alpha : float
        Regularization strength.
    n_threads : int, optional

    Returns
    -------
    ndarray, shape (n_features, n_tasks)
        ``argmin_U 0.5 ||U - W||_F^2 + step * alpha * g(U)``.

    Notes
    -----
    l1: soft thresholding ``sign(w) max(|w| - tau, 0)``; l21: each row scaled by
    ``max(0, 1 - tau / ||row||)``; trace: singular values shrunk, ``U max(s - tau, 0) V^T``;
    mean: ``m + (w_t - m) / (1 + tau)`` with m the mean of the columns; here ``tau = step * alpha``
    (times the penalty's weight). A sum ``L1 + L21`` is the composition (l1 first).
    """
    pen = get_penalty(penalty)
    tau = check_nonnegative(step, "step") * check_nonnegative(alpha, "alpha")
    if pen.block != "tasks" or isinstance(pen, Superpose):
        raise ValueError(f"prox applies to a penalty on W itself, not {pen!r}")
    dtype = np.asarray(W).dtype if np.asarray(W).dtype in (np.float32, np.float64) else np.float64
    Vt = _as_task_rows(W)
    pen.check(Vt.shape[1], Vt.shape[0])
    part, smooth = pen.split()
    if smooth or part is None:
        raise ValueError(f"{pen!r} has no closed-form prox as a whole (it has smooth terms)")
    if tau == 0.0:  # the identity, exactly (trace's SVD would round W by 1e-15)
        return Vt.T.astype(dtype)
    out = np.empty_like(Vt)
    part.prox(Vt, tau, out, BlockContext.single(Vt.shape[1], Vt.shape[0], resolve_n_threads(n_threads)))
    return out.T.astype(dtype, copy=False)


def penalty_value(W, penalty="l21", *, n_threads: int | None = None) -> float:
    """``g(W)`` (times the penalty's weight) for ``W`` of shape (n_features, n_tasks)."""
    pen = get_penalty(penalty)
    if pen.block != "tasks" or isinstance(pen, Superpose):
        raise ValueError(f"penalty_value applies to a penalty on W itself, not {pen!r}")
    Vt = _as_task_rows(W)
    pen.check(Vt.shape[1], Vt.shape[0])
    return float(sum(p.value(Vt, BlockContext.single(Vt.shape[1], Vt.shape[0], resolve_n_threads(n_threads)))
                     for p in pen.terms()))
