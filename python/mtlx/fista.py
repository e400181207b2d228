"""Accelerated proximal gradient (FISTA) with backtracking and adaptive restart.

Written once against :class:`mtlx.problem.Problem`: a flat float64 parameter vector made of
blocks, the smooth part with its gradient, the prox of the rest, and one ``reduce`` for sums
over ranks. New formulations, the shared blocks of a decomposition W = U + V, and distributed
reductions plug in through the problem, never through this loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .certificate import ConjugateCertificate, GapCertificate
from .problem import Problem, _Stopped
from .results import SolverState

__all__ = ["FistaState", "fista"]


@dataclass
class FistaState:
    """Everything FISTA carries from one iteration to the next (what a checkpoint saves).

    ``x`` is the iterate, ``y`` the extrapolated point, ``t`` the momentum counter, ``L`` the
    last trial curvature and ``L_seen`` the curvature along the last accepted step; ``F`` is
    the objective at ``x`` and ``history`` every F so far; ``grad0`` the norm of each block's
    gradient at the starting point. With the same state, the next iterations are the same, bit
    for bit, which is what makes a resumed run end where an uninterrupted one does.
    """

    x: np.ndarray
    y: np.ndarray
    t: float
    L: float
    L_seen: float
    F: float
    history: list
    n_evals: int
    n_iter: int
    grad0: np.ndarray


#: Per block, the five inner products of a trial (see _core.trial_sums).
_SUMS = 5
#: Iterations without progress (F lower by more than its noise, or the optimality measure 10%
#: below its best) after which a solve has stalled: tol is below what the data's precision
#: resolves. (A solve converging linearly gains 10% in fewer iterations unless it would need
#: over 200,000 to gain ten decades.)
STALL_ITERATIONS = 1000


class _NoCertificate:
    available = False


_NO_CERTIFICATE = _NoCertificate()


def _certificate(problem: Problem, quadratic: bool):
    """The problem's duality gap where it has one: least squares' from f and its gradient, other
    per-entry losses' from their conjugates (:mod:`mtlx.certificate`)."""
    if quadratic:
        return GapCertificate(problem)
    conjugates = ConjugateCertificate(problem)
    return conjugates if conjugates.available else _NO_CERTIFICATE


def _conjugates_due(n_iter: int) -> bool:
    """Whether iteration ``n_iter`` (its steps short) asks for the conjugates' gap, which costs
    about an iteration: every iteration up to 32, then every 2, 4, ... (a sixteenth of the count,
    so at most ~6% more iterations and passes). A function of the count alone, the same on every
    rank and in a resumed run."""
    return n_iter % (1 << max(0, n_iter.bit_length() - 5)) == 0


