"""How :func:`mtlx.save` stores a fitted shared-trunk estimator and :func:`mtlx.load` rebuilds it.

The file holds the network's flat parameter vector (``params_``), its heads' widths
(``out_dims_``), each head's loss (``losses_``: code and parameter, -1 for a softmax head), the
learned log-variances (``log_vars_``, uncertainty weighting only), the curves (``loss_curve_``,
``task_loss_``, ``validation_`` with early stopping; ``earlier_loss_curve_``, the fits a warm start
went on from), ``converged_`` and the common counts
(``n_tasks_``, ``n_features_in_``, ``n_iter_``, ``fit_layout_``, ``tasks_``; a classifier's
``classes_<t>``). The architecture is the estimator's parameters (``hidden``, ``task_hidden``,
``activation``): with ``n_features_in_`` and ``out_dims_`` they fix the length of ``params_``,
so every member is sized before it is read (see :mod:`mtlx.persistence`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FITTED", "OPTIONAL", "check", "max_bytes", "members", "rebuild"]

#: Members every file holds (beyond __meta__ and a classifier's classes_<t>).
FITTED = ("n_tasks_", "n_features_in_", "n_iter_", "fit_layout_", "tasks_", "params_", "out_dims_", "losses_",
          "loss_curve_", "task_loss_", "converged_")
#: Members a file holds when the fit made them.
OPTIONAL = ("log_vars_", "validation_", "earlier_loss_curve_")
_HEADER = 4096  # an .npy header (numpy writes 128)
_LABEL = 4096


def _architecture(model):
    """The estimator's (hidden, task_hidden, activation) as fit normalizes them; a file's values that
    fit would refuse (or that overflow) are a ValueError naming them."""
    from .fit import check_architecture

    try:
        hidden, task_hidden = check_architecture(model.hidden, model.task_hidden, model.activation)
        if sum(hidden) + sum(task_hidden) > 2**40:
            raise ValueError(f"layer widths {hidden} and {task_hidden} beyond any network")
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"the architecture: {exc}") from None
    return hidden, task_hidden, model.activation


def _network(model):
    from .network import TrunkNetwork

    hidden, task_hidden, activation = _architecture(model)
    return TrunkNetwork(model.n_features_in_, hidden, task_hidden, activation, model.out_dims_)


def members(model) -> dict:
    """The arrays of a fitted model's file."""
    from ..losses import Multinomial

    res = model.result_
    history = res.history
    arrays = {"n_tasks_": np.asarray(model.n_tasks_), "n_features_in_": np.asarray(model.n_features_in_),
              "n_iter_": np.asarray(model.n_iter_), "fit_layout_": np.asarray(model.fit_layout_),
              "tasks_": np.asarray(model.tasks_), "params_": np.asarray(res.params, dtype=np.float64),
              "out_dims_": np.asarray(res.network.out_dims, dtype=np.int64),
              "losses_": np.array([[-1.0, 0.0] if isinstance(loss, Multinomial) else [float(loss.code), loss.param]
                                   for loss in res.losses], dtype=np.float64).reshape(-1, 2),
              "loss_curve_": np.asarray(history["objective"], dtype=np.float64),
              "task_loss_": np.asarray(history["task_loss"], dtype=np.float64),
              "converged_": np.asarray(bool(res.converged))}
    if res.log_vars is not None:
        arrays["log_vars_"] = np.asarray(res.log_vars, dtype=np.float64)
    if "validation" in history:
        arrays["validation_"] = np.asarray(history["validation"], dtype=np.float64)
    earlier = len(model.loss_curve_) - len(history["objective"])
    if earlier > 0:  # (a warm start's loss_curve_ goes on from the previous fits')
        arrays["earlier_loss_curve_"] = np.asarray(model.loss_curve_[:earlier], dtype=np.float64)
    return arrays


def max_bytes(name: str, model) -> int | None:
    """The most bytes member ``name`` can take (None: not sized here, the caller's cap applies).
    ``out_dims_`` is read before ``params_``, whose length it fixes."""
    T = int(model.n_tasks_)
    if name == "params_":
        return _HEADER + 8 * _network(model).n_params
    sizes = {"out_dims_": 8 * T, "losses_": 16 * T, "tasks_": _LABEL * T, "log_vars_": 8 * T, "converged_": 8}
    return _HEADER + sizes[name] if name in sizes else None


