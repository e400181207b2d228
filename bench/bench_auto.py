"""Does ``solver="auto"`` pick the faster engine? Every engine's time to the same accuracy, on every benchmark shape.

What it measures
----------------
Issue 11: for each case of bench_solve.py (the school data, 139 ragged tasks, d = 28,
``task_weights="sum"``: squared l21 at 200 and 1400, l1 at 100 and 1000, trace at 1000 and 10000;
logistic l21 with intercepts at a tenth of its alpha_max) and of bench_sklearn.py (shared X, n = 2000,
d = 500, T = 50 and n = 20000, d = 2000, T = 100, ``task_weights="mean"``; l21 and l1, each at a
tenth of its alpha_max), ``mtlx.solve`` is timed with every engine that applies ("fista"; "cd" for
l1/l21 least squares; "admm" for least squares in the Gram form; "factored" for the trace norm) and
with ``solver="auto"``, each to the same accuracy ``(F - F*) / F* <= --target`` (1e-8), F recomputed
in numpy from the returned W and b:

* F*: the lowest F of very tight solves (tol ``--ref-tol``, capped at ``--max-time`` s) by every
  engine that applies: three for least squares (FISTA, ADMM, and cd or factored), FISTA alone for
  the logistic case. A duality gap computed in numpy at that point bounds F* - F_opt (``ref_gap``,
  relative to F*).
* Time to the target by the tol ladder of bench_sklearn.py (:func:`bench_sklearn.time_to_target`):
  tol lowered by decades from 1e-5 until the run reaches the target, then half a decade above tried;
  the time of the largest tol that reached is reported (best of ``--repeats`` runs when short),
  with the suboptimality that run reached. No engine is stopped by a callback at the target (the
  factored engine's rank growth reads tol, so a stop at tol = 0 would not time what users run);
  every run carries a callback that only stops it after ``--max-time`` s.

Reported per case: each engine's time, auto's choice (``mtlx.solver.choose_solver``) and time, and
``auto / fastest``, whose target is <= 1.2. Data and TaskData are built before timing (untimed, as in
bench_solve.py). Threads: ``--threads`` (default 1) for mtlx and BLAS. The load average and the CPU
stall share are recorded per case; a case measured under load above ``--threads +
--max-excess-load``, or with a stall share above ``--max-stall``, is rerun (see bench_sklearn.py).
JSON to bench/results/bench_auto.json.

How to run
----------
::

    python bench/bench_auto.py                  # every case (the large shared shape takes minutes)
    python bench/bench_auto.py --threads 2
    python bench/bench_auto.py --quick          # school l21 at 200, logistic, and the small shared shape
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from bench_grad import blas_limit, machine_info
from bench_sklearn import (
    DUAL_NORM,
    SHAPES,
    add_timing_args,
    alpha_max,
    make_problem,
    measured,
    time_guard,
    time_to_target,
)
from bench_sklearn import duality_gap as shared_gap
from bench_sklearn import objective as shared_objective
from bench_solve import CASES, logistic_alpha, school_problem
from bench_solve import objective as school_objective
from scipy.special import expit, xlogy

import mtlx
from mtlx.penalties import get_penalty
from mtlx.solver import choose_solver

ENGINES = ("fista", "cd", "admm", "factored")
#: The target of issue 11: auto at most this many times the fastest engine's time.
TARGET_RATIO = 1.2
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_auto.json"


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_args(p)
    p.add_argument("--alpha-ratio", type=float, default=0.1, help="alpha / alpha_max on the shared shapes")
    p.add_argument("--quick", action="store_true", help="school l21 200, logistic, the small shared shape")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


@dataclass
class Case:
    """One problem: the options of ``mtlx.solve`` and numpy's F(W, b) and duality gap for it."""

    label: str
    loss: str
    penalty: str
    alpha: float
    task_weights: str
    intercept: bool
    data: mtlx.TaskData
    objective: Callable
    gap: Callable


def task_gap(tasks, W, b, loss, penalty, alpha, intercept) -> float:
    """F(W, b) - D(u) on per-task data (task weights 1), u the dual point the residuals give.

    u_t = -L'(z_t) (squared: y - z; logistic: y sigmoid(-y z)), centred per task with intercepts (the
    dual constraint sum_i u_ti = 0), scaled into g°(G) <= alpha, G_t = X_t' u_t. D(u) = sum u y - u^2/2
    (squared), -sum p log p + (1 - p) log(1 - p) with p = y u (logistic); inf where p leaves [0, 1].
    """
    us, G = [], np.empty_like(W, dtype=np.float64)
    for t, (X, y) in enumerate(tasks):
        z = X @ W[:, t] + b[t]
        u = y - z if loss == "squared" else y * expit(-y * z)
        if intercept:
            u = u - u.mean()
        us.append(u)
        G[:, t] = X.T @ u
    scale = min(1.0, alpha / max(DUAL_NORM[penalty](G), 1e-300))
    dual = 0.0
    for (_, y), u in zip(tasks, us):
        u = scale * u
        if loss == "squared":
            dual += float(u @ y) - 0.5 * float(u @ u)
        else:
            p = y * u
            if p.min() < 0 or p.max() > 1:
                return np.inf
            dual -= float(np.sum(xlogy(p, p) + xlogy(1 - p, 1 - p)))
    return school_objective(tasks, W, b, loss, penalty, alpha) - dual


