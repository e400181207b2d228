"""Multiclass tasks: the multinomial (softmax) loss over K columns of W, against scikit-learn's
LogisticRegression, cvxpy on a coupled problem and finite differences; the classifier in every
layout with tasks of different K, missing labels, weights and a saved model."""

import numpy as np
import pytest

import mtlx
from mtlx.losses import Multinomial

cp = pytest.importorskip("cvxpy")

TIGHT = dict(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, tol_ktratio=1e-10)


def classes_from(X, K, rng):
    """Labels 0..K-1 from a softmax model of X (Gumbel trick)."""
    return np.argmax(X @ rng.standard_normal((X.shape[1], K)) + rng.gumbel(size=(len(X), K)), axis=1)


def test_one_task_matches_scikit_learn(rng):
    from sklearn.linear_model import LogisticRegression

    X = rng.standard_normal((250, 5))
    y = classes_from(X, 4, rng)
    C = 0.7  # LogisticRegression: C sum_i loss_i + 0.5 ||W||^2, intercepts free
    model = mtlx.MultiTaskClassifier(penalty="none", alpha=0.0, l2=1.0 / C, task_weights="sum", tol=1e-12).fit(X, y)
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-6)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba, ref.predict_proba(X), atol=1e-7)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.exp(model.predict_log_proba(X)), proba, rtol=1e-12)
    assert (model.predict(X) == ref.predict(X)).all() and model.classes_.tolist() == [0, 1, 2, 3]
    assert model.decision_function(X).shape == (250, 4)


