/// \file row_norms.hpp
/// Euclidean norms of the rows of a row-major matrix, safe from overflow and underflow as BLAS's
/// nrm2 is, at the price of a plain sum of squares wherever that sum lies in range.
#pragma once

#include <cstdint>

namespace mtlx::cpu {

/// out[i] = ||M[i, :]||_2 for M (rows x cols, row-major). A row whose sum of squares falls
/// outside [2^-960, 2^1000] (squares that underflow or overflow, a zero row, NaN or inf) is
/// summed again scaled by its largest magnitude: max|x| sqrt(sum (x / max|x|)^2).
void row_norms(const double* M, std::int64_t rows, std::int64_t cols, double* out);

}  // namespace mtlx::cpu
