/// \file exact_sum.hpp
/// Sums over rows whose result does not depend on the order of the rows, nor on how the rows are
/// split between processes: the reduction that makes a distributed shared-trunk fit give the
/// bits of one process.
///
/// Each value is cut into three integer limbs of 40 bits at a binary exponent common to its
/// column (the largest over every process: an Allreduce MAX), the limbs are summed exactly in
/// int64 (an Allreduce SUM of integers is exact in any order), and the sums are recombined. The
/// parts of a value below 2^(e - 120) are dropped, the same way wherever the value is summed; the
/// result is within a few ulp of the exact sum. Up to 2^23 rows per column.
#pragma once

#include <cstdint>

namespace mtlx::cpu {

/// Exponent of a column none of whose values is non-zero.
inline constexpr std::int32_t kNoExponent = -1100;

/// out[j] = max(out[j], e) with |rows[i, j]| < 2^e for every finite row i (rows: n_rows x n_cols row-major;
/// float or double).
template <class Real>
void column_exponents(const Real* rows, std::int64_t n_rows, std::int64_t n_cols, std::int32_t* out);

/// limbs (4 x n_cols row-major) += the three limbs of every row at the columns' exponents; the
/// fourth row counts the non-finite values (their column's sum is then NaN).
template <class Real>
void accumulate_limbs(const Real* rows, std::int64_t n_rows, std::int64_t n_cols, const std::int32_t* exponents,
                      std::int64_t* limbs);

/// out[j] = (limbs[0, j] + limbs[1, j] 2^-40 + limbs[2, j] 2^-80) 2^(exponents[j] - 40), or NaN
/// where limbs[3, j] counted a non-finite value.
void limbs_to_double(const std::int64_t* limbs, std::int64_t n_cols, const std::int32_t* exponents, double* out);

}  // namespace mtlx::cpu
