"""Property-based tests (hypothesis) of mtlx's public entry points against references written here.

Random shapes (0 or 1 rows, 0 features, 1 task, thousands of tiny tasks), dtypes (floats,
integers, bools, complex, objects, strings), memory layouts (C, Fortran, strided, negative
strides, read-only, memory-mapped) and values (huge, tiny, exact zeros, NaN and infinity) go
through :class:`mtlx.TaskData`, :func:`mtlx.loss_grad`, :func:`mtlx.prox`, :func:`mtlx.solve`,
:func:`mtlx.path`, the estimators and :func:`mtlx.load`. Every call must either return a finite
result equal to an independent numpy/scipy reference (closed forms, SVDs, root finding, a
long-double evaluation of the loss) or raise ValueError/TypeError (FloatingPointError for an
overflow) whose message names the offending argument.

Arrays come from a seed drawn by hypothesis (cheap to generate, shrinks to seed 0); what matters
for a property (shape, dtype, layout, scale, the injected fault) is drawn explicitly, so the
falsifying examples hypothesis prints are readable. The examples that once broke a property
are pinned by ``@example``, so each stays a regression test.
"""

import contextlib
import itertools
import re
import signal
import struct

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st
from scipy.special import expit

import mtlx
from mtlx import penalties as P

# ---------------------------------------------------------------------------------- strategies

#: Dtypes TaskData accepts (stored as float32 or float64).
NUMERIC = tuple(np.dtype(t) for t in (np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8, np.bool_))
#: Dtypes it must refuse with a TypeError naming the array.
NOT_NUMERIC = tuple(np.dtype(t) for t in (np.complex128, np.complex64, object, "U3", "S3", "datetime64[s]"))
LAYOUTS = ("C", "F", "strided", "negative", "readonly", "memmap")
_FILES = itertools.count()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder for memory-mapped inputs and model files (module scope: hypothesis reuses it)."""
    return tmp_path_factory.mktemp("properties")


def arrange(a, layout: str, folder):
    """The values of ``a`` in a memory layout: C, Fortran, every axis strided by 2, every axis
    negatively strided, read-only, or a read-only ``np.memmap`` of a file in ``folder``."""
    a = np.asarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        every_other = tuple(slice(None, None, 2) for _ in a.shape)
        big[every_other] = a
        return big[every_other]
    if layout == "negative":
        return np.flip(np.flip(a).copy())
    if layout == "readonly":
        out = a.copy()
        out.setflags(write=False)
        return out
    if layout == "memmap" and a.size and not a.dtype.hasobject:
        path = folder / f"array{next(_FILES)}.dat"
        mapped = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
        mapped[...] = a
        mapped.flush()
        del mapped
        return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)
    return np.ascontiguousarray(a)


def scales_for(dtype, extreme: bool) -> tuple:
    """Magnitudes a random array of ``dtype`` is drawn at (the extremes only where the dtype holds them)."""
    base = (1.0, 1e-3, 1e3)
    if not extreme:
        return base
    wide = (1e-30, 1e30, 1e-170, 1e-300, 1e150, 1e300)
    return base + tuple(s for s in wide if s * 1e3 < float(np.finfo(dtype).max))


def fill(seed: int, shape, dtype, scale: float = 1.0, zeros: float = 0.0, small_ints: bool = True):
    """A random array: normal floats times ``scale`` with a fraction ``zeros`` of exact zeros,
    integers in [-50, 50] (or up to 2**31 with ``small_ints=False``), or random booleans."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        top = 50 if small_ints else min(2**31 - 1, int(np.iinfo(dtype).max))
        low = 0 if dtype.kind == "u" else -top
        return rng.integers(low, top, size=shape, endpoint=True).astype(dtype)
    values = rng.standard_normal(shape) * scale
    values[rng.random(shape) < zeros] = 0.0
    return values.astype(dtype)


@st.composite
def real_arrays(draw, shape, dtypes=NUMERIC, extreme=True):
    """An array of a numeric dtype, at a drawn scale, possibly with exact zeros."""
    dtype = draw(st.sampled_from(dtypes))
    scale = draw(st.sampled_from(scales_for(dtype, extreme))) if dtype.kind == "f" else 1.0
    zeros = draw(st.sampled_from((0.0, 0.3, 1.0)))
    return fill(draw(st.integers(0, 2**16)), shape, dtype, scale, zeros)


def bad_dtype_array(dtype, shape):
    """An array of a dtype mtlx must refuse (complex, objects, strings, dates)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return (np.ones(shape) + 1j).astype(dtype)
    if dtype.kind == "M":
        return np.zeros(shape, dtype=dtype)
    if dtype.kind in "US":
        return np.full(shape, "1.5", dtype=dtype)
    return np.full(shape, 1.5, dtype=object)


def inject_nonfinite(a, seed: int, value: float):
    """A float copy of ``a`` (non-empty) with ``value`` (NaN or +-inf) at one random entry."""
    out = np.array(a, dtype=a.dtype if a.dtype.kind == "f" else np.float64)
    out.flat[np.random.default_rng(seed).integers(out.size)] = value
    return out


def int_ids(n):
    return st.lists(st.integers(-1000, 10**12), min_size=n, max_size=n, unique=True).map(np.array)


def str_ids(n):
    return st.lists(st.text("abxyz_-", min_size=1, max_size=4), min_size=n, max_size=n, unique=True).map(np.array)


def task_id_values(n):
    """Valid ids of n tasks: unique integers or unique strings, as a list or an array."""
    return st.one_of(int_ids(n), str_ids(n)).flatmap(lambda ids: st.sampled_from((ids, ids.tolist())))


def mistyped_ids(n):
    """n ids that are not all integers or all strings (n >= 2): NaN, None, int beside str, bools."""
    return st.sampled_from(("nan", "none", "mixed", "bool")).map(lambda kind: {
        "nan": [np.nan] + [float(i) for i in range(1, n)],
        "none": [None] + list(range(1, n)),
        "mixed": [1] + [f"t{i}" for i in range(1, n)],
        "bool": [True, False] + [True] * (n - 2),
    }[kind])


def names_in(message: str, *groups) -> bool:
    """Whether ``message`` names, for every group, one of its alternatives as a whole word."""
    def named(name):
        return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None
    return all(any(named(name) for name in group) for group in groups)


def expect_error(call, *groups, types=(ValueError, TypeError)):
    """``call()`` raises one of ``types`` whose message names one alternative of every group."""
    with pytest.raises(types) as info:
        call()
    assert names_in(str(info.value), *groups), f"{type(info.value).__name__}: {info.value} (expected {groups})"
    return info.value


def float_store(inputs, targets):
    """The dtypes a TaskData of these inputs (X) and targets may be stored in: float64 when a float
    input is not float32, or a float target is beyond float32's range; else float32 when every
    array is a float, either beside integers (their values are checked separately). Float targets
    follow X's dtype, as scikit-learn's linear models cast y to X's."""
    floats = [a.dtype for a in inputs if a.dtype.kind == "f"]
    if not floats or any(f != np.float32 for f in floats):
        return (np.float64,)
    if any(a.dtype.kind == "f" and a.size and np.abs(a).max() > np.finfo(np.float32).max for a in targets):
        return (np.float64,)
    return (np.float32,) if all(a.dtype.kind == "f" for a in (*inputs, *targets)) else (np.float32, np.float64)


# ---------------------------------------------------------------------------------- references


def weights_of(task_weights, sizes):
    """c_t for "mean" (1/m_t), "sum" (1) or an array."""
    if isinstance(task_weights, str):
        return 1.0 / np.asarray(sizes, dtype=float) if task_weights == "mean" else np.ones(len(sizes))
    return np.asarray(task_weights, dtype=float)


def loss_grad_ref(tasks, W, b, losses, c, xp=np.float64):
    """Value, gradients and error scales of ``sum_t c_t sum_i L_t(y_ti, x_ti . w_t + b_t)``, in dtype ``xp``.

    Returns ``(value, gW, gb, scale_value, scale_gW, scale_gb, largest, largest_linear)``: the
    scales bound the rounding error of a correct float evaluation (sums of the absolute terms);
    ``largest`` is the largest intermediate quantity (products, margins, squared residuals, the
    results) any evaluation forms, ``largest_linear`` the largest of those the gradients need
    (products x_ij w_jt, margins, residuals, the terms of X^T r).
    """
    d, T = W.shape
    W = np.asarray(W, dtype=xp)
    value = xp(0)
    gW, gb = np.zeros((d, T), dtype=xp), np.zeros(T, dtype=xp)
    s_value, s_gW, s_gb = xp(0), np.zeros((d, T), dtype=xp), np.zeros(T, dtype=xp)
    largest = linear = xp(0)
    for t, (X, y) in enumerate(tasks):
        X, y = np.asarray(X, dtype=xp), np.asarray(y, dtype=xp)
        bt = xp(0) if b is None else xp(b[t])
        products = X * W[:, t]
        z = products.sum(axis=1) + bt
        z_abs = np.abs(products).sum(axis=1) + abs(bt)
        ct = xp(c[t])
        if losses[t] == "squared":
            r = z - y
            value += ct * np.sum(r * r) / 2
            s_value += ct * np.sum(np.abs(r) * (z_abs + np.abs(y)))
            err = z_abs + np.abs(y)
            largest = max(largest, np.max(r * r, initial=0))
        else:
            value += ct * np.sum(np.logaddexp(xp(0), -y * z))
            r = -y * np.exp(-np.logaddexp(xp(0), y * z))
            s_value += ct * np.sum(z_abs + 1)
            err = z_abs + 1
        gW[:, t] = ct * (X.T @ r)
        gb[t] = ct * np.sum(r)
        s_gW[:, t] = ct * (np.abs(X).T @ err)
        s_gb[t] = ct * np.sum(err)
        linear = max(linear, np.max(np.abs(products), initial=0), np.max(z_abs + np.abs(y), initial=0),
                     np.max(np.abs(X) * np.abs(r)[:, None], initial=0))
    largest = max(largest, linear, abs(value), np.max(np.abs(gW), initial=0), np.max(np.abs(gb), initial=0))
    return value, gW, gb, s_value, s_gW, s_gb, largest, linear


def robust_norms(V, axis):
    """2-norms along ``axis`` that neither overflow nor underflow (scaled by the largest entry)."""
    top = np.max(np.abs(V), axis=axis, keepdims=True, initial=0.0)
    safe = np.where(top > 0, top, 1.0)
    return (safe * np.sqrt(np.sum((V / safe) ** 2, axis=axis, keepdims=True))).squeeze(axis)


def group_shrink(W, tau, axis):
    """Each group (row: axis=1, column: axis=0) scaled by ``max(0, 1 - tau / ||group||)``."""
    norms = robust_norms(W, axis)
    with np.errstate(divide="ignore", over="ignore"):
        factor = np.where(norms > tau, 1.0 - tau / np.where(norms > 0, norms, 1.0), 0.0)
    return W * np.expand_dims(factor, axis)


