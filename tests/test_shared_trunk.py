"""Shared-trunk models: gradients, references, layouts, estimators and errors."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import mtlx
from mtlx._reduction import LocalReduction
from mtlx.losses import get_loss
from mtlx.trunk.network import TrunkNetwork
from mtlx.trunk.objective import Rows, TrunkObjective

ACTIVATIONS = ["relu", "tanh", "identity"]


def numpy_forward(X, trunk, task_layers, head, activation):
    """An independent forward pass: one task's head outputs."""
    act = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh, "identity": lambda z: z}[activation]
    H = X
    for W, b in trunk:
        H = act(H @ W + b)
    for V, c in task_layers:
        H = act(H @ V + c)
    A, a = head
    return H @ A + a


def objective_of(data, losses, out_dims, activation, task_hidden=(), uncertainty=False, l2=0.3, hidden=(6, 5)):
    net = TrunkNetwork(data.n_features, hidden, task_hidden, activation, out_dims)
    obj = TrunkObjective(net, losses, l2, uncertainty, LocalReduction(data.task_ids), 1)
    return net, obj, Rows.of(data).normalized()


def fd_error(obj, rows, theta, eps=1e-6):
    F, g, _ = obj(theta, rows)
    fd = np.empty_like(theta)
    for i in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += eps
        tm[i] -= eps
        fd[i] = (obj(tp, rows, grad=False)[0] - obj(tm, rows, grad=False)[0]) / (2 * eps)
    return np.max(np.abs(fd - g)) / max(1.0, np.max(np.abs(g)))


def shared_data(seed=0, n=40, d=4, T=3, missing=True):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = rng.normal(size=(n, T))
    if missing:
        Y[3, 1] = Y[7, 2] = np.nan
    return mtlx.TaskData.from_shared(X, Y)


def mixed_tasks(seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(45, 4))
    yb = np.sign(rng.normal(size=10))
    yc = rng.integers(0, 3, size=15).astype(float)
    yp = rng.poisson(2.0, size=12).astype(float)
    yh = rng.normal(size=8)
    return mtlx.TaskData.from_tasks([(X[:10], yb), (X[10:25], yc), (X[25:37], yp), (X[37:], yh)])


# ---------------------------------------------------------------------- gradients
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("task_hidden", [(), (3,)])
@pytest.mark.parametrize("loss", ["squared", "huber", "poisson"])
def test_shared_layout_gradient_matches_finite_differences(activation, task_hidden, loss):
    data = shared_data()
    if loss == "poisson":
        data = mtlx.TaskData.from_shared(data.X, np.abs(np.round(data.Y * 2)))
    net, obj, rows = objective_of(data, [get_loss(loss)] * 3, [1, 1, 1], activation, task_hidden)
    theta = net.initial_params(0, range(3), np.float64)
    assert fd_error(obj, rows, theta) < 1e-7


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("task_hidden", [(), (2, 3)])
@pytest.mark.parametrize("uncertainty", [False, True])
def test_mixed_heads_gradient_matches_finite_differences(activation, task_hidden, uncertainty):
    # Logistic, softmax (3 classes), Poisson and squared-hinge heads over their own inputs.
    data = mixed_tasks()
    losses = [get_loss("logistic"), None, get_loss("poisson"), get_loss("squared_hinge")]
    data.y[37:] = np.sign(data.y[37:])
    net, obj, rows = objective_of(data, losses, [1, 3, 1, 1], activation, task_hidden, uncertainty)
    rng = np.random.default_rng(3)
    theta = np.concatenate([net.initial_params(1, range(4), np.float64), rng.normal(size=4) if uncertainty else []])
    assert fd_error(obj, rows, theta) < 1e-7


def test_objective_matches_an_independent_numpy_forward_pass():
    data = mixed_tasks()
    losses = [get_loss("logistic"), None, get_loss("poisson"), get_loss("huber")]
    net, obj, rows = objective_of(data, losses, [1, 3, 1, 1], "tanh", (3,), l2=0.0)
    p = net.initial_params(2, range(4), np.float64)
    F, _, task_loss = obj(p, rows)
    ref = []
    for t in range(4):
        X_t, y_t = data.task(t)
        layers, head = net.task_layers(p, t)
        Z = numpy_forward(X_t, net.trunk_layers(p), layers, head, "tanh")
        if t == 0:
            ref.append(np.mean(np.logaddexp(0, -y_t * Z[:, 0])))
        elif t == 1:
            ref.append(np.mean(np.log(np.exp(Z).sum(1)) - Z[np.arange(len(y_t)), y_t.astype(int)]))
        elif t == 2:
            ylogy = np.where(y_t > 0, y_t * np.log(np.where(y_t > 0, y_t, 1)), 0)
            ref.append(np.mean(np.exp(Z[:, 0]) - y_t * Z[:, 0] + ylogy - y_t))
        else:
            r = np.abs(y_t - Z[:, 0])
            ref.append(np.mean(np.where(r <= 1.35, r**2, 2 * 1.35 * r - 1.35**2)))
    np.testing.assert_allclose(task_loss, ref, rtol=1e-13)
    assert F == pytest.approx(np.mean(ref), rel=1e-13)


