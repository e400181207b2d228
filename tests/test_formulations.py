"""Every formulation of mtlx against an independent cvxpy formulation of the same objective.

The objective is written here from its definition,

    F(W, b) = sum_t c_t sum_i L_t(y_ti, x_ti . w_t + b_t) + alpha g(W) + (l2 / 2) ||W||_F^2,

twice: once in cvxpy (solved by Clarabel to tight tolerances) and once as a plain numpy function
of the parameters, :func:`objective_ref`, which scores both solutions. Penalties are described
by small tuples (``("l1", w)``, ``("graph", R, w)``, ``("superpose", (spec, spec))``...) from
which :func:`g_ref` (numpy) and :func:`g_cvx` (cvxpy) build the value; nothing here reads how
mtlx computes anything. The file also checks the proximal operators, the penalty values, the
errors on bad input and the estimators' handling of penalty objects (clone, pickle, save/load).
"""

import pickle
import zlib

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse
from sklearn.base import clone

import mtlx
from mtlx import penalties as P

cp = pytest.importorskip("cvxpy")

#: Agreement of mtlx's optimum with cvxpy's, relative to F (the brief's bar for float64 data).
F_RTOL = 1e-7
#: Clarabel's stopping tolerances: well below F_RTOL so that cvxpy's answer is the reference.
CLARABEL = dict(solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)
#: mtlx's tolerance and iteration cap for the comparisons.
SOLVE = dict(tol=1e-10, max_iter=100_000)


# ----------------------------------------------------------------------------------------- problems
def make_tasks(seed, d, sizes, losses, shared_x=False):
    """Ragged tasks (X_t, y_t) from a random linear model: noisy targets, or noisy labels in {-1, +1}.

    Labels are drawn with logistic-scale noise so that the classes overlap (an unregularized
    logistic fit would otherwise run off to infinity on separable data). With ``shared_x`` every
    task has the same X (the shared layout) and ``sizes`` must be equal.
    """
    rng = np.random.default_rng(seed)
    X_common = rng.standard_normal((sizes[0], d)) if shared_x else None
    tasks = []
    for m, loss in zip(sizes, losses):
        X = X_common if shared_x else rng.standard_normal((m, d))
        z = X @ rng.standard_normal(d) + 0.3
        if loss == "squared":
            y = z + 0.5 * rng.standard_normal(m)
        else:
            y = np.where(z + 2.0 * rng.logistic(size=m) > 0, 1.0, -1.0)
        tasks.append((X, y))
    return tasks


def task_weights_of(task_weights, tasks):
    """c_t from the definition: "mean" = 1/m_t, "sum" = 1, or the given array."""
    if isinstance(task_weights, str):
        return np.array([1.0 / len(y) if task_weights == "mean" else 1.0 for _, y in tasks])
    return np.asarray(task_weights, dtype=np.float64)


def make_data(tasks, layout):
    """The tasks as an mtlx.TaskData in one of the three layouts.

    The stacked layout gets its rows shuffled (task ids in random order) so that the grouping of
    rows by task is exercised; the shared layout needs tasks made with ``shared_x``.
    """
    if layout == "tasks":
        return mtlx.TaskData.from_tasks(tasks)
    if layout == "shared":
        return mtlx.TaskData.from_shared(tasks[0][0], np.column_stack([y for _, y in tasks]))
    X = np.vstack([X for X, _ in tasks])
    y = np.concatenate([y for _, y in tasks])
    task = np.concatenate([np.full(len(y_t), 10 * t + 3) for t, (_, y_t) in enumerate(tasks)])
    order = np.random.default_rng(0).permutation(len(y))
    return mtlx.TaskData.from_stacked(X[order], y[order], task[order])


def incidence(T, edges):
    """Incidence matrix R (T x E) of a task graph: +1 at s and -1 at t for an edge (s, t)."""
    R = np.zeros((T, len(edges)))
    for e, (s, t) in enumerate(edges):
        R[s, e], R[t, e] = 1.0, -1.0
    return R


def random_incidence(T, n_edges, seed):
    """The incidence matrix of ``n_edges`` distinct random edges between T tasks."""
    rng = np.random.default_rng(seed)
    pairs = [(s, t) for s in range(T) for t in range(s + 1, T)]
    return incidence(T, [pairs[i] for i in rng.choice(len(pairs), n_edges, replace=False)])


# ------------------------------------------------------------------------------- numpy references
def waterfill_value(W, k, eta):
    """min over M (T x T, tr M = k, 0 <= M <= I) of tr(W (eta I + M)^-1 W^T), without M.

    The optimal M shares the eigenvectors of W^T W (eigenvalues s_i^2, all T of them, zeros
    included), so the problem is over its eigenvalues m: min sum_i s_i^2 / (eta + m_i) with
    sum m_i = k, 0 <= m_i <= 1. Stationarity gives eta + m_i = s_i / sqrt(nu), i.e.
    m_i = clip(u s_i - eta, 0, 1) for the u that spends the budget; directions with s_i = 0 cost
    nothing and take what the others cannot (at most 1 each, and there are T of them in all).
    u is found by Brent's method on the monotone budget equation.
    """
    T = W.shape[1]
    s = np.zeros(T)
    s[: min(W.shape)] = np.linalg.svd(W, compute_uv=False)
    positive = s > 1e-13 * s.max()  # rounding-level singular values are zeros (their s_i^2 is nil anyway)
    budget = min(float(k), float(positive.sum()))
    m = np.zeros(T)
    if budget >= positive.sum():
        m[positive] = 1.0
    else:
        def spent(u):
            return np.clip(u * s[positive] - eta, 0.0, 1.0).sum() - budget

        u = scipy.optimize.brentq(spent, 0.0, (1.0 + eta) / s[positive].min(), xtol=1e-300, rtol=1e-15)
        m[positive] = np.clip(u * s[positive] - eta, 0.0, 1.0)
    return float(np.sum(s**2 / (eta + m)))


