"""Time to the optimum on the school data: mtlx.solve against a plain numpy FISTA, same run.

What it measures
----------------
Issue 5, target 3: least squares with the l21, l1 and trace penalties on the raw school data
(139 tasks, 15,362 rows, 28 features, ``task_weights="sum"``: MALSAR's scale), and logistic l21
with intercepts (label: score above the school's median). For each case:

* a reference optimum F* from mtlx at a tight tolerance (``--ref-tol``, default 1e-11, at most 100,000 iterations);
* ``mtlx``: ``mtlx.solve`` from zero (the engine ``solver="auto"`` picks, recorded), stopped by its callback as soon as
  ``(F - F*) / F* <= --target`` (default 1e-9); time and iterations;
* ``numpy``: a plain numpy FISTA (fixed step 1/L with the global Lipschitz constant, gradient
  restart; per-task Gram matrices for least squares, a per-task loop for logistic), stopped by
  the same test; its time includes forming the Gram matrices. Capped at ``--max-time`` seconds.

Every objective the stopping test reads is recomputed at the end in the direct form (a pass
over the rows), so the reported accuracy is independent of either solver's own bookkeeping.
Threads: mtlx and numpy's BLAS both use ``--threads``. JSON to bench/results/bench_solve.json.

How to run
----------
::

    python bench/bench_solve.py                 # all cases
    python bench/bench_solve.py --quick         # two cases, a smoke run
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from bench_grad import blas_limit, machine_info

import mtlx
from mtlx.datasets import load_school

#: (loss, penalty, alpha) of issue 5, target 3; logistic alpha: see ``logistic_alpha``.
CASES = [("squared", "l21", 200.0), ("squared", "l21", 1400.0), ("squared", "l1", 100.0),
         ("squared", "l1", 1000.0), ("squared", "trace", 1000.0), ("squared", "trace", 10000.0),
         ("logistic", "l21", None)]
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_solve.json"


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--target", type=float, default=1e-9, help="relative accuracy (F - F*) / F* to reach")
    p.add_argument("--ref-tol", type=float, default=1e-11, help="tol of the reference solve")
    p.add_argument("--max-time", type=float, default=30.0, help="cap of the numpy FISTA (s)")
    p.add_argument("--quick", action="store_true", help="l21 at 200 and the logistic case only")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


# ---------------------------------------------------------------------- problem
def school_problem(loss: str):
    """The school tasks, with labels +-1 by each school's median score for the logistic loss."""
    school = load_school()
    tasks = school.tasks()
    if loss == "logistic":
        tasks = [(X, np.where(y > np.median(y), 1.0, -1.0)) for X, y in tasks]
    return tasks


def logistic_alpha(tasks) -> float:
    """A tenth of alpha_max of logistic l21 with intercepts, where W = 0 stops being optimal."""
    rows = []
    for X, y in tasks:
        p = np.mean(y > 0)
        b = np.log(p / (1 - p))  # the optimal intercept when w = 0
        rows.append(X.T @ (-y / (1 + np.exp(y * b))))
    return 0.1 * float(np.linalg.norm(np.stack(rows, axis=1), axis=1).max())


def objective(tasks, W, b, loss, penalty, alpha) -> float:
    """F in the direct form, per task in numpy (independent of both solvers)."""
    f = 0.0
    for t, (X, y) in enumerate(tasks):
        z = X @ W[:, t] + b[t]
        f += 0.5 * float(np.sum((y - z) ** 2)) if loss == "squared" else float(np.logaddexp(0, -y * z).sum())
    return f + alpha * float(PENALTY[penalty](W))


PENALTY = {
    "l21": lambda W: np.linalg.norm(W, axis=1).sum(),
    "l1": lambda W: np.abs(W).sum(),
    "trace": lambda W: np.linalg.svd(W, compute_uv=False).sum(),
}
PROX = {
    "l21": lambda V, tau: V * np.maximum(0.0, 1.0 - tau / np.maximum(np.linalg.norm(V, axis=1, keepdims=True),
                                                                     1e-300)),
    "l1": lambda V, tau: np.sign(V) * np.maximum(np.abs(V) - tau, 0.0),
    "trace": lambda V, tau: _svt(V, tau),
}


def _svt(V, tau):
    U, s, Vt = np.linalg.svd(V, full_matrices=False)
    return (U * np.maximum(s - tau, 0.0)) @ Vt


