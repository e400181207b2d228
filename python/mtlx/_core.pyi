"""Type stub of ``mtlx._core``, the compiled core (``cpp/bindings/module.cpp``).

The module is private: the Python package converts its input once, at the edge, and calls these
functions with C-contiguous arrays of the exact dtype (no conversion happens here: a wrong dtype
or layout is a ``TypeError``). The functions over the data have a float64 and a float32
overload (the working-set ones are float64 only); ``weights`` and the float64 parts of the Gram
reference are float64 in both.

``tests/test_packaging.py`` compares this file with the built module (names, overloads,
parameter names, array dtypes), so a binding that changes must change this stub too.
"""

from collections.abc import Callable
from types import ModuleType
from typing import ClassVar, SupportsFloat, SupportsIndex, SupportsInt, overload

import numpy as np
from numpy.typing import NDArray
from typing_extensions import TypeAlias

# What pybind11 accepts for a C++ integer or floating-point argument.
_Int: TypeAlias = SupportsInt | SupportsIndex
_Float: TypeAlias = SupportsFloat | SupportsIndex

# The codes the Python layer passes to the core (defined once, in the C++ headers).

class LossKind:
    """Per-sample losses the core evaluates (mtlx/losses.hpp)."""

    squared: ClassVar[LossKind]
    logistic: ClassVar[LossKind]
    huber: ClassVar[LossKind]
    squared_hinge: ClassVar[LossKind]
    poisson: ClassVar[LossKind]
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...

class PenaltyKind:
    """Penalties whose prox the core computes (mtlx/prox.hpp)."""

    none: ClassVar[PenaltyKind]
    l1: ClassVar[PenaltyKind]
    l21: ClassVar[PenaltyKind]
    trace: ClassVar[PenaltyKind]
    mean: ClassVar[PenaltyKind]
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...

class Activation:
    """Hidden-layer activations of shared-trunk networks (mtlx/trunk.hpp)."""

    identity: ClassVar[Activation]
    relu: ClassVar[Activation]
    tanh: ClassVar[Activation]
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...

# Losses and gradients of the stacked (ragged) and shared-input layouts.

@overload
def loss_grad_stacked(
    X: NDArray[np.float64],
    y: NDArray[np.float64],
    offsets: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float64],
    b: NDArray[np.float64] | None,
    gWt: NDArray[np.float64] | None,
    gb: NDArray[np.float64] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float64] | None = None,
) -> float:
    """Loss of stacked ragged tasks at (Wt, b), rows weighted by sample_weight; gradient into (gWt, gb) if given."""

@overload
def loss_grad_stacked(
    X: NDArray[np.float32],
    y: NDArray[np.float32],
    offsets: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float32],
    b: NDArray[np.float32] | None,
    gWt: NDArray[np.float32] | None,
    gb: NDArray[np.float32] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float32] | None = None,
) -> float: ...
@overload
def loss_grad_shared(
    X: NDArray[np.float64],
    Y: NDArray[np.float64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float64],
    b: NDArray[np.float64] | None,
    gWt: NDArray[np.float64] | None,
    gb: NDArray[np.float64] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float64] | None = None,
) -> float:
    """Loss of tasks sharing one X at (Wt, b), entries weighted by sample_weight; gradient into (gWt, gb) if given."""

@overload
def loss_grad_shared(
    X: NDArray[np.float32],
    Y: NDArray[np.float32],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float32],
    b: NDArray[np.float32] | None,
    gWt: NDArray[np.float32] | None,
    gb: NDArray[np.float32] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float32] | None = None,
) -> float: ...

# The working-set engine's passes over a dense row-major X (float32 or float64).

@overload
def dense_transpose_times(
    X: NDArray[np.float64], R: NDArray[np.float64], out: NDArray[np.float64], n_threads: _Int = 1
) -> None:
    """out (m x d) = R X for a row-major X (n x d) and R (m x n), float64 out: one pass over X."""