def g_ref(spec, U):
    """The penalty ``spec`` (its weight included, alpha not) at the d x T block U, from the definitions.

    A ``"shared"`` block is U = w0 1^T; its value is w/2 ||w0||^2.
    """
    kind, *p = spec
    if kind == "none":
        return 0.0
    if kind == "sum":
        return sum(g_ref(s, U) for s in p[0])
    if kind == "l1":
        return p[0] * np.abs(U).sum()
    if kind == "l21":
        return p[0] * np.sqrt((U**2).sum(axis=1)).sum()
    if kind == "trace":
        return p[0] * np.linalg.svd(U, compute_uv=False).sum()
    if kind == "mean":
        return p[0] * 0.5 * np.sum((U - U.mean(axis=1, keepdims=True)) ** 2)
    if kind == "l21_columns":
        return p[0] * np.sqrt((U**2).sum(axis=0)).sum()
    if kind == "linf1":
        return p[0] * np.abs(U).max(axis=1).sum()
    if kind == "graph":
        R, w = p
        R = R.toarray() if scipy.sparse.issparse(R) else R
        return w * np.sum((U @ R) ** 2)
    if kind == "clustered":
        k, eta, w = p
        return w * eta * (1 + eta) * waterfill_value(U, k, eta)
    if kind == "shared":
        return p[0] * 0.5 * np.sum(U[:, 0] ** 2)
    raise ValueError(kind)


def parts_of(spec):
    """The specs of the parameter blocks W is the sum of (one unless ``spec`` is a superposition)."""
    return spec[1] if spec[0] == "superpose" else (spec,)


def loss_ref(tasks, losses, c, W, b):
    """sum_t c_t sum_i L_t(y_ti, x_ti . w_t + b_t): squared 0.5 (y - z)^2, logistic log(1 + exp(-y z))."""
    total = 0.0
    for t, (X, y) in enumerate(tasks):
        z = X @ W[:, t] + b[t]
        total += c[t] * (0.5 * np.sum((y - z) ** 2) if losses[t] == "squared" else np.sum(np.logaddexp(0.0, -y * z)))
    return total


def loss_gradient_ref(tasks, losses, c, W, b, l2):
    """Gradient in W of the smooth part, the loss plus (l2 / 2) ||W||_F^2."""
    G = l2 * W.copy()
    for t, (X, y) in enumerate(tasks):
        z = X @ W[:, t] + b[t]
        r = z - y if losses[t] == "squared" else -y / (1.0 + np.exp(y * z))
        G[:, t] += c[t] * (X.T @ r)
    return G


def objective_ref(tasks, losses, c, spec, alpha, l2, parts, b):
    """F at the blocks ``parts`` (W = their sum) and intercepts b: the one scorer of both solutions."""
    W = sum(parts)
    penalty = sum(g_ref(s, U) for s, U in zip(parts_of(spec), parts))
    return loss_ref(tasks, losses, c, W, b) + alpha * penalty + 0.5 * l2 * np.sum(W**2)


# ---------------------------------------------------------------------------------- cvxpy formulation
def g_cvx(spec, U):
    """(cvxpy expression of the penalty ``spec`` at the d x T variable U, extra constraints)."""
    kind, *p = spec
    T = U.shape[1]
    if kind == "none":
        return cp.Constant(0.0), []
    if kind == "sum":
        terms = [g_cvx(s, U) for s in p[0]]
        return sum(t[0] for t in terms), [c for t in terms for c in t[1]]
    if kind == "l1":
        return p[0] * cp.sum(cp.abs(U)), []
    if kind == "l21":
        return p[0] * cp.sum(cp.norm(U, 2, axis=1)), []
    if kind == "trace":
        return p[0] * cp.normNuc(U), []
    if kind == "mean":
        return p[0] * 0.5 * cp.sum_squares(U @ (np.eye(T) - np.full((T, T), 1.0 / T))), []
    if kind == "l21_columns":
        return p[0] * cp.sum(cp.norm(U, 2, axis=0)), []
    if kind == "linf1":
        return p[0] * cp.sum(cp.max(cp.abs(U), axis=1)), []
    if kind == "graph":
        R, w = p
        return w * cp.sum_squares(U @ (R.toarray() if scipy.sparse.issparse(R) else R)), []
    if kind == "clustered":
        # jointly convex in (U, M): tr(U (eta I + M)^-1 U^T) = matrix_frac(U^T, eta I + M)
        k, eta, w = p
        M = cp.Variable((T, T), symmetric=True)
        constraints = [cp.trace(M) == k, M >> 0, np.eye(T) - M >> 0]
        return w * eta * (1 + eta) * cp.matrix_frac(U.T, eta * np.eye(T) + M), constraints
    raise ValueError(kind)


def cvx_block(spec, d, T):
    """One parameter block: (its d x T cvxpy expression, its penalty, constraints)."""
    if spec[0] == "shared":
        w0 = cp.Variable(d)
        return cp.reshape(w0, (d, 1), order="F") @ np.ones((1, T)), spec[1] * 0.5 * cp.sum_squares(w0), []
    U = cp.Variable((d, T))
    g, constraints = g_cvx(spec, U)
    return U, g, constraints


def solve_cvx(tasks, losses, c, spec, alpha, l2, fit_intercept):
    """argmin F by Clarabel: (list of the blocks' d x T values, intercepts)."""
    d, T = tasks[0][0].shape[1], len(tasks)
    blocks = [cvx_block(s, d, T) for s in parts_of(spec)]
    W = sum(blk[0] for blk in blocks)
    b = cp.Variable(T) if fit_intercept else np.zeros(T)
    loss = 0
    for t, (X, y) in enumerate(tasks):
        z = X @ W[:, t] + b[t]
        if losses[t] == "squared":
            loss = loss + c[t] * 0.5 * cp.sum_squares(y - z)
        else:
            loss = loss + c[t] * cp.sum(cp.logistic(cp.multiply(-y, z)))
    objective = loss + alpha * sum(blk[1] for blk in blocks) + 0.5 * l2 * cp.sum_squares(W)
    problem = cp.Problem(cp.Minimize(objective), [con for blk in blocks for con in blk[2]])
    problem.solve(**CLARABEL)
    assert problem.status == cp.OPTIMAL, problem.status
    return [np.asarray(blk[0].value) for blk in blocks], (b.value if fit_intercept else np.zeros(T))


# ------------------------------------------------------------------------------------------ 1. squared loss
R4 = random_incidence(4, 3, seed=4)
R5 = random_incidence(5, 5, seed=5)

