"""Peak memory of a fit against the size of its data.

What it measures
----------------
A stacked dataset of ``--gb`` gigabytes (X float64 with ``--features`` columns, ``--tasks``
tasks of equal size) is written once as a folder of ``.npy`` files. A child process then loads
it with ``mtlx.io.load_dataset`` (memory-mapped: X is never copied, pages come in as the core
reads them) and runs ``mtlx.solve`` for ``--iters`` iterations of l21 least squares. Its peak
resident set size (``wait4`` rusage, the number ``/usr/bin/time -v`` prints) is compared with

    data size + interpreter baseline (a child that only imports mtlx) + O(dT) solver state

The target is a peak under 1.15x the data size plus those terms. A second child does the same
from an ``.npz`` file (which numpy reads into memory, so the same data is held once, in RAM).
With ``--cd``, a shared-input dataset (one X for all tasks, Y with one column per task) of the
same size is fitted by ``MultiTaskRegressor(penalty="l21")``, whose default engine is working
sets + coordinate descent (Gram rows of the working set, statistics over blocks of X's rows).

How to run
----------
::

    python bench/bench_memory.py              # 4 GB (writes /tmp/mtlx_bench_memory, ~4 GB of disk)
    python bench/bench_memory.py --gb 0.5     # a quicker look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = r"""
import json, sys, time, warnings
import numpy as np
import mtlx
from mtlx.io import load_dataset
path, iters, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
start = time.perf_counter()
if iters and mode == "csr":
    import scipy.sparse as sp
    with np.load(path + "/csr.npz") as z:  # the CSR arrays as saved: no dense copy, indices int32
        X = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        Y = z["Y"]
    data = mtlx.TaskData.from_shared(X, Y)
    del X, Y
    top = mtlx.alpha_max(data, "l21")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        model = mtlx.MultiTaskRegressor(penalty="l21", alpha=0.1 * top, fit_intercept=True, max_iter=iters).fit(data)
    print(json.dumps({"seconds": time.perf_counter() - start, "n_iter": model.n_iter_, "solver": model.solver_,
                      "W_bytes": model.coef_.nbytes, "T": data.n_tasks, "d": data.n_features, "nnz": int(data.X.nnz),
                      "support": int((model.coef_ != 0).any(axis=0).sum())}))
