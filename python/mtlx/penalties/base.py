"""The penalty interface every formulation implements, and the registry of named penalties.

A penalty ``g`` acts on one **parameter block**:

* a *task block*: a d x T matrix, one column per task (handled as ``V`` of shape (T_local, d):
  row t = task t's column, contiguous; under MPI each rank holds the rows of its own tasks);
* a *shared block*: one d-vector common to every task (``V`` of shape (d,), the same on
  every rank), whose contribution to W is ``w0 1^T``.

Each penalty carries a relative weight ``w`` (solve's ``alpha`` multiplies the whole of g), so
the objective holds ``alpha * w * g(V)``. It states what it provides, and the solver asks:

* **prox** (``proximable``): ``out = argmin_U 0.5 ||U - V||^2 + tau w g(U)``, returning
  ``w g(out)``; ``value`` returns ``w g(V)``.
* **smooth** (``smooth``): ``w g`` is differentiable with a Lipschitz gradient and can join
  the smooth part of the objective (``value_and_gradient``); ``quadratic`` when the gradient is
  affine (the solver's one-pass iteration for least squares keeps working).
* **what a distributed solve must reduce** (``n_stats``): with task columns split over ranks, a
  penalty whose prox, value or gradient needs more than the local columns computes *local
  statistics* (a sum over the local tasks), the solver all-reduces them (one buffer, one
  ``Allreduce``, see :mod:`mtlx.distributed`), and the penalty finishes from the global
  statistics. A penalty whose statistics of ``Y - s G`` are polynomial in the step ``s``
  provides *pieces* (``n_pieces``) so that every step a line search tries needs no further
  reduction (see :func:`mtlx.fista.fista`).
* **duality** (``dual_norm``): for a norm, the dual norm of a d x T matrix (alpha_max and gap
  certificates); None when W = 0 is never the solution.

Returned values follow one convention under MPI: each rank returns its *share*, and the shares
sum to the global value (a value computed from global statistics is returned by rank 0 alone).

A new penalty is one subclass in its own file of this package with a ``name`` (its string
spelling) registered by :func:`register`; nothing else needs to change.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from .._ops import HOST_OPS

__all__ = ["BlockContext", "Penalty", "Sum", "get_penalty", "register", "registered"]

_REGISTRY: dict = {}


def register(cls):
    """Class decorator: make ``cls`` available under its ``name`` (``penalty="l21"``)."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"penalty name {cls.name!r} is empty or taken")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict:
    """Every penalty spelled by a string: name -> class."""
    return dict(_REGISTRY)


