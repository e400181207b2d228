"""A sparse X (scipy CSR/CSC, matrices and arrays) in every layout: the core's CSR kernels against
numpy and the dense kernels, solutions equal to the dense ones, no densification, bitwise the same
on any thread count, the estimators and the bundled 20-Newsgroups tasks."""

import numpy as np
import pytest
import scipy.sparse as sp

import mtlx
from mtlx.datasets import load_newsgroups

from reference import loss_grad_ref

T, D = 3, 40
LOSSES = ("squared", "logistic", "huber", "squared_hinge", "poisson")


def sparse_problem(rng, n=150, density=0.08, dtype=np.float64):
    X = sp.random(n, D, density=density, random_state=rng, format="csr", dtype=np.float64)
    X.data = np.round(3 * X.data) + 1.0  # counts, like term frequencies
    Z = X @ (0.3 * rng.standard_normal((D, T)))
    return X.astype(dtype), Z


def targets(loss, z, rng):
    if loss in ("logistic", "squared_hinge"):
        return np.where(z + 0.3 * rng.standard_normal(z.shape) > 0, 1.0, -1.0)
    if loss == "poisson":
        return rng.poisson(np.exp(np.clip(0.5 * z, -3, 3))).astype(float)
    return z + 0.3 * rng.standard_normal(z.shape)


def no_densify(monkeypatch):
    """Make every way scipy densifies a matrix raise."""
    def refuse(*args, **kwargs):
        raise AssertionError("a sparse X was densified")

    for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array, sp.csc_array):
        monkeypatch.setattr(cls, "toarray", refuse)
        monkeypatch.setattr(cls, "todense", refuse)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("layout", ["shared", "stacked"])
@pytest.mark.parametrize("index", [np.int32, np.int64])
@pytest.mark.parametrize("weighted", [False, True])
def test_csr_loss_grad_matches_numpy(rng, dtype, loss, layout, index, weighted):
    X, Z = sparse_problem(rng, dtype=dtype)
    X.indices, X.indptr = X.indices.astype(index), X.indptr.astype(index)
    Xd = X.toarray()
    s = rng.integers(0, 3, size=X.shape[0]).astype(float) if weighted else np.ones(X.shape[0])
    W = (0.2 * rng.standard_normal((D, T))).astype(dtype)
    b = (0.2 * rng.standard_normal(T)).astype(dtype)
    if layout == "shared":
        Y = targets(loss, Z, rng).astype(dtype)
        data = mtlx.TaskData.from_shared(X, Y, sample_weight=s if weighted else None)
        tasks = [(Xd, Y[:, t]) for t in range(T)]
        weights = [s] * T
        W_used, b_used = W, b
    else:
        task = np.sort(np.arange(X.shape[0]) % T)  # grouped rows: X used as it is (its index dtype kept)
        y = targets(loss, Z[:, 0], rng).astype(dtype)
        data = mtlx.TaskData.from_stacked(X, y, task, sample_weight=s if weighted else None)
        tasks = [(Xd[task == t], y[task == t]) for t in range(T)]
        weights = [s[task == t] for t in range(T)]
        W_used, b_used = W, b
    assert data.sparse and data.X.indices.dtype == index
    value, gW, gb = mtlx.loss_grad(data, W_used, b_used, loss=loss, task_weights="sum")
    # numpy, each row repeated by its integer weight
    rep = [(X_t[np.repeat(np.arange(len(y_t)), w.astype(int))], y_t[np.repeat(np.arange(len(y_t)), w.astype(int))])
           for (X_t, y_t), w in zip(tasks, weights)]
    ref = loss_grad_ref(rep, W_used, b_used, [loss] * T, np.ones(T))
    tol = dict(rtol=1e-11, atol=1e-11) if dtype == np.float64 else dict(rtol=3e-5, atol=3e-4)
    np.testing.assert_allclose(value, ref[0], **tol)
    np.testing.assert_allclose(gW, ref[1], **tol)
    np.testing.assert_allclose(gb, ref[2], **tol)