def _large_shared_problem(seed=21, n=2500):
    # More rows than 8 blocks of 256 (the core's unit for one X shared by every task), the last
    # block partial: every run of blocks, the sums across runs and the chunk-ordered sums.
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    Y = np.column_stack([np.tanh(X @ rng.normal(size=5)), rng.integers(0, 3, size=n), np.sign(rng.normal(size=n))])
    Y[rng.random(n) < 0.1, 0] = np.nan  # missing labels
    losses = [get_loss("squared"), None, get_loss("logistic")]  # a regression, a softmax and a binary head
    return mtlx.TaskData.from_shared(X, Y), losses, [1, 3, 1]


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_shared_input_pass_in_blocks_matches_the_per_task_pass_and_finite_differences(activation):
    data, losses, out_dims = _large_shared_problem()
    net, obj, rows = objective_of(data, losses, out_dims, activation, hidden=(7, 6), l2=0.1)
    theta = net.initial_params(4, range(3), np.float64)
    F, g, task_loss = obj(theta, rows)
    # The same tasks stacked, each with its own copy of X and its labelled rows: the per-task code
    # path (row loops, the order-free sum of the tasks' trunk gradients).
    keep = [data.sample_weight[:, t] > 0 for t in range(3)]  # (TaskData weighs a missing label 0)
    stacked = mtlx.TaskData.from_tasks([(data.X[k], data.Y[k, t]) for t, k in enumerate(keep)])
    _, obj_s, rows_s = objective_of(stacked, losses, out_dims, activation, hidden=(7, 6), l2=0.1)
    F_s, g_s, task_loss_s = obj_s(theta, rows_s)
    np.testing.assert_allclose(task_loss, task_loss_s, rtol=1e-13)
    assert F == pytest.approx(F_s, rel=1e-13)
    np.testing.assert_allclose(g, g_s, rtol=0, atol=1e-13 * np.max(np.abs(g)))
    # Central differences on coordinates of every block: both trunk layers, the heads, biases.
    rng = np.random.default_rng(5)
    for i in rng.choice(theta.size, size=25, replace=False):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += 1e-6
        tm[i] -= 1e-6
        fd = (obj(tp, rows, grad=False)[0] - obj(tm, rows, grad=False)[0]) / 2e-6
        assert fd == pytest.approx(g[i], abs=1e-8 * max(1.0, np.max(np.abs(g))))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_shared_input_pass_is_the_same_for_every_number_of_threads(dtype):
    data, losses, out_dims = _large_shared_problem(n=4000)
    data = mtlx.TaskData.from_shared(data.X.astype(dtype), data.Y.astype(dtype))
    net = TrunkNetwork(data.n_features, (16,), (), "relu", out_dims)
    rows = Rows.of(data).normalized()
    theta = net.initial_params(0, range(3), np.float64)
    results = [TrunkObjective(net, losses, 1e-3, False, LocalReduction(data.task_ids), k)(theta, rows)
               for k in (1, 2, 3)]
    for F, g, task_loss in results[1:]:
        assert F == results[0][0]
        assert np.array_equal(g, results[0][1]) and np.array_equal(task_loss, results[0][2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("task_hidden", [(), (4,)])
@pytest.mark.parametrize("exact", [True, False])
def test_stacked_pass_is_the_same_for_every_number_of_threads(dtype, task_hidden, exact):
    # Ragged stacked tasks over enough rows that the core runs them side by side on its threads
    # (rows x width past its threshold for threads; on 3 threads task 2 holds more than a third
    # of the rows, and the tasks run one after the other): heads of one and of three outputs
    # (a softmax), task layers, and each task's share of the trunk's gradient (exact) or the one
    # trunk pass; bitwise the one-thread pass, which in turn matches the per-row numpy reference
    # within rounding.
    rng = np.random.default_rng(8)
    sizes = [900, 40, 2300, 3, 1700, 1]
    tasks = []
    for m in sizes:
        X = rng.normal(size=(m, 6)).astype(dtype)
        tasks.append((X, np.tanh(X @ rng.normal(size=6)).astype(dtype)))
    tasks[1] = (tasks[1][0], rng.integers(0, 3, size=sizes[1]).astype(dtype))
    data = mtlx.TaskData.from_tasks(tasks)
    out_dims = [1, 3, 1, 1, 1, 1]
    net = TrunkNetwork(data.n_features, (24,), task_hidden, "tanh", out_dims)
    rows = Rows.of(data).normalized()
    theta = net.initial_params(0, range(len(sizes)), np.float64)
    losses = [None if k > 1 else get_loss("squared") for k in out_dims]
    results = [TrunkObjective(net, losses, 1e-3, False, LocalReduction(data.task_ids), k, exact=exact)(theta, rows)
               for k in (1, 2, 3)]
    for F, g, task_loss in results[1:]:
        assert F == results[0][0]
        assert np.array_equal(g, results[0][1]) and np.array_equal(task_loss, results[0][2])
    for t in (0, 2, 5):
        layers, head = net.task_layers(theta, t)
        X_t, y_t = data.task(t)
        z = numpy_forward(X_t.astype(np.float64), net.trunk_layers(theta), layers, head, "tanh")[:, 0]
        assert results[0][2][t] == pytest.approx(np.mean(0.5 * (y_t - z) ** 2), rel=1e-12 if dtype == np.float64
                                                 else 1e-4)


def test_missing_labels_and_weights_enter_as_row_weights():
    # NaN rows of a shared Y count for nothing; task t's loss is its mean over labelled rows.
    data = shared_data()
    net, obj, rows = objective_of(data, [get_loss("squared")] * 3, [1, 1, 1], "relu", l2=0.0)
    p = net.initial_params(0, range(3), np.float64)
    _, _, task_loss = obj(p, rows)
    Y = np.array(data.Y)
    Y[3, 1] = Y[7, 2] = np.nan
    for t in range(3):
        layers, head = net.task_layers(p, t)
        z = numpy_forward(data.X, net.trunk_layers(p), layers, head, "relu")[:, 0]
        keep = ~np.isnan(Y[:, t])
        assert task_loss[t] == pytest.approx(np.mean(0.5 * (Y[keep, t] - z[keep]) ** 2), rel=1e-13)


def test_float32_gradient_is_the_float64_gradient_rounded():
    data = shared_data(missing=False)
    data32 = mtlx.TaskData.from_shared(data.X.astype(np.float32), data.Y.astype(np.float32))
    net, obj, rows = objective_of(data, [get_loss("squared")] * 3, [1, 1, 1], "tanh")
    _, obj32, rows32 = objective_of(data32, [get_loss("squared")] * 3, [1, 1, 1], "tanh")
    p = net.initial_params(0, range(3), np.float64)
    F, g, _ = obj(p, rows)
    F32, g32, _ = obj32(p, rows32)
    assert F32 == pytest.approx(F, rel=1e-5)
    np.testing.assert_allclose(g32, g, atol=1e-5 * np.abs(g).max())


# ---------------------------------------------------------------------- PyTorch reference
def test_loss_and_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    data = mixed_tasks()
    data.y[37:] = np.sign(data.y[37:])
    losses = [get_loss("logistic"), None, get_loss("poisson"), get_loss("squared_hinge")]
    l2 = 0.05
    for activation in ACTIVATIONS:
        net, obj, rows = objective_of(data, losses, [1, 3, 1, 1], activation, (3,), l2=l2)
        p = net.initial_params(4, range(4), np.float64)
        F, g, _ = obj(p, rows)
        tp = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        act = {"relu": torch.relu, "tanh": torch.tanh, "identity": lambda z: z}[activation]

        def view(arr, p=p, tp=tp):  # the numpy view's place in p -> the same slice of the torch vector
            start = (arr.__array_interface__["data"][0] - p.__array_interface__["data"][0]) // 8
            return tp[start: start + arr.size].reshape(arr.shape)

        total, ridge = 0.0, 0.0
        for W, _ in net.trunk_layers(p):
            ridge = ridge + (view(W) ** 2).sum()
        for t in range(4):
            X_t, y_t = data.task(t)
            H = torch.tensor(X_t)
            for W, b in net.trunk_layers(p):
                H = act(H @ view(W) + view(b))
            layers, (A, a) = net.task_layers(p, t)
            for V, c in layers:
                H = act(H @ view(V) + view(c))
                ridge = ridge + (view(V) ** 2).sum()
            ridge = ridge + (view(A) ** 2).sum()
            Z = H @ view(A) + view(a)
            y = torch.tensor(y_t)
            if t == 0:
                L = torch.nn.functional.softplus(-y * Z[:, 0]).mean()
            elif t == 1:
                L = torch.nn.functional.cross_entropy(Z, y.long())
            elif t == 2:
                L = torch.nn.functional.poisson_nll_loss(Z[:, 0], y, log_input=True, full=False).mean()
                L = L + torch.mean(torch.where(y > 0, y * torch.log(torch.clamp(y, min=1)), 0 * y) - y)
            else:
                L = (torch.clamp(1 - y * Z[:, 0], min=0) ** 2).mean()
            total = total + L / 4
        Ft = total + 0.5 * l2 * ridge
        Ft.backward()
        assert F == pytest.approx(Ft.item(), rel=1e-12)
        np.testing.assert_allclose(g, tp.grad.numpy(), rtol=0, atol=1e-10 * max(1.0, np.abs(g).max()))


# ---------------------------------------------------------------------- optimizers
def als_subspace(tasks, k, l2, n_sweeps=3000):
    """Alternating least squares for min (1/T) sum_t mean_i 0.5 (y - x'U a_t - b'a_t - c_t)^2
    + (l2/2)(||U||^2 + ||A||^2): exact block minimizations, numpy only."""
    rng = np.random.default_rng(0)
    d, T = tasks[0][0].shape[1], len(tasks)
    U, b = rng.normal(size=(d, k)) * 0.3, np.zeros(k)
    A, c = rng.normal(size=(k, T)) * 0.3, np.zeros(T)
    for _ in range(n_sweeps):
        for t, (X, y) in enumerate(tasks):  # heads: ridge with a free intercept
            H = X @ U + b
            m = len(y)
            M = np.column_stack([H, np.ones(m)]) / np.sqrt(m * T)
            R = np.diag(np.r_[np.full(k, np.sqrt(l2)), 0.0])
            sol = np.linalg.lstsq(np.vstack([M, R]), np.r_[y / np.sqrt(m * T), np.zeros(k + 1)], rcond=None)[0]
            A[:, t], c[t] = sol[:k], sol[k]
        rows, rhs = [], []
        for t, (X, y) in enumerate(tasks):  # trunk: (U, b) by one least-squares problem
            m = len(y)
            rows.append(np.column_stack([np.kron(X, A[:, t][None, :]), np.tile(A[:, t], (m, 1))]) / np.sqrt(m * T))
            rhs.append((y - c[t]) / np.sqrt(m * T))
        R = np.hstack([np.sqrt(l2) * np.eye(d * k), np.zeros((d * k, k))])
        sol = np.linalg.lstsq(np.vstack(rows + [R]), np.concatenate(rhs + [np.zeros(d * k)]), rcond=None)[0]
        U, b = sol[: d * k].reshape(d, k), sol[d * k:]
    F = sum(np.mean(0.5 * (y - (X @ U + b) @ A[:, t] - c[t]) ** 2) for t, (X, y) in enumerate(tasks)) / T
    return F + 0.5 * l2 * (np.sum(U**2) + np.sum(A**2)), U, b, A, c


def test_identity_trunk_is_the_shared_subspace_of_alternating_least_squares():
    rng = np.random.default_rng(7)
    d, k, T = 6, 2, 5
    U0 = rng.normal(size=(d, k))
    tasks = []
    for t in range(T):
        X = rng.normal(size=(30 + 5 * t, d))
        tasks.append((X, X @ U0 @ rng.normal(size=k) + 0.3 * rng.normal(size=len(X)) + t))
    l2 = 0.01
    F_ref, U, b, A, c = als_subspace(tasks, k, l2)
    res = mtlx.fit_shared_trunk(mtlx.TaskData.from_tasks(tasks), hidden=(k,), activation="identity", l2=l2,
                                tol=1e-10, max_iter=5000)
    assert res.history["objective"][-1] == pytest.approx(F_ref, rel=1e-9)
    for t, (X, _) in enumerate(tasks):
        ref = (X @ U + b) @ A[:, t] + c[t]
        np.testing.assert_allclose(res.decision(X)[t][:, 0], ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_lbfgs_stops_at_a_stationary_point():
    data = mixed_tasks()
    data.y[37:] = np.sign(data.y[37:])
    loss = ["logistic", "multinomial", "poisson", "squared_hinge"]
    res = mtlx.fit_shared_trunk(data, loss=loss, hidden=(5,), activation="tanh", l2=0.01, tol=1e-8, max_iter=3000)
    assert res.converged
    net, obj, rows = objective_of(data, [get_loss(n) if n != "multinomial" else None for n in loss],
                                  [1, 3, 1, 1], "tanh", hidden=(5,), l2=0.01)
    _, g, _ = obj(res.params, rows)
    assert np.max(np.abs(g)) <= 1e-6


def test_nearly_unregularized_linear_trunk_is_least_squares():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 3))
    y = X @ [1.0, -2.0, 0.5] + 3 + 0.1 * rng.normal(size=80)
    m = mtlx.SharedTrunkRegressor(hidden=(3,), activation="identity", l2=1e-12, tol=1e-12, max_iter=5000).fit(X, y)
    np.testing.assert_allclose(m.predict(X), LinearRegression().fit(X, y).predict(X), atol=1e-5)


def test_uncertainty_weights_settle_at_the_log_of_each_task_loss():
    # At the optimum over s_t, exp(s_t) = L_t (the closed form of the weighting's inner problem).
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 3))
    Y = np.column_stack([X[:, 0] + 0.1 * rng.normal(size=200), X[:, 1] + 2.0 * rng.normal(size=200)])
    m = mtlx.SharedTrunkRegressor(hidden=(8,), activation="tanh", l2=1e-2, task_weighting="uncertainty", tol=1e-9,
                                  max_iter=5000).fit(X, Y)
    final = m.history_["task_loss"][-1]
    np.testing.assert_allclose(m.log_vars_, np.log(final), atol=1e-6)
    assert m.log_vars_[1] > m.log_vars_[0] + 2  # the noisy task weighs less


