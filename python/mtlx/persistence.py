"""Save and load fitted estimators as a plain ``.npz``: arrays and JSON, no pickled code.

``np.load(..., allow_pickle=False)`` reads the file, so loading a model from an untrusted
source cannot execute anything; the price is that only data is stored (a ``callback`` or a
communicator is not, and comes back as None).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ._files import write_atomically

__all__ = ["load", "save"]

_FORMAT = 1
_FITTED = ("coef_", "intercept_", "n_iter_", "objective_history_", "n_tasks_", "tasks_", "n_features_in_",
           "fit_layout_")
_NOT_STORED = ("callback", "comm")  # live objects, never data


def _estimator_classes() -> dict:
    from .cv import MultiTaskClassifierCV, MultiTaskRegressorCV
    from .estimators import MultiTaskClassifier, MultiTaskRegressor

    return {cls.__name__: cls for cls in (MultiTaskRegressor, MultiTaskClassifier, MultiTaskRegressorCV,
                                          MultiTaskClassifierCV)}


def save(model, path) -> None:
    """Write a fitted mtlx estimator to ``path`` (``.npz``; written to a temporary file, then renamed).

    Parameters
    ----------
    model : MultiTaskRegressor or MultiTaskClassifier
        A fitted estimator.
    path : str or os.PathLike
        Destination; ``.npz`` is appended when missing (as ``np.savez`` does).
    """
    from sklearn.utils.validation import check_is_fitted

    from . import __version__

    classes = _estimator_classes()
    if type(model).__name__ not in classes or not isinstance(model, classes[type(model).__name__]):
        raise TypeError(f"mtlx.save stores mtlx estimators ({', '.join(classes)}), got {type(model).__name__}")
    check_is_fitted(model)
    params = {name: _storable(name, value) for name, value in model.get_params(deep=False).items()}
    meta = {"format": _FORMAT, "mtlx_version": __version__, "estimator": type(model).__name__, "params": params}
    arrays = {name: np.asarray(getattr(model, name)) for name in _FITTED}
    if hasattr(model, "feature_names_in_"):
        arrays["feature_names_in_"] = np.asarray(model.feature_names_in_, dtype=str)
    if hasattr(model, "classes_"):
        per_task = [model.classes_] if model.fit_layout_ == "single" else list(model.classes_)
        for t, cls in enumerate(per_task):
            cls = np.asarray(cls)
            if cls.dtype.kind not in "biufUS":
                raise TypeError(f"task {t}: classes of dtype {cls.dtype} cannot be stored without pickle; "
                                "use numeric or string labels")
            arrays[f"classes_{t}"] = cls
    for name, arr in arrays.items():
        if arr.dtype == object:
            raise TypeError(f"{name} has object dtype and cannot be stored without pickle")
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    write_atomically(path, {"__meta__": np.asarray(json.dumps(meta)), **arrays})


def _storable(name: str, value):
    """A parameter as JSON: arrays as lists; what JSON cannot hold (a callback, a communicator,
    a CV splitter object) as None, the default it comes back with."""
    if name in _NOT_STORED:
        return None
    if isinstance(value, np.ndarray):
        return value.tolist()
    try:
        json.dumps(value)
    except TypeError:
        return None
    return value


def load(path):
    """Read an estimator written by :func:`save` (no code runs: ``allow_pickle=False``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MultiTaskRegressor or MultiTaskClassifier
        Fitted, predicting exactly as the saved model did.
    """
    from . import __version__

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model file at {str(path)!r}")
    with np.load(path, allow_pickle=False) as z:
        if "__meta__" not in z.files:
            raise ValueError(f"{str(path)!r} is not an mtlx model file (no '__meta__' entry; found {z.files})")
        meta = json.loads(str(z["__meta__"]))
        arrays = {name: z[name] for name in z.files if name != "__meta__"}
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} has model format {meta.get('format')!r}; this mtlx reads format {_FORMAT}")
    classes = _estimator_classes()
    if meta["estimator"] not in classes:
        raise ValueError(f"{str(path)!r} holds an unknown estimator {meta['estimator']!r}")
    if meta["mtlx_version"] != __version__:
        warnings.warn(f"{str(path)!r} was saved by mtlx {meta['mtlx_version']}, loading with {__version__}",
                      UserWarning, stacklevel=2)
    missing = [name for name in _FITTED if name not in arrays]
    if missing:
        raise ValueError(f"{str(path)!r} lacks the fitted arrays {missing}")
    model = classes[meta["estimator"]](**meta["params"])
    for name in _FITTED:
        value = arrays[name]
        setattr(model, name, value.item() if value.ndim == 0 else value)
    model.n_iter_, model.n_tasks_, model.n_features_in_ = int(model.n_iter_), int(model.n_tasks_), \
        int(model.n_features_in_)
    model.fit_layout_ = str(model.fit_layout_)
    if "feature_names_in_" in arrays:
        model.feature_names_in_ = arrays["feature_names_in_"].astype(object)
    per_task = [arrays[f"classes_{t}"] for t in range(model.n_tasks_) if f"classes_{t}" in arrays]
    if per_task:
        model.classes_ = per_task[0] if model.fit_layout_ == "single" else per_task
    return model
