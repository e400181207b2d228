"""Time to the optimum of MALSAR's formulations on the school data: mtlx.solve against plain numpy.

What it measures
----------------
The raw school data (139 tasks, 15,362 rows, 28 features, column 27 the constant 1: MALSAR has
no separate intercept, so ``fit_intercept=False``) under six of MALSAR's least-squares
formulations, each with MALSAR's own scale of the loss, ``c sum_t 0.5 ||X_t w_t - y_t||^2``
(``task_weights = c``):

==============  =================================================  ===  ====================================
formulation     mtlx penalty (alpha = 1)                            c    MALSAR
==============  =================================================  ===  ====================================
SRMTL           Graph(I - 11^T/T, 100) + L1(100)                    1    Least_SRMTL(R, 100, 100)
rMTFL           Superpose(L21(500), L21Columns(500))                2    Least_rMTFL(500, 500)
RMTL            Superpose(Trace(1000), L21Columns(500))             2    Least_RMTL(1000, 500)
CMTL            Clustered(k=3, eta=0.1, w=100)                      1    Least_CMTL(100, 10, k=3)
Dirty           Superpose(LInf1(350), L1(10))                       2    Least_Dirty(350, 10)
SparseTrace     Superpose(L1(10), Trace(100))                       2    Least_SparseTrace (see below)
==============  =================================================  ===  ====================================

c is read off MALSAR's code, not its headers: Least_SRMTL and Least_CMTL evaluate
``0.5 * norm(Y - X' W)^2``; Least_rMTFL and Least_Dirty ``norm(X (P + Q) - y)^2``; Least_RMTL and
Least_SparseTrace say 0.5 in their headers but step along ``2 X (X' W - Y)`` and report the
unhalved norm (``line_search_cond_*``). ``--unhalved`` sets c = 2 everywhere. Dirty's rhos are
example_Dirty.m's. Least_SparseTrace constrains ``||Q||_* <= tau`` instead of penalizing it: the
penalized problem here is the same as MALSAR's at ``tau = ||V*||_*`` (reported as
``sparse_trace_tau``); rho = (10, 100) is this benchmark's choice, where both parts are nonzero.

For each formulation:

* **F\\***, the reference optimum: the smallest objective of (a) a plain numpy FISTA (backtracking,
  gradient restart, per-task Gram matrices, the penalties of ``reference_prox.py``) run until F
  changes by less than ``--ref-rtol`` over 100 iterations or for ``--ref-time`` seconds; (b)
  mtlx.solve at ``tol=1e-13``, capped at ``--ref-time`` seconds; (c) for the formulations
  without a graph term, a plain numpy ADMM (the quadratic solved exactly per task, so the
  ill-conditioned raw features do not slow it: it is what pins down F\\* of Dirty and
  SparseTrace, which proximal gradient approaches only sublinearly); (d) with cvxpy and
  Clarabel installed, an interior-point solve of SRMTL, rMTFL and Dirty (QP/SOCP; the trace
  norm and the clustered penalty are SDPs that take minutes there). Every objective is
  recomputed in the direct form (a pass over the rows, each block's penalty from numpy) from the
  solvers' blocks. ``ref_rel_diff`` is the relative difference of (a) and (b), ``*_ref_rel_gap``
  each reference's distance to F\\*. For penalties that are norms (rMTFL, RMTL, Dirty,
  SparseTrace) ``dual_rel_gap`` bounds F\\* from below: ``(F* - D) / F*`` with D the dual
  objective at the scaled residual of a reference (a certificate: the true optimum lies within).
* **mtlx**: mtlx.solve from zero (``tol=0``; the engine ``solver="auto"`` picks, recorded as
  ``mtlx_solver``: ADMM for all but SRMTL, whose task graph is a smooth term and goes to FISTA),
  stopped by its callback as soon as its objective
  is ``<= F* (1 + --target)``; the result's blocks are then checked in the direct form
  (``mtlx_rel_acc``). Capped at ``--max-time`` seconds. Iterations to the target are also read
  from the history of the reference run (b) (``mtlx_ref_iter_to_target``), which shows how far
  a capped run was.
* **numpy**: the numpy FISTA from zero, stopped at the same test (time includes forming the
  Gram matrices), capped at ``--max-time``; checked in the direct form (``numpy_rel_acc``).
  ``admm``: the time at which the ADMM reference run (c) first reached the target (its F is
  checked every 10 iterations, which the time includes).

Each timed run is repeated ``--repeats`` times (not when it hit the cap) and the fastest counts
(all times are in the JSON). The ``stall`` column is the share of the timed runs' wall time some
task waited for a CPU (Linux PSI, as in bench_grad.py): well above 0, other jobs competed for
the cores and the times are inflated.

Threads: mtlx and numpy's BLAS both use ``--threads``. JSON to bench/results/bench_formulations.json.

How to run
----------
::

    python bench/bench_formulations.py               # all six, 1 thread (a few minutes)
    python bench/bench_formulations.py --threads 2
    python bench/bench_formulations.py --quick       # SRMTL and rMTFL, looser settings
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import reference_prox as rp
from bench_grad import blas_limit, cpu_stall_s, machine_info

import mtlx
from mtlx import penalties as P
from mtlx.datasets import load_school

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_formulations.json"
#: mtlx's time target per formulation (s), and the window (iterations) of the reference's stopping test.
TARGET_S = 2.0
WINDOW = 100
#: Relative difference two evaluations of the same F (Gram form, direct form) may show by rounding alone.
ROUNDING = 1e-12


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--target", type=float, default=1e-8, help="relative accuracy (F - F*) / F* to reach")
    p.add_argument("--ref-rtol", type=float, default=1e-13, help="numpy reference: stop when F changes less")
    p.add_argument("--ref-time", type=float, default=20.0, help="cap of each reference run (s)")
    p.add_argument("--max-time", type=float, default=10.0, help="cap of each timed run (s)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each solver (the fastest counts)")
    p.add_argument("--admm-rho", type=float, default=10.0, help="penalty parameter of the ADMM reference")
    p.add_argument("--no-ipm", action="store_true", help="skip the interior-point reference (cvxpy)")
    p.add_argument("--unhalved", action="store_true", help="c = 2 (MALSAR's unhalved loss) for every formulation")
    p.add_argument("--only", default=None, help="comma-separated formulation names")
    p.add_argument("--quick", action="store_true", help="SRMTL and rMTFL, ref-rtol 1e-11, 5 s caps, 1 repeat")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if args.quick:
        args.ref_rtol, args.ref_time, args.max_time, args.repeats = max(args.ref_rtol, 1e-11), 5.0, 5.0, 1
    return args


# ---------------------------------------------------------------------- formulations
@dataclass
class Formulation:
    """One MALSAR formulation: the mtlx penalty and its independent numpy twin.

    ``blocks`` holds (value, prox) per parameter block (W = sum of the blocks), ``prox(V, s)``
    being the prox at step s of that block's weighted penalty; ``graph`` is a smooth term on W;
    ``gauge`` the gauge of the dual ball when the penalty is a norm (None otherwise); ``cvx``
    builds the penalty in cvxpy from the block variables, with its constraints (None: no
    interior-point reference).
    """

    name: str
    malsar: str
    malsar_s: float | None  # MALSAR's time from the issue (Octave)
    c: float
    penalty: object
    blocks: list
    graph: rp.Graph | None = None
    gauge: object = None
    cvx: object = None


def formulations(T: int, unhalved: bool) -> list:
    """The six formulations, with MALSAR's rhos (issue) and loss scale c (MALSAR's code)."""
    R = np.eye(T) - np.ones((T, T)) / T

    def scale(c):
        return 2.0 if unhalved else c

    def weighted(value, prox, w):
        return (lambda W: w * value(W), lambda V, s: prox(V, w * s))

    l1 = lambda w: weighted(rp.l1_value, rp.l1_prox, w)  # noqa: E731
    l21 = lambda w: weighted(rp.l21_value, rp.l21_prox, w)  # noqa: E731
    l21c = lambda w: weighted(rp.l21_columns_value, rp.l21_columns_prox, w)  # noqa: E731
    trace = lambda w: weighted(rp.trace_value, rp.trace_prox, w)  # noqa: E731
    linf1 = lambda w: weighted(rp.linf1_value, rp.linf1_prox, w)  # noqa: E731
    k, eta, w = 3, 10 / 100, 100.0
    clustered = (lambda W: rp.clustered_value(W, k, eta, w), lambda V, s: rp.clustered_prox(V, s, k, eta, w))

    # gauges of the dual balls {Z: dual norm(Z) <= w}; a superposition's dual ball is their intersection
    rows2 = lambda Z: np.sqrt(np.sum(Z * Z, axis=1)).max()  # noqa: E731
    cols2 = lambda Z: np.sqrt(np.sum(Z * Z, axis=0)).max()  # noqa: E731
    spec = lambda Z: np.linalg.norm(Z, 2)  # noqa: E731
    rows1 = lambda Z: np.abs(Z).sum(axis=1).max()  # noqa: E731
    amax = lambda Z: np.abs(Z).max()  # noqa: E731
    return [
        Formulation("SRMTL", "Least_SRMTL(R = I - 11'/T, rho1 = 100, rho2 = 100)", None, scale(1.0),
                    P.Graph(R, 100.0) + P.L1(100.0), [l1(100.0)], graph=rp.Graph(R, 100.0),
                    cvx=lambda cp, U, V: srmtl_cvx(cp, U, T)),
        Formulation("rMTFL", "Least_rMTFL(rho1 = 500, rho2 = 500)", 9.0, scale(2.0),
                    P.Superpose(P.L21(500.0), P.L21Columns(500.0)), [l21(500.0), l21c(500.0)],
                    gauge=lambda Z: max(rows2(Z) / 500.0, cols2(Z) / 500.0),
                    cvx=lambda cp, U, V: (500.0 * cp.sum(cp.norm(U, 2, axis=1)) + 500.0 * cp.sum(cp.norm(V, 2, axis=0)),
                                          [])),
        Formulation("RMTL", "Least_RMTL(rho1 = 1000, rho2 = 500)", None, scale(2.0),
                    P.Superpose(P.Trace(1000.0), P.L21Columns(500.0)), [trace(1000.0), l21c(500.0)],
                    gauge=lambda Z: max(spec(Z) / 1000.0, cols2(Z) / 500.0)),
        Formulation("CMTL", "Least_CMTL(rho1 = 100, rho2 = 10, k = 3)", 774.0, scale(1.0),
                    P.Clustered(k=k, eta=eta, w=w), [clustered]),
        Formulation("Dirty", "Least_Dirty(rho1 = 350, rho2 = 10)", None, scale(2.0),
                    P.Superpose(P.LInf1(350.0), P.L1(10.0)), [linf1(350.0), l1(10.0)],
                    gauge=lambda Z: max(rows1(Z) / 350.0, amax(Z) / 10.0),
                    cvx=lambda cp, U, V: (350.0 * cp.sum(cp.max(cp.abs(U), axis=1)) + 10.0 * cp.sum(cp.abs(V)), [])),
        Formulation("SparseTrace", "Least_SparseTrace (penalized: rho1 = 10 on l1, rho2 = 100 on trace)", None,
                    scale(2.0), P.Superpose(P.L1(10.0), P.Trace(100.0)), [l1(10.0), trace(100.0)],
                    gauge=lambda Z: max(amax(Z) / 10.0, spec(Z) / 100.0)),
    ]


def srmtl_cvx(cp, U, T: int):
    """SRMTL's penalty in cvxpy. R = I - 11'/T is symmetric and idempotent, so ||W R||_F^2 is the
    squared distance of the columns to their mean m (a variable: ``W R`` itself is a dense map)."""
    m = cp.Variable((U.shape[0], 1))
    expr = 100.0 * cp.sum_squares(U - m @ np.ones((1, T))) + 100.0 * cp.sum(cp.abs(U))
    return expr, [m == cp.sum(U, axis=1, keepdims=True) / T]


# ---------------------------------------------------------------------- the problem in numpy
class Quadratic:
    """The smooth part ``c sum_t 0.5 ||X_t w_t - y_t||^2 (+ graph)`` from per-task Gram matrices."""

    def __init__(self, tasks, c: float, graph: rp.Graph | None):
        self.G = np.stack([X.T @ X for X, _ in tasks])
        self.q = np.stack([X.T @ y for X, y in tasks], axis=1)
        self.yy = sum(float(y @ y) for _, y in tasks)
        self.c, self.graph = c, graph

    def gram_times(self, W: np.ndarray) -> np.ndarray:
        """Column t of the result: ``G_t w_t``."""
        return np.einsum("tjk,kt->jt", self.G, W)

    def value_grad(self, W: np.ndarray) -> tuple[float, np.ndarray]:
        GW = self.gram_times(W)
        f = self.c * (0.5 * float(np.sum(W * GW)) - float(np.sum(self.q * W)) + 0.5 * self.yy)
        g = self.c * (GW - self.q)
        if self.graph is not None:
            f += self.graph.value(W)
            g += self.graph.gradient(W)
        return f, g

    def curvature(self, D: np.ndarray) -> float:
        """``D' H D``, H the Hessian: f(W + D) = f(W) + <g, D> + curvature(D) / 2 exactly."""
        v = self.c * float(np.sum(D * self.gram_times(D)))
        return v + (self.graph.curvature(D) if self.graph is not None else 0.0)

    def dual_bound(self, W: np.ndarray, gauge) -> float:
        """A lower bound on F* when the penalty is a norm h (support function of C) and no graph.

        ``F* = max_theta -<theta, y> - ||theta||^2 / (2 c)`` over ``-X' theta in C`` (per task
        blocks). theta = s c r, r = X W - y, is feasible for ``s <= 1 / gauge(c X' r)``; the best
        such s is ``-<r, y> / ||r||^2`` clipped to that range.
        """
        GW = self.gram_times(W)
        r2 = float(np.sum(W * GW)) - 2.0 * float(np.sum(self.q * W)) + self.yy  # ||r||^2
        ry = float(np.sum(self.q * W)) - self.yy  # <r, y>
        s = min(max(-ry / r2, 0.0), 1.0 / gauge(self.c * (GW - self.q)))
        return -s * self.c * ry - 0.5 * s * s * self.c * r2


