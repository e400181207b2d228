"""Shared-trunk networks: training throughput against PyTorch, and accuracy beside the linear MTL models.

What it measures
----------------
Issue 14. **Throughput**: the same network (one shared ReLU layer of ``--hidden`` units, one
linear head per task, squared loss, ridge ``l2`` on the weights) trained by mtlx's native core
and by PyTorch (CPU), same threads, same batch size, measured in one run:

* ``adam``: epochs per second of minibatch Adam (mtlx: ``fit_shared_trunk(solver="adam")``,
  batches drawing every task in proportion; PyTorch: ``torch.optim.Adam`` over shuffled row
  batches, the model and loss written for speed: all heads as one matrix, the batch loss one
  expression, no DataLoader);
* ``full``: full-batch loss-and-gradient evaluations per second (one L-BFGS step's work: mtlx's
  ``TrunkObjective``, PyTorch's forward + backward on the whole data);
* ``floor_s`` (the shared X): what bounds both libraries, timed alone in the same run: the five
  layer products of a pass over the rows in the core's 256-row blocks, on one thread (with k
  threads a k-th of it, as mtlx's threads take whole blocks), by mtlx's register-tiled GEMM and
  by numpy's matmul (OpenBLAS),
  and gathering an epoch's shuffled batches (numpy's fancy indexing).

Cases: ``school`` (the bundled 139 schools, stacked rows, 27 standardized features, hidden 128)
and ``synthetic`` (one shared X, n = 100,000, d = 100, T = 20, hidden 128). The issue's target:
at least 3x PyTorch's throughput on these tabular sizes.

**Accuracy** (``--accuracy``): the demo's protocol (:mod:`mtlx.demo`) on all 10 school splits and
10 computer-survey splits: test explained variance (mean +- std) of the shared trunk beside the
linear rows.

JSON to ``bench/results/bench_shared_trunk.json``.

How to run
----------
::

    pip install torch==2.13.0          # CPU wheel; the throughput part skips without it
    python bench/bench_shared_trunk.py                 # throughput, 1 and 2 threads
    python bench/bench_shared_trunk.py --accuracy      # + the demo's tables (about two minutes)
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
from mtlx._reduction import LocalReduction
from mtlx.datasets import load_school
from mtlx.losses import get_loss
from mtlx.trunk.network import TrunkNetwork
from mtlx.trunk.objective import Rows, TrunkObjective

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_shared_trunk.json"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3, help="Adam epochs timed per run")
    p.add_argument("--repeats", type=int, default=5,
                   help="rounds: each times mtlx then PyTorch once; the best of each side is compared")
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--cases", nargs="+", default=["school", "synthetic"], choices=["school", "synthetic"])
    p.add_argument("--accuracy", action="store_true", help="also run the demo's accuracy tables")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


def school_case(dtype=np.float64):
    school = load_school()
    X = school.X[:, :-1]
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = (school.y - school.y.mean()) / school.y.std()
    return "school", mtlx.TaskData.from_stacked(X.astype(dtype), y.astype(dtype), school.task)


def synthetic_case(n=100_000, d=100, T=20, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = np.tanh(X @ rng.standard_normal((d, 8)) / np.sqrt(d)) @ rng.standard_normal((8, T))
    Y += 0.3 * rng.standard_normal((n, T))
    return "synthetic", mtlx.TaskData.from_shared(X.astype(dtype), Y.astype(dtype))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of(repeats, fn):
    return min(timed(fn) for _ in range(repeats))


def side_by_side(repeats, mine, theirs):
    """Rounds of one mtlx timing then one PyTorch timing: a slow phase of this shared machine then
    falls on both sides alike (timing all of one side first, the two were minutes apart). Returns
    the two lists of seconds, round by round."""
    ours, peer = [], []
    for _ in range(repeats):
        ours.append(timed(mine))
        peer.append(timed(theirs))
    return ours, peer


def ratio_entry(units: float, ours: list, peer: list) -> dict:
    """Rates (units per second) of the best round of each side, their ratio, and the spread of the
    per-round ratios (PyTorch's time over mtlx's, in the same round)."""
    rounds = np.asarray(peer) / np.asarray(ours)
    return {"mtlx": units / min(ours), "torch": units / min(peer), "ratio": min(peer) / min(ours),
            "round_ratios": {"min": float(rounds.min()), "median": float(np.median(rounds)),
                             "max": float(rounds.max())}}


# ------------------------------------------------------------------------------- mtlx
def mtlx_adam_seconds(data, hidden, batch_size, epochs, threads, l2):
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (max_iter epochs reached: by design)
            mtlx.fit_shared_trunk(data, hidden=(hidden,), solver="adam", batch_size=batch_size, max_iter=epochs,
                                  tol=0.0, l2=l2, n_threads=threads)

    return run


def mtlx_full_eval(data, hidden, threads, l2):
    net = TrunkNetwork(data.n_features, (hidden,), (), "relu", [1] * data.n_tasks)
    obj = TrunkObjective(net, [get_loss("squared")] * data.n_tasks, l2, False, LocalReduction(data.task_ids), threads)
    rows = Rows.of(data).normalized()
    theta = net.initial_params(0, range(data.n_tasks), np.float64)
    return lambda: obj(theta, rows)


# ------------------------------------------------------------------------------- PyTorch
def torch_setup(data, hidden, threads):
    import torch

    torch.set_num_threads(threads)
    X = torch.from_numpy(np.ascontiguousarray(data.X))
    T = data.n_tasks
    if data.layout == "shared":
        Y = torch.from_numpy(np.ascontiguousarray(data.Y))
        task = None
        row_weight = torch.full((X.shape[0],), 1.0 / X.shape[0], dtype=torch.float64)
    else:
        Y = torch.from_numpy(np.ascontiguousarray(data.y))
        sizes = np.diff(data.offsets)
        task = torch.from_numpy(np.repeat(np.arange(T), sizes))
        row_weight = torch.from_numpy(np.repeat(1.0 / (T * sizes), sizes))  # equal tasks, each its mean
    kind = torch.float32 if data.dtype == np.float32 else torch.float64
    row_weight = row_weight.to(kind)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden, dtype=kind), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, T, dtype=kind))
    return torch, X, Y, task, row_weight, model


def torch_loss(torch, model, X, Y, task, row_weight, l2, scale):
    out = model(X)
    if task is None:
        loss = 0.5 * ((out - Y) ** 2).mean()
    else:
        pred = out.gather(1, task[:, None])[:, 0]
        loss = scale * 0.5 * (row_weight * (pred - Y) ** 2).sum()
    if l2 == 0.0:
        return loss
    ridge = sum((p ** 2).sum() for name, p in model.named_parameters() if name.endswith("weight"))
    return loss + 0.5 * l2 * ridge


def torch_adam(data, hidden, batch_size, epochs, threads, l2):
    torch, X, Y, task, row_weight, model = torch_setup(data, hidden, threads)
    # The ridge term as Adam's weight decay on the weight matrices (added to their gradient inside
    # the optimizer's fused step: PyTorch's fastest way to the same update).
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if not name.endswith("weight")]
    opt = torch.optim.Adam([{"params": weights, "weight_decay": l2}, {"params": biases, "weight_decay": 0.0}],
                           lr=1e-3)
    n = X.shape[0]
    gen = torch.Generator().manual_seed(0)

    def run():
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            for lo in range(0, n, batch_size):
                idx = perm[lo: lo + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = torch_loss(torch, model, X[idx], Y[idx], None if task is None else task[idx],
                                  None if task is None else row_weight[idx], 0.0, n / len(idx))
                loss.backward()
                opt.step()

    return run


def torch_full_eval(data, hidden, threads, l2):
    torch, X, Y, task, row_weight, model = torch_setup(data, hidden, threads)

    def run():
        model.zero_grad(set_to_none=True)
        torch_loss(torch, model, X, Y, task, row_weight, l2, 1.0).backward()

    return run


K_EVALS = 10  # full-batch evaluations per timing


# ------------------------------------------------------------------------------- what bounds both
def products_floor(data, hidden, block, repeats, kernel="mtlx"):
    """Seconds of the five layer products of one pass over a shared X (forward, heads, the heads'
    gradient, the representation's, the trunk's), alone, in the core's blocks of ``block`` rows:
    what no implementation of the network on these products goes below. ``kernel="mtlx"``: the
    core's register-tiled GEMM (``_core.tile_gemm``, what mtlx runs on AVX2/AVX-512 CPUs; numpy's
    matmul where this CPU has none); ``"blas"``: numpy's matmul (OpenBLAS, under the enclosing
    thread limit), what a BLAS-based implementation runs."""
    X = np.ascontiguousarray(data.X[:block])
    rng = np.random.default_rng(0)
    W = rng.standard_normal((X.shape[1], hidden)).astype(X.dtype)
    A = rng.standard_normal((hidden, data.n_tasks)).astype(X.dtype)
    Z, out = np.empty((block, hidden), X.dtype), np.empty((block, data.n_tasks), X.dtype)
    dA, dH, gW = np.empty_like(A), np.empty_like(Z), np.empty_like(W)
    n_blocks = int(np.ceil(data.X.shape[0] / block))
    probe = np.zeros((1, 1), X.dtype)
    if kernel == "mtlx" and mtlx._core.tile_gemm(probe, probe, probe.copy(), False, 1):
        def product(a, b, c):
            mtlx._core.tile_gemm(a, b, c, False, 1)
    else:
        def product(a, b, c):
            np.matmul(a, b, out=c)

    def one_pass():
        for _ in range(n_blocks):
            product(X, W, Z)
            product(Z, A, out)
            product(Z.T, out, dA)
            product(out, A.T, dH)
            product(X.T, dH, gW)

    one_pass()
    return best_of(repeats, one_pass)


def gather_floor(data, batch_size, repeats):
    """Seconds to gather one epoch's shuffled minibatches (rows of X, the targets and the weights,
    as an Adam epoch on a shared X does), alone, by numpy's fancy indexing."""
    X, Y = data.X, data.Y
    Wt = np.ones_like(Y)
    perm = np.random.default_rng(0).permutation(X.shape[0])

    def one_epoch():
        for lo in range(0, len(perm), batch_size):
            idx = perm[lo: lo + batch_size]
            X[idx], Y[idx], Wt[idx]  # noqa: B018 (the copies are the work)

    one_epoch()
    return best_of(repeats, one_epoch)


