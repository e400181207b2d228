"""mtlx against scikit-learn (and celer, skglm) on shared-input l21 least squares: time to the same accuracy.

What it measures
----------------
Issue 11 (issue 5, target 4, restated against scikit-learn 1.9): X (n x d) shared by T tasks, 10% of
the rows of the true W active, alpha = ``--alpha-ratio`` (0.1) times alpha_max, and the objective of
``sklearn.linear_model.MultiTaskLasso`` (mtlx's with ``task_weights="mean"`` on shared input)::

    F(W) = (1/2n) ||Y - X W||_F^2 + alpha ||W||_21

Every solver is timed to the same accuracy, ``(F - F*) / F* <= --target`` (1e-8), F recomputed in
numpy from the returned W (never a solver's own value):

* F*: the lower F of two very tight solves by independent engines, mtlx's working sets + coordinate
  descent and scikit-learn's coordinate descent, both at tol ``--ref-tol``; its duality gap,
  computed in numpy at that W, bounds how far F* is from the optimum (``ref_gap`` in the JSON).
* The tol ladder (:func:`time_to_target`): each solver runs at tol = 1e-5, 1e-6, ... until its
  result reaches the target, then half a decade above that tol is tried; the time reported is that
  of the largest tol that reached (the best of ``--repeats`` runs at it when one takes under
  ``--repeat-below`` seconds). This is the time a user gets who sets tol just tight enough; the
  accuracy it actually reached is reported beside it. The solvers' tols mean different things
  (mtlx CD: duality gap ``<= tol F``; scikit-learn and celer: duality gap ``<= tol ||Y||_F^2 / n``;
  skglm: the largest violation of the optimality conditions; FISTA: a relative step), which is why
  they are compared at a common accuracy, not at a common tol.

Columns:

* ``mtlx``: ``mtlx.MultiTaskRegressor(penalty="l21", fit_intercept=False, tol=tol, max_iter=100000)``
  on the raw (X, Y), as a user calls it: its default ``solver="auto"`` runs working sets + block
  coordinate descent on Gram rows with gap-safe screening (:mod:`mtlx.working_set`);
* ``path``: ``mtlx.path(TaskData.from_shared(X, Y), "l21", alphas=[alpha], tol=tol)``, the same
  engine without the estimator's validation (their difference is the estimator's overhead);
* ``fista``: ``mtlx.solve(..., solver="fista")``: FISTA over all features (Gram form by its cost
  model), the engine every other formulation uses;
* ``sklearn``: ``MultiTaskLasso(alpha, fit_intercept=False, tol=tol, max_iter=100000)`` (1.9:
  coordinate descent with gap-safe screening);
* ``celer``: ``celer.homotopy.mtl_path(X, Y, alphas=[alpha], tol=tol)``, the solver celer's
  ``MultiTaskLasso`` runs (celer 0.7.4's estimator itself fails on scikit-learn 1.9: it calls
  ``BaseEstimator._validate_data``, which 1.6 removed);
* ``skglm``: ``skglm.MultiTaskLasso(alpha, fit_intercept=False, tol=tol)``; numba compiles its
  kernels on a small problem before any timing.

celer and skglm are skipped (and say why in the JSON) where they do not import. Every time counts
everything from the raw arrays (TaskData, Gram matrices, screening, copies to Fortran order).
Threads: ``--threads`` (default 1) for mtlx's ``n_threads`` and every BLAS (threadpoolctl); celer
and skglm's kernels are single-threaded. Every mtlx run carries a callback that only stops it after
``--max-time`` seconds (a guard; it never fires on a run that reaches the target in time). The load
average and the CPU stall share (Linux PSI) are recorded per shape, and a shape measured while the
load was above ``--threads + --max-excess-load`` or the stall share above ``--max-stall`` is rerun
(``--reruns`` times at most), keeping the calmest attempt. JSON to bench/results/bench_sklearn.json.

How to run
----------
::

    python bench/bench_sklearn.py               # both shapes (the large one takes minutes)
    python bench/bench_sklearn.py --threads 2
    python bench/bench_sklearn.py --quick       # n=2000, d=500, T=50 only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from bench_grad import blas_limit, cpu_stall_s, machine_info
from sklearn.linear_model import MultiTaskLasso

import mtlx

#: (n, d, T) of issue 5, target 4.
SHAPES = [(2000, 500, 50), (20000, 2000, 100)]
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_sklearn.json"
#: The tol ladder in half decades, tol = 10 ** (-h / 2): start at 1e-5, never below 1e-15 nor above 1e-2.
LADDER_START, LADDER_FLOOR, LADDER_CEIL = 10, 30, 4
#: The dual norm of each penalty: the largest row norm (l21), entry (l1), singular value (trace).
DUAL_NORM = {
    "l21": lambda G: float(np.linalg.norm(G, axis=1).max()),
    "l1": lambda G: float(np.abs(G).max()),
    "trace": lambda G: float(np.linalg.norm(G, 2)),
}
PENALTY = {
    "l21": lambda W: float(np.linalg.norm(W, axis=1).sum()),
    "l1": lambda W: float(np.abs(W).sum()),
}


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_args(p)
    p.add_argument("--alpha-ratio", type=float, default=0.1, help="alpha / alpha_max")
    p.add_argument("--quick", action="store_true", help="the small shape only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


def add_timing_args(p: argparse.ArgumentParser) -> None:
    """The options this benchmark shares with bench_auto.py."""
    p.add_argument("--threads", type=int, default=1, help="mtlx threads and every BLAS's")
    p.add_argument("--target", type=float, default=1e-8, help="relative suboptimality (F - F*) / F* to reach")
    p.add_argument("--ref-tol", type=float, default=1e-12, help="tol of the reference solves")
    p.add_argument("--max-time", type=float, default=120.0, help="cap of one run (s)")
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs at the chosen tol ...")
    p.add_argument("--repeat-below", type=float, default=3.0, help="... when one takes under this many seconds")
    p.add_argument("--max-excess-load", type=float, default=0.5,
                   help="rerun a case when the 1-minute load exceeded --threads by more than this ...")
    p.add_argument("--max-stall", type=float, default=0.1,
                   help="... or when some task waited for a CPU (Linux PSI) this share of its time")
    p.add_argument("--reruns", type=int, default=1, help="reruns of a case measured under load, at most")


# ---------------------------------------------------------------------- problem
def make_problem(n, d, T, seed):
    """Gaussian X, a W with 10% active rows, noise at a tenth of the signal; the same for every benchmark."""
    rng = np.random.default_rng((seed, n, d, T))
    X = rng.standard_normal((n, d))
    W = np.zeros((d, T))
    active = rng.choice(d, size=max(1, d // 10), replace=False)
    W[active] = rng.standard_normal((len(active), T))
    signal = X @ W
    return X, signal + 0.1 * signal.std() * rng.standard_normal((n, T))


def alpha_max(X, Y, penalty) -> float:
    """The smallest alpha at which W = 0 is optimal: the dual norm of X'Y / n."""
    return DUAL_NORM[penalty](X.T @ Y) / len(X)