def objective(tasks, form: Formulation, parts) -> float:
    """F in the direct form: a pass over every task's rows, each block's penalty in numpy."""
    W = sum(parts)
    loss = sum(0.5 * form.c * float(np.sum((X @ W[:, t] - y) ** 2)) for t, (X, y) in enumerate(tasks))
    pen = sum(value(B) for (value, _), B in zip(form.blocks, parts))
    return loss + pen + (form.graph.value(W) if form.graph is not None else 0.0)


def numpy_fista(tasks, form: Formulation, stop, max_time: float):
    """Accelerated proximal gradient on the blocks (W = their sum), from zero.

    Backtracking: each iteration first tries 1.25 times the last step, then halves it until
    ``curvature(dW) <= L sum ||dB||^2`` (exact for a quadratic); gradient restart (O'Donoghue &
    Candes 2015). ``stop(F, history)`` ends the run. Returns the blocks, the history of F (from
    the quadratic's expansion) and the time; the time includes forming the Gram matrices.
    """
    start = time.perf_counter()
    quad = Quadratic(tasks, form.c, form.graph)
    d, T = quad.q.shape
    X = [np.zeros((d, T)) for _ in form.blocks]
    Y = [B.copy() for B in X]
    L = form.c * max(np.linalg.eigvalsh(quad.G)[:, -1]) * len(form.blocks)
    theta, history = 1.0, []
    while time.perf_counter() - start < max_time:
        fy, g = quad.value_grad(sum(Y))
        L /= 1.25
        while True:
            Xn = [prox(B - g / L, 1.0 / L) for (_, prox), B in zip(form.blocks, Y)]
            D = [a - b for a, b in zip(Xn, Y)]
            DW, dd = sum(D), sum(float(np.sum(x * x)) for x in D)
            curv = quad.curvature(DW)
            if curv <= L * dd or dd == 0.0:
                break
            L *= 2.0
        F = fy + float(np.sum(g * DW)) + 0.5 * curv + sum(value(B) for (value, _), B in zip(form.blocks, Xn))
        history.append(F)
        if sum(float(np.sum((y - xn) * (xn - x))) for y, xn, x in zip(Y, Xn, X)) > 0:  # restart
            theta, Y = 1.0, [B.copy() for B in Xn]
        else:
            theta_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * theta * theta))
            Y = [xn + (theta - 1.0) / theta_next * (xn - x) for xn, x in zip(Xn, X)]
            theta = theta_next
        X = Xn
        if stop(F, history):
            break
    return X, history, time.perf_counter() - start