@overload
def dense_transpose_times(
    X: NDArray[np.float32], R: NDArray[np.float64], out: NDArray[np.float64], n_threads: _Int = 1
) -> None: ...
@overload
def dense_gather_columns(
    X: NDArray[np.float64],
    features: NDArray[np.int64],
    xbar: NDArray[np.float64] | None,
    out: NDArray[np.float64],
    n_threads: _Int = 1,
) -> None:
    """out (k x n) = (X[:, features] - xbar)' in float64 (xbar None: not centered), each column contiguous."""

@overload
def dense_gather_columns(
    X: NDArray[np.float32],
    features: NDArray[np.int64],
    xbar: NDArray[np.float64] | None,
    out: NDArray[np.float64],
    n_threads: _Int = 1,
) -> None: ...

# Losses and gradients with a CSR X (scipy's data, indices, indptr: never densified).

@overload
def csr_transpose_times(
    data: NDArray[np.float64],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    R: NDArray[np.float64],
    out: NDArray[np.float64],
    accumulate: bool = False,
    n_threads: _Int = 1,
) -> None:
    """out = X' R (out += X' R with accumulate) for a CSR X (n x d), R (n x T) and out (d x T), float64."""

@overload
def csr_transpose_times(
    data: NDArray[np.float64],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    R: NDArray[np.float64],
    out: NDArray[np.float64],
    accumulate: bool = False,
    n_threads: _Int = 1,
) -> None: ...
@overload
def csr_transpose_times(
    data: NDArray[np.float32],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    R: NDArray[np.float64],
    out: NDArray[np.float64],
    accumulate: bool = False,
    n_threads: _Int = 1,
) -> None: ...
@overload
def csr_transpose_times(
    data: NDArray[np.float32],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    R: NDArray[np.float64],
    out: NDArray[np.float64],
    accumulate: bool = False,
    n_threads: _Int = 1,
) -> None: ...
@overload
def csr_gram_rows(
    c_data: NDArray[np.float64],
    c_indices: NDArray[np.int32],
    c_indptr: NDArray[np.int32],
    data: NDArray[np.float64],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    out: NDArray[np.float64],
    n_threads: _Int = 1,
) -> None:
    """out (k x n_cols) = C X for C (k x n) in CSR (float64 entries, X's index type) and a CSR X (n x n_cols): with C
    the gathered columns X_S', the Gram rows X_S' X."""

@overload
def csr_gram_rows(
    c_data: NDArray[np.float64],
    c_indices: NDArray[np.int64],
    c_indptr: NDArray[np.int64],
    data: NDArray[np.float64],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    out: NDArray[np.float64],
    n_threads: _Int = 1,
) -> None: ...
@overload
def csr_gram_rows(
    c_data: NDArray[np.float64],
    c_indices: NDArray[np.int32],
    c_indptr: NDArray[np.int32],
    data: NDArray[np.float32],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    out: NDArray[np.float64],
    n_threads: _Int = 1,
) -> None: ...
@overload
def csr_gram_rows(
    c_data: NDArray[np.float64],
    c_indices: NDArray[np.int64],
    c_indptr: NDArray[np.int64],
    data: NDArray[np.float32],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    out: NDArray[np.float64],
    n_threads: _Int = 1,
) -> None: ...
@overload
def csr_select_columns(
    data: NDArray[np.float64],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    position: NDArray[np.int64],
    k: _Int,
    starts: NDArray[np.int32] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int32], NDArray[np.int32], NDArray[np.float64], NDArray[np.float64]]:
    """Columns j of a CSR X with position[j] >= 0 as rows position[j] of a k x n CSR (X's index type), with sums and
    squared norms; starts: that CSR's k + 1 row pointers when the caller counted them (X's column counts)."""

@overload
def csr_select_columns(
    data: NDArray[np.float64],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    position: NDArray[np.int64],
    k: _Int,
    starts: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]: ...
@overload
def csr_select_columns(
    data: NDArray[np.float32],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    position: NDArray[np.int64],
    k: _Int,
    starts: NDArray[np.int32] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int32], NDArray[np.int32], NDArray[np.float64], NDArray[np.float64]]: ...
