"""The device backend against the host: one test body per problem, run on every backend of
tests/gpu/device_backends.py (the host emulation always; CUDA where a device is visible).

The kernels' arithmetic is the CPU functors' (cpp/include/mtlx/losses.hpp); what these tests pin
down is everything around it: device data, chunk plans, buffers, the solve and its results.
"""

import numpy as np
import pytest

import mtlx
from mtlx.gpu.smooth import DeviceSmoothLoss, chunk_plan
from mtlx.objective import SmoothLoss

from conftest import chain_incidence
from device_backends import BACKENDS, on_device, to_host

RTOL = {np.float64: 1e-12, np.float32: 1e-5}


def _problem(rng, layout, dtype, weighted=False, missing=False):
    """(layout, args, kwargs) of a small problem with ragged tasks (stacked) or missing labels (shared)."""
    d = 7
    if layout == "tasks":
        sizes = [3, 12, 1, 9]
        tasks = [(rng.standard_normal((m, d)).astype(dtype), rng.standard_normal(m).astype(dtype)) for m in sizes]
        kwargs = {"sample_weight": [rng.uniform(0, 2, m).astype(dtype) if t != 2 else None
                                    for t, m in enumerate(sizes)]} if weighted else {}
        return (tasks,), kwargs
    if layout == "stacked":
        n = 31
        X = rng.standard_normal((n, d)).astype(dtype)
        task = rng.integers(0, 3, n)  # rows not grouped by task: the constructor gathers them
        kwargs = {"sample_weight": rng.uniform(0, 2, n).astype(dtype)} if weighted else {}
        return (X, rng.standard_normal(n).astype(dtype), task), kwargs
    n, T = 23, 4
    X = rng.standard_normal((n, d)).astype(dtype)
    Y = rng.standard_normal((n, T)).astype(dtype)
    if missing:
        Y[rng.uniform(size=Y.shape) < 0.2] = np.nan
    kwargs = {"sample_weight": rng.uniform(0, 2, n).astype(dtype)} if weighted else {}
    return (X, Y), kwargs


CASES = [("tasks", False, False), ("tasks", True, False), ("stacked", False, False), ("stacked", True, False),
         ("shared", False, False), ("shared", True, True)]


def test_chunk_plan_cuts_every_task_into_chunks_in_order():
    offsets = np.array([0, 3, 3, 15, 16, 25])
    begin, task, task_chunks = chunk_plan(offsets, 5)
    expected = [(0, 3, 0), (3, 8, 2), (8, 13, 2), (13, 15, 2), (15, 16, 3), (16, 21, 4), (21, 25, 4)]
    assert [(int(begin[k]), int(begin[k + 1]), int(task[k])) for k in range(len(task))] == expected
    assert task_chunks.tolist() == [0, 1, 1, 4, 5, 7]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout,weighted,missing", CASES)
