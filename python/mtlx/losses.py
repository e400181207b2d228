"""Per-sample losses: what the core computes for each, and what the Python layer needs around it.

=====================  ======================================  ==================  ==============================
name                   L(y, z)                                 targets             prediction
=====================  ======================================  ==================  ==============================
``"squared"``          0.5 (y - z)^2                           real numbers        z
``"logistic"``         log(1 + exp(-y z))                      labels in {-1, +1}  P(y = +1) = 1 / (1 + exp(-z))
``"huber"``            r^2 if |r| <= eps, else 2 eps |r| - eps^2   real numbers    z
                       (r = y - z; scikit-learn's HuberRegressor)
``"squared_hinge"``    max(0, 1 - y z)^2 (LinearSVC's default)  labels in {-1, +1}  sign(z)
``"poisson"``          exp(z) - y z + y log y - y               counts y >= 0       E[y] = exp(z)
                       (half the Poisson deviance, log link)
=====================  ======================================  ==================  ==============================

A loss object carries its name, its code in the core (``mtlx._core.LossKind``, the only place
the numbering is written), its parameter for the core (Huber's ``epsilon``), the bound on its
second derivative the solver uses to balance the intercepts against the coefficients, its label
check, and its prediction transform. A new loss is one functor in
``cpp/include/mtlx/losses.hpp`` (and its case in ``visit_loss``) plus one subclass here.

``"huber"`` is :class:`Huber` with scikit-learn's default ``epsilon = 1.35``; pass
``Huber(epsilon=...)`` for another threshold (wherever a loss name is accepted). Its scale is fixed
at 1 (HuberRegressor also fits a scale sigma): standardize the targets first, or choose
``epsilon`` in the targets' units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit, xlogy

from . import _core

__all__ = ["LOSSES", "Huber", "Logistic", "Loss", "Multinomial", "Poisson", "Squared", "SquaredHinge", "get_loss",
           "resolve_losses"]


class Loss:
    """A per-sample loss L(y, z) of a margin z = x . w + b."""

    #: Name used by ``solve(loss=...)``.
    name: str = ""
    #: Code in the core's ``LossKind``.
    kind = None
    #: A bound on d^2 L / dz^2 (the intercepts' curvature per unit of task weight and row).
    curvature: float = 1.0
    #: Whether f is quadratic in (W, b) for this loss (an affine gradient).
    quadratic = False
    #: Whether the targets are class labels (-1/+1), as a classifier encodes them.
    labels = False

    @property
    def code(self) -> int:
        return int(self.kind)

    @property
    def param(self) -> float:
        """The loss's parameter in the core (Huber's epsilon; 0 for losses without one)."""
        return 0.0

    def typical_curvature(self, y: np.ndarray) -> float:
        """The scale of d^2 L / dz^2 for targets ``y``: the global bound where there is one."""
        return self.curvature

    def optimal_intercept(self, y: np.ndarray, where: str, weight: np.ndarray | None = None) -> float:
        """argmin_b sum_i s_i L(y_i, b): the intercept at W = 0 (``where`` names the task in errors;
        ``weight``: the sample weights s, None for all 1).

        By bisection on the monotone sum of derivatives, evaluated by the core (the loss's math
        is written once); subclasses with a closed form override it.
        """
        y = np.ascontiguousarray(y, dtype=np.float64)
        if y.size == 0:
            return 0.0
        s = None if weight is None else np.ascontiguousarray(weight, dtype=np.float64)

        def slope(b: float) -> float:
            return _derivative_sum(self, y, b, s)

        lo, hi = float(y.min()) - 1.0, float(y.max()) + 1.0
        while slope(lo) > 0:
            lo -= 2.0 * (hi - lo)
        while slope(hi) < 0:
            hi += 2.0 * (hi - lo)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid in (lo, hi):
                break
            if slope(mid) < 0:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def check_intercept(self, y: np.ndarray, where: str) -> None:
        """Raise ValueError when an unpenalized intercept for targets ``y`` has no finite optimum."""

    def valid(self, y: np.ndarray) -> np.ndarray:
        """Which targets lie in the loss's domain (a boolean array like y)."""
        return np.ones(np.shape(y), dtype=bool)

    #: The targets ``valid`` accepts, in words (for the error naming the others).
    domain = "real numbers"

    def check_targets(self, y: np.ndarray, where: str) -> None:
        """Raise ValueError naming ``where`` when ``y`` holds targets outside the loss's domain."""
        ok = self.valid(y)
        if not ok.all():
            found = np.unique(y[~ok])[:5]
            raise ValueError(f"{where}: y holds labels {found.tolist()} but the {self.name} loss needs {self.domain}")

    def predict(self, z: np.ndarray) -> np.ndarray:
        """The prediction at margins z (the mean of y under the loss's model)."""
        return z

    #: Where dL/dz has kinks, the generalized second derivative vanishes on whole regions (Huber's
    #: linear tails, the squared hinge past the margin): proximal Newton floors its curvature at
    #: this fraction of :attr:`curvature`, so that each model stays strictly convex.
    newton_floor = 0.0

    def terms(self, y: np.ndarray, z: np.ndarray) -> tuple:
        """(L, dL/dz, d^2L/dz^2) at targets y and margins z (1-D float64), from the core's functor."""
        return _core.pointwise_loss_terms(self.code, self.param, _vector(y), _vector(z))

    def conjugate(self, y: np.ndarray, u: np.ndarray) -> np.ndarray:
        """L*(y, u) = sup_z (u z - L(y, z)) (+inf outside its domain), from the core's functor: the
        dual objective of the proximal Newton engine's duality gap."""
        return _core.loss_conjugate(self.code, self.param, _vector(y), _vector(u))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _vector(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).reshape(-1)