def test_loss_and_gradient_against_numpy_and_differences(rng):
    X = rng.standard_normal((40, 4))
    y = classes_from(X, 3, rng)
    onehot = np.eye(3)[y]
    data = mtlx.TaskData.from_shared(X, onehot)
    W, b = 0.3 * rng.standard_normal((4, 3)), 0.2 * rng.standard_normal(3)
    f, gW, gb = mtlx.loss_grad(data, W, b, loss="multinomial", task_weights="sum")
    Z = X @ W + b
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    assert f == pytest.approx(np.sum(np.log(np.exp(Z).sum(axis=1)) - Z[np.arange(40), y]), rel=1e-13)
    np.testing.assert_allclose(gW, X.T @ (P - onehot), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(gb, (P - onehot).sum(axis=0), rtol=1e-12, atol=1e-13)
    h = 1e-6
    for j, k in [(0, 0), (3, 2)]:
        E = np.zeros_like(W)
        E[j, k] = h
        numeric = (mtlx.loss_grad(data, W + E, b, loss="multinomial", task_weights="sum")[0]
                   - mtlx.loss_grad(data, W - E, b, loss="multinomial", task_weights="sum")[0]) / (2 * h)
        assert numeric == pytest.approx(gW[j, k], rel=1e-6)


def test_coupled_tasks_of_different_k_match_cvxpy(rng):
    """A 3-class and a 4-class task beside a binary one, one l21 penalty over every column."""
    d = 5
    tasks = []
    for K, m in ((3, 60), (4, 70), (2, 50)):
        X = rng.standard_normal((m, d))
        tasks.append((X, classes_from(X, K, rng)))
    pairs, losses = [], []
    for X, y in tasks:
        K = y.max() + 1
        if K == 2:
            pairs.append((X, np.where(y == 1, 1.0, -1.0)))
            losses.append("logistic")
        else:
            group = Multinomial()
            pairs += [(X, (y == k).astype(float)) for k in range(K)]
            losses += [group] * K
    alpha = 0.03
    res = mtlx.solve(mtlx.TaskData.from_tasks(pairs), loss=losses, penalty="l21", alpha=alpha, fit_intercept=True,
                     tol=1e-12, max_iter=100_000)
    C = len(losses)
    W, b = cp.Variable((d, C)), cp.Variable(C)
    f, col = 0, 0
    for X, y in tasks:
        K, m = y.max() + 1, len(y)
        if K == 2:
            f += cp.sum(cp.logistic(-cp.multiply(np.where(y == 1, 1.0, -1.0), X @ W[:, col] + b[col]))) / m
            col += 1
        else:
            Z = X @ W[:, col:col + K] + np.ones((m, 1)) @ cp.reshape(b[col:col + K], (1, K), order="C")
            f += (cp.sum(cp.log_sum_exp(Z, axis=1)) - cp.sum(cp.multiply(np.eye(K)[y], Z))) / m
            col += K
    cp.Problem(cp.Minimize(f + alpha * cp.sum(cp.norm(W, 2, axis=1)))).solve(**TIGHT)
    np.testing.assert_allclose(res.W, W.value, atol=2e-7)
    F_ref = f.value + alpha * np.linalg.norm(W.value, axis=1).sum()
    assert res.objective <= F_ref + 1e-10


def test_alpha_max_from_the_class_frequencies(rng):
    X = rng.standard_normal((120, 6))
    y = classes_from(X, 3, rng)
    data = mtlx.TaskData.from_shared(X, np.eye(3)[y])
    top = mtlx.alpha_max(data, "l21", loss="multinomial", fit_intercept=True)
    above = mtlx.solve(data, loss="multinomial", penalty="l21", alpha=1.0001 * top, fit_intercept=True, tol=1e-10)
    below = mtlx.solve(data, loss="multinomial", penalty="l21", alpha=0.95 * top, fit_intercept=True, tol=1e-10)
    assert np.abs(above.W).max() < 1e-8 < np.abs(below.W).max()
    p = np.bincount(y) / len(y)  # at W = 0 the probabilities are the class frequencies
    Z = above.b - above.b.max()
    np.testing.assert_allclose(np.exp(Z) / np.exp(Z).sum(), p, atol=1e-8)


# ----------------------------------------------------------------------------- the classifier
def test_every_layout_with_tasks_of_different_k(rng, tmp_path):
    X = rng.standard_normal((240, 5))
    y3, y2, y4 = classes_from(X, 3, rng), classes_from(X, 2, rng), classes_from(X, 4, rng)
    labels = np.array(["ant", "bee", "cat", "dog"])
    Y = np.column_stack([labels[y3], labels[y2], labels[y4]])
    shared = mtlx.MultiTaskClassifier(alpha=0.01, tol=1e-10).fit(X, Y)
    assert shared.coef_.shape == (3 + 1 + 4, 5) and shared.n_tasks_ == 3 and shared.tasks_.tolist() == [0, 1, 2]
    assert [c.tolist() for c in shared.classes_] == [["ant", "bee", "cat"], ["ant", "bee"], labels.tolist()]
    pred = shared.predict(X)
    assert pred.shape == (240, 3) and set(pred[:, 0]) <= {"ant", "bee", "cat"}
    proba = shared.predict_proba(X)
    assert [p.shape for p in proba] == [(240, 3), (240, 2), (240, 4)]
    for p in proba:
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-13)
    # the same tasks as a list of (X_t, y_t) and as stacked rows: the same fit
    pairs = [(X, Y[:, t]) for t in range(3)]
    listed = mtlx.MultiTaskClassifier(alpha=0.01, tol=1e-10).fit(pairs)
    np.testing.assert_allclose(listed.coef_, shared.coef_, atol=1e-7)
    task = np.repeat([10, 20, 30], 240)
    stacked = mtlx.MultiTaskClassifier(alpha=0.01, tol=1e-10).fit(np.vstack([X] * 3), Y.T.ravel(), task=task)
    np.testing.assert_allclose(stacked.coef_, shared.coef_, atol=1e-7)
    assert stacked.tasks_.tolist() == [10, 20, 30]
    assert (stacked.predict(np.vstack([X] * 3), task=task) == Y.T.ravel()).mean() == pytest.approx(
        shared.score(X, Y), abs=1e-12)
    # saved and loaded: the same predictions
    mtlx.save(shared, tmp_path / "m.npz")
    back = mtlx.load(tmp_path / "m.npz")
    assert (back.predict(X) == pred).all()
    np.testing.assert_allclose(back.predict_proba(X)[2], proba[2], rtol=1e-14)


def test_missing_labels_and_weights_in_a_multinomial_task(rng):
    X = rng.standard_normal((200, 4))
    y = classes_from(X, 3, rng).astype(float)
    missing = rng.random(200) < 0.25
    s = rng.integers(1, 3, size=200).astype(float)
    y_nan = np.where(missing, np.nan, y)
    a = mtlx.MultiTaskClassifier(alpha=0.01, tol=1e-11).fit(X, np.column_stack([y_nan, y % 2]), sample_weight=s)
    keep = ~missing
    rep = np.repeat(np.flatnonzero(keep), s[keep].astype(int))
    every = np.repeat(np.arange(200), s.astype(int))
    b = mtlx.MultiTaskClassifier(alpha=0.01, tol=1e-11).fit([(X[rep], y[rep]), (X[every], (y % 2)[every])])
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-7)


