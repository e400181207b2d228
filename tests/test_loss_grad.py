"""mtlx.loss_grad against a numpy reference and central finite differences."""

import numpy as np
import pytest

import mtlx

from conftest import make_tasks
from reference import loss_grad_ref

SIZES = [7, 1, 30, 3]  # ragged, with a one-row task
D = 6

LOSS_CASES = {
    "squared": (["squared"] * 4, ()),
    "logistic": (["logistic"] * 4, (0, 1, 2, 3)),
    "mixed": (["squared", "logistic", "logistic", "squared"], (1, 2)),
}


def tolerances(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)


def problem(rng, dtype, case, sizes=SIZES, d=D):
    losses, logistic = LOSS_CASES[case]
    tasks = make_tasks(rng, sizes, d, dtype, logistic=logistic)
    W = rng.standard_normal((d, len(sizes))).astype(dtype)
    b = rng.standard_normal(len(sizes)).astype(dtype)
    return tasks, losses, W, b


@pytest.mark.parametrize("case", sorted(LOSS_CASES))
@pytest.mark.parametrize("intercept", [False, True])
def test_matches_numpy_reference(rng, dtype, case, intercept):
    tasks, losses, W, b = problem(rng, dtype, case)
    b = b if intercept else None
    data = mtlx.TaskData.from_tasks(tasks)
    assert data.dtype == dtype
    weights = 1.0 / np.array(SIZES)
    value, gW, gb = mtlx.loss_grad(data, W, b, loss=losses)
    ref_value, ref_gW, ref_gb = loss_grad_ref(tasks, W, b, losses, weights)
    assert gW.dtype == dtype and gW.shape == (D, len(SIZES)) and gb.shape == (len(SIZES),)
    np.testing.assert_allclose(value, ref_value, **tolerances(dtype))
    np.testing.assert_allclose(gW, ref_gW, **tolerances(dtype))
    np.testing.assert_allclose(gb, ref_gb, **tolerances(dtype))


@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_gradient_matches_central_differences(rng, case):
    tasks, losses, W, b = problem(rng, np.float64, case)
    data = mtlx.TaskData.from_tasks(tasks)
    _, gW, gb = mtlx.loss_grad(data, W, b, loss=losses, task_weights="sum")
    h = 1e-6

    def f(W_, b_):
        return mtlx.loss_grad(data, W_, b_, loss=losses, task_weights="sum")[0]

    for j in range(D):
        for t in range(len(SIZES)):
            E = np.zeros_like(W)
            E[j, t] = h
            fd = (f(W + E, b) - f(W - E, b)) / (2 * h)
            assert fd == pytest.approx(gW[j, t], rel=1e-6, abs=1e-6)
    for t in range(len(SIZES)):
        e = np.zeros_like(b)
        e[t] = h
        assert (f(W, b + e) - f(W, b - e)) / (2 * h) == pytest.approx(gb[t], rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("weights", ["sum", "array"])
def test_task_weights(rng, weights):
    tasks, losses, W, b = problem(rng, np.float64, "mixed")
    c = np.array([0.5, 2.0, 0.0, 3.0]) if weights == "array" else np.ones(4)
    data = mtlx.TaskData.from_tasks(tasks)
    value, gW, gb = mtlx.loss_grad(data, W, b, loss=losses, task_weights=c if weights == "array" else "sum")
    ref = loss_grad_ref(tasks, W, b, losses, c)
    np.testing.assert_allclose(value, ref[0], rtol=1e-12)
    np.testing.assert_allclose(gW, ref[1], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gb, ref[2], rtol=1e-12, atol=1e-14)


def test_large_task_spans_many_chunks_and_is_thread_independent(rng, dtype):
    sizes, d = [3000, 5, 1200], 50  # 3000 rows of 50 features span several row chunks
    tasks = make_tasks(rng, sizes, d, dtype, logistic=(1,))
    losses = ["squared", "logistic", "squared"]
    W = (0.1 * rng.standard_normal((d, 3))).astype(dtype)
    data = mtlx.TaskData.from_tasks(tasks)
    one = mtlx.loss_grad(data, W, loss=losses, n_threads=1)
    two = mtlx.loss_grad(data, W, loss=losses, n_threads=2)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])
    ref = loss_grad_ref(tasks, W, None, losses, 1.0 / np.array(sizes))
    np.testing.assert_allclose(one[0], ref[0], **tolerances(dtype))
    np.testing.assert_allclose(one[1], ref[1], **tolerances(dtype))