@overload
def csr_select_columns(
    data: NDArray[np.float32],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    position: NDArray[np.int64],
    k: _Int,
    starts: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]: ...
@overload
def csr_times(
    data: NDArray[np.float64],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    V: NDArray[np.float64],
    out: NDArray[np.float64],
    accumulate: bool = False,
    n_threads: _Int = 1,
) -> None:
    """out = X V (out += X V with accumulate) for a CSR X (n x d), V (d x T) and out (n x T), float64."""

@overload
def csr_times(
    data: NDArray[np.float64],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    V: NDArray[np.float64],
    out: NDArray[np.float64],
    accumulate: bool = False,
    n_threads: _Int = 1,
) -> None: ...
@overload
def csr_times(
    data: NDArray[np.float32],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    V: NDArray[np.float64],
    out: NDArray[np.float64],
    accumulate: bool = False,
    n_threads: _Int = 1,
) -> None: ...
@overload
def csr_times(
    data: NDArray[np.float32],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    V: NDArray[np.float64],
    out: NDArray[np.float64],
    accumulate: bool = False,
    n_threads: _Int = 1,
) -> None: ...
@overload
def loss_grad_csr_stacked(
    data: NDArray[np.float64],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    y: NDArray[np.float64],
    offsets: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float64],
    b: NDArray[np.float64] | None,
    gWt: NDArray[np.float64] | None,
    gb: NDArray[np.float64] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float64] | None = None,
) -> float:
    """Loss of stacked tasks with a CSR X at (Wt, b); gradient into (gWt, gb) if given."""

@overload
def loss_grad_csr_stacked(
    data: NDArray[np.float64],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    y: NDArray[np.float64],
    offsets: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float64],
    b: NDArray[np.float64] | None,
    gWt: NDArray[np.float64] | None,
    gb: NDArray[np.float64] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float64] | None = None,
) -> float: ...
@overload
def loss_grad_csr_stacked(
    data: NDArray[np.float32],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    y: NDArray[np.float32],
    offsets: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float32],
    b: NDArray[np.float32] | None,
    gWt: NDArray[np.float32] | None,
    gb: NDArray[np.float32] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float32] | None = None,
) -> float: ...
@overload
def loss_grad_csr_stacked(
    data: NDArray[np.float32],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    y: NDArray[np.float32],
    offsets: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float32],
    b: NDArray[np.float32] | None,
    gWt: NDArray[np.float32] | None,
    gb: NDArray[np.float32] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float32] | None = None,
) -> float: ...
@overload
def loss_grad_csr_shared(
    data: NDArray[np.float64],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    Y: NDArray[np.float64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float64],
    b: NDArray[np.float64] | None,
    gWt: NDArray[np.float64] | None,
    gb: NDArray[np.float64] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float64] | None = None,
) -> float:
    """Loss of tasks sharing one CSR X at (Wt, b); gradient into (gWt, gb) if given."""

@overload
def loss_grad_csr_shared(
    data: NDArray[np.float64],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    Y: NDArray[np.float64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float64],
    b: NDArray[np.float64] | None,
    gWt: NDArray[np.float64] | None,
    gb: NDArray[np.float64] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float64] | None = None,
) -> float: ...
@overload
def loss_grad_csr_shared(
    data: NDArray[np.float32],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    n_cols: _Int,
    Y: NDArray[np.float32],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float32],
    b: NDArray[np.float32] | None,
    gWt: NDArray[np.float32] | None,
    gb: NDArray[np.float32] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float32] | None = None,
) -> float: ...
@overload
def loss_grad_csr_shared(
    data: NDArray[np.float32],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    n_cols: _Int,
    Y: NDArray[np.float32],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    weights: NDArray[np.float64],
    Wt: NDArray[np.float32],
    b: NDArray[np.float32] | None,
    gWt: NDArray[np.float32] | None,
    gb: NDArray[np.float32] | None,
    n_threads: _Int,
    sample_weight: NDArray[np.float32] | None = None,
) -> float: ...

# Penalties.