def numpy_admm(tasks, form: Formulation, rho: float, rtol: float, max_time: float):
    """ADMM on ``f(B_1 + ... + B_n) + sum_i g_i(Z_i)`` subject to ``B_i = Z_i`` (scaled form), from zero.

    The B-update is exact: with ``A_i = Z_i - U_i`` and S the sum of the blocks, ``B_i = A_i +
    (S - sum A) / n`` where S solves ``(c G_t + rho / n I) s_t = c q_t + rho / n (sum A)_t`` per task
    (inverses formed once); the Z-update is each block's prox at step 1 / rho. Unlike proximal
    gradient, ill-conditioned ``G_t`` do not slow it (the quadratic is solved, not stepped along).
    F is evaluated at Z (the prox outputs, so exact zeros stay zero) every 10 iterations; the run
    stops when the best F improved by at most ``rtol`` (relative) over the last 1,000 iterations
    or after ``max_time``. Formulations without a graph term only. Returns the best blocks and
    the (time, best F) trace.
    """
    start = time.perf_counter()
    quad = Quadratic(tasks, form.c, form.graph)
    d, T = quad.q.shape
    n = len(form.blocks)
    inverse = np.linalg.inv(form.c * quad.G + (rho / n) * np.eye(d))
    Z = [np.zeros((d, T)) for _ in range(n)]
    U = [np.zeros((d, T)) for _ in range(n)]
    best, best_F, trace, k = Z, np.inf, [], 0
    while time.perf_counter() - start < max_time:
        k += 1
        A = [z - u for z, u in zip(Z, U)]
        SA = sum(A)
        S = np.einsum("tjk,kt->jt", inverse, form.c * quad.q + (rho / n) * SA)
        B = [a + (S - SA) / n for a in A]
        Z = [prox(b + u, 1.0 / rho) for (_, prox), b, u in zip(form.blocks, B, U)]
        U = [u + b - z for u, b, z in zip(U, B, Z)]
        if k % 10:
            continue
        F = quad.value_grad(sum(Z))[0] + sum(value(z) for (value, _), z in zip(form.blocks, Z))
        if F < best_F:
            best, best_F = Z, F
        trace.append((time.perf_counter() - start, best_F))
        if len(trace) > 100 and trace[-101][1] - best_F <= rtol * abs(best_F):
            break
    return best, trace