def objective(X, Y, W, alpha, penalty="l21") -> float:
    """scikit-learn's objective (1/2n) ||Y - XW||^2 + alpha g(W), in numpy."""
    return 0.5 * float(np.sum((Y - X @ W) ** 2)) / len(X) + alpha * PENALTY[penalty](W)


def duality_gap(X, Y, W, alpha, penalty="l21") -> float:
    """F(W) - D(theta) for the dual point theta = s (Y - XW), s the largest scale with g°(X'theta / n) <= alpha.

    The dual of (1/2n)||Y - XW||^2 + alpha g(W) is D(theta) = (1/n) <theta, Y> - (1/2n) ||theta||^2 over
    g°(X'theta) <= n alpha; F(W) - D >= F(W) - F_opt for every W, and -> 0 as W -> W*.
    """
    n = len(X)
    R = Y - X @ W
    scale = min(1.0, alpha / max(DUAL_NORM[penalty](X.T @ R) / n, 1e-300))
    U = scale * R
    dual = (float(np.sum(U * Y)) - 0.5 * float(np.sum(U * U))) / n
    return objective(X, Y, W, alpha, penalty) - dual


# ---------------------------------------------------------------------- timing
def time_to_target(fit, subopt, target, max_time, repeats, repeat_below):
    """Time of ``fit(tol)`` to reach ``subopt(result) <= target``, by the tol ladder.

    tol = 1e-5, 1e-6, ... (down to 1e-15, or until a run that misses takes ``max_time``); when the
    first rung already reaches, up by decades instead (to 1e-2) while it still does. Then half a decade
    above the largest tol that reached is tried. Returns (summary, result at the chosen tol): the
    summary holds the chosen tol, its best time of up to ``repeats`` runs (runs past the first only
    when one takes under ``repeat_below`` s), the suboptimality reached and every rung tried.
    """
    rungs = {}

    def attempt(h):
        start = time.perf_counter()
        out = fit(10.0 ** (-h / 2))
        elapsed = time.perf_counter() - start
        s = float(subopt(out))
        rungs[h] = (elapsed, s, out)
        return s <= target

    h = LADDER_START
    if attempt(h):
        while h - 2 >= LADDER_CEIL and attempt(h - 2):
            h -= 2
    else:
        while h + 2 <= LADDER_FLOOR and rungs[h][0] < max_time:
            h += 2
            if attempt(h):
                break
        else:
            return _summary(rungs, None, []), None
    if h - 1 >= LADDER_CEIL and h - 1 not in rungs and attempt(h - 1):
        h -= 1
    times = [rungs[h][0]]
    while len(times) < repeats and times[0] < repeat_below:
        start = time.perf_counter()
        fit(10.0 ** (-h / 2))
        times.append(time.perf_counter() - start)
    return _summary(rungs, h, times), rungs[h][2]


