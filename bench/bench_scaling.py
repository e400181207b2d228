"""Scaling curves: time per solver iteration against T, m_t and d, mtlx beside a numpy baseline.

What it measures
----------------
Three sweeps, each varying one of T (tasks), m_t (rows per task) and d (features) with the
other two fixed, on random stacked least-squares tasks with the l21 penalty:

* ``mtlx``: ``mtlx.solve`` run for a fixed number of iterations (``tol=0``), wall time divided
  by the iterations: everything an iteration costs, Python included (one gradient pass, one
  value pass for the line search, the prox, the vector updates);
* ``numpy``: the same iteration in plain numpy: a per-task loop of ``X_t @ w_t`` and
  ``X_t.T @ r_t`` for the gradient, the l21 prox, and a second per-task loop for the value at
  the new point.

The log-log slope of each curve is fitted and printed (1 means linear in that size; below 1
at small sizes means fixed per-call costs dominate). A PNG with the three panels and a JSON
with every timing go to ``bench/results/``. Ratios are measured in one run; absolute times are
context only (the machine is shared).

How to run
----------
::

    python bench/bench_scaling.py              # full sweeps (a few minutes)
    python bench/bench_scaling.py --quick      # small sweeps, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import mtlx

RESULTS = Path(__file__).resolve().parent / "results"

#: name -> (sizes swept, the fixed (T, m_t, d) the sweep starts from)
SWEEPS = {
    "T": ((10, 30, 100, 300, 1000), (None, 200, 50)),
    "m_t": ((50, 200, 1000, 5000, 20000), (50, None, 50)),
    "d": ((10, 30, 100, 300, 1000), (50, 500, None)),
}
QUICK = {
    "T": ((5, 20, 80), (None, 100, 20)),
    "m_t": ((50, 200, 800), (10, None, 20)),
    "d": ((10, 40, 160), (10, 200, None)),
}


def problem(T: int, m: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((T * m, d))
    W = rng.standard_normal((d, T)) * (rng.random(d) < 0.3)[:, None]
    y = np.einsum("ij,ij->i", X, np.repeat(W.T, m, axis=0)) + 0.1 * rng.standard_normal(T * m)
    return X, y, np.repeat(np.arange(T), m)


def numpy_iteration(Xs, ys, Wt, tau):
    """One proximal-gradient iteration in numpy: gradient loop, l21 prox, value loop."""
    G = np.empty_like(Wt)
    for t, (X, y) in enumerate(zip(Xs, ys)):
        r = X @ Wt[t] - y
        G[t] = X.T @ r / len(y)
    V = Wt - G
    norms = np.linalg.norm(V, axis=0)
    V *= np.maximum(0.0, 1.0 - tau / np.maximum(norms, 1e-300))
    value = 0.0
    for t, (X, y) in enumerate(zip(Xs, ys)):
        r = X @ V[t] - y
        value += 0.5 * r @ r / len(y)
    return V, value


def time_per_iteration(fn, min_time: float) -> float:
    """Best of 3 samples of (time / iterations), each sample lasting at least ``min_time``."""
    best = np.inf
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while True:
            n += fn()
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = min(best, elapsed / n)
    return best


def measure(T: int, m: int, d: int, n_threads: int, min_time: float) -> dict:
    X, y, task = problem(T, m, d)
    data = mtlx.TaskData.from_stacked(X, y, task)
    alpha = 0.01
    iters = 20

    def run_mtlx():
        res = mtlx.solve(data, penalty="l21", alpha=alpha, tol=0.0, max_iter=iters, n_threads=n_threads, solver="fista")
        return res.n_iter

    Xs = [X[t * m : (t + 1) * m] for t in range(T)]
    ys = [y[t * m : (t + 1) * m] for t in range(T)]
    Wt = np.zeros((T, d))

    def run_numpy():
        for _ in range(iters):
            numpy_iteration(Xs, ys, Wt, alpha)
        return iters

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        t_mtlx = time_per_iteration(run_mtlx, min_time)
    t_numpy = time_per_iteration(run_numpy, min_time)
    return {"T": T, "m_t": m, "d": d, "mtlx_s": t_mtlx, "numpy_s": t_numpy, "ratio": t_numpy / t_mtlx,
            "bytes_X": X.nbytes}


def slope(x, t) -> float:
    return float(np.polyfit(np.log(x), np.log(t), 1)[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="time per solver iteration against T, m_t and d")
    parser.add_argument("--quick", action="store_true", help="small sweeps (seconds)")
    parser.add_argument("--threads", type=int, default=None, help="core threads (default all)")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per timing sample")
    parser.add_argument("--out", default=str(RESULTS / "bench_scaling"), help="output path without suffix")
    args = parser.parse_args(argv)
    sweeps = QUICK if args.quick else SWEEPS
    try:
        import threadpoolctl

        limits = threadpoolctl.threadpool_limits(args.threads or os.cpu_count(), user_api="blas")
    except ImportError:
        limits = None
    results = {}
    print(f"{'sweep':5s} {'T':>6s} {'m_t':>7s} {'d':>6s} {'mtlx ms/it':>11s} {'numpy ms/it':>12s} {'ratio':>7s}")
    for name, (sizes, fixed) in sweeps.items():
        rows = []
        for size in sizes:
            T, m, d = (size if v is None else v for v in fixed)
            row = measure(T, m, d, args.threads, args.min_time)
            rows.append(row)
            print(f"{name:5s} {T:6d} {m:7d} {d:6d} {1e3 * row['mtlx_s']:11.3f} {1e3 * row['numpy_s']:12.3f} "
                  f"{row['ratio']:7.2f}")
        results[name] = {"rows": rows, "slope_mtlx": slope(sizes, [r["mtlx_s"] for r in rows]),
                         "slope_numpy": slope(sizes, [r["numpy_s"] for r in rows])}
        print(f"      slope of log time vs log {name}: mtlx {results[name]['slope_mtlx']:.2f}, "
              f"numpy {results[name]['slope_numpy']:.2f}")
    if limits is not None:
        limits.restore_original_limits()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "mtlx": mtlx.__version__,
            "threads": args.threads or os.cpu_count(), "dtype": "float64", "loss": "squared", "penalty": "l21"}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "sweeps": results}, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no figure (pip install 'mtlx[plot]')")
        return 0
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (name, res) in zip(axes, results.items()):
        sizes = [r[name] for r in res["rows"]]
        for key, label in (("mtlx_s", "mtlx"), ("numpy_s", "numpy loop")):
            fit = res["slope_mtlx" if key == "mtlx_s" else "slope_numpy"]
            ax.loglog(sizes, [1e3 * r[key] for r in res["rows"]], marker="o", label=f"{label} (slope {fit:.2f})")
        ax.set_xlabel(name)
        ax.set_ylabel("ms per iteration")
        fixed = {k: v for k, v in res["rows"][0].items() if k in ("T", "m_t", "d") and k != name}
        ax.set_title(", ".join(f"{k}={v}" for k, v in fixed.items()))
        ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