def prox_linf_ref(W, tau):
    """Row by row ``v - proj_{||.||_1 <= tau}(v) = sign(v) min(|v|, theta)``, theta by root finding."""
    out = np.zeros_like(W)
    for j, v in enumerate(W):
        a = np.abs(v)
        top = a.max(initial=0.0)
        with np.errstate(over="ignore"):
            budget = tau / top if top > 0 else np.inf
        if not np.sum(a / top if top > 0 else a) > budget:
            continue  # the whole row lies in the l1 ball: the prox is 0
        theta = scipy.optimize.brentq(lambda th, u, r: np.sum(np.maximum(u - th, 0.0)) - r, 0.0, 1.0,
                                      args=(a / top, budget), xtol=1e-300, rtol=4 * np.finfo(float).eps)
        out[j] = np.sign(v) * np.minimum(a, theta * top)
    return out


def prox_trace_ref(W, tau):
    """Singular values shrunk by tau, on W scaled to a largest entry of 1 (no overflow or underflow)."""
    top = np.max(np.abs(W), initial=0.0)
    if top == 0:
        return np.zeros_like(W)
    U, s, Vt = np.linalg.svd(W / top, full_matrices=False)
    with np.errstate(over="ignore"):
        return top * ((U * np.maximum(s - tau / top, 0.0)) @ Vt)


def prox_ref(pen, W, tau):
    """``argmin_U 0.5 ||U - W||^2 + tau g(U)`` for the penalties with a closed form."""
    kind = type(pen)
    if kind is P.Sum:  # L1 + a group norm whose groups hold whole entries: the composition, l1 first
        l1 = next(p for p in pen.parts if type(p) is P.L1)
        rest = next(p for p in pen.parts if type(p) is not P.L1)
        return prox_ref(rest, prox_ref(l1, W, tau), tau)
    t = tau * pen.w
    if kind is P.L1:
        return np.sign(W) * np.maximum(np.abs(W) - t, 0.0)
    if kind is P.L21:
        return group_shrink(W, t, axis=1)
    if kind is P.L21Columns:
        return group_shrink(W, t, axis=0)
    if kind is P.Trace:
        return prox_trace_ref(W, t)
    if kind is P.Mean:
        m = W.mean(axis=1, keepdims=True) if W.shape[1] else W
        return m + (W - m) / (1.0 + t)
    if kind is P.LInf1:
        return prox_linf_ref(W, t)
    if kind is P.Graph:
        R = np.asarray(pen.R, dtype=float)
        A = np.eye(R.shape[0]) + 2.0 * t * (R @ R.T)
        return np.linalg.solve(A, W.T).T
    if kind is P.NoPenalty:
        return W.copy()
    raise AssertionError(f"no reference prox for {pen!r}")


def clustered_ref(W, k, eta):
    """``min_M tr(W (eta I + M)^-1 W^T)`` over ``tr M = k, 0 <= M <= I``, by SLSQP on M's eigenvalues
    (M shares W^T W's eigenvectors at the optimum)."""
    T = W.shape[1]
    s2 = np.zeros(T)
    sv = np.linalg.svd(W, compute_uv=False)
    s2[: sv.size] = sv**2
    if k >= T:
        return float(np.sum(s2 / (eta + 1.0)))
    res = scipy.optimize.minimize(
        lambda m: np.sum(s2 / (eta + m)), np.full(T, k / T), jac=lambda m: -s2 / (eta + m) ** 2,
        bounds=[(0.0, 1.0)] * T, method="SLSQP", options={"ftol": 1e-15, "maxiter": 1000},
        constraints=[{"type": "eq", "fun": lambda m: m.sum() - k, "jac": lambda m: np.ones(T)}])
    return float(res.fun)


def penalty_ref(pen, W):
    """g(W) times the penalty's weight, from its definition."""
    kind = type(pen)
    if kind is P.Sum:
        return sum(penalty_ref(p, W) for p in pen.parts)
    w = pen.w
    if kind is P.L1:
        return w * np.abs(W).sum()
    if kind is P.L21:
        return w * robust_norms(W, 1).sum()
    if kind is P.L21Columns:
        return w * robust_norms(W, 0).sum()
    if kind is P.Trace:
        return w * np.linalg.svd(W, compute_uv=False).sum() if W.size else 0.0
    if kind is P.Mean:
        return w * 0.5 * np.sum((W - W.mean(axis=1, keepdims=True)) ** 2) if W.size else 0.0
    if kind is P.LInf1:
        return w * np.abs(W).max(axis=1).sum() if W.size else 0.0
    if kind is P.Graph:
        return w * np.sum((W @ np.asarray(pen.R, dtype=float)) ** 2)
    if kind is P.Clustered:
        return w * pen.eta * (1 + pen.eta) * clustered_ref(W, pen.k, pen.eta) if W.size else 0.0
    if kind is P.Shared:
        np.testing.assert_allclose(W, W[:, :1] * np.ones(W.shape[1]), rtol=1e-6, atol=0)  # W = w0 1^T
        return w * 0.5 * np.sum(W[:, 0] ** 2) if W.size else 0.0
    if kind is P.NoPenalty:
        return 0.0
    raise AssertionError(f"no reference value for {pen!r}")


def objective_ref(problem, W, b, components, pen, alpha, l2):
    """F(W, b) = sum_t c_t sum_i L_t + alpha sum_parts g_part(component) + (l2/2) ||W||_F^2, in float64."""
    value = float(loss_grad_ref(problem["tasks"], np.asarray(W, dtype=float), b, problem["losses"],
                                problem["c"])[0])
    parts = pen.parts if type(pen) is P.Superpose else (pen,)
    g = sum(penalty_ref(p, np.asarray(U, dtype=float)) for p, U in zip(parts, components))
    return value + alpha * g + 0.5 * l2 * float(np.sum(np.asarray(W, dtype=float) ** 2))


# ---------------------------------------------------------------------------------- problems


@st.composite
def problems(draw, max_tasks=3, max_rows=5, min_features=0, max_features=3, dtypes=(np.float64, np.float32),
             logistic=True):
    """A small multi-task problem in one of the three layouts, with random losses and task weights.

    Returns a dict: ``spec`` (the layout and its arrays, for :func:`build`), ``memory`` (the memory
    layouts of its arrays), ``dtype``, ``losses`` (one per task), ``task_weights`` (as given to
    mtlx), ``c`` (their values c_t) and ``tasks`` ((X_t, y_t) in the data's task order, in float64
    after rounding to the data's dtype: what the references read).
    """
    layout = draw(st.sampled_from(("shared", "stacked", "tasks")))
    T = draw(st.integers(1, max_tasks))
    d = draw(st.integers(min_features, max_features))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    losses = [draw(st.sampled_from(("squared", "logistic") if logistic else ("squared",))) for _ in range(T)]
    mem = (draw(st.sampled_from(LAYOUTS)), draw(st.sampled_from(LAYOUTS)))
    note(f"layout={layout} T={T} d={d} dtype={dtype} seed={seed} losses={losses} memory={mem}")

    def targets(m, loss):
        if loss == "logistic":
            return np.where(rng.random(m) < 0.5, -1.0, 1.0)
        return rng.standard_normal(m)

    if layout == "shared":
        m = draw(st.integers(1, max_rows))
        X = rng.standard_normal((m, d))
        Y = np.column_stack([targets(m, loss) for loss in losses])
        spec = ("shared", X.astype(dtype), Y.astype(dtype))
        raw = [(X, Y[:, t]) for t in range(T)]
    else:
        sizes = [draw(st.integers(1, max_rows)) for _ in range(T)]
        raw = [(rng.standard_normal((m, d)), targets(m, loss)) for m, loss in zip(sizes, losses)]
        spec = (layout, raw)
    task_weights = draw(st.sampled_from(("mean", "sum", "array")))
    sizes = [len(y) for _, y in raw]
    c = rng.uniform(0.0, 2.0, T) if task_weights == "array" else weights_of(task_weights, sizes)
    problem = {"losses": losses, "task_weights": c if task_weights == "array" else task_weights, "c": c,
               "dtype": dtype, "spec": spec, "memory": mem}
    problem["tasks"] = [(X.astype(dtype).astype(float), y.astype(dtype).astype(float)) for X, y in raw]
    return problem


def build(problem, folder):
    """The TaskData of a problem (stacked rows shuffled, with ids sorting in the task order)."""
    layout, mem = problem["spec"][0], problem["memory"]
    dtype = problem["dtype"]
    if layout == "shared":
        _, X, Y = problem["spec"]
        return mtlx.TaskData.from_shared(arrange(X, mem[0], folder), arrange(Y, mem[1], folder))
    raw = problem["spec"][1]
    if layout == "tasks":
        return mtlx.TaskData.from_tasks([(arrange(X.astype(dtype), mem[0], folder),
                                          arrange(y.astype(dtype), mem[1], folder)) for X, y in raw])
    X = np.concatenate([X for X, _ in raw]).astype(dtype)
    y = np.concatenate([y for _, y in raw]).astype(dtype)
    task = np.repeat(np.arange(len(raw)) * 7 - 3, [len(y_t) for _, y_t in raw])
    order = np.random.default_rng(len(y)).permutation(len(y))
    return mtlx.TaskData.from_stacked(arrange(X[order], mem[0], folder), arrange(y[order], mem[1], folder),
                                      task[order])


# ========================================================================= 1. TaskData.from_*


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 6), d=st.integers(0, 4), T=st.integers(1, 4), data=st.data())
def test_from_shared_stores_the_inputs(scratch, n, d, T, data):
    """from_shared of finite numeric X (n, d) and Y (n, T) (1-D for one task), in any dtype and
    memory layout and at any scale, stores X and every column of Y exactly (after the documented
    float32/float64 conversion), C-contiguous, with the given task ids (default 0..T-1), and
    leaves the inputs untouched."""
    X = data.draw(real_arrays((n, d)), label="X")
    Y = data.draw(real_arrays((n,) if T == 1 and data.draw(st.booleans(), label="1-D Y") else (n, T)), label="Y")
    ids = data.draw(st.none() | task_id_values(T), label="task_ids")
    X_in = arrange(X, data.draw(st.sampled_from(LAYOUTS), label="X layout"), scratch)
    Y_in = arrange(Y, data.draw(st.sampled_from(LAYOUTS), label="Y layout"), scratch)
    td = mtlx.TaskData.from_shared(X_in, Y_in, ids)
    assert td.layout == "shared" and td.dtype in float_store([X], [Y])
    assert td.X.flags.c_contiguous and td.Y.flags.c_contiguous
    assert (td.n_tasks, td.n_features) == (T, d) and np.array_equal(td.n_samples, np.full(T, n))
    assert np.array_equal(td.X, X.astype(td.dtype))
    for t in range(T):
        X_t, y_t = td.task(t)
        assert np.array_equal(X_t, X.astype(td.dtype))
        assert np.array_equal(y_t, Y.reshape(n, T)[:, t].astype(td.dtype))
    assert np.array_equal(td.task_ids, np.arange(T) if ids is None else np.asarray(ids))
    assert np.array_equal(X_in, X) and np.array_equal(Y_in, Y)