def _summary(rungs, h, times) -> dict:
    """What :func:`time_to_target` reports (h None: no rung reached the target)."""
    tried = [dict(tol=10.0 ** (-k / 2), time=t, subopt=s) for k, (t, s, _) in sorted(rungs.items())]
    if h is None:
        return dict(reached=False, tol=None, time=math.nan, times=[], subopt=min(r["subopt"] for r in tried),
                    tried=tried)
    return dict(reached=True, tol=10.0 ** (-h / 2), time=min(times), times=times, subopt=rungs[h][1], tried=tried)


def time_guard(max_time):
    """A callback that stops an mtlx solve after ``max_time`` seconds, and only then."""
    start = time.perf_counter()

    def guard(state):
        if time.perf_counter() - start > max_time:
            raise StopIteration

    return guard


def measured(run, threads, args) -> dict:
    """``run()`` with the load recorded; rerun (``args.reruns`` times at most) while the 1-minute load
    exceeded ``threads + args.max_excess_load`` or the CPU stall share ``args.max_stall`` (a short case
    barely moves the load average, but stalls show when other jobs took its cores), keeping the
    attempt with the lowest stall share (load where PSI is unavailable)."""
    attempts = []
    for _ in range(1 + args.reruns):
        load0, stall0, start = os.getloadavg(), cpu_stall_s(), time.perf_counter()
        row = run()
        load1, stall1, wall = os.getloadavg(), cpu_stall_s(), time.perf_counter() - start
        row["load"] = dict(before=list(load0), after=list(load1), wall=wall,
                           stall_share=None if stall0 is None or stall1 is None else (stall1 - stall0) / wall)
        stall = row["load"]["stall_share"]
        row["load"]["high"] = bool(max(load0[0], load1[0]) > threads + args.max_excess_load
                                   or (stall is not None and stall > args.max_stall))
        attempts.append(row)
        if not row["load"]["high"]:
            break
    best = min(attempts, key=lambda r: (r["load"]["stall_share"] or 0.0, max(r["load"]["before"][0],
                                                                              r["load"]["after"][0])))
    best["attempts"] = len(attempts)
    return best


# ---------------------------------------------------------------------- solvers
def peers() -> tuple[dict, dict]:
    """({name: fit(X, Y, alpha, tol) -> W (d x T)} of the peers that import, {name: version or why not})."""
    fits = {"sklearn": lambda X, Y, alpha, tol: MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=tol,
                                                                max_iter=100_000).fit(X, Y).coef_.T}
    versions = {"sklearn": sklearn.__version__}
    try:
        import celer
        from celer.homotopy import mtl_path

        fits["celer"] = lambda X, Y, alpha, tol: mtl_path(X, Y, alphas=[alpha], tol=tol, max_iter=1000,
                                                          max_epochs=100_000)[1][:, :, 0].T
        versions["celer"] = celer.__version__
    except Exception as exc:  # an import error, or one from its compiled extension
        versions["celer"] = f"skipped: {exc!r}"
    try:
        import numba
        import skglm

        fits["skglm"] = lambda X, Y, alpha, tol: skglm.MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=tol,
                                                                      max_iter=1000).fit(X, Y).coef_.T
        versions["skglm"] = skglm.__version__
        versions["numba"] = numba.__version__
    except Exception as exc:
        versions["skglm"] = f"skipped: {exc!r}"
    return fits, versions


