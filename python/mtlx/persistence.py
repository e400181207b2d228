"""Save and load fitted estimators as a plain ``.npz``: arrays and JSON, no pickled code.

A model file holds ``__meta__`` (JSON: the format, the mtlx version, the estimator's class
and its parameters) and one ``.npy`` member per fitted attribute (a classifier's labels as
``classes_0``, ``classes_1``, ... one per task), stored uncompressed (``np.savez``). Only data
is stored: a ``callback`` or a communicator is not, and comes back as None.

A model file may come from anywhere, so :func:`load` trusts nothing in it:

* nothing is unpickled, and numpy never reads the archive: the zip directory is checked first
  (only the members an estimator of that class has, none compressed, none larger than its
  shape can be: ``coef_`` holds n_tasks_ x n_features_in_ floats), so a crafted file cannot
  make mtlx decompress or allocate more than the file's own size;
* the estimator it builds must pass :func:`check_model`, which :func:`save` applies too:
  every fitted array has the shape and dtype a fit makes, and every parameter passes the
  checks ``fit`` applies.

Whatever is wrong raises a ValueError naming the file and the problem.

A new estimator class becomes storable by its entry in :func:`_estimator_classes`, the one
place that lists them (with the fitted attributes and parameters it adds to the common ones).
"""

from __future__ import annotations

import inspect
import json
import numbers
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import open_npz, read_npz_member, write_atomically
from ._validate import short_repr

__all__ = ["check_model", "load", "save"]

_FORMAT = 1
_META_FIELDS = {"format": int, "mtlx_version": str, "estimator": str, "params": dict}
_SCALARS = ("n_tasks_", "n_features_in_", "n_iter_", "fit_layout_")  # read first: they size the arrays
_FITTED = _SCALARS + ("coef_", "intercept_", "tasks_", "objective_history_")
#: The linear models' fitted attributes a file holds when the model has them (files written before
#: ``solver_`` was stored lack it).
_LINEAR_OPTIONAL = ("solver_",)
_LAYOUTS = ("single", "shared", "stacked", "tasks")
_NOT_STORED = ("callback", "comm")  # live objects, never data
_CLASSES = re.compile(r"classes_(0|[1-9][0-9]*)")
#: A superposition's blocks (components_, a tuple of coef_-shaped arrays), one member each.
_COMPONENTS = re.compile(r"components_(0|[1-9][0-9]*)")
_PENALTY_KEY = "__penalty__"  # a penalty object's parameter: {"__penalty__": its plain description}
_ARRAY_KEY = "__ndarray__"  # a numeric array parameter: {"__ndarray__": its nested lists, "dtype": its dtype}
_ARRAY_KINDS = "biuf"
_PENALTY_PREFIX = "penalty_"  # members holding a penalty's matrix arguments (a Graph's R)
_PENALTY_MEMBERS = re.compile(r"penalty(_[0-9]+)*_[A-Za-z]+")

# What a member may take in the file, checked in the zip directory before it is read.
_NPY_HEADER_BYTES = 4096  # numpy writes 128
_LABEL_BYTES = 4096  # one task id, class label or feature name: up to 1024 characters
_SCALAR_BYTES = _NPY_HEADER_BYTES + _LABEL_BYTES
_UNSIZED_BYTES = 64 << 20  # what the metadata does not size: __meta__, objective_history_, CV paths


class _NotAModelFile(ValueError):
    """The file is no mtlx model at all (as opposed to a model file with a wrong entry)."""


