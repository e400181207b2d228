"""The register-tiled GEMM of the shared trunk's layers (cpp/src/cpu/tile_gemm.cpp), against numpy.

The kernel computes every element of C as one chain of multiply-adds in the order of the inner
index: with integer entries every partial sum is exact, so it must equal numpy bit for bit; with
random entries it must agree to rounding, on every tile edge (rows and columns that do not fill a
register tile), transposed operands (views), accumulation, inner dimensions across its 256-index
passes, and on any number of threads bitwise.
"""

from __future__ import annotations

import numpy as np
import pytest

from mtlx import _core

DTYPES = [np.float64, np.float32]


@pytest.fixture(params=["avx512", "avx2"])
def isa(request):
    """Each build of the kernel this CPU runs (an AVX-512 CPU runs both)."""
    probe = np.zeros((1, 1))
    if not _core.tile_gemm(probe, probe, probe.copy(), False, 1, request.param):
        pytest.skip(f"this CPU does not run the {request.param} kernel (its widest: {_core.active_isa()})")
    return request.param


def tiled(A, B, C=None, accumulate=False, n_threads=1, isa=None):
    """A @ B (+ C) by the kernel."""
    out = np.zeros((A.shape[0], B.shape[1]), dtype=A.dtype) if C is None else C
    assert _core.tile_gemm(A, B, out, accumulate, n_threads, isa)
    return out


def operands(rng, m, n, k, dtype, trans_a, trans_b, integers=False):
    draw = (lambda shape: rng.integers(-8, 9, size=shape).astype(dtype)) if integers else (
        lambda shape: rng.standard_normal(shape).astype(dtype))
    A = draw((k, m)).T if trans_a else draw((m, k))
    B = draw((n, k)).T if trans_b else draw((k, n))
    return A, B