def mtlx_fits(threads, max_time) -> dict:
    """{name: fit(X, Y, alpha, tol) -> W} of the three mtlx columns, each from the raw arrays."""

    def estimator(X, Y, alpha, tol):
        return mtlx.MultiTaskRegressor(penalty="l21", alpha=alpha, fit_intercept=False, tol=tol, max_iter=100_000,
                                       n_threads=threads, callback=time_guard(max_time)).fit(X, Y).coef_.T

    def path(X, Y, alpha, tol):
        data = mtlx.TaskData.from_shared(X, Y, n_threads=threads)
        return mtlx.path(data, "l21", alphas=[alpha], tol=tol, n_threads=threads).coefs[0]

    def fista(X, Y, alpha, tol):
        data = mtlx.TaskData.from_shared(X, Y, n_threads=threads)
        return mtlx.solve(data, penalty="l21", alpha=alpha, tol=tol, max_iter=100_000, solver="fista",
                          n_threads=threads, callback=time_guard(max_time)).W

    return dict(mtlx=estimator, path=path, fista=fista)


def warm_up(fits) -> None:
    """One fit of each solver on a small problem: imports, numba's compilation, first-call costs."""
    X, Y = make_problem(60, 20, 3, 1)
    for fit in fits.values():
        fit(X, Y, 0.1 * alpha_max(X, Y, "l21"), 1e-4)


def run_shape(n, d, T, fits, args) -> dict:
    """The reference and every solver's time to the target on one shape."""
    X, Y = make_problem(n, d, T, args.seed)
    alpha = args.alpha_ratio * alpha_max(X, Y, "l21")
    refs = dict(mtlx_cd=fits["path"](X, Y, alpha, args.ref_tol), sklearn=fits["sklearn"](X, Y, alpha, args.ref_tol))
    F_refs = {k: objective(X, Y, W, alpha) for k, W in refs.items()}
    best = min(F_refs, key=F_refs.get)
    F_star = F_refs[best]
    row = dict(n=n, d=d, T=T, alpha=alpha, F_star=F_star, F_refs=F_refs,
               ref_gap=duality_gap(X, Y, refs[best], alpha) / F_star, solvers={})
    for name, fit in fits.items():
        summary, W = time_to_target(lambda tol, fit=fit: fit(X, Y, alpha, tol),
                                    lambda W: (objective(X, Y, W, alpha) - F_star) / F_star,
                                    args.target, args.max_time, args.repeats, args.repeat_below)
        if W is not None:
            summary["active_rows"] = int(np.count_nonzero(np.linalg.norm(W, axis=1)))
        row["solvers"][name] = summary
    t_sk = row["solvers"]["sklearn"]["time"]
    for summary in row["solvers"].values():
        summary["speedup_vs_sklearn"] = t_sk / summary["time"]
    return row


def print_shape(r) -> None:
    """One shape's table: every solver's time to the target, the tol it took, and its speed-up."""
    load = r["load"]
    print(f"\nn={r['n']} d={r['d']} T={r['T']}  alpha={r['alpha']:.4g}  F*={r['F_star']:.12g}  "
          f"ref gap/F*={r['ref_gap']:.1e}  load {load['before'][0]:.2f}->{load['after'][0]:.2f}"
          f"{' (HIGH)' if load['high'] else ''}")
    print(f"  {'solver':8s} {'time s':>8s} {'tol':>8s} {'rel subopt':>10s} {'vs sklearn':>10s} {'runs':>5s}")
    for name, s in r["solvers"].items():
        tol = f"{s['tol']:.1e}" if s["reached"] else "-"
        print(f"  {name:8s} {s['time']:8.3f} {tol:>8s} {s['subopt']:10.1e} {s['speedup_vs_sklearn']:9.2f}x "
              f"{len(s['tried']):5d}" + ("" if s["reached"] else "  (target not reached)"), flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    fits, versions = peers()
    fits = {**mtlx_fits(args.threads, args.max_time), **fits}
    rows = []
    print(f"l21 least squares, shared X, alpha = {args.alpha_ratio} alpha_max, {args.threads} thread(s): "
          f"time to (F - F*)/F* <= {args.target:g}; peers {versions}")
    with blas_limit(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # runs at loose tols stop early by design; accuracy is checked
        warm_up(fits)
        for n, d, T in SHAPES[:1] if args.quick else SHAPES:
            r = measured(lambda n=n, d=d, T=T: run_shape(n, d, T, fits, args), args.threads, args)
            rows.append(r)
            print_shape(r)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(machine=machine_info(), peers=versions, threads=args.threads,
                                        dtype="float64", alpha_ratio=args.alpha_ratio, target=args.target,
                                        ref_tol=args.ref_tol, max_time=args.max_time, cases=rows),
                                   indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