def test_loss_and_gradient_equal_the_host(backend, layout, weighted, missing, dtype, rng):
    args, kwargs = _problem(rng, layout, dtype, weighted, missing)
    host = getattr(mtlx.TaskData, f"from_{layout}")(*args, **kwargs)
    device = on_device(backend, layout, *args, **kwargs)
    T, d = host.n_tasks, host.n_features
    # Every loss, mixed per task (labels +-1 for the classification ones, counts for Poisson).
    losses = ["squared", "logistic", mtlx.losses.Huber(0.7), "squared_hinge", "poisson"][:T]
    targets = host.Y if host.layout == "shared" else host.y
    for t, loss in enumerate(losses):
        rows = (slice(None), t) if host.layout == "shared" else slice(host.offsets[t], host.offsets[t + 1])
        if loss in ("logistic", "squared_hinge"):
            targets[rows] = np.where(targets[rows] > 0, 1.0, -1.0)
        elif loss == "poisson":
            targets[rows] = np.floor(np.abs(targets[rows]) * 3)
    device_targets = device.Y if device.layout == "shared" else device.y
    device_targets[...] = targets
    device.device_targets = device.backend.asarray(targets, dtype=device.dtype)
    Wt = (0.3 * rng.standard_normal((T, d))).astype(dtype)
    b = (0.1 * rng.standard_normal(T)).astype(dtype)
    f_host, f_device = SmoothLoss(host, losses), DeviceSmoothLoss(device, losses)
    g_host, g_device = np.empty_like(Wt), np.full_like(Wt, np.nan)
    gb_host, gb_device = np.empty_like(b), np.full_like(b, np.nan)
    value_host = f_host(Wt, b, g_host, gb_host)
    value_device = f_device(Wt, b, g_device, gb_device)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(value_device, value_host, rtol=rtol)
    scale = np.abs(g_host).max()
    np.testing.assert_allclose(g_device, g_host, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(gb_device, gb_host, rtol=rtol, atol=rtol * np.abs(gb_host).max())
    # the value-only pass (line searches) and no intercepts
    np.testing.assert_allclose(f_device(Wt, None), f_host(Wt, None), rtol=rtol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout,weighted,missing", CASES)
@pytest.mark.parametrize("penalty", ["l21", "trace", "L1(0.5) + L21(1)"])
def test_solve_equals_the_host_solve(backend, layout, weighted, missing, penalty, rng):
    args, kwargs = _problem(rng, layout, np.float64, weighted, missing)
    host = getattr(mtlx.TaskData, f"from_{layout}")(*args, **kwargs)
    device = on_device(backend, layout, *args, **kwargs)
    options = dict(penalty=penalty, alpha=0.05, fit_intercept=True, tol=1e-10, max_iter=20000)
    ref = mtlx.solve(host, solver="fista", **options)
    res = mtlx.solve(device, **options)
    assert res.solver == "fista" and res.converged
    if backend == "host-emulation":  # the iterate stayed on the device: no parameter went up or down
        assert device.backend.transfers == 0
    W, b = to_host(res.W), to_host(res.b)
    assert type(res.W) is type(device.X)  # device input, device output
    np.testing.assert_allclose(W, ref.W, rtol=1e-8, atol=1e-8 * np.abs(ref.W).max())
    np.testing.assert_allclose(b, ref.b, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_solve_equals_the_host_solve(backend, rng):
    args, kwargs = _problem(rng, "tasks", np.float32, weighted=True)
    host = mtlx.TaskData.from_tasks(*args, **kwargs)
    device = on_device(backend, "tasks", *args, **kwargs)
    options = dict(penalty="l21", alpha=0.05, fit_intercept=True, tol=1e-6, loss="huber")
    ref, res = mtlx.solve(host, solver="fista", **options), mtlx.solve(device, **options)
    assert to_host(res.W).dtype == np.float32
    # float32 losses carry rounding of 1e-7 relative: the two runs' iterates part there, and each
    # stops within its tol of the optimum. The objectives agree to 1e-5, the coefficients to the
    # precision a float32 solve at tol 1e-6 resolves.
    np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-5)
    np.testing.assert_allclose(to_host(res.W), ref.W, atol=1e-3 * np.abs(ref.W).max())


@pytest.mark.parametrize("backend", BACKENDS)
def test_device_data_statistics_equal_the_host(backend, rng):
    args, kwargs = _problem(rng, "stacked", np.float64, weighted=True)
    host = mtlx.TaskData.from_stacked(*args, **kwargs)
    device = on_device(backend, "stacked", *args, **kwargs)
    np.testing.assert_array_equal(device.offsets, host.offsets)
    np.testing.assert_array_equal(to_host(device.X), host.X)
    np.testing.assert_allclose(device.feature_means(), host.feature_means(), rtol=1e-13)
    for centered in (False, True):
        np.testing.assert_allclose(device.column_sq_norms(centered), host.column_sq_norms(centered), rtol=1e-12)
    np.testing.assert_allclose(device.weight_totals, host.weight_totals)


@pytest.mark.parametrize("backend", BACKENDS)
def test_device_solves_refuse_what_runs_on_the_host_only(backend, rng):
    args, kwargs = _problem(rng, "shared", np.float64)
    device = on_device(backend, "shared", *args, **kwargs)
    with pytest.raises(ValueError, match="solver='cd' needs data on the host"):
        mtlx.solve(device, penalty="l21", solver="cd")
    with pytest.raises(ValueError, match="the Gram form runs on the host"):
        mtlx.solve(device, penalty="l21", gram=True)
    with pytest.raises(ValueError, match="device='cpu'"):
        mtlx.solve(device, penalty="l21", device="cpu")
    with pytest.raises(NotImplementedError, match="cross-validation"):
        device.take_rows(np.arange(3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_path_and_loss_grad_on_device_data_equal_the_host(backend, rng):
    args, kwargs = _problem(rng, "shared", np.float64)
    host = mtlx.TaskData.from_shared(*args, **kwargs)
    device = on_device(backend, "shared", *args, **kwargs)
    W = rng.standard_normal((host.n_features, host.n_tasks))
    value, gW, gb = mtlx.loss_grad(device, W, np.zeros(host.n_tasks))
    ref_value, ref_gW, ref_gb = mtlx.loss_grad(host, W, np.zeros(host.n_tasks))
    assert value == pytest.approx(ref_value, rel=1e-12)
    np.testing.assert_allclose(to_host(gW), ref_gW, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(to_host(gb), ref_gb, rtol=1e-12, atol=1e-14)
    options = dict(alphas=6, eps=0.05, tol=1e-10, fit_intercept=True)
    ref = mtlx.path(host, "l21", working_set=False, **options)
    res = mtlx.path(device, "l21", **options)
    np.testing.assert_allclose(to_host(res.coefs), ref.coefs, atol=1e-7 * np.abs(ref.coefs).max())
    np.testing.assert_allclose(res.objectives, ref.objectives, rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("penalty", ["trace", "superpose_l1_trace", "superpose_l21_l1", "mean"])
def test_more_tasks_than_features_and_decompositions_equal_the_host(backend, penalty, rng):
    # d <= T: the trace norm's prox takes the feature side (the school data's shape: d = 28, T = 139).
    P = mtlx.penalties
    pen = {"superpose_l1_trace": P.Superpose(P.L1(1.0), P.Trace(2.0)),
           "superpose_l21_l1": P.Superpose(P.L21(1.0), P.L1(1.0))}.get(penalty, penalty)
    X = rng.standard_normal((60, 3))
    Y = X @ rng.standard_normal((3, 9)) + 0.3 * rng.standard_normal((60, 9))
    host = mtlx.TaskData.from_shared(X, Y)
    device = on_device(backend, "shared", X, Y)
    options = dict(penalty=pen, alpha=0.05, fit_intercept=True, tol=1e-10, max_iter=50000)
    ref = mtlx.solve(host, solver="fista", **options)
    res = mtlx.solve(device, **options)
    assert res.converged and ref.converged
    np.testing.assert_allclose(to_host(res.W), ref.W, atol=1e-7 * np.abs(ref.W).max())
    for part, ref_part in zip(res.components, ref.components):
        np.testing.assert_allclose(to_host(part), ref_part, atol=1e-6 * np.abs(ref.W).max())
    np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-10)


def _every_penalty(T):
    """One of each penalty of mtlx beside the native ones, alone and in the compositions the
    literature uses (name -> penalty)."""
    P = mtlx.penalties
    chain = chain_incidence(T)
    return {
        "ridge": P.Ridge(1.0), "l21_columns": P.L21Columns(1.0), "linf1": P.LInf1(1.0),
        "graph": P.Graph(chain, 2.0), "clustered": P.Clustered(2, 0.5, 3.0),
        "regularized (shared + ridge)": P.Superpose(P.Shared(1.0), P.Ridge(2.0)),
        "shared + l1": P.Superpose(P.Shared(0.5), P.L1(1.0)),
        "dirty (l1 + linf1)": P.Superpose(P.L1(1.0), P.LInf1(1.0)),
        "robust (trace + l21_columns)": P.Superpose(P.Trace(1.0), P.L21Columns(0.7)),
        "srmtl (graph + l1)": P.Graph(chain, 1.0) + P.L1(1.0),
        "clustered + l1": P.Clustered(2, 0.5, 1.0) + P.L1(0.5),
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["tasks", "shared"])
@pytest.mark.parametrize("name", list(_every_penalty(4)))
def test_every_penalty_solves_on_the_device_as_on_the_host(backend, layout, name, rng):
    """The penalties written once in numpy run on device arrays through numpy's dispatch to the
    arrays' library (the emulation refuses any host array made beside them, as CuPy does)."""
    args, kwargs = _problem(rng, layout, np.float64)
    host = getattr(mtlx.TaskData, f"from_{layout}")(*args, **kwargs)
    device = on_device(backend, layout, *args, **kwargs)
    pen = _every_penalty(host.n_tasks)[name]
    options = dict(penalty=pen, alpha=0.05, fit_intercept=True, tol=1e-10, max_iter=50000)
    ref = mtlx.solve(host, solver="fista", **options)
    res = mtlx.solve(device, **options)
    assert res.solver == "fista" and res.converged and ref.converged
    if backend == "host-emulation":
        assert device.backend.transfers == 0
    scale = np.abs(ref.W).max()
    np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-10)
    # At tol=1e-10 a solve's coefficients are within about 7e-8 of the optimum, relative to the
    # largest (under "shared + l1": host 5.6e-8, device 6.7e-8 against a tol=1e-15 solve, whose
    # objective they match to 1e-16), and two solves that round differently (numpy on the device
    # arrays, the core on the host; the sanitizers' build rounds as neither) stop on different
    # sides: 1.2e-7 apart in that build.
    np.testing.assert_allclose(to_host(res.W), ref.W, atol=1e-6 * scale)
    np.testing.assert_allclose(to_host(res.b), ref.b, atol=1e-6 * max(scale, 1.0))
    for part, ref_part in zip(res.components, ref.components):
        np.testing.assert_allclose(to_host(part), ref_part, atol=1e-6 * scale)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_penalty_that_does_not_say_it_runs_on_a_device_is_refused(backend, rng):
    class HostOnlyL1(mtlx.penalties.L1):
        runs_on_device = False

    args, kwargs = _problem(rng, "shared", np.float64)
    device = on_device(backend, "shared", *args, **kwargs)
    with pytest.raises(ValueError, match=r"the penalty HostOnlyL1\(1\.0\) does not run on a GPU \(every penalty"):
        mtlx.solve(device, penalty=HostOnlyL1(), alpha=0.05)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["tasks", "shared"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_multinomial_tasks_beside_others_equal_the_host(backend, layout, weighted, sparse, rng):
    """A 3-class task (three columns of W) beside a squared and a logistic one: loss and gradient,
    host parameters through ``loss_grad`` included, then a solve, as on the host (X dense, or CSR
    moved with the data)."""
    import scipy.sparse as sp

    n, d, K = 40, 5, 3
    X = rng.standard_normal((n, d))
    onehot = np.eye(K)[np.argmax(X @ rng.standard_normal((d, K)) + rng.gumbel(size=(n, K)), axis=1)]
    Y = np.column_stack([X @ rng.standard_normal(d), np.where(X[:, 0] > 0, 1.0, -1.0), onehot])
    multinomial = mtlx.losses.Multinomial()
    losses = ["squared", "logistic"] + [multinomial] * K
    w = rng.uniform(0.5, 2.0, n) if weighted else None
    if layout == "shared":
        args, kwargs = (X, Y), {"sample_weight": w}
    else:
        args, kwargs = ([(X, Y[:, t]) for t in range(Y.shape[1])],), {
            "sample_weight": None if w is None else [w] * Y.shape[1]}
    if sparse:
        X[np.abs(X) < 0.5] = 0.0
        Xs = sp.csr_matrix(X)
        args = (Xs, Y) if layout == "shared" else ([(Xs, Y[:, t]) for t in range(Y.shape[1])],)
    host = getattr(mtlx.TaskData, f"from_{layout}")(*args, **kwargs)
    device = _moved(backend, host) if sparse else on_device(backend, layout, *args, **kwargs)
    W, b = 0.3 * rng.standard_normal((d, Y.shape[1])), 0.1 * rng.standard_normal(Y.shape[1])
    value, gW, gb = mtlx.loss_grad(device, W, b, loss=losses)
    ref_value, ref_gW, ref_gb = mtlx.loss_grad(host, W, b, loss=losses)
    assert value == pytest.approx(ref_value, rel=1e-12)
    np.testing.assert_allclose(to_host(gW), ref_gW, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(to_host(gb), ref_gb, rtol=1e-12, atol=1e-14)
    options = dict(loss=losses, penalty="l21", alpha=0.02, fit_intercept=True, tol=1e-10, max_iter=50000)
    ref = mtlx.solve(host, solver="fista", **options)
    moved = getattr(device.backend, "transfers", 0)  # (loss_grad's parameters went up and came back)
    res = mtlx.solve(device, **options)
    assert res.converged and ref.converged
    if backend == "host-emulation":
        assert device.backend.transfers == moved
    np.testing.assert_allclose(to_host(res.W), ref.W, atol=1e-7 * np.abs(ref.W).max())
    np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-10)


def _moved(backend, host):
    """Host ``data`` on the backend's device, as ``device="cuda"`` moves it."""
    from mtlx.gpu.data import to_device

    from device_backends import HostEmulation

    if backend == "host-emulation":
        return to_device(host, HostEmulation())
    from mtlx.gpu.backend import CudaBackend

    return to_device(host, CudaBackend(0))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["shared", "stacked"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_sparse_x_solves_on_the_device_as_on_the_host(backend, layout, weighted, dtype, rng):
    """CSR X moved once (the one-off statistics on the host's copy): shared, cuSPARSE's products
    around the residual kernel; stacked, the CSR kernel (margins by warps, the gradient walking X'
    per feature). Loss and gradient with mixed losses, then a solve with intercepts, as on the host."""
    import scipy.sparse as sp

    n, d, T = 70, 9, 4
    X = sp.random(n, d, density=0.3, format="csr", random_state=1, dtype=dtype)
    X[5] = 0.0  # a row without entries
    X.eliminate_zeros()
    w = rng.uniform(0.5, 2.0, n).astype(dtype) if weighted else None
    losses = ["squared", "logistic", mtlx.losses.Huber(0.7), "poisson"]
    if layout == "shared":
        Y = (X @ rng.standard_normal((d, T)) + 0.1 * rng.standard_normal((n, T))).astype(dtype)
        Y[rng.uniform(size=Y.shape) < 0.2] = np.nan  # missing labels
        Y[:, 1] = np.where(np.isnan(Y[:, 1]), np.nan, np.where(Y[:, 1] > 0, 1.0, -1.0))
        Y[:, 3] = np.where(np.isnan(Y[:, 3]), np.nan, np.floor(np.abs(Y[:, 3]) * 3))
        host = mtlx.TaskData.from_shared(X, Y, sample_weight=w)
    else:
        task = rng.integers(0, T, n)  # rows not grouped by task: the constructor gathers them
        y = (np.asarray(X @ rng.standard_normal(d)) + 0.1 * rng.standard_normal(n)).astype(dtype)
        y = np.where(task == 1, np.where(y > 0, 1.0, -1.0), np.where(task == 3, np.floor(np.abs(y) * 3), y))
        host = mtlx.TaskData.from_stacked(X, y.astype(dtype), task, sample_weight=w)
    device = _moved(backend, host)
    assert device.sparse and device.device_X is not None
    W, b = 0.3 * rng.standard_normal((d, T)), 0.1 * rng.standard_normal(T)
    rtol = RTOL[dtype]
    value, gW, gb = mtlx.loss_grad(device, W, b, loss=losses)
    ref_value, ref_gW, ref_gb = mtlx.loss_grad(host, W, b, loss=losses)
    assert value == pytest.approx(ref_value, rel=rtol)
    np.testing.assert_allclose(to_host(gW), ref_gW, rtol=rtol, atol=rtol * np.abs(ref_gW).max())
    np.testing.assert_allclose(to_host(gb), ref_gb, rtol=rtol, atol=rtol * np.abs(ref_gb).max())
    options = dict(loss=losses, penalty="l21", alpha=0.02, fit_intercept=True,
                   tol=1e-10 if dtype == np.float64 else 1e-6, max_iter=50000)
    ref = mtlx.solve(host, solver="fista", **options)
    before = getattr(device.backend, "sparse_products" if layout == "shared" else "csr_passes", 0)
    res = mtlx.solve(device, **options)
    assert res.converged and ref.converged
    if backend == "host-emulation":  # the products or the CSR kernel ran on the device's CSR copy
        passes = device.backend.sparse_products if layout == "shared" else device.backend.csr_passes
        assert passes >= res.n_iter + before
    if backend == "host-emulation":  # the iterate stayed on the device (4: loss_grad's parameters)
        assert device.backend.transfers == 4
    np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-10 if dtype == np.float64 else 1e-5)
    if dtype == np.float64:
        np.testing.assert_allclose(to_host(res.W), ref.W, atol=1e-7 * np.abs(ref.W).max())


def test_a_cupy_sparse_input_is_refused_with_what_to_pass_instead(rng):
    fake = type("csr_matrix", (), {"__module__": "cupyx.scipy.sparse._csr"})()
    with pytest.raises(TypeError, match=r"a CuPy sparse matrix \(csr_matrix\) is not taken.*device='cuda'"):
        mtlx.TaskData.from_shared(fake, rng.standard_normal((3, 2)))


@pytest.mark.parametrize("layout,weighted,missing", CASES)
def test_the_device_array_constructors_build_the_host_store(layout, weighted, missing, rng):
    """TaskData.from_* of device arrays (their code, run on the host emulation's arrays) hold what the
    host constructors hold: rows grouped by task, targets, weights, missing labels, ids."""
    from mtlx.gpu.data import device_from_shared, device_from_stacked, device_from_tasks

    from device_backends import HostEmulation

    args, kwargs = _problem(rng, layout, np.float64, weighted, missing)
    host = getattr(mtlx.TaskData, f"from_{layout}")(*args, **kwargs)
    backend, s = HostEmulation(), kwargs.get("sample_weight")
    device = {"tasks": lambda: device_from_tasks(backend, args[0], None, s),
              "stacked": lambda: device_from_stacked(backend, *args, s),
              "shared": lambda: device_from_shared(backend, *args, None, s)}[layout]()
    assert device.layout == host.layout
    np.testing.assert_array_equal(to_host(device.X), host.X)
    np.testing.assert_array_equal(device.task_ids, host.task_ids)
    for name in ("y", "Y", "offsets", "sample_weight", "row_weight"):
        a, b = getattr(device, name), getattr(host, name)
        assert (a is None) == (b is None), name
        if b is not None:
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(to_host(device.device_targets), host.Y if layout == "shared" else host.y)