SHAPES = [(1, 1, 1), (5, 7, 3), (13, 20, 100), (14, 32, 256), (15, 33, 257), (29, 16, 20), (100, 128, 256),
          (256, 20, 128), (128, 20, 256), (3, 130, 600), (40, 9, 0), (0, 5, 3), (6, 0, 4), (17, 48, 513)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_integer_products_are_exact(isa, dtype, m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    A, B = operands(rng, m, n, k, dtype, trans_a, trans_b, integers=True)
    C0 = rng.integers(-50, 51, size=(m, n)).astype(dtype)
    expected = A.astype(np.float64) @ B.astype(np.float64)
    np.testing.assert_array_equal(tiled(A, B, isa=isa), expected)
    np.testing.assert_array_equal(tiled(A, B, C0.copy(), accumulate=True, isa=isa), expected + C0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_random_products_agree_to_rounding(isa, dtype, m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(7 + m + n + k)
    A, B = operands(rng, m, n, k, dtype, trans_a, trans_b)
    expected = A.astype(np.longdouble) @ B.astype(np.longdouble)
    # |sum of k rounded multiply-adds - exact| <= k eps sum |a b| (first order)
    bound = 1.01 * max(k, 1) * np.finfo(dtype).eps * (np.abs(A).astype(np.longdouble) @ np.abs(B))
    got = tiled(A, B, isa=isa)
    assert got.dtype == dtype
    assert np.all(np.abs(got - expected) <= bound + np.finfo(dtype).tiny)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("accumulate", [False, True])
def test_strided_views_and_rows_of_c(isa, dtype, accumulate):
    """Operands with row strides wider than their rows (slices of larger arrays), and C a block of
    a larger matrix: only the block is written, from the block's own entries when accumulating."""
    rng = np.random.default_rng(3)
    big_a = rng.standard_normal((60, 90)).astype(dtype)
    big_b = rng.standard_normal((70, 80)).astype(dtype)
    A, B = big_a[5:36:2, 3:61], big_b[7:65, 10:47]
    big_c = np.full((40, 60), 7.0, dtype=dtype)
    big_c[2:18, 4:41] = rng.standard_normal((16, 37))
    start = big_c[2:18, 4:41].astype(np.float64) if accumulate else 0.0
    tiled(A, B, big_c[2:18, 4:41], accumulate=accumulate, isa=isa)
    expected = start + A.astype(np.float64) @ B.astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(big_c[2:18, 4:41], expected, rtol=tol, atol=tol * np.abs(expected).max())
    outside = np.ones(big_c.shape, bool)
    outside[2:18, 4:41] = False
    assert np.all(big_c[outside] == 7.0)


@pytest.mark.parametrize("dtype,ulp", [(np.float32, 2.0**-13), (np.float64, 2.0**-27)])
def test_each_step_is_a_fused_multiply_add(isa, dtype, ulp):
    """(1 + u)^2 - 1 = 2u + u^2 exactly when a * b + c is rounded once; rounding a * b first loses
    the u^2 (1 + 2u + u^2 is not representable)."""
    a = np.array([[1.0 + ulp]], dtype=dtype)
    c = np.array([[-1.0]], dtype=dtype)
    tiled(a, a, c, accumulate=True, isa=isa)
    assert c[0, 0] == dtype(2 * ulp + ulp * ulp)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_build_and_tile_position_gives_the_same_bits(dtype):
    """Each element is the same chain wherever it falls in the tiles (a sub-block of the operands
    gives the corresponding sub-block of C, bit for bit) and in every build this CPU runs."""
    rng = np.random.default_rng(17)
    A = rng.standard_normal((61, 300)).astype(dtype)
    B = rng.standard_normal((300, 75)).astype(dtype)
    builds = [isa for isa in ("avx512", "avx2")
              if _core.tile_gemm(A[:1, :1], B[:1, :1], np.zeros((1, 1), dtype), False, 1, isa)]
    if not builds:
        pytest.skip(f"no register-tiled kernel on this CPU ({_core.active_isa()})")
    whole = tiled(A, B, isa=builds[0])
    for isa in builds:
        np.testing.assert_array_equal(tiled(A, B, isa=isa), whole)
        np.testing.assert_array_equal(tiled(A[9:40], B[:, 5:62], isa=isa), whole[9:40, 5:62])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", [256, 200, 77])
def test_rows_a_kib_apart_are_copied_with_the_same_bits(isa, dtype, cols):
    """A B whose rows lie a multiple of 1 KiB apart, read by many row tiles, has its panels copied
    (cache sets, tile_gemm.cpp): the same chains as a B read in place, so the same bits, on whole
    and partial panels (cols of a 256-wide array), over one and two passes of the inner index."""
    rng = np.random.default_rng(cols)
    wide = 1024 // np.dtype(dtype).itemsize * 2  # rows 2 KiB apart
    for m, k in [(100, 100), (61, 300)]:
        A = rng.standard_normal((m, k)).astype(dtype)
        big = rng.standard_normal((k, wide)).astype(dtype)
        B = big[:, :cols]
        in_place = np.zeros((k, cols + 3), dtype)[:, :cols]  # rows not a multiple of 1 KiB apart
        in_place[...] = B
        assert in_place.strides[0] % 1024 != 0 and B.strides[0] % 1024 == 0
        got = tiled(A, B, isa=isa)
        np.testing.assert_array_equal(got, tiled(A, in_place, isa=isa))
        exact = A.astype(np.longdouble) @ B.astype(np.longdouble)
        bound = 1.01 * k * np.finfo(dtype).eps * (np.abs(A).astype(np.longdouble) @ np.abs(B))
        assert np.all(np.abs(got - exact) <= bound)


@pytest.mark.parametrize("dtype", DTYPES)
def test_accumulating_in_pieces_equals_one_product(isa, dtype):
    """X' dZ summed block by block of rows (the trunk's weight gradients) is the one-pass product,
    bit for bit: every element is one chain in the order of the inner index."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((1000, 37)).astype(dtype)
    D = rng.standard_normal((1000, 45)).astype(dtype)
    whole = tiled(X.T, D, isa=isa)
    pieces = np.zeros_like(whole)
    for start, stop in [(0, 256), (256, 300), (300, 811), (811, 1000)]:
        tiled(X[start:stop].T, D[start:stop], pieces, accumulate=True, isa=isa)
    np.testing.assert_array_equal(pieces, whole)


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_do_not_change_a_bit(isa, dtype):
    rng = np.random.default_rng(5)
    A = rng.standard_normal((517, 300)).astype(dtype)
    B = rng.standard_normal((300, 141)).astype(dtype)
    one = tiled(A, B, isa=isa)
    np.testing.assert_array_equal(tiled(A, B, n_threads=2, isa=isa), one)
    np.testing.assert_array_equal(tiled(A, B, n_threads=3, isa=isa), one)


def test_bad_arguments_are_named():
    A = np.ones((4, 3))
    with pytest.raises(ValueError, match="B has 2 rows, A 3 columns"):
        _core.tile_gemm(A, np.ones((2, 5)), np.zeros((4, 5)), False, 1)
    with pytest.raises(ValueError, match="C"):
        _core.tile_gemm(A, np.ones((3, 5)), np.zeros((4, 6)), False, 1)
    with pytest.raises(ValueError, match="C's rows must be contiguous"):
        _core.tile_gemm(A, np.ones((3, 5)), np.zeros((5, 4)).T, False, 1)
    with pytest.raises(ValueError, match="A: strides"):
        _core.tile_gemm(A[::-1], np.ones((3, 5)), np.zeros((4, 5)), False, 1)
    with pytest.raises(ValueError, match="n_threads"):
        _core.tile_gemm(A, np.ones((3, 5)), np.zeros((4, 5)), False, 0)
    B = np.ones((3, 5))
    square = np.ones((4, 4))
    with pytest.raises(ValueError, match="C must not overlap A or B"):
        _core.tile_gemm(square[:, :3], np.ones((3, 3)), square[:, 1:], False, 1)
    with pytest.raises(ValueError, match="C must not overlap A or B"):
        _core.tile_gemm(np.ones((3, 3)), B, B, False, 1)
    with pytest.raises(ValueError, match="C's rows overlap each other"):
        _core.tile_gemm(A, B, np.lib.stride_tricks.as_strided(np.zeros(8), (4, 5), (8, 8), writeable=True), False, 1)
    with pytest.raises(ValueError, match="A is not aligned"):
        raw = np.zeros(4 * 3 * 8 + 1, np.uint8)[1:].view(np.float64).reshape(4, 3)
        _core.tile_gemm(raw, B, np.zeros((4, 5)), False, 1)
    with pytest.raises(ValueError, match="no register-tiled GEMM is built for 'sse2'"):
        _core.tile_gemm(A, np.ones((3, 5)), np.zeros((4, 5)), False, 1, "sse2")
    with pytest.raises(TypeError):  # no silent conversion of a float32 C
        _core.tile_gemm(A, np.ones((3, 5)), np.zeros((4, 5), np.float32), False, 1)