@settings(max_examples=60, deadline=None)
@given(T=st.integers(1, 4), d=st.integers(0, 3), data=st.data())
def test_from_tasks_stores_each_task_in_order(scratch, T, d, data):
    """from_tasks of T finite (X_t, y_t) pairs (ragged m_t >= 1, y_t 1-D or a column, any numeric
    dtype and layout) stores task t's rows as the t-th block, in the given order, exactly."""
    pairs, originals = [], []
    for t in range(T):
        m = data.draw(st.integers(1, 4), label=f"m_{t}")
        X_t = data.draw(real_arrays((m, d)), label=f"X_{t}")
        y_t = data.draw(real_arrays((m, 1) if data.draw(st.booleans(), label=f"column y_{t}") else (m,)),
                        label=f"y_{t}")
        originals.append((X_t, y_t))
        pairs.append((arrange(X_t, data.draw(st.sampled_from(LAYOUTS)), scratch),
                      arrange(y_t, data.draw(st.sampled_from(LAYOUTS)), scratch)))
    ids = data.draw(st.none() | task_id_values(T), label="task_ids")
    td = mtlx.TaskData.from_tasks(pairs, ids)
    assert td.layout == "stacked"
    assert td.dtype in float_store([X_t for X_t, _ in originals], [y_t for _, y_t in originals])
    assert td.X.flags.c_contiguous and td.y.flags.c_contiguous
    assert np.array_equal(td.offsets, np.concatenate([[0], np.cumsum([len(y) for _, y in originals])]))
    for t, (X_t, y_t) in enumerate(originals):
        got_X, got_y = td.task(t)
        assert np.array_equal(got_X, X_t.astype(td.dtype)) and np.array_equal(got_y, y_t.ravel().astype(td.dtype))
    assert np.array_equal(td.task_ids, np.arange(T) if ids is None else np.asarray(ids))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 8), d=st.integers(0, 3), data=st.data())
def test_from_stacked_groups_rows_by_sorted_id(scratch, n, d, data):
    """from_stacked with one id per row (integers or strings, rows in any order) orders the tasks
    by sorted id and keeps each task's rows in their original order, values exact."""
    X = data.draw(real_arrays((n, d)), label="X")
    y = data.draw(real_arrays((n,)), label="y")
    pool = data.draw(st.one_of(int_ids(3), str_ids(3)), label="id pool")
    task = pool[np.asarray(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n), label="task of row"))]
    td = mtlx.TaskData.from_stacked(arrange(X, data.draw(st.sampled_from(LAYOUTS)), scratch),
                                    arrange(y, data.draw(st.sampled_from(LAYOUTS)), scratch), task)
    ids = sorted(set(task.tolist()))
    assert td.dtype in float_store([X], [y]) and td.task_ids.tolist() == ids
    for t, tid in enumerate(ids):
        rows = np.flatnonzero(task == tid)
        got_X, got_y = td.task(t)
        assert np.array_equal(got_X, X[rows].astype(td.dtype)) and np.array_equal(got_y, y[rows].astype(td.dtype))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), seed=st.integers(0, 2**16), int_dtype=st.sampled_from((np.int32, np.int64)))
@example(n=1, seed=0, int_dtype=np.int64).via("y = 16777217 beside float32 X")
def test_integer_targets_beside_float32_inputs_are_exact(n, seed, int_dtype):
    """Integer targets up to 2**31 next to a float32 X are stored exactly: float32 cannot hold
    integers above 2**24, so the store must be float64 ("float32 only when every input is")."""
    X = fill(seed, (n, 2), np.float32)
    y = fill(seed, (n,), int_dtype, small_ints=False)
    if seed == 0:
        y[0] = 2**24 + 1
    td = mtlx.TaskData.from_shared(X, y)
    assert np.array_equal(td.Y[:, 0].astype(np.int64), y.astype(np.int64))


SHARED_FAULTS = ("X dtype", "Y dtype", "X nonfinite", "Y nonfinite", "X ndim", "Y ndim", "no rows", "no tasks",
                 "rows differ", "X sparse", "X ragged", "task_ids length", "task_ids repeated")