elif iters and mode == "cd":
    data = load_dataset(path)
    top = mtlx.alpha_max(data, "l21", fit_intercept=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        model = mtlx.MultiTaskRegressor(penalty="l21", alpha=0.05 * top, max_iter=iters).fit(data)
    print(json.dumps({"seconds": time.perf_counter() - start, "n_iter": model.n_iter_, "solver": model.solver_,
                      "W_bytes": model.coef_.nbytes, "T": data.n_tasks, "d": data.n_features,
                      "support": int((model.coef_ != 0).any(axis=0).sum())}))
elif iters:
    data = load_dataset(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        res = mtlx.solve(data, penalty="l21", alpha=1e-3, tol=0.0, max_iter=iters, solver="fista")
    print(json.dumps({"seconds": time.perf_counter() - start, "n_iter": res.n_iter,
                      "W_bytes": res.W.nbytes, "T": data.n_tasks, "d": data.n_features}))
else:
    import mtlx.estimators  # scikit-learn's modules, which the estimator fits import: part of the baseline
    print(json.dumps({"seconds": 0.0}))
# VmHWM: this address space's peak resident set (the child's own, not the parent's it forked from)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(int(hwm.split()[1]) * 1024)
"""


def make_dataset(folder: Path, gb: float, d: int, T: int, seed: int = 0) -> int:
    """Write X (float64), y, task as .npy files in chunks; returns the bytes of X + y + task."""
    n = int(gb * 1e9 / (8 * (d + 2)))
    n -= n % T
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"done_{n}_{d}_{T}"
    if not marker.exists():
        rng = np.random.default_rng(seed)
        X = np.lib.format.open_memmap(folder / "X.npy", mode="w+", dtype=np.float64, shape=(n, d))
        y = np.lib.format.open_memmap(folder / "y.npy", mode="w+", dtype=np.float64, shape=(n,))
        w = rng.standard_normal(d) * (rng.random(d) < 0.2)
        step = max(1, 2**24 // d)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            X[lo:hi] = rng.standard_normal((hi - lo, d))
            y[lo:hi] = X[lo:hi] @ w + 0.1 * rng.standard_normal(hi - lo)
        X.flush()
        y.flush()
        del X, y
        np.save(folder / "task", np.repeat(np.arange(T, dtype=np.int64), n // T))
        marker.touch()
    return sum((folder / f"{name}.npy").stat().st_size for name in ("X", "y", "task"))


def make_shared_dataset(folder: Path, gb: float, d: int, T: int, seed: int = 1) -> int:
    """Write X (float64) and Y (n x T) as .npy files in chunks, 10% of the rows of W active;
    returns the bytes of X + Y."""
    n = int(gb * 1e9 / (8 * (d + T)))
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"done_{n}_{d}_{T}"
    if not marker.exists():
        rng = np.random.default_rng(seed)
        X = np.lib.format.open_memmap(folder / "X.npy", mode="w+", dtype=np.float64, shape=(n, d))
        Y = np.lib.format.open_memmap(folder / "Y.npy", mode="w+", dtype=np.float64, shape=(n, T))
        W = rng.standard_normal((d, T)) * (rng.random(d) < 0.1)[:, None]
        step = max(1, 2**24 // (d + T))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            X[lo:hi] = rng.standard_normal((hi - lo, d))
            Y[lo:hi] = X[lo:hi] @ W + 0.5 * rng.standard_normal((hi - lo, T))
        X.flush()
        Y.flush()
        del X, Y
        marker.touch()
    return sum((folder / f"{name}.npy").stat().st_size for name in ("X", "Y"))


def make_csr_dataset(folder: Path, n: int, d: int, nnz: int, T: int, seed: int = 2) -> int:
    """Write a random CSR X (n x d, about nnz entries; float64 values, int32 indices) and Y = X W +
    noise (n x T, 10% of W's rows active) as csr.npz; returns the bytes of X's arrays + Y."""
    import scipy.sparse as sp

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "csr.npz"
    marker = folder / f"done_{n}_{d}_{nnz}_{T}"
    if not marker.exists():
        rng = np.random.default_rng(seed)
        X = sp.random(n, d, density=nnz / (n * d), format="csr", random_state=rng, dtype=np.float64)
        W = rng.standard_normal((d, T)) * (rng.random(d) < 0.1)[:, None]
        Y = np.asarray(X @ W)
        Y += 0.5 * Y.std() * rng.standard_normal(Y.shape)
        np.savez(path, data=X.data, indices=X.indices.astype(np.int32), indptr=X.indptr.astype(np.int32),
                 shape=np.array(X.shape), Y=Y)
        marker.touch()
    with np.load(path) as z:
        return sum(z[name].nbytes for name in ("data", "indices", "indptr", "Y"))


def peak_rss(path: Path, iters: int, mode: str = "fista") -> tuple[int, dict]:
    """Run the child; returns (its peak RSS in bytes, its JSON output).

    The child reports VmHWM itself: the rusage of a child counts the resident set of the
    parent it was forked from, which here holds the freshly written dataset.
    """
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(iters), mode], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"child failed on {path}: {done.stderr[-2000:]}")
    *_, info, hwm = done.stdout.strip().splitlines()
    return int(hwm), json.loads(info)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="peak memory of a fit against its data size")
    parser.add_argument("--gb", type=float, default=4.0, help="dataset size in GB (default 4)")
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--iters", type=int, default=3, help="solver iterations (default 3)")
    parser.add_argument("--dir", default="/tmp/mtlx_bench_memory", help="where the dataset is written")
    parser.add_argument("--npz", action="store_true", help="also measure loading from one .npz file")
    parser.add_argument("--cd", action="store_true",
                        help="also a shared-input dataset fitted by MultiTaskRegressor(penalty='l21') (working sets)")
    parser.add_argument("--cd-tasks", type=int, default=20, help="tasks of the shared-input dataset (default 20)")
    parser.add_argument("--cd-epochs", type=int, default=2000, help="epoch cap of the working-set fit")
    parser.add_argument("--csr", action="store_true",
                        help="also a sparse shared X (CSR, --csr-rows x --csr-features, --csr-nnz entries) fitted by "
                             "MultiTaskRegressor(penalty='l21'): target peak under 1.5x X's arrays + Y, plus O(dT)")
    parser.add_argument("--csr-rows", type=int, default=1_000_000)
    parser.add_argument("--csr-features", type=int, default=100_000)
    parser.add_argument("--csr-nnz", type=int, default=10_000_000)
    parser.add_argument("--csr-tasks", type=int, default=4)
    parser.add_argument("--csr-epochs", type=int, default=200, help="epoch cap of the sparse fit")
    parser.add_argument("--only-csr", action="store_true", help="measure the CSR case only")
    parser.add_argument("--out", default=str(RESULTS / "bench_memory.json"))
    args = parser.parse_args(argv)

    folder = Path(args.dir) / "data"
    data_bytes = 0 if args.only_csr else make_dataset(folder, args.gb, args.features, args.tasks)
    baseline, _ = peak_rss(folder, 0)
    rows = []
    sources = [] if args.only_csr else [("folder (memory-mapped)", folder)]
    if args.npz:
        npz = Path(args.dir) / "data.npz"
        if not npz.exists():
            np.savez(npz, **{name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("X", "y", "task")})
        sources.append(("npz (read into RAM)", npz))
    print(f"data {data_bytes / 1e9:.2f} GB, interpreter baseline {baseline / 1e6:.0f} MB")
    print(f"{'source':24s} {'peak RSS GB':>12s} {'(peak - baseline) / data':>25s} {'fit s':>7s}")
    runs = [(label, path, args.iters, "fista", data_bytes) for label, path in sources]
    if args.cd:
        shared = Path(args.dir) / "shared"
        shared_bytes = make_shared_dataset(shared, args.gb, args.features, args.cd_tasks)
        runs.append(("shared X, working sets", shared, args.cd_epochs, "cd", shared_bytes))
    if args.csr or args.only_csr:
        sparse_dir = Path(args.dir) / "csr"
        csr_bytes = make_csr_dataset(sparse_dir, args.csr_rows, args.csr_features, args.csr_nnz, args.csr_tasks)
        runs.append(("sparse X (CSR), l21", sparse_dir, args.csr_epochs, "csr", csr_bytes))
    for label, path, iters, mode, size in runs:
        start = time.perf_counter()
        peak, info = peak_rss(path, iters, mode)
        ratio = (peak - baseline) / size
        rows.append({"source": label, "peak_rss": peak, "ratio": ratio, "data_bytes": size, "child": info,
                     "wall_s": time.perf_counter() - start})
        print(f"{label:24s} {peak / 1e9:12.2f} {ratio:25.3f} {info['seconds']:7.1f}")
    dT = args.features * args.tasks * 8
    print(f"target: (peak - baseline) / data <= 1.15 (plus O(dT) = {dT / 1e6:.2f} MB per copy of W); the CSR case "
          f"<= 1.5 plus O(dT) = {args.csr_features * args.csr_tasks * 8 / 1e6:.1f} MB per copy of W")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "data_bytes": data_bytes, "baseline_rss": baseline, "features": args.features,
        "tasks": args.tasks, "iters": args.iters, "dtype": "float64", "results": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