@pytest.mark.parametrize("fmt", ["csr", "csc", "csr_array"])
@pytest.mark.parametrize("penalty", ["l21", "l1", "trace", "mean"])
def test_shared_solutions_equal_dense(rng, fmt, penalty):
    X, Z = sparse_problem(rng)
    Y = targets("squared", Z, rng)
    Xs = sp.csr_array(X) if fmt == "csr_array" else X.asformat(fmt)
    kw = dict(penalty=penalty, alpha=0.02, fit_intercept=True, tol=1e-12)
    a = mtlx.solve(mtlx.TaskData.from_shared(Xs, Y), **kw)
    b = mtlx.solve(mtlx.TaskData.from_shared(X.toarray(), Y), **kw)
    np.testing.assert_allclose(a.W, b.W, atol=1e-10)
    np.testing.assert_allclose(a.b, b.b, atol=1e-10)


@pytest.mark.filterwarnings("ignore:mtlx.solve stalled")  # tol=1e-12 is at the data's resolution
@pytest.mark.parametrize("loss", LOSSES)
def test_stacked_and_task_list_solutions_equal_dense(rng, loss):
    X, Z = sparse_problem(rng)
    task = np.arange(X.shape[0]) % T
    y = targets(loss, Z[:, 0], rng)
    kw = dict(loss=loss, penalty="l21", alpha=0.01, fit_intercept=True, tol=1e-12, max_iter=50_000)
    a = mtlx.solve(mtlx.TaskData.from_stacked(X, y, task), **kw)
    b = mtlx.solve(mtlx.TaskData.from_stacked(X.toarray(), y, task), **kw)
    c = mtlx.solve(mtlx.TaskData.from_tasks([(X[task == t], y[task == t]) for t in range(T)]), **kw)
    # (the squared hinge is flat past its margins: the dense run's proximal Newton certified F within
    # 5e-15 of the sparse run's FISTA with W 4e-7 away from it; the other losses pin W down)
    atol = 1e-6 if loss == "squared_hinge" else 1e-9
    assert a.objective == pytest.approx(b.objective, rel=1e-11) and c.objective == pytest.approx(b.objective, rel=1e-11)
    np.testing.assert_allclose(a.W, b.W, atol=atol)
    np.testing.assert_allclose(c.W, b.W, atol=atol)
    np.testing.assert_allclose(a.b, b.b, atol=atol)


def test_no_densification_and_thread_count_invariance(rng, monkeypatch):
    X, Z = sparse_problem(rng, n=3000, density=0.05)
    Y = targets("logistic", Z, rng)
    data = mtlx.TaskData.from_shared(X, Y)
    no_densify(monkeypatch)
    runs = [mtlx.solve(data, loss="logistic", penalty="l21", alpha=0.01, fit_intercept=True, tol=1e-8, n_threads=k)
            for k in (1, 2, 3)]
    for other in runs[1:]:
        assert np.array_equal(other.W, runs[0].W) and np.array_equal(other.history, runs[0].history)
    path = mtlx.path(data, "l21", loss="logistic", alphas=3, fit_intercept=True)
    assert path.coefs.shape == (3, D, T)


def test_estimators_take_sparse_input(rng, monkeypatch):
    X, Z = sparse_problem(rng)
    Y = targets("squared", Z, rng)
    dense = mtlx.MultiTaskRegressor(penalty="l21", alpha=0.02, tol=1e-12).fit(X.toarray(), Y)
    no_densify(monkeypatch)
    reg = mtlx.MultiTaskRegressor(penalty="l21", alpha=0.02, tol=1e-12).fit(X, Y)
    np.testing.assert_allclose(reg.coef_, dense.coef_, atol=1e-10)
    np.testing.assert_allclose(reg.predict(X), X @ reg.coef_.T + reg.intercept_, rtol=1e-12)
    task = np.arange(X.shape[0]) % T
    clf = mtlx.MultiTaskClassifier(alpha=0.01).fit(X, np.where(Z[:, 0] > 0, "a", "b"), task=task)
    assert clf.score(X, np.where(Z[:, 0] > 0, "a", "b"), task=task) > 0.8
    cv = mtlx.MultiTaskRegressorCV(alphas=4, cv=3).fit(X.tocsc(), Y)
    assert cv.mse_path_.shape == (4, 3)


