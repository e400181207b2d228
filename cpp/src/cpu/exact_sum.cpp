// Order-independent sums of rows (see exact_sum.hpp).
#include "mtlx/exact_sum.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mtlx::cpu {

namespace {
constexpr int kLimbBits = 40;
}

void column_exponents(const double* rows, std::int64_t n_rows, std::int64_t n_cols, std::int32_t* out) {
  for (std::int64_t i = 0; i < n_rows; ++i) {
    for (std::int64_t j = 0; j < n_cols; ++j) {
      const double x = rows[i * n_cols + j];
      if (x == 0.0 || !std::isfinite(x)) continue;  // (a non-finite value is counted apart: accumulate_limbs)
      int e = 0;
      std::frexp(x, &e);  // |x| < 2^e
      out[j] = std::max(out[j], static_cast<std::int32_t>(e));
    }
  }
}

void accumulate_limbs(const double* rows, std::int64_t n_rows, std::int64_t n_cols, const std::int32_t* exponents,
                      std::int64_t* limbs) {
  const double step = std::ldexp(1.0, kLimbBits);
  for (std::int64_t i = 0; i < n_rows; ++i) {
    for (std::int64_t j = 0; j < n_cols; ++j) {
      const double x = rows[i * n_cols + j];
      if (x == 0.0) continue;
      if (!std::isfinite(x)) {  // no limbs: counted, and the column's sum becomes NaN
        limbs[3 * n_cols + j] += 1;
        continue;
      }
      // Every operation below is exact: scaling by powers of two, truncation, the difference of
      // a number and its integer part.
      double y = std::ldexp(x, kLimbBits - exponents[j]);  // |y| < 2^40
      const double h0 = std::trunc(y);
      y = (y - h0) * step;
      const double h1 = std::trunc(y);
      y = (y - h1) * step;
      const double h2 = std::trunc(y);
      limbs[j] += static_cast<std::int64_t>(h0);
      limbs[n_cols + j] += static_cast<std::int64_t>(h1);
      limbs[2 * n_cols + j] += static_cast<std::int64_t>(h2);
    }
  }
}

void limbs_to_double(const std::int64_t* limbs, std::int64_t n_cols, const std::int32_t* exponents, double* out) {
  const double inv = std::ldexp(1.0, -kLimbBits);
  for (std::int64_t j = 0; j < n_cols; ++j) {
    const double s = (static_cast<double>(limbs[2 * n_cols + j]) * inv + static_cast<double>(limbs[n_cols + j])) * inv +
                     static_cast<double>(limbs[j]);
    out[j] = limbs[3 * n_cols + j] != 0    ? std::numeric_limits<double>::quiet_NaN()
             : exponents[j] == kNoExponent ? 0.0
                                           : std::ldexp(s, exponents[j] - kLimbBits);
  }
}

}  // namespace mtlx::cpu