def test_uncertainty_warns_of_a_task_fitted_exactly():
    """Two rows of task 0 are fitted exactly: its loss goes to 0, s_0 towards -inf, and the
    weighting's objective has no minimum. The fit says so, naming the task; equal weights do not."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((202, 3))
    y = X @ [1.0, -1.0, 0.5] + 0.3 * rng.standard_normal(202)
    task = np.r_[7, 7, [3] * 200]
    kw = dict(hidden=(8,), max_iter=200, n_threads=1)
    with pytest.warns(UserWarning, match="task 7: its loss fell to") as caught:
        m = mtlx.SharedTrunkRegressor(task_weighting="uncertainty", **kw).fit(X, y, task=task)
    assert not any("task 3" in str(w.message) for w in caught)
    # Task 7 (tasks in sorted order: 3, 7): its loss ~0, its log-variance still falling.
    assert m.history_["task_loss"][-1][1] < 1e-6 and m.log_vars_[1] < -10
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        mtlx.SharedTrunkRegressor(task_weighting="equal", **kw).fit(X, y, task=task)


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_warm_start_continues_the_loss_curve(solver, tmp_path):
    """As scikit-learn's MLP: a warm-started fit appends to loss_curve_ and n_iter_ (it reset them),
    starting from the previous fit's weights (L-BFGS's first F is the previous fit's last)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = X @ [1.0, 2.0, 3.0]
    m = mtlx.SharedTrunkRegressor(hidden=(4,), solver=solver, max_iter=5, tol=0.0, warm_start=True, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        first = list(m.fit(X, y).loss_curve_)
        m.fit(X, y)
    assert m.n_iter_ == 10 and m.loss_curve_[: len(first)] == first
    assert len(m.loss_curve_) == len(first) + 5 and len(m.history_["objective"]) == len(first)
    if solver == "lbfgs":
        assert m.history_["objective"][0] == pytest.approx(first[-1], rel=1e-12)
    # A saved warm-started model loads with the whole curve.
    mtlx.save(m, tmp_path / "warm.npz")
    loaded = mtlx.load(tmp_path / "warm.npz")
    assert loaded.loss_curve_ == m.loss_curve_ and loaded.n_iter_ == 10


def test_huge_targets_fit_without_numpy_warnings():
    """Targets near 1e150: L-BFGS's cubic interpolation overflows (d1 * d1) and falls back to the
    midpoint, as designed; it leaked dozens of numpy RuntimeWarnings per fit. The weights stay
    finite and F never rises."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((80, 4))
    Y = X @ rng.standard_normal((4, 3)) * 1e150
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        m = mtlx.SharedTrunkRegressor(hidden=(5,), max_iter=10, tol=0.0, n_threads=1).fit(X, Y)
    assert np.all(np.isfinite(m.result_.params)) and m.loss_curve_[-1] <= m.loss_curve_[0]


def test_adam_batches_draw_every_task_in_proportion():
    from mtlx.trunk.adam import epoch_batches

    data = mtlx.TaskData.from_tasks([(np.zeros((m, 2)), np.zeros(m)) for m in (100, 40, 7)])
    rows = Rows.of(data)
    batch_rows, sizes = epoch_batches(rows, 10, seed=0, epoch=1, positions=[0, 1, 2])
    assert sizes.shape == (10, 3)
    assert np.all(sizes[:, 0] == 10) and np.all(sizes[:, 1] == 4) and set(sizes[:, 2]) <= {0, 1}
    assert sizes[:, 2].sum() == 7
    # Every row once per epoch, each batch's rows task by task within the task's range.
    assert np.array_equal(np.sort(batch_rows), np.arange(147))
    at = 0
    for b in range(10):
        for t, (lo, hi) in enumerate([(0, 100), (100, 140), (140, 147)]):
            chunk = batch_rows[at: at + sizes[b, t]]
            assert np.all((chunk >= lo) & (chunk < hi))
            at += sizes[b, t]


def _small_task_beside_a_large_one():
    """Task 0: 5 rows at one point, targets of mean 0 (its best half mean squared error is 0.4,
    whatever the weights); task 1: 400 rows of a noisy linear model. With batch_size 20 there are
    21 batches: task 0 is in 5 of them."""
    rng = np.random.default_rng(0)
    x0 = np.tile(rng.standard_normal(3), (5, 1))
    X1 = rng.standard_normal((400, 3))
    y1 = X1 @ [1.0, -1.0, 0.5] + rng.standard_normal(400)
    return np.vstack([x0, X1]), np.r_[[-1.0, 1.0, -1.0, 1.0, 0.0], y1], np.r_[[0] * 5, [1] * 400]


@pytest.mark.parametrize("weighting", ["equal", "uncertainty"])
def test_a_task_absent_from_a_batch_is_left_out_of_it(weighting):
    """A task of fewer rows than batches is not in every batch. Counted there as a loss of 0, its
    loss curve read a quarter of its loss, and the uncertainty weighting's exp(s_t) (which settles
    at L_t) followed it down, weighting the task 4x too heavily."""
    X, y, task = _small_task_beside_a_large_one()
    m = mtlx.SharedTrunkRegressor(hidden=(4,), activation="identity", task_weighting=weighting, solver="adam",
                                  batch_size=20, learning_rate=0.01, max_iter=400, tol=0.0, n_threads=1)
    m.fit(X, y, task=task)
    # Each task's loss at the final weights, by numpy from the predictions.
    pred = m.predict(X, task=task)
    loss = np.array([0.5 * np.mean((y[task == t] - pred[task == t]) ** 2) for t in (0, 1)])
    assert loss[0] >= 0.4 - 1e-12
    np.testing.assert_allclose(m.history_["task_loss"][-1], loss, rtol=0.1)
    if weighting == "uncertainty":
        np.testing.assert_allclose(np.exp(m.log_vars_), loss, rtol=0.15)


def test_early_stopping_holds_out_a_row_of_every_task_of_two_or_more():
    """Tasks of 5 rows at validation_fraction 0.1: rounded down, nothing was held out, the
    validation loss was the ridge term alone, and training stopped untrained after a few epochs."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 3))
    y = X @ [1.0, -1.0, 0.5] + 1
    task = np.repeat([0, 1], 5)
    kw = dict(hidden=(8,), solver="adam", learning_rate=0.01, max_iter=500, n_threads=1)
    m = mtlx.SharedTrunkRegressor(early_stopping=True, **kw).fit(X, y, task=task)
    from mtlx.trunk.fit import _validation_split

    data = mtlx.TaskData.from_stacked(X, y, task)
    train, validation = _validation_split(Rows.of(data), 0.1, 0, [0, 1])
    assert validation.X.shape[0] == 2 and train.X.shape[0] == 8
    # The validation loss is the held-out rows' (one per task), by numpy from the kept weights (the
    # best epoch's), up to the ridge term (l2 = 1e-4); it fell from where it started.
    val = m.history_["validation"]
    held_task = np.array([0, 1])
    pred = m.predict(validation.X, task=held_task)
    held_y = validation.targets[np.arange(2), validation.target_col]
    assert abs(val.min() - np.mean(0.5 * (held_y - pred) ** 2)) < 1e-3
    assert val.min() < 0.1 * val[0] and m.n_iter_ > 20
    with pytest.raises(ValueError, match="no task has two rows"):
        mtlx.SharedTrunkRegressor(early_stopping=True, **kw).fit(X[:2], y[:2], task=[0, 1])