@settings(max_examples=80, deadline=None)
@given(fault=st.sampled_from(SHARED_FAULTS), bad=st.sampled_from(NOT_NUMERIC),
       nonfinite=st.sampled_from((np.nan, np.inf, -np.inf)), layout=st.sampled_from(LAYOUTS),
       n=st.integers(1, 4), T=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_from_shared_names_the_bad_argument(scratch, fault, bad, nonfinite, layout, n, T, seed):
    """from_shared with exactly one bad input raises ValueError/TypeError naming it (X, Y or
    task_ids): wrong dtype, NaN/inf, wrong ndim, no rows, no tasks, mismatched rows, sparse
    or ragged X, wrong or repeated task ids."""
    X, Y, ids = fill(seed, (n, 2), np.float64), fill(seed + 1, (n, T), np.float64), None
    names = {"X dtype": ("X",), "Y dtype": ("Y",), "X nonfinite": ("X",), "Y nonfinite": ("Y",),
             "X ndim": ("X",), "Y ndim": ("Y",), "no rows": ("X", "Y"), "no tasks": ("Y",),
             "rows differ": ("X", "Y"), "X sparse": ("X",), "X ragged": ("X",),
             "task_ids length": ("task_ids",), "task_ids repeated": ("task_ids",)}[fault]
    if fault == "X dtype":
        X = bad_dtype_array(bad, X.shape)
    elif fault == "Y dtype":
        Y = bad_dtype_array(bad, Y.shape)
    elif fault == "X nonfinite":
        X = inject_nonfinite(X, seed, nonfinite)
    elif fault == "Y nonfinite":  # NaN in Y is a missing label (tests/test_weights.py): infinities only
        Y = inject_nonfinite(Y, seed, np.inf if np.isnan(nonfinite) else nonfinite)
    elif fault == "X ndim":
        X = X[:, 0] if seed % 2 else X[:, :, None]
    elif fault == "Y ndim":
        Y = Y[:, :, None]
    elif fault == "no rows":
        X, Y = X[:0], Y[:0]
    elif fault == "no tasks":
        Y = Y[:, :0]
    elif fault == "rows differ":
        Y = np.vstack([Y, Y[:1]])
    elif fault == "X sparse":  # a sparse X is taken (kept sparse); a complex one is not
        X = scipy.sparse.csr_matrix(X.astype(np.complex128))
    elif fault == "X ragged":
        X = [list(row) for row in X] + [[1.0]]
    elif fault == "task_ids length":
        ids = list(range(T + 1))
    else:
        ids = [0] * T if T > 1 else [[0]]
    if isinstance(X, np.ndarray):
        X = arrange(X, layout, scratch)
    expect_error(lambda: mtlx.TaskData.from_shared(X, arrange(Y, layout, scratch), ids), names)


TASKS_FAULTS = ("tasks not a list", "tasks empty", "not a pair", "X dtype", "y dtype", "X nonfinite",
                "y nonfinite", "X ndim", "y 2 columns", "rows differ", "no rows", "features differ",
                "task_ids length", "task_ids repeated")


@settings(max_examples=80, deadline=None)
@given(fault=st.sampled_from(TASKS_FAULTS), bad=st.sampled_from(NOT_NUMERIC),
       nonfinite=st.sampled_from((np.nan, np.inf, -np.inf)), T=st.integers(2, 4), seed=st.integers(0, 2**16),
       ids=st.none() | str_ids(4))
def test_from_tasks_names_the_bad_task(fault, bad, nonfinite, T, seed, ids):
    """from_tasks with one bad task raises ValueError/TypeError naming that task (by position or
    id) and the array (X or y); a bad container is named "tasks", bad ids "task_ids"."""
    ids = None if ids is None else ids[:T]
    pairs = [[fill(seed + t, (2 + t, 3), np.float64), fill(seed + 100 + t, (2 + t,), np.float64)] for t in range(T)]
    bad_t = seed % T
    where = (f"task {bad_t}",) + (() if ids is None else (f"task {ids[bad_t]}",))
    X, y = pairs[bad_t]
    tasks, task_ids = pairs, ids
    if fault == "tasks not a list":
        tasks = (p for p in pairs) if seed % 2 else np.zeros((T, 2))
        names = [("tasks",)]
    elif fault == "tasks empty":
        tasks, task_ids, names = [], None, [("tasks",)]
    elif fault == "not a pair":
        pairs[bad_t] = X if seed % 2 else (X, y, y)
        names = [where]
    elif fault in ("X dtype", "X nonfinite", "X ndim"):
        pairs[bad_t][0] = (bad_dtype_array(bad, X.shape) if fault == "X dtype" else
                           inject_nonfinite(X, seed, nonfinite) if fault == "X nonfinite" else X[:, 0])
        names = [where, ("X",)]
    elif fault in ("y dtype", "y nonfinite", "y 2 columns"):
        pairs[bad_t][1] = (bad_dtype_array(bad, y.shape) if fault == "y dtype" else
                           inject_nonfinite(y, seed, nonfinite) if fault == "y nonfinite" else
                           np.column_stack([y, y]))
        names = [where, ("y",)]
    elif fault == "rows differ":
        pairs[bad_t][1], names = y[:-1], [where]
    elif fault == "no rows":
        pairs[bad_t], names = [X[:0], y[:0]], [where]
    elif fault == "features differ":
        bad_t = max(bad_t, 1)
        where = (f"task {bad_t}",) + (() if ids is None else (f"task {ids[bad_t]}",))
        pairs[bad_t][0], names = pairs[bad_t][0][:, :2], [where]
    elif fault == "task_ids length":
        task_ids, names = list(range(T + 1)), [("task_ids",)]
    else:
        task_ids, names = [7] * T, [("task_ids",)]
    expect_error(lambda: mtlx.TaskData.from_tasks(tasks, task_ids), *names)


STACKED_FAULTS = ("X dtype", "y dtype", "X nonfinite", "y nonfinite", "X ndim", "y 2 columns", "task 2-D",
                  "lengths differ", "no rows")


@settings(max_examples=60, deadline=None)
@given(fault=st.sampled_from(STACKED_FAULTS), bad=st.sampled_from(NOT_NUMERIC),
       nonfinite=st.sampled_from((np.nan, np.inf, -np.inf)), n=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_from_stacked_names_the_bad_argument(fault, bad, nonfinite, n, seed):
    """from_stacked with one bad input raises ValueError/TypeError naming it (X, y or task)."""
    X, y = fill(seed, (n, 2), np.float64), fill(seed + 1, (n,), np.float64)
    task = np.arange(n) % 2
    names = {"X dtype": ("X",), "y dtype": ("y",), "X nonfinite": ("X",), "y nonfinite": ("y",),
             "X ndim": ("X",), "y 2 columns": ("y",), "task 2-D": ("task",), "lengths differ": ("X", "y", "task"),
             "no rows": ("X", "y", "task")}[fault]
    if fault == "X dtype":
        X = bad_dtype_array(bad, X.shape)
    elif fault == "y dtype":
        y = bad_dtype_array(bad, y.shape)
    elif fault == "X nonfinite":
        X = inject_nonfinite(X, seed, nonfinite)
    elif fault == "y nonfinite":
        y = inject_nonfinite(y, seed, nonfinite)
    elif fault == "X ndim":
        X = X[:, 0]
    elif fault == "y 2 columns":
        y = np.column_stack([y, y])
    elif fault == "task 2-D":
        task = task[:, None]
    elif fault == "lengths differ":
        task = task[1:]
    else:
        X, y, task = X[:0], y[:0], task[:0]
    expect_error(lambda: mtlx.TaskData.from_stacked(X, y, task), names)


@settings(max_examples=30, deadline=None)
@given(T=st.integers(1, 4), kind=st.sampled_from(("length", "repeated")), data=st.data())
def test_task_ids_of_the_wrong_length_or_repeated_are_refused(T, kind, data):
    """task_ids of another length than T, or with a repeated id, raise a ValueError naming task_ids
    (from_shared and from_tasks)."""
    ids = list(data.draw(task_id_values(T + 1), label="ids"))
    if kind == "repeated":
        T, ids = T + 1, [ids[0]] * (T + 1)
    X, Y = np.ones((2, 2)), np.ones((2, T))
    expect_error(lambda: mtlx.TaskData.from_shared(X, Y, ids), ("task_ids",))
    expect_error(lambda: mtlx.TaskData.from_tasks([(X, Y[:, 0])] * T, ids), ("task_ids",))


@settings(max_examples=30, deadline=None)
@given(T=st.integers(2, 4), data=st.data())
@example(T=2, data=None).via("task_ids=[nan, 1.0] was accepted as an id")
def test_task_ids_must_be_integers_or_strings(T, data):
    """Ids that are not all integers or all strings (NaN, None, bools, an int beside a str) raise a
    ValueError/TypeError naming ``task_ids`` (from_shared, from_tasks) or ``task`` (from_stacked),
    as ``mtlx._validate.check_task_ids`` documents: an int 1 and a str "1" must not become one task."""
    ids = [np.nan, 1.0] if data is None else data.draw(mistyped_ids(T), label="ids")
    T = len(ids)
    X, Y = np.ones((T, 2)), np.ones((T, T))
    expect_error(lambda: mtlx.TaskData.from_shared(X, Y, ids), ("task_ids",))
    expect_error(lambda: mtlx.TaskData.from_tasks([(X, Y[:, 0])] * T, ids), ("task_ids",))
    expect_error(lambda: mtlx.TaskData.from_stacked(X, Y[:, 0], ids), ("task",))


# ========================================================================= 2. loss_grad


def check_loss_grad(problem, td, W, b, value, gW, gb, xp=np.float64):
    """mtlx's (value, gW, gb) against the reference, within the rounding a correct evaluation makes."""
    dtype = problem["dtype"]
    W_r = np.asarray(W).astype(dtype).astype(xp)
    b_r = None if b is None else np.asarray(b).astype(dtype).astype(xp)
    ref_v, ref_gW, ref_gb, s_v, s_gW, s_gb, _, _ = loss_grad_ref(problem["tasks"], W_r, b_r, problem["losses"],
                                                               problem["c"], xp)
    eps = np.finfo(dtype).eps * 64 * (td.n_features + 4)
    tiny = np.finfo(dtype).smallest_normal * 1e4
    assert gW.shape == W.shape and gW.dtype == dtype and gb.shape == (td.n_tasks,) and gb.dtype == dtype
    assert np.isfinite(value) and np.isfinite(gW).all() and np.isfinite(gb).all()
    assert abs(xp(value) - ref_v) <= eps * s_v + tiny, (value, ref_v)
    assert np.all(np.abs(gW.astype(xp) - ref_gW) <= eps * s_gW + tiny), (gW, ref_gW)
    assert np.all(np.abs(gb.astype(xp) - ref_gb) <= eps * s_gb + tiny), (gb, ref_gb)


@settings(max_examples=80, deadline=None)
@given(problem=problems(), data=st.data())
def test_loss_grad_matches_numpy(scratch, problem, data):
    """loss_grad at a random (W, b) of any dtype and memory layout equals a per-task numpy
    evaluation of the value and both gradients (mixed losses, "mean"/"sum"/array weights),
    within the rounding of the data's dtype."""
    td = build(problem, scratch)
    d, T = td.n_features, td.n_tasks
    W = data.draw(real_arrays((d, T), dtypes=NUMERIC[:4], extreme=False), label="W")
    b = data.draw(st.none() | real_arrays((T,), dtypes=NUMERIC[:2], extreme=False), label="b")
    W_in = arrange(W, data.draw(st.sampled_from(LAYOUTS), label="W layout"), scratch)
    value, gW, gb = mtlx.loss_grad(td, W_in, b, problem["losses"], problem["task_weights"])
    check_loss_grad(problem, td, W, b, value, gW, gb)


LONG = np.longdouble if np.finfo(np.longdouble).max > np.longdouble(1e300) ** 2 else None


def rescale(problem, x_scale: float, y_scale: float) -> dict:
    """The problem with X times ``x_scale`` and the squared-loss targets times ``y_scale`` (logistic
    labels stay -1/+1), its reference tasks rounded as the store rounds them."""
    dtype = problem["dtype"]
    logistic = [loss == "logistic" for loss in problem["losses"]]
    spec = problem["spec"]
    if spec[0] == "shared":
        X, Y = spec[1] * dtype.type(x_scale), spec[2] * np.where(logistic, 1.0, y_scale).astype(dtype)
        tasks = [(X.astype(float), Y[:, t].astype(float)) for t in range(Y.shape[1])]
        return {**problem, "spec": ("shared", X, Y), "tasks": tasks}
    raw = [(X * x_scale, y if logistic[t] else y * y_scale) for t, (X, y) in enumerate(spec[1])]
    tasks = [(X.astype(dtype).astype(float), y.astype(dtype).astype(float)) for X, y in raw]
    return {**problem, "spec": (spec[0], raw), "tasks": tasks}


def check_exact_or_refused(scratch, problem, W, b):
    """loss_grad at (W, b) equals the long-double reference when the result fits the dtype, or
    raises an overflow error when some intermediate quantity comes near the dtype's limit."""
    dtype = problem["dtype"]
    td = build(problem, scratch)
    ref = loss_grad_ref(problem["tasks"], W.astype(dtype).astype(LONG),
                        None if b is None else b.astype(dtype).astype(LONG), problem["losses"], problem["c"], LONG)
    largest_gradient = max(np.max(np.abs(ref[1]), initial=0), np.max(np.abs(ref[2]), initial=0))
    limit = np.finfo(dtype).max  # of the gradients; the value is a Python float
    note(f"largest intermediate {float(ref[6]):.3g}, value {float(ref[0]):.3g}, gradient {float(largest_gradient):.3g}")
    try:
        value, gW, gb = mtlx.loss_grad(td, W, b, problem["losses"], problem["task_weights"])
    except (ValueError, FloatingPointError) as exc:
        assert ref[6] > limit * 1e-3, f"refused although everything fits {dtype}: {exc}"
        assert re.search(r"overflow", str(exc)), exc
        event("refused as an overflow")
        return
    event("evaluated")
    assert largest_gradient <= limit and abs(ref[0]) <= np.finfo(float).max, "returned a result that cannot exist"
    if ref[7] <= limit:
        check_loss_grad(problem, td, W, b, value, gW, gb, LONG)
        return
    # A product, margin or residual cannot be formed in the dtype: a result, if any, must still be the true one.
    for got, want in ((np.asarray(value), ref[0]), (gW, ref[1]), (gb, ref[2])):
        top = np.max(np.abs(want), initial=0)
        assert np.all(np.abs(got.astype(LONG) - want) <= 1e-6 * top + np.finfo(dtype).smallest_normal), (got, want)


@pytest.mark.skipif(LONG is None, reason="needs an extended-range long double for the reference")
@settings(max_examples=100, deadline=None)
@given(problem=problems(dtypes=(np.float64, np.float32)), data=st.data())
def test_loss_grad_at_extreme_scales_is_exact_or_refused(scratch, problem, data):
    """loss_grad with X, y, W and b scaled by up to 1e+-300 (each product x_ij w_jt within the
    dtype; margins, squared residuals, sums and gradients may overflow): when every intermediate
    quantity fits the data's dtype the result equals a long-double reference; when the true value
    or gradient does not, it raises ValueError/FloatingPointError saying so (never a silent inf)."""
    dtype = problem["dtype"]
    limit = float(np.finfo(dtype).max)
    x_scale = data.draw(st.sampled_from(scales_for(dtype, True)), label="X scale")
    y_scale = data.draw(st.sampled_from(scales_for(dtype, True)), label="y scale")
    w_scale = data.draw(st.sampled_from([s for s in scales_for(dtype, True) if s * x_scale < limit / 1e3]),
                        label="W scale")
    problem = rescale(problem, x_scale, y_scale)
    d, T = problem["tasks"][0][0].shape[1], len(problem["tasks"])
    W = fill(data.draw(st.integers(0, 2**16), label="W seed"), (d, T), np.float64, w_scale, 0.3)
    b = data.draw(st.none() | st.just(fill(1, (T,), np.float64, w_scale)), label="b")
    check_exact_or_refused(scratch, problem, W, b)


OVERFLOWING = {"losses": ["logistic"], "task_weights": "mean", "c": np.ones(1), "dtype": np.dtype(np.float64),
               "spec": ("shared", np.ones((1, 2)), np.ones((1, 1))), "memory": ("C", "C"),
               "tasks": [(np.ones((1, 2)), np.ones(1))]}


@pytest.mark.skipif(LONG is None, reason="needs an extended-range long double for the reference")
@settings(max_examples=40, deadline=None)
@given(problem=problems(min_features=2, dtypes=(np.float64, np.float32)), data=st.data())
@example(problem=OVERFLOWING, data=None).via("x . w = 1e400 - 1e400 in float64")
def test_loss_grad_with_overflowing_products(scratch, problem, data):
    """X and W at scales whose entrywise products exceed the dtype (1e160-1e200 squared in float64,
    1e20-1e30 in float32), W's signs alternating along the features so that the products cancel in
    part: loss_grad raises an overflow error or returns the exact (long-double) result; a margin
    it could not compute is never read as a loss of 0 with a zero gradient."""
    scales = (1e160, 1e200) if problem["dtype"] == np.float64 else (1e20, 1e30)
    x_scale, w_scale = (1e200, 1e200) if data is None else (data.draw(st.sampled_from(scales), label="X scale"),
                                                            data.draw(st.sampled_from(scales), label="W scale"))
    problem = rescale(problem, x_scale, 1.0)
    d, T = problem["tasks"][0][0].shape[1], len(problem["tasks"])
    magnitudes = np.ones((d, T)) if data is None else np.abs(fill(data.draw(st.integers(0, 2**16)), (d, T), float))
    W = w_scale * magnitudes * np.where(np.arange(d) % 2, -1.0, 1.0)[:, None]
    check_exact_or_refused(scratch, problem, W, None)


LOSS_GRAD_FAULTS = ("W nonfinite", "W complex", "W object", "W shape", "W 1-D", "b nonfinite", "b shape",
                    "loss name", "loss count", "loss type", "weights negative", "weights nan", "weights length",
                    "weights name", "data", "labels")


@settings(max_examples=60, deadline=None)
@given(problem=problems(), fault=st.sampled_from(LOSS_GRAD_FAULTS), nonfinite=st.sampled_from((np.nan, np.inf)))
def test_loss_grad_names_the_bad_argument(scratch, problem, fault, nonfinite):
    """loss_grad with one bad argument raises ValueError/TypeError naming it: W, b, loss,
    task_weights, data, or the task whose labels are not -1/+1 for the logistic loss."""
    td = build(problem, scratch)
    d, T = td.n_features, td.n_tasks
    args = {"data": td, "W": np.zeros((d, T)), "b": np.zeros(T), "loss": problem["losses"],
            "task_weights": problem["task_weights"]}
    names = (fault.split()[0].replace("weights", "task_weights"),)
    if fault == "W nonfinite":
        if d == 0:
            return
        args["W"] = inject_nonfinite(args["W"], T, nonfinite)
    elif fault in ("W complex", "W object"):
        args["W"] = bad_dtype_array(np.complex128 if fault == "W complex" else object, (d, T))
    elif fault == "W shape":
        args["W"] = np.zeros((d + 1, T))
    elif fault == "W 1-D":
        args["W"] = np.zeros(d * T)
    elif fault == "b nonfinite":
        args["b"] = inject_nonfinite(args["b"], T, nonfinite)
    elif fault == "b shape":
        args["b"] = np.zeros(T + 1)
    elif fault == "loss name":
        args["loss"] = "hinge"
    elif fault == "loss count":
        args["loss"] = ["squared"] * (T + 1)
    elif fault == "loss type":
        args["loss"] = 3
    elif fault == "weights negative":
        args["task_weights"] = -np.ones(T)
    elif fault == "weights nan":
        args["task_weights"] = np.full(T, np.nan)
    elif fault == "weights length":
        args["task_weights"] = np.ones(T + 1)
    elif fault == "weights name":
        args["task_weights"] = "median"
    elif fault == "data":
        args["data"] = problem["tasks"]
    else:
        args["loss"] = "logistic"
        if all(np.isin(y, (-1.0, 1.0)).all() for _, y in problem["tasks"]):
            return
        names = tuple(f"task {i}" for i in td.task_ids)
    expect_error(lambda: mtlx.loss_grad(**args), names)


# ========================================================================= 3. prox

#: Relative weights: 0 or from 1e-3 up (tau far above the rounding of W's entries; tau below it is
#: test_linf1_prox_below_the_rounding_of_the_entries).
WEIGHTS = st.just(0.0) | st.floats(1e-3, 3.0)
#: Penalties with a closed-form prox, built from random weights.
PROX_PENALTIES = st.one_of(
    st.sampled_from(("l1", "l21", "trace", "mean", "l21_columns", "linf1", "none")),
    *(st.builds(cls, WEIGHTS) for cls in (P.L1, P.L21, P.Trace, P.Mean, P.L21Columns, P.LInf1)),
    st.tuples(WEIGHTS, st.sampled_from((P.L21, P.L21Columns, P.LInf1)), st.floats(1e-3, 2.0)).map(
        lambda a: P.L1(a[0]) + a[1](a[2])),
)


def as_penalty(spec):
    """The penalty object a name stands for (the reference reads its class and weight)."""
    names = {"l1": P.L1, "l21": P.L21, "trace": P.Trace, "mean": P.Mean, "l21_columns": P.L21Columns,
             "linf1": P.LInf1, "none": P.NoPenalty, "shared": P.Shared}
    return names[spec]() if isinstance(spec, str) else spec


@settings(max_examples=120, deadline=None)
@given(penalty=PROX_PENALTIES, d=st.integers(0, 5), T=st.integers(1, 5), data=st.data())
def test_prox_matches_closed_forms(scratch, penalty, d, T, data):
    """prox(W, penalty, step, alpha) equals the closed form at tau = step * alpha * w (soft
    thresholding, row/column shrinking, SVD shrinking, the mean pull, the l1-ball projection by
    root finding, compositions for L1 + group norms) for W of any numeric dtype and layout, is
    finite, keeps float32 as float32 (other dtypes give float64) and leaves W untouched."""
    W = data.draw(real_arrays((d, T), extreme=False), label="W")
    step = data.draw(st.sampled_from((0.0, 0.1, 1.0, 3.0, np.float32(0.5), np.int64(2))), label="step")
    alpha = data.draw(st.sampled_from((0.0, 0.05, 1.0, np.float64(0.7), 2)), label="alpha")
    W_in = arrange(W, data.draw(st.sampled_from(LAYOUTS), label="layout"), scratch)
    out = mtlx.prox(W_in, penalty, step, alpha)
    expected = prox_ref(as_penalty(penalty), W.astype(np.float64), float(step) * float(alpha))
    assert out.shape == (d, T) and out.dtype == (np.float32 if W.dtype == np.float32 else np.float64)
    assert np.isfinite(out).all()
    rtol = 1e-6 if W.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol * np.max(np.abs(W.astype(float)), initial=0.0))
    assert np.array_equal(W_in, W)


@settings(max_examples=40, deadline=None)
@given(R=st.integers(0, 2**16).map(lambda s: fill(s, (3, 2), np.float64)), w=st.floats(0, 3),
       tau=st.floats(0, 10), seed=st.integers(0, 2**16), d=st.integers(0, 4))
def test_prox_of_the_graph_penalty_is_a_linear_solve(R, w, tau, seed, d):
    """The prox of Graph(R, w) is ``W (I + 2 tau w R R^T)^-1`` (a linear solve)."""
    W = fill(seed, (d, 3), np.float64)
    np.testing.assert_allclose(mtlx.prox(W, P.Graph(R, w), tau, 1.0), prox_ref(P.Graph(R, w), W, tau),
                               rtol=1e-10, atol=1e-12 * max(1.0, np.abs(W).max(initial=0)))


def extreme_matrix(seed, d, T, scale, axis):
    """Random directions with group (row: axis=1, column: axis=0, entry: None) magnitudes ``scale``
    built without forming anything larger or smaller than the entries."""
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((d, T))
    if axis is None:
        return V / np.max(np.abs(V)) * scale
    return V / np.max(np.abs(V), axis=axis, keepdims=True) * scale


EXTREME_SCALES = st.sampled_from((1e200, 1e300, 1e-170, 1e-300, 1e150))
EXTREME_RATIOS = st.sampled_from((1e-10, 0.3, 0.999, 2.0))


def check_extreme_prox(name, scale, ratio, d, T, seed):
    """prox of W whose groups have magnitude ``scale``, at tau = ``ratio`` times the largest group's
    norm, against the scaled closed form: relative error 1e-9 per group, finite."""
    axis = {"l1": None, "l21": 1, "l21_columns": 0, "linf1": 1}.get(name)
    W = extreme_matrix(seed, d, T, scale, axis)
    group = robust_norms(W, axis) if axis is not None else np.abs(W)
    tau = ratio * float(np.max(group)) if name != "linf1" else ratio * float(np.max(np.abs(W).sum(axis=1)))
    out = mtlx.prox(W, name, tau, 1.0)
    expected = prox_ref(as_penalty(name), W, tau)
    assert np.isfinite(out).all()
    if axis is None:  # l1 entry by entry; trace and mean mix every entry: relative to the matrix
        bound = np.abs(W) if name == "l1" else np.max(np.abs(W))
    else:
        bound = np.expand_dims(np.max(np.abs(W), axis=axis), axis)
    assert np.all(np.abs(out - expected) <= 1e-9 * bound), (out / scale, expected / scale)


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(("l1", "l21", "l21_columns", "mean", "linf1")), scale=EXTREME_SCALES,
       ratio=EXTREME_RATIOS, d=st.integers(1, 4), T=st.integers(1, 4), seed=st.integers(0, 2**16))