# ---------------------------------------------------------------------- mtlx
def mtlx_run(data, form: Formulation, threads: int, tol: float, max_iter: int, max_time: float, threshold=None):
    """mtlx.solve from zero, stopped by its callback at ``objective <= threshold`` or after ``max_time``."""

    def stop(state):
        if (threshold is not None and state.objective <= threshold) or time.perf_counter() - start > max_time:
            raise StopIteration

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        res = mtlx.solve(data, loss="squared", penalty=form.penalty, alpha=1.0, l2=0.0, fit_intercept=False,
                         task_weights=np.full(data.n_tasks, form.c), tol=tol, max_iter=max_iter, callback=stop,
                         n_threads=threads)
    return res, time.perf_counter() - start


# ---------------------------------------------------------------------- interior point (optional)
def ipm_reference(tasks, form: Formulation):
    """The blocks of an interior-point solve (cvxpy + Clarabel), or None where unavailable.

    The loss is written exactly from each task's thin QR, ``||X w - y||^2 = ||R w - Q'y||^2 +
    ||y||^2 - ||Q'y||^2``, so the problem holds 139 x 28 residuals instead of 15,362.
    """
    if form.cvx is None:
        return None
    try:
        import cvxpy as cp
    except ImportError:
        return None
    if "CLARABEL" not in cp.installed_solvers():
        return None
    d, T = tasks[0][0].shape[1], len(tasks)
    U = cp.Variable((d, T))
    V = cp.Variable((d, T)) if len(form.blocks) == 2 else None
    W = U if V is None else U + V
    residuals, const = [], 0.0
    for t, (X, y) in enumerate(tasks):
        Q, R = np.linalg.qr(X)
        z = Q.T @ y
        residuals.append(R @ W[:, t] - z)
        const += float(y @ y - z @ z)
    loss = 0.5 * form.c * (cp.sum_squares(cp.hstack(residuals)) + const)
    penalty, constraints = form.cvx(cp, U, V)
    problem = cp.Problem(cp.Minimize(loss + penalty), constraints)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal_inaccurate" at these tolerances still gives the best point
        problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=200)
    if U.value is None:
        return None
    return [U.value] if V is None else [U.value, V.value]


