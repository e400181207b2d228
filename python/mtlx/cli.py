"""The ``mtlx`` command line: fit, predict, info and the school demo.

Every command prints a clear one-line error and exits with status 1 on bad input (a bad
option, a missing file, a missing array, wrong shapes); warnings are one line too; ``--help``
on each command shows examples.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np

__all__ = ["main"]

#: What a user's input can raise while a command runs: reported in one line, exit status 1.
#: Warning: one that ``python -W error`` turned into an exception. KeyError and IndexError are not
#: here: reading a file turns them into ValueError (``_reading``), elsewhere they are bugs and keep
#: their traceback.
_USER_ERRORS = (ValueError, TypeError, OSError, ImportError, Warning)
#: Under MPI only these, which the library raises on every rank at once (``agreed_errors``): a
#: rank that returned on an error of its own would leave the others waiting in a collective,
#: so anything else aborts the job (``abort_on_unhandled_exception``).
_AGREED_USER_ERRORS = (FileNotFoundError, ValueError, TypeError)


class _UsageError(Exception):
    """A bad command line; ``str`` is the whole line to print, ``mtlx <command>: error: ...``."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`_UsageError` (one line, exit status 1 in
    :func:`main`) instead of printing the usage block and exiting with status 2."""

    def error(self, message):
        if message.startswith("argument ") and message.endswith(": expected one argument"):
            # argparse takes a value such as -1,2 for an unknown option and reports the missing value.
            option = message[len("argument "):].split(":")[0].split("/")[-1]
            message += f" (write a value that starts with '-' as {option}=VALUE)"
        raise _UsageError(f"{self.prog}: error: {message}")


_DATA_HELP = ("an .npz file or a folder of .npy files with X, y, task (stacked rows, one task id per row) or "
              "X, Y (one X shared by all tasks, one column of Y per task)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    # The estimators' loss names (MultiTaskRegressor._losses + MultiTaskClassifier._losses; not imported
    # here, so that `mtlx --help` starts fast; tests/test_cli.py checks the two agree).
    fit.add_argument("--loss", choices=_FIT_LOSSES, default="squared",
                     help="regression: squared (default), huber (robust, threshold --epsilon), poisson (counts); "
                          "classification, any labels per task: logistic (two classes; a task of K > 2 classes "
                          "gets the softmax loss), squared_hinge (a linear SVM, two classes per task)")
    fit.add_argument("--sample-weight", metavar="FILE", default=None,
                     help="a .npy file of one non-negative weight per row of DATA, in its row order (default: the "
                          "dataset's own sample_weight array, if any, else all 1); under MPI each rank reads its "
                          "own rows' weights")
    fit.add_argument("--epsilon", type=_finite_positive, default=1.35,
                     help="threshold of the huber loss, in the targets' units (default 1.35)")
    fit.add_argument("--penalty", default="l21", type=_penalty, metavar="SPEC",
                     help="coupling penalty g(W): a name (l21, trace, l1, mean, none, l21_columns, linf1, shared, "
                          "ridge) or a formulation, e.g. 'L1(0.5) + L21(1)', 'Superpose(Trace(1000), "
                          "L21Columns(500))', \"Graph('edges.npy', 100) + L1(100)\", 'Clustered(k=3, eta=0.1)' "
                          "(default l21; see mtlx.penalties)")
    fit.add_argument("--alpha", type=_finite_nonnegative, default=0.1, help="penalty strength (default 0.1)")
    fit.add_argument("--l2", type=_finite_nonnegative, default=0.0, help="ridge term (l2/2)||W||^2 (default 0)")
    fit.add_argument("--task-weights", default="mean", type=_task_weights, metavar="{mean,sum,c1,c2,...}",
                     help="weight of each task's summed loss: mean (1/m_t, default), sum (1), or one number per "
                          "task, comma-separated")
    fit.add_argument("--intercept", action="store_true", help="fit an unpenalized intercept per task")
    fit.add_argument("--tol", type=_finite_nonnegative, default=1e-6, help="solver tolerance (default 1e-6)")
    fit.add_argument("--max-iter", type=_positive_integer, default=10_000, help="iteration cap (default 10000)")
    fit.add_argument("--threads", type=_positive_integer, default=None,
                     help="core threads (default: MTLX_NUM_THREADS or all)")
    fit.add_argument("--out", default="model.npz", help="where to write the model (default model.npz)")
    fit.add_argument("-v", "--verbose", action="store_true", help="progress bar and a log line per fit")
    fit.add_argument("--checkpoint", metavar="DIR", default=None,
                     help="save the solver state to DIR every --checkpoint-every iterations (atomic; keyed by "
                          "task id, so a run can resume on another number of ranks)")
    fit.add_argument("--checkpoint-every", type=_positive_integer, default=10, metavar="K",
                     help="iterations between checkpoints")
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

    demo = command("demo", "does learning the tasks jointly help? (school and computer survey, about two minutes)", """\
        mtlx demo
        mtlx demo --splits 3 --plot school.png
        """)
    demo.add_argument("--splits", type=_split_count, default=10, metavar="N",
                      help="number of the 10 standard splits to run (default 10)")
    demo.add_argument("--plot", metavar="PNG", default=None,
                      help="also write a figure (convergence, coefficients, spectrum, path; needs matplotlib)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _finite_nonnegative(text: str) -> float:
    """A finite number >= 0 (the rule of ``mtlx._validate.check_nonnegative``): inf and nan are refused
    here, before any data is read, rather than giving a model with F = nan."""
    value = _number(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


#: What ``mtlx fit --loss`` accepts: the regressor's losses, then the classifier's.
_FIT_LOSSES = ("squared", "huber", "poisson", "logistic", "squared_hinge")


def _finite_positive(text: str) -> float:
    """A finite number > 0."""
    value = _number(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _integer(text: str, low: int, high: int | None = None) -> int:
    """An integer in [low, high] (no upper bound when ``high`` is None)."""
    wanted = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
    return value


def _positive_integer(text: str) -> int:
    return _integer(text, 1)


def _split_count(text: str) -> int:
    return _integer(text, 1, 10)


def _task_weights(text: str):
    if text in ("mean", "sum"):
        return text
    try:
        weights = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected mean, sum or comma-separated numbers, got {text!r}") from None
    if not (np.isfinite(weights) & (weights >= 0)).all():
        raise argparse.ArgumentTypeError(f"task weights must be finite numbers >= 0, got {text!r}")
    return weights


def _check_output(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written, before the work whose result it would hold.

    Raises ValueError (agreed across MPI ranks like the library's input errors) naming the option.
    """
    folder = path.parent
    if path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a folder; give a file name")
    if not folder.is_dir():
        raise ValueError(f"{option} {str(path)!r}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {str(path)!r}: folder {str(folder)!r} is not writable")


