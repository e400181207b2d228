"""The ``mtlx`` command line: fit, predict, info and the school demo.

Every command prints a clear one-line error and exits with status 1 on bad input (a missing
file, a missing array, wrong shapes); ``--help`` on each command shows examples.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap

import numpy as np

__all__ = ["main"]

_DATA_HELP = ("an .npz file or a folder of .npy files with X, y, task (stacked rows, one task id per row) or "
              "X, Y (one X shared by all tasks, one column of Y per task)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlx", description="mtlx: regularized multi-task learning with a native core.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent("""\
            examples:
              mtlx demo
              mtlx fit data.npz --penalty l21 --alpha 0.1 --out model.npz
              mtlx predict model.npz data.npz --out predictions.npy
              mtlx info data.npz
            """))
    from . import __version__

    parser.add_argument("--version", action="version", version=f"mtlx {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, examples):
        return sub.add_parser(name, help=help, description=help, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="examples:\n" + textwrap.indent(textwrap.dedent(examples), "  "))

    fit = command("fit", "fit a multi-task model to a dataset and save it", """\
        mtlx fit data.npz --loss squared --penalty l21 --alpha 0.1 --out model.npz
        mtlx fit folder/ --loss logistic --penalty trace --alpha 1 --intercept --task-weights sum
        mtlx fit data.npz --penalty l1 --alpha 0.01 --task-weights 1,2,1 --verbose
        mpirun -n 4 mtlx fit folder/ --penalty l21 --checkpoint ckpt/ --checkpoint-every 50
        mpirun -n 8 mtlx fit folder/ --penalty l21 --checkpoint ckpt/ --resume

        Under mpirun each rank memory-maps DATA (a folder of .npy files) and reads only the rows of
        its own tasks; rank 0 writes the model and prints. An error on any rank stops all ranks.
        """)
    fit.add_argument("data", metavar="DATA", help=_DATA_HELP)
    fit.add_argument("--loss", choices=("squared", "logistic"), default="squared",
                     help="squared: regression tasks; logistic: binary classification, any two labels per task "
                          "(default squared)")
    fit.add_argument("--penalty", choices=("l21", "trace", "l1", "mean", "none"), default="l21",
                     help="coupling penalty g(W) (default l21)")
    fit.add_argument("--alpha", type=_nonnegative, default=0.1, help="penalty strength (default 0.1)")
    fit.add_argument("--l2", type=_nonnegative, default=0.0, help="ridge term (l2/2)||W||^2 (default 0)")
    fit.add_argument("--task-weights", default="mean", type=_task_weights, metavar="{mean,sum,c1,c2,...}",
                     help="weight of each task's summed loss: mean (1/m_t, default), sum (1), or one number per "
                          "task, comma-separated")
    fit.add_argument("--intercept", action="store_true", help="fit an unpenalized intercept per task")
    fit.add_argument("--tol", type=_nonnegative, default=1e-6, help="solver tolerance (default 1e-6)")
    fit.add_argument("--max-iter", type=int, default=10_000, help="iteration cap (default 10000)")
    fit.add_argument("--threads", type=int, default=None, help="core threads (default: MTLX_NUM_THREADS or all)")
    fit.add_argument("--out", default="model.npz", help="where to write the model (default model.npz)")
    fit.add_argument("-v", "--verbose", action="store_true", help="progress bar and a log line per fit")
    fit.add_argument("--checkpoint", metavar="DIR", default=None,
                     help="save the solver state to DIR every --checkpoint-every iterations (atomic; keyed by "
                          "task id, so a run can resume on another number of ranks)")
    fit.add_argument("--checkpoint-every", type=int, default=10, metavar="K", help="iterations between checkpoints")
    fit.add_argument("--resume", action="store_true",
                     help="continue from the checkpoint in --checkpoint DIR (a checkpoint of another problem is "
                          "refused)")

    predict = command("predict", "predict with a saved model", """\
        mtlx predict model.npz data.npz --out predictions.npy
        """)
    predict.add_argument("model", metavar="MODEL", help="a model written by mtlx fit (or mtlx.save)")
    predict.add_argument("data", metavar="DATA", help=_DATA_HELP + "; targets are not needed")
    predict.add_argument("--out", default="predictions.npy",
                         help="predictions as .npy: one per row for stacked data (in the file's row order), an "
                              "(n, T) array for shared X (default predictions.npy)")

    info = command("info", "describe a dataset without loading it whole", """\
        mtlx info data.npz
        mtlx info folder/
        """)
    info.add_argument("data", metavar="DATA", help=_DATA_HELP)

    demo = command("demo", "does learning the school tasks jointly help? (bundled data, under a minute)", """\
        mtlx demo
        mtlx demo --splits 3 --plot school.png
        """)
    demo.add_argument("--splits", type=int, default=10, choices=range(1, 11), metavar="N",
                      help="number of the 10 standard splits to run (default 10)")
    demo.add_argument("--plot", metavar="PNG", default=None,
                      help="also write a figure (convergence, coefficients, spectrum, path; needs matplotlib)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _nonnegative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _task_weights(text: str):
    if text in ("mean", "sum"):
        return text
    try:
        return np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected mean, sum or comma-separated numbers, got {text!r}") from None


def _fit(args) -> int:
    from .estimators import MultiTaskClassifier, MultiTaskRegressor
    from .io import load_dataset
    from .persistence import save

    comm = _mpi_world()
    root = comm is None or comm.Get_rank() == 0
    if args.verbose and root:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.resume and args.checkpoint is None:
        raise ValueError("--resume needs --checkpoint DIR (where the checkpoint is)")
    data = load_dataset(args.data) if comm is None else _load_own_tasks(args.data, comm)
    Model = MultiTaskRegressor if args.loss == "squared" else MultiTaskClassifier
    model = Model(penalty=args.penalty, alpha=args.alpha, l2=args.l2, fit_intercept=args.intercept,
                  task_weights=args.task_weights, tol=args.tol, max_iter=args.max_iter, verbose=int(args.verbose),
                  n_threads=args.threads, comm=comm)
    options = {}
    if args.checkpoint is not None:
        options = dict(checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume)
    model._fit(data, **options)
    if root:
        save(model, args.out)
        ranks = "" if comm is None else f" on {comm.Get_size()} ranks"
        print(f"fitted {model.n_tasks_} tasks x {model.n_features_in_} features ({args.loss}, {args.penalty}, "
              f"alpha={args.alpha}){ranks} in {model.n_iter_} iterations, F = {model.objective_history_[-1]:.10g}; "
              f"model written to {args.out}")
    return 0


def _mpi_world():
    """COMM_WORLD when this process was started by mpirun/mpiexec with more than one rank, else None.

    mpi4py is imported only then, so a plain ``mtlx fit`` never needs MPI. Under MPI an
    unhandled exception on any rank aborts the whole job (``python -m mpi4py`` semantics).
    """
    launched = any(key in os.environ for key in ("PMI_SIZE", "PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE"))
    if not launched:
        return None
    from .distributed import _mpi, abort_on_unhandled_exception

    comm = _mpi().COMM_WORLD
    if comm.Get_size() == 1:
        return None
    abort_on_unhandled_exception(comm)
    return comm


def _load_own_tasks(path, comm):
    """This rank's tasks of the dataset at ``path``: rows balanced over ranks by count, read alone."""
    from .data import TaskData
    from .distributed import agreed_errors, assign_tasks
    from .io import DatasetFile, load_dataset, task_sizes

    with agreed_errors(comm):
        ids, sizes = task_sizes(path)
        mine = ids[assign_tasks(sizes, comm.Get_size())[comm.Get_rank()]]
        if len(mine):
            return load_dataset(path, tasks=mine)
        with DatasetFile(path) as ds:
            X = ds["X"]
            dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
            return TaskData.empty(X.shape[1], dtype)