def rebuild(model) -> None:
    """The fitted state from the members :func:`mtlx.persistence.load` set as attributes: the result
    (network and parameters) and every attribute fit sets; the members' own attributes removed."""
    from .fit import SharedTrunkResult, _loss_of

    out_dims = np.asarray(model.out_dims_)
    if out_dims.dtype.kind not in "iu" or out_dims.shape != (model.n_tasks_,) or np.any(out_dims < 1):
        raise ValueError(f"out_dims_ must hold n_tasks_ = {model.n_tasks_} head widths >= 1, got {_describe(out_dims)}")
    net = _network(model)
    params = _floats(model.params_, "params_", (net.n_params,))
    table = _floats(model.losses_, "losses_", (model.n_tasks_, 2))
    codes = {-1, *range(8)}
    if not all(float(code).is_integer() and int(code) in codes for code in table[:, 0]):
        raise ValueError(f"losses_ holds unknown loss codes {sorted(set(table[:, 0].tolist()) - codes)}")
    try:
        losses = [_loss_of(code, p) for code, p in table]
    except (AssertionError, ValueError) as exc:
        raise ValueError(f"losses_: {exc}") from None
    # (the curves are a record of the fit: a NaN there, from a diverged epoch, is kept as it was)
    curve = _floats(model.loss_curve_, "loss_curve_", None, ndim=1, finite=False)
    task_loss = _floats(model.task_loss_, "task_loss_", (curve.size, model.n_tasks_), finite=False)
    history = {"objective": curve, "task_loss": task_loss}
    if hasattr(model, "validation_"):
        if not (model.early_stopping and model.solver == "adam"):
            raise ValueError("validation_ is stored only by an Adam fit with early_stopping=True")
        history["validation"] = _floats(model.validation_, "validation_", (curve.size,), finite=False)
    log_vars = _floats(model.log_vars_, "log_vars_", (model.n_tasks_,)) if hasattr(model, "log_vars_") else None
    if (log_vars is not None) != (model.task_weighting == "uncertainty"):
        raise ValueError("log_vars_ is stored exactly when task_weighting='uncertainty'")
    converged = np.asarray(model.converged_)
    if converged.shape != () or converged.dtype != np.bool_:
        raise ValueError(f"converged_ must be a boolean, got {_describe(converged)}")
    tasks = np.asarray(model.tasks_)
    if tasks.shape != (model.n_tasks_,):  # (checked in full after the rebuild; its length first, which sizes it)
        raise ValueError(f"tasks_ must hold n_tasks_ = {model.n_tasks_} task ids, got {_describe(tasks)}")
    res = SharedTrunkResult(network=net, params=params, task_ids=tasks, losses=losses,
                            log_vars=log_vars, history=history, n_iter=int(model.n_iter_),
                            converged=bool(converged), message="loaded", solver=model.solver)
    earlier = []
    if hasattr(model, "earlier_loss_curve_"):
        earlier = _floats(model.earlier_loss_curve_, "earlier_loss_curve_", None, ndim=1, finite=False).tolist()
    for name in ("params_", "out_dims_", "losses_", "task_loss_", "converged_", "validation_", "earlier_loss_curve_"):
        if hasattr(model, name):
            delattr(model, name)
    model._set_fitted(res)
    model.loss_curve_ = earlier + model.loss_curve_


def check(model) -> None:
    """ValueError unless a fitted (or rebuilt) trunk model is consistent: its network has the
    estimator's architecture and input width, one head per task (one output per binary or
    regression task, K per task of K classes), finite parameters of the network's length, one
    loss per head that fits it."""
    from ..losses import Multinomial

    res = getattr(model, "result_", None)
    if res is None:
        raise ValueError("result_ is missing: the model is not fitted")
    net = res.network
    hidden, task_hidden, _ = _architecture(model)
    if (net.n_features, net.hidden, net.task_hidden, net.activation) != \
            (model.n_features_in_, hidden, task_hidden, model.activation):
        raise ValueError(f"the network ({net.n_features} inputs, hidden {net.hidden}, task_hidden {net.task_hidden}, "
                         f"{net.activation}) is not the estimator's ({model.n_features_in_} inputs, hidden {hidden}, "
                         f"task_hidden {task_hidden}, {model.activation})")
    _floats(np.asarray(res.params), "the network's parameters", (net.n_params,))
    if net.n_tasks != model.n_tasks_ or len(res.losses) != model.n_tasks_:
        raise ValueError(f"the network has {net.n_tasks} heads and {len(res.losses)} losses for n_tasks_ = "
                         f"{model.n_tasks_} tasks")
    for t, (width, loss) in enumerate(zip(net.out_dims.tolist(), res.losses)):
        if (width > 1) != isinstance(loss, Multinomial):
            raise ValueError(f"task {t}: a head of {width} output(s) with the {loss!r} loss")
    if hasattr(model, "classes_"):
        per_task = [model.classes_] if model.fit_layout_ == "single" else model.classes_
        for t, (width, labels) in enumerate(zip(net.out_dims.tolist(), per_task)):
            if width != (1 if len(labels) == 2 else len(labels)):
                raise ValueError(f"task {t}: {len(labels)} classes need {1 if len(labels) == 2 else len(labels)} "
                                 f"head output(s), the network has {width}")
    elif any(w != 1 for w in net.out_dims.tolist()):
        raise ValueError("a regressor has one output per task")
    tasks = np.asarray(model.tasks_)
    if tasks.shape != (model.n_tasks_,) or np.unique(tasks).size != model.n_tasks_:
        raise ValueError(f"tasks_ must hold n_tasks_ = {model.n_tasks_} distinct task ids, got {_describe(tasks)}")


def _floats(value, name: str, shape, ndim=None, finite=True) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind != "f" or (shape is not None and a.shape != tuple(shape)) or (ndim is not None and a.ndim != ndim):
        expected = f"shape {tuple(shape)}" if shape is not None else f"{ndim}-D"
        raise ValueError(f"{name} must be a float array of {expected}, got {_describe(a)}")
    if finite and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return a.astype(np.float64, copy=False)


def _describe(a) -> str:
    a = np.asarray(a)
    return f"a {a.dtype} array of shape {a.shape}"