def throughput(args) -> list:
    try:
        import torch
    except ImportError:
        print("torch is not installed: the throughput comparison is skipped (pip install torch==2.13.0)")
        return []
    rows = []
    l2 = 1e-4
    makers = {"school": school_case, "synthetic": synthetic_case}
    cases = [makers[name](dtype=np.dtype(dt)) for dt in args.dtypes for name in args.cases]
    for name, data in cases:
        n_batches = int(np.ceil(data.X.shape[0] / args.batch_size))
        for threads in args.threads:
            with blas_limit(threads):
                entry = {"case": name, "dtype": str(data.dtype), "threads": threads, "n_rows": int(data.X.shape[0]),
                         "d": data.n_features,
                         "tasks": data.n_tasks, "hidden": args.hidden, "batch_size": args.batch_size,
                         "batches_per_epoch": n_batches}
                ours, peer = side_by_side(
                    args.repeats, mtlx_adam_seconds(data, args.hidden, args.batch_size, args.epochs, threads, l2),
                    torch_adam(data, args.hidden, args.batch_size, args.epochs, threads, l2))
                entry["adam_epochs_per_s"] = ratio_entry(args.epochs, ours, peer)
                fm, ft = mtlx_full_eval(data, args.hidden, threads, l2), torch_full_eval(data, args.hidden, threads,
                                                                                           l2)
                fm()
                ft()
                ours, peer = side_by_side(args.repeats, lambda f=fm: [f() for _ in range(K_EVALS)],
                                          lambda f=ft: [f() for _ in range(K_EVALS)])
                entry["full_evals_per_s"] = ratio_entry(K_EVALS, ours, peer)
                if data.layout == "shared":
                    with blas_limit(1):  # (mtlx's threads take whole blocks, each one thread's products)
                        block = mtlx._core.trunk_block_rows
                        one = products_floor(data, args.hidden, block, args.repeats)
                        one_blas = products_floor(data, args.hidden, block, args.repeats, kernel="blas")
                    entry["floor_s"] = {"products_per_pass_one_thread": one, "products_per_pass": one / threads,
                                        "products_per_pass_one_thread_blas": one_blas,
                                        "gather_per_epoch": gather_floor(data, args.batch_size, args.repeats)}
            rows.append(entry)
            a, f = entry["adam_epochs_per_s"], entry["full_evals_per_s"]
            ra, rf = a["round_ratios"], f["round_ratios"]
            print(f"{name:10s} {data.dtype} threads={threads}  adam: mtlx {a['mtlx']:8.2f} epochs/s, torch "
                  f"{a['torch']:8.2f} ({a['ratio']:.2f}x; rounds {ra['min']:.2f}-{ra['max']:.2f})   full batch: mtlx "
                  f"{f['mtlx']:8.1f} evals/s, torch {f['torch']:8.1f} ({f['ratio']:.2f}x; rounds "
                  f"{rf['min']:.2f}-{rf['max']:.2f})")
            if "floor_s" in entry:
                fl = entry["floor_s"]
                print(f"{'':10s} the layer products alone: {1e3 * fl['products_per_pass']:.1f} ms per pass "
                      f"({1e3 * fl['products_per_pass_one_thread']:.1f} on one thread, shared by {threads}; "
                      f"numpy's BLAS: {1e3 * fl['products_per_pass_one_thread_blas']:.1f}); "
                      f"gathering an epoch's batches alone: {1e3 * fl['gather_per_epoch']:.1f} ms")
    rows_version = {"torch": torch.__version__, "blas": blas_kernels(torch)}
    return [rows_version] + rows