def test_adam_decreases_the_full_objective_and_matches_lbfgs_roughly():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 4))
    Y = np.column_stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2], X[:, 3]]) + 0.05 * rng.normal(size=(600, 3))
    kw = dict(hidden=(16,), l2=1e-4)
    a = mtlx.SharedTrunkRegressor(solver="adam", learning_rate=0.01, max_iter=200, batch_size=50, **kw).fit(X, Y)
    b = mtlx.SharedTrunkRegressor(max_iter=500, **kw).fit(X, Y)
    assert a.loss_curve_[-1] < 0.2 * a.loss_curve_[0]
    assert a.score(X, Y) > 0.9 and b.score(X, Y) > a.score(X, Y) - 0.05


def test_early_stopping_keeps_the_best_validation_weights():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 4))
    y = X[:, 0] + 0.5 * rng.normal(size=300)
    m = mtlx.SharedTrunkRegressor(hidden=(32,), solver="adam", early_stopping=True, learning_rate=0.01,
                                  max_iter=300, l2=0.0).fit(X, y)
    val = m.history_["validation"]
    assert len(val) == m.n_iter_ and m.n_iter_ < 300
    # The kept weights are those of the best validation epoch (recompute it from them).
    assert np.argmin(val) < len(val) - 1


# ---------------------------------------------------------------------- layouts and estimators
def _same_problem():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(60, 4))
    Y = np.column_stack([np.tanh(X @ rng.normal(size=4)) + 0.1 * rng.normal(size=60) for _ in range(3)])
    return X, Y