@pytest.mark.filterwarnings("ignore:mtlx.solve stalled")  # tol=1e-13: as far as float64 resolves
def test_newsgroups_ship_sparse_and_fit_as_dense():
    news = load_newsgroups()
    assert sp.issparse(news.X) and news.X.shape == (7091, 2000) and news.X.nnz == 380465
    assert np.bincount(news.task).tolist() == [1875, 1827, 1844, 1545] and set(news.y.tolist()) == {1, 2}
    pick = np.random.default_rng(0)
    rows = np.sort(np.concatenate([pick.choice(np.flatnonzero(news.task == t), 150, replace=False) for t in range(4)]))
    X, y, task = news.X[rows], news.y[rows], news.task[rows]
    kw = dict(penalty="l21", alpha=0.01, tol=1e-13, max_iter=50_000)
    sparse_fit = mtlx.MultiTaskClassifier(**kw).fit(X, y, task=task)
    dense_fit = mtlx.MultiTaskClassifier(**kw).fit(X.toarray(), y, task=task)
    # FISTA on the logistic loss stops where F stops resolving (no certificate): the two fits, whose
    # kernels agree to 1e-12 (test_csr_loss_grad_matches_numpy), end within 1e-8 of each other.
    np.testing.assert_allclose(sparse_fit.coef_, dense_fit.coef_, atol=1e-8)
    assert len(news.tasks()) == 4 and news.tasks()[2][0].shape == (1844, 2000)


# ----------------------------------------------------------------------------- working sets on a sparse X
@pytest.mark.parametrize("penalty", ["l21", "l1"])
@pytest.mark.parametrize("intercept", [False, True])
@pytest.mark.parametrize("columns_from", ["scipy", np.int32, np.int64])
def test_sparse_residual_epochs_match_the_dense_kernel(rng, penalty, intercept, columns_from):
    """One epoch of the sparse kernel (centering implicit) against the dense kernel on the centered
    columns: columns from a scipy matrix (int64 indices) or gathered from an int32 / int64 CSR X
    (the gathered columns keep X's index type)."""
    from mtlx._residual_cd import DenseColumns, SparseColumns
    from mtlx.penalties import get_penalty

    X, Z = sparse_problem(rng, n=120)
    Y = targets("squared", Z, rng)
    ws = np.arange(0, D, 3)
    xbar = np.asarray(X.mean(axis=0)).ravel()[ws] if intercept else None
    if columns_from == "scipy":
        sparse_cols = SparseColumns(X[:, ws], xbar)
    else:
        X = X.tocsr()
        X.indices, X.indptr = X.indices.astype(columns_from), X.indptr.astype(columns_from)
        sparse_cols = SparseColumns.of(X, ws, xbar)
        assert sparse_cols.indices.dtype == columns_from
    dense = X[:, ws].toarray() - (xbar if intercept else 0.0)
    dense_cols = DenseColumns(np.ascontiguousarray(dense.T))
    np.testing.assert_allclose(sparse_cols.sq_norms, dense_cols.sq_norms, rtol=1e-12)
    W0 = 0.1 * rng.standard_normal((len(ws), T))
    R0 = np.ascontiguousarray((Y - Y.mean(axis=0) * intercept - dense @ W0).T)
    c = np.full(T, 1.0 / len(Y))
    code = int(get_penalty(penalty).cd_kind)
    out = []
    for cols in (sparse_cols, dense_cols):
        # (the sparse kernels take R row-major behind its (T, n) view: Fortran order here)
        W, R = W0.copy(), (np.asfortranarray(R0) if cols is sparse_cols else R0.copy())
        for _ in range(3):
            cols.epochs(c, 0.05, 0.0, code, W, R)
        out.append((W, R))
        np.testing.assert_allclose(R, R0 - cols.times(W - W0), atol=1e-12)  # R stays Y - X_S,c W
    np.testing.assert_allclose(out[0][0], out[1][0], atol=1e-12)
    np.testing.assert_allclose(out[0][1], out[1][1], atol=1e-12)
    np.testing.assert_allclose(sparse_cols.products(R0), dense_cols.products(R0), atol=1e-12)


