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
from scipy.special import logsumexp

from ._probabilities import proba_from_scores
from .problem import Problem

__all__ = ["ConjugateCertificate", "GapCertificate"]


class GapCertificate:
    """The relative duality gap of a problem, where it has one (``available``).

    Available for float64 data, the squared loss on every task and a penalty that is a norm
    (``dual_norm`` not None), without a ridge term or smooth penalty terms. Under MPI (a
    collective: every rank builds it, and asks for the gap at the same iterations) f and
    ``<W, G>`` are summed over ranks and the dual norm taken of every task's gradient.
    """

    def __init__(self, problem: Problem):
        self.problem = problem
        # float64 data only: float32 losses carry rounding of 1e-7 relative, the scale of a typical tol.
        local = (problem.data_dtype == np.float64 and not problem.smooth.data.weighted
                 and problem.smooth.quadratic and problem.l2 == 0.0
                 and not problem._has_smooth_terms and problem.alpha > 0 and not problem.shared_blocks
                 and all(loss.name == "squared" for loss in problem.smooth.loss_objects)
                 and _has_dual_norm(problem))
        self.available = not problem.reduction.any(not local)
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
        (f, inner), G = _over_ranks(problem, [f, float(np.vdot(W, G))], G)
        dual_norm = problem.penalty.dual_norm(-G)
        if dual_norm is None or not np.isfinite(dual_norm):
            return -np.inf
        s = max(1.0, dual_norm / problem.alpha)
        return (2.0 * f - inner) / s - f / s / s  # not s * s: it overflows past 1e154

    def at(self, theta: np.ndarray, f_value: float, grad: np.ndarray) -> float:
        """:meth:`dual_value` at theta, from f(theta) and grad f(theta) as :meth:`Problem.f` gives them."""
        problem = self.problem
        g_b = problem.view(grad, problem.intercepts) if problem.intercepts is not None else None
        return self.dual_value(f_value, problem.effective_W(theta), problem.view(grad, problem.task_blocks[0]), g_b)

    @staticmethod
    def relative_gap(primal: float, dual: float) -> float:
        """``(P - D) / |P|`` (0 when rounding puts D above P)."""
        return max(primal - dual, 0.0) / max(abs(primal), np.finfo(np.float64).tiny)