#: (id, mtlx penalty, reference spec, alpha, l2, d, sizes)
SQUARED_CASES = [
    ("l1", P.L1(0.8), ("l1", 0.8), 0.1, 0.0, 6, [12, 30, 17, 25]),
    ("l21", P.L21(1.5), ("l21", 1.5), 0.1, 0.0, 6, [12, 30, 17, 25]),
    ("trace", P.Trace(), ("trace", 1.0), 0.3, 0.0, 5, [14, 22, 40, 18, 11]),
    ("mean", P.Mean(2.0), ("mean", 2.0), 0.5, 0.0, 4, [10, 15, 20]),
    ("l21_columns", P.L21Columns(0.5), ("l21_columns", 0.5), 0.4, 0.0, 5, [12, 30, 17, 25, 13]),
    ("linf1", P.LInf1(), ("linf1", 1.0), 0.15, 0.0, 6, [12, 30, 17, 25]),
    ("graph_dense", P.Graph(R4, 0.7), ("graph", R4, 0.7), 1.0, 0.0, 5, [12, 30, 17, 25]),
    ("graph_sparse", P.Graph(scipy.sparse.csr_matrix(R5), 0.7), ("graph", R5, 0.7), 1.0, 0.0, 4,
     [12, 30, 17, 25, 19]),
    ("clustered", P.Clustered(2, 0.5, 1.0), ("clustered", 2, 0.5, 1.0), 0.5, 0.0, 4, [12, 30, 17, 25, 19]),
    ("shared", P.Shared(1.0), ("shared", 1.0), 0.2, 0.0, 5, [12, 30, 17]),
    ("l1+l21", P.L1(0.5) + P.L21(1.0), ("sum", (("l1", 0.5), ("l21", 1.0))), 0.1, 0.0, 7, [12, 30, 17, 25]),
    ("graph+l1", P.Graph(R4, 1.0) + P.L1(0.3), ("sum", (("graph", R4, 1.0), ("l1", 0.3))), 0.5, 0.0, 6,
     [12, 30, 17, 25]),
    ("dirty", P.Superpose(P.LInf1(1.0), P.L1(0.4)), ("superpose", (("linf1", 1.0), ("l1", 0.4))), 0.2, 0.0, 6,
     [12, 30, 17, 25]),
    ("robust", P.Superpose(P.Trace(1.0), P.L21Columns(0.8)),
     ("superpose", (("trace", 1.0), ("l21_columns", 0.8))), 0.3, 0.0, 5, [12, 30, 17, 25]),
    ("rmtfl", P.Superpose(P.L21(0.8), P.L21Columns(1.0)),
     ("superpose", (("l21", 0.8), ("l21_columns", 1.0))), 0.2, 0.0, 6, [12, 30, 17, 25]),
    ("sparse_lowrank", P.Superpose(P.L1(0.3), P.Trace(1.0)), ("superpose", (("l1", 0.3), ("trace", 1.0))), 0.2,
     0.0, 6, [12, 30, 17, 25]),
    ("shared+l1", P.Superpose(P.Shared(1.0), P.L1(0.5)), ("superpose", (("shared", 1.0), ("l1", 0.5))), 0.2, 0.0,
     5, [12, 30, 17, 25]),
    ("shared+none", P.Superpose(P.Shared(1.0), P.NoPenalty()), ("superpose", (("shared", 1.0), ("none",))), 0.5,
     0.3, 5, [12, 30, 17, 25]),
    # beyond the named formulations: three blocks, a smooth block, smooth + non-smooth sums, and
    # Evgeniou & Pontil's w_t = w0 + v_t with a/2 ||w0||^2 + b/2 ||V||_F^2 (Graph(I, b/2) = b/2 ||V||^2)
    ("three_blocks", P.Superpose(P.Shared(1.0), P.L21Columns(1.0), P.L1(0.5)),
     ("superpose", (("shared", 1.0), ("l21_columns", 1.0), ("l1", 0.5))), 0.2, 0.0, 5, [12, 30, 17, 25]),
    ("graph_superpose_l1", P.Superpose(P.Graph(R4, 1.0), P.L1(0.5)),
     ("superpose", (("graph", R4, 1.0), ("l1", 0.5))), 0.2, 0.0, 5, [12, 30, 17, 25]),
    ("mean+l1", P.Mean(1.0) + P.L1(0.5), ("sum", (("mean", 1.0), ("l1", 0.5))), 0.3, 0.0, 5, [12, 30, 17, 25]),
    ("clustered+l1", P.Clustered(2, 0.5) + P.L1(0.5), ("sum", (("clustered", 2, 0.5, 1.0), ("l1", 0.5))), 0.3, 0.0,
     4, [12, 30, 17, 25]),
    ("evgeniou_pontil", P.Superpose(P.Shared(1.0), P.Graph(np.eye(4), 0.5)),
     ("superpose", (("shared", 1.0), ("graph", np.eye(4), 0.5))), 0.2, 0.0, 5, [12, 30, 17, 25]),
]


_CVX_CACHE = {}


def fit_both(tasks, losses, task_weights, penalty, spec, alpha, l2, fit_intercept, layout="tasks", solver="auto",
             key=None):
    """mtlx's and cvxpy's solutions and their objectives, both scored by :func:`objective_ref`
    (cvxpy's solved once per ``key``)."""
    c = task_weights_of(task_weights, tasks)
    losses = [losses] * len(tasks) if isinstance(losses, str) else list(losses)
    res = mtlx.solve(make_data(tasks, layout), loss=losses, penalty=penalty, alpha=alpha, l2=l2,
                     fit_intercept=fit_intercept, task_weights=task_weights, solver=solver, **SOLVE)
    if key is None or key not in _CVX_CACHE:
        found = solve_cvx(tasks, losses, c, spec, alpha, l2, fit_intercept)
        if key is None:
            parts_cvx, b_cvx = found
        else:
            _CVX_CACHE[key] = found
    if key is not None:
        parts_cvx, b_cvx = _CVX_CACHE[key]
    F_mtlx = objective_ref(tasks, losses, c, spec, alpha, l2, list(res.components), res.b)
    F_cvx = objective_ref(tasks, losses, c, spec, alpha, l2, parts_cvx, b_cvx)
    return res, parts_cvx, b_cvx, F_mtlx, F_cvx