def _predict(args) -> int:
    from .io import DatasetFile
    from .persistence import load

    model = load(args.model)
    with DatasetFile(args.data) as ds:
        X = np.asarray(ds["X"])
        if ds.layout == "stacked":
            pred = model.predict(X, task=np.asarray(ds["task"]))
        else:
            pred = model.predict(X)
    np.save(args.out, pred)
    print(f"predictions of shape {pred.shape} written to {args.out}")
    return 0


def _info(args) -> int:
    from .io import DatasetFile

    with DatasetFile(args.data) as ds:
        kind = "folder of .npy files (memory-mapped)" if ds.path.is_dir() else ".npz file"
        print(f"{ds.path}: {kind}, {ds.layout} layout")
        for name in ds.names:
            arr = ds[name]
            print(f"  {name:9s} shape {str(arr.shape):16s} {arr.dtype}")
        X = ds["X"]
        ids = ds.task_ids()
        print(f"  {len(ids)} tasks, {X.shape[1] if X.ndim == 2 else '?'} features, {X.shape[0]} rows")
        if ds.layout == "stacked":
            _, counts = np.unique(np.asarray(ds["task"]), return_counts=True)
            print(f"  rows per task: min {counts.min()}, median {int(np.median(counts))}, max {counts.max()}")
        target = "y" if ds.layout == "stacked" else "Y"
        if target in ds.names:
            values = np.asarray(ds[target])
            distinct = np.unique(values)
            if distinct.size <= 2:
                print(f"  targets {target}: labels {distinct.tolist()}")
            else:
                print(f"  targets {target}: range [{values.min():g}, {values.max():g}]")
    return 0


def _demo(args) -> int:
    from .demo import run

    run(args.splits, plot=args.plot, progress=not args.no_progress)
    return 0


def main(argv=None) -> int:
    """Run the ``mtlx`` command line; returns the exit status."""
    args = _parser().parse_args(argv)
    handler = {"fit": _fit, "predict": _predict, "info": _info, "demo": _demo}[args.command]
    try:
        return handler(args)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        # Under MPI these come agreed: every rank raises the same error, so every rank exits 1.
        print(f"mtlx {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