def test_three_layouts_give_one_model():
    X, Y = _same_problem()
    kw = dict(hidden=(6,), activation="tanh", tol=0.0, max_iter=60)
    shared = mtlx.SharedTrunkRegressor(**kw).fit(X, Y)
    task = np.repeat(np.arange(3), 60)
    stacked = mtlx.SharedTrunkRegressor(**kw).fit(np.tile(X, (3, 1)), Y.T.ravel(), task=task)
    listed = mtlx.SharedTrunkRegressor(**kw).fit([(X, Y[:, t]) for t in range(3)])
    P = shared.predict(X)
    # (the shared layout runs all heads as one product, the others per task: rounding differs)
    np.testing.assert_allclose(stacked.predict(np.tile(X, (3, 1)), task=task), P.T.ravel(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.column_stack(listed.predict([X] * 3)), P, rtol=0, atol=1e-9)


def test_missing_labels_fit_as_dropped_rows():
    X, Y = _same_problem()
    Y[::4, 1] = np.nan
    kw = dict(hidden=(6,), tol=0.0, max_iter=40)
    a = mtlx.SharedTrunkRegressor(**kw).fit(X, Y)
    keep = ~np.isnan(Y[:, 1])
    b = mtlx.SharedTrunkRegressor(**kw).fit([(X, Y[:, 0]), (X[keep], Y[keep, 1]), (X, Y[:, 2])])
    np.testing.assert_allclose(np.column_stack(b.predict([X] * 3)), a.predict(X), rtol=1e-9, atol=1e-12)
    assert np.isfinite(a.score(X, Y))


def test_integer_sample_weights_equal_repeated_rows():
    X, Y = _same_problem()
    y, task = Y.T.ravel(), np.repeat(np.arange(3), 60)
    Xs = np.tile(X, (3, 1))
    w = np.random.default_rng(0).integers(0, 3, size=len(y))
    kw = dict(hidden=(5,), tol=0.0, max_iter=40)
    a = mtlx.SharedTrunkRegressor(**kw).fit(Xs, y, task=task, sample_weight=w)
    rep = np.repeat(np.arange(len(y)), w)
    b = mtlx.SharedTrunkRegressor(**kw).fit(Xs[rep], y[rep], task=task[rep])
    np.testing.assert_allclose(a.predict(Xs, task=task), b.predict(Xs, task=task), rtol=1e-9, atol=1e-12)


def test_predict_and_transform_match_a_numpy_forward_pass():
    X, Y = _same_problem()
    m = mtlx.SharedTrunkRegressor(hidden=(5, 4), task_hidden=(3,), max_iter=20, tol=0).fit(X, Y)
    trunk = list(zip(m.coefs_, m.intercepts_))
    H = numpy_forward(X, trunk, [], (np.eye(4), np.zeros(4)), "relu")
    np.testing.assert_allclose(m.transform(X), H, rtol=1e-12, atol=1e-14)
    for t in range(3):
        ref = numpy_forward(X, trunk, m.task_layers_[t], m.heads_[t], "relu")[:, 0]
        np.testing.assert_allclose(m.predict(X)[:, t], ref, rtol=1e-12, atol=1e-14)


def test_classifier_mixes_binary_and_multiclass_tasks():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(240, 3))
    y0 = np.where(X[:, 0] > 0, "yes", "no")
    y1 = np.digitize(X[:, 1] + X[:, 2], [-1.0, 0.0, 1.0])
    tasks = [(X[:120], y0[:120]), (X[120:], y1[120:])]
    clf = mtlx.SharedTrunkClassifier(hidden=(16,), max_iter=500).fit(tasks)
    assert [list(c) for c in clf.classes_] == [["no", "yes"], [0, 1, 2, 3]]
    proba = clf.predict_proba([X[:120], X[120:]])
    assert proba[0].shape == (120, 2) and proba[1].shape == (120, 4)
    for p in proba:
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert clf.score(tasks) > 0.9
    labels = clf.predict([X[:120], X[120:]])
    assert np.array_equal(labels[1], clf.classes_[1][np.argmax(proba[1], axis=1)])


def test_classifier_on_shared_labels_with_missing_entries():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(200, 3))
    Y = np.column_stack([(X[:, 0] > 0).astype(float), np.digitize(X[:, 1], [-0.5, 0.5]).astype(float)])
    Y[::5, 0] = np.nan
    clf = mtlx.SharedTrunkClassifier(hidden=(12,), max_iter=400).fit(X, Y)
    assert clf.score(X, Y) > 0.9
    assert len(clf.predict_proba(X)) == 2