@pytest.mark.parametrize("n_threads", [2, 3])
def test_shared_layout_lanes_are_thread_independent(rng, dtype, n_threads):
    # 20,000 rows of 40 features: ~10 row blocks dealt into lanes that threads take dynamically;
    # the lanes' partial sums must be added in the same order whatever the thread count, and
    # whatever the BLAS's own thread count outside the call.
    from threadpoolctl import threadpool_limits

    n, d, T = 20_000, 40, 3
    X = rng.standard_normal((n, d)).astype(dtype)
    Y = rng.standard_normal((n, T)).astype(dtype)
    Y[:, 1] = np.sign(Y[:, 1]) + (Y[:, 1] == 0)
    losses = ["squared", "logistic", "squared"]
    W = (0.1 * rng.standard_normal((d, T))).astype(dtype)
    b = np.array([0.5, -0.2, 0.1], dtype=dtype)
    data = mtlx.TaskData.from_shared(X, Y)
    one = mtlx.loss_grad(data, W, b, loss=losses, n_threads=1)
    with threadpool_limits(limits=2, user_api="blas"):
        many = mtlx.loss_grad(data, W, b, loss=losses, n_threads=n_threads)
    assert one[0] == many[0]
    np.testing.assert_array_equal(one[1], many[1])
    np.testing.assert_array_equal(one[2], many[2])
    tasks = [(X, Y[:, t]) for t in range(T)]
    ref = loss_grad_ref(tasks, W, b, losses, np.full(T, 1.0 / n))
    tol = tolerances(dtype)
    np.testing.assert_allclose(one[0], ref[0], **tol)
    np.testing.assert_allclose(one[1], ref[1], **tol)
    np.testing.assert_allclose(one[2], ref[2], **tol)


@pytest.mark.parametrize("case", ["squared", "logistic", "mixed"])
def test_shared_layout_matches_per_task_copies(rng, dtype, case):
    n, d, T = 40, 5, 4
    X = rng.standard_normal((n, d)).astype(dtype)
    losses, logistic = LOSS_CASES[case]
    Y = rng.standard_normal((n, T))
    for t in logistic:
        Y[:, t] = np.where(Y[:, t] > 0, 1.0, -1.0)
    Y = Y.astype(dtype)
    W = rng.standard_normal((d, T)).astype(dtype)
    b = rng.standard_normal(T).astype(dtype)
    shared = mtlx.TaskData.from_shared(X, Y)
    assert shared.X.shape == (n, d)  # X stored once, not T times
    value, gW, gb = mtlx.loss_grad(shared, W, b, loss=losses)
    tasks = [(X, Y[:, t]) for t in range(T)]
    ref = loss_grad_ref(tasks, W, b, losses, np.full(T, 1.0 / n))
    np.testing.assert_allclose(value, ref[0], **tolerances(dtype))
    np.testing.assert_allclose(gW, ref[1], **tolerances(dtype))
    np.testing.assert_allclose(gb, ref[2], **tolerances(dtype))


def test_shared_layout_many_row_blocks(rng):
    n, d, T = 9000, 40, 3  # several row blocks of X
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n, T))
    W = rng.standard_normal((d, T))
    value, gW, _ = mtlx.loss_grad(mtlx.TaskData.from_shared(X, Y), W)
    R = X @ W - Y
    np.testing.assert_allclose(value, 0.5 * np.sum(R**2) / n, rtol=1e-12)
    np.testing.assert_allclose(gW, X.T @ R / n, rtol=1e-10, atol=1e-12)