@pytest.mark.parametrize("penalty", ["l21", "l1"])
@pytest.mark.parametrize("intercept", [False, True])
def test_working_sets_on_sparse_shared_x_match_dense(rng, penalty, intercept):
    X, Z = sparse_problem(rng, n=200)
    Y = targets("squared", Z, rng)
    kw = dict(penalty=penalty, alpha=0.005, fit_intercept=intercept, tol=1e-12, solver="cd")
    a = mtlx.solve(mtlx.TaskData.from_shared(X, Y), **kw)
    b = mtlx.solve(mtlx.TaskData.from_shared(X.toarray(), Y), **kw)
    assert a.solver == b.solver == "cd" and a.converged
    np.testing.assert_allclose(a.W, b.W, atol=1e-10)
    np.testing.assert_allclose(a.b, b.b, atol=1e-10)
    pa = mtlx.path(mtlx.TaskData.from_shared(X, Y), penalty, alphas=5, fit_intercept=intercept, tol=1e-10)
    pb = mtlx.path(mtlx.TaskData.from_shared(X.toarray(), Y), penalty, alphas=5, fit_intercept=intercept, tol=1e-10)
    np.testing.assert_allclose(pa.coefs, pb.coefs, atol=1e-8)


# ----------------------------------------------------------------------------- datasets and the CLI
@pytest.mark.parametrize("suffix", [".npz", ""])
def test_datasets_store_a_sparse_x_and_the_cli_fits_it(rng, tmp_path, suffix, monkeypatch, capsys):
    import mtlx.io
    from mtlx.cli import main

    X, Z = sparse_problem(rng, n=120)
    task = np.sort(np.arange(120) % T)
    y = targets("squared", Z[:, 0], rng)
    path = tmp_path / f"sparse{suffix}"
    mtlx.io.save_dataset(path, X, y, task)
    with mtlx.io.DatasetFile(path) as ds:
        assert ds.sparse and sp.issparse(ds["X"]) and "X_data" not in ds.names
    data = mtlx.io.load_dataset(path)
    assert data.sparse and (data.X != X).nnz == 0
    part = mtlx.io.load_dataset(path, tasks=[2])
    assert part.sparse and part.X.shape == ((task == 2).sum(), D)
    mtlx.io.save_dataset(tmp_path / f"copy{suffix}", data)  # a sparse TaskData round-trips too
    assert (mtlx.io.load_dataset(tmp_path / f"copy{suffix}").X != X).nnz == 0
    no_densify(monkeypatch)
    assert main(["fit", str(path), "--alpha", "0.01", "--intercept", "--out", str(tmp_path / "m.npz")]) == 0
    ref = mtlx.MultiTaskRegressor(alpha=0.01).fit(X, y, task=task)
    np.testing.assert_allclose(mtlx.load(tmp_path / "m.npz").coef_, ref.coef_, atol=1e-10)
    assert main(["predict", str(tmp_path / "m.npz"), str(path), "--out", str(tmp_path / "p.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), ref.predict(X, task=task), atol=1e-9)


def test_csr_gradient_matches_central_differences(rng):
    X, Z = sparse_problem(rng, n=60)
    Y = targets("logistic", Z, rng)
    data = mtlx.TaskData.from_shared(X, Y)
    W, b = 0.2 * rng.standard_normal((D, T)), 0.1 * rng.standard_normal(T)
    _, gW, gb = mtlx.loss_grad(data, W, b, loss="logistic", task_weights="sum")
    h = 1e-6
    for j, t in [(0, 0), (7, 1), (D - 1, 2)]:
        E = np.zeros_like(W)
        E[j, t] = h
        numeric = (mtlx.loss_grad(data, W + E, b, loss="logistic", task_weights="sum")[0]
                   - mtlx.loss_grad(data, W - E, b, loss="logistic", task_weights="sum")[0]) / (2 * h)
        assert numeric == pytest.approx(gW[j, t], rel=1e-6, abs=1e-8)


# ----------------------------------------------------------------------------- the CSR kernels of the sparse engine
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_csr_column_gather_and_products_match_scipy(rng, dtype, index):
    from mtlx import _core

    n, d, k = 70, 50, 9
    X = sp.random(n, d - 3, density=0.2, random_state=rng, format="csr", dtype=np.float64)
    X = sp.hstack([X, sp.csr_matrix((n, 3))], format="csr").astype(dtype)  # the last columns hold no entry
    X.indices, X.indptr = X.indices.astype(index), X.indptr.astype(index)
    features = np.array([d - 1, 4, 17, 0, 33, d - 2, 8, 21, 40])  # any order; two empty columns
    position = np.full(d, -1, dtype=np.int64)
    position[features] = np.arange(k)
    data, rows, indptr, sums, squares = _core.csr_select_columns(X.data, X.indices, X.indptr, d, position, k)
    gathered = sp.csr_matrix((data, rows, indptr), shape=(k, n))
    # (the rows keep X's index type: int32 X, int32 rows, a third less memory than int64)
    assert gathered.has_sorted_indices and data.dtype == np.float64 and rows.dtype == indptr.dtype == index
    expected = X[:, features].T.toarray().astype(np.float64)
    np.testing.assert_array_equal(gathered.toarray(), expected)
    np.testing.assert_allclose(sums, expected.sum(axis=1), rtol=1e-14)
    np.testing.assert_allclose(squares, (expected**2).sum(axis=1), rtol=1e-14)
    with pytest.raises(ValueError, match="position"):
        _core.csr_select_columns(X.data, X.indices, X.indptr, d, position[:-1], k)
    # starts counted by the caller (X's column counts) give the same gather without the counting
    # pass; starts that do not fit X's entries are refused, nothing written past a column's range
    counts = np.bincount(X.indices, minlength=d)
    starts = np.concatenate([[0], np.cumsum(counts[features])]).astype(index)
    again = _core.csr_select_columns(X.data, X.indices, X.indptr, d, position, k, starts)
    for a, b in zip(again, (data, rows, indptr, sums, squares)):
        np.testing.assert_array_equal(a, b)
    for wrong in (starts + np.arange(k + 1, dtype=index), np.maximum(starts - np.arange(k + 1, dtype=index), 0)):
        wrong[0] = 0
        with pytest.raises(ValueError, match="starts do not match"):
            _core.csr_select_columns(X.data, X.indices, X.indptr, d, position, k, np.maximum.accumulate(wrong))

    dense = X.toarray().astype(np.float64)
    R = rng.standard_normal((n, 4))
    out = np.empty((d, 4))
    _core.csr_transpose_times(X.data, X.indices, X.indptr, d, R, out)
    np.testing.assert_allclose(out, dense.T @ R, rtol=1e-13, atol=1e-13)
    _core.csr_transpose_times(X.data, X.indices, X.indptr, d, R, out, True)
    np.testing.assert_allclose(out, 2 * dense.T @ R, rtol=1e-13, atol=1e-13)
    V = rng.standard_normal((d, 4))
    prod = np.empty((n, 4))
    _core.csr_times(X.data, X.indices, X.indptr, d, V, prod)
    np.testing.assert_allclose(prod, dense @ V, rtol=1e-13, atol=1e-13)
    _core.csr_times(X.data, X.indices, X.indptr, d, V, prod, True)
    np.testing.assert_allclose(prod, 2 * dense @ V, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match=r"R must be \(n_rows, T\)"):
        _core.csr_transpose_times(X.data, X.indices, X.indptr, d, R.T.copy(), out)


def test_csr_products_are_bitwise_the_same_for_any_thread_count(rng):
    """Threads split the output (rows of X V, feature ranges of X' R), each entry summed in
    storage order: 1, 2 and 3 threads give identical bits, and scipy's products to rounding."""
    from mtlx import _core

    n, d, T = 3000, 2000, 8  # 60,000 entries x T: past the threshold where threads start
    X = sp.random(n, d, density=0.01, random_state=rng, format="csr", dtype=np.float64)
    R, V = rng.standard_normal((n, T)), rng.standard_normal((d, T))
    transposed, products = [], []
    for n_threads in (1, 2, 3):
        out = np.empty((d, T))
        _core.csr_transpose_times(X.data, X.indices, X.indptr, d, R, out, False, n_threads)
        transposed.append(out)
        prod = np.empty((n, T))
        _core.csr_times(X.data, X.indices, X.indptr, d, V, prod, False, n_threads)
        products.append(prod)
    for out, prod in zip(transposed[1:], products[1:]):
        np.testing.assert_array_equal(out, transposed[0])
        np.testing.assert_array_equal(prod, products[0])
    np.testing.assert_allclose(transposed[0], X.T @ R, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(products[0], X @ V, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("penalty", ["l21", "l1"])
@pytest.mark.parametrize("intercept", [False, True])
def test_working_sets_on_wide_sparse_x_match_scikit_learn(rng, penalty, intercept):
    """d >> n on a sparse X: the first working sets are sized by the cost of a gap check (d / 20
    rows here, not 10), and the solve still lands on scikit-learn's optimum."""
    from sklearn.linear_model import Lasso, MultiTaskLasso

    n, d = 60, 1200
    X = sp.random(n, d, density=0.05, random_state=rng, format="csr")
    W_true = np.zeros((d, T))
    W_true[rng.choice(d, 30, replace=False)] = rng.standard_normal((30, T))
    Y = X @ W_true + 0.05 * rng.standard_normal((n, T))
    Xd = X.toarray()
    alpha = 0.1 * np.abs(X.T @ (Y - intercept * Y.mean(axis=0))).max() / n
    res = mtlx.solve(mtlx.TaskData.from_shared(X, Y), penalty=penalty, alpha=alpha, fit_intercept=intercept,
                     tol=1e-12, solver="cd")
    assert res.solver == "cd" and res.converged
    if penalty == "l21":
        ref = MultiTaskLasso(alpha=alpha, fit_intercept=intercept, tol=1e-14, max_iter=200_000).fit(Xd, Y)
        W_ref, b_ref = ref.coef_.T, ref.intercept_
    else:
        fits = [Lasso(alpha=alpha, fit_intercept=intercept, tol=1e-14, max_iter=200_000).fit(Xd, Y[:, t])
                for t in range(T)]
        W_ref, b_ref = np.column_stack([f.coef_ for f in fits]), np.array([f.intercept_ for f in fits])
    np.testing.assert_allclose(res.W, W_ref, atol=1e-7 * np.abs(W_ref).max())
    np.testing.assert_allclose(res.b, b_ref, atol=1e-7 * np.abs(W_ref).max())


@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_csr_gram_rows_match_scipy_for_any_thread_count(rng, index):
    """The Gram rows X_S' X from the gathered columns, against scipy's product, bitwise the same on
    1 and 2 threads."""
    from mtlx import _core

    n, d = 400, 300
    X = sp.random(n, d, density=0.05, random_state=rng, format="csr", dtype=np.float64)
    X.indices, X.indptr = X.indices.astype(index), X.indptr.astype(index)
    features = np.array([7, 0, 299, 150, 42])
    position = np.full(d, -1, dtype=np.int64)
    position[features] = np.arange(len(features))
    data, rows, indptr, _, _ = _core.csr_select_columns(X.data, X.indices, X.indptr, d, position, len(features))
    outs = []
    for n_threads in (1, 2):
        out = np.full((len(features), d), np.nan)
        _core.csr_gram_rows(data, rows, indptr, X.data, X.indices, X.indptr, d, out, n_threads)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], (X[:, features].T @ X).toarray(), rtol=1e-13, atol=1e-14)
    with pytest.raises(ValueError, match="out"):
        _core.csr_gram_rows(data, rows, indptr, X.data, X.indices, X.indptr, d, np.empty((2, d)))


@pytest.mark.parametrize("penalty", ["l21", "l1"])
@pytest.mark.parametrize("intercept", [False, True])
def test_sparse_gram_and_residual_epochs_reach_the_dense_optimum(rng, monkeypatch, penalty, intercept):
    """n > d text-like data: the cost model takes Gram rows of the sparse X (no pass over X per gap
    check); forced either way, both forms give the dense X's solution."""
    from mtlx import working_set

    n, d = 900, 150
    X = sp.random(n, d, density=0.04, random_state=rng, format="csr")
    W_true = np.zeros((d, T))
    W_true[rng.choice(d, 12, replace=False)] = rng.standard_normal((12, T))
    Y = X @ W_true + 0.05 * rng.standard_normal((n, T))
    alpha = 0.05 * np.abs(X.T @ (Y - intercept * Y.mean(axis=0))).max() / n
    kwargs = dict(penalty=penalty, alpha=alpha, fit_intercept=intercept, tol=1e-13, solver="cd")
    dense = mtlx.solve(mtlx.TaskData.from_shared(X.toarray(), Y), **kwargs)
    used = []
    residual_pays = working_set.WorkingSetSolver._residual_pays

    def spy(self, ws):
        used.append(residual_pays(self, ws))
        return used[-1]

    monkeypatch.setattr(working_set.WorkingSetSolver, "_residual_pays", spy)
    chosen = mtlx.solve(mtlx.TaskData.from_shared(X, Y), **kwargs)
    assert used and not any(used)  # Gram epochs on every working set
    for forced in (True, False):
        monkeypatch.setattr(working_set.WorkingSetSolver, "_residual_pays", lambda self, ws, f=forced: f)
        monkeypatch.setattr(working_set.WorkingSetSolver, "_data_pass_pays", lambda self, s, f=forced: f)
        res = mtlx.solve(mtlx.TaskData.from_shared(X, Y), **kwargs)
        for got in (res, chosen):
            assert got.converged
            np.testing.assert_allclose(got.W, dense.W, atol=1e-9 * np.abs(dense.W).max())
            np.testing.assert_allclose(got.b, dense.b, atol=1e-9 * np.abs(dense.W).max())


@pytest.mark.parametrize("fmt", ["dok", "lil", "bsr", "dia"])
def test_every_scipy_sparse_format_is_taken(fmt):
    """DOK (no data array: a dict), LIL (one of lists), BSR and DIA are converted to CSR once: the
    same fit as on CSR, in every layout (DOK crashed with an AttributeError)."""
    rng = np.random.default_rng(2)
    X = sp.random(40, 6, density=0.4, format="csr", random_state=3)
    Y = X @ rng.standard_normal((6, 2)) + 0.1 * rng.standard_normal((40, 2))
    other = X.asformat(fmt)
    kw = dict(penalty="l21", alpha=0.05, tol=1e-10)
    for make in (lambda A: mtlx.TaskData.from_shared(A, Y),
                 lambda A: mtlx.TaskData.from_stacked(A, Y[:, 0], np.repeat([0, 1], 20)),
                 lambda A: mtlx.TaskData.from_tasks([(A, Y[:, 0]), (A, Y[:, 1])])):
        np.testing.assert_allclose(mtlx.solve(make(other), **kw).W, mtlx.solve(make(X), **kw).W, rtol=1e-12, atol=1e-14)