def test_fits_are_deterministic_and_independent_of_threads():
    X, Y = _same_problem()
    kw = dict(hidden=(32, 16), tol=0.0, max_iter=30)
    a = mtlx.SharedTrunkRegressor(n_threads=1, **kw).fit(X, Y)
    b = mtlx.SharedTrunkRegressor(n_threads=1, **kw).fit(X, Y)
    c = mtlx.SharedTrunkRegressor(n_threads=2, **kw).fit(X, Y)
    assert np.array_equal(a.result_.params, b.result_.params)
    assert np.array_equal(a.result_.params, c.result_.params)
    d = mtlx.SharedTrunkRegressor(solver="adam", max_iter=3, n_threads=1, **{k: v for k, v in kw.items()
                                                                            if k != "max_iter"}).fit(X, Y)
    e = mtlx.SharedTrunkRegressor(solver="adam", max_iter=3, n_threads=2, **{k: v for k, v in kw.items()
                                                                            if k != "max_iter"}).fit(X, Y)
    assert np.array_equal(d.result_.params, e.result_.params)


def test_float32_fits_close_to_float64():
    X, Y = _same_problem()
    kw = dict(hidden=(6,), tol=0.0, max_iter=30)
    a = mtlx.SharedTrunkRegressor(**kw).fit(X, Y)
    b = mtlx.SharedTrunkRegressor(**kw).fit(X.astype(np.float32), Y.astype(np.float32))
    assert b.predict(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(b.predict(X.astype(np.float32)), a.predict(X), atol=1e-3)


def test_warm_start_continues_from_the_previous_weights():
    X, Y = _same_problem()
    m = mtlx.SharedTrunkRegressor(hidden=(6,), max_iter=20, tol=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X, Y)
        first = m.loss_curve_[-1]
        m.fit(X, Y)
    assert m.history_["objective"][0] == pytest.approx(first, rel=1e-12)  # (loss_curve_ goes on)


def test_mpi_comm_world_of_one_rank_equals_the_plain_fit():
    MPI = pytest.importorskip("mpi4py.MPI")
    X, Y = _same_problem()
    task = np.repeat(np.arange(3), 60)
    kw = dict(hidden=(6,), tol=0.0, max_iter=40)
    a = mtlx.SharedTrunkRegressor(**kw).fit(np.tile(X, (3, 1)), Y.T.ravel(), task=task)
    b = mtlx.SharedTrunkRegressor(comm=MPI.COMM_SELF, **kw).fit(np.tile(X, (3, 1)), Y.T.ravel(), task=task)
    assert np.array_equal(b.result_.params, a.result_.params)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("kw, match", [
    (dict(hidden=()), "at least one layer width"),
    (dict(hidden=(8, 0)), "positive integers"),
    (dict(task_hidden=(-1,)), "positive integers"),
    (dict(activation="sigmoid"), "activation must be one of"),
    (dict(solver="sgd"), "'solver' parameter"),
    (dict(task_weighting="gradnorm"), "'task_weighting' parameter"),
    (dict(hidden="64"), "got the string '64'"),
])
def test_bad_parameters_are_named(kw, match):
    X, Y = _same_problem()
    with pytest.raises((ValueError, TypeError), match=match):
        mtlx.SharedTrunkRegressor(**kw).fit(X, Y)


def test_a_head_loss_that_does_not_fit_the_labels_is_named():
    X, Y = _same_problem()
    with pytest.raises(ValueError, match="task 1.*poisson"):
        mtlx.SharedTrunkRegressor(loss="poisson").fit(X, np.column_stack([np.abs(Y[:, 0]), Y[:, 1]]))
    with pytest.raises(ValueError, match="task 0.*logistic"):
        mtlx.fit_shared_trunk(mtlx.TaskData.from_shared(X, (Y[:, :1] > 0).astype(float)), loss="logistic")
    with pytest.raises(ValueError, match="task 0 .*only one class"):
        mtlx.SharedTrunkClassifier().fit(X, np.zeros(60))


def test_multinomial_labels_must_be_class_indices():
    """The targets of a softmax head are read as class indices 0..K-1: a label of 1e9 asked for a
    head of 1e9 + 1 outputs (a 37 GiB allocation); labels {5, 7} made 8 classes, 6 never seen."""
    X, Y = _same_problem()
    labels = (Y[:, 0] > 0).astype(float)
    with pytest.raises(ValueError, match=r"task 0: .*the largest, 1000000000, asks for 1000000001 classes from 60"):
        mtlx.fit_shared_trunk(mtlx.TaskData.from_tasks([(X, 1e9 * labels)]), loss="multinomial", hidden=(3,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        with pytest.warns(UserWarning, match=r"task 0: classes \[0, 1, 2, 3, 4, 6\] of the multinomial head's 0..7"):
            res = mtlx.fit_shared_trunk(mtlx.TaskData.from_tasks([(X, 5 + 2 * labels)]), loss="multinomial",
                                        hidden=(3,), max_iter=2)
    assert res.network.out_dims.tolist() == [8]


def test_low_level_misuse_is_named():
    X, Y = _same_problem()
    data = mtlx.TaskData.from_shared(X, Y)
    with pytest.raises(TypeError, match="data must be a mtlx.TaskData .*got tuple"):
        mtlx.fit_shared_trunk((X, Y))
    with pytest.raises(TypeError, match="loss must be a loss name.*got None"):
        mtlx.fit_shared_trunk(data, loss=None)
    with pytest.raises(ValueError, match="X is an empty list"):
        mtlx.SharedTrunkRegressor().fit([])
    with pytest.raises(ValueError, match="task 5: y has only one class"):
        mtlx.SharedTrunkClassifier().fit(X, np.r_[np.ones(30), (Y[30:, 0] > 0)], task=np.repeat([5, 6], 30))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        res = mtlx.fit_shared_trunk(data, hidden=(3,), max_iter=3)
    # Integer rows are read as float64: the same outputs as the float rows.
    grid = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(res.decision(grid)[1], res.decision(grid.astype(float))[1])
    with pytest.raises(ValueError, match="n_threads"):
        res.decision(X, n_threads=0)
    with pytest.raises(ValueError, match="X has 3 features, the network was fitted on 4"):
        res.representation(X[:, :3])


def test_a_batch_larger_than_the_data_is_clipped_with_a_warning():
    X, Y = _same_problem()
    with pytest.warns(UserWarning, match="batch_size=1000 is larger than the 60 rows"):
        mtlx.SharedTrunkRegressor(solver="adam", batch_size=1000, max_iter=2, tol=0).fit(X, Y)


def test_nan_during_training_stops_and_keeps_finite_weights():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(50, 3)) * 30
    y = rng.poisson(50, size=50).astype(float)
    # A linear trunk and a huge step: the Poisson head's exp(z) overflows within two epochs.
    m = mtlx.SharedTrunkRegressor(loss="poisson", solver="adam", activation="identity", learning_rate=100.0,
                                  max_iter=50, hidden=(8,))
    with pytest.warns(mtlx.ConvergenceWarning, match=r"non-finite in epoch 2"):
        m.fit(X, y)
    assert np.all(np.isfinite(m.result_.params)) and m.n_iter_ < 50


def test_nan_in_the_first_epoch_leaves_an_empty_history():
    """A failure before the first epoch ends keeps the weights of its last finite step (step 1
    here) and an empty history of the right shape (it raised a reshape error before)."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(50, 3)) * 30
    y = rng.poisson(50, size=50).astype(float)
    m = mtlx.SharedTrunkRegressor(loss="poisson", solver="adam", activation="identity", learning_rate=100.0,
                                  max_iter=50, hidden=(8,), batch_size=5)
    with pytest.warns(mtlx.ConvergenceWarning, match=r"non-finite in epoch 1 \(batch 2 of 10, step 2\)"):
        m.fit(X, y)
    assert m.n_iter_ == 0
    assert m.history_["objective"].shape == (0,) and m.history_["task_loss"].shape == (0, 1)
    assert np.all(np.isfinite(m.result_.params))


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_targets_beyond_the_dtype_are_refused_before_training(solver):
    """Squared targets past float64's range: F is infinite at the starting weights, a ValueError
    naming the targets' size (not a warning after zero steps, nor a FloatingPointError)."""
    X, Y = _same_problem()
    with pytest.raises(ValueError, match=r"not finite at the starting weights: .*targets up to \d\.\d+e\+200"):
        mtlx.SharedTrunkRegressor(solver=solver, hidden=(4,), max_iter=3).fit(X, Y * 1e200)
    # One unit short of it trains.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        m = mtlx.SharedTrunkRegressor(solver=solver, hidden=(4,), max_iter=3).fit(X, Y * 1e100)
    assert np.all(np.isfinite(m.predict(X)))


def test_sparse_input_is_refused_with_a_hint():
    sp = pytest.importorskip("scipy.sparse")
    X, Y = _same_problem()
    with pytest.raises(TypeError, match="dense X"):
        mtlx.fit_shared_trunk(mtlx.TaskData.from_shared(sp.csr_matrix(X), Y))


# ---------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("solver, weighting", [("lbfgs", "equal"), ("lbfgs", "uncertainty"), ("adam", "equal")])
def test_resume_from_a_checkpoint_ends_like_an_uninterrupted_run(tmp_path, solver, weighting):
    data = mixed_tasks()
    data.y[37:] = np.sign(data.y[37:])
    kw = dict(loss=["logistic", "multinomial", "poisson", "squared_hinge"], hidden=(5,), activation="tanh",
              solver=solver, task_weighting=weighting, tol=0.0, batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = mtlx.fit_shared_trunk(data, max_iter=24, **kw)
        mtlx.fit_shared_trunk(data, max_iter=10, checkpoint=tmp_path, checkpoint_every=4, **kw)  # "killed" at 10
        resumed = mtlx.fit_shared_trunk(data, max_iter=24, checkpoint=tmp_path, resume=True, **kw)
    assert np.array_equal(resumed.params, full.params)
    assert resumed.n_iter == 24 and len(resumed.history["objective"]) == len(full.history["objective"])
    np.testing.assert_array_equal(resumed.history["task_loss"], full.history["task_loss"])
    if weighting == "uncertainty":
        assert np.array_equal(resumed.log_vars, full.log_vars)


def test_a_checkpoint_of_another_fit_is_refused(tmp_path):
    data = mixed_tasks()
    data.y[37:] = np.sign(data.y[37:])
    kw = dict(loss=["logistic", "multinomial", "poisson", "squared_hinge"], hidden=(5,), tol=0.0, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mtlx.fit_shared_trunk(data, checkpoint=tmp_path, **kw)
        with pytest.raises(ValueError, match="different fit: its settings"):
            mtlx.fit_shared_trunk(data, checkpoint=tmp_path, resume=True, **dict(kw, hidden=(6,)))
        with pytest.raises(ValueError, match="resume=True needs a checkpoint folder"):
            mtlx.fit_shared_trunk(data, resume=True, **kw)


def test_order_free_sums_are_exact_and_carry_non_finite_values():
    from fractions import Fraction

    from mtlx._exact_sum import exact_row_sum

    rng = np.random.default_rng(12)
    rows = rng.standard_normal((40, 6)) * np.exp(rng.uniform(-30, 30, (40, 6)))
    rows[::7, 2] = 0.0
    red = LocalReduction(np.arange(40))
    total = exact_row_sum(rows, red)
    assert np.array_equal(total, exact_row_sum(rows[::-1].copy(), red))  # any order, the same bits
    exact = [float(sum(Fraction(x) for x in rows[:, j])) for j in range(6)]
    np.testing.assert_allclose(total, exact, rtol=4 * np.finfo(float).eps, atol=0)
    rows[3, 1], rows[5, 4] = np.nan, np.inf
    total = exact_row_sum(rows, red)
    assert np.isnan(total[1]) and np.isnan(total[4]) and np.all(np.isfinite(np.delete(total, [1, 4])))
    assert np.array_equal(exact_row_sum(np.zeros((3, 2)), red), np.zeros(2))


def test_order_free_sums_of_extreme_magnitudes_and_float32_rows():
    from fractions import Fraction

    from mtlx._exact_sum import exact_row_sum

    rng = np.random.default_rng(13)
    # Columns of tiny values (the largest below 2^-983: the scalar path), of subnormals, of huge
    # values, and one mixing 1e300 with 1e-300 (whose small terms fall below the limbs).
    scales = np.array([1e-300, 1e-310, 1e300, 1.0, 2.0 ** -983])
    rows = rng.standard_normal((5000, 5)) * scales  # (more rows than one block of double sums)
    rows[::3, 3] *= 1e-300
    red = LocalReduction(np.arange(len(rows)))
    total = exact_row_sum(rows, red)
    assert np.array_equal(total, exact_row_sum(rows[::-1].copy(), red))
    exact = np.array([float(sum(Fraction(x) for x in rows[:, j])) for j in range(5)])
    np.testing.assert_allclose(total, exact, rtol=4 * np.finfo(float).eps, atol=0)
    # float32 rows are read as they are: the bits of the same values in float64.
    rows32 = (rng.standard_normal((300, 7)) * np.exp(rng.uniform(-20, 20, (300, 7)))).astype(np.float32)
    red32 = LocalReduction(np.arange(300))
    assert np.array_equal(exact_row_sum(rows32, red32), exact_row_sum(rows32.astype(np.float64), red32))
    exact32 = [float(sum(Fraction(float(x)) for x in rows32[:, j])) for j in range(7)]
    np.testing.assert_allclose(exact_row_sum(rows32, red32), exact32, rtol=4 * np.finfo(float).eps, atol=0)


def test_one_adam_step_is_the_bias_corrected_update_of_the_full_gradient():
    # One epoch of one batch: m_hat = g and v_hat = g^2 after the bias correction, so the step is
    # lr g / (|g| + eps) (Kingma & Ba), g the full-batch gradient at the initial weights.
    data = mixed_tasks()
    data.y[37:] = np.sign(data.y[37:])
    names = ["logistic", "multinomial", "poisson", "squared_hinge"]
    lr, l2 = 0.01, 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mtlx.fit_shared_trunk(data, loss=names, hidden=(5,), activation="tanh", solver="adam", l2=l2,
                                    max_iter=1, tol=0.0, batch_size=len(data.y), learning_rate=lr)
    net, obj, rows = objective_of(data, [get_loss(n) if n != "multinomial" else None for n in names], [1, 3, 1, 1],
                                  "tanh", hidden=(5,), l2=l2)
    theta0 = net.initial_params(0, range(4), np.float64)
    _, g, _ = obj(theta0, rows)
    np.testing.assert_allclose(res.params, theta0 - lr * g / (np.abs(g) + 1e-8), rtol=0, atol=1e-12)


def test_warm_start_starts_afresh_when_a_task_gains_a_class():
    rng = np.random.default_rng(13)
    X = rng.normal(size=(90, 3))
    y2 = (X[:, 0] > 0).astype(int)
    y3 = np.digitize(X[:, 0], [-0.5, 0.5])
    clf = mtlx.SharedTrunkClassifier(hidden=(6,), max_iter=5, tol=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y2)
        clf.fit(X, y3)  # the head now needs 3 outputs: no warm start, no error
        fresh = mtlx.SharedTrunkClassifier(hidden=(6,), max_iter=5, tol=0).fit(X, y3)
    assert np.array_equal(clf.result_.params, fresh.result_.params)
    assert clf.predict_proba(X[:3]).shape == (3, 3)


def test_the_representation_has_feature_names_out():
    """A transformer's names for its output columns (set_output(transform="pandas") and a Pipeline's
    get_feature_names_out raised AttributeError), checked against the transform itself."""
    pd = pytest.importorskip("pandas")
    X, Y = _same_problem()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        model = mtlx.SharedTrunkRegressor(hidden=(6, 3), max_iter=5).fit(frame, Y)
        names = model.get_feature_names_out()
        assert names.tolist() == ["sharedtrunkregressor0", "sharedtrunkregressor1", "sharedtrunkregressor2"]
        out = model.set_output(transform="pandas").transform(frame)
        assert list(out.columns) == names.tolist()
        np.testing.assert_array_equal(out.to_numpy(), model.set_output(transform="default").transform(X))
        clf = mtlx.SharedTrunkClassifier(hidden=(4,), max_iter=5).fit(X, Y > 0)
        assert clf.get_feature_names_out().tolist() == [f"sharedtrunkclassifier{i}" for i in range(4)]


def test_classifier_log_proba_and_decision_function_follow_the_heads():
    """predict_log_proba and decision_function (scikit-learn's classifier methods) from the heads'
    outputs recomputed in numpy: margins for binary tasks, log-softmax for K classes, in every layout."""
    rng = np.random.default_rng(31)
    X = rng.normal(size=(150, 3))
    y_bin = np.where(X[:, 0] + 0.3 * rng.normal(size=150) > 0, "b", "a")
    y_three = np.digitize(X[:, 1], [-0.5, 0.5])
    binary = mtlx.SharedTrunkClassifier(hidden=(8,), max_iter=200).fit(X, np.column_stack([y_bin, y_bin[::-1]]))
    trunk = [(binary.coefs_[0], binary.intercepts_[0])]
    margins = np.column_stack([numpy_forward(X, trunk, binary.task_layers_[t], binary.heads_[t], "relu")[:, 0]
                               for t in range(2)])
    np.testing.assert_allclose(binary.decision_function(X), margins, rtol=1e-10, atol=1e-12)
    assert np.array_equal(binary.predict(X), np.where(margins > 0, "b", "a"))
    log_p = binary.predict_log_proba(X)
    for t in range(2):
        expected = np.column_stack([-np.logaddexp(0, margins[:, t]), -np.logaddexp(0, -margins[:, t])])
        np.testing.assert_allclose(log_p[t], expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.exp(log_p[t]), binary.predict_proba(X)[t], rtol=1e-10, atol=1e-15)
    # Stacked rows: one array, each row from its own task's head.
    task = np.array([0, 1] * 75)
    np.testing.assert_allclose(binary.decision_function(X, task=task), margins[np.arange(150), task], rtol=1e-10)
    # A margin of 800 has a log-probability of -800, not log(0).
    far = binary.predict_log_proba(X * 1e4)
    assert all(np.isfinite(p).all() for p in far)

    mixed = mtlx.SharedTrunkClassifier(hidden=(8,), max_iter=200).fit([(X[:80], y_bin[:80]), (X[80:], y_three[80:])])
    scores = mixed.decision_function([X[:5], X[5:9]])
    assert scores[0].shape == (5, 1) and scores[1].shape == (4, 3)
    trunk = [(mixed.coefs_[0], mixed.intercepts_[0])]
    S = numpy_forward(X[5:9], trunk, mixed.task_layers_[1], mixed.heads_[1], "relu")
    np.testing.assert_allclose(scores[1], S, rtol=1e-10, atol=1e-12)
    expected = S - S.max(axis=1, keepdims=True)
    expected -= np.log(np.exp(expected).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(mixed.predict_log_proba([X[:5], X[5:9]])[1], expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="decision_function of stacked rows needs every task"):
        mixed.decision_function(X[:4], task=np.array([0, 1, 0, 1]))


def test_fit_warnings_point_at_the_callers_line():
    """scikit-learn's convention: a ConvergenceWarning of fit names the user's line, not mtlx's."""
    X, Y = _same_problem()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mtlx.SharedTrunkClassifier(hidden=(4,), max_iter=2).fit(X, Y > np.median(Y, axis=0))
        mtlx.SharedTrunkRegressor(hidden=(4,), max_iter=2, solver="adam", batch_size=10**6).fit(X, Y)
    found = {(w.category.__name__, w.filename) for w in caught}
    assert found == {("ConvergenceWarning", __file__), ("UserWarning", __file__)}