# ---------------------------------------------------------------------- one formulation
def first_reaching(history, threshold) -> int | None:
    """1-based index of the first entry ``<= threshold`` (None when none is)."""
    hit = np.flatnonzero(np.asarray(history) <= threshold)
    return int(hit[0]) + 1 if hit.size else None


def run_formulation(form: Formulation, tasks, data, args) -> dict:
    """References, then the two timed runs; every accuracy in the direct form."""
    def converged(F, history):
        return len(history) > WINDOW and history[-WINDOW - 1] - F <= args.ref_rtol * abs(F)

    refs, ref_time = {}, {}
    start = time.perf_counter()
    refs["numpy"], np_hist, _ = numpy_fista(tasks, form, converged, args.ref_time)  # (a)
    ref_time["numpy"] = time.perf_counter() - start
    start = time.perf_counter()
    mx_ref, _ = mtlx_run(data, form, args.threads, 1e-13, 10_000_000, args.ref_time)  # (b)
    refs["mtlx"], ref_time["mtlx"] = list(mx_ref.components), time.perf_counter() - start
    admm_trace = None
    if form.graph is None:  # (c)
        start = time.perf_counter()
        refs["admm"], admm_trace = numpy_admm(tasks, form, args.admm_rho, args.ref_rtol, args.ref_time)
        ref_time["admm"] = time.perf_counter() - start
    if not args.no_ipm:  # (d)
        start = time.perf_counter()
        ipm = ipm_reference(tasks, form)
        if ipm is not None:
            refs["ipm"], ref_time["ipm"] = ipm, time.perf_counter() - start
    F_refs = {k: objective(tasks, form, v) for k, v in refs.items()}
    best = min(F_refs, key=F_refs.get)
    F_star = F_refs[best]
    quad = Quadratic(tasks, form.c, form.graph)
    lower = None if form.gauge is None else max(quad.dual_bound(sum(v), form.gauge) for v in refs.values())
    threshold = F_star * (1.0 + args.target)
    exact = min((k for k in refs if k != "ipm"), key=F_refs.get)  # blocks with exact zeros (prox outputs)

    stall_start, start = cpu_stall_s(), time.perf_counter()
    mtlx_runs, numpy_runs = [], []
    for _ in range(args.repeats):  # a run stopped by the cap is not repeated
        if not mtlx_runs or mtlx_runs[-1][0] < args.max_time:
            res, t = mtlx_run(data, form, args.threads, 0.0, 10_000_000, args.max_time, threshold)
            mtlx_runs.append((t, res))
        if not numpy_runs or numpy_runs[-1][0] < args.max_time:
            parts, hist, t = numpy_fista(tasks, form, lambda F, h: F <= threshold, args.max_time)
            numpy_runs.append((t, parts, len(hist)))
    elapsed = time.perf_counter() - start
    stall = None if stall_start is None else (cpu_stall_s() - stall_start) / elapsed
    t_mtlx, res = min(mtlx_runs, key=lambda r: r[0])
    t_np, parts, np_iter = min(numpy_runs, key=lambda r: r[0])
    acc_mtlx = (objective(tasks, form, list(res.components)) - F_star) / F_star
    acc_np = (objective(tasks, form, parts) - F_star) / F_star
    # reached: before the cap, and confirmed in the direct form (to the rounding of two evaluations of F)
    mtlx_reached = bool(t_mtlx < args.max_time and acc_mtlx <= args.target + ROUNDING)
    numpy_reached = bool(t_np < args.max_time and acc_np <= args.target + ROUNDING)
    out = dict(
        name=form.name, malsar=form.malsar, malsar_s=form.malsar_s, c=form.c, penalty=repr(form.penalty),
        F_star=F_star, F_star_from=best,
        **{f"{k}_ref_F": v for k, v in F_refs.items()},
        **{f"{k}_ref_rel_gap": (v - F_star) / F_star for k, v in F_refs.items()},
        **{f"{k}_ref_time": v for k, v in ref_time.items()},
        ref_rel_diff=abs(F_refs["numpy"] - F_refs["mtlx"]) / F_star,
        dual_rel_gap=None if lower is None else (F_star - lower) / F_star,
        numpy_ref_iter=len(np_hist), numpy_ref_converged=bool(converged(np_hist[-1], np_hist)),
        mtlx_ref_iter=mx_ref.n_iter, mtlx_ref_message=mx_ref.message,
        mtlx_ref_iter_to_target=first_reaching(mx_ref.history[1:], threshold),
        admm_time_to_target=None if admm_trace is None else next(
            (t for t, F in admm_trace if F <= threshold), None),
        components_from=exact,
        component_norms=[float(np.linalg.norm(B)) for B in refs[exact]],
        component_nonzeros=[int(np.count_nonzero(B)) for B in refs[exact]],
        component_ranks=[int(np.linalg.matrix_rank(B)) for B in refs[exact]],
        cpu_stall_fraction=stall, mtlx_times=[r[0] for r in mtlx_runs], numpy_times=[r[0] for r in numpy_runs],
        mtlx_time=t_mtlx, mtlx_iter=res.n_iter, mtlx_evals=res.n_evals, mtlx_ms_per_iter=1e3 * t_mtlx / res.n_iter,
        mtlx_rel_acc=acc_mtlx, mtlx_reached=mtlx_reached, mtlx_gram=res.gram, mtlx_solver=res.solver,
        numpy_time=t_np, numpy_iter=np_iter, numpy_ms_per_iter=1e3 * t_np / np_iter,
        numpy_rel_acc=acc_np, numpy_reached=numpy_reached,
        speedup=t_np / t_mtlx if mtlx_reached and numpy_reached else None,
        under_target=bool(mtlx_reached and t_mtlx < TARGET_S),
    )
    if form.name == "SparseTrace":
        out["sparse_trace_tau"] = rp.trace_value(refs[exact][1])  # MALSAR's constraint ||Q||_* <= tau
    return out