class Squared(Loss):
    """0.5 (y - z)^2: regression."""

    name = "squared"
    kind = _core.LossKind.squared
    curvature = 1.0
    quadratic = True


    def optimal_intercept(self, y, where, weight=None):
        return float(np.average(np.asarray(y, dtype=np.float64), weights=weight))


class _LabelLoss(Loss):
    """A loss of labels y in {-1, +1}."""

    labels = True
    domain = "labels in {-1, +1}"

    def valid(self, y):
        return (y == 1) | (y == -1)


class Logistic(_LabelLoss):
    """log(1 + exp(-y z)) with y in {-1, +1}: binary classification (curvature at most 1/4)."""

    name = "logistic"
    kind = _core.LossKind.logistic
    curvature = 0.25

    def predict(self, z):
        return expit(z)

    def optimal_intercept(self, y, where, weight=None):
        self.check_intercept(y if weight is None else y[weight > 0], where)
        pos = float(np.average(y > 0, weights=weight))
        return float(np.log(pos / (1.0 - pos)))

    def check_intercept(self, y, where):
        if np.all(y == y[0]):
            raise ValueError(
                f"{where}: the logistic task has only label {y[0]:+g}, but it needs two classes (-1 and +1): "
                "with fit_intercept=True its intercept would diverge")


class SquaredHinge(_LabelLoss):
    """max(0, 1 - y z)^2 with y in {-1, +1}: the linear SVM (curvature at most 2).

    With one class only, the intercept alone fits every row (b = y), so there is no error to raise.
    """

    name = "squared_hinge"
    kind = _core.LossKind.squared_hinge
    curvature = 2.0
    newton_floor = 1e-3

    def predict(self, z):
        return np.where(np.asarray(z) > 0, 1.0, -1.0)


