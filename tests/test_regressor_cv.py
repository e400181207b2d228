"""MultiTaskRegressorCV against scikit-learn's MultiTaskLassoCV and a brute-force search."""

import numpy as np
import pytest
from sklearn.model_selection import KFold

import mtlx


def test_matches_multitask_lasso_cv(rng):
    from sklearn.linear_model import MultiTaskLassoCV

    X = rng.standard_normal((120, 15))
    W = rng.standard_normal((15, 4)) * (rng.random(15) < 0.4)[:, None]
    Y = X @ W + 2.0 + 0.5 * rng.standard_normal((120, 4))
    ours = mtlx.MultiTaskRegressorCV(alphas=10, cv=KFold(4), tol=1e-10).fit(X, Y)
    ref = MultiTaskLassoCV(alphas=ours.alphas_, cv=KFold(4), tol=1e-12, max_iter=100_000).fit(X, Y)
    assert ours.alpha_ == ref.alpha_
    np.testing.assert_allclose(ours.alphas_[0], ref.alphas_.max(), rtol=1e-12)  # alpha_max agrees too
    np.testing.assert_allclose(ours.mse_path_, ref.mse_path_, rtol=1e-7)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-7)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-7)


@pytest.mark.parametrize("penalty", ["l21", "trace"])
def test_stacked_layout_matches_a_brute_force_search(rng, penalty):
    X = rng.standard_normal((150, 8))
    task = np.repeat([4, 9, 13], [70, 1, 79])  # the one-row task is never held out
    y = X @ rng.standard_normal(8) + task * 0.1 + 0.3 * rng.standard_normal(150)
    model = mtlx.MultiTaskRegressorCV(penalty=penalty, alphas=5, cv=3, tol=1e-9).fit(X, y, task=task)
    data = mtlx.TaskData.from_stacked(X, y, task)
    for k, (train, held) in enumerate(model._folds(data)):
        for i, alpha in enumerate(model.alphas_):
            fit = mtlx.MultiTaskRegressor(penalty=penalty, alpha=alpha, tol=1e-9, max_iter=100_000).fit(train)
            err = np.concatenate([x @ fit.coef_[t] + fit.intercept_[t] - yy for t, (x, yy, _) in enumerate(held)])
            assert model.mse_path_[i, k] == pytest.approx(np.mean(err**2), rel=1e-6)
    assert model.alpha_ == model.alphas_[np.argmin(model.mse_path_.mean(axis=1))]
    final = mtlx.MultiTaskRegressor(penalty=penalty, alpha=model.alpha_, tol=1e-9).fit(X, y, task=task)
    np.testing.assert_allclose(model.coef_, final.coef_, atol=1e-12)
    np.testing.assert_array_equal(model.tasks_, [4, 9, 13])


def test_bad_settings_are_refused(rng):
    X, y = rng.standard_normal((30, 3)), rng.standard_normal(30)
    with pytest.raises(ValueError, match=r"alphas\[1\] = -1.0: every alpha must be a finite number > 0"):
        mtlx.MultiTaskRegressorCV(alphas=[0.1, -1.0]).fit(X, y)
    with pytest.raises(ValueError, match="cv must be an int"):
        mtlx.MultiTaskRegressorCV(cv=KFold(3)).fit(X, y, task=np.repeat([0, 1], 15))


def test_a_fold_that_cannot_be_fitted_is_named_as_such():
    """Task 1's two positives sit in the last rows: the unshuffled third fold trains on none of them.
    The base estimator fits the data; the CV estimator's error names the fold and the way out,
    where it read as a problem of the whole data; a shuffled splitter then fits."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 4))
    y = np.column_stack([X[:, 0] > 0, np.zeros(150, dtype=bool)]).astype(int)
    y[-2:, 1] = 1
    mtlx.MultiTaskClassifier().fit(X, y)
    with pytest.raises(ValueError, match=r"cross-validation fold 3 of 3: its training rows cannot be fitted \(task 1: "
                                         r"the logistic task has only label -1.*a shuffled splitter"):
        mtlx.MultiTaskClassifierCV(cv=3).fit(X, y)
    y[-8:, 1] = 1
    m = mtlx.MultiTaskClassifierCV(alphas=3, cv=KFold(3, shuffle=True, random_state=1)).fit(X, y)
    assert m.alpha_ in m.alphas_