@example(name="l21", scale=1e-170, ratio=1e-10, d=1, T=2, seed=0).via("l21 row of norm 1e-170, tau 1e-180")
def test_prox_at_extreme_scales(name, scale, ratio, d, T, seed):
    """prox of W whose groups (entries, rows, columns, the matrix) have magnitudes 1e+-150 to
    1e+-300 with tau a fixed fraction of that magnitude equals the scaled closed form to a
    relative error of 1e-9 per group, and is finite: a row of norm 1e-170 with tau = 1e-180 is
    scaled by 1 - 1e-10, not zeroed; a row of norm 1e300 is shrunk, not overflowed."""
    check_extreme_prox(name, scale, ratio, d, T, seed)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@settings(max_examples=40, deadline=None)
@given(scale=EXTREME_SCALES, ratio=EXTREME_RATIOS, d=st.integers(1, 4), T=st.integers(1, 4),
       seed=st.integers(0, 2**16))
@example(scale=1e200, ratio=1e-10, d=2, T=2, seed=0).via("trace of entries 1e200")
@example(scale=1e-170, ratio=1e-10, d=1, T=1, seed=0).via("trace of entries 1e-170")
def test_trace_prox_at_extreme_scales(scale, ratio, d, T, seed):
    """The trace prox of W of entries of magnitude 1e+-150 to 1e+-300 at tau a fixed fraction of
    that magnitude equals singular value thresholding of the scaled W, relative error 1e-9."""
    check_extreme_prox("trace", scale, ratio, d, T, seed)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), d=st.integers(1, 3), T=st.integers(2, 4),
       ratio=st.sampled_from((1e-17, 1e-20, 1e-100, 1e-300)), penalty=st.sampled_from(("linf1", "L1(1) + LInf1(1)")))