@overload
def prox(kind: _Int, V: NDArray[np.float64], tau: _Float, out: NDArray[np.float64], n_threads: _Int) -> float:
    """out = prox of tau*g at V (V, out: T x d row-major, may alias); returns g(out)."""

@overload
def prox(kind: _Int, V: NDArray[np.float32], tau: _Float, out: NDArray[np.float32], n_threads: _Int) -> float: ...
@overload
def penalty_value(kind: _Int, W: NDArray[np.float64], n_threads: _Int) -> float:
    """g(W) for W stored T x d row-major."""

@overload
def penalty_value(kind: _Int, W: NDArray[np.float32], n_threads: _Int) -> float: ...

# Scans over the data.

@overload
def first_nonfinite_row(X: NDArray[np.float64], n_threads: _Int) -> int:
    """Index of the first row with NaN or inf, or -1."""

@overload
def first_nonfinite_row(X: NDArray[np.float32], n_threads: _Int) -> int: ...
@overload
def read_sum(a: NDArray[np.float64], n_threads: _Int) -> float:
    """Sum of all entries: a plain read loop (bandwidth reference)."""

@overload
def read_sum(a: NDArray[np.float32], n_threads: _Int) -> float: ...

# The Gram form of the squared loss.

@overload
def gram_build_stacked(
    X: NDArray[np.float64], offsets: NDArray[np.int64], G: NDArray[np.float64], s: NDArray[np.float64]
) -> None:
    """G[t] = X_t' X_t and s[t] = X_t' 1 for the stacked tasks."""

@overload
def gram_build_stacked(
    X: NDArray[np.float32], offsets: NDArray[np.int64], G: NDArray[np.float32], s: NDArray[np.float32]
) -> None: ...
@overload
def gram_build_shared(X: NDArray[np.float64], G: NDArray[np.float64], s: NDArray[np.float64]) -> None:
    """G[0] = X' X and s[0] = X' 1 for the shared X."""

@overload
def gram_build_shared(X: NDArray[np.float32], G: NDArray[np.float32], s: NDArray[np.float32]) -> None: ...
@overload
def loss_grad_gram_stacked(
    X: NDArray[np.float64],
    y: NDArray[np.float64],
    offsets: NDArray[np.int64],
    weights: NDArray[np.float64],
    G: NDArray[np.float64],
    s: NDArray[np.float64],
    W0: NDArray[np.float64],
    b0: NDArray[np.float64],
    P0: NDArray[np.float64],
    rr0: NDArray[np.float64],
    rs0: NDArray[np.float64],
    Wt: NDArray[np.float64],
    b: NDArray[np.float64] | None,
    gWt: NDArray[np.float64] | None,
    gb: NDArray[np.float64] | None,
    n_threads: _Int,
) -> float:
    """Squared loss of stacked tasks from their Gram statistics; moves the reference (W0, ...) in place."""

@overload
def loss_grad_gram_stacked(
    X: NDArray[np.float32],
    y: NDArray[np.float32],
    offsets: NDArray[np.int64],
    weights: NDArray[np.float64],
    G: NDArray[np.float32],
    s: NDArray[np.float32],
    W0: NDArray[np.float32],
    b0: NDArray[np.float32],
    P0: NDArray[np.float64],
    rr0: NDArray[np.float64],
    rs0: NDArray[np.float64],
    Wt: NDArray[np.float32],
    b: NDArray[np.float32] | None,
    gWt: NDArray[np.float32] | None,
    gb: NDArray[np.float32] | None,
    n_threads: _Int,
) -> float: ...
@overload
def loss_grad_gram_shared(
    X: NDArray[np.float64],
    Y: NDArray[np.float64],
    weights: NDArray[np.float64],
    G: NDArray[np.float64],
    s: NDArray[np.float64],
    W0: NDArray[np.float64],
    b0: NDArray[np.float64],
    P0: NDArray[np.float64],
    rr0: NDArray[np.float64],
    rs0: NDArray[np.float64],
    Wt: NDArray[np.float64],
    b: NDArray[np.float64] | None,
    gWt: NDArray[np.float64] | None,
    gb: NDArray[np.float64] | None,
    n_threads: _Int,
) -> float:
    """Squared loss of tasks sharing X from the Gram statistics; moves the reference (W0, ...) in place."""

