"""The default thread count against one thread, on an idle machine and with a core taken.

What it measures
----------------
The demo's fits (the school data, split 0: every method of ``mtlx.demo`` at its grid's middle
strength, intercepts, tol 1e-6) and one large problem (shared X, n = 40,000, d = 500, T = 20,
l21 least squares by FISTA, 30 iterations), each timed with the default thread count
(``n_threads=None``, no ``MTLX_NUM_THREADS``) and with ``n_threads=1``, alternating, best of
``--repeats``:

* idle: nothing else running (this machine is shared: see the load column);
* loaded: another process spins on one core for the whole measurement (``--busy``, default 1).

Target (the hardening issue): under load, the default at most 1.2x the one-thread time; idle,
the default no slower than one thread on the demo's fits and faster on the large problem.
JSON to ``bench/results/bench_threads.json``.

How to run
----------
::

    python bench/bench_threads.py
    python bench/bench_threads.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
import warnings
from pathlib import Path

import numpy as np
from bench_grad import machine_info

import mtlx
from mtlx.datasets import load_school
from mtlx.demo import METHODS, _model, _standardize, _task_ids

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_threads.json"


def spin(stop) -> None:
    """Keep one core busy until ``stop`` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def demo_fits():
    """(label, fit()) for each demo method at the middle of its grid, on split 0's training part."""
    school = load_school()
    train, _ = school.splits[0]
    X = _standardize(school.X, train)[train]
    y, task = school.y[train], school.task[train]
    fits = []
    for method in METHODS:
        value = method.grid[len(method.grid) // 2]

        def fit(n_threads, method=method, value=value):
            model = _model(method, value, 1e-6).set_params(warm_start=False, n_threads=n_threads)
            model.fit(X, y, task=_task_ids(method, task))

        fits.append((f"demo: {method.label}", fit))
    return fits


def large_fit():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40_000, 500))
    W = rng.standard_normal((500, 20)) * (rng.random(500) < 0.1)[:, None]
    Y = X @ W + rng.standard_normal((40_000, 20))
    data = mtlx.TaskData.from_shared(X, Y)

    def fit(n_threads):
        mtlx.solve(data, penalty="l21", alpha=0.01, tol=0.0, max_iter=30, gram=False, n_threads=n_threads,
                   solver="fista")

    return "shared X 40000 x 500, T=20, 30 FISTA iterations", fit


def best_of(fit, n_threads, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fit(n_threads)
        best = min(best, time.perf_counter() - start)
    return best


def measure(cases, repeats: int) -> list:
    rows = []
    for label, fit in cases:
        fit(1)  # warm-up: imports, first-call costs
        default, one = np.inf, np.inf
        for _ in range(repeats):  # alternate, so that load changes hit both alike
            default = min(default, best_of(fit, None, 1))
            one = min(one, best_of(fit, 1, 1))
        rows.append(dict(case=label, default_s=default, one_thread_s=one, ratio=default / one,
                         load=os.getloadavg()[0]))
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--busy", type=int, default=1, help="spinning processes in the loaded runs")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    os.environ.pop("MTLX_NUM_THREADS", None)
    warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
    cases = demo_fits() + [large_fit()]
    results = {}
    for phase in ("idle", "loaded"):
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(args.busy if phase == "loaded"
                                                                                      else 0)]
        for s in spinners:
            s.start()
        try:
            results[phase] = measure(cases, args.repeats)
        finally:
            stop.set()
            for s in spinners:
                s.join()
        print(f"{phase} ({'' if phase == 'idle' else f'{args.busy} process spinning, '}"
              f"{os.cpu_count()} cores): default threads vs 1 thread, best of {args.repeats}")
        print(f"  {'case':58s} {'default s':>10s} {'1 thread s':>11s} {'ratio':>6s} {'load':>5s}")
        for r in results[phase]:
            print(f"  {r['case']:58s} {r['default_s']:10.3f} {r['one_thread_s']:11.3f} {r['ratio']:6.2f} "
                  f"{r['load']:5.1f}")
    worst_loaded = max(r["ratio"] for r in results["loaded"])
    print(f"target: loaded ratio <= 1.2 (worst {worst_loaded:.2f}); idle: demo ratios <= 1, large problem < 1")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(machine=machine_info(), repeats=args.repeats, busy=args.busy,
                                        mtlx=mtlx.__version__, results=results), indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
