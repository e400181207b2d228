"""mtlx against scikit-learn's MultiTaskLasso on shared-input problems, in the same run.

What it measures
----------------
Issue 5, target 4: for X (n x d) shared by T tasks with 10% of the rows of the true W active,
``sklearn.linear_model.MultiTaskLasso(alpha, fit_intercept=False)`` (coordinate descent, its
default tol) is timed first and its final objective F_sk recorded; mtlx then has to reach F_sk
for the same alpha. mtlx's objective with ``task_weights="mean"`` on shared input is sklearn's,
``(1/2n) ||Y - X W||_F^2 + alpha ||W||_21``. Every mtlx time counts everything from the raw
arrays: building the TaskData, Gram matrices, alpha_max, screening.

* ``estimator``: ``mtlx.MultiTaskRegressor(penalty="l21", fit_intercept=False, tol=gap_tol)``,
  what the target names: its default ``solver="auto"`` runs working sets + block coordinate
  descent on Gram rows with gap-safe screening (:mod:`mtlx.working_set`); ``tol`` is the
  relative duality gap it certifies (``--gap-tol``); its F is checked against F_sk.
* ``mtlx.path``: ``mtlx.path(data, "l21", alphas=[alpha], tol=...)``, the same engine.
* ``fista``: plain FISTA over all features (Gram form chosen automatically), stopped by its
  callback as soon as F <= F_sk.

The small shape reports the best of ``--repeats`` runs of each; the large one a single run.

How to run
----------
::

    python bench/bench_sklearn.py               # both shapes (the large one takes minutes)
    python bench/bench_sklearn.py --quick       # n=2000, d=500, T=50 only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from bench_grad import blas_limit, machine_info

import mtlx

#: (n, d, T) of issue 5, target 4.
SHAPES = [(2000, 500, 50), (20000, 2000, 100)]
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_sklearn.json"


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="mtlx threads and numpy/sklearn BLAS threads")
    p.add_argument("--alpha-ratio", type=float, default=0.1, help="alpha / alpha_max")
    p.add_argument("--gap-tol", type=float, default=1e-6, help="relative duality gap of mtlx.path")
    p.add_argument("--repeats", type=int, default=5, help="best of this many runs (small shape only)")
    p.add_argument("--quick", action="store_true", help="the small shape only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


def make_problem(n, d, T, rng):
    """Gaussian X, a W with 10% active rows, noise at a tenth of the signal."""
    X = rng.standard_normal((n, d))
    W = np.zeros((d, T))
    active = rng.choice(d, size=max(1, d // 10), replace=False)
    W[active] = rng.standard_normal((len(active), T))
    signal = X @ W
    return X, signal + 0.1 * signal.std() * rng.standard_normal((n, T))


def objective(X, Y, W, alpha) -> float:
    """sklearn's objective (1/2n) ||Y - XW||^2 + alpha ||W||_21, in numpy."""
    return 0.5 * float(np.sum((Y - X @ W) ** 2)) / len(X) + alpha * float(np.linalg.norm(W, axis=1).sum())


def best_time(fit, repeats: int):
    """(best wall time, last result) of ``repeats`` calls of ``fit()``."""
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fit()
        best = min(best, time.perf_counter() - start)
    return best, out


def run_shape(n, d, T, args, rng) -> dict:
    from sklearn.linear_model import MultiTaskLasso

    X, Y = make_problem(n, d, T, rng)
    alpha = args.alpha_ratio * float(np.linalg.norm(X.T @ Y, axis=1).max()) / n
    repeats = args.repeats if n * d <= 10**7 else 1

    t_sk, sk = best_time(lambda: MultiTaskLasso(alpha=alpha, fit_intercept=False, max_iter=100_000).fit(X, Y),
                         repeats)
    F_sk = objective(X, Y, sk.coef_.T, alpha)

    # The estimator, as a user calls it: validation, TaskData, solver choice ("auto": working
    # sets + coordinate descent here), every precomputation.
    t_est, est = best_time(lambda: mtlx.MultiTaskRegressor(penalty="l21", alpha=alpha, fit_intercept=False,
                                                           tol=args.gap_tol, n_threads=args.threads).fit(X, Y),
                           repeats)
    F_est = objective(X, Y, est.coef_.T, alpha)

    def run_path():
        data = mtlx.TaskData.from_shared(X, Y, n_threads=args.threads)
        return mtlx.path(data, "l21", alphas=[alpha], tol=args.gap_tol, n_threads=args.threads)

    t_path, res_path = best_time(run_path, repeats)
    F_path = objective(X, Y, res_path.coefs[0], alpha)

    def stop(state):
        if state.objective <= F_sk:
            raise StopIteration

    def run_fista():
        data = mtlx.TaskData.from_shared(X, Y, n_threads=args.threads)
        return mtlx.solve(data, penalty="l21", alpha=alpha, tol=0.0, max_iter=100_000, callback=stop,
                          n_threads=args.threads)

    t_solve, res = best_time(run_fista, 1)
    F_solve = objective(X, Y, res.W, alpha)
    return dict(n=n, d=d, T=T, alpha=alpha, repeats=repeats, sklearn_time=t_sk, sklearn_iter=int(sk.n_iter_),
                F_sklearn=F_sk, estimator_time=t_est, F_estimator=F_est,
                estimator_reached=bool(F_est <= F_sk * (1 + 1e-12)), estimator_epochs=int(est.n_iter_),
                estimator_gap_checks=len(est.objective_history_),
                path_time=t_path, F_path=F_path, path_reached=bool(F_path <= F_sk * (1 + 1e-12)),
                path_epochs=int(res_path.n_iter[0]), path_screened=int(res_path.n_screened[0]),
                path_gap=float(res_path.gaps[0]), solve_time=t_solve, F_solve=F_solve,
                solve_reached=bool(F_solve <= F_sk * (1 + 1e-12)), solve_iter=res.n_iter, solve_gram=res.gram,
                speedup_estimator=t_sk / t_est, speedup_path=t_sk / t_path, speedup_solve=t_sk / t_solve)


def main(argv=None) -> None:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = []
    print(f"MultiTaskLasso vs mtlx (l21, alpha = {args.alpha_ratio} alpha_max), {args.threads} threads; "
          "speedup = sklearn time / mtlx time to reach sklearn's F")
    print(f"{'n':>6s} {'d':>5s} {'T':>4s} | {'sklearn s':>9s} | {'estim. s':>8s} {'F<=F_sk':>7s} {'x':>6s} | "
          f"{'path s':>7s} {'F<=F_sk':>7s} {'x':>6s} | {'fista s':>7s} {'F<=F_sk':>7s} {'x':>6s}")
    with blas_limit(args.threads):
        for n, d, T in SHAPES[:1] if args.quick else SHAPES:
            r = run_shape(n, d, T, args, rng)
            rows.append(r)
            print(f"{n:6d} {d:5d} {T:4d} | {r['sklearn_time']:9.3f} | {r['estimator_time']:8.4f} "
                  f"{str(r['estimator_reached']):>7s} {r['speedup_estimator']:6.1f} | {r['path_time']:7.3f} "
                  f"{str(r['path_reached']):>7s} {r['speedup_path']:6.1f} | "
                  f"{r['solve_time']:7.3f} {str(r['solve_reached']):>7s} {r['speedup_solve']:6.1f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(machine=machine_info(), threads=args.threads, dtype="float64",
                                        alpha_ratio=args.alpha_ratio, gap_tol=args.gap_tol, cases=rows),
                                   indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