@dataclass
class BlockContext:
    """Where a penalty runs: sizes of the block and the place of this rank's tasks.

    Attributes
    ----------
    n_features : int
    n_tasks : int
        Tasks over all ranks (the global T).
    local_index : ndarray of int64
        Position of each local task (row of ``V``) in the global task order.
    rank : int
        0 in a single process; the rank that reports values computed from global statistics.
    distributed : bool
        Whether task columns live on several ranks (statistics must be reduced).
    n_threads : int
    ops : HostOps or a device backend
        Where the block's arrays live and the native proxes that run there (:mod:`mtlx._ops`).
    """

    n_features: int
    n_tasks: int
    local_index: np.ndarray
    rank: int = 0
    distributed: bool = False
    n_threads: int = 1
    cache: dict = field(default_factory=dict)
    ops: object = HOST_OPS

    @classmethod
    def single(cls, n_features: int, n_tasks: int, n_threads: int = 1) -> BlockContext:
        """The context of a single process holding every task."""
        return cls(n_features, n_tasks, np.arange(n_tasks, dtype=np.int64), n_threads=n_threads)

    def share(self, value: float) -> float:
        """This rank's share of a value computed from global statistics (all of it on rank 0)."""
        return float(value) if self.rank == 0 else 0.0

    def here(self, a):
        """``a`` (a host array, or one already where the block lives) where the block's arrays live:
        moved to the device for a device solve, as it is otherwise (no copy)."""
        return self.ops.asarray(a) if self.ops.on_device and not self.ops.resident(a) else a

    def scatter_rows(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Write the local rows (T_local, ...) into their global places of ``out`` (T, ...), zero elsewhere.

        Summing such buffers over ranks (an Allreduce) gathers every task's rows on every rank.
        """
        out[...] = 0.0
        out[self.local_index] = rows


def check_weight(w, name: str = "w") -> float:
    """A relative weight: a finite real number >= 0."""
    if isinstance(w, bool) or not isinstance(w, numbers.Real):
        raise TypeError(f"the penalty weight {name} must be a real number, got {type(w).__name__}")
    w = float(w)
    if not np.isfinite(w) or w < 0:
        raise ValueError(f"the penalty weight {name} must be finite and >= 0, got {w}")
    return w


class Penalty:
    """Base class of every penalty (see the module docstring for the protocol).

    Parameters
    ----------
    w : float, default 1.0
        Relative weight (>= 0); the objective holds ``alpha * w * g``.
    """

    #: String spelling in the registry (None: not spelled by a string).
    name: str | None = None
    #: "tasks" (a d x T matrix) or "shared" (a d-vector common to all tasks).
    block = "tasks"
    proximable = True
    smooth = False
    quadratic = False
    #: Working-set coordinate descent supports it (its code in mtlx._core.cd_epochs), or None.
    cd_kind = None
    #: Entries of W are groups of their own inside its groups (l1 before it composes exactly).
    nests_entries = False
    #: Its prox and value run on arrays in a GPU's memory (through ``ctx.ops``: the native penalties).
    runs_on_device = False
    #: Its distributed statistics, pieces and prox from statistics run on device arrays too (MPI with GPUs).
    stats_on_device = False
    #: Constructor arguments, in order, for repr, equality and the plain-data spec.
    _fields: tuple = ("w",)

    def __init__(self, w=1.0):
        self.w = check_weight(w)

    # ------------------------------------------------------------------ description
    def params(self) -> dict:
        """Constructor arguments by name (what ``repr``, equality and persistence use)."""
        return {f: getattr(self, f) for f in self._fields}

    def __repr__(self) -> str:
        args = ", ".join(_short_repr(v) for v in self.params().values())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and _params_equal(self.params(), other.params())

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))

    def __add__(self, other):
        return Sum(self, other)

    def __radd__(self, other):
        if other == 0:  # sum([g1, g2]) starts from 0
            return self
        return NotImplemented

    def check(self, n_features: int, n_tasks: int) -> None:
        """Raise ValueError when the penalty does not fit a problem of this size (default: fits)."""

    def terms(self) -> list:
        """The penalties summed in this one (itself for a single penalty)."""
        return [self]

    def components(self) -> list:
        """The parameter blocks W is the sum of: one per :class:`Superpose` part (itself otherwise)."""
        return [self]

    def split(self):
        """(prox part or None, [smooth terms]): how the solver handles this block's penalty.

        A single penalty is its own prox part when it has a prox, else a smooth term.
        """
        return (self, []) if self.proximable else (None, [self])

    # ------------------------------------------------------------------ prox and value
    def prox(self, V, tau: float, out, ctx: BlockContext) -> float:
        """``out = prox_{tau w g}(V)`` (``out`` may be ``V``); returns this rank's share of ``w g(out)``."""
        raise NotImplementedError(f"{type(self).__name__} has no prox")

    def value(self, V, ctx: BlockContext) -> float:
        """This rank's share of ``w g(V)``."""
        raise NotImplementedError

    def value_and_gradient(self, V, grad, ctx: BlockContext) -> float:
        """Smooth penalties: adds the gradient of ``w g`` at V into ``grad``; returns the share of ``w g(V)``."""
        raise NotImplementedError(f"{type(self).__name__} is not smooth")

    # ------------------------------------------------------------------ distributed protocol
    def n_stats(self, ctx: BlockContext) -> int:
        """Length of the statistics a distributed prox/value/gradient must all-reduce (0: local)."""
        return 0

    def local_stats(self, V, tau, out, stats, ctx: BlockContext) -> None:
        """This rank's statistics for the prox at step ``tau`` (or, with ``tau`` None, for value and
        gradient) into ``stats``; may use ``out`` as scratch (the prox then finishes from it)."""
        raise NotImplementedError

    def prox_from_stats(self, V, stats, tau: float, out, ctx: BlockContext) -> float:
        """The prox of the local rows given the all-reduced statistics (see :meth:`local_stats`)."""
        raise NotImplementedError

    def value_from_stats(self, V, stats, ctx: BlockContext, grad=None) -> float:
        """Share of ``w g(V)`` from the all-reduced statistics; smooth penalties add their gradient to ``grad``."""
        raise NotImplementedError

    def n_pieces(self, ctx: BlockContext) -> int:
        """Length of the step-free pieces of the prox statistics of ``Y - s G`` (0: not available)."""
        return 0

    def local_pieces(self, Y, G, out, ctx: BlockContext) -> None:
        """This rank's pieces, from which :meth:`stats_from_pieces` gives the statistics for any step."""
        raise NotImplementedError

    def stats_from_pieces(self, pieces, step: float, ctx: BlockContext):
        """Global statistics of ``Y - step G`` from the all-reduced pieces."""
        raise NotImplementedError

    # ------------------------------------------------------------------ duality
    def dual_norm(self, M) -> float | None:
        """Dual norm of ``w g`` at the (T, d) matrix M (rows = tasks), or None when g is not a norm."""
        return None

    def active_share(self, M, alpha: float) -> float | None:
        """The share of the norm's groups (entries, feature rows, singular values) whose part of
        the dual norm of the (T, d) matrix M exceeds ``alpha``: at M = -grad f(0), the groups that
        W = 0 does not settle, a cheap forecast of the solution's support or rank (what "auto"
        weighs engines by). None where not defined."""
        return None

    def lipschitz(self, ctx: BlockContext) -> float:
        """Smooth penalties: a bound on the Lipschitz constant of the gradient of ``w g``."""
        raise NotImplementedError


class Sum(Penalty):
    """``g1 + g2 + ...`` on the same block: smooth terms join the smooth part, the others form the prox.

    The prox of a sum has a closed form when the non-smooth terms are one penalty, or an
    entrywise l1 term plus one penalty whose groups contain whole entries (sparse group lasso
    ``L1 + L21``, ``L1 + L21Columns``, ``L1 + LInf1``: the groups of l1 are nested in theirs, so
    the prox is the composition, l1 first; Jenatton et al., JMLR 2011). Terms of one class and
    equal parameters are merged (``L1(a) + L1(b) = L1(a + b)``).
    """

    _fields = ("parts",)

    def __init__(self, *parts):
        flat = []
        for p in parts:
            if not isinstance(p, Penalty):
                raise TypeError(f"only penalties can be added, got {type(p).__name__}")
            if p.block != parts[0].block:
                raise ValueError(f"{p!r} acts on a {p.block} block but {parts[0]!r} on a {parts[0].block} block: "
                                 "penalties on different blocks combine with Superpose, not +")
            if isinstance(p, Superpose):
                raise ValueError(f"{p!r} cannot be added to another penalty: put the sum inside one of its parts")
            flat.extend(p.terms())
        self.parts = tuple(_merge(flat))
        self.w = 1.0
        self.block = parts[0].block
        self.smooth = all(p.smooth for p in self.parts)
        self.quadratic = all(p.quadratic for p in self.parts)
        self.split()  # a sum whose prox has no closed form is refused when it is written

    def terms(self) -> list:
        return list(self.parts)

    def __repr__(self) -> str:
        return " + ".join(repr(p) for p in self.parts)

    def __eq__(self, other) -> bool:
        """A sum is equal to another with the same terms in any order (+ commutes)."""
        if not isinstance(other, Sum) or len(other.parts) != len(self.parts):
            return False
        left = list(other.parts)
        for p in self.parts:
            match = next((i for i, q in enumerate(left) if p == q), None)
            if match is None:
                return False
            left.pop(match)
        return True

    def __hash__(self) -> int:
        return hash(("Sum", frozenset(repr(p) for p in self.parts)))

    def check(self, n_features: int, n_tasks: int) -> None:
        for p in self.parts:
            p.check(n_features, n_tasks)

    def split(self):
        nonsmooth = [p for p in self.parts if not p.smooth]
        smooth = [p for p in self.parts if p.smooth]
        if not nonsmooth:
            if len(smooth) == 1 and smooth[0].proximable:
                return smooth[0], []
            return None, smooth
        if len(nonsmooth) == 1:
            return nonsmooth[0], smooth
        return Chain(nonsmooth), smooth

    def value(self, V, ctx):
        return sum(p.value(V, ctx) for p in self.parts)

    def dual_norm(self, M):
        """The smallest alpha for which W = 0 solves ``min <M, W> + alpha g(W)``-type problems.

        Smooth terms vanish at W = 0 with their gradient, so only the non-smooth ones count.
        For several norms the dual ball of the sum is the Minkowski sum of their balls, with no
        closed form in general: W = 0 is optimal iff ``prox_{alpha g}(M) = 0``, which is monotone
        in alpha, so the answer is found by bisection with the prox as the oracle, below the
        smallest single dual norm (each ball lies inside the sum's).
        """
        nonsmooth = [p for p in self.parts if not p.smooth]
        norms = [p.dual_norm(M) for p in nonsmooth]
        if not nonsmooth or any(n is None for n in norms):
            return None
        if len(nonsmooth) == 1:
            return norms[0]
        prox_part = self.split()[0]
        ctx = BlockContext.single(M.shape[1], M.shape[0])
        out = np.empty_like(M, dtype=np.float64)
        V = np.ascontiguousarray(M, dtype=np.float64)
        lo, hi = 0.0, min(norms)
        while hi - lo > 1e-14 * hi:
            mid = 0.5 * (lo + hi)
            prox_part.prox(V, mid, out, ctx)
            if np.any(out != 0):
                lo = mid
            else:
                hi = mid
        return hi


class Chain(Penalty):
    """The prox of ``l1 + g`` as the composition ``prox_g o prox_l1`` (g's groups contain whole entries).

    Built by :meth:`Sum.split`; refuses sums whose prox has no closed form.
    """

    def __init__(self, parts):
        from .l1 import L1

        l1 = [p for p in parts if isinstance(p, L1)]
        rest = [p for p in parts if not isinstance(p, L1)]
        if len(l1) != 1 or len(rest) != 1 or not rest[0].nests_entries:
            names = " + ".join(repr(p) for p in parts)
            raise ValueError(
                f"the prox of {names} has no closed form: a sum may hold smooth penalties, one non-smooth "
                "penalty, or L1 plus one of L21, L21Columns, LInf1 (sparse group lasso); for two non-smooth "
                "penalties on different parameter blocks use Superpose (W = U + V), e.g. Superpose(L1(a), Trace(b))")
        self.first, self.second = l1[0], rest[0]
        self.w = 1.0

    def __repr__(self) -> str:
        return f"{self.first!r} + {self.second!r}"

    @property
    def runs_on_device(self) -> bool:
        return self.first.runs_on_device and self.second.runs_on_device

    @property
    def stats_on_device(self) -> bool:
        return self.second.stats_on_device

    def prox(self, V, tau, out, ctx):
        self.first.prox(V, tau, out, ctx)
        value = self.second.prox(out, tau, out, ctx)
        return value + self.first.value(out, ctx)  # l1 at the final point, after the second shrink

    def value(self, V, ctx):
        return self.first.value(V, ctx) + self.second.value(V, ctx)

    def n_stats(self, ctx):
        return self.second.n_stats(ctx)

    def local_stats(self, V, tau, out, stats, ctx):
        if tau is None:  # the value of a sum: the statistics of the second term at V itself
            self.second.local_stats(V, None, out, stats, ctx)
            return
        self.first.prox(V, tau, out, ctx)  # local (l1), then the second term's statistics of the result
        self.second.local_stats(out, tau, out, stats, ctx)

    def prox_from_stats(self, V, stats, tau, out, ctx):
        # local_stats already left prox_l1(V) in out
        value = self.second.prox_from_stats(out, stats, tau, out, ctx)
        return value + self.first.value(out, ctx)

    def value_from_stats(self, V, stats, ctx, grad=None):
        return self.first.value(V, ctx) + self.second.value_from_stats(V, stats, ctx)


def _merge(parts: list) -> list:
    """Terms of one class with equal parameters but the weight, summed into one."""
    merged: list = []
    for p in parts:
        for i, q in enumerate(merged):
            if type(q) is type(p) and _params_equal({**q.params(), "w": 0}, {**p.params(), "w": 0}):
                params = dict(q.params())
                params["w"] = q.w + p.w
                merged[i] = type(q)(**params)
                break
        else:
            merged.append(p)
    return merged


def _params_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if hasattr(x, "toarray"):
            x = x.toarray()
        if hasattr(y, "toarray"):
            y = y.toarray()
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not (np.shape(x) == np.shape(y) and np.array_equal(x, y)):
                return False
        elif isinstance(x, tuple) and isinstance(y, tuple):
            if len(x) != len(y) or not all(p == q for p, q in zip(x, y)):
                return False
        elif x != y:
            return False
    return True


def _short_repr(v) -> str:
    if isinstance(v, float):
        return repr(v) if v != int(v) or abs(v) >= 1e16 else repr(v)
    if isinstance(v, np.ndarray) or hasattr(v, "toarray"):
        return f"<{type(v).__name__} {getattr(v, 'shape', '')}>"
    return repr(v)


class Superpose(Penalty):
    """``W = U_1 + U_2 + ...`` with one penalty per part: ``g_1(U_1) + g_2(U_2) + ...``.

    Each part is its own parameter block (a :class:`~mtlx.penalties.Shared` part is a shared
    d-vector ``w0``, contributing ``w0 1^T``). The solver fits all parts jointly; the result's
    ``components`` holds each part's d x T matrix.

    Examples: dirty model ``Superpose(LInf1(a), L1(b))`` (Jalali et al. 2010); robust MTL
    ``Superpose(Trace(a), L21Columns(b))`` (Chen, Zhou & Ye 2011); rMTFL
    ``Superpose(L21(a), L21Columns(b))`` (Gong, Ye & Zhang 2012); sparse + low rank
    ``Superpose(L1(a), Trace(b))`` (Chen, Liu & Ye 2012); shared + specific
    ``Superpose(Shared(a), L1(b))`` (Evgeniou & Pontil 2004).
    """

    _fields = ("parts",)

    def __init__(self, *parts):
        if len(parts) < 2:
            raise ValueError("Superpose needs at least two parts (W = U + V)")
        for p in parts:
            if not isinstance(p, Penalty):
                raise TypeError(f"Superpose parts must be penalties, got {type(p).__name__}")
            if isinstance(p, Superpose):
                raise ValueError("Superpose parts cannot themselves be Superpose: list all parts in one")
        self.parts = tuple(parts)
        self.w = 1.0

    def __repr__(self) -> str:
        return "Superpose(" + ", ".join(repr(p) for p in self.parts) + ")"

    def components(self) -> list:
        return list(self.parts)

    def check(self, n_features: int, n_tasks: int) -> None:
        for p in self.parts:
            p.check(n_features, n_tasks)

    def split(self):
        raise ValueError("Superpose is split into its parts by the solver")

    def value(self, V, ctx):
        raise ValueError("the value of a Superpose penalty needs each part's block")

    def dual_norm(self, M):
        """W = 0 (every part 0) is optimal when each part's condition holds: the largest of the parts'."""
        norms = [p.dual_norm(M) if p.block == "tasks" else None for p in self.parts]
        return None if any(n is None for n in norms) else max(norms)


def get_penalty(penalty) -> Penalty:
    """A :class:`Penalty` from a penalty object, a registered name (``"l21"``) or a spec string
    (``"L1(0.5) + L21(1)"``, ``"Superpose(Trace(1000), L21Columns(500))"``; see
    :func:`mtlx.penalties.parse`)."""
    if isinstance(penalty, Penalty):
        return penalty
    if isinstance(penalty, str):
        if penalty in _REGISTRY:
            return _REGISTRY[penalty]()
        from .spec import parse

        return parse(penalty)
    raise TypeError(f"penalty must be a name ({', '.join(sorted(_REGISTRY))}), a spec string or an "
                    f"mtlx.penalties object, got {type(penalty).__name__}")
