// Order-independent sums of rows (see exact_sum.hpp).
//
// The loops run over a row's columns with a per-column scale, accumulator and count, so that they
// vectorize (a shared-trunk evaluation on school's 139 tasks sums 139 rows of 3,584 gradients:
// with a frexp or ldexp call per value this was a third of the evaluation).
#include "mtlx/exact_sum.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "mtlx/hd.hpp"

namespace mtlx::cpu {

namespace {

using i64 = std::int64_t;

constexpr int kLimbBits = 40;

// Rows whose limbs are summed in double before they go to int64: each limb is an integer below
// 2^40 in magnitude, so 2^12 of them sum below 2^52, exactly.
constexpr i64 kRowsPerBlock = i64{1} << 12;

// A column whose scale 2^(40 - e) is not a normal double (its largest value below 2^-983, or no
// non-zero value at all) takes the scalar path through ldexp.
bool extreme(std::int32_t e) { return kLimbBits - e > std::numeric_limits<double>::max_exponent - 1; }

// y (a value scaled to its column: |y| < 2^40) cut into three 40-bit integer limbs. Every
// operation is exact: truncation, the difference of a number and its integer part, scaling by a
// power of two.
inline __attribute__((always_inline)) void split_limbs(double y, double& h0, double& h1, double& h2) {
  const double step = 1099511627776.0;  // 2^40
  h0 = std::trunc(y);
  y = (y - h0) * step;
  h1 = std::trunc(y);
  y = (y - h1) * step;
  h2 = std::trunc(y);
}

// maxabs[j] = max(maxabs[j], |x|) over the finite x of column j.
template <class Real>
MTLX_CLONES void column_max_abs(const Real* __restrict rows, i64 n_rows, i64 n_cols, double* __restrict maxabs) {
  for (i64 i = 0; i < n_rows; ++i) {
    const Real* __restrict row = rows + i * n_cols;
    for (i64 j = 0; j < n_cols; ++j) {
      const double a = std::abs(static_cast<double>(row[j]));
      // (NaN and inf fail the comparison: counted apart by accumulate_limbs)
      const double finite = a <= std::numeric_limits<double>::max() ? a : 0.0;
      maxabs[j] = std::max(maxabs[j], finite);
    }
  }
}

// The limbs of rows [0, n_rows) (at most kRowsPerBlock) added to the double sums s0, s1, s2; the
// non-finite values counted in bad. scale[j] = 2^(40 - e_j), 0 on extreme columns.
template <class Real>
MTLX_CLONES void block_limbs(const Real* __restrict rows, i64 n_rows, i64 n_cols, const double* __restrict scale,
                             double* __restrict s0, double* __restrict s1, double* __restrict s2,
                             double* __restrict bad) {
  for (i64 i = 0; i < n_rows; ++i) {
    const Real* __restrict row = rows + i * n_cols;
    for (i64 j = 0; j < n_cols; ++j) {
      const double x = static_cast<double>(row[j]);
      const bool finite = std::abs(x) <= std::numeric_limits<double>::max();
      // (scaling by a power of two is exact: the product is below 2^40, and where it is subnormal
      // its limbs are 0 either way)
      double h0, h1, h2;
      split_limbs((finite ? x : 0.0) * scale[j], h0, h1, h2);
      s0[j] += h0;
      s1[j] += h1;
      s2[j] += h2;
      bad[j] += finite ? 0.0 : 1.0;
    }
  }
}

}  // namespace

template <class Real>
void column_exponents(const Real* rows, i64 n_rows, i64 n_cols, std::int32_t* out) {
  std::vector<double> maxabs(static_cast<std::size_t>(n_cols), 0.0);
  column_max_abs(rows, n_rows, n_cols, maxabs.data());
  for (i64 j = 0; j < n_cols; ++j) {
    if (maxabs[j] == 0.0) continue;
    int e = 0;
    std::frexp(maxabs[j], &e);  // |x| <= maxabs < 2^e (frexp's exponent grows with |x|)
    out[j] = std::max(out[j], static_cast<std::int32_t>(e));
  }
}

template <class Real>
void accumulate_limbs(const Real* rows, i64 n_rows, i64 n_cols, const std::int32_t* exponents, i64* limbs) {
  const auto cols = static_cast<std::size_t>(n_cols);
  std::vector<double> scale(cols), s0(cols), s1(cols), s2(cols), bad(cols);
  std::vector<i64> extreme_cols;
  for (i64 j = 0; j < n_cols; ++j) {
    if (extreme(exponents[j])) {
      scale[j] = 0.0;
      extreme_cols.push_back(j);
    } else {
      scale[j] = std::ldexp(1.0, kLimbBits - exponents[j]);
    }
  }
  for (i64 lo = 0; lo < n_rows; lo += kRowsPerBlock) {
    std::fill(s0.begin(), s0.end(), 0.0);
    std::fill(s1.begin(), s1.end(), 0.0);
    std::fill(s2.begin(), s2.end(), 0.0);
    std::fill(bad.begin(), bad.end(), 0.0);
    block_limbs(rows + lo * n_cols, std::min(kRowsPerBlock, n_rows - lo), n_cols, scale.data(), s0.data(), s1.data(),
                s2.data(), bad.data());
    for (i64 j = 0; j < n_cols; ++j) {
      limbs[j] += static_cast<i64>(s0[j]);
      limbs[n_cols + j] += static_cast<i64>(s1[j]);
      limbs[2 * n_cols + j] += static_cast<i64>(s2[j]);
      limbs[3 * n_cols + j] += static_cast<i64>(bad[j]);
    }
  }
  // Columns of tiny values: the same limbs through ldexp, whose scaling is exact there.
  for (const i64 j : extreme_cols) {
    for (i64 i = 0; i < n_rows; ++i) {
      const double x = static_cast<double>(rows[i * n_cols + j]);
      if (x == 0.0 || !std::isfinite(x)) continue;
      double h0, h1, h2;
      split_limbs(std::ldexp(x, kLimbBits - exponents[j]), h0, h1, h2);
      limbs[j] += static_cast<i64>(h0);
      limbs[n_cols + j] += static_cast<i64>(h1);
      limbs[2 * n_cols + j] += static_cast<i64>(h2);
    }
  }
}

void limbs_to_double(const i64* limbs, i64 n_cols, const std::int32_t* exponents, double* out) {
  const double inv = std::ldexp(1.0, -kLimbBits);
  for (i64 j = 0; j < n_cols; ++j) {
    const double s = (static_cast<double>(limbs[2 * n_cols + j]) * inv + static_cast<double>(limbs[n_cols + j])) * inv +
                     static_cast<double>(limbs[j]);
    out[j] = limbs[3 * n_cols + j] != 0    ? std::numeric_limits<double>::quiet_NaN()
             : exponents[j] == kNoExponent ? 0.0
                                           : std::ldexp(s, exponents[j] - kLimbBits);
  }
}

template void column_exponents<double>(const double*, i64, i64, std::int32_t*);
template void column_exponents<float>(const float*, i64, i64, std::int32_t*);
template void accumulate_limbs<double>(const double*, i64, i64, const std::int32_t*, i64*);
template void accumulate_limbs<float>(const float*, i64, i64, const std::int32_t*, i64*);

}  // namespace mtlx::cpu