@overload
def loss_grad_gram_shared(
    X: NDArray[np.float32],
    Y: NDArray[np.float32],
    weights: NDArray[np.float64],
    G: NDArray[np.float32],
    s: NDArray[np.float32],
    W0: NDArray[np.float32],
    b0: NDArray[np.float32],
    P0: NDArray[np.float64],
    rr0: NDArray[np.float64],
    rs0: NDArray[np.float64],
    Wt: NDArray[np.float32],
    b: NDArray[np.float32] | None,
    gWt: NDArray[np.float32] | None,
    gb: NDArray[np.float32] | None,
    n_threads: _Int,
) -> float: ...

# The solver's fused vector steps (1-D arrays of one length).

@overload
def gradient_step(y: NDArray[np.float64], g: NDArray[np.float64], step: _Float, out: NDArray[np.float64]) -> None:
    """out = y - step * g."""

@overload
def gradient_step(y: NDArray[np.float32], g: NDArray[np.float32], step: _Float, out: NDArray[np.float32]) -> None: ...
@overload
def trial_sums(
    x_new: NDArray[np.float64],
    y: NDArray[np.float64],
    x: NDArray[np.float64],
    g: NDArray[np.float64],
    move: NDArray[np.float64],
) -> tuple[float, float, float, float, float]:
    """(||x+ - y||^2, <g, x+ - y>, ||x+||^2, ||y||^2, <x+ - y, x+ - x>); writes move = x+ - x."""

@overload
def trial_sums(
    x_new: NDArray[np.float32],
    y: NDArray[np.float32],
    x: NDArray[np.float32],
    g: NDArray[np.float32],
    move: NDArray[np.float32],
) -> tuple[float, float, float, float, float]: ...
@overload
def extrapolate(x_new: NDArray[np.float64], move: NDArray[np.float64], beta: _Float, y: NDArray[np.float64]) -> None:
    """y = x+ + beta * move."""

@overload
def extrapolate(
    x_new: NDArray[np.float32], move: NDArray[np.float32], beta: _Float, y: NDArray[np.float32]
) -> None: ...
@overload
def extrapolate_gradient(
    g_new: NDArray[np.float64],
    g_x: NDArray[np.float64],
    move: NDArray[np.float64],
    beta: _Float,
    g_y: NDArray[np.float64],
) -> float:
    """g_y = (1 + beta) g_new - beta g_x; returns <g_new + g_y, move>."""

@overload
def extrapolate_gradient(
    g_new: NDArray[np.float32],
    g_x: NDArray[np.float32],
    move: NDArray[np.float32],
    beta: _Float,
    g_y: NDArray[np.float32],
) -> float: ...

# Working sets and block coordinate descent (float64 only).

def gather_block(
    H: NDArray[np.float64], rows: NDArray[np.int64], cols: NDArray[np.int64], out: NDArray[np.float64]
) -> None:
    """out[t] = H[t][rows][:, cols] (the working set's block of the Gram-row cache)."""

def cd_epochs(
    H: NDArray[np.float64],
    B: NDArray[np.float64],
    c: NDArray[np.float64],
    alpha: _Float,
    l2: _Float,
    penalty: _Int,
    W: NDArray[np.float64],
    Q: NDArray[np.float64],
    max_epochs: _Int,
    tol: _Float,
) -> tuple[int, float, float]:
    """Block coordinate descent epochs on Gram statistics (l1 / l21 least squares).

    Returns (epochs, max_change, max_abs). Q must hold [H_t w_t]_t and is kept consistent with W.
    """