class ConjugateCertificate:
    """The relative duality gap of any per-entry losses with a norm penalty (``available``), from
    the losses' conjugates: what FISTA's step-based test alone does not certify.

    At margins ``z`` (the intercepts shifted by ``delta_t`` to their optimum for W, so that the
    dual point sums to zero over each task's rows), ``u = L'(y, z) / s`` with
    ``s = max(1, g*(-G) / alpha)``, ``G = grad_W f`` there, is dual feasible, and
    ``D = -sum_ti c_t s_i L*(y_ti, u_ti)`` bounds the minimum of F from below, whatever point it
    was built from: the gap ``F(x) - D`` of FISTA's own iterate x needs no change to x. As x
    approaches the optimum, delta and s - 1 vanish and so does the gap (proximal Newton's dual,
    :mod:`mtlx.prox_newton`, is the same one).

    It costs two passes over the data (the margins, and G at the shifted intercepts), about one
    FISTA iteration, so FISTA asks for it only once its steps are short, and then at a spacing
    that grows with the iteration count.

    A multinomial task's K columns take its rows' dual points together: ``u_i = (p_i - y_i) / s``
    with p_i the softmax of the shifted margins, whose conjugate is the negative entropy of
    ``u_i + y_i``, a distribution (:meth:`mtlx.losses.Multinomial.row_conjugate`); its K intercepts
    move to their optimum jointly (:func:`_softmax_intercept_shift`).

    Available on the host for float64 data, per-entry or multinomial losses and a penalty
    that is a norm, without a ridge term, smooth penalty terms or shared blocks (least squares
    alone has the cheaper :class:`GapCertificate`). Under MPI (a collective, as that one) the
    conjugates are summed over ranks and the dual norm taken of every task's gradient.
    """

    def __init__(self, problem: Problem):
        self.problem = problem
        smooth = problem.smooth
        local = (not problem.ops.on_device and problem.data_dtype == np.float64 and problem.l2 == 0.0
                 and not problem._has_smooth_terms and problem.alpha > 0 and not problem.shared_blocks
                 and hasattr(smooth, "loss_objects")
                 and _has_dual_norm(problem))
        self.available = not problem.reduction.any(not local)

    relative_gap = staticmethod(GapCertificate.relative_gap)

    def _margins(self, W: np.ndarray, b: np.ndarray | None) -> list:
        """Per task, its margins ``X_t w_t + b_t`` (float64)."""
        data = self.problem.smooth.data
        if data.layout == "shared":
            Z = np.asarray(data.X @ W.T, dtype=np.float64)
            if b is not None:
                Z += b
            return [Z[:, t] for t in range(data.n_tasks)]
        out = []
        for t in range(data.n_tasks):
            z = np.asarray(data.task(t)[0] @ W[t], dtype=np.float64).reshape(-1)
            out.append(z + b[t] if b is not None else z)
        return out

    def _row_weights(self, t: int) -> np.ndarray | float:
        """c_t s_i for the rows of task t (a scalar without sample weights)."""
        s = self.problem.smooth.data.task_weights_of(t)
        c = float(self.problem.smooth.weights[t])
        return c if s is None else c * np.asarray(s, dtype=np.float64)

    def dual_at(self, theta: np.ndarray) -> float:
        """D at the dual point of theta's margins (see the class docstring); -inf where none is
        finite. Under MPI every rank calls it at the same iterate."""
        problem = self.problem
        smooth, data = problem.smooth, problem.smooth.data
        G = np.full((problem.n_tasks, problem.n_features), np.nan)
        Z = weights = None
        try:
            W, b, _ = problem.user_parameters(theta)
            Z = self._margins(W, b)
            weights = [self._row_weights(t) for t in range(data.n_tasks)]
            if problem.intercepts is not None:
                shifts = np.zeros(data.n_tasks)
                for t in _entrywise_columns(smooth):
                    shifts[t] = _intercept_shift(smooth.loss_objects[t], data.targets(t), Z[t], weights[t])
                for start, stop in smooth.softmax_groups:
                    shifts[start:stop] = _softmax_intercept_shift(*_group(data, Z, weights, start, stop))
                Z = [z + shift for z, shift in zip(Z, shifts)]
                theta = theta.copy()
                problem.view(theta, problem.intercepts)[...] += shifts * problem.intercepts.scale
            grad = np.empty_like(theta)
            problem.f(theta, grad)
            G = problem.view(grad, problem.task_blocks[0])
        except Exception as exc:  # (under MPI kept for the collective below, which raises it on every rank)
            problem._failed(exc)
        _, G = _over_ranks(problem, [], G)
        dual_norm = problem.penalty.dual_norm(-G)
        s = max(1.0, dual_norm / problem.alpha) if dual_norm is not None and np.isfinite(dual_norm) else np.inf
        total = np.inf
        if np.isfinite(s) and Z is not None:
            total = 0.0
            for t in _entrywise_columns(smooth):
                loss, y, w = smooth.loss_objects[t], data.targets(t), np.broadcast_to(weights[t], Z[t].shape)
                counted = w > 0  # (an unlabelled entry's conjugate may be anything, even NaN)
                u = loss.terms(y[counted], Z[t][counted])[1] / s
                total += float(np.dot(w[counted], loss.conjugate(y[counted], u)))
            for start, stop in smooth.softmax_groups:
                Y, Zg, w = _group(data, Z, weights, start, stop)
                loss = smooth.loss_objects[start]
                total += float(np.dot(w, loss.row_conjugate(Y, (proba_from_scores(Zg) - Y) / s)))
        (total,), _ = _over_ranks(problem, [total], None)
        return -total if np.isfinite(total) else -np.inf


def _entrywise_columns(smooth) -> list:
    """The columns whose loss is per entry (those of no multinomial task)."""
    grouped = {t for start, stop in smooth.softmax_groups for t in range(start, stop)}
    return [t for t in range(len(smooth.loss_objects)) if t not in grouped]