@example(seed=0, d=1, T=2, ratio=1e-20, penalty="linf1").via("[[0.126, -0.132]] at tau 1.3e-21")
def test_linf1_prox_below_the_rounding_of_the_entries(seed, d, T, ratio, penalty):
    """The l1/l-inf prox (alone and after l1) at a tau far below the rounding of W's entries
    (tau = 1e-17 to 1e-300 times the largest) moves no entry by more than tau: W comes back to
    a relative 1e-9 of itself, as the root-finding reference says."""
    W = fill(seed, (d, T), np.float64)
    tau = ratio * float(np.max(np.abs(W)))
    out = mtlx.prox(W, penalty, tau, 1.0)
    expected = prox_ref(P.L1() + P.LInf1() if penalty.startswith("L1") else P.LInf1(), W, tau)
    np.testing.assert_allclose(expected, W, rtol=1e-9)  # the reference itself: tau is below W's rounding
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=0)


@settings(max_examples=20, deadline=None)
@given(penalty=PROX_PENALTIES, d=st.integers(0, 3))
@example(penalty="l21", d=3)
def test_prox_of_no_tasks(penalty, d):
    """prox of a (d, 0) W (no task) returns the empty (d, 0) result, or refuses with a ValueError
    that names W."""
    try:
        out = mtlx.prox(np.zeros((d, 0)), penalty, 1.0, 1.0)
    except ValueError as exc:
        assert names_in(str(exc), ("W",)), exc
    else:
        assert out.shape == (d, 0)


PROX_FAULTS = ("W nonfinite", "W complex", "W object", "W string", "W 1-D", "W sparse", "step", "alpha",
               "penalty unknown", "penalty type", "penalty superpose", "penalty shared", "penalty smooth sum",
               "penalty two norms", "penalty graph size")
BAD_SCALARS = (-1.0, np.nan, np.inf, -np.inf, "0.5", None, True, np.bool_(False), np.float64(np.nan), 1 + 0j)


@settings(max_examples=80, deadline=None)
@given(fault=st.sampled_from(PROX_FAULTS), bad=st.sampled_from(BAD_SCALARS), seed=st.integers(0, 2**16),
       nonfinite=st.sampled_from((np.nan, np.inf, -np.inf)))
def test_prox_names_the_bad_argument(fault, bad, seed, nonfinite):
    """prox with one bad argument raises ValueError/TypeError naming it: W (NaN/inf, complex,
    objects, strings, 1-D, sparse), step or alpha (negative, NaN, inf, strings, None, bools,
    complex), or the penalty (unknown, not a penalty, one whose blocks are not W, a sum without a
    closed-form prox, a Graph of another number of tasks)."""
    W, step, alpha, penalty = fill(seed, (3, 2), np.float64), 1.0, 1.0, "l21"
    names = ("W",)
    if fault == "W nonfinite":
        W = inject_nonfinite(W, seed, nonfinite)
    elif fault in ("W complex", "W object", "W string"):
        W = bad_dtype_array({"W complex": np.complex128, "W object": object, "W string": "U3"}[fault], W.shape)
    elif fault == "W 1-D":
        W = W[:, 0]
    elif fault == "W sparse":
        W = scipy.sparse.csr_matrix(W)
    elif fault in ("step", "alpha"):
        step, alpha, names = (bad, 1.0, ("step",)) if fault == "step" else (1.0, bad, ("alpha",))
    else:
        penalty = {"penalty unknown": lambda: "nope", "penalty type": lambda: 3,
                   "penalty superpose": lambda: P.Superpose(P.L1(), P.Trace()), "penalty shared": P.Shared,
                   "penalty smooth sum": lambda: P.Mean() + P.L1(), "penalty two norms": lambda: P.L1() + P.Trace(),
                   "penalty graph size": lambda: P.Graph(np.ones((3, 1)))}[fault]
        names = ("penalty", "prox", "Graph", "Superpose", "Shared", "Mean", "Trace")
    # a penalty that cannot be built at all (L1 + Trace) may be refused by its constructor
    expect_error(lambda: mtlx.prox(W, penalty() if callable(penalty) else penalty, step, alpha), names)


# ========================================================================= 4. solve

GRAPH = np.array([[1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]])  # a path over 3 tasks (rows beyond T are cut)


@st.composite
def solve_penalties(draw, T):
    """A penalty for T tasks: a name, a weighted object, a sum, or a Superpose of two parts."""
    weight = st.floats(0.1, 2.0)
    singles = [st.sampled_from(("l1", "l21", "trace", "mean", "l21_columns", "linf1", "none", "shared")),
               st.builds(P.L1, weight), st.builds(P.L21, weight), st.builds(P.Trace, weight),
               st.builds(P.LInf1, weight), st.builds(P.Mean, weight), st.builds(P.Shared, weight),
               st.builds(lambda w: P.Graph(GRAPH[:T, : T - 1], w), weight),
               st.builds(lambda k, eta, w: P.Clustered(min(k, T), eta, w), st.integers(1, 2), st.floats(0.1, 2.0),
                         weight),
               st.builds(lambda a, b: P.L1(a) + P.L21(b), weight, weight),
               st.builds(lambda a, b: P.Mean(a) + P.L1(b), weight, weight),
               st.builds(lambda a, b: P.Superpose(P.L1(a), P.Trace(b)), weight, weight),
               st.builds(lambda a, b: P.Superpose(P.Shared(a), P.L1(b)), weight, weight),
               st.builds(lambda a, b: P.Superpose(P.L21(a), P.L21Columns(b)), weight, weight)]
    return draw(st.one_of(singles))


def check_solution(problem, res, pen, alpha, l2, fit_intercept, rtol):
    """res is finite, its objective is F at (W, b) by the reference, and no worse than F(0)."""
    T, dtype = len(problem["tasks"]), problem["dtype"]
    d = problem["tasks"][0][0].shape[1]
    assert res.W.shape == (d, T) and res.W.dtype == dtype and res.b.shape == (T,)
    assert np.isfinite(res.W).all() and np.isfinite(res.b).all() and np.isfinite(res.objective)
    if not fit_intercept:
        assert np.all(res.b == 0)
    components = res.components
    assert len(components) == (len(pen.parts) if type(pen) is P.Superpose else 1)
    np.testing.assert_allclose(np.sum(np.asarray(components, dtype=float), axis=0), res.W, rtol=1e-6,
                               atol=1e-6 * np.max(np.abs(res.W), initial=0.0))
    W64, b64 = res.W.astype(float), res.b.astype(float)
    F = objective_ref(problem, W64, b64 if fit_intercept else None, components, pen, alpha, l2)
    F0 = objective_ref(problem, np.zeros((d, T)), None, [np.zeros((d, T))] * len(components), pen, alpha, l2)
    note(f"objective {res.objective!r}, reference {F!r}, F(0) {F0!r}, converged {res.converged}")
    assert abs(res.objective - F) <= rtol * max(abs(F), F0), (res.objective, F)
    assert res.objective <= F0 + rtol * F0, (res.objective, F0)


def solve_and_check(scratch, problem, pen, alpha, l2, fit_intercept):
    """solve the problem and check the result against the reference (or the refusal of a logistic
    task of one class with intercepts, named by its id)."""
    td = build(problem, scratch)
    args = dict(loss=problem["losses"], penalty=pen, alpha=alpha, l2=l2, fit_intercept=fit_intercept,
                task_weights=problem["task_weights"], tol=1e-9, max_iter=20_000 if l2 else 2000)
    one_class = [t for t, (_, y) in enumerate(problem["tasks"])
                 if problem["losses"][t] == "logistic" and np.unique(y).size < 2]
    if fit_intercept and one_class:
        expect_error(lambda: mtlx.solve(td, **args), tuple(f"task {i}" for i in td.task_ids[one_class]))
        return
    res = mtlx.solve(td, **args)
    rtol = 1e-4 if problem["dtype"] == np.float32 else 1e-8
    check_solution(problem, res, pen, float(alpha), float(l2), fit_intercept, rtol)
    if l2 and problem["dtype"] == np.float64:
        assert res.converged, res.message


SOLVE_ALPHAS = st.sampled_from((0.0, 0.01, 0.3, 2.0, np.float32(0.1), 1))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@settings(max_examples=60, deadline=None)
@given(problem=problems(min_features=1), data=st.data())
def test_solve_objective_is_F_and_no_worse_than_the_start(scratch, problem, data):
    """solve on a small random problem (any layout, dtype, losses, task weights, penalty, alpha,
    l2, intercepts) returns finite W and b, components summing to W, an objective equal to a numpy
    evaluation of F at the returned point and at most F(0) (the start); with l2 > 0 (strongly
    convex) it converges within a generous max_iter. A logistic task of one class with intercepts
    is refused naming the task."""
    pen = as_penalty(data.draw(solve_penalties(len(problem["tasks"])), label="penalty"))
    l2 = data.draw(st.sampled_from((0.0, 0.1, 1.0, np.float32(0.5), np.int64(1))), label="l2")
    solve_and_check(scratch, problem, pen, data.draw(SOLVE_ALPHAS, label="alpha"), l2,
                    data.draw(st.booleans(), label="fit_intercept"))


NO_FEATURES = {"losses": ["squared"], "task_weights": "mean", "c": np.ones(1), "dtype": np.dtype(np.float64),
               "spec": ("shared", np.zeros((1, 0)), np.array([[1.0]])), "memory": ("C", "C"),
               "tasks": [(np.zeros((1, 0)), np.array([1.0]))]}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@settings(max_examples=30, deadline=None)
@given(case=problems(max_features=0).flatmap(lambda p: st.tuples(st.just(p), solve_penalties(len(p["tasks"])))),
       alpha=SOLVE_ALPHAS, l2=st.sampled_from((0.0, 0.1)), fit_intercept=st.booleans())
@example(case=(NO_FEATURES, "shared"), alpha=0.1, l2=0.1, fit_intercept=False).via("d = 0 with Shared")
def test_solve_with_no_features(scratch, case, alpha, l2, fit_intercept):
    """With 0 features every formulation solves (W is d x T = 0 x T; with intercepts each b_t is
    fitted): the same checks as on any other problem."""
    problem, pen = case
    solve_and_check(scratch, problem, as_penalty(pen), alpha, l2, fit_intercept)