def cd_epochs_residual(
    X: NDArray[np.float64],
    sq_norms: NDArray[np.float64],
    c: NDArray[np.float64],
    alpha: _Float,
    l2: _Float,
    penalty: _Int,
    W: NDArray[np.float64],
    R: NDArray[np.float64],
    max_epochs: _Int,
    tol: _Float,
    active: NDArray[np.uint8] | None = None,
) -> tuple[int, float, float]:
    """Block coordinate descent epochs from the data (l1 / l21 least squares, shared X).

    X holds the working set's columns as rows (k, n); R = Y - X_S W (T, n) is kept consistent
    with W; with l1, active (k, T) limits the epochs to those entries. Returns (epochs,
    max_change, max_abs).
    """

def cd_epochs_newton(
    X: NDArray[np.float64],
    G: NDArray[np.float64],
    H: NDArray[np.float64],
    curv: NDArray[np.float64],
    g_b: NDArray[np.float64] | None,
    h_b: NDArray[np.float64] | None,
    alpha: _Float,
    l2: _Float,
    penalty: _Int,
    W: NDArray[np.float64],
    Q: NDArray[np.float64],
    db: NDArray[np.float64],
    max_epochs: _Int,
    tol: _Float,
    offsets: NDArray[np.int64] | None = None,
    active: NDArray[np.uint8] | None = None,
) -> tuple[int, float, float]:
    """Coordinate-descent epochs on the quadratic model of a proximal Newton step.

    W (k, T), Q = X_S (W - W0) + db ((T, n); (n,) for stacked tasks, whose row ``offsets`` are
    given) and db (T) are updated in place (NewtonCdProblem in
    mtlx/coordinate_descent.hpp). Returns (epochs, max_change, max_abs).
    """

@overload
def cd_epochs_residual_sparse(
    data: NDArray[np.float64],
    indices: NDArray[np.int32],
    indptr: NDArray[np.int32],
    xbar: NDArray[np.float64] | None,
    col_sums: NDArray[np.float64],
    sq_norms: NDArray[np.float64],
    c: NDArray[np.float64],
    alpha: _Float,
    l2: _Float,
    penalty: _Int,
    W: NDArray[np.float64],
    R: NDArray[np.float64],
    max_epochs: _Int,
    tol: _Float,
) -> tuple[int, float, float]:
    """Coordinate-descent epochs on the residuals R (n x T, row-major) of a sparse working set.

    Its columns as CSR rows, centered implicitly by xbar; returns (epochs, max_change, max_abs).
    """

@overload
def cd_epochs_residual_sparse(
    data: NDArray[np.float64],
    indices: NDArray[np.int64],
    indptr: NDArray[np.int64],
    xbar: NDArray[np.float64] | None,
    col_sums: NDArray[np.float64],
    sq_norms: NDArray[np.float64],
    c: NDArray[np.float64],
    alpha: _Float,
    l2: _Float,
    penalty: _Int,
    W: NDArray[np.float64],
    R: NDArray[np.float64],
    max_epochs: _Int,
    tol: _Float,
) -> tuple[int, float, float]: ...

# Shared-trunk networks (mtlx/trunk.hpp) and order-independent sums (mtlx/exact_sum.hpp).

@overload
def trunk_loss_grad(
    X: NDArray[np.float64],
    params: NDArray[np.float64],
    grad: NDArray[np.float64] | None,
    task_loss: NDArray[np.float64],
    trunk_sizes: NDArray[np.int64],
    task_sizes: NDArray[np.int64],
    activation: Activation,
    row_begin: NDArray[np.int64],
    row_end: NDArray[np.int64],
    out_dims: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    targets: NDArray[np.float64],
    weights: NDArray[np.float64],
    target_col: NDArray[np.int64],
    task_scale: NDArray[np.float64],
    n_threads: _Int = 1,
    task_trunk_grad: NDArray[np.float64] | None = None,
    shared_rows: bool = False,
) -> float:
    """F = sum_t task_scale[t] task_loss[t] of a shared-trunk network and dF/dparams (into grad, unless None).

    task_loss[t] = sum_i w_it L_t. With task_trunk_grad (T x n_trunk), each task's share of the trunk's gradient
    goes to its row there instead. See mtlx/trunk.hpp for the parameter layout.
    """
