"""ADMM for least squares with a prox-only penalty: decompositions and spectral couplings.

Proximal gradient steps along the loss at a step of ``1 / L``: with a decomposition W = U + V
(dirty models, robust MTL, sparse + low rank) the parts share one gradient and the steps crawl
(on the raw school data FISTA had not reached 1e-6 after 30,000 iterations of the dirty model).
ADMM solves the quadratic exactly instead (Boyd et al. 2011, section 7.3, the sharing problem):

    minimize f(B_1 + ... + B_n) + sum_i alpha g_i(Z_i)   subject to   B_i = Z_i

with scaled duals U_i and penalty parameter rho, one iteration is

    S   = argmin_S f(S) + (rho / 2n) ||S - sum_i A_i||^2,      A_i = Z_i - U_i
    B_i = A_i + (S - sum_i A_i) / n
    Z_i = prox_{alpha g_i / rho}(B_i + U_i)
    U_i = U_i + B_i - Z_i

f is the squared loss in the Gram form (+ the ridge term): per task, S solves a d x d system with
the Hessian ``c_t G_t + l2 I`` (centered when intercepts are fitted: each task's intercept is then
decoupled and set to its optimum), inverted through one eigendecomposition per task so that rho
can adapt for free (residual balancing, Wohlberg 2017). The system is solved as a Newton step from
the current point with the exact gradient of :meth:`mtlx.problem.Problem.f` (the Gram form's
careful evaluation), so the fixed point is the exact optimum even where the eigendecomposition
carries rounding.

ADMM stops when the relative duality gap at Z is at most ``tol`` (:mod:`mtlx.certificate`: norm
penalties), else when its primal and dual residuals, relative to the iterates, and the relative
change of F are; without a gap the caller then runs FISTA from Z (:func:`mtlx.fista.fista`), whose
stopping rule is the same for every engine: from an accurate point it stops after an iteration
or two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .certificate import GapCertificate
from .fista import STALL_ITERATIONS
from .problem import Problem, _Stopped
from .results import SolverState

__all__ = ["admm", "unsupported", "unsupported_penalty"]

#: Residual balancing: rho moves when one relative residual exceeds the other this many times ...
_BALANCE = 10.0
#: ... every this many iterations, for at most this many iterations (then rho stays: the
#: convergence theory of ADMM is for a fixed rho, or one that stops changing).
_ADAPT_EVERY, _ADAPT_UNTIL = 10, 2000
#: Over-relaxation (Eckstein & Bertsekas 1992; 1.5-1.8 is the range Boyd et al. recommend).
_RELAX = 1.8
#: Iterations between two duality gaps (each costs a dual norm: an SVD for the trace norm).
_GAP_EVERY = 5


#: "auto" picks ADMM when its eigendecompositions cost at most this many multiply-adds ...
_SETUP_FLOPS_FREE = 1e8
#: ... or at most this many times what building the Gram matrices cost.
_SETUP_OVER_GRAM = 2.0


def setup_affordable(data) -> bool:
    """Whether one eigendecomposition per Gram matrix (about ``5 d^3`` multiply-adds each) is cheap
    beside the rest of a fit: under 1e8 (a tenth of a second), or twice the Gram matrices' own
    cost (``rows d^2 / 2``). Wide per-task inputs (hundreds of features per task) fail it, and
    "auto" leaves them to the other engines."""
    d = float(data.n_features)
    n_gram = 1 if data.layout == "shared" else data.n_tasks
    eig = 5.0 * n_gram * d**3
    return eig <= max(_SETUP_FLOPS_FREE, _SETUP_OVER_GRAM * 0.5 * data.X.shape[0] * d * d)


def unsupported_penalty(penalty) -> str | None:
    """Why ADMM cannot run this penalty (None when it can): every part a task block whose penalty
    the prox applies whole (a shared block's gradient couples every task in the quadratic step;
    a smooth term would need its own solve)."""
    from .penalties.none import NoPenalty

    for part in penalty.components():
        if part.block != "tasks":
            return f"no shared block (this fit: {penalty!r})"
        prox_part, smooth_terms = part.split()
        if any(not isinstance(s, NoPenalty) for s in smooth_terms):
            return f"a penalty its prox applies whole, without smooth terms (this fit: {penalty!r})"
        if prox_part is None or isinstance(prox_part, NoPenalty):
            return f"a non-smooth penalty on every part (this fit: {penalty!r})"
    return None


def unsupported(problem: Problem) -> str | None:
    """Why ADMM cannot run this problem (None when it can)."""
    from .gram import GramSquaredLoss

    if not isinstance(problem.smooth, GramSquaredLoss):
        return "the squared loss in the Gram form for every task"
    if problem.alpha == 0.0:
        return "alpha > 0"
    return unsupported_penalty(problem.penalty)


@dataclass
class _Hessian:
    """``(H_t + r I)^{-1}`` per task for any r, H_t = c_t G_t (+ l2 I), from one eigendecomposition."""

    Q: np.ndarray  # (n_gram, d, d)
    lam: np.ndarray  # (T, d): c_t lam_g(t) + l2
    shared: bool

    def solve(self, rhs: np.ndarray, r: float) -> np.ndarray:
        """``(H_t + r I)^{-1} rhs_t`` for every task row of ``rhs`` (T, d)."""
        if self.shared:
            Q = self.Q[0]
            return ((rhs @ Q) / (self.lam + r)) @ Q.T
        coef = np.einsum("tjk,tj->tk", self.Q, rhs) / (self.lam + r)
        return np.einsum("tjk,tk->tj", self.Q, coef)


def _hessian(problem: Problem) -> _Hessian:
    smooth = problem.smooth
    Q, lam = smooth.eigen(centered=problem.fit_intercept)
    c = np.asarray(smooth.weights, dtype=np.float64)
    shared = smooth.data.layout == "shared"
    per_task = (c[:, None] * (lam[0][None, :] if shared else lam)) + problem.l2
    return _Hessian(Q, per_task, shared)


def _initial_rho(hessian: _Hessian, n: int) -> float:
    """rho / n at the geometric mean of the Hessian's extreme eigenvalues (the best fixed rho for a
    quadratic, Ghadimi et al. 2015), the smallest taken above the rounding of the largest."""
    lam = hessian.lam
    top = float(lam.max()) if lam.size else 0.0
    if not top > 0:
        return float(n)
    low = lam[lam > 1e-10 * top]
    return n * math.sqrt(top * float(low.min()))


def admm(problem: Problem, theta0: np.ndarray, tol: float, max_iter: int, callback=None):
    """Minimize ``problem`` from ``theta0`` by ADMM; returns ``(theta, info)`` as :func:`mtlx.fista.fista`.

    ``info["converged"]`` says that ADMM's own test passed: ``info["gap"]`` (the relative duality
    gap) at most ``tol``, or, where there is no gap (``info["gap"]`` None), the residuals and the
    change of F; the caller then certifies the point with FISTA's stopping rule.
    """
    blocks = problem.task_blocks
    n = len(blocks)
    hessian = _hessian(problem)
    rho = _initial_rho(hessian, n)
    T_local, d = problem.smooth.data.n_tasks, problem.n_features

    z = theta0.copy()  # Z (and the intercepts, at their optimum)
    grad = np.empty_like(z)
    work = np.empty_like(z)
    start = np.zeros(2 + problem.n_flags)
    start[0], start[1] = problem.f(z, grad), problem.g(z)
    problem.reduce(start)
    history = [float(start[0] + start[1])]  # F at the starting point, as every engine reports it
    if problem.intercepts is not None:
        # Centered features decouple the intercepts: one exact Newton step puts them at their optimum.
        ib = problem.intercepts
        curv = np.asarray(problem.smooth.weights, dtype=np.float64) * problem.smooth.data.n_samples / ib.scale**2
        problem.view(z, ib)[...] -= np.where(curv > 0, problem.view(grad, ib) / np.where(curv > 0, curv, 1.0), 0.0)
    sums = np.zeros(8 + problem.n_flags)
    sums[0], sums[1] = problem.f(z, grad), problem.g(z)
    problem.reduce(sums)
    F = float(sums[0] + sums[1])
    if not np.isfinite(F):
        raise problem.overflow_error()
    # The duals' warm start: at a solution rho U_i = -grad f(W) for every part (a warm start at the
    # optimum is then ADMM's fixed point, and its certificate is checked before any iteration).
    U = [-problem.view(grad, blocks[0]) / rho for _ in range(n)]
    Z = [problem.view(z, b) for b in blocks]  # views into z
    B = [np.empty((T_local, d)) for _ in range(n)]
    certificate = GapCertificate(problem)
    gap, dual_best = None, -np.inf
    if certificate.available:
        dual_best = certificate.at(z, sums[0], grad)
        gap = certificate.relative_gap(F, dual_best)
    f_at_z = float(sums[0])
    F_floor = tol * abs(F)
    noise = max(1e-12, 100.0 * float(np.finfo(problem.data_dtype).eps))
    best_F, best_measure, progress_at = F, np.inf, 0
    converged = gap is not None and gap <= tol
    stopped_by_callback = stalled = False
    rel_change = optimality = np.inf
    n_iter = 0
    if converged and problem.intercepts is not None:  # certified at the start: the intercepts' step counts
        n_iter = 1
        history.append(F)
    first = n_iter + 1
    for n_iter in range(first, first - 1 if converged else max_iter + 1):
        r = rho / n
        A = [Zi - Ui for Zi, Ui in zip(Z, U)]
        sum_A = np.add.reduce(A) if n > 1 else A[0]
        p = problem.effective_W(z)  # sum of the Z_i
        g_W = problem.view(grad, blocks[0])
        S = p - hessian.solve(g_W + r * (p - sum_A), r)
        if certificate.available and (n_iter % _GAP_EVERY == 0 or n_iter == 1):
            # The loss-side iterate's dual point: grad f(S) = -r (S - sum A) by S's equation, and f
            # quadratic, f(S) = f(p) + <grad f(p) + grad f(S), S - p> / 2. Without over-relaxation
            # rho U_i = -grad f(S) lies in alpha dg_i(Z_i) after the prox: dual feasible (s = 1).
            grad_S = -r * (S - sum_A)
            f_S = f_at_z + 0.5 * float(np.vdot(g_W + grad_S, S - p))
            dual_best = max(dual_best, certificate.dual_value(f_S, S, grad_S))
        shift = (S - sum_A) / n
        np.copyto(work, z)
        z_old = [Zi.copy() for Zi in Z]
        for i, b in enumerate(blocks):
            np.add(A[i], shift, out=B[i])
            if _RELAX != 1.0:  # over-relaxation: B <- a B + (1 - a) Z
                B[i] *= _RELAX
                B[i] += (1.0 - _RELAX) * z_old[i]
            np.add(B[i], U[i], out=problem.view(work, b))
        try:
            g_val = problem.prox(work, 1.0 / rho)
        except _Stopped:
            stopped_by_callback = True
            n_iter -= 1
            break
        np.copyto(z, work)
        sums[:] = 0.0
        for i in range(n):
            U[i] += B[i] - Z[i]
            sums[2] += float(np.vdot(B[i] - Z[i], B[i] - Z[i]))
            sums[3] += float(np.vdot(Z[i] - z_old[i], Z[i] - z_old[i]))
            sums[4] += float(np.vdot(B[i], B[i]))
            sums[5] += float(np.vdot(Z[i], Z[i]))
            sums[6] += float(np.vdot(U[i], U[i]))
        try:
            sums[0] = problem.f(z, grad)
            sums[1] = g_val
            problem.reduce(sums)
        except _Stopped:
            stopped_by_callback = True
            break
        F_new = float(sums[0] + sums[1])
        if not np.isfinite(F_new):
            raise problem.overflow_error()
        history.append(F_new)
        rel_change = abs(F - F_new) / max(abs(F_new), F_floor, np.finfo(np.float64).tiny)
        F = F_new
        size = max(math.sqrt(max(sums[4], sums[5])), np.finfo(np.float64).tiny)
        primal = math.sqrt(sums[2]) / size
        dual = math.sqrt(sums[3]) / max(math.sqrt(sums[6]), math.sqrt(sums[5]), np.finfo(np.float64).tiny)
        optimality = max(primal, dual)

        if callback is not None:
            W, b, _ = problem.user_parameters(z)
            view = SolverState(n_iter, W.T, b if b is not None else np.zeros(problem.n_tasks), F, rel_change,
                               optimality, 1.0 / rho)
            try:
                callback(view)
            except StopIteration:
                if not problem.distributed:
                    stopped_by_callback = True
                    break
                problem.stop_requested = True
            except Exception as exc:
                problem._failed(exc)
        f_at_z = float(sums[0])
        if certificate.available and (n_iter % _GAP_EVERY == 0 or n_iter == 1):
            dual_best = max(dual_best, certificate.at(z, f_at_z, grad))
            gap = certificate.relative_gap(F, dual_best)
            if gap <= tol:
                converged = True
                break
        elif not certificate.available and rel_change <= tol and optimality <= tol:
            converged = True
            break
        # Stalled (tol below what the data's precision resolves): the caller's FISTA takes over.
        if F < best_F - noise * abs(best_F):
            best_F, progress_at = F, n_iter
        measure = gap if gap is not None else optimality
        if measure < 0.9 * best_measure:
            best_measure, progress_at = measure, n_iter
        if n_iter - progress_at >= STALL_ITERATIONS and tol > 0:
            stalled = True
            break
        if n_iter % _ADAPT_EVERY == 0 and n_iter <= _ADAPT_UNTIL and primal > 0 and dual > 0:
            ratio = primal / dual
            if ratio > _BALANCE or ratio < 1.0 / _BALANCE:
                factor = min(max(math.sqrt(ratio), 1e-2), 1e2)
                rho *= factor
                for Ui in U:
                    Ui /= factor
    if problem.distributed and not stopped_by_callback:
        try:
            problem.reduce(np.zeros(problem.n_flags))
        except _Stopped:
            stopped_by_callback = True
    info = dict(objective=F, history=np.asarray(history), n_iter=n_iter, converged=converged, stalled=stalled, gap=gap,
                stopped_by_callback=stopped_by_callback, optimality=gap if gap is not None else optimality,
                rel_change=rel_change,
                n_evals=n_iter + 1, step=1.0 / rho)
    return z, info