def _check_plot(path: Path) -> None:
    """``--plot`` needs matplotlib, a writable file and a format matplotlib knows: checked before the demo
    runs (it takes a while), not when the figure is drawn at its end."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ImportError('--plot needs matplotlib, which is not installed: pip install "mtlx[plot]"') from None
    _check_output(path, "--plot")
    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = path.suffix.lower().lstrip(".")
    if suffix and suffix not in formats:
        raise ValueError(f"--plot {str(path)!r}: matplotlib cannot write .{suffix} files "
                         f"(it writes {', '.join(sorted(formats))})")


@contextlib.contextmanager
def _reading(kind: str, path):
    """Errors raised while reading the file ``path`` name it, once: ``kind 'path': message``.

    A malformed file fails deep inside numpy or the loader with a KeyError or IndexError: that
    becomes a ValueError (the user's fault, reported in one line). Messages that name the file
    already (``mtlx.io``'s, ``mtlx.load``'s, an OSError's) are left as they are.
    """
    name = str(Path(path))  # as mtlx.io and mtlx.load print it ("folder/" -> "folder")
    label = f"{kind} {name!r}"
    try:
        yield
    except (KeyError, IndexError) as exc:
        raise ValueError(f"{label}: cannot be read ({type(exc).__name__}: {exc})") from exc
    except (ValueError, TypeError, OSError) as exc:
        message = str(exc)
        if name in message or repr(name) in message:
            raise
        base = next(base for base in (ValueError, TypeError, OSError) if isinstance(exc, base))
        raise base(f"{label}: {message}") from exc


def _agreement(comm):
    """Context in which an error on any MPI rank is raised on every rank (nothing without MPI)."""
    if comm is None:
        return contextlib.nullcontext()
    from .distributed import agreed_errors

    return agreed_errors(comm)


def _output_file(out: str, suffix: str, option: str) -> Path:
    """The file written for ``out``, ``suffix`` appended when missing (as numpy does). A folder
    (``results/``, ``.``, an existing one) is refused first: with the suffix appended it became
    ``results.npz`` beside the folder, or a hidden ``results/.npy`` in it."""
    path = Path(out)
    if out.endswith(("/", os.sep)) or path.name in ("", ".", "..") or path.is_dir():
        example = ("model" if suffix == ".npz" else "predictions") + suffix
        raise ValueError(f"{option} {out!r} is a folder; give a file name (such as {str(path / example)!r})")
    return path if path.suffix == suffix else path.with_name(path.name + suffix)


def _model_path(out: str) -> Path:
    """Where ``mtlx.save`` writes a model asked for at ``out``: ``.npz`` is appended when missing."""
    return _output_file(out, ".npz", "--out")


def _penalty(text: str):
    """--penalty: a registered name or a spec string, parsed now (a bad one is a usage error)."""
    from .penalties import get_penalty

    try:
        return get_penalty(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _labels(path, comm, weights=None, classify: bool = False):
    """The raw arrays of a dataset whose targets are labels (strings...), or None for numbers.

    The estimators encode labels per task; TaskData holds numbers only, so such a dataset
    reaches the classifier as raw arrays (this rank's tasks under MPI). For a classifier
    (``classify``) integer and boolean targets are labels too, so that ``classes_`` keeps their
    type (through a TaskData, labels 0/1 came back as 0.0/1.0); under MPI for stacked rows only,
    as other labels.
    """
    from .distributed import assign_tasks
    from .io import DatasetFile, _weights_of_rows, task_sizes

    with DatasetFile(path) as ds:
        target = "y" if ds.layout == "stacked" else "Y"
        ds.require(target)
        kind = ds[target].dtype.kind
        as_labels = kind not in "biuf" or (classify and kind in "biu" and (comm is None or ds.layout == "stacked"))
        if not as_labels:
            return None
        if comm is None:
            return ds.read(), ds.layout
        if ds.layout != "stacked":
            raise ValueError(f"dataset {str(path)!r}: under MPI a labelled dataset must be stacked (X, y, task)")
        ids, sizes = task_sizes(path)
        mine = ids[assign_tasks(sizes, comm.Get_size())[comm.Get_rank()]]
        arrays = ds.read(tasks=mine)
        if weights is not None:  # this rank's rows of the --sample-weight file
            arrays["sample_weight"] = np.asarray(_weights_of_rows(ds, weights, mine))
        return arrays, ds.layout


def _fit(args, comm) -> int:
    from .estimators import MultiTaskClassifier, MultiTaskRegressor
    from .io import load_dataset
    from .persistence import save

    root = comm is None or comm.Get_rank() == 0
    if args.verbose and root:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.resume and args.checkpoint is None:
        raise ValueError("--resume needs --checkpoint DIR (where the checkpoint is)")
    out = _model_path(args.out)
    with _agreement(comm):  # only rank 0 writes, but every rank must stop before the fit
        if root:
            _check_output(out, "--out")
        if args.checkpoint is not None and Path(args.checkpoint).exists() and not Path(args.checkpoint).is_dir():
            raise ValueError(f"--checkpoint {args.checkpoint!r} is a file; give a folder")
    weights = None
    if args.sample_weight is not None:
        # One weight per row of the whole dataset; under MPI every rank maps the file (a .npy) and
        # reads the weights of its own tasks' rows only.
        with _reading("sample weights", args.sample_weight), _agreement(comm):
            weights = np.load(args.sample_weight, allow_pickle=False, mmap_mode="r" if comm is not None else None)
            if not isinstance(weights, np.ndarray):  # (an .npz archive: np.load's NpzFile of named arrays)
                names = list(weights.files)
                weights.close()
                raise ValueError(f"--sample-weight needs a .npy file of one weight per row (np.save), got an .npz "
                                 f"archive of arrays {names}")
    with _reading("dataset", args.data), _agreement(comm):
        labelled = _labels(args.data, comm, weights, classify=args.loss not in MultiTaskRegressor._losses)
    if labelled is None:
        with _reading("dataset", args.data):
            data = load_dataset(args.data, sample_weight=weights) if comm is None else \
                _load_own_tasks(args.data, comm, weights)
    elif args.loss in MultiTaskRegressor._losses:
        raise ValueError(f"dataset {args.data!r} holds labels, not numbers: fit it with --loss logistic or "
                         "--loss squared_hinge")
    if args.loss in MultiTaskRegressor._losses:
        model = MultiTaskRegressor(loss=args.loss, epsilon=args.epsilon)
    else:
        model = MultiTaskClassifier(loss=args.loss)
    model.set_params(penalty=args.penalty, alpha=args.alpha, l2=args.l2, fit_intercept=args.intercept,
                     task_weights=args.task_weights, tol=args.tol, max_iter=args.max_iter, verbose=int(args.verbose),
                     n_threads=args.threads, comm=comm)
    options = {}
    if args.checkpoint is not None:
        options = dict(checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume)
    if labelled is None:
        model._fit(data, **options)
    else:
        arrays, layout = labelled
        # (under MPI, _labels put this rank's rows of the weights file in the arrays)
        weights = arrays.get("sample_weight") if weights is None or comm is not None else weights
        if layout == "stacked":
            model._fit(arrays["X"], arrays["y"], task=arrays["task"], sample_weight=weights, **options)
        else:
            model._fit(arrays["X"], arrays["Y"], sample_weight=weights, **options)
            model.tasks_ = np.asarray(arrays["task_ids"])  # the dataset's ids, in the order of Y's columns
    if root:
        save(model, out)
        ranks = "" if comm is None else f" on {comm.Get_size()} ranks"
        print(f"fitted {model.n_tasks_} tasks x {model.n_features_in_} features ({args.loss}, {args.penalty}, "
              f"alpha={args.alpha}){ranks} in {model.n_iter_} iterations, F = {model.objective_history_[-1]:.10g}; "
              f"model written to {out}")
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


def _load_own_tasks(path, comm, weights=None):
    """This rank's tasks of the dataset at ``path``: rows balanced over ranks by count, read alone."""
    from .data import TaskData
    from .distributed import agreed_errors, assign_tasks
    from .io import DatasetFile, load_dataset, task_sizes

    with agreed_errors(comm):
        ids, sizes = task_sizes(path)
        mine = ids[assign_tasks(sizes, comm.Get_size())[comm.Get_rank()]]
        if len(mine):
            return load_dataset(path, tasks=mine, sample_weight=weights)
        with DatasetFile(path) as ds:
            X = ds["X"]
            dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
            return TaskData.empty(X.shape[1], dtype)


def _predict(args) -> int:
    from ._layouts import task_positions
    from .io import DatasetFile
    from .persistence import load

    # np.save appends .npy to a name without it: check, and report, the file really written.
    out = _output_file(args.out, ".npy", "--out")
    _check_output(out, "--out")
    with _reading("model file", args.model):
        model = load(args.model)
    with _reading("dataset", args.data), DatasetFile(args.data) as ds:
        X = ds["X"] if ds.sparse else np.asarray(ds["X"])
        task = np.asarray(ds["task"]) if ds.layout == "stacked" else None
        # A shared X's columns are the dataset's tasks, in its order (its task ids, or 0..T-1 with
        # a Y of T columns); without either, every task of the model in the model's order.
        columns = ds.task_ids() if ds.layout == "shared" and ("task_ids" in ds.names or "Y" in ds.names) else None
    if task is not None:
        pred = model.predict(X, task=task)
    else:
        pred = model.predict(X)
        if columns is not None:
            positions = task_positions(np.asarray(columns), len(columns), np.asarray(model.tasks_))
            if np.ndim(pred) == 2:  # (a model of one task predicts a vector: its id is checked above)
                pred = pred[:, positions]
    np.save(out, pred)
    print(f"predictions of shape {pred.shape} written to {out}")
    return 0


def _info(args) -> int:
    from .io import DatasetFile

    with _reading("dataset", args.data), DatasetFile(args.data) as ds:
        kind = "folder of .npy files (memory-mapped)" if ds.path.is_dir() else ".npz file"
        print(f"{ds.path}: {kind}, {ds.layout} layout")
        for name in ds.names:
            arr = ds[name]
            print(f"  {name:9s} shape {str(arr.shape):16s} {arr.dtype}")
        X = ds["X"]
        ids = ds.task_ids()
        print(f"  {len(ids)} tasks, {X.shape[1] if X.ndim == 2 else '?'} features, {X.shape[0]} rows")
        if ds.layout == "stacked" and len(ids):  # an empty dataset has no rows per task to summarize
            _, counts = np.unique(np.asarray(ds["task"]), return_counts=True)
            print(f"  rows per task: min {counts.min()}, median {int(np.median(counts))}, max {counts.max()}")
        target = "y" if ds.layout == "stacked" else "Y"
        if target in ds.names:
            print(f"  targets {target}: {_targets_summary(np.asarray(ds[target]))}")
    return 0


def _targets_summary(values: np.ndarray) -> str:
    """Labels (two distinct values, or any that are not numbers) or the range of numeric targets,
    leaving out missing ones (NaN, None: missing labels, which the estimators skip)."""
    if values.dtype.kind in "fc":
        missing = int(np.isnan(values).sum())
        known = values[~np.isnan(values)]
    elif values.dtype.kind == "O":
        absent = np.array([v is None or (isinstance(v, float) and v != v) for v in values.ravel()], dtype=bool)
        missing, known = int(absent.sum()), values.ravel()[~absent]
    else:
        missing, known = 0, values.ravel()
    note = f" ({missing} missing)" if missing else ""
    if known.size == 0:
        return f"none known{note}"
    distinct = np.unique(known.astype(str) if known.dtype.kind == "O" else known)
    if distinct.size > 2 and known.dtype.kind in "biuf":
        return f"range [{known.min():g}, {known.max():g}]{note}"
    if distinct.size <= 10:
        return f"labels {distinct.tolist()}{note}"
    return f"{distinct.size} labels {distinct[:10].tolist() + ['...']}{note}"


def _demo(args) -> int:
    if args.plot is not None:
        _check_plot(Path(args.plot))
    from .demo import run

    run(args.splits, plot=args.plot, progress=not args.no_progress)
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _without_repeated_context(message: str) -> str:
    """``"dataset 'x': dataset 'x': missing ..."`` -> ``"dataset 'x': missing ..."``: a message wrapped twice
    in the same context (by the library, or by ``_reading``) names it once."""
    context, separator, rest = message.partition(": ")
    while separator and rest.startswith(context + separator):
        rest = rest[len(context + separator):]
    return context + separator + rest


def _error_line(exc: BaseException) -> str:
    return _without_repeated_context(_one_line(str(exc) or type(exc).__name__))


@contextlib.contextmanager
def _warnings_as_lines(prog: str):
    """Within: a warning prints as ``prog: warning: message``, one line, without the Python source line it
    normally shows (meaningless to someone running a command).

    Only ``warnings.formatwarning`` changes, and only while the command runs, so a caller that records
    warnings (``pytest.warns``, ``catch_warnings(record=True)``) or routes them to logging still gets them.
    """
    previous = warnings.formatwarning

    def format_line(message, category, filename, lineno, line=None):
        return f"{prog}: warning: {_one_line(str(message))}\n"

    warnings.formatwarning = format_line
    try:
        yield
    finally:
        warnings.formatwarning = previous


def _parse(argv):
    """The parsed command line; raises :class:`_UsageError` for a bad one (SystemExit(0) after --help/--version)."""
    args, unknown = _parser().parse_known_args(argv)
    if unknown:  # reported by the command's parser, whose name the line should carry
        raise _UsageError(f"mtlx {args.command}: error: unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv=None) -> int:
    """Run the ``mtlx`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``mtlx``; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0, or 1 after a one-line ``mtlx <command>: error: ...`` on stderr (a bad
        command line, a missing file, bad data). ``--help`` and ``--version`` print and raise
        ``SystemExit(0)``, as argparse does.
    """
    try:
        args = _parse(argv)
    except _UsageError as exc:
        print(_one_line(str(exc)), file=sys.stderr)
        return 1
    prog = f"mtlx {args.command}"
    comm = None
    with _warnings_as_lines(prog):
        try:
            if args.command == "fit":
                comm = _mpi_world()
                return _fit(args, comm)
            return {"predict": _predict, "info": _info, "demo": _demo}[args.command](args)
        except _USER_ERRORS as exc:
            if comm is not None and not isinstance(exc, _AGREED_USER_ERRORS):
                raise
            # Under MPI these come agreed: every rank raises the same error, so every rank exits 1.
            print(f"{prog}: error: {_error_line(exc)}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
