"""mtlx.prox and mtlx.penalty_value against closed forms (l1, l21), numpy's SVD (trace) and a linear solve (mean)."""

import numpy as np
import pytest

import mtlx

from reference import PROX_REF, penalty_ref


def matrices(rng, dtype):
    """A dense W, one with zero rows, and a rank-deficient one (d x T)."""
    dense = rng.standard_normal((12, 5))
    zero_rows = dense.copy()
    zero_rows[[0, 3, 7]] = 0.0
    rank2 = rng.standard_normal((12, 2)) @ rng.standard_normal((2, 5))
    wide = rng.standard_normal((3, 8))  # more tasks than features
    return {"dense": dense.astype(dtype), "zero_rows": zero_rows.astype(dtype),
            "rank2": rank2.astype(dtype), "wide": wide.astype(dtype)}


@pytest.mark.parametrize("penalty", ["l1", "l21", "trace", "mean"])
@pytest.mark.parametrize("kind", ["dense", "zero_rows", "rank2", "wide"])
@pytest.mark.parametrize("tau", [0.0, 0.3, 1.7, 100.0])
def test_prox_matches_reference(rng, dtype, penalty, kind, tau):
    W = matrices(rng, dtype)[kind]
    step, alpha = 0.5, 2 * tau  # the prox of step*alpha*g
    out = mtlx.prox(W, penalty=penalty, step=step, alpha=alpha)
    ref = PROX_REF[penalty](W.astype(np.float64), tau)
    assert out.shape == W.shape and out.dtype == dtype
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out, ref, **tol)
    if penalty in ("l1", "l21"):
        assert np.all(out[ref == 0] == 0)  # exact zeros where the closed form has them


@pytest.mark.parametrize("penalty", ["l1", "l21", "trace", "mean"])
def test_penalty_value(rng, dtype, penalty):
    for W in matrices(rng, dtype).values():
        tol = 1e-12 if dtype == np.float64 else 1e-5
        assert mtlx.penalty_value(W, penalty) == pytest.approx(penalty_ref(W.astype(np.float64), penalty), rel=tol)


def test_trace_prox_lowers_rank(rng):
    U, _ = np.linalg.qr(rng.standard_normal((10, 4)))
    V, _ = np.linalg.qr(rng.standard_normal((6, 4)))
    W = (U * np.array([5.0, 3.0, 1.0, 0.5])) @ V.T
    out = mtlx.prox(W, "trace", step=1.0, alpha=2.0)
    np.testing.assert_allclose(np.linalg.svd(out, compute_uv=False)[:4], [3.0, 1.0, 0.0, 0.0], atol=1e-12)


def test_l21_zeroes_whole_rows(rng):
    W = rng.standard_normal((6, 4))
    W[2] *= 1e-3
    out = mtlx.prox(W, "l21", step=1.0, alpha=0.1)
    assert np.all(out[2] == 0) and np.all(out[[0, 1, 3, 4, 5]] != 0)


@pytest.mark.parametrize("penalty", ["l1", "l21", "trace", "mean", "linf1"])
def test_a_zero_step_returns_w_exactly(rng, dtype, penalty):
    """As documented, step 0 returns W: exactly, not through trace's SVD (1.8e-15 off) or the
    mean's shrinkage (2.2e-16 off); a new array, in W's dtype."""
    W = rng.standard_normal((9, 4)).astype(dtype)
    out = mtlx.prox(W, penalty, step=0.0, alpha=3.0)
    np.testing.assert_array_equal(out, W)
    assert out.dtype == dtype and not np.shares_memory(out, W)


def test_none_is_identity(rng):
    W = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(mtlx.prox(W, "none", step=1.0, alpha=5.0), W)


def test_prox_does_not_modify_input_and_accepts_c_order(rng):
    W = np.ascontiguousarray(rng.standard_normal((7, 3)))
    keep = W.copy()
    out = mtlx.prox(W, "l1", step=1.0, alpha=0.5)
    np.testing.assert_array_equal(W, keep)
    np.testing.assert_allclose(out, PROX_REF["l1"](keep, 0.5))


@pytest.mark.parametrize("axis", [0, 1])
def test_scaled_norms_match_numpy_and_survive_overflow_and_underflow(axis):
    """The penalties' row / column norms (natively where the axis is contiguous) against numpy's
    norm, on rows whose squares overflow (1e200), underflow (1e-170), are zero, or hold NaN/inf."""
    from mtlx.penalties._statistics import scaled_norms

    rng = np.random.default_rng(4)
    M = rng.standard_normal((7, 9))
    M[1] = 0.0
    M[2] *= 1e-170
    M[3] *= 1e200
    M[4, 2] = np.nan
    M[5, 3] = np.inf
    M[6, :4] = 0.0
    expected = np.array([np.linalg.norm(row / np.abs(row).max()) * np.abs(row).max() if np.abs(row).max() > 0
                         else 0.0 for row in M[[0, 1, 2, 3, 6]]])
    for layout in (M, np.asfortranarray(M)):  # native and numpy paths, both axes
        got = scaled_norms(layout if axis == 1 else layout.T, axis=axis)
        np.testing.assert_allclose(got[[0, 1, 2, 3, 6]], expected, rtol=1e-15)
        assert np.isnan(got[4]) and got[5] == np.inf
