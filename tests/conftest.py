import numpy as np
import pytest


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    return request.param


def make_tasks(rng, sizes, d, dtype=np.float64, logistic=()):
    """Ragged tasks; tasks whose index is in `logistic` get labels in {-1, +1}."""
    tasks = []
    for t, m in enumerate(sizes):
        X = rng.standard_normal((m, d)).astype(dtype)
        if t in logistic:
            y = np.where(rng.standard_normal(m) > 0, 1.0, -1.0).astype(dtype)
        else:
            y = rng.standard_normal(m).astype(dtype)
        tasks.append((X, y))
    return tasks


def chain_incidence(n):
    """The incidence matrix (n x n-1) of n tasks joined in a chain: edge (t, t + 1) is +1 at t, -1 at t + 1."""
    R = np.zeros((n, n - 1))
    R[np.arange(n - 1), np.arange(n - 1)], R[np.arange(1, n), np.arange(n - 1)] = 1.0, -1.0
    return R


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
