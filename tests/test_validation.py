"""Every bad input gets a ValueError/TypeError naming the culprit."""

import numpy as np
import pytest

import mtlx


def good_tasks(rng, n_tasks=3, d=4):
    return [(rng.standard_normal((5 + t, d)), rng.standard_normal(5 + t)) for t in range(n_tasks)]


@pytest.mark.parametrize("array", ["X", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_values_name_the_task(rng, array, bad):
    tasks = good_tasks(rng)
    X, y = tasks[2]
    if array == "X":
        X[3, 1] = bad
    else:
        y[4] = bad
    what = "NaN" if np.isnan(bad) else "infinity"
    with pytest.raises(ValueError, match=rf"task 2: {array} contains {what} \(row {3 if array == 'X' else 4}\)"):
        mtlx.TaskData.from_tasks(tasks)


def test_nonfinite_in_stacked_and_shared(rng):
    X = rng.standard_normal((6, 2))
    X[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"task 7: X contains NaN \(row 4\)"):  # its row of X, as given
        mtlx.TaskData.from_stacked(X, np.zeros(6), task=[3, 3, 3, 7, 7, 7])
    with pytest.raises(ValueError, match=r"task 3: X contains NaN \(row 4\)"):  # tasks in no order
        mtlx.TaskData.from_stacked(X, np.zeros(6), task=[7, 3, 7, 7, 3, 7])
    Y = np.zeros((6, 2))
    Y[5, 1] = np.inf
    with pytest.raises(ValueError, match=r"Y contains infinity \(row 5\)"):
        mtlx.TaskData.from_shared(np.ones((6, 2)), Y)


def test_mismatched_lengths(rng):
    tasks = good_tasks(rng)
    tasks[1] = (tasks[1][0], tasks[1][1][:-1])
    with pytest.raises(ValueError, match=r"task 1: X has 6 rows but y has 5 entries"):
        mtlx.TaskData.from_tasks(tasks)
    with pytest.raises(ValueError, match=r"X has 4 rows, y has 3 entries and task has 4"):
        mtlx.TaskData.from_stacked(np.ones((4, 2)), np.ones(3), task=[0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"X has 4 rows but Y has 5"):
        mtlx.TaskData.from_shared(np.ones((4, 2)), np.ones((5, 2)))


def test_empty_task(rng):
    tasks = good_tasks(rng)
    tasks[1] = (np.empty((0, 4)), np.empty(0))
    with pytest.raises(ValueError, match=r"task 1: X has 0 rows \(an empty task\)"):
        mtlx.TaskData.from_tasks(tasks)


def test_one_dimensional_X(rng):
    with pytest.raises(ValueError, match=r"task 0: X must be 2-D, got shape \(5,\)"):
        mtlx.TaskData.from_tasks([(np.ones(5), np.ones(5))])
    with pytest.raises(ValueError, match=r"X must be 2-D, got shape \(5,\)"):
        mtlx.TaskData.from_shared(np.ones(5), np.ones((5, 2)))


def test_tasks_with_different_feature_counts(rng):
    tasks = good_tasks(rng)
    tasks[2] = (np.ones((7, 3)), np.ones(7))
    with pytest.raises(ValueError, match=r"task 2: X has 3 features \(shape \(7, 3\)\) but task 0 has 4"):
        mtlx.TaskData.from_tasks(tasks)


@pytest.mark.parametrize("dtype,kind", [(np.complex128, "complex"), (object, "object")])
def test_complex_and_object_dtypes(rng, dtype, kind):
    tasks = good_tasks(rng)
    tasks[1] = (tasks[1][0].astype(dtype), tasks[1][1])
    with pytest.raises(TypeError, match=rf"task 1: X has {kind}"):
        mtlx.TaskData.from_tasks(tasks)


def test_bad_sparse_input_is_rejected_clearly():
    from scipy import sparse

    with pytest.raises(TypeError, match="task 0: X has complex128 dtype"):
        mtlx.TaskData.from_tasks([(sparse.csr_matrix(np.eye(3) * 1j), np.ones(3))])
    X = sparse.csr_matrix(np.eye(3))
    X.data[1] = np.nan
    with pytest.raises(ValueError, match=r"task 0: X \(sparse\) contains NaN \(row 1\)"):
        mtlx.TaskData.from_tasks([(X, np.ones(3))])
    with pytest.raises(TypeError, match="Y is a scipy.sparse matrix"):  # targets stay dense
        mtlx.TaskData.from_shared(np.eye(3), sparse.csr_matrix(np.eye(3)))


def test_logistic_labels(rng):
    tasks = [(rng.standard_normal((4, 2)), np.array([1.0, -1, 1, -1])),
             (rng.standard_normal((3, 2)), np.array([0.0, 1, 1]))]
    data = mtlx.TaskData.from_tasks(tasks, task_ids=[5, 9])
    with pytest.raises(ValueError, match=r"task 9: y holds labels \[0.0\] .* labels in \{-1, \+1\}"):
        mtlx.solve(data, loss="logistic")
    with pytest.raises(ValueError, match=r"task 9: y holds labels"):
        mtlx.loss_grad(data, np.zeros((2, 2)), loss="logistic")
    # only the logistic task is checked in a mixed problem
    mtlx.loss_grad(data, np.zeros((2, 2)), loss=["logistic", "squared"])
    Y = np.where(rng.standard_normal((6, 3)) > 0, 1.0, -1.0)
    Y[4, 2] = 2.0
    shared = mtlx.TaskData.from_shared(rng.standard_normal((6, 2)), Y)
    with pytest.raises(ValueError, match=r"task 2: y holds labels \[2.0\]"):
        mtlx.solve(shared, loss="logistic")


def test_logistic_single_class_with_intercept(rng):
    data = mtlx.TaskData.from_tasks([(rng.standard_normal((4, 2)), np.array([1.0, 1, 1, 1])),
                                     (rng.standard_normal((4, 2)), np.array([1.0, -1, 1, -1]))])
    with pytest.raises(ValueError, match=r"task 0: the logistic task has only label \+1"):
        mtlx.solve(data, loss="logistic", fit_intercept=True)
    assert mtlx.solve(data, loss="logistic", alpha=0.1).converged  # bounded without an intercept


@pytest.mark.parametrize("weights,match", [
    (np.array([1.0, -0.5, 1.0]), r"task_weights\[1\] = -0.5"),
    (np.array([1.0, 1.0]), r"task_weights has shape \(2,\), expected \(3,\)"),
    (np.array([1.0, np.nan, 1.0]), r"task_weights\[1\] = nan"),
    ("median", r"task_weights must be 'mean', 'sum' or an array of 3 numbers"),
])
def test_task_weights(rng, weights, match):
    data = mtlx.TaskData.from_tasks(good_tasks(rng))
    with pytest.raises(ValueError, match=match):
        mtlx.solve(data, task_weights=weights)


def test_unknown_names_and_bad_numbers(rng):
    data = mtlx.TaskData.from_tasks(good_tasks(rng))
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'"):
        mtlx.solve(data, loss="hinge")
    with pytest.raises(ValueError, match=r"loss of task 2: unknown loss 'cauchy'"):
        mtlx.solve(data, loss=["squared", "squared", "cauchy"])
    with pytest.raises(ValueError, match=r"loss has 2 names but there are 3 tasks"):
        mtlx.solve(data, loss=["squared", "squared"])
    with pytest.raises(ValueError, match=r"unknown penalty 'l0'"):
        mtlx.solve(data, penalty="l0")
    with pytest.raises(ValueError, match=r"unknown penalty 'nuclear'"):
        mtlx.prox(np.ones((2, 2)), penalty="nuclear")
    with pytest.raises(ValueError, match=r"The 'alpha' parameter must be a float in the range \[0.0, inf\). Got -0.1"):
        mtlx.solve(data, alpha=-0.1)
    with pytest.raises(ValueError, match=r"The 'l2' parameter must be a float in the range \[0.0, inf\)"):
        mtlx.solve(data, l2=-1.0)
    with pytest.raises(ValueError, match=r"The 'max_iter' parameter must be an int in the range \[1, inf\]. Got 0"):
        mtlx.solve(data, max_iter=0)
    with pytest.raises(TypeError, match=r"callback must be callable"):
        mtlx.solve(data, callback=3)


def test_bad_warm_start_and_parameters(rng):
    data = mtlx.TaskData.from_tasks(good_tasks(rng))
    with pytest.raises(ValueError, match=r"W0 has shape \(3, 4\), expected \(n_features, n_tasks\) = \(4, 3\)"):
        mtlx.solve(data, W0=np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"b0 has shape \(2,\), expected \(n_tasks,\) = \(3,\)"):
        mtlx.solve(data, fit_intercept=True, b0=np.zeros(2))
    with pytest.raises(ValueError, match=r"b0 was given but fit_intercept is False"):
        mtlx.solve(data, b0=np.zeros(3))
    W = np.zeros((4, 3))
    W[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"W contains NaN or infinity in column 2 \(task 2\)"):
        mtlx.loss_grad(data, W)


def test_core_refuses_silent_conversions():
    from mtlx import _core

    X = np.ones((3, 2), dtype=np.float32)
    with pytest.raises(TypeError):  # float64 W against float32 X: no hidden copy, no wrong answer
        _core.loss_grad_stacked(X, np.ones(3, np.float32), np.array([0, 3]), np.zeros(1, np.uint8),
                                np.ones(1), np.ones(1), np.ones((1, 2)), None, None, None, 1)
    with pytest.raises(ValueError, match=r"Wt has shape \(2, 2\), expected \(1, 2\)"):
        _core.loss_grad_stacked(X, np.ones(3, np.float32), np.array([0, 3]), np.zeros(1, np.uint8),
                                np.ones(1), np.ones(1), np.ones((2, 2), np.float32), None, None, None, 1)


def test_from_tasks_names_a_task_by_its_id():
    """Shape errors named the task's position ("task 1") where the user's id is 20; NaN errors
    already named the id."""
    rng = np.random.default_rng(0)
    good = (rng.standard_normal((5, 3)), rng.standard_normal(5))
    cases = [((rng.standard_normal((4, 3)), rng.standard_normal(5)), r"task 20: X has 4 rows but y has 5 entries"),
             ((rng.standard_normal((4, 2)), rng.standard_normal(4)),
              r"task 20: X has 2 features \(shape \(4, 2\)\) but task 10 has 3 \(shape \(5, 3\)\)"),
             ((rng.standard_normal((4, 3)), rng.standard_normal((4, 2))), r"task 20: y must be 1-D"),
             ("not a pair", r"task 20: expected an \(X, y\) pair")]
    for bad, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            mtlx.TaskData.from_tasks([good, bad], task_ids=[10, 20])
    with pytest.raises(ValueError, match=r"task 'b': X has 4 rows|task b: X has 4 rows"):
        mtlx.TaskData.from_tasks([good, cases[0][0]], task_ids=["a", "b"])