@dataclass(frozen=True)
class _Storable:
    """How :func:`save` and :func:`load` handle one estimator class.

    Attributes
    ----------
    cls : type
    extra_fitted : tuple of str
        Fitted attributes beyond the common ones (``_FITTED``, ``classes_``, ``feature_names_in_``).
    check_extra : callable, optional
        ``check_extra(model)`` raises ValueError when those attributes are not what a fit makes.
    param_checks : dict of name -> callable
        Checks of the parameters the class adds to ``_PARAM_CHECKS`` (same signature).
    """

    cls: type
    extra_fitted: tuple = ()
    check_extra: Callable | None = None
    #: The members every file of the class holds (default: the linear models' ``_FITTED``) and those
    #: it holds when the fit made them.
    fitted: tuple = _FITTED
    optional: tuple = _LINEAR_OPTIONAL
    #: ``members(model) -> {name: array}``, what save writes (default: the fitted attributes by name).
    members: Callable | None = None
    #: ``member_bytes(name, model)``: the most bytes a member takes, or None (default: the linear sizes).
    member_bytes: Callable | None = None
    #: ``check_fitted(model)``: check_model's part for the fitted arrays (default: the linear models').
    check_fitted: Callable | None = None
    #: ``rebuild(model)``: after load sets the members as attributes, the fitted state fit makes.
    rebuild: Callable | None = None
    param_checks: dict = field(default_factory=dict)

    @property
    def is_classifier(self) -> bool:
        from sklearn.base import ClassifierMixin

        return issubclass(self.cls, ClassifierMixin)


def _estimator_classes() -> dict:
    """Every estimator class :func:`save` stores, by name: register a new class here, and only here."""
    from .cv import MultiTaskClassifierCV, MultiTaskRegressorCV
    from .estimators import MultiTaskClassifier, MultiTaskRegressor
    from .trunk import storage
    from .trunk.estimators import SharedTrunkClassifier, SharedTrunkRegressor

    trunk = dict(fitted=storage.FITTED, optional=storage.OPTIONAL, members=storage.members,
                 member_bytes=storage.max_bytes, check_fitted=storage.check, rebuild=storage.rebuild)
    entries = (
        _Storable(MultiTaskRegressor),
        _Storable(MultiTaskClassifier),
        _Storable(MultiTaskRegressorCV, **_cross_validated(scores="mse_path_")),
        _Storable(MultiTaskClassifierCV, **_cross_validated(scores="scores_path_")),
        _Storable(SharedTrunkRegressor, **trunk),
        _Storable(SharedTrunkClassifier, **trunk),
    )
    return {entry.cls.__name__: entry for entry in entries}


def _entry_of(model) -> _Storable:
    classes = _estimator_classes()
    entry = classes.get(type(model).__name__)
    if entry is None or type(model) is not entry.cls:
        raise TypeError(f"mtlx.save stores mtlx estimators ({', '.join(classes)}), got {type(model).__name__}")
    return entry


# ------------------------------------------------------------------------------------- save
def save(model, path) -> None:
    """Write a fitted mtlx estimator to ``path`` (``.npz``; written to a temporary file, then renamed).

    Parameters
    ----------
    model : MultiTaskRegressor, MultiTaskClassifier, their CV variants, SharedTrunkRegressor or SharedTrunkClassifier
        A fitted estimator; it must pass :func:`check_model`, so that :func:`load` reads back
        every file ``save`` writes.
    path : str or os.PathLike
        Destination; ``.npz`` is appended when missing (as ``np.savez`` does).
    """
    from sklearn.utils.validation import check_is_fitted

    from . import __version__

    entry = _entry_of(model)
    check_is_fitted(model)
    try:
        check_model(model)
    except ValueError as exc:
        raise ValueError(f"cannot save this {type(model).__name__}: {exc}") from None
    penalty_arrays: dict = {}
    params = {name: _storable(name, value, penalty_arrays) for name, value in model.get_params(deep=False).items()}
    meta = {"format": _FORMAT, "mtlx_version": __version__, "estimator": type(model).__name__, "params": params}
    if entry.members is not None:
        arrays = entry.members(model)
    else:
        arrays = {name: np.asarray(getattr(model, name)) for name in entry.fitted + entry.extra_fitted}
        arrays.update({name: np.asarray(getattr(model, name)) for name in entry.optional if hasattr(model, name)})
    arrays.update(penalty_arrays)
    if hasattr(model, "feature_names_in_"):
        arrays["feature_names_in_"] = np.asarray(model.feature_names_in_, dtype=str)
    if entry.members is None and hasattr(model, "components_"):
        arrays.update({f"components_{k}": np.asarray(c) for k, c in enumerate(model.components_)})
    if entry.is_classifier:
        per_task = [model.classes_] if model.fit_layout_ == "single" else model.classes_
        arrays.update({f"classes_{t}": np.asarray(labels) for t, labels in enumerate(per_task)})
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    write_atomically(path, {"__meta__": np.asarray(json.dumps(meta)), **arrays})