# ---------------------------------------------------------------------- report
HEADER = (f"{'formulation':12s} {'MALSAR s':>8s} | {'mtlx s':>7s} {'iter':>7s} {'rel acc':>8s} | "
          f"{'numpy s':>8s} {'iter':>7s} {'rel acc':>8s} | {'speedup':>7s} {'<2 s':>4s} | {'admm s':>6s} | {'F*':>18s} "
          f"{'from':>5s} {'np-mtlx':>8s} {'dual gap':>8s} | {'stall':>5s} | ||blocks||")


def row(r: dict, max_time: float) -> str:
    """One line of the table ('>' marks a run stopped by --max-time before the target)."""
    def timed(t, reached):
        return f"{t:7.3f}" if reached else f">{max_time:6.1f}"

    malsar = "-" if r["malsar_s"] is None else f"{r['malsar_s']:g}"
    dual = "-" if r["dual_rel_gap"] is None else f"{r['dual_rel_gap']:8.1e}"
    admm = "-" if r["admm_time_to_target"] is None else f"{r['admm_time_to_target']:6.2f}"
    stall = "-" if r["cpu_stall_fraction"] is None else f"{r['cpu_stall_fraction']:5.2f}"
    speedup = "-" if r["speedup"] is None else f"{r['speedup']:7.2f}"
    norms = ", ".join(f"{x:.4g}" for x in r["component_norms"])
    return (f"{r['name']:12s} {malsar:>8s} | {timed(r['mtlx_time'], r['mtlx_reached'])} {r['mtlx_iter']:7d} "
            f"{r['mtlx_rel_acc']:8.1e} | {timed(r['numpy_time'], r['numpy_reached']):>8s} {r['numpy_iter']:7d} "
            f"{r['numpy_rel_acc']:8.1e} | {speedup:>7s} {'yes' if r['under_target'] else 'no':>4s} | "
            f"{admm:>6s} | "
            f"{r['F_star']:18.6f} {r['F_star_from']:>5s} {r['ref_rel_diff']:8.1e} {dual:>8s} | {stall:>5s} | {norms}")