@overload
def trunk_loss_grad(
    X: NDArray[np.float32],
    params: NDArray[np.float32],
    grad: NDArray[np.float32] | None,
    task_loss: NDArray[np.float64],
    trunk_sizes: NDArray[np.int64],
    task_sizes: NDArray[np.int64],
    activation: Activation,
    row_begin: NDArray[np.int64],
    row_end: NDArray[np.int64],
    out_dims: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    targets: NDArray[np.float32],
    weights: NDArray[np.float32],
    target_col: NDArray[np.int64],
    task_scale: NDArray[np.float64],
    n_threads: _Int = 1,
    task_trunk_grad: NDArray[np.float32] | None = None,
    shared_rows: bool = False,
) -> float: ...
@overload
def trunk_predict(
    X: NDArray[np.float64],
    params: NDArray[np.float64],
    trunk_sizes: NDArray[np.int64],
    task_sizes: NDArray[np.int64],
    activation: Activation,
    row_begin: NDArray[np.int64],
    row_end: NDArray[np.int64],
    out_dims: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    out: NDArray[np.float64],
    n_threads: _Int = 1,
) -> None:
    """Head outputs of a shared-trunk network: out[rows of task t, its K_t columns]."""
@overload
def trunk_predict(
    X: NDArray[np.float32],
    params: NDArray[np.float32],
    trunk_sizes: NDArray[np.int64],
    task_sizes: NDArray[np.int64],
    activation: Activation,
    row_begin: NDArray[np.int64],
    row_end: NDArray[np.int64],
    out_dims: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    out: NDArray[np.float32],
    n_threads: _Int = 1,
) -> None: ...
@overload
def trunk_representation(
    X: NDArray[np.float64],
    params: NDArray[np.float64],
    trunk_sizes: NDArray[np.int64],
    activation: Activation,
    out: NDArray[np.float64],
    n_threads: _Int = 1,
) -> None:
    """The shared representation (last trunk layer's activations) of the rows of X."""
@overload
def trunk_representation(
    X: NDArray[np.float32],
    params: NDArray[np.float32],
    trunk_sizes: NDArray[np.int64],
    activation: Activation,
    out: NDArray[np.float32],
    n_threads: _Int = 1,
) -> None: ...
@overload
def trunk_adam_epoch(
    X: NDArray[np.float64],
    targets: NDArray[np.float64],
    weights: NDArray[np.float64],
    trunk_sizes: NDArray[np.int64],
    task_sizes: NDArray[np.int64],
    activation: Activation,
    row_begin: NDArray[np.int64],
    row_end: NDArray[np.int64],
    out_dims: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    target_col: NDArray[np.int64],
    shared_rows: bool,
    batch_rows: NDArray[np.int64],
    batch_sizes: NDArray[np.int64],
    theta: NDArray[np.float64],
    m: NDArray[np.float64],
    v: NDArray[np.float64],
    step: _Int,
    weight_mask: NDArray[np.uint8],
    lr: _Float,
    beta1: _Float,
    beta2: _Float,
    eps: _Float,
    l2: _Float,
    uncertainty: bool,
    inv_tasks: _Float,
    local_index: NDArray[np.int64],
    task_loss_sum: NDArray[np.float64],
    task_batches: NDArray[np.float64],
    reduce: Callable[..., object] | None,
    n_threads: _Int = 1,
) -> tuple[float, int, bool, int]:
    """One epoch of minibatch Adam on a shared-trunk network (mtlx/trunk.hpp: adam_epoch).

    Returns (sum of the batches' F, batches done, finite, step).
    """