def test_multinomial_errors_are_named(rng):
    X = rng.standard_normal((30, 3))
    y = np.arange(30) % 3
    with pytest.raises(ValueError, match=r"task 0 \(column 0 of y\): 3 classes .*squared_hinge loss separates two"):
        mtlx.MultiTaskClassifier(loss="squared_hinge").fit(X, y)
    data = mtlx.TaskData.from_shared(X, np.eye(3)[y])
    bad = np.eye(3)[y]
    bad[4] = [1, 1, 0]
    with pytest.raises(ValueError, match="row 4 has 2 classes marked"):
        mtlx.solve(mtlx.TaskData.from_shared(X, bad), loss="multinomial")
    with pytest.raises(ValueError, match="a class of the multinomial task has no row"):
        onehot = np.eye(3)[y]
        onehot[:, 0], onehot[:, 1] = 0.0, onehot[:, 0] + onehot[:, 1]
        mtlx.solve(mtlx.TaskData.from_shared(X, onehot), loss="multinomial", fit_intercept=True)
    assert mtlx.solve(data, loss="multinomial", alpha=0.01).converged


@pytest.mark.parametrize("layout", ["shared", "stacked"])
@pytest.mark.parametrize("scoring", ["accuracy", "log_loss"])
def test_cross_validation_with_a_multiclass_task(rng, layout, scoring):
    """The CV classifier's fold scores against fitting each fold's training part and scoring its
    held-out rows by hand (argmax, or the softmax's log loss)."""
    X = rng.standard_normal((180, 5))
    y3, y2 = classes_from(X, 3, rng), classes_from(X, 2, rng)
    if layout == "shared":
        fit_args = (X, np.column_stack([y3, y2]))
        kw = {}
    else:
        fit_args = (np.vstack([X, X]), np.concatenate([y3, y2]))
        kw = {"task": np.repeat([0, 1], 180)}
    cv = mtlx.MultiTaskClassifierCV(alphas=3, cv=3, scoring=scoring, tol=1e-10).fit(*fit_args, **kw)
    data = cv._fit_data(*fit_args, kw.get("task"))
    for k, (train, held) in enumerate(cv._folds(data)):
        for i, alpha in enumerate(cv.alphas_):
            res = mtlx.solve(train, loss=cv._column_losses(), penalty="l21", alpha=alpha, fit_intercept=True,
                             tol=1e-10)
            W, b = res.W, res.b
            if layout == "shared":
                Xh, Yh, _ = held
                Z3, T3 = Xh @ W[:, :3] + b[:3], Yh[:, :3]
                z2, t2 = Xh @ W[:, 3] + b[3], Yh[:, 3]
            else:
                Z3 = held[0][0] @ W[:, :3] + b[:3]
                T3 = np.column_stack([held[c][1] for c in range(3)])
                z2, t2 = held[3][0] @ W[:, 3] + b[3], held[3][1]
            if scoring == "accuracy":
                hits = np.concatenate([np.argmax(Z3, axis=1) == np.argmax(T3, axis=1), np.sign(z2) == t2])
                expected = hits.mean()
            else:
                lse = np.log(np.exp(Z3).sum(axis=1)) - np.einsum("ik,ik->i", T3, Z3)
                expected = -np.concatenate([lse, np.logaddexp(0.0, -t2 * z2)]).mean()
            assert cv.scores_path_[i, k] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert cv.coef_.shape == (4, 5) and [len(c) for c in cv.classes_] == [3, 2]
    if layout == "shared":
        np.testing.assert_allclose(cv.predict_proba(X)[0].sum(axis=1), 1.0, rtol=1e-12)
    else:
        assert set(cv.predict(X, task=np.zeros(180, dtype=int)).tolist()) <= {0, 1, 2}


@pytest.mark.parametrize("layout", ["shared", "tasks"])
def test_taskdata_input_with_a_multiclass_task(rng, layout):
    """A TaskData holding class labels fits as the same arrays do, its task ids kept."""
    X = rng.standard_normal((90, 4))
    y3 = classes_from(X, 3, rng)
    w = rng.uniform(0.5, 2.0, 90)
    ref = mtlx.MultiTaskClassifier(alpha=0.01, tol=1e-11).fit(X, np.column_stack([y3, y3 % 2]), sample_weight=w)
    if layout == "shared":
        data = mtlx.TaskData.from_shared(X, np.column_stack([y3, y3 % 2]), task_ids=[4, 9], sample_weight=w)
    else:
        data = mtlx.TaskData.from_tasks([(X, y3), (X, y3 % 2)], task_ids=[4, 9], sample_weight=[w, w])
    model = mtlx.MultiTaskClassifier(alpha=0.01, tol=1e-11).fit(data)
    assert model.tasks_.tolist() == [4, 9] and [len(c) for c in model.classes_] == [3, 2]
    np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-8)
