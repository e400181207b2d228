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


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
