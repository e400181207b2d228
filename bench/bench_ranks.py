"""How far results move with the number of MPI ranks: 1, 2 and 3 ranks on the same problems.

What it measures
----------------
For the squared loss and a mix of squared and logistic tasks (12 ragged tasks, d = 8,
intercepts, l2 = 0.05), each penalty below is solved with ``alpha = 0.05`` at ``tol`` 1e-6 (the
default) and 1e-12, once per rank count (``mpiexec -n N``, one thread per rank); the table is
the largest difference of (W, b) from the one-rank result, relative to its largest entry.
Sums over tasks are reduced in a different order on different rank counts, so the iterates
differ by rounding and a solve may stop an iteration earlier or later: the difference is of
the size of what the tolerance leaves, not of the tolerance itself. JSON to
``bench/results/bench_ranks.json``.

How to run
----------
::

    python bench/bench_ranks.py        # needs mpi4py and mpiexec (pip install "mtlx[mpi]")
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "bench_ranks.json"

JOB = r"""
import sys, warnings
import numpy as np
import mtlx
from mpi4py import MPI
from mtlx import penalties as P
comm = MPI.COMM_WORLD
warnings.simplefilter("ignore")
T, d = 12, 8
out = {}
for loss in ("squared", "mixed"):
    rng = np.random.default_rng(4)
    sizes = rng.integers(20, 80, T)
    tasks = []
    for t, m in enumerate(sizes):
        X = rng.standard_normal((m, d))
        y = X @ rng.standard_normal(d) + 0.3 * rng.standard_normal(m)
        tasks.append((X, np.where(y > 0, 1.0, -1.0) if loss == "mixed" and t % 2 else y))
    losses = ["logistic" if loss == "mixed" and t % 2 else "squared" for t in range(T)]
    mine = mtlx.distributed.assign_tasks(sizes, comm.size)[comm.rank]
    local = mtlx.TaskData.from_tasks([tasks[t] for t in mine], task_ids=mine)
    for name, pen in [("l1", "l1"), ("l21", "l21"), ("trace", "trace"), ("mean", "mean"),
                      ("clustered + l1", P.Clustered(2, 0.5) + P.L1(0.5)),
                      ("robust (Superpose)", P.Superpose(P.Trace(1), P.L21Columns(0.8)))]:
        for tol in (1e-6, 1e-12):
            res = mtlx.solve(local, loss=losses, penalty=pen, alpha=0.05, l2=0.05, fit_intercept=True, tol=tol,
                             max_iter=50000, comm=comm)
            out[f"{loss}|{name}|{tol:g}"] = np.concatenate([res.W.ravel(), res.b])
if comm.rank == 0:
    np.savez(sys.argv[1], **out)
"""


def main() -> None:
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("no mpiexec: pip install 'mtlx[mpi]'")
    env = dict(os.environ, MTLX_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "job.py"
        script.write_text(JOB)
        for n in (1, 2, 3):
            out = Path(tmp) / f"out_{n}.npz"
            subprocess.run([mpiexec, "-n", str(n), sys.executable, str(script), str(out)], env=env, check=True)
            results[n] = dict(np.load(out))
    rows = []
    print(f"{'loss':8s} {'penalty':20s} {'tol':>6s} {'2 ranks':>9s} {'3 ranks':>9s}   (max |diff| / max |1-rank|)")
    for key, ref in results[1].items():
        loss, name, tol = key.split("|")
        scale = np.abs(ref).max()
        diffs = [float(np.abs(results[n][key] - ref).max() / scale) for n in (2, 3)]
        rows.append(dict(loss=loss, penalty=name, tol=float(tol), diff_2_ranks=diffs[0], diff_3_ranks=diffs[1]))
        print(f"{loss:8s} {name:20s} {tol:>6s} {diffs[0]:9.1e} {diffs[1]:9.1e}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(dict(rows=rows), indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