class Huber(Loss):
    """Huber's robust loss, scikit-learn's HuberRegressor convention (scale fixed at 1).

    ``L = r^2`` for ``|r| <= epsilon`` and ``2 epsilon |r| - epsilon^2`` beyond, with r = y - z:
    quadratic for small residuals, linear for outliers (curvature at most 2).

    Parameters
    ----------
    epsilon : float, default 1.35
        The threshold between the quadratic and the linear part, in the targets' units
        (scikit-learn's default, 95% efficiency under Gaussian noise of unit scale).
    """

    name = "huber"
    kind = _core.LossKind.huber
    curvature = 2.0
    newton_floor = 1e-3

    def __init__(self, epsilon: float = 1.35):
        epsilon = float(epsilon)
        if not (np.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"Huber: epsilon must be a finite number > 0, got {epsilon!r}")
        self.epsilon = epsilon

    @property
    def param(self):
        return self.epsilon

    def __eq__(self, other):
        return isinstance(other, Huber) and other.epsilon == self.epsilon

    def __hash__(self):
        return hash((Huber, self.epsilon))

    def __repr__(self):
        return f"Huber(epsilon={self.epsilon!r})"


class Poisson(Loss):
    """Half the Poisson deviance with the log link, ``exp(z) - y z + y log y - y``, for counts y >= 0.

    scikit-learn's PoissonRegressor's loss; the prediction is the mean ``exp(z)``. Its curvature
    ``exp(z)`` has no global bound: the solvers' line search finds the step (the working-set CD
    engine, which needs a bound, does not take it).
    """

    name = "poisson"
    kind = _core.LossKind.poisson
    curvature = 1.0

    def valid(self, y):
        return y >= 0

    def check_targets(self, y, where):
        bad = np.flatnonzero(~self.valid(y))
        if bad.size:
            # (By value, not position: y here may be the task's labelled rows only, whose indices
            # are not the caller's.)
            raise ValueError(f"{where}: y holds {bad.size} negative value{'s' if bad.size > 1 else ''} (the first: "
                             f"{y[bad[0]]:g}), but the poisson loss needs counts y >= 0")

    def typical_curvature(self, y):
        # exp(z) at the intercept-only optimum z = log(mean y).
        mean = float(np.mean(y, dtype=np.float64)) if np.size(y) else 1.0
        return mean if mean > 0 else 1.0

    def predict(self, z):
        return np.exp(z)

    def optimal_intercept(self, y, where, weight=None):
        return _log_of_mean(self, y, where, weight)  # exp(b) = the mean count

    def check_intercept(self, y, where):
        if not np.any(y > 0):
            raise ValueError(f"{where}: every count of the poisson task is 0, so its intercept has no finite "
                             "optimum (it would diverge to -inf)")


class Multinomial(Loss):
    """Softmax cross-entropy of a task with K classes, over K columns of W (one per class).

    The columns whose loss is one and the same ``Multinomial`` object, consecutive, form one
    task: their targets are the one-hot indicators (0/1) of each row's class, and the task's loss
    is ``sum_i [log sum_k exp(z_ik) - z_i,y_i]`` with ``z_ik = x_i . w_k + b_k``. K columns, not
    K - 1: the symmetric parametrization of scikit-learn's LogisticRegression, where a penalty on
    W picks the representative (a shift of every column by the same vector leaves the
    probabilities unchanged, and costs penalty). The curvature is at most 1/2.

    The loss couples its columns row by row, so :class:`mtlx.objective.SmoothLoss` evaluates it
    (in numpy, one product per task) beside the core's per-column losses.
    """

    name = "multinomial"
    kind = _core.LossKind.squared  # (the core sees these columns at weight 0; SmoothLoss adds the softmax)
    curvature = 0.5
    labels = True
    domain = "the 0/1 indicator of its column's class"

    def terms(self, y, z):
        raise TypeError("the multinomial loss couples its K columns: it has no per-entry terms")

    def conjugate(self, y, u):
        raise TypeError("the multinomial loss couples its K columns: it has no per-entry conjugate; see "
                        "row_conjugate")

    @staticmethod
    def row_conjugate(Y: np.ndarray, U: np.ndarray) -> np.ndarray:
        """The conjugate of each row's loss, ``L*(y_i, u_i) = sum_k q_ik log q_ik`` with
        ``q_i = u_i + y_i``: the negative entropy of q_i, finite where q_i is a distribution (dual
        points of the form ``(softmax - y) / s`` with s >= 1 are: ``q = p / s + y (1 - 1 / s)``)."""
        Q = U + Y
        return xlogy(Q, Q).sum(axis=1)

    def valid(self, y):
        return (y == 0) | (y == 1)

    def optimal_intercept(self, y, where, weight=None):
        # At W = 0 the softmax intercepts are the log class frequencies (up to a common shift).
        return _log_of_mean(self, y, where, weight)

    def check_intercept(self, y, where):
        if not np.any(y == 1):
            raise ValueError(f"{where}: a class of the multinomial task has no row, so its intercept has no finite "
                             "optimum (it would diverge to -inf)")

    def __repr__(self):
        return f"Multinomial(at {id(self):#x})"


