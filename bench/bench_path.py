"""Regularization path of l21 (or l1) least squares with and without gap-safe screening.

What it measures
----------------
Issue 5, target 5: ``mtlx.path`` from alpha_max down to ``eps * alpha_max`` (``--n-alphas``
log-spaced values, warm starts) on X (m x d) shared by T tasks with 1% of the rows of the true W
active, three ways in the same run:

* ``screen+ws``: gap-safe screening and working sets (the default);
* ``ws``:        working sets only (every gap check over all d features);
* ``screen``:    gap-safe screening only, every inner solve on all surviving features;
* ``plain``:     neither (every inner solve on all d features).

Each certifies the same relative duality gap (``--tol``) at every alpha; the table reports
times, speed-ups over the last variant run (``--variants`` picks them, in order) and the
largest difference between the solutions.

How to run
----------
::

    python bench/bench_path.py --variants screen+ws,ws           # d=20000, T=50, m=500
    python bench/bench_path.py                                   # all four (plain: hours)
    python bench/bench_path.py --d 5000 --T 20 --m 200 --n-alphas 20 --eps 1e-2
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from bench_grad import blas_limit, machine_info

import mtlx

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_path.json"
VARIANTS = {"screen+ws": (True, True), "ws": (False, True), "screen": (True, False), "plain": (False, False)}


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--d", type=int, default=20000)
    p.add_argument("--T", type=int, default=50)
    p.add_argument("--m", type=int, default=500)
    p.add_argument("--penalty", default="l21", choices=("l1", "l21"))
    p.add_argument("--n-alphas", type=int, default=100)
    p.add_argument("--eps", type=float, default=1e-3)
    p.add_argument("--tol", type=float, default=1e-6, help="relative duality gap at every alpha")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", action="store_true", help="log every alpha (mtlx's debug log) to stderr")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.log:
        logging.basicConfig(format="%(relativeCreated)9.0f ms %(message)s")
        logging.getLogger("mtlx").setLevel(logging.DEBUG)
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((args.m, args.d))
    W = np.zeros((args.d, args.T))
    active = rng.choice(args.d, size=max(1, args.d // 100), replace=False)
    W[active] = rng.standard_normal((len(active), args.T))
    Y = X @ W + 0.1 * rng.standard_normal((args.m, args.T))
    data = mtlx.TaskData.from_shared(X, Y, n_threads=args.threads)
    print(f"path of {args.penalty}: m={args.m}, d={args.d}, T={args.T}, {args.n_alphas} alphas down to "
          f"{args.eps:g} alpha_max, gap tol {args.tol:g}, {args.threads} threads")
    print(f"{'variant':10s} {'time s':>8s} {'iters':>8s} {'screened (mid)':>15s} {'speedup':>8s} {'max |dW|':>9s}")
    results, rows = {}, []
    with blas_limit(args.threads):
        for name in args.variants.split(","):
            screening, working_set = VARIANTS[name]
            res = mtlx.path(data, args.penalty, n_alphas=args.n_alphas, eps=args.eps, tol=args.tol,
                            screening=screening, working_set=working_set, n_threads=args.threads)
            results[name] = res
    base = list(results.values())[-1]
    for name, res in results.items():
        diff = float(np.abs(res.coefs - base.coefs).max())
        row = dict(variant=name, time=res.time, iters=int(res.n_iter.sum()),
                   screened_mid=int(res.n_screened[len(res.alphas) // 2]), speedup=base.time / res.time,
                   max_coef_diff=diff, max_rel_obj_diff=float(np.max(np.abs(res.objectives - base.objectives)
                                                                     / base.objectives)))
        rows.append(row)
        print(f"{name:10s} {res.time:8.2f} {row['iters']:8d} {row['screened_mid']:15d} {row['speedup']:8.2f} "
              f"{diff:9.2e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(machine=machine_info(), threads=args.threads, dtype="float64",
                                        shape=dict(m=args.m, d=args.d, T=args.T), penalty=args.penalty,
                                        n_alphas=args.n_alphas, eps=args.eps, tol=args.tol, variants=rows),
                                   indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