def blas_kernels(torch) -> dict:
    """Which kernels each side's layer products run: mtlx's register-tiled GEMM for this CPU's
    instruction set (``_core.active_isa``; OpenBLAS, through SciPy, where it has neither AVX2 nor
    AVX-512), the kernel set OpenBLAS picked for the CPU (the floor's BLAS column, and mtlx's other
    BLAS calls), PyTorch's BLAS and vector capability; with a note where OpenBLAS runs AVX2 kernels
    on a CPU that has AVX-512 (it did not know AMD's Zen 5 in 0.3.30/0.3.31:
    ``OPENBLAS_CORETYPE=SkylakeX`` set before Python starts selects its AVX-512 ones)."""
    import re

    from threadpoolctl import threadpool_info

    openblas = sorted({(i.get("filepath", "").split("/")[-2], i.get("architecture")) for i in threadpool_info()
                       if i.get("internal_api") == "openblas"})
    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    isa = mtlx._core.active_isa()
    out = {"mtlx_products": f"tile_gemm ({isa})" if isa != "generic" else "OpenBLAS",
           "openblas": [f"{where}: {arch}" for where, arch in openblas], "torch_blas": found and found.group(1),
           "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    try:
        with open("/proc/cpuinfo") as f:
            avx512 = " avx512f " in f.read()
    except OSError:
        avx512 = False
    narrow = [a for _, a in openblas if a in ("Haswell", "Zen", "Sandybridge")]
    if avx512 and narrow:
        out["note"] = (f"OpenBLAS runs its {narrow[0]} (AVX2) kernels on a CPU with AVX-512: "
                       "OPENBLAS_CORETYPE=SkylakeX (set before Python starts) selects its AVX-512 kernels"
                       + (" (mtlx's layer products do not use them; the floor's BLAS column, numpy and "
                          "mtlx's other BLAS calls do)" if isa != "generic" else ""))
    print(f"layer products: mtlx {out['mtlx_products']}; OpenBLAS ({', '.join(out['openblas'])}); "
          f"PyTorch {out['torch_blas']}, "
          f"{out['torch_cpu_capability']}" + (f"\nnote: {out['note']}" if "note" in out else ""))
    return out


def accuracy() -> dict:
    from mtlx import demo

    results = demo.run(10, progress=False)
    clean = {}
    for table in ("school", "computer survey"):
        source = results["computer survey"] if table == "computer survey" else {
            k: v for k, v in results.items() if k != "computer survey"}
        clean[table] = {label: {key: [float(x) if not isinstance(x, tuple) else list(x) for x in values]
                                for key, values in entry.items()} for label, entry in source.items()}
    return clean


def main(argv=None) -> None:
    args = parse_args(argv)
    out = {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}}
    found = throughput(args)
    if found:
        out["versions"], out["throughput"] = found[0], found[1:]
    if args.accuracy:
        out["accuracy"] = accuracy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