#: Every loss by name (Huber with its default epsilon; "multinomial": one softmax over all the
#: columns it is given for).
LOSSES = {cls.name: cls() for cls in (Squared, Logistic, Huber, SquaredHinge, Poisson, Multinomial)}


def get_loss(loss, where: str = "loss") -> Loss:
    """The :class:`Loss` for a name (or the loss itself)."""
    if isinstance(loss, Loss):
        return loss
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"{where}: unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[loss]


def resolve_losses(loss, n_tasks: int) -> list:
    """One :class:`Loss` per task.

    Parameters
    ----------
    loss : str, Loss, or sequence of them
        One loss for every task, or one per task (length ``n_tasks``).
    n_tasks : int

    Returns
    -------
    list of Loss, length n_tasks
    """
    if isinstance(loss, (str, Loss)):
        return [get_loss(loss)] * n_tasks
    if not isinstance(loss, (Sequence, np.ndarray)):
        raise TypeError(f"loss must be a name or a sequence of {n_tasks} names, got {type(loss).__name__}")
    names = list(loss)
    if len(names) != n_tasks:
        raise ValueError(f"loss has {len(names)} names but there are {n_tasks} tasks")
    return [get_loss(n, f"loss of task {t}") for t, n in enumerate(names)]


def loss_codes(losses: list) -> np.ndarray:
    """The core's per-task loss codes (uint8) of a list of losses."""
    return np.array([loss.code for loss in losses], dtype=np.uint8)


def _log_of_mean(loss: Loss, y: np.ndarray, where: str, weight) -> float:
    """log of the (weighted) mean target: the optimal intercept at W = 0 of the Poisson loss and of
    each multinomial column; ``loss.check_intercept`` first refuses a mean of 0 (no finite log)."""
    loss.check_intercept(y if weight is None else y[weight > 0], where)
    return float(np.log(np.average(np.asarray(y, dtype=np.float64), weights=weight)))


def softmax_groups(losses: list) -> list:
    """The column ranges ``(start, stop)`` of the multinomial tasks in a per-column loss list:
    maximal runs of one and the same :class:`Multinomial` object."""
    groups, t = [], 0
    while t < len(losses):
        if isinstance(losses[t], Multinomial):
            stop = t + 1
            while stop < len(losses) and losses[stop] is losses[t]:
                stop += 1
            groups.append((t, stop))
            t = stop
        else:
            t += 1
    return groups


def loss_params(losses: list) -> np.ndarray:
    """The core's per-task loss parameters (float64) of a list of losses."""
    return np.array([loss.param for loss in losses], dtype=np.float64)


def _derivative_sum(loss: Loss, y: np.ndarray, b: float, weight: np.ndarray | None = None) -> float:
    """sum_i s_i dL/dz (y_i, b), from the core (a task with no features)."""
    m = y.shape[0]
    gW, gb = np.empty((1, 0)), np.empty(1)
    _core.loss_grad_stacked(np.empty((m, 0)), y, np.array([0, m], dtype=np.int64), loss_codes([loss]),
                            loss_params([loss]), np.ones(1), np.empty((1, 0)), np.array([b]), gW, gb, 1, weight)
    return float(gb[0])