def cases(args):
    """Every case (built one at a time: the large shared shape holds 320 MB of X)."""
    school = [CASES[0], CASES[-1]] if args.quick else CASES
    for loss, penalty, alpha in school:
        tasks = school_problem(loss)
        alpha = logistic_alpha(tasks) if alpha is None else alpha
        intercept = loss == "logistic"
        yield Case(f"school {loss} {penalty} {alpha:.4g}", loss, penalty, alpha, "sum", intercept,
                   mtlx.TaskData.from_tasks(tasks),
                   lambda W, b, t=tasks, lo=loss, p=penalty, a=alpha: school_objective(t, W, b, lo, p, a),
                   lambda W, b, t=tasks, lo=loss, p=penalty, a=alpha, i=intercept: task_gap(t, W, b, lo, p, a, i))
    for n, d, T in SHAPES[:1] if args.quick else SHAPES:
        X, Y = make_problem(n, d, T, args.seed)
        for penalty in ("l21", "l1"):
            alpha = args.alpha_ratio * alpha_max(X, Y, penalty)
            yield Case(f"shared {n}x{d}x{T} {penalty}", "squared", penalty, alpha, "mean", False,
                       mtlx.TaskData.from_shared(X, Y, n_threads=args.threads),
                       lambda W, b, X=X, Y=Y, p=penalty, a=alpha: shared_objective(X, Y, W, a, p),
                       lambda W, b, X=X, Y=Y, p=penalty, a=alpha: shared_gap(X, Y, W, a, p))


def applicable(case: Case) -> list:
    """The engines ``choose_solver`` accepts for this case."""
    out = []
    for engine in ENGINES:
        try:
            choose_solver(engine, case.data, case.loss, get_penalty(case.penalty), case.alpha)
        except ValueError:
            continue
        out.append(engine)
    return out


def fit(case: Case, solver, tol, args):
    """``mtlx.solve`` on the case with this engine and tol (100,000 iterations or epochs at most)."""
    return mtlx.solve(case.data, loss=case.loss, penalty=case.penalty, alpha=case.alpha,
                      fit_intercept=case.intercept, task_weights=case.task_weights, tol=tol, max_iter=100_000,
                      solver=solver, n_threads=args.threads, callback=time_guard(args.max_time))


def run_case(case: Case, args) -> dict:
    """The reference F*, then each engine's and auto's time to the target."""
    engines = applicable(case)
    refs = {e: fit(case, e, args.ref_tol, args) for e in engines}
    F_refs = {e: case.objective(r.W, r.b) for e, r in refs.items()}
    best = min(F_refs, key=F_refs.get)
    F_star = F_refs[best]
    row = dict(case=case.label, loss=case.loss, penalty=case.penalty, alpha=case.alpha,
               task_weights=case.task_weights, fit_intercept=case.intercept, F_star=F_star, F_refs=F_refs,
               ref_gap=case.gap(refs[best].W, refs[best].b) / F_star,
               auto_choice=choose_solver("auto", case.data, case.loss, get_penalty(case.penalty), case.alpha,
                                         task_weights=case.task_weights, fit_intercept=case.intercept),
               engines={})
    for engine in [*engines, "auto"]:
        summary, res = time_to_target(lambda tol, e=engine: fit(case, e, tol, args),
                                      lambda r: (case.objective(r.W, r.b) - F_star) / F_star,
                                      args.target, args.max_time, args.repeats, args.repeat_below)
        if res is not None:
            summary.update(n_iter=int(res.n_iter), solver=getattr(res, "solver", engine), message=res.message)
        row["engines"][engine] = summary
    reached = {e: row["engines"][e]["time"] for e in engines if row["engines"][e]["reached"]}
    row["fastest"] = min(reached, key=reached.get) if reached else None
    row["ratio"] = row["engines"]["auto"]["time"] / reached[row["fastest"]] if reached else float("nan")
    row["within_target"] = bool(row["ratio"] <= TARGET_RATIO)
    return row


def print_row(r) -> None:
    """One case: every engine's time (and suboptimality), auto's choice, time and ratio to the fastest."""
    cells = []
    for engine in (*ENGINES, "auto"):
        s = r["engines"].get(engine)
        time = "" if s is None else f"{s['time']:7.3f}" if s["reached"] else "missed"
        cells.append(f"{'-':>17s}" if s is None else f"{time:>7s} ({s['subopt']:7.1e})")
    load = r["load"]
    print(f"{r['case']:32s} {r['ref_gap']:8.1e} | {' | '.join(cells)} | {r['auto_choice']:>14s} {r['ratio']:6.2f}"
          f"{'' if r['within_target'] else ' MISS'} | {max(load['before'][0], load['after'][0]):5.2f}"
          f"{' HIGH' if load['high'] else ''}", flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    rows = []
    print(f"time to (F - F*)/F* <= {args.target:g} by the tol ladder, {args.threads} thread(s); "
          f"each cell: seconds (relative suboptimality reached)")
    print(f"{'case':32s} {'ref gap':>8s} | {'fista':>17s} | {'cd':>17s} | {'admm':>17s} | {'factored':>17s} | "
          f"{'auto':>17s} | "
          f"{'auto choice':>14s} {'ratio':>6s} | {'load':>5s}")
    with blas_limit(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # runs at loose tols stop early by design; accuracy is checked
        for case in cases(args):
            r = measured(lambda c=case: run_case(c, args), args.threads, args)
            rows.append(r)
            print_row(r)
    misses = [r["case"] for r in rows if not r["within_target"]]
    print(f"auto within {TARGET_RATIO}x of the fastest engine: {len(rows) - len(misses)}/{len(rows)} cases"
          + (f"; missed: {', '.join(misses)}" if misses else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(machine=machine_info(), threads=args.threads, dtype="float64",
                                        target=args.target, target_ratio=TARGET_RATIO, ref_tol=args.ref_tol,
                                        max_time=args.max_time, alpha_ratio=args.alpha_ratio, cases=rows),
                                   indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