def test_clustered_on_linearly_dependent_tasks_matches_cvxpy():
    """Tasks 2 and 3 are combinations of tasks 0 and 1 (no noise): W has singular values of 1e-12
    and below, whose water-filling breakpoints are 1e12 times the others'. The cumulative sums
    there lost every digit and the fit crashed with an IndexError (50 of 60 such fits)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 5))
    Y2 = X @ rng.standard_normal((5, 2))
    Y = np.column_stack([Y2, Y2[:, 0] + Y2[:, 1], Y2[:, 0]])
    tasks = [(X, Y[:, t]) for t in range(4)]
    res, _, _, F_mtlx, F_cvx = fit_both(tasks, "squared", "mean", P.Clustered(2, 0.5), ("clustered", 2, 0.5, 1.0),
                                        0.5, 0.0, False)
    assert res.converged
    assert F_mtlx == pytest.approx(F_cvx, rel=F_RTOL)


@pytest.mark.parametrize("solver", ["fista", "auto"])
@pytest.mark.parametrize("case", SQUARED_CASES, ids=[case[0] for case in SQUARED_CASES])
def test_squared_loss_matches_cvxpy(case, solver):
    """Each penalty, sum and superposition with the squared loss: mtlx's optimum has cvxpy's objective.

    F of both solutions is measured by the same numpy function, to 1e-7 relative; mtlx's
    reported objective is F at its own solution and the blocks sum to W. By FISTA, and by the
    engine "auto" picks (ADMM wherever its prox-only penalties allow: these are least squares
    in the Gram form).
    """
    from mtlx.admm import unsupported_penalty

    name, penalty, spec, alpha, l2, d, sizes = case
    tasks = make_tasks(zlib.crc32(name.encode()), d, sizes, ["squared"] * len(sizes))
    res, _, _, F_mtlx, F_cvx = fit_both(tasks, "squared", "mean", penalty, spec, alpha, l2, False, solver=solver,
                                        key=name)
    assert res.converged
    if solver == "auto":
        assert res.solver == ("admm" if unsupported_penalty(penalty) is None else "fista")
    assert F_mtlx == pytest.approx(F_cvx, rel=F_RTOL)
    assert res.objective == pytest.approx(F_mtlx, rel=1e-10)
    np.testing.assert_allclose(sum(res.components), res.W, rtol=1e-12, atol=1e-14)
    assert np.abs(res.W).max() > 1e-2  # the penalty did not kill everything: the comparison means something


# --------------------------------------------------------------- 2. other losses, intercepts, layouts
MIXED = ["squared", "logistic", "squared", "logistic"]

#: (id, losses, layout, task_weights, fit_intercept, mtlx penalty, reference spec, alpha, l2, d, sizes)
LOSS_CASES = [
    ("logistic-l21-tasks-mean-b", "logistic", "tasks", "mean", True, P.L21(), ("l21", 1.0), 0.03, 0.0, 5,
     [30, 22, 40, 25]),
    ("logistic-trace-shared-sum-b", "logistic", "shared", "sum", True, P.Trace(), ("trace", 1.0), 2.0, 0.0, 4,
     [30] * 5),
    ("logistic-mean-stacked-sum", "logistic", "stacked", "sum", False, P.Mean(), ("mean", 1.0), 3.0, 0.05, 4,
     [25, 35, 30]),
    ("logistic-clustered-tasks-mean-b", "logistic", "tasks", "mean", True, P.Clustered(1.5, 0.4),
     ("clustered", 1.5, 0.4, 1.0), 0.1, 0.0, 3, [30, 22, 40, 25]),
    ("mixed-l1+l21-stacked-mean-b", MIXED, "stacked", "mean", True, P.L1(0.5) + P.L21(),
     ("sum", (("l1", 0.5), ("l21", 1.0))), 0.05, 0.0, 6, [30, 22, 40, 25]),
    ("mixed-dirty-tasks-sum", MIXED, "tasks", "sum", False, P.Superpose(P.LInf1(1.0), P.L1(0.4)),
     ("superpose", (("linf1", 1.0), ("l1", 0.4))), 2.0, 0.0, 5, [30, 22, 40, 25]),
    ("mixed-graph-shared-weights-b", MIXED, "shared", np.array([0.5, 2.0, 1.0, 0.25]), True, P.Graph(R4, 0.5),
     ("graph", R4, 0.5), 1.0, 0.1, 4, [30] * 4),
    ("mixed-shared+l1-tasks-mean-b", MIXED, "tasks", "mean", True, P.Superpose(P.Shared(1.0), P.L1(0.5)),
     ("superpose", (("shared", 1.0), ("l1", 0.5))), 0.05, 0.0, 5, [30, 22, 40, 25]),
    ("squared-robust-shared-sum-b", "squared", "shared", "sum", True, P.Superpose(P.Trace(1.0), P.L21Columns(0.8)),
     ("superpose", (("trace", 1.0), ("l21_columns", 0.8))), 3.0, 0.0, 5, [20] * 4),
]


@pytest.mark.parametrize("case", LOSS_CASES, ids=[case[0] for case in LOSS_CASES])
def test_losses_layouts_intercepts_match_cvxpy(case):
    """The logistic loss (cvxpy ``logistic``), mixed losses, intercepts, both named task weights and
    given ones, and the three data layouts: mtlx's optimum has cvxpy's objective to 1e-7 relative.

    The intercepts are unpenalized, so they also satisfy their own optimality condition: the
    gradient of F in b_t (each task's weighted sum of loss derivatives) vanishes.
    """
    name, losses, layout, task_weights, fit_intercept, penalty, spec, alpha, l2, d, sizes = case
    losses = [losses] * len(sizes) if isinstance(losses, str) else losses
    tasks = make_tasks(zlib.crc32(name.encode()), d, sizes, losses, shared_x=layout == "shared")
    res, _, _, F_mtlx, F_cvx = fit_both(tasks, losses, task_weights, penalty, spec, alpha, l2, fit_intercept, layout)
    assert res.converged
    assert F_mtlx == pytest.approx(F_cvx, rel=F_RTOL)
    assert res.objective == pytest.approx(F_mtlx, rel=1e-10)
    assert np.abs(res.W).max() > 1e-2
    if fit_intercept:
        c = task_weights_of(task_weights, tasks)
        for t, (X, y) in enumerate(tasks):
            z = X @ res.W[:, t] + res.b[t]
            r = z - y if losses[t] == "squared" else -y / (1.0 + np.exp(y * z))
            assert c[t] * r.sum() == pytest.approx(0.0, abs=1e-8 * c[t] * len(y))
    else:
        assert np.all(res.b == 0)


def test_float32_data_match_cvxpy():
    """float32 data: mtlx's optimum against cvxpy's on the same (float32-rounded) data, to 1e-6 relative.

    The result keeps the data's dtype, so W and b come back rounded to float32 (6e-8 relative
    per entry), which moves F at first order by up to about 1e-7 relative; and F evaluated on
    float32 data cannot resolve relative changes much below 1e-7, so tol is 1e-7 (tighter ones
    do not converge). 1e-6 leaves a decade above that rounding, where float64 is held to 1e-7.
    """
    spec = ("sum", (("l1", 0.3), ("l21", 1.0)))
    tasks = [(X.astype(np.float32), y.astype(np.float32))
             for X, y in make_tasks(32, 6, [14, 33, 21, 27], ["squared"] * 4)]
    exact = [(X.astype(np.float64), y.astype(np.float64)) for X, y in tasks]
    c = task_weights_of("mean", exact)
    res = mtlx.solve(mtlx.TaskData.from_tasks(tasks), penalty=P.L1(0.3) + P.L21(), alpha=0.05, fit_intercept=True,
                     tol=1e-7, max_iter=100_000)
    assert res.converged and res.W.dtype == np.float32 and res.b.dtype == np.float32
    parts_cvx, b_cvx = solve_cvx(exact, ["squared"] * 4, c, spec, 0.05, 0.0, True)
    F_mtlx = objective_ref(exact, ["squared"] * 4, c, spec, 0.05, 0.0, [res.W.astype(np.float64)],
                           res.b.astype(np.float64))
    F_cvx = objective_ref(exact, ["squared"] * 4, c, spec, 0.05, 0.0, parts_cvx, b_cvx)
    assert F_mtlx == pytest.approx(F_cvx, rel=1e-6)
    assert res.objective == pytest.approx(F_mtlx, rel=1e-6)


# ------------------------------------------------------------------------------------ 3. components
def superpose_case(name):
    return next(case for case in SQUARED_CASES if case[0] == name)


@pytest.mark.parametrize("name", ["sparse_lowrank", "shared+l1", "shared+none", "evgeniou_pontil"])
def test_unique_components_match_cvxpy(name):
    """Where the split W = U + V is unique, each block of ``res.components`` is cvxpy's.

    Unique: L1 + Trace generically (Chen, Liu & Ye 2012); Shared + L1 and Shared + Graph(I)
    because the split's penalty is strictly convex in w0 once W is fixed; Shared + NoPenalty
    with l2 on W because nothing but w/2 ||w0||^2 depends on the split, so w0 = 0 and the second
    block is all of W (l2 acts on W, so this is plain ridge regression). The tolerance is cvxpy's: its 1e-9 gap
    pins the split to about 1e-5. A shared block has equal columns, exactly.
    """
    _, penalty, spec, alpha, l2, d, sizes = superpose_case(name)
    tasks = make_tasks(zlib.crc32(name.encode()), d, sizes, ["squared"] * len(sizes))
    res, parts_cvx, _, _, _ = fit_both(tasks, "squared", "mean", penalty, spec, alpha, l2, False)
    assert len(res.components) == len(parts_cvx) == 2
    scale = np.abs(res.W).max()
    for part, U, U_cvx in zip(parts_of(spec), res.components, parts_cvx):
        assert U.shape == res.W.shape
        np.testing.assert_allclose(U, U_cvx, atol=1e-4 * scale)
        if part[0] == "shared":
            np.testing.assert_array_equal(U, np.repeat(U[:, :1], U.shape[1], axis=1))
    if name == "shared+none":
        np.testing.assert_allclose(res.components[0], 0.0, atol=1e-8)
    else:
        assert min(np.abs(U).max() for U in res.components) > 0.1 * scale  # both blocks take part


NONUNIQUE_CASES = ["dirty", "robust", "rmtfl", "l1_superpose_l1"]


@pytest.mark.parametrize("name", NONUNIQUE_CASES)
def test_components_values_implied_by_optimality(name):
    """Whatever the split W = U_1 + U_2, the blocks sum to W and each block's penalty is what F implies.

    For a norm g_i, the optimality condition of block i is ``-G in alpha dg_i(U_i)`` with G the
    gradient of the smooth part at the (unique) optimal W, and a subgradient s of a norm at U
    has <s, U> = g(U): so ``alpha g_i(U_i) = <-G, U_i>`` for every block, for any optimal split.
    The total ``alpha sum g_i(U_i)`` is F* minus the smooth part at W*, hence equal to cvxpy's.
    ``Superpose(L1(0.5), L1(0.5))`` is non-unique on purpose (any sign-consistent split of W
    is optimal); a warm start W0, which goes to the first block, makes mtlx's split lopsided.
    """
    if name == "l1_superpose_l1":
        penalty, spec = P.Superpose(P.L1(0.5), P.L1(0.5)), ("superpose", (("l1", 0.5), ("l1", 0.5)))
        alpha, l2, d, sizes = 0.1, 0.0, 6, [12, 30, 17, 25]
    else:
        _, penalty, spec, alpha, l2, d, sizes = superpose_case(name)
    tasks = make_tasks(zlib.crc32(name.encode()), d, sizes, ["squared"] * len(sizes))
    losses, c = ["squared"] * len(sizes), task_weights_of("mean", tasks)
    W0 = np.random.default_rng(1).standard_normal((d, len(sizes))) if name == "l1_superpose_l1" else None
    res = mtlx.solve(make_data(tasks, "tasks"), penalty=penalty, alpha=alpha, l2=l2, W0=W0, **SOLVE)
    parts_cvx, _ = solve_cvx(tasks, losses, c, spec, alpha, l2, False)
    assert res.converged
    np.testing.assert_allclose(sum(res.components), res.W, rtol=1e-12, atol=1e-14)
    G = loss_gradient_ref(tasks, losses, c, res.W, res.b, l2)
    F = objective_ref(tasks, losses, c, spec, alpha, l2, list(res.components), res.b)
    values = [alpha * g_ref(s, U) for s, U in zip(parts_of(spec), res.components)]
    for value, U in zip(values, res.components):
        assert value == pytest.approx(np.sum(-G * U), abs=1e-7 * F)
    assert min(values) > 1e-3 * F  # both blocks carry weight: the identity is tested on each
    total_cvx = alpha * sum(g_ref(s, U) for s, U in zip(parts_of(spec), parts_cvx))
    assert sum(values) == pytest.approx(total_cvx, abs=1e-6 * F)  # cvxpy's W is good to ~1e-5


# -------------------------------------------------------------------------- 4. proxes and values
def prox_matrix(seed=7, d=6, T=4):
    """A d x T matrix with a row and a column small enough to be zeroed by the group penalties."""
    V = np.random.default_rng(seed).standard_normal((d, T))
    V[2] *= 0.1
    V[:, 1] *= 0.1
    return V


def prox_closed_form(spec, V, tau):
    """argmin_U 0.5 ||U - V||^2 + tau g(U) where it has a closed form, derived from the definitions."""
    kind, *p = spec
    t = tau * p[-1]  # the weight is the last parameter
    if kind == "l1":
        return np.sign(V) * np.maximum(np.abs(V) - t, 0.0)
    if kind == "l21":
        norms = np.linalg.norm(V, axis=1, keepdims=True)
        return V * np.maximum(1.0 - t / norms, 0.0)
    if kind == "l21_columns":
        norms = np.linalg.norm(V, axis=0, keepdims=True)
        return V * np.maximum(1.0 - t / norms, 0.0)
    if kind == "trace":
        A, s, Bt = np.linalg.svd(V, full_matrices=False)
        return (A * np.maximum(s - t, 0.0)) @ Bt
    T = V.shape[1]
    if kind == "mean":  # g = 0.5 ||U C||^2 with C = I - 11^T/T (symmetric, idempotent): U (I + t C) = V
        return np.linalg.solve(np.eye(T) + t * (np.eye(T) - np.full((T, T), 1.0 / T)), V.T).T
    if kind == "graph":  # g = ||U R||^2: U (I + 2 t R R^T) = V
        R = p[0].toarray() if scipy.sparse.issparse(p[0]) else p[0]
        return np.linalg.solve(np.eye(T) + 2.0 * t * R @ R.T, V.T).T
    raise ValueError(kind)


def prox_cvx(spec, V, tau):
    """argmin_U 0.5 ||U - V||^2 + tau g(U) by Clarabel."""
    U = cp.Variable(V.shape)
    g, constraints = g_cvx(spec, U)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(U - V) + tau * g), constraints)
    problem.solve(**CLARABEL)
    assert problem.status == cp.OPTIMAL, problem.status
    return U.value


R4_SPARSE = scipy.sparse.csr_matrix(R4)

#: (id, mtlx penalty, reference spec, whether the reference is a closed form or cvxpy)
PROX_CASES = [
    ("l1", P.L1(0.7), ("l1", 0.7), "closed"),
    ("l21", P.L21(1.3), ("l21", 1.3), "closed"),
    ("trace", P.Trace(1.5), ("trace", 1.5), "closed"),
    ("mean", P.Mean(2.0), ("mean", 2.0), "closed"),
    ("l21_columns", P.L21Columns(1.2), ("l21_columns", 1.2), "closed"),
    ("graph_dense", P.Graph(R4, 0.6), ("graph", R4, 0.6), "closed"),
    ("graph_sparse", P.Graph(R4_SPARSE, 0.6), ("graph", R4, 0.6), "closed"),
    ("linf1", P.LInf1(1.1), ("linf1", 1.1), "cvxpy"),
    ("clustered", P.Clustered(2, 0.3, 1.0), ("clustered", 2, 0.3, 1.0), "cvxpy"),
    ("clustered_k1.5", P.Clustered(1.5, 2.0, 0.5), ("clustered", 1.5, 2.0, 0.5), "cvxpy"),
    ("l1+l21", P.L1(0.4) + P.L21(1.0), ("sum", (("l1", 0.4), ("l21", 1.0))), "cvxpy"),
    ("l1+linf1", P.L1(0.4) + P.LInf1(1.0), ("sum", (("l1", 0.4), ("linf1", 1.0))), "cvxpy"),
    ("l1+l21_columns", P.L1(0.4) + P.L21Columns(1.0), ("sum", (("l1", 0.4), ("l21_columns", 1.0))), "cvxpy"),
]


@pytest.mark.parametrize("shape", [(6, 4), (3, 4)], ids=["tall", "wide"])
@pytest.mark.parametrize("case", PROX_CASES, ids=[case[0] for case in PROX_CASES])
def test_prox_matches_reference(case, shape):
    """``mtlx.prox(W, penalty, step, alpha)`` = argmin_U 0.5 ||U - W||^2 + step alpha g(U).

    Against the closed form (to rounding) or cvxpy's solution. The prox objective h is
    1-strongly convex, so a point within gap of the minimum is within sqrt(2 gap) of it:
    Clarabel's 1e-9 gap allows 5e-5, and mtlx's U must also score no worse than cvxpy's (which
    puts it at least as close to the true prox as cvxpy's own answer). W is tall (d > T) and
    wide (d < T; the trace norm then goes through the d x d Gram matrix). The penalty's own
    prox (the protocol the solver calls, on task rows) returns w g(U) at its result, which is
    checked against the definition.
    """
    _, penalty, spec, how = case
    V = prox_matrix(d=shape[0], T=shape[1])
    step, alpha = 0.5, 0.8
    tau = step * alpha
    U = mtlx.prox(V, penalty, step=step, alpha=alpha)
    assert U.shape == V.shape and np.abs(U).max() > 0.1
    if how == "closed":
        np.testing.assert_allclose(U, prox_closed_form(spec, V, tau), rtol=1e-12, atol=1e-13)
    else:
        U_cvx = prox_cvx(spec, V, tau)
        np.testing.assert_allclose(U, U_cvx, atol=5e-5)

        def h(X):
            return 0.5 * np.sum((X - V) ** 2) + tau * g_ref(spec, X)

        assert h(U) <= h(U_cvx) + 1e-12
    part = penalty.split()[0]
    out = np.empty((V.shape[1], V.shape[0]))
    value = part.prox(np.ascontiguousarray(V.T), tau, out, P.BlockContext.single(*V.shape))
    np.testing.assert_allclose(out.T, U, rtol=1e-14, atol=1e-15)
    assert value == pytest.approx(g_ref(spec, U), rel=1e-12)


def test_prox_zeroes_the_small_groups():
    """The group penalties zero exactly the groups the closed forms zero: the damped row (L21) and
    column (L21Columns) of the test matrix fall below the threshold, and their sums with L1 too."""
    V = prox_matrix()
    assert np.all(mtlx.prox(V, P.L21(1.3), step=0.5, alpha=0.8)[2] == 0)
    assert np.all(mtlx.prox(V, P.L21Columns(1.2), step=0.5, alpha=0.8)[:, 1] == 0)
    assert np.all(mtlx.prox(V, P.L1(0.4) + P.L21(1.0), step=0.5, alpha=0.8)[2] == 0)
    assert np.count_nonzero(mtlx.prox(V, P.L21(1.3), step=0.5, alpha=0.8)) == V.size - V.shape[1]


def test_shared_prox():
    """Shared's prox on its d-vector block: argmin_u 0.5 ||u - v||^2 + tau w/2 ||u||^2 = v / (1 + tau w),
    returning w/2 ||u||^2; ``mtlx.prox`` refuses it (its block is not W)."""
    v = np.random.default_rng(3).standard_normal(5)
    out = np.empty(5)
    value = P.Shared(2.5).prox(v, 0.4, out, P.BlockContext.single(5, 3))
    np.testing.assert_allclose(out, v / (1.0 + 0.4 * 2.5), rtol=1e-15)
    assert value == pytest.approx(2.5 * 0.5 * np.sum(out**2), rel=1e-14)
    with pytest.raises(ValueError, match="on W itself"):
        mtlx.prox(np.ones((5, 3)), P.Shared())


VALUE_CASES = [case[:3] for case in PROX_CASES] + [
    ("none", P.NoPenalty(), ("none",)),
    ("clustered_kT", P.Clustered(4, 0.7, 1.3), ("clustered", 4, 0.7, 1.3)),
    ("graph+l1", P.Graph(R4, 1.0) + P.L1(0.3), ("sum", (("graph", R4, 1.0), ("l1", 0.3)))),
    ("mean+trace", P.Mean(0.5) + P.Trace(2.0), ("sum", (("mean", 0.5), ("trace", 2.0)))),
]


@pytest.mark.parametrize("case", VALUE_CASES, ids=[case[0] for case in VALUE_CASES])
def test_penalty_value_matches_definition(case):
    """``mtlx.penalty_value`` against the numpy definition on a full-rank, a rank-one and a
    matrix with zero rows and columns (all with T = 4 tasks; Clustered's sum then runs over
    directions with zero singular values too)."""
    _, penalty, spec = case
    rng = np.random.default_rng(11)
    full = rng.standard_normal((6, 4))
    rank_one = np.outer(rng.standard_normal(3), rng.standard_normal(4))
    holes = full.copy()
    holes[[1, 4]] = 0.0
    holes[:, 2] = 0.0
    for W in (full, rank_one, holes):
        assert mtlx.penalty_value(W, penalty) == pytest.approx(g_ref(spec, W), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("k", [1, 2.5, 4])
def test_clustered_value_is_the_minimum_over_M(k):
    """Clustered's value is min over M (tr M = k, 0 <= M <= I) of w eta (1 + eta) tr(W (eta I + M)^-1 W^T),
    solved as an SDP by cvxpy at fixed W: this checks mtlx and the numpy reference used above
    (the spectral reduction of :func:`waterfill_value`) against the definition itself."""
    rng = np.random.default_rng(5)
    eta, w = 0.4, 1.7
    for W in (rng.standard_normal((6, 4)), rng.standard_normal((3, 4))):  # d > T and d < T
        M = cp.Variable((4, 4), symmetric=True)
        problem = cp.Problem(cp.Minimize(w * eta * (1 + eta) * cp.matrix_frac(W.T, eta * np.eye(4) + M)),
                             [cp.trace(M) == k, M >> 0, np.eye(4) - M >> 0])
        problem.solve(**CLARABEL)
        assert problem.status == cp.OPTIMAL
        assert mtlx.penalty_value(W, P.Clustered(k, eta, w)) == pytest.approx(problem.value, rel=1e-7)
        assert g_ref(("clustered", k, eta, w), W) == pytest.approx(problem.value, rel=1e-7)


# ------------------------------------------------------------------------------------- 5. bad input
def small_data(T=3):
    return mtlx.TaskData.from_tasks(make_tasks(0, 4, [15] * T, ["squared"] * T))


@pytest.mark.parametrize("penalty", [P.Graph(np.ones((4, 2))), P.Graph(np.ones((4, 2))) + P.L1(),
                                     P.Superpose(P.L1(), P.Graph(scipy.sparse.csr_matrix(np.ones((2, 2)))))],
                         ids=["alone", "in_sum", "in_superpose"])
def test_graph_with_wrong_number_of_rows(penalty):
    """R must have one row per task: 4 or 2 rows for 3 tasks is refused by solve, prox and
    penalty_value, with R's shape and the expected one in the message."""
    with pytest.raises(ValueError, match=r"R has shape \((4|2), 2\), expected \(3, n_edges\)"):
        mtlx.solve(small_data(), penalty=penalty, alpha=0.1)
    if not isinstance(penalty, P.Superpose):
        with pytest.raises(ValueError, match=r"expected \(3, n_edges\)"):
            mtlx.prox(np.ones((4, 3)), penalty)
        with pytest.raises(ValueError, match=r"expected \(3, n_edges\)"):
            mtlx.penalty_value(np.ones((4, 3)), penalty)