def scaled_problem(m: int, d: int, T: int, seed: int, scale: float) -> dict:
    """A least-squares problem on shared X = s Z (Z standard normal), targets standard normal."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((m, d)) * scale, rng.standard_normal((m, T))
    return {"losses": ["squared"] * T, "task_weights": "mean", "c": np.full(T, 1.0 / m), "memory": ("C", "C"),
            "dtype": np.dtype(np.float64), "spec": ("shared", X, Y), "tasks": [(X, Y[:, t]) for t in range(T)]}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 4), d=st.integers(1, 3), T=st.integers(1, 3), seed=st.integers(0, 2**16),
       scale=st.sampled_from((1e-150, 1e-100, 1e-20, 1e-8, 1e8, 1e50, 1e100, 1e150)))
@example(m=1, d=1, T=1, seed=0, scale=1e100).via("X ~ 1e100: refused as an overflow")
@example(m=3, d=2, T=2, seed=1, scale=1e-20).via("X ~ 1e-20: stalls")
def test_solve_on_rescaled_data(scratch, m, d, T, seed, scale):
    """Least squares on X = s Z for s from 1e-150 to 1e150, with alpha and l2 rescaled so that the
    problem in units of W / s stays the same (F, its gradient and Hessian representable in
    float64): solve returns a finite solution whose objective is F and at most F(0), converged
    (l2 > 0: strongly convex) within a generous max_iter."""
    problem = scaled_problem(m, d, T, seed, scale)
    pen, alpha, l2 = P.L21(), 0.01 * scale, 0.1 * scale**2  # X -> s X, W -> W / s
    res = mtlx.solve(build(problem, scratch), penalty=pen, alpha=alpha, l2=l2, max_iter=20_000)
    check_solution(problem, res, pen, alpha, l2, False, 1e-8)
    assert res.converged, res.message


SOLVE_FAULTS = tuple((name, value) for name, values in {
    "alpha": (-1.0, np.nan, np.inf, "0.1", None, True, np.bool_(True), 1j),
    "l2": (-0.5, np.nan, -np.inf, "1", None, False),
    "tol": (-1e-3, np.nan, np.inf, "x", True, None),
    "max_iter": (0, -3, 1.5, "5", True, None, np.float64(10.0)),
    "loss": ("hinge", 3, None, ("squared",) * 9),
    "penalty": ("nope", 3, None, "L1(", lambda: P.L1() + P.Trace(), lambda: P.Graph(np.ones((9, 1))),
                lambda: P.Clustered(9, 1.0)),
    "task_weights": ("median", -1.0, np.nan, "ones"),
    "W0": ("shape", np.nan),
    "b0": ("without intercepts",),
    "callback": (3, "print"),
    "data": ("arrays",),
}.items() for value in values)


@settings(max_examples=80, deadline=None)
@given(problem=problems(max_tasks=2, max_features=2), fault=st.sampled_from(SOLVE_FAULTS))
def test_solve_names_the_bad_option(scratch, problem, fault):
    """solve with exactly one invalid option (negative, NaN, infinite, a string, None, a bool, a
    complex number, an integral float for max_iter, a penalty that does not fit, a bad warm start)
    raises ValueError/TypeError naming that option, before any iteration."""
    td = build(problem, scratch)
    d, T = td.n_features, td.n_tasks
    name, value = fault
    args = {"data": td, "loss": "squared", "penalty": "l21", "alpha": 0.1, "l2": 0.0, "tol": 1e-6, "max_iter": 50,
            "task_weights": "mean"}
    names = (name,)
    if name == "task_weights" and not isinstance(value, str):
        value = np.full(T, value)
    if name == "W0":
        value = np.zeros((d + 1, T)) if value == "shape" else np.full((d, T), np.nan)
        if d == 0 and not value.size:
            return
    if name == "b0":
        value = np.zeros(T)
    if name == "data":
        value = problem["tasks"]
    if name == "penalty" and callable(value):  # an object, built in the call: its constructor may refuse it
        names = ("penalty", "prox", "Graph", "Clustered", "Trace")
        expect_error(lambda: mtlx.solve(**{**args, "penalty": value()}), names)
        return
    args[name] = value
    expect_error(lambda: mtlx.solve(**args), names)


@settings(max_examples=20, deadline=None)
@given(value=st.sampled_from(("no", "yes", "False", None, 1.0, np.float64(0.0), [True])))
@example(value="no")
def test_solve_refuses_a_fit_intercept_that_is_not_a_bool(value):
    """fit_intercept must be a bool (Python or numpy, as the estimators require): "no" must not
    mean True. Anything else raises a TypeError naming fit_intercept."""
    td = mtlx.TaskData.from_shared(np.ones((3, 2)), np.arange(3.0))
    expect_error(lambda: mtlx.solve(td, fit_intercept=value, max_iter=10), ("fit_intercept",), types=(TypeError,))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@settings(max_examples=4, deadline=None)
@given(T=st.sampled_from((1000, 2000)), d=st.integers(1, 3), seed=st.integers(0, 2**16),
       layout=st.sampled_from(("tasks", "stacked")))
def test_thousands_of_tiny_tasks(T, d, seed, layout):
    """Thousands of tasks of 1-3 rows: the store holds every task in order, loss_grad matches the
    per-task reference, and solve (mean penalty, l2, intercepts) returns the objective F at its
    solution, at most F(0), converged."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, T)
    tasks = [(rng.standard_normal((m, d)), rng.standard_normal(m)) for m in sizes]
    if layout == "tasks":
        td = mtlx.TaskData.from_tasks(tasks)
    else:
        ids = np.repeat(np.arange(T), sizes)
        order = rng.permutation(ids.size)
        td = mtlx.TaskData.from_stacked(np.concatenate([X for X, _ in tasks])[order],
                                        np.concatenate([y for _, y in tasks])[order], ids[order])
        tasks = [(np.concatenate([X for X, _ in tasks])[order][ids[order] == t],
                  np.concatenate([y for _, y in tasks])[order][ids[order] == t]) for t in range(T)]
    for t in (0, T // 2, T - 1):
        assert np.array_equal(td.task(t)[0], tasks[t][0]) and np.array_equal(td.task(t)[1], tasks[t][1])
    problem = {"tasks": tasks, "losses": ["squared"] * T, "c": 1.0 / sizes, "dtype": np.dtype(np.float64)}
    W, b = rng.standard_normal((d, T)), rng.standard_normal(T)
    check_loss_grad(problem, td, W, b, *mtlx.loss_grad(td, W, b))
    res = mtlx.solve(td, penalty="mean", alpha=1.0, l2=0.1, fit_intercept=True, max_iter=20_000)
    check_solution(problem, res, P.Mean(), 1.0, 0.1, True, 1e-8)
    assert res.converged


# ========================================================================= 5. estimators and load


@st.composite
def estimator_fits(draw, folder):
    """A random estimator fit: (estimator, fit args, fit kwargs, prediction args and kwargs, the
    layout), inputs in a random memory layout (memory maps under ``folder``)."""
    classifier = draw(st.booleans())
    layout = draw(st.sampled_from(("single", "shared", "stacked", "tasks")))
    T = 1 if layout == "single" else draw(st.integers(1, 3))
    d = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from((np.float64, np.float32)))
    seed = draw(st.integers(0, 2**16))
    memory = draw(st.sampled_from(LAYOUTS))
    rng = np.random.default_rng(seed)
    labels = draw(st.sampled_from(((0, 1), (-3, 7), ("no", "yes"), (False, True), (1.0, 2.0))))
    penalty = draw(st.sampled_from(("l21", "l1", "trace", "mean", "none", "linf1")))
    est = (mtlx.MultiTaskClassifier if classifier else mtlx.MultiTaskRegressor)(
        penalty=penalty, alpha=draw(st.sampled_from((0.0, 0.01, 0.2))), l2=0.1 if classifier else 0.0,
        fit_intercept=draw(st.booleans()), max_iter=3000, tol=1e-7)

    def targets(m):
        if not classifier:
            return rng.standard_normal(m)
        y = np.asarray(labels, dtype=object)[rng.integers(0, 2, m)]
        y[:2] = labels  # both classes in every task
        return np.asarray(y.tolist())

    def features(m):
        return arrange(rng.standard_normal((m, d)).astype(dtype), memory, folder)

    sizes = [draw(st.integers(2, 5)) for _ in range(T)]
    if layout in ("single", "shared"):
        X = features(sizes[0])
        Y = np.column_stack([targets(sizes[0]) for _ in range(T)])
        return est, (X, Y[:, 0] if layout == "single" else Y), {}, (X,), {}, layout
    if layout == "tasks":
        pairs = [(features(m), targets(m)) for m in sizes]
        return est, (pairs,), {}, ([X for X, _ in pairs],), {}, layout
    ids = draw(st.one_of(int_ids(T), str_ids(T)))
    task = np.repeat(ids, sizes)
    order = rng.permutation(task.size)
    X = features(task.size)
    y = np.concatenate([targets(m) for m in sizes])[order]
    return est, (X, y), {"task": task[order]}, (X,), {"task": task[order]}, layout


def margins_ref(est, X, task):
    """x . w_t + b_t from coef_ and intercept_, in float64, in the layout predict returns."""
    coef, b = est.coef_.astype(float), est.intercept_.astype(float)
    if isinstance(X, list):
        return [np.asarray(X_t, dtype=float) @ coef[t] + b[t] for t, X_t in enumerate(X)]
    X = np.asarray(X, dtype=float)
    if task is not None:
        pos = np.searchsorted(est.tasks_, task)
        return np.einsum("ij,ij->i", X, coef[pos]) + b[pos]
    Z = X @ coef.T + b
    return Z[:, 0] if est.fit_layout_ == "single" else Z


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_estimators_predict_from_their_coefficients_and_round_trip(scratch, data):
    """MultiTaskRegressor/Classifier fit on a random layout (one task, shared X, stacked rows with
    integer or string ids, per-task lists; any memory layout; labels of any kind) predict
    ``x . w_t + b_t`` from their own coef_ and intercept_ (labels: the second class where the margin
    is positive, probabilities expit); save/load gives a model of equal parameters and
    coefficients whose predictions are identical."""
    est, fit_args, fit_kw, pred_args, pred_kw, layout = data.draw(estimator_fits(scratch), label="fit")
    est.fit(*fit_args, **fit_kw)
    T = est.n_tasks_
    assert est.coef_.shape == (T, est.n_features_in_) and np.isfinite(est.coef_).all()
    assert np.isfinite(est.intercept_).all() and est.fit_layout_ == layout
    if layout == "stacked":
        assert est.tasks_.tolist() == sorted(set(fit_kw["task"].tolist()))
    X, task = pred_args[0], pred_kw.get("task")
    z_ref = margins_ref(est, X, task)
    rtol = 1e-5 if np.asarray(X[0] if isinstance(X, list) else X).dtype == np.float32 else 1e-12
    if isinstance(est, mtlx.MultiTaskClassifier):
        z = est.decision_function(*pred_args, **pred_kw)
        pred = est.predict(*pred_args, **pred_kw)
        proba = est.predict_proba(*pred_args, **pred_kw)
        per_task = (list(zip(z, pred, proba)) if isinstance(z, list) else
                    [(z, pred, proba)] if np.ndim(z) == 1 else
                    [(z[:, t], pred[:, t], proba[t]) for t in range(T)])
        for t, (z_t, pred_t, proba_t) in enumerate(per_task):
            positive = (np.asarray(z_t) > 0).astype(int)
            if task is not None:  # stacked rows: each row's label from its own task's classes
                rows = np.searchsorted(est.tasks_, task)
                assert all(p == est.classes_[r][k] for p, r, k in zip(pred_t, rows, positive))
            else:
                assert np.array_equal(pred_t, (est.classes_ if layout == "single" else est.classes_[t])[positive])
            np.testing.assert_allclose(proba_t[:, 1], expit(np.asarray(z_t, dtype=float)), rtol=1e-12)
            np.testing.assert_allclose(proba_t.sum(axis=1), 1.0, rtol=1e-12)
    else:
        z = pred = est.predict(*pred_args, **pred_kw)
    for got, ref in zip(z if isinstance(z, list) else [z], z_ref if isinstance(z_ref, list) else [z_ref]):
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * (1 + np.abs(ref).max(initial=0)))
    path = scratch / "model.npz"
    mtlx.save(est, path)
    loaded = mtlx.load(path)
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    assert np.array_equal(loaded.coef_, est.coef_) and np.array_equal(loaded.intercept_, est.intercept_)
    again = loaded.predict(*pred_args, **pred_kw)
    for a, b in zip(again if isinstance(again, list) else [again], pred if isinstance(pred, list) else [pred]):
        assert np.array_equal(a, b)