@overload
def trunk_adam_epoch(
    X: NDArray[np.float32],
    targets: NDArray[np.float32],
    weights: NDArray[np.float32],
    trunk_sizes: NDArray[np.int64],
    task_sizes: NDArray[np.int64],
    activation: Activation,
    row_begin: NDArray[np.int64],
    row_end: NDArray[np.int64],
    out_dims: NDArray[np.int64],
    losses: NDArray[np.uint8],
    loss_params: NDArray[np.float64],
    target_col: NDArray[np.int64],
    shared_rows: bool,
    batch_rows: NDArray[np.int64],
    batch_sizes: NDArray[np.int64],
    theta: NDArray[np.float64],
    m: NDArray[np.float64],
    v: NDArray[np.float64],
    step: _Int,
    weight_mask: NDArray[np.uint8],
    lr: _Float,
    beta1: _Float,
    beta2: _Float,
    eps: _Float,
    l2: _Float,
    uncertainty: bool,
    inv_tasks: _Float,
    local_index: NDArray[np.int64],
    task_loss_sum: NDArray[np.float64],
    task_batches: NDArray[np.float64],
    reduce: Callable[..., object] | None,
    n_threads: _Int = 1,
) -> tuple[float, int, bool, int]: ...
@overload
def exact_column_exponents(rows: NDArray[np.float64], out: NDArray[np.int32]) -> None:
    """out[j] = max(out[j], e) with |rows[i, j]| < 2^e (start from exact_no_exponent)."""
@overload
def exact_column_exponents(rows: NDArray[np.float32], out: NDArray[np.int32]) -> None: ...
@overload
def exact_accumulate(rows: NDArray[np.float64], exponents: NDArray[np.int32], limbs: NDArray[np.int64]) -> None:
    """limbs (4 x n) += the 40-bit integer limbs of every row at the columns' exponents (row 3: non-finite values)."""
@overload
def exact_accumulate(rows: NDArray[np.float32], exponents: NDArray[np.int32], limbs: NDArray[np.int64]) -> None: ...

def exact_from_limbs(limbs: NDArray[np.int64], exponents: NDArray[np.int32], out: NDArray[np.float64]) -> None:
    """The sums the limbs hold, as doubles."""

exact_no_exponent: int
trunk_block_rows: int

@overload
def tile_gemm(
    A: NDArray[np.float64], B: NDArray[np.float64], C: NDArray[np.float64], accumulate: bool, n_threads: _Int,
    isa: str | None = None,
) -> bool: ...
@overload
def tile_gemm(
    A: NDArray[np.float32], B: NDArray[np.float32], C: NDArray[np.float32], accumulate: bool, n_threads: _Int,
    isa: str | None = None,
) -> bool:
    """C = (C if accumulate else 0) + A @ B by the register-tiled kernel of the shared trunk's layers (any
    strides for A and B: a transpose is a view); False, computing nothing, where this CPU has no such kernel.
    isa ('avx2', 'avx512') runs that build instead of the widest (False where the CPU lacks it)."""

# BLAS/LAPACK registration and the machine.

def set_routine(name: str, capsule: object) -> None:
    """Registers a BLAS/LAPACK routine from a scipy cython_blas/lapack capsule (a PyCapsule)."""

def lapack_ready() -> bool:
    """True once every BLAS/LAPACK routine the core uses is registered."""

def active_isa() -> str:
    """Instruction set of the streaming kernels chosen for this CPU."""

def row_norms(M: NDArray[np.float64]) -> NDArray[np.float64]:
    """Euclidean norms of the rows of M (C-contiguous float64), safe from overflow and underflow."""

def pointwise_loss_terms(
    kind: _Int, param: _Float, y: NDArray[np.float64], z: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(L, dL/dz, d^2L/dz^2) of one loss (mtlx/losses.hpp) at targets y and margins z, float64."""

def loss_conjugate(kind: _Int, param: _Float, y: NDArray[np.float64], u: NDArray[np.float64]) -> NDArray[np.float64]:
    """L*(y, u) = sup_z (u z - L(y, z)) of one loss (mtlx/losses.hpp), +inf outside its domain, float64."""

def release_free_memory() -> bool:
    """Return the allocator's free pages to the operating system (glibc's malloc_trim); True if any were."""

def max_threads() -> int:
    """Threads the core's OpenMP loops would use by default."""

# The CUDA backend (cpp/bindings/cuda.cpp): the submodule of kernels taking device pointers as
# integers, in builds with MTLX_CUDA; None otherwise.

HAS_CUDA: bool
cuda: ModuleType | None