# ---------------------------------------------------------------------- numpy baseline
def numpy_fista(tasks, loss, penalty, alpha, F_star, target, max_time):
    """Plain FISTA (fixed step, gradient restart) stopped at ``(F - F*)/F* <= target``."""
    start = time.perf_counter()
    T, d = len(tasks), tasks[0][0].shape[1]
    intercept = loss == "logistic"
    if loss == "squared":
        G = np.stack([X.T @ X for X, _ in tasks])
        q = np.stack([X.T @ y for X, y in tasks], axis=1)
        yy = sum(float(y @ y) for _, y in tasks)
        L = max(np.linalg.eigvalsh(g)[-1] for g in G)

        def f_grad(W, b):
            GW = np.einsum("tjk,kt->jt", G, W)
            return 0.5 * float(np.sum(W * GW)) - float(np.sum(q * W)) + 0.5 * yy, GW - q, np.zeros(T)
    else:
        L = max(0.25 * np.linalg.eigvalsh(np.c_[X, np.ones(len(X))].T @ np.c_[X, np.ones(len(X))])[-1]
                for X, _ in tasks)

        def f_grad(W, b):
            f, gW, gb = 0.0, np.empty_like(W), np.empty(T)
            for t, (X, y) in enumerate(tasks):
                s = -y * (X @ W[:, t] + b[t])
                f += float(np.logaddexp(0, s).sum())
                r = -y * (0.5 + 0.5 * np.tanh(0.5 * s))
                gW[:, t] = X.T @ r
                gb[t] = r.sum()
            return f, gW, gb

    prox = PROX[penalty]
    W, b = np.zeros((d, T)), np.zeros(T)
    YW, Yb = W.copy(), b.copy()
    t_mom, n_iter, F = 1.0, 0, np.inf
    while (F - F_star) / F_star > target and time.perf_counter() - start < max_time:
        n_iter += 1
        _, gW, gb = f_grad(YW, Yb)
        W_new = prox(YW - gW / L, alpha / L)
        b_new = Yb - gb / L if intercept else b
        if np.sum((YW - W_new) * (W_new - W)) + np.sum((Yb - b_new) * (b_new - b)) > 0:  # restart
            t_mom, YW, Yb = 1.0, W.copy(), b.copy()
            continue
        t_next = 0.5 * (1 + np.sqrt(1 + 4 * t_mom * t_mom))
        YW = W_new + (t_mom - 1) / t_next * (W_new - W)
        Yb = b_new + (t_mom - 1) / t_next * (b_new - b)
        W, b, t_mom = W_new, b_new, t_next
        F = f_grad(W, b)[0] + alpha * float(PENALTY[penalty](W))
    return W, b, n_iter, time.perf_counter() - start


# ---------------------------------------------------------------------- mtlx
def mtlx_to_target(data, loss, penalty, alpha, F_star, target, threads, **kw):
    """mtlx.solve stopped by its callback at ``(F - F*)/F* <= target``."""

    def stop(state):
        if (state.objective - F_star) / F_star <= target:
            raise StopIteration

    start = time.perf_counter()
    res = mtlx.solve(data, loss=loss, penalty=penalty, alpha=alpha, task_weights="sum", tol=0.0,
                     max_iter=100_000, callback=stop, n_threads=threads, **kw)
    return res, time.perf_counter() - start


def run_case(loss, penalty, alpha, args) -> dict:
    tasks = school_problem(loss)
    if alpha is None:
        alpha = logistic_alpha(tasks)
    intercept = loss == "logistic"
    data = mtlx.TaskData.from_tasks(tasks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        ref = mtlx.solve(data, loss=loss, penalty=penalty, alpha=alpha, task_weights="sum", tol=args.ref_tol,
                         max_iter=100_000, fit_intercept=intercept, n_threads=args.threads)
    F_star = objective(tasks, ref.W, ref.b, loss, penalty, alpha)
    res, t_mtlx = mtlx_to_target(data, loss, penalty, alpha, ref.objective, args.target, args.threads,
                                 fit_intercept=intercept)
    W_np, b_np, it_np, t_np = numpy_fista(tasks, loss, penalty, alpha, ref.objective, args.target, args.max_time)
    acc_mtlx = (objective(tasks, res.W, res.b, loss, penalty, alpha) - F_star) / F_star
    acc_np = (objective(tasks, W_np, b_np, loss, penalty, alpha) - F_star) / F_star
    return dict(loss=loss, penalty=penalty, alpha=alpha, F_star=F_star, ref_n_iter=ref.n_iter,
                gram=res.gram, solver=res.solver, mtlx_time=t_mtlx, mtlx_iter=res.n_iter, mtlx_rel_acc=acc_mtlx,
                numpy_time=t_np, numpy_iter=it_np, numpy_rel_acc=acc_np, speedup=t_np / t_mtlx,
                numpy_capped=bool(acc_np > args.target * 1.5))


def main(argv=None) -> None:
    args = parse_args(argv)
    cases = [CASES[0], CASES[-1]] if args.quick else CASES
    rows = []
    print(f"school, task_weights='sum', target (F - F*)/F* <= {args.target:g}, {args.threads} threads")
    print(f"{'loss':9s} {'penalty':7s} {'alpha':>8s} | {'mtlx s':>7s} {'iter':>6s} {'rel acc':>8s} | "
          f"{'numpy s':>8s} {'iter':>6s} {'rel acc':>8s} | {'speedup':>7s}")
    with blas_limit(args.threads):
        for loss, penalty, alpha in cases:
            r = run_case(loss, penalty, alpha, args)
            rows.append(r)
            capped = " (capped)" if r["numpy_capped"] else ""
            print(f"{loss:9s} {penalty:7s} {r['alpha']:8.4g} | {r['mtlx_time']:7.3f} {r['mtlx_iter']:6d} "
                  f"{r['mtlx_rel_acc']:8.1e} | {r['numpy_time']:8.3f} {r['numpy_iter']:6d} {r['numpy_rel_acc']:8.1e} "
                  f"| {r['speedup']:7.2f}{capped}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(machine=machine_info(), threads=args.threads, dtype="float64",
                                        shape=dict(T=139, n=15362, d=28), target=args.target,
                                        ref_tol=args.ref_tol, cases=rows), indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