def test_stacked_rows_with_task_ids(rng):
    tasks = make_tasks(rng, [4, 6, 2], 3)
    X = np.vstack([x for x, _ in tasks])
    y = np.concatenate([v for _, v in tasks])
    task = np.repeat([10, 20, 30], [4, 6, 2])
    perm = rng.permutation(len(y))
    data = mtlx.TaskData.from_stacked(X[perm], y[perm], task=task[perm])
    np.testing.assert_array_equal(data.task_ids, [10, 20, 30])
    np.testing.assert_array_equal(data.n_samples, [4, 6, 2])
    W = rng.standard_normal((3, 3))
    ref = loss_grad_ref(tasks, W, None, ["squared"] * 3, 1.0 / np.array([4, 6, 2]))
    value, gW, _ = mtlx.loss_grad(data, W)
    np.testing.assert_allclose(value, ref[0], rtol=1e-12)
    np.testing.assert_allclose(gW, ref[1], rtol=1e-12, atol=1e-14)


def test_logistic_is_finite_for_extreme_margins():
    X = np.array([[1000.0], [-1000.0], [1e6], [0.0]])
    y = np.array([1.0, 1.0, -1.0, -1.0])
    data = mtlx.TaskData.from_tasks([(X, y)])
    value, gW, _ = mtlx.loss_grad(data, np.ones((1, 1)), loss="logistic", task_weights="sum")
    expected = np.logaddexp(0, -1000.0) + np.logaddexp(0, 1000.0) + np.logaddexp(0, 1e6) + np.log(2)
    assert np.isfinite(value) and value == pytest.approx(expected, rel=1e-14)
    # derivative -y sigmoid(-y z): 0, -1, 1, 0.5 for the four rows
    assert gW[0, 0] == pytest.approx(1000.0 * 0 + (-1000.0) * -1.0 + 1e6 * 1.0, rel=1e-12)


def test_mixed_input_dtypes_become_float64(rng):
    X32 = rng.standard_normal((5, 2)).astype(np.float32)
    X64 = rng.standard_normal((4, 2))
    data = mtlx.TaskData.from_tasks([(X32, np.ones(5, np.float32)), (X64, np.ones(4))])
    assert data.dtype == np.float64
    np.testing.assert_array_equal(data.X[:5], X32.astype(np.float64))
    data32 = mtlx.TaskData.from_tasks([(X32, np.ones(5, dtype=int))])
    assert data32.dtype == np.float32


def test_float_targets_take_the_inputs_dtype(rng):
    """As scikit-learn's linear models cast y to X's dtype: a float32 X runs in float32 whatever
    the float targets' dtype (float64 targets made it run, and be copied, in float64); integer X
    runs in float64, and integers beyond 2^24 still make float64 (see test_properties)."""
    X32 = rng.standard_normal((6, 3)).astype(np.float32)
    y64 = rng.standard_normal(6)
    for data in (mtlx.TaskData.from_shared(X32, np.column_stack([y64, y64])),
                 mtlx.TaskData.from_tasks([(X32, y64), (X32[:4], y64[:4])]),
                 mtlx.TaskData.from_stacked(X32, y64, [0, 1, 0, 1, 0, 1])):
        assert data.dtype == np.float32
        assert data.X.dtype == np.float32 and (data.Y if data.layout == "shared" else data.y).dtype == np.float32
    shared = mtlx.TaskData.from_shared(X32, y64)
    assert np.shares_memory(shared.X, X32)  # (no copy of X)
    np.testing.assert_array_equal(shared.Y[:, 0], y64.astype(np.float32))
    assert mtlx.TaskData.from_shared(X32.astype(np.int64), y64.astype(np.float32)).dtype == np.float64
    wide = y64 * 1e40  # beyond float32's range: float64, not infinite targets
    stored = mtlx.TaskData.from_shared(X32, wide)
    assert stored.dtype == np.float64 and np.array_equal(stored.Y[:, 0], wide)
