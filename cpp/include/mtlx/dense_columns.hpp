/// \file dense_columns.hpp
/// The passes over a dense row-major X (n x d) that the working-set engine makes on wide problems
/// with few tasks: X' R for a few residual rows (a gap check of a lasso, with its extrapolated
/// dual point in the same pass), and the gather of a working set's columns.
///
/// Bitwise the same for any thread count: threads split X's columns into fixed ranges, and each
/// output entry is summed over the rows in one fixed order.
#pragma once

#include <cstdint>

namespace mtlx::cpu {

/// out (m x d, row-major) = R X for R (m x n, row-major) and X (n x d, row-major): the products
/// x_j' r_q of every column with a few residuals. One pass over X, streamed in storage order
/// (a GEMV per residual read X once each; BLAS's small GEMMs in row blocks cost twice the pass).
template <class Real>
void dense_transpose_times(const Real* X, std::int64_t n, std::int64_t d, const double* R, std::int64_t m, double* out,
                           int n_threads);

/// out (k x n, row-major) = (X[:, features] - xbar)': column features[p] of X, less xbar[p]
/// (xbar null: nothing subtracted), as contiguous row p, in float64. Each feature < d.
template <class Real>
void dense_gather_columns(const Real* X, std::int64_t n, std::int64_t d, const std::int64_t* features, std::int64_t k,
                          const double* xbar, double* out, int n_threads);

}  // namespace mtlx::cpu