def _group(data, Z: list, weights: list, start: int, stop: int) -> tuple:
    """A multinomial task's counted rows: one-hot targets Y (m, K), margins (m, K), row weights
    c s_i (m,). Its columns share their rows and weights (checked by SmoothLoss)."""
    w = np.broadcast_to(weights[start], Z[start].shape)
    counted = w > 0
    Y = np.column_stack([data.targets(t)[counted] for t in range(start, stop)]).astype(np.float64)
    return Y, np.column_stack([Z[t][counted] for t in range(start, stop)]), w[counted]


def _has_dual_norm(problem: Problem) -> bool:
    """Whether the penalty is a norm (its dual norm defined), asked at a zero matrix of every task."""
    return problem.penalty.dual_norm(np.zeros((problem.ctx.n_tasks, problem.n_features))) is not None


def _over_ranks(problem: Problem, sums: list, rows):
    """``(sums over ranks, every task's rows)`` from this rank's (``rows`` None: none to gather).

    Not the stop flag of :meth:`Problem.reduce`: a callback's stop is taken at the solver's next
    reduction. A failure kept by :meth:`Problem._failed` is raised here on every rank.
    """
    if not problem.distributed:
        return sums, rows
    gathered = None if rows is None else problem.reduction.allgather_tasks(np.ascontiguousarray(rows, np.float64))
    buf = np.zeros(len(sums) + problem.n_flags)
    buf[: len(sums)] = sums
    problem.reduction.allreduce(buf, problem._failure)
    return buf[: len(sums)].tolist(), gathered


def _intercept_shift(loss, y: np.ndarray, z: np.ndarray, weight) -> float:
    """The delta minimizing ``sum_i w_i L(y_i, z_i + delta)`` (convex in delta): Newton steps kept
    inside a bracket of the root of its derivative, halving the bracket where Newton leaves it or
    the curvature vanishes (the squared hinge past its margins)."""
    w = np.broadcast_to(weight, z.shape)
    counted = w > 0
    y, z, w = y[counted], z[counted], w[counted]
    if not y.size:
        return 0.0
    lo, hi, delta = -np.inf, np.inf, 0.0
    for _ in range(200):
        _, first, second = loss.terms(y, z + delta)
        slope, curvature = float(np.dot(w, first)), float(np.dot(w, second))
        if abs(slope) <= 1e-15 * float(np.dot(w, np.abs(first))) or slope == 0.0:
            return delta
        if slope > 0:
            hi = delta
        else:
            lo = delta
        step = delta - slope / curvature if curvature > 0 else np.nan
        if lo < step < hi:
            delta = step
        elif np.isfinite(lo) and np.isfinite(hi):
            delta = 0.5 * (lo + hi)
            if delta in (lo, hi):
                return delta
        else:  # no bracket yet: step out, doubling
            reach = 2.0 * max(1.0, abs(delta))
            delta = delta + reach if slope < 0 else delta - reach
    return delta


def _softmax_intercept_shift(Y: np.ndarray, Z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The shift delta (K,) minimizing a multinomial task's loss
    ``phi(delta) = sum_i w_i [logsumexp(z_i + delta) - y_i . (z_i + delta)]`` (convex; constant
    along the all-ones direction, so the minimum-norm Newton step is taken): Newton steps with
    Armijo backtracking, until the gradient ``sum_i w_i (p_i - y_i)`` vanishes to rounding."""
    K = Z.shape[1]
    delta = np.zeros(K)
    if not len(w):
        return delta

    def value(shift):
        A = Z + shift
        return float(np.dot(w, logsumexp(A, axis=1) - np.einsum("ik,ik->i", Y, A)))

    phi = value(delta)
    for _ in range(100):
        P = proba_from_scores(Z + delta)
        grad = w @ (P - Y)
        if np.max(np.abs(grad)) <= 1e-15 * float(np.dot(w, np.abs(P - Y).sum(axis=1))):
            break
        hessian = np.diag(w @ P) - (P * w[:, None]).T @ P
        step = np.linalg.lstsq(hessian, -grad, rcond=None)[0]
        slope = float(grad @ step)
        if not slope < 0:
            break
        t = 1.0
        while t > 1e-12:
            trial = value(delta + t * step)
            if trial <= phi + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break
        delta, phi = delta + t * step, trial
    return delta
