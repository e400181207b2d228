"""The duality gap of least squares with a norm penalty, from quantities every engine has at hand.

For ``F(W) = f(W) + alpha g(W)`` with f the (task-weighted) squared loss and g a norm (a sum of
norms, or a decomposition W = U + V of norms, whose dual norm is the largest of the parts'), the
residuals ``r_t = y_t - X_t w_t - b_t`` give the dual point ``theta_t = c_t r_t / s`` with
``s = max(1, g*(M) / alpha)``, ``M = -grad_W f``: dual feasible, and with the intercepts at
their optimum (``sum_i r_ti = 0``) also for the free intercepts. The gap ``P - D`` then needs no
pass over the data:

    D = sum_t theta_t' y_t - ||theta_t||^2 / (2 c_t) = (2 f - <W, grad_W f>) / s - f / s^2

(with ``c_t ||r_t||^2 = 2 f_t`` and ``r_t' y_t = ||r_t||^2 - w_t' grad_t / c_t``); at the same point,
``P - D = f (1 - 1/s)^2 + alpha g(W) + <W, grad_W f> / s``, at s = 1 the familiar
``alpha g(W) + <W, grad f>``. Any point gives a lower bound: ADMM also takes the one of its
loss-side iterate, which is dual feasible by construction (:mod:`mtlx.admm`). A gap at most ``tol``
times F certifies that F is within that much of its minimum whatever the conditioning: where
proximal-gradient steps are short because progress is slow (a decomposition on collinear
features), the step-based test alone passed 1e-5 short of the optimum (mtlx issue 11).

Intercepts that are not at their optimum are moved there first, exactly: with task-centered
features each intercept is a decoupled one-dimensional quadratic (see :mod:`mtlx.problem`).
"""

from __future__ import annotations

import numpy as np

from .problem import Problem

__all__ = ["GapCertificate"]


class GapCertificate:
    """The relative duality gap of a problem, where it has one (``available``).

    Available in one process for float64 data, the squared loss on every task and a penalty that
    is a norm (``dual_norm`` not None), without a ridge term or smooth penalty terms.
    """

    def __init__(self, problem: Problem):
        self.problem = problem
        # float64 data only: float32 losses carry rounding of 1e-7 relative, the scale of a typical tol.
        self.available = (not problem.distributed and problem.data_dtype == np.float64
                          and not problem.smooth.data.weighted
                          and problem.smooth.quadratic and problem.l2 == 0.0
                          and not problem._has_smooth_terms and problem.alpha > 0 and not problem.shared_blocks
                          and all(loss.name == "squared" for loss in problem.smooth.loss_objects)
                          and problem.penalty.dual_norm(np.zeros((problem.n_tasks, problem.n_features)))
                          is not None)
        if self.available and problem.intercepts is not None:
            smooth = problem.smooth
            curv = np.asarray(smooth.weights, dtype=np.float64) * smooth.data.n_samples
            self._intercept_curvature = curv / np.asarray(problem.intercepts.scale, dtype=np.float64) ** 2

    def dual_value(self, f_value: float, W: np.ndarray, G: np.ndarray, g_b: np.ndarray | None = None) -> float:
        """D at the dual point of the residuals at (W, the intercepts' optimum), given f, W's rows and
        ``grad_W f`` there (and the intercepts' gradient ``g_b`` in theta's coordinates, when they are
        not at their optimum): ``(2 f - <W, G>) / s - f / s^2``."""
        problem = self.problem
        f = float(f_value)
        if g_b is not None and problem.intercepts is not None:  # their optimum: f drops by g_b^2 / (2 h_b)
            h = self._intercept_curvature
            f -= float(np.sum(np.where(h > 0, g_b * g_b / np.where(h > 0, 2.0 * h, 1.0), 0.0)))
        dual_norm = problem.penalty.dual_norm(-G)
        if dual_norm is None or not np.isfinite(dual_norm):
            return -np.inf
        s = max(1.0, dual_norm / problem.alpha)
        return (2.0 * f - float(np.vdot(W, G))) / s - f / s / s  # not s * s: it overflows past 1e154

    def at(self, theta: np.ndarray, f_value: float, grad: np.ndarray) -> float:
        """:meth:`dual_value` at theta, from f(theta) and grad f(theta) as :meth:`Problem.f` gives them."""
        problem = self.problem
        g_b = problem.view(grad, problem.intercepts) if problem.intercepts is not None else None
        return self.dual_value(f_value, problem.effective_W(theta), problem.view(grad, problem.task_blocks[0]), g_b)

    @staticmethod
    def relative_gap(primal: float, dual: float) -> float:
        """``(P - D) / |P|`` (0 when rounding puts D above P)."""
        return max(primal - dual, 0.0) / max(abs(primal), np.finfo(np.float64).tiny)