def test_graph_R_must_be_a_finite_matrix():
    """A 1-D or non-finite R is refused when the penalty is made."""
    with pytest.raises(ValueError, match="2-D"):
        P.Graph(np.ones(3))
    with pytest.raises(ValueError, match="NaN or infinity"):
        P.Graph(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_clustered_k_outside_one_to_T():
    """k < 1 is refused when the penalty is made, k > T when it meets a problem with T tasks;
    k = T is allowed (and fits)."""
    for k in (0, 0.5, -2):
        with pytest.raises(ValueError, match="k .*must be a number >= 1"):
            P.Clustered(k, 1.0)
    for k in (4, 3.5):
        with pytest.raises(ValueError, match=f"k = {k} clusters but there are only 3 tasks"):
            mtlx.solve(small_data(), penalty=P.Clustered(k, 1.0), alpha=0.1)
    assert mtlx.solve(small_data(), penalty=P.Clustered(3, 1.0), alpha=0.1).converged


@pytest.mark.parametrize("eta", [0.0, -1.0, float("nan"), float("inf")])
def test_clustered_eta_must_be_positive(eta):
    with pytest.raises(ValueError, match="eta must be a finite number > 0"):
        P.Clustered(2, eta)


@pytest.mark.parametrize("make", [P.L1, P.L21, P.Trace, P.Mean, P.L21Columns, P.LInf1, P.Shared,
                                  lambda w: P.Graph(R4, w), lambda w: P.Clustered(2, 1.0, w)],
                         ids=["L1", "L21", "Trace", "Mean", "L21Columns", "LInf1", "Shared", "Graph", "Clustered"])
def test_negative_weight(make):
    """Every penalty refuses a negative relative weight, naming it."""
    with pytest.raises(ValueError, match="penalty weight w must be finite and >= 0, got -0.5"):
        make(-0.5)


def test_sum_without_closed_form_prox():
    """L21 + Trace has no closed-form prox (neither's groups nest in the other's): the sum is
    refused when it is written, by the operator, a spec string and solve, saying why and
    pointing to Superpose."""
    message = r"prox of L21\(1.0\) \+ Trace\(1.0\) has no closed form.*Superpose"
    for call in (lambda: P.L21() + P.Trace(), lambda: mtlx.penalties.parse("L21 + Trace"),
                 lambda: mtlx.solve(small_data(), penalty="L21(1) + Trace(1)", alpha=0.1)):
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize("penalty", ["trace", P.Trace(2.0), P.Graph(R4) + P.L1()])
def test_cd_solver_refuses_other_penalties(penalty):
    """Coordinate descent handles L1 and L21 only: other penalties are refused, naming the
    penalty and the alternative, before fitting."""
    tasks = make_tasks(1, 4, [15] * 4, ["squared"] * 4)
    with pytest.raises(ValueError, match=r"solver='cd' needs the squared loss with penalty L1 or L21 .*(Trace|Graph)"):
        mtlx.MultiTaskRegressor(penalty=penalty, solver="cd").fit(tasks)


# ----------------------------------------------------------------------------------- 6. estimators
def test_estimator_with_penalty_object_matches_solve_and_cvxpy():
    """``MultiTaskRegressor(penalty=Graph(R) + L1())`` fits what ``mtlx.solve`` fits with the same
    options (intercepts on, the estimator's default), and that is cvxpy's optimum."""
    tasks = make_tasks(21, 5, [14, 30, 22, 18], ["squared"] * 4)
    penalty, spec = P.Graph(R4, 0.8) + P.L1(0.3), ("sum", (("graph", R4, 0.8), ("l1", 0.3)))
    est = mtlx.MultiTaskRegressor(penalty=penalty, alpha=0.2, **SOLVE).fit(tasks)
    res = mtlx.solve(mtlx.TaskData.from_tasks(tasks), penalty=penalty, alpha=0.2, fit_intercept=True, **SOLVE)
    np.testing.assert_allclose(est.coef_, res.W.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(est.intercept_, res.b, rtol=1e-10, atol=1e-12)
    c, losses = task_weights_of("mean", tasks), ["squared"] * 4
    parts_cvx, b_cvx = solve_cvx(tasks, losses, c, spec, 0.2, 0.0, True)
    F_est = objective_ref(tasks, losses, c, spec, 0.2, 0.0, [est.coef_.T], est.intercept_)
    assert F_est == pytest.approx(objective_ref(tasks, losses, c, spec, 0.2, 0.0, parts_cvx, b_cvx), rel=F_RTOL)
    assert np.count_nonzero(est.coef_ == 0) > 0 and np.abs(est.coef_).max() > 0.1  # L1 zeroes some, not all


ROUND_TRIP_PENALTIES = {
    "graph_dense": P.Graph(R4, 0.8),
    "graph_sparse+l1": P.Graph(R4_SPARSE, 0.8) + P.L1(0.3),
    "superpose": P.Superpose(P.Trace(1.0), P.L21Columns(0.8)),
    "superpose_shared": P.Superpose(P.Shared(1.0), P.L1(0.5)),
    "sum": P.L1(0.5) + P.L21(1.0),
    "clustered": P.Clustered(2, 0.5, 1.0),
}


@pytest.fixture(scope="module")
def fitted():
    """One fitted regressor per penalty of ROUND_TRIP_PENALTIES (shared input, 4 tasks)."""
    tasks = make_tasks(8, 5, [30] * 4, ["squared"] * 4, shared_x=True)
    X, Y = tasks[0][0], np.column_stack([y for _, y in tasks])
    return X, Y, {name: mtlx.MultiTaskRegressor(penalty=penalty, alpha=0.1).fit(X, Y)
                  for name, penalty in ROUND_TRIP_PENALTIES.items()}


@pytest.mark.parametrize("name", list(ROUND_TRIP_PENALTIES))
def test_clone_and_pickle_keep_the_penalty(fitted, name):
    """``sklearn.base.clone`` keeps an equal penalty (a copy: refitting the clone fits the same
    model); pickle round-trips the fitted estimator, penalty and predictions alike."""
    X, Y, models = fitted
    est = models[name]
    twin = clone(est)
    assert twin.penalty == est.penalty and repr(twin.penalty) == repr(est.penalty)
    assert twin.penalty is not est.penalty
    np.testing.assert_array_equal(twin.fit(X, Y).coef_, est.coef_)
    back = pickle.loads(pickle.dumps(est))
    assert back.penalty == est.penalty
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    if isinstance(est.penalty, P.Superpose):
        for U, V in zip(back.components_, est.components_):
            np.testing.assert_array_equal(U, V)


@pytest.mark.parametrize("name", list(ROUND_TRIP_PENALTIES))
def test_save_load_round_trip(fitted, name, tmp_path):
    """``mtlx.save``/``mtlx.load`` of an estimator whose penalty holds an R matrix (dense, or
    sparse, which is stored densely and comes back as an equal dense matrix), a Superpose or a
    Sum: the loaded penalty equals the saved one and the predictions are identical."""
    X, _, models = fitted
    est = models[name]
    mtlx.save(est, tmp_path / "model.npz")
    back = mtlx.load(tmp_path / "model.npz")
    assert type(back) is type(est)
    assert back.penalty == est.penalty
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


def test_penalty_spec_string():
    """The spec string of robust MTL parses to the equal object (and its repr parses back to it);
    a different weight or order is a different penalty."""
    parsed = P.parse("Superpose(Trace(1000), L21Columns(500))")
    assert parsed == P.Superpose(P.Trace(1000.0), P.L21Columns(500.0))
    assert parsed != P.Superpose(P.Trace(1000.0), P.L21Columns(50.0))
    assert parsed != P.Superpose(P.L21Columns(500.0), P.Trace(1000.0))
    assert P.parse(repr(parsed)) == parsed
    assert P.parse("L1(0.5) + L21(1)") == P.L1(0.5) + P.L21(1.0)
    assert P.parse("Clustered(k=3, eta=0.1, w=100)") == P.Clustered(3, 0.1, 100.0)