def _storable(name: str, value, arrays: dict):
    """A parameter as JSON: arrays as lists, numpy scalars as numbers, a penalty object as its plain
    description (its matrix arguments into ``arrays``, as members named ``penalty_*``); what JSON
    cannot hold as None (a callback or a communicator always, silently: live objects, never data;
    anything else, such as a CV splitter object, with a warning, since the loaded model then differs)."""
    from .penalties import Penalty
    from .penalties.spec import to_data

    if name in _NOT_STORED:
        return None
    if isinstance(value, Penalty):
        return {_PENALTY_KEY: to_data(value, arrays, _PENALTY_PREFIX.rstrip("_"))}
    if isinstance(value, np.ndarray) and value.dtype.kind in _ARRAY_KINDS:
        # (an array, not a list, comes back: get_params() of the loaded model equals the saved one's)
        return {_ARRAY_KEY: value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, (np.ndarray, np.generic, tuple, list)):
        value = _plain(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        warnings.warn(f"parameter {name}={short_repr(value)} cannot be stored as data; the loaded model has "
                      f"{name}=None", UserWarning, stacklevel=3)
        return None
    return value


def _plain(value):
    """Arrays, numpy scalars and tuples (nested) as the lists and Python numbers JSON holds (a
    network's ``hidden=(np.int64(8),)`` was dropped as unstorable)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


# ------------------------------------------------------------------------------------- load
def load(path):
    """Read an estimator written by :func:`save`, checking everything in the file (module notes).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MultiTaskRegressor, MultiTaskClassifier, their CV variants, SharedTrunkRegressor or SharedTrunkClassifier
        Fitted, predicting exactly as the saved model did (a shared-trunk network: its parameter
        vector and heads, see :mod:`mtlx.trunk.storage`).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not an mtlx model file, or an entry of it is not what a fit makes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {str(path)!r}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        archive, members = open_npz(path, compressed=False)
    except ValueError as exc:
        raise ValueError(f"{str(path)!r} is not an mtlx model file ({exc})") from None
    try:
        with archive:
            return _read_model(archive, members)
    except _NotAModelFile as exc:
        raise ValueError(f"{str(path)!r} is not an mtlx model file ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"model file {str(path)!r}: {exc}") from None


def _read_model(archive, members: dict):
    """The estimator in an open model file, each member checked before and after it is read."""
    if "__meta__" not in members:
        raise _NotAModelFile(f"no '__meta__' entry; found {sorted(members)}")
    meta = _read_meta(_read(archive, members, "__meta__", _UNSIZED_BYTES))
    entry = _estimator_classes()[meta["estimator"]]
    _check_member_names(members, entry)
    penalty_arrays = {name: _read(archive, members, name, _UNSIZED_BYTES) for name in members
                      if _PENALTY_MEMBERS.fullmatch(name)}
    model = _construct(entry.cls, _rebuilt_params(meta["params"], penalty_arrays))
    _restore(model, {name: _read(archive, members, name, _SCALAR_BYTES) for name in _SCALARS})
    _check_counts(model)
    classes = {name for name in members if _CLASSES.fullmatch(name)}
    n_labels = 1 if model.fit_layout_ == "single" else model.n_tasks_
    # (compared with the members there are before the names are listed: an n_tasks_ of 10^12 in a
    # small file must not make a set of 10^12 names)
    expected = {f"classes_{t}" for t in range(n_labels)} if entry.is_classifier and n_labels == len(classes) \
        else None
    if entry.is_classifier and classes != expected:
        wanted = f"{n_labels} labels arrays (classes_0 ...)" if expected is None else f"the labels {sorted(expected)}"
        raise ValueError(f"a classifier of {model.n_tasks_} task(s) in the {model.fit_layout_!r} layout stores "
                         f"{wanted}, found {sorted(classes)[:10]}")
    # The labels first: a task of K classes owns K rows of coef_, so they size the coefficients.
    _restore(model, {name: _read(archive, members, name, _UNSIZED_BYTES) for name in sorted(classes)})
    components = [name for name in members if _COMPONENTS.fullmatch(name)]
    rest = [name for name in members if name not in _SCALARS and name != "__meta__"
            and not _PENALTY_MEMBERS.fullmatch(name) and name not in classes and name not in components]
    # (members that size others first: a trunk's out_dims_ fixes the length of its params_)
    for name in sorted(rest, key=lambda n: n != "out_dims_"):
        _restore(model, {name: _read(archive, members, name, _member_bytes(entry, name, model))})
    if components:  # (the blocks together: they form one tuple)
        _restore(model, {name: _read(archive, members, name, _member_bytes(entry, name, model)) for name in components})
    if entry.rebuild is not None:
        entry.rebuild(model)
    check_model(model)
    return model


def _read(archive, members: dict, name: str, max_bytes: int) -> np.ndarray:
    try:
        return read_npz_member(archive, members[name], max_bytes)
    except ValueError as exc:
        raise ValueError(f"array {name!r}: {exc}") from None


def _member_bytes(entry: _Storable, name: str, model) -> int:
    if entry.member_bytes is not None:
        bound = entry.member_bytes(name, model)
        return _UNSIZED_BYTES if bound is None else bound
    return _max_bytes(name, model)


def _max_bytes(name: str, model) -> int:
    """The most bytes member ``name`` can take in the file of ``model`` (of checked sizes)."""
    T, d, C = model.n_tasks_, model.n_features_in_, _n_columns(model)
    elements = {"coef_": (C * d, 8), "intercept_": (C, 8), "tasks_": (T, _LABEL_BYTES),
                "feature_names_in_": (d, _LABEL_BYTES), "solver_": (1, _LABEL_BYTES)}
    if _COMPONENTS.fullmatch(name):
        name = "coef_"
    if name not in elements:
        return _UNSIZED_BYTES
    count, item_bytes = elements[name]
    return _NPY_HEADER_BYTES + count * item_bytes


def _n_columns(model) -> int:
    """Rows of coef_: one per task, or, for a classifier, one per binary task and K per task of K
    classes (its multinomial columns)."""
    if hasattr(model, "classes_") and hasattr(model, "_column_ranges"):
        try:
            return int(model._column_ranges()[-1][1])
        except (TypeError, ValueError, IndexError):
            pass  # malformed labels: the checks of check_model name them
    return int(model.n_tasks_)


def _read_meta(stored: np.ndarray) -> dict:
    """The checked metadata: every field present with its type, a known format and estimator."""
    from . import __version__

    if stored.dtype.kind != "U" or stored.shape != ():
        raise ValueError(f"'__meta__' must be a JSON string, got a {stored.dtype} array of shape {stored.shape}")
    try:
        meta = json.loads(stored.item())
    except (ValueError, RecursionError):
        raise ValueError("'__meta__' is not valid JSON") from None
    if not isinstance(meta, dict):
        raise ValueError(f"'__meta__' must be a JSON object, got {type(meta).__name__}")
    missing = [key for key in _META_FIELDS if key not in meta]
    unexpected = [key for key in meta if key not in _META_FIELDS]
    if missing or unexpected:
        raise ValueError(f"'__meta__' must hold exactly the fields {list(_META_FIELDS)}; "
                         f"{f'it lacks {missing}' if missing else f'it also holds {unexpected}'}")
    for key, kind in _META_FIELDS.items():
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise ValueError(f"'__meta__' field {key!r} must be a JSON {kind.__name__}, got {meta[key]!r}")
    if meta["format"] != _FORMAT:
        raise ValueError(f"model format {meta['format']!r}; this mtlx reads format {_FORMAT}")
    classes = _estimator_classes()
    if meta["estimator"] not in classes:
        raise ValueError(f"unknown estimator {meta['estimator']!r} (this mtlx stores {', '.join(classes)})")
    if meta["mtlx_version"] != __version__:
        warnings.warn(f"the model was saved by mtlx {meta['mtlx_version']}, loading with {__version__}",
                      UserWarning, stacklevel=4)
    return meta


def _rebuilt_params(params: dict, arrays: dict) -> dict:
    """The parameters with a stored penalty description rebuilt as the penalty object, and a
    stored numeric array as the array."""
    from .penalties.spec import from_data

    out = dict(params)
    for key, value in params.items():
        if isinstance(value, dict) and set(value) == {_PENALTY_KEY}:
            out[key] = from_data(value[_PENALTY_KEY], arrays)
        elif isinstance(value, dict) and set(value) == {_ARRAY_KEY, "dtype"}:
            out[key] = _array_param(key, value)
    return out


def _array_param(name: str, stored: dict) -> np.ndarray:
    """A numeric array parameter from its stored lists and dtype (refusing any other dtype)."""
    try:
        dtype = np.dtype(stored["dtype"]) if isinstance(stored["dtype"], str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _ARRAY_KINDS:
        raise ValueError(f"parameter {name} is stored as an array of dtype {short_repr(stored['dtype'])}; "
                         f"only numbers and booleans are stored that way")
    try:
        return np.array(stored[_ARRAY_KEY], dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"parameter {name}: its stored array does not hold {dtype} values ({exc})") from None


def _check_member_names(members: dict, entry: _Storable) -> None:
    required = entry.fitted + entry.extra_fitted
    allowed = {"__meta__", "feature_names_in_", *required, *entry.optional}
    for name in members:
        if _PENALTY_MEMBERS.fullmatch(name) or (entry.members is None and _COMPONENTS.fullmatch(name)):
            continue
        if name not in allowed and not (entry.is_classifier and _CLASSES.fullmatch(name)):
            raise ValueError(f"unexpected array {name!r}: a {entry.cls.__name__} file holds only "
                             f"{sorted(allowed)}{' and classes_<task>' if entry.is_classifier else ''}")
    missing = [name for name in required if name not in members]
    if missing:
        raise ValueError(f"it lacks the fitted arrays {missing}")


def _construct(cls: type, params: dict):
    """``cls(**params)``, refusing a parameter its constructor does not take (missing ones take their default)."""
    signature = inspect.signature(cls.__init__).parameters
    valid = sorted(name for name, p in signature.items() if name != "self" and p.kind != p.VAR_KEYWORD)
    for key in params:
        if key not in valid:
            raise ValueError(f"Invalid parameter {key!r} for estimator {cls.__name__}. Valid parameters are: "
                             f"{valid!r}.")
    # JSON has no tuples: a parameter whose default is a tuple (hidden=(64,)) comes back one, so that
    # get_params() of the loaded model equals the saved one's.
    params = {key: tuple(value) if isinstance(value, list) and isinstance(signature[key].default, tuple) else value
              for key, value in params.items()}
    return cls(**params)


def _restore(model, arrays: dict) -> None:
    """Set the fitted attributes from their arrays: 0-d arrays as Python scalars, labels per task."""
    labels, components = {}, {}
    for name, value in arrays.items():
        if _CLASSES.fullmatch(name):
            labels[int(name[len("classes_"):])] = value
        elif _COMPONENTS.fullmatch(name):
            components[int(name[len("components_"):])] = value
        elif name == "feature_names_in_":
            if value.dtype.kind != "U":
                raise ValueError(f"feature_names_in_ must hold strings, got dtype {value.dtype}")
            model.feature_names_in_ = value.astype(object)  # what scikit-learn's fit sets
        else:
            setattr(model, name, value.item() if value.ndim == 0 else value)
    if labels:
        per_task = [labels[t] for t in sorted(labels)]
        model.classes_ = per_task[0] if model.fit_layout_ == "single" else per_task
    if components:
        if sorted(components) != list(range(len(components))):
            raise ValueError(f"components_ members must be numbered 0..k-1, got {sorted(components)}")
        model.components_ = tuple(components[k] for k in range(len(components)))


# ------------------------------------------------------------------------------------- checks
def check_model(model) -> None:
    """Raise ValueError unless ``model``'s parameters and fitted state are what a fit of its class makes.

    What :func:`load` requires of every model it returns, and :func:`save` of every model it
    writes: ``n_tasks_`` >= 1, ``n_features_in_`` and ``n_iter_`` >= 0 (integers);
    ``fit_layout_`` one of "single" (only with one task), "shared", "stacked", "tasks";
    ``coef_`` (n_tasks_, n_features_in_) and ``intercept_`` (n_tasks_,) finite float32/float64,
    ``intercept_`` zero without ``fit_intercept``; ``tasks_`` (n_tasks_,) unique ids;
    ``objective_history_`` 1-D float; ``feature_names_in_`` n_features_in_ strings and
    ``solver_`` the name of an engine when present; a classifier's ``classes_``: two or more
    distinct sorted labels per task (a task of K > 2 classes owns K rows of coef_), one array
    for a "single" fit and a list of n_tasks_ arrays otherwise; the extra attributes of the
    class (a CV estimator's ``alpha_``...); and every parameter passing the checks of ``fit``.

    Raises
    ------
    TypeError
        ``model`` is not an mtlx estimator.
    ValueError
        Naming the attribute or parameter and what is wrong with it.
    """
    entry = _entry_of(model)
    _check_counts(model)
    _check_params(model, entry)
    if entry.is_classifier:
        _check_classes(model)  # (they size coef_: K rows for a task of K classes)
    if entry.check_fitted is not None:
        entry.check_fitted(model)
    else:
        _check_linear(model)
    if hasattr(model, "feature_names_in_"):
        names = np.asarray(model.feature_names_in_)
        if names.shape != (model.n_features_in_,) or not all(isinstance(name, str) for name in names.tolist()):
            raise ValueError(f"feature_names_in_ must hold n_features_in_ = {model.n_features_in_} strings, got a "
                             f"{names.dtype} array of shape {names.shape}")
    if entry.check_extra is not None:
        entry.check_extra(model)


def _check_linear(model) -> None:
    """The fitted arrays of a linear model: coef_, intercept_, tasks_, objective_history_."""
    T, d = model.n_tasks_, model.n_features_in_
    C = _n_columns(model)
    rows = "n_tasks_" if C == T else "columns: one per binary task, K per task of K classes"
    _check_floats(model, "coef_", (C, d), f"({rows}, n_features_in_)")
    intercept = _check_floats(model, "intercept_", (C,), f"({rows},)")
    if not model.fit_intercept and np.any(intercept != 0):
        raise ValueError("intercept_ is not zero but fit_intercept is False (a fit without intercepts leaves them 0)")
    tasks = _check_labels(model.tasks_, "tasks_", (T,), "(n_tasks_,)")
    if np.unique(tasks).size != T:
        raise ValueError("tasks_ holds a task id more than once; task ids are unique")
    from .solver import ENGINES

    if hasattr(model, "solver_") and (not isinstance(model.solver_, str) or model.solver_ not in ENGINES):
        raise ValueError(f"solver_ must name the engine that ran, one of {list(ENGINES)}; got "
                         f"{short_repr(model.solver_)}")
    history = np.asarray(model.objective_history_)
    if history.ndim != 1 or history.size == 0 or history.dtype.kind != "f":
        raise ValueError(f"objective_history_ must be a non-empty 1-D float array, got a {history.dtype} array of "
                         f"shape {history.shape}")
    if hasattr(model, "components_"):  # a superposition's blocks: coef_'s shape each, summing to it
        parts = model.components_
        if not isinstance(parts, tuple) or len(parts) < 2:
            raise ValueError("components_ must be a tuple of at least two blocks (a superposition's)")
        for k, part in enumerate(parts):
            part = np.asarray(part)
            if part.shape != (C, d) or part.dtype.kind != "f" or not np.all(np.isfinite(part)):
                raise ValueError(f"components_[{k}] must be a finite float array of coef_'s shape {(C, d)}, got a "
                                 f"{part.dtype} array of shape {part.shape}")
        total = np.sum([np.asarray(part, dtype=np.float64) for part in parts], axis=0)
        coef = np.asarray(model.coef_, dtype=np.float64)
        if not np.allclose(total, coef, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(coef).max(initial=0.0)))):
            raise ValueError("components_ do not sum to coef_ (a superposition's blocks add up to W)")


def _check_counts(model) -> None:
    """The integers and the layout that size every array (checked before any array is read)."""
    for name, minimum in (("n_tasks_", 1), ("n_features_in_", 0), ("n_iter_", 0)):
        value = getattr(model, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    layout = model.fit_layout_
    if not isinstance(layout, str) or layout not in _LAYOUTS:
        raise ValueError(f"fit_layout_ must be one of {list(_LAYOUTS)}, got {layout!r}")
    if layout == "single" and model.n_tasks_ != 1:
        raise ValueError(f"fit_layout_ is 'single' but n_tasks_ is {model.n_tasks_}: a single-task fit has one task")


def _check_floats(model, name: str, shape: tuple, described: str) -> np.ndarray:
    value = getattr(model, name)
    if not isinstance(value, np.ndarray) or value.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must be a float32 or float64 array, got {_describe(value)}")
    if value.shape != shape:
        raise ValueError(f"{name} has shape {value.shape}, expected {described} = {shape}")
    if not np.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return value


def _check_labels(value, name: str, shape: tuple, described: str) -> np.ndarray:
    """Task ids or class labels: numbers, booleans or strings (finite when floats)."""
    labels = np.asarray(value)
    if labels.dtype.kind not in "biufUS":
        raise ValueError(f"{name} must hold numbers or strings, got {_describe(value)}")
    if labels.shape != shape:
        raise ValueError(f"{name} has shape {labels.shape}, expected {described} = {shape}")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return labels


def _check_classes(model) -> None:
    classes = model.classes_
    if model.fit_layout_ == "single":
        if not isinstance(classes, np.ndarray):
            raise ValueError(f"classes_ of a single-task fit must be one array, got {_describe(classes)}")
        per_task = [classes]
    else:
        if not isinstance(classes, list) or len(classes) != model.n_tasks_:
            raise ValueError(f"classes_ must be a list of n_tasks_ = {model.n_tasks_} arrays (one per task), got "
                             f"{_describe(classes)}")
        per_task = classes
    for t, labels in enumerate(per_task):
        labels = np.asarray(labels)
        labels = _check_labels(labels, f"classes_ of task {t}", (max(labels.size, 2),) if labels.ndim == 1 else (2,),
                               "two or more labels")
        if not np.all(labels[:-1] < labels[1:]):
            raise ValueError(f"classes_ of task {t} is {labels.tolist()[:6]}: distinct labels in sorted order "
                             "are needed")


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"{type(value).__name__} {value!r}"[:200]


# ---------------------------------------------------------------------------------- parameters
def _check_params(model, entry: _Storable) -> None:
    """Every parameter through the checks ``fit`` applies (the estimator's ``_check_params``), then
    those that need the fitted state (task weights against n_tasks_) or that fit leaves to others
    (a CV's folds and seed); TypeError becomes ValueError."""
    # A model fitted on a GPU predicts on the host: its device is checked as written, not looked for
    # on this machine (a model saved by a CUDA build failed to load on a laptop).
    device = getattr(model, "device", None)
    try:
        if device is not None:
            from .gpu.arrays import resolve_device

            resolve_device(device, must_exist=False)
            model.device = None
        try:
            pen = model._check_params()
        finally:
            if device is not None:
                model.device = device
        if pen is not None:  # (a linear model's penalty; a network has none)
            pen.check(model.n_features_in_, model.n_tasks_)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid parameters: {exc}") from None
    checks = {"task_weights": _task_weights, **entry.param_checks}
    for name, value in model.get_params(deep=False).items():
        if name in checks:
            try:
                checks[name](value, name, model)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"invalid parameter {name}={short_repr(value)}: {exc}") from None


def _task_weights(value, name, model) -> None:
    from ._validate import resolve_task_weights

    # (One weight per task of tasks_, checked against n_tasks_ after this: a crafted n_tasks_ of
    # 1e12 allocated 7 TiB here.)
    resolve_task_weights(value, np.ones(np.size(getattr(model, "tasks_", ())), dtype=np.int64))


# -------------------------------------------------------------------------- cross-validated estimators
def _cross_validated(scores: str) -> dict:
    """The :class:`_Storable` fields of a cross-validated estimator: ``alpha_`` chosen among ``alphas_``
    by ``scores`` (one row per alpha, one column per fold), and the parameters of the search."""

    def check(model) -> None:
        alphas = model.alphas_
        grid = model.alphas if model.n_alphas == "deprecated" else model.n_alphas
        expected = grid if isinstance(grid, numbers.Integral) else len(grid)
        if not isinstance(alphas, np.ndarray) or alphas.shape != (expected,) or alphas.dtype.kind != "f" \
                or not np.all(np.isfinite(alphas) & (alphas > 0)):
            raise ValueError(f"alphas_ must hold the {expected} positive alphas the parameters ask for, got "
                             f"{_describe(alphas)}")
        path = getattr(model, scores)
        folds = model.cv if isinstance(model.cv, numbers.Integral) else None
        if not isinstance(path, np.ndarray) or path.dtype.kind != "f" or path.ndim != 2 \
                or path.shape[0] != expected or path.shape[1] != (folds or path.shape[1]) \
                or not np.isfinite(path).all():
            raise ValueError(f"{scores} must hold finite scores of shape (n_alphas, n_folds) = ({expected}, "
                             f"{folds or 'n_folds'}), got {_describe(path)}")
        if isinstance(model.alpha_, bool) or not isinstance(model.alpha_, numbers.Real) or model.alpha_ not in alphas:
            raise ValueError(f"alpha_ must be one of alphas_, got {short_repr(model.alpha_)}")

    return {"extra_fitted": ("alpha_", "alphas_", scores), "check_extra": check, "param_checks": _SEARCH_CHECKS}


def _folds(value, name, model) -> None:
    if value is None or hasattr(value, "split"):  # None: a splitter object, which is not stored
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 2:
        raise ValueError(f"{name} must be an integer >= 2 or a cross-validation splitter, got {value!r}")


def _seed(value, name, model) -> None:
    if value is None or isinstance(value, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)):
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be None or an integer >= 0, got {value!r}")


_SEARCH_CHECKS = {"cv": _folds, "random_state": _seed}