@pytest.fixture(scope="module")
def saved_models(scratch):
    """Three fitted models and their files' bytes: a shared-X regressor, a stacked classifier with
    string ids and labels, a regressor with a Graph penalty (a matrix member)."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((12, 3)), rng.standard_normal((12, 2))
    task = np.repeat(["u", "v"], 6)
    models = [
        (mtlx.MultiTaskRegressor(alpha=0.05).fit(X, Y), {}),
        (mtlx.MultiTaskClassifier(alpha=0.01, l2=0.1).fit(X, np.tile(["a", "b"], 6), task=task), {"task": task}),
        (mtlx.MultiTaskRegressor(penalty=P.Graph(np.array([[1.0], [-1.0]])), alpha=0.05).fit(X, Y), {}),
    ]
    out = []
    for k, (model, kw) in enumerate(models):
        path = scratch / f"saved{k}.npz"
        mtlx.save(model, path)
        out.append((path.read_bytes(), model.predict(X, **kw), kw))
    return SavedModels(X, out)


class SavedModels(tuple):
    """(X, [(file bytes, predictions on X, predict keywords), ...]) with a short repr for hypothesis."""

    def __new__(cls, X, entries):
        return super().__new__(cls, (X, entries))

    def __repr__(self):
        return f"<{len(self[1])} saved models>"


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise TimeoutError in the block after ``seconds`` (where SIGALRM exists): a hang fails the test."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError(f"mtlx.load took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_corrupted(scratch, saved_models, which, content: bytes):
    """mtlx.load of ``content`` raises ValueError, or loads a model predicting exactly as the
    original did (the corruption hit bytes nothing reads, such as a timestamp)."""
    X, models = saved_models
    _, predictions, kw = models[which]
    path = scratch / "corrupted.npz"
    path.write_bytes(content)
    with time_limit(20.0):
        try:
            model = mtlx.load(path)
        except ValueError as exc:
            assert str(path) in str(exc), exc  # names the file
            return
    assert np.array_equal(model.predict(X, **kw), predictions)


@settings(max_examples=60, deadline=None)
@given(which=st.integers(0, 2), kind=st.sampled_from(("truncate", "junk", "zip junk", "npy junk", "empty")),
       cut=st.floats(0, 1, exclude_max=True), junk=st.binary(max_size=600))
def test_load_refuses_truncated_files_and_junk(scratch, saved_models, which, kind, cut, junk):
    """mtlx.load of a saved model cut short anywhere, of random bytes (bare, or behind a zip or
    .npy signature) or of an empty file raises ValueError naming the file, within seconds; a
    missing file raises FileNotFoundError."""
    raw = saved_models[1][which][0]
    content = {"truncate": raw[: int(cut * len(raw))], "junk": junk, "zip junk": b"PK\x03\x04" + junk,
               "npy junk": b"\x93NUMPY" + junk, "empty": b""}[kind]
    load_corrupted(scratch, saved_models, which, content)
    with pytest.raises(FileNotFoundError):
        mtlx.load(scratch / "no such model.npz")


def central_directory_offsets(raw: bytes) -> list:
    """Offsets of the zip central directory headers (signature PK\\x01\\x02) of a saved model."""
    end = raw.rfind(b"PK\x05\x06")
    count, _, start = struct.unpack("<HII", raw[end + 10 : end + 20])
    offsets, pos = [], start
    for _ in range(count):
        offsets.append(pos)
        name_len, extra_len, comment_len = struct.unpack("<HHH", raw[pos + 28 : pos + 34])
        pos += 46 + name_len + extra_len + comment_len
    return offsets


@settings(max_examples=60, deadline=None)
@given(which=st.integers(0, 2), where=st.sampled_from(("anywhere", "directory")),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=3),
       entry=st.integers(0, 100), offset=st.integers(0, 45))
@example(which=0, where="directory", flips=[(0.0, 7)], entry=0, offset=6).via("version needed to extract = 0x80")
def test_load_refuses_flipped_bytes(scratch, saved_models, which, where, flips, entry, offset):
    """mtlx.load of a saved model with bits flipped anywhere in the file, or inside a zip central
    directory header (a structural field), raises ValueError naming the file or loads a model
    predicting exactly as the original (the flip hit bytes nothing reads); never another error."""
    raw = bytearray(saved_models[1][which][0])
    if where == "directory":
        headers = central_directory_offsets(bytes(raw))
        base = headers[entry % len(headers)] + offset
        positions = [base + int(p * 2) for p, _ in flips]
    else:
        positions = [int(p * len(raw)) for p, _ in flips]
    for pos, (_, bit) in zip(positions, flips):
        raw[pos] ^= 1 << bit
    load_corrupted(scratch, saved_models, which, bytes(raw))


# ========================================================================= 6. path

PATH_PENALTIES = ("l1", "l21", "trace", "linf1", "l21_columns", "mean", "L1(0.5) + L21(0.5)")


@st.composite
def path_grids(draw):
    """(alphas, n_alphas, eps, the name of the one invalid argument or None)."""
    fault = draw(st.sampled_from((None, None, None, "alphas", "n_alphas", "eps")))
    valid_alphas = st.one_of(st.integers(1, 5), st.lists(st.floats(1e-4, 10), min_size=1, max_size=5),
                             st.sampled_from((np.int64(3), np.array([0.5, 0.01, 2.0]), [1e-300], [1e300, 1.0])))
    alphas, n_alphas, eps = draw(valid_alphas), None, draw(st.sampled_from((1e-3, 0.1, 1.0, np.float32(0.01))))
    if fault == "alphas":
        alphas = draw(st.sampled_from((0, -1, True, 2.5, "3", None, [], [0.5, 0.0], [1.0, -1.0], [np.nan],
                                       [np.inf], [[1.0]], ["a"], [True, False])))
    elif fault == "n_alphas":
        n_alphas = draw(st.sampled_from((0, -2, True, 2.0, "3")))
    elif fault == "eps":
        alphas = draw(st.integers(1, 5))
        eps = draw(st.sampled_from((0.0, -1e-3, np.nan, np.inf, 1.5, "x", True, None)))
    elif draw(st.booleans()):
        alphas, n_alphas = 100, draw(st.integers(1, 5))  # n_alphas overrides the default alphas=100
    return alphas, n_alphas, eps, fault


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@settings(max_examples=60, deadline=None)
@given(problem=problems(max_rows=6, logistic=True), penalty=st.sampled_from(PATH_PENALTIES), grid=path_grids(),
       fit_intercept=st.booleans(), l2=st.sampled_from((0.0, 0.1)))
def test_path_grid_and_solutions(scratch, problem, penalty, grid, fit_intercept, l2):
    """path with random valid or invalid alphas/n_alphas/eps: a valid grid gives positive,
    finite, non-increasing alphas (an explicit grid sorted decreasing; a default one of the asked
    length from its top to eps times it, W = 0 at the top for norms), finite coefficients and
    intercepts, and objectives equal to F at each solution; one invalid argument raises
    ValueError/TypeError naming it."""
    td = build(problem, scratch)
    d, T = td.n_features, td.n_tasks
    alphas, n_alphas, eps, fault = grid
    kwargs = dict(loss=problem["losses"], alphas=alphas, eps=eps, n_alphas=n_alphas, l2=l2,
                  fit_intercept=fit_intercept, task_weights=problem["task_weights"], tol=1e-8, max_iter=20_000)
    one_class = fit_intercept and any(loss == "logistic" and np.unique(y).size < 2
                                      for loss, (_, y) in zip(problem["losses"], problem["tasks"]))
    if fault is not None:
        expect_error(lambda: mtlx.path(td, penalty, **kwargs), (fault,))
        return
    if one_class:
        expect_error(lambda: mtlx.path(td, penalty, **kwargs), tuple(f"task {i}" for i in td.task_ids))
        return
    res = mtlx.path(td, penalty, **kwargs)
    a = res.alphas
    count = n_alphas if n_alphas is not None else alphas if isinstance(alphas, (int, np.integer)) else len(alphas)
    assert a.shape == (count,) and np.isfinite(a).all() and np.all(a > 0) and np.all(np.diff(a) <= 0)
    if isinstance(alphas, (list, np.ndarray)) and n_alphas is None:
        np.testing.assert_array_equal(a, np.sort(np.asarray(alphas, dtype=float))[::-1])
    elif count > 1 and a[0] > np.finfo(float).resolution:
        np.testing.assert_allclose(a[-1] / a[0], float(eps), rtol=1e-9)
    assert res.coefs.shape == (count, d, T) and np.isfinite(res.coefs).all() and np.isfinite(res.intercepts).all()
    pen = P.L1(0.5) + P.L21(0.5) if penalty.startswith("L1") else as_penalty(penalty)
    rtol = 1e-4 if problem["dtype"] == np.float32 else 1e-7
    for k in range(count):
        b = res.intercepts[k].astype(float) if fit_intercept else None
        F = objective_ref(problem, res.coefs[k], b, [res.coefs[k]], pen, float(a[k]), l2)
        F0 = objective_ref(problem, np.zeros((d, T)), None, [np.zeros((d, T))], pen, float(a[k]), l2)
        assert abs(res.objectives[k] - F) <= rtol * max(abs(F), F0), (k, res.objectives[k], F)
    norm = penalty != "mean"
    if norm and not isinstance(alphas, (list, np.ndarray)) and a[0] > np.finfo(float).resolution:
        assert np.all(res.coefs[0] == 0), "the top of the default grid is alpha_max: W = 0"
