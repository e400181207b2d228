"""Benchmark the distributed solve: time per iteration and Allreduce traffic for 1, 2, 4 ranks.

What it measures
----------------
A compute-heavy problem (default T=200 tasks of m_t=5000 rows and d=100 features, squared
loss, 800 MB of float64 X in all) is split over P ranks by :func:`mtlx.distributed.assign_tasks`;
each rank generates only its own tasks (task t from its own seed, so the data do not depend on
P). For each penalty (l1, l21, trace) the solve runs a fixed number of iterations (``tol=0``)
after a warm-up solve, and rank 0 reports, per iteration:

* ``time``: wall time per iteration (the slowest rank: all end together);
* ``allreduce``: Allreduce calls and bytes (per rank) and the time spent inside them, which
  includes latency, bandwidth and waiting for the slowest rank (load imbalance);
* ``efficiency``: ``time(1 rank) / (P * time(P ranks))``.

Each rank uses ``--threads`` core threads (default 1). Where P ranks exceed the cores, ranks
share cores (oversubscribed) and the efficiency says more about the machine than about mtlx;
the JSON records the core count. See bench/README.md for the scaling model built on these
numbers.

How to run
----------
::

    python bench/bench_mpi.py                         # 1, 2, 4 ranks; bench/results/bench_mpi.json
    python bench/bench_mpi.py --quick                 # small problem, a few seconds
    python bench/bench_mpi.py --ranks 1,2 --tasks 100 --rows 2000 --features 50 --iters 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import mtlx

PENALTIES = ("l1", "l21", "trace")


def task_data(t: int, rows: int, d: int, seed: int):
    rng = np.random.default_rng([seed, t])
    X = rng.standard_normal((rows, d))
    return X, X @ rng.standard_normal(d) + rng.standard_normal(rows)


def worker(args) -> None:
    from mpi4py import MPI

    from mtlx.distributed import MPIReduction

    comm = MPI.COMM_WORLD
    sizes = np.full(args.tasks, args.rows, dtype=np.int64)
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    local = mtlx.TaskData.from_tasks([task_data(t, args.rows, args.features, args.seed) for t in mine],
                                     task_ids=mine)
    reductions = []
    original = MPIReduction.__init__

    def keep(self, *a, **k):  # remember each solve's reduction to read its Allreduce timer
        original(self, *a, **k)
        reductions.append(self)

    MPIReduction.__init__ = keep
    out = {}
    for penalty in PENALTIES:
        kw = dict(penalty=penalty, alpha=args.alpha, tol=0.0, n_threads=args.threads, comm=comm)
        runs = []
        for max_iter in (2, 2 + args.iters):  # the difference of the two is the steady state
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
                comm.Barrier()
                start = time.perf_counter()
                res = mtlx.solve(local, max_iter=max_iter, **kw)
                seconds = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
            runs.append((res, seconds, comm.allreduce(reductions[-1].seconds, op=MPI.MAX)))
        (r0, s0, c0), (r1, s1, c1) = runs
        n = r1.n_iter - r0.n_iter
        out[penalty] = dict(time_per_iter=(s1 - s0) / n, allreduce_time_per_iter=c1 / r1.n_iter,
                            allreduce_calls_per_iter=(r1.n_allreduce - r0.n_allreduce) / n,
                            allreduce_bytes_per_iter=(r1.allreduce_bytes - r0.allreduce_bytes) / n,
                            evals_per_iter=(r1.n_evals - r0.n_evals) / n, objective=r1.objective)
    if comm.rank == 0:
        print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", default="1,2,4")
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="T=40, m_t=500, d=20")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_mpi.json"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.tasks, args.rows, args.features = 40, 500, 20
    if args.worker:
        worker(args)
        return
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    env = dict(os.environ, MTLX_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS="1")
    rows = {}
    for n in (int(r) for r in args.ranks.split(",")):
        cmd = [mpiexec, "-n", str(n), sys.executable, __file__, "--worker", *sys.argv[1:]]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{n} ranks failed:\n{proc.stderr[-3000:]}")
        rows[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = min(rows)
    print(f"T={args.tasks} m_t={args.rows} d={args.features} float64, {args.threads} thread(s) per rank, "
          f"{os.cpu_count()} cores")
    print(f"{'penalty':8} {'ranks':>5} {'ms/iter':>9} {'eff':>5} {'allreduce/iter':>15} {'bytes/iter':>11} "
          f"{'ms in allreduce':>16}")
    for penalty in PENALTIES:
        t1 = rows[base][penalty]["time_per_iter"] * base
        for n, r in rows.items():
            r = r[penalty]
            r["efficiency"] = t1 / (n * r["time_per_iter"])
            print(f"{penalty:8} {n:5d} {1e3 * r['time_per_iter']:9.1f} {r['efficiency']:5.2f} "
                  f"{r['allreduce_calls_per_iter']:15.2f} {r['allreduce_bytes_per_iter']:11.0f} "
                  f"{1e3 * r['allreduce_time_per_iter']:16.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(
        machine=dict(node=platform.node(), cpu_count=os.cpu_count(), python=platform.python_version()),
        shape=dict(tasks=args.tasks, rows=args.rows, features=args.features, dtype="float64"),
        threads_per_rank=args.threads, iters=args.iters, results=rows), indent=2))


if __name__ == "__main__":
    main()