def main(argv=None) -> None:
    args = parse_args(argv)
    tasks = load_school().tasks()
    data = mtlx.TaskData.from_tasks(tasks)
    forms = formulations(len(tasks), args.unhalved)
    if args.quick:
        forms = [f for f in forms if f.name in ("SRMTL", "rMTFL")]
    if args.only:
        forms = [f for f in forms if f.name in args.only.split(",")]
    print(f"school (raw), fit_intercept=False, target (F - F*)/F* <= {args.target:g}, {args.threads} threads; "
          f"caps: reference {args.ref_time:g} s, timed runs {args.max_time:g} s")
    print(HEADER)
    rows, start = [], time.perf_counter()
    with blas_limit(args.threads):
        for form in forms:
            rows.append(run_formulation(form, tasks, data, args))
            print(row(rows[-1], args.max_time), flush=True)
    elapsed = time.perf_counter() - start
    print(f"{sum(r['under_target'] for r in rows)} of {len(rows)} under {TARGET_S:g} s at {args.target:g}; "
          f"total {elapsed:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(
        benchmark="bench_formulations", machine=machine_info(), mtlx_version=mtlx.__version__, threads=args.threads,
        dtype="float64", shape=dict(T=len(tasks), n=int(data.n_samples.sum()), d=data.n_features),
        options={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        target_s=TARGET_S, elapsed_s=elapsed, formulations=rows), indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