def _decrease_to_come(history: list, noise: float) -> float:
    """How much further F will fall, extrapolated from its last decreases, assuming they shrink
    geometrically (FISTA with restarts converges linearly near a minimum): with B the decrease over
    the last window of iterations and A over the window before, ``B r / (1 - r)``, ``r = B / A``.

    Short steps and a small change of F alone passed 2.4e-4 above the optimum (least squares with a
    shared block and L1 on ragged tasks: each step small, but the next ones hardly smaller). A
    decrease below F's rounding noise counts as none; a decrease that is not shrinking, as
    unbounded. The windows are a quarter of the iterations each (at least two).
    """
    n = len(history) - 1
    window = max(2, n // 4)
    if n < 2 * window:
        return math.inf
    last, middle, first = history[n], history[n - window], history[n - 2 * window]
    recent, before = middle - last, first - middle
    if recent <= noise * abs(last):
        return 0.0
    if before <= recent:
        return math.inf
    ratio = recent / before
    return recent * ratio / (1.0 - ratio)


def _block_sums(problem: Problem, x_new, y, x, grad, move, out: np.ndarray) -> None:
    """Per block ``(||x+ - y||^2, <g, x+ - y>, ||x+||^2, ||y||^2, <x+ - y, x+ - x>)`` into ``out``
    (5 per block); writes ``move = x+ - x``. A block held by every rank counts on rank 0 only."""
    ops = problem.ops
    if len(problem.blocks) == 1 and problem.blocks[0].counted:  # the common case, without slicing
        out[:] = ops.trial_sums(x_new, y, x, grad, move)
        return
    for k, b in enumerate(problem.blocks):
        s = b.slice
        sums = ops.trial_sums(x_new[s], y[s], x[s], grad[s], move[s])
        out[_SUMS * k : _SUMS * (k + 1)] = sums if b.counted else 0.0


def _extrapolate_gradient(problem: Problem, g_new, g_x, move, beta: float, g_y) -> float:
    """``g_y = (1 + beta) g_new - beta g_x`` and this rank's share of ``<g_new + g_y, move>`` (a block held
    by every rank counts on rank 0 only)."""
    ops = problem.ops
    if len(problem.blocks) == 1 and problem.blocks[0].counted:  # the common case, without slicing
        return ops.extrapolate_gradient(g_new, g_x, move, beta, g_y)
    total = 0.0
    for b in problem.blocks:
        s = b.slice
        part = ops.extrapolate_gradient(g_new[s], g_x[s], move[s], beta, g_y[s])
        total += part if b.counted else 0.0
    return total


def fista(problem: Problem, theta0: np.ndarray, tol: float, max_iter: int, callback=None,
          state: FistaState | None = None, on_iteration=None):
    """Minimize ``problem`` from ``theta0`` (or from a saved ``state``).

    ``on_iteration(state)`` runs after every iteration that does not stop the loop (the
    checkpoint hook). Returns ``(theta, info)``. See :func:`mtlx.solve` for the method.

    Stopping rule: every block's relative proximal-gradient step
    ``||x+_B - y_B|| / max(s_B, tol max_B' s_B')``, ``s_B = max(||x+_B||, ||y_B||, ||grad_B f(x0)|| / L)``,
    and the relative change of F, ``|dF| / max(|F|, tol |F(x0)|)``, are at most ``tol``. Per
    block, so that a block with a small share of the parameters (the intercepts) cannot hide
    behind the others, down to a floor of tol times the largest block (below it a block's steps
    are rounding noise); the floor ``tol |F(x0)|`` makes an optimum at F = 0 (an exact fit) an
    ordinary optimum. Where the problem has a duality gap (per-entry losses with a norm penalty on
    float64 data: :mod:`mtlx.certificate`), the relative gap must also be at most
    ``tol`` (``info["gap"]``); where it has none, the decrease of F still to come, extrapolated
    from the last ones (:func:`_decrease_to_come`), must be at most ``tol |F|``.
    A solve that makes no progress for ``STALL_ITERATIONS`` iterations (F not
    lower by more than its rounding noise, the optimality measure not 10% lower) has stalled at the
    precision of the data and stops (``info["stalled"]``) rather than running to ``max_iter``
    (except with ``tol = 0``, which asks for ``max_iter`` iterations in full).
    """
    # f carries rounding errors of a few eps relative of the data's dtype; differences below
    # this are noise and must neither fail the line search nor set L.
    noise = max(1e-12, 100.0 * float(np.finfo(problem.data_dtype).eps))
    n_flags = problem.n_flags
    n_blocks = len(problem.blocks)
    quadratic = problem.quadratic()
    # Iterates, gradients and steps live where problem.ops keeps them (host or GPU memory): every
    # operation on them goes through ops, and only scalars come back.
    ops = problem.ops
    fresh = state is None
    if fresh:
        x = ops.asarray(theta0)
        grad = ops.empty_like(x)
        grad0 = grad  # the gradient at x0, which is also y0
        start = np.zeros(2 + n_blocks + n_flags)
        start[0] = problem.f(x, grad0)
        start[1] = problem.g(x)
        for k, b in enumerate(problem.blocks):
            start[2 + k] = ops.squared_norm(grad0[b.slice]) if b.counted else 0.0
        problem.reduce(start)
        F = float(start[0] + start[1])
        if not np.isfinite(F):
            raise problem.overflow_error()
        state = FistaState(x=x, y=ops.copy(x), t=1.0, L=problem.initial_curvature, L_seen=0.0, F=F, history=[F],
                           n_evals=1, n_iter=0,
                           grad0=np.sqrt(start[2 : 2 + n_blocks]).tolist())
    else:
        grad = ops.empty_like(ops.asarray(state.x))
    x, y = ops.asarray(state.x), ops.asarray(state.y)
    # L: the first trial from the problem's own curvature scale; backtracking jumps to the measured
    # curvature at once.
    t, L, L_seen, F, history, n_evals = state.t, state.L, state.L_seen, state.F, list(state.history), state.n_evals
    F_floor = tol * abs(history[0])
    x_new = ops.empty_like(x)
    move = ops.empty_like(x)
    # Under MPI, a penalty with statistics (l21, trace, mean, ...) would need them at y before
    # each prox: a second Allreduce per iteration. Instead every trial also computes the two
    # points y can be next (x+ on a restart, x+ + beta (x+ - x) otherwise) with their gradients,
    # and their step-free statistics pieces travel in the trial's Allreduce: one per iteration.
    speculative = problem.speculative
    n_pieces = problem.pieces_size() if speculative else 0
    if quadratic or speculative:
        grad_new = ops.empty_like(x)  # grad f at the trial point, from the trial's own pass
    if fresh:
        f_y = start[0]  # grad holds grad f(x0), and y0 = x0
    elif quadratic or speculative:
        f_y = problem.f(y, grad)
        n_evals += 1
    if quadratic:
        # f quadratic (squared losses, quadratic penalty terms): its gradient is affine, so each
        # trial evaluates f and grad f at x+ in one pass, and grad f at the next extrapolated
        # point is a linear combination: one pass over the data per iteration instead of two.
        grad_x = ops.copy(grad) if fresh else ops.empty_like(x)
        if not fresh:
            problem.f(x, grad_x)
            n_evals += 1
    if speculative:
        y_next, grad_next = ops.empty_like(x), ops.empty_like(x)
        start_pieces = np.zeros(n_pieces + n_flags)
        problem.local_pieces(y, grad, start_pieces[:n_pieces])
        pieces_y = problem.reduce(start_pieces)[:n_pieces].copy()
    # Global sums of one line-search trial, one Allreduce: f(x+), alpha g(x+), f(y), 5 inner
    # products per block, [the statistics pieces at the two next points], then the flags.
    head = 3 + _SUMS * n_blocks
    sums = np.zeros(head + 2 * n_pieces + n_flags)
    pieces_restart, pieces_momentum = slice(head, head + n_pieces), slice(head + n_pieces, head + 2 * n_pieces)

    certificate = _certificate(problem, quadratic)
    gap = None
    converged = stalled = False
    stopped_by_callback = False
    rel_change = optimality = np.inf
    n_iter = state.n_iter
    best_F, best_optimality, progress_at = F, np.inf, state.n_iter
    for n_iter in range(state.n_iter + 1, max_iter + 1):
        try:
            if not (quadratic or speculative):
                f_y = problem.f(y, grad)
                n_evals += 1
            # Try a larger step than last time, but not beyond the curvature just observed; when the
            # curvature seen is far below the estimate (the first steps of a badly scaled problem:
            # X of scale 1e-20 gave curvatures of 1e-40 against a first L of 1), come down by a
            # decade per iteration instead of 2%.
            # (A curvature below the rounding noise of f is not measured: L_seen = 0 keeps the 2%.)
            L = max(0.1 * L if 0 < L_seen < 0.1 * L else 0.98 * L, L_seen, np.finfo(np.float64).tiny)
            for _ in range(200):
                ops.gradient_step(y, grad, 1.0 / L, x_new)
                if speculative:
                    g_new = problem.prox_with_pieces(x_new, 1.0 / L, pieces_y)
                else:
                    g_new = problem.prox(x_new, 1.0 / L)
                if quadratic or speculative:
                    f_new = f_new_local = problem.f(x_new, grad_new)
                else:
                    f_new = problem.f(x_new)
                n_evals += 1
                sums[:3] = (f_new, g_new, f_y)
                _block_sums(problem, x_new, y, x, grad, move, sums[3:head])
                if speculative:
                    beta_next = (t - 1.0) / (0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t)))
                    ops.extrapolate(x_new, move, beta_next, y_next)
                    if quadratic:
                        f_next = f_new_local + 0.5 * beta_next * _extrapolate_gradient(
                            problem, grad_new, grad_x, move, beta_next, grad_next)
                    else:
                        f_next = problem.f(y_next, grad_next)
                        n_evals += 1
                    problem.local_pieces(x_new, grad_new, sums[pieces_restart])
                    problem.local_pieces(y_next, grad_next, sums[pieces_momentum])
                problem.reduce(sums)
                f_new, g_new, f_y_all = sums[:3].tolist()
                per_block = sums[3:head].tolist()
                dd, lin, xx, yy, dot_move = (sum(per_block[j::_SUMS]) for j in range(_SUMS))
                excess = f_new - f_y_all - lin  # f(x+) minus its linear model at y
                slack = noise * (abs(f_new) + abs(f_y_all))
                if np.isfinite(f_new) and (excess <= 0.5 * L * dd + slack or dd == 0.0):
                    break
                # Curvature along this step; jump straight past it instead of doubling blindly.
                L = 1.1 * (2.0 * excess / dd) if np.isfinite(f_new) and dd > 0 else 10.0 * L
                if not np.isfinite(L):
                    break
            else:
                raise problem.overflow_error()
            if not np.isfinite(L):
                raise problem.overflow_error()
        except _Stopped:
            stopped_by_callback = True
            n_iter -= 1
            break
        if excess > slack and dd > 0:
            L_seen = 2.0 * excess / dd
        # else: the curvature along this step is below F's rounding noise; keep the last one measured
        # (forgetting it let L fall 2% per iteration near the optimum until the steps overshot).

        F_new = f_new + g_new
        history.append(F_new)
        rel_change = abs(F - F_new) / max(abs(F_new), F_floor, np.finfo(np.float64).tiny)
        # ||x+_B - y_B|| / ||x+_B||: the proximal-gradient step relative to the block, free of the
        # scales of the data and of the loss. Near an optimum at zero the block has no size to
        # compare with; ||G_B|| <= tol ||grad_B f(x0)|| then says its gradient mapping fell by tol.
        # A block far smaller than the whole (tol times its scale) is measured against that floor
        # instead: its steps are then rounding noise of the problem, not progress to wait for.
        # (Plain floats: a handful of blocks, and numpy's per-call cost would double the loop's.)
        sizes = [max(math.sqrt(max(per_block[_SUMS * k + 2], per_block[_SUMS * k + 3])), state.grad0[k] / L)
                 for k in range(n_blocks)]
        floor = tol * max(sizes)
        optimality = 0.0
        for k in range(n_blocks):
            step, scale = math.sqrt(per_block[_SUMS * k]), max(sizes[k], floor)
            optimality = max(optimality, step / scale if scale > 0 else (0.0 if step == 0 else math.inf))

        # Momentum, reset when it points against the last step or F went up (O'Donoghue-Candes).
        if dot_move < 0.0 or F_new > F + noise * abs(F):
            t = 1.0
            ops.copyto(y, x_new)
            if quadratic or speculative:
                ops.copyto(grad, grad_new)
                f_y = f_new_local
            if speculative:
                pieces_y[:] = sums[pieces_restart]
        elif speculative:
            t = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            y, y_next = y_next, y
            grad, grad_next = grad_next, grad
            f_y = f_next
            pieces_y[:] = sums[pieces_momentum]
        else:
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_next
            ops.extrapolate(x_new, move, beta, y)
            t = t_next
            if quadratic:
                # grad f(y) = (1 + beta) grad f(x+) - beta grad f(x), and, f being quadratic, the
                # trapezoid rule is exact: f(y) = f(x+) + <grad f(x+) + grad f(y), y - x+> / 2.
                f_y = f_new_local + 0.5 * beta * _extrapolate_gradient(problem, grad_new, grad_x, move, beta, grad)
        if quadratic:
            grad_x, grad_new = grad_new, grad_x
        x, x_new = x_new, x
        F = F_new

        if callback is not None:
            W, b, _ = problem.user_parameters(x)
            state_view = SolverState(n_iter, W.T, b if b is not None else np.zeros(problem.n_tasks),
                                     F, rel_change, optimality, 1.0 / L)
            try:
                callback(state_view)
            except StopIteration:
                if not problem.distributed:
                    stopped_by_callback = True
                    break
                problem.stop_requested = True  # every rank stops at the next collective
            except Exception as exc:
                problem._failed(exc)
        if rel_change <= tol and optimality <= tol:
            # Short steps may also mean slow progress (a decomposition on collinear features passed
            # the test above 1e-5 short of the optimum; squared hinge + linf1 on collinear features
            # 1e-3 short): where the problem has a duality gap, it decides; where it has none, the
            # decrease of F still to come, extrapolated from the last ones, must be within tol too.
            # (rare: only once the steps are short; the certificate's algebra runs on the host)
            # (this iterate's dual alone, not the best so far: a resumed run then stops where an
            # uninterrupted one does)
            if not certificate.available:
                if _decrease_to_come(history, noise) <= tol * max(abs(F), F_floor):
                    converged = True
                    break
            elif quadratic or _conjugates_due(n_iter):
                dual = certificate.at(ops.to_host(x), f_new_local, ops.to_host(grad_x)) if quadratic else \
                    certificate.dual_at(ops.to_host(x))
                gap = certificate.relative_gap(F, dual)
                if gap <= tol:
                    converged = True
                    break
        if F_new < best_F - noise * abs(best_F):
            best_F, progress_at = F_new, n_iter
        if optimality < 0.9 * best_optimality:
            best_optimality, progress_at = optimality, n_iter
        if n_iter - progress_at >= STALL_ITERATIONS and tol > 0:  # tol = 0: run max_iter in full
            stalled = True
            break
        if on_iteration is not None:
            on_iteration(FistaState(x=ops.to_host(x), y=ops.to_host(y), t=t, L=L, L_seen=L_seen, F=F, history=history,
                                    n_evals=n_evals, n_iter=n_iter, grad0=state.grad0))

    if problem.distributed and not stopped_by_callback:
        try:  # the last callback's failure or stop must not stay on its rank alone
            problem.reduce(np.zeros(n_flags))
        except _Stopped:
            stopped_by_callback = True
    info = dict(objective=F, history=np.asarray(history), n_iter=n_iter, converged=converged, stalled=stalled, gap=gap,
                stopped_by_callback=stopped_by_callback, optimality=optimality, rel_change=rel_change,
                n_evals=n_evals, step=1.0 / L)
    return ops.to_host(x), info
