"""Sparse X: mtlx against scikit-learn and skglm on CSR input, time to the same objective.

What it measures
----------------
Issue 12: shared-input l21 least squares on a sparse X, the objective of scikit-learn's
``MultiTaskElasticNet(l1_ratio=1)`` (= ``MultiTaskLasso``)::

    F(W) = (1/2n) ||Y - X W||_F^2 + alpha ||W||_21,   alpha = alpha_max / 10, no intercept

Cases:

* ``newsgroups``: the bundled 20-Newsgroups documents (7,091 x 2,000 term counts, 2.7% non-zero,
  :func:`mtlx.datasets.load_newsgroups`) as one shared X, with T = 4 targets from a W with 10% of
  its rows active and noise at a third of the signal (SNR 3);
* ``synthetic``: a uniform random CSR X (default 20,000 x 10,000 at 0.1%; ``--full``: the issue's
  100,000 x 50,000 at 0.1%, T = 20), the same recipe for Y.

Every solver is timed to ``(F - F*) / F* <= --target`` (default 1e-6) by the tol ladder of
bench_sklearn.py, F recomputed with scipy from the returned W; F* is the lowest F of tight solves
by mtlx and scikit-learn (``ref_gap``: its duality gap, a bound on its own error). One thread.

* ``mtlx``: ``mtlx.MultiTaskRegressor(penalty="l21", fit_intercept=False, tol=tol)`` on the CSR
  matrix (kept sparse: the working-set coordinate descent on the residuals, from the stored entries);
* ``sklearn``: ``MultiTaskElasticNet(l1_ratio=1.0)`` on the same CSR matrix;
* ``skglm``: ``skglm.MultiTaskLasso`` on the same matrix.

The issue's target is 5x the faster peer. JSON to ``bench/results/bench_sparse.json``.

How to run
----------
::

    python bench/bench_sparse.py            # newsgroups + 20,000 x 10,000 (a few minutes)
    python bench/bench_sparse.py --full     # + the issue's 100,000 x 50,000, T = 20
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import sklearn
from bench_grad import blas_limit, machine_info
from bench_sklearn import add_timing_args, measured, time_guard, time_to_target
from sklearn.linear_model import MultiTaskElasticNet

import mtlx
from mtlx.datasets import load_newsgroups

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_sparse.json"
CASES = [("newsgroups", None, None, 4, None), ("synthetic", 20_000, 10_000, 10, 1e-3)]
FULL = [("synthetic", 100_000, 50_000, 20, 1e-3)]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_args(p)
    p.set_defaults(target=1e-6, repeat_below=10.0)  # (peers take 2-8 s on the full case: best of three each)
    p.add_argument("--full", action="store_true", help="also the issue's 100,000 x 50,000 case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


def make_problem(name, n, d, T, density, seed):
    """A CSR X (the newsgroups documents, or uniform random entries) and Y = X W + noise (SNR 3)."""
    rng = np.random.default_rng((seed, T))
    if name == "newsgroups":
        X = load_newsgroups().X
    else:
        X = sp.random(n, d, density=density, format="csr", random_state=rng, dtype=np.float64)
    W = np.zeros((X.shape[1], T))
    active = rng.choice(X.shape[1], size=max(1, X.shape[1] // 10), replace=False)
    W[active] = rng.standard_normal((len(active), T))
    signal = np.asarray(X @ W)
    return sp.csr_matrix(X), signal + signal.std() / 3 * rng.standard_normal(signal.shape)


def objective(X, Y, W, alpha) -> float:
    return 0.5 * float(np.sum((Y - X @ W) ** 2)) / X.shape[0] + alpha * float(np.linalg.norm(W, axis=1).sum())


def duality_gap(X, Y, W, alpha) -> float:
    n = X.shape[0]
    R = Y - X @ W
    scale = min(1.0, alpha / max(float(np.linalg.norm(X.T @ R, axis=1).max()) / n, 1e-300))
    U = scale * R
    return objective(X, Y, W, alpha) - (float(np.sum(U * Y)) - 0.5 * float(np.sum(U * U))) / n


def solvers(threads, max_time):
    def mtlx_fit(X, Y, alpha, tol):
        return mtlx.MultiTaskRegressor(penalty="l21", alpha=alpha, fit_intercept=False, tol=tol, max_iter=1_000_000,
                                       n_threads=threads, callback=time_guard(max_time)).fit(X, Y).coef_.T

    def sklearn_fit(X, Y, alpha, tol):
        return MultiTaskElasticNet(alpha=alpha, l1_ratio=1.0, fit_intercept=False, tol=tol,
                                   max_iter=100_000).fit(X, Y).coef_.T

    fits = {"mtlx": mtlx_fit, "sklearn": sklearn_fit}
    versions = {"mtlx": mtlx.__version__, "sklearn": sklearn.__version__}
    try:
        import skglm

        def skglm_fit(X, Y, alpha, tol):
            return skglm.MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=1000).fit(X, Y).coef_.T

        fits["skglm"] = skglm_fit
        versions["skglm"] = skglm.__version__
    except Exception as exc:
        versions["skglm"] = f"skipped: {exc!r}"
    return fits, versions


def run_case(case, fits, args) -> dict:
    name, n, d, T, density = case
    X, Y = make_problem(name, n, d, T, density, args.seed)
    alpha = 0.1 * float(np.linalg.norm(X.T @ Y, axis=1).max()) / X.shape[0]
    refs = {k: fits[k](X, Y, alpha, args.ref_tol) for k in ("mtlx", "sklearn")}
    F_refs = {k: objective(X, Y, W, alpha) for k, W in refs.items()}
    best = min(F_refs, key=F_refs.get)
    F_star = F_refs[best]
    row = dict(case=name, n=X.shape[0], d=X.shape[1], T=T, nnz=int(X.nnz), alpha=alpha, F_star=F_star,
               ref=best, ref_gap=duality_gap(X, Y, refs[best], alpha) / F_star, solvers={})
    for solver, fit in fits.items():
        summary, W = time_to_target(lambda tol, fit=fit: fit(X, Y, alpha, tol),
                                    lambda W: (objective(X, Y, W, alpha) - F_star) / F_star,
                                    args.target, args.max_time, args.repeats, args.repeat_below)
        if W is not None:
            summary["active_rows"] = int(np.count_nonzero(np.linalg.norm(W, axis=1)))
        row["solvers"][solver] = summary
    peers = [s["time"] for k, s in row["solvers"].items() if k != "mtlx" and s["reached"]]
    fastest = min(peers) if peers else float("nan")
    row["fastest_peer_time"] = fastest
    row["speedup_vs_fastest_peer"] = fastest / row["solvers"]["mtlx"]["time"] if row["solvers"]["mtlx"]["reached"] \
        else float("nan")
    return row


def print_case(r) -> None:
    load = r["load"]
    print(f"\n{r['case']} {r['n']} x {r['d']} (nnz {r['nnz']}), T={r['T']}  F*={r['F_star']:.12g} ({r['ref']}, "
          f"gap/F*={r['ref_gap']:.1e})  load {load['before'][0]:.2f}->{load['after'][0]:.2f}"
          f"{' (HIGH)' if load['high'] else ''}")
    print(f"  {'solver':8s} {'time s':>9s} {'tol':>8s} {'rel subopt':>10s} {'active':>7s}")
    for name, s in r["solvers"].items():
        tol = f"{s['tol']:.1e}" if s["reached"] else "-"
        print(f"  {name:8s} {s['time']:9.2f} {tol:>8s} {s['subopt']:10.1e} {s.get('active_rows', -1):7d}"
              + ("" if s["reached"] else "  (target not reached)"), flush=True)
    print(f"  mtlx vs the fastest peer: {r['speedup_vs_fastest_peer']:.2f}x")


def main(argv=None) -> None:
    args = parse_args(argv)
    cases = CASES + (FULL if args.full else [])
    fits, versions = solvers(args.threads, args.max_time)
    rows = []
    print(f"sparse X, l21 least squares, {args.threads} thread(s): time to (F - F*)/F* <= {args.target:g}")
    with blas_limit(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X, Y = make_problem("synthetic", 500, 300, 3, 0.05, 1)  # warm-up: imports, numba's compilation
        for fit in fits.values():
            fit(X, Y, 0.1 * float(np.linalg.norm(X.T @ Y, axis=1).max()) / 500, 1e-4)
        for case in cases:
            r = measured(lambda case=case: run_case(case, fits, args), args.threads, args)
            rows.append(r)
            print_case(r)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(machine=machine_info(), versions=versions, threads=args.threads,
                                        target=args.target, ref_tol=args.ref_tol, max_time=args.max_time,
                                        cases=rows), indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
