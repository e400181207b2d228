// The fused one-pass kernel over a block of rows of one task: margin, loss, derivative and the
// gradient contribution of each row while the row sits in L1 cache.
#pragma once

#include <cstdint>

namespace mtlx::cpu {

/// Accumulates over rows [0, n_rows) of X (row-major, d columns):
///   returns sum_i L(y_i, x_i . w + b); when WithGrad, g += sum_i L'(y_i, z_i) x_i and gb += sum_i L'.
/// `g` has d entries (the caller zeroes it). Sums inside one block run in the block's row order.
template <class Loss, bool WithGrad, class Real>
double row_block(const Real* __restrict X, const Real* __restrict y, std::int64_t n_rows, std::int64_t d,
                 const Real* __restrict w, Real b, Real* __restrict g, Real& gb) {
  double loss = 0.0;
  for (std::int64_t i = 0; i < n_rows; ++i) {
    const Real* __restrict x = X + i * d;
    Real z = 0;
#pragma omp simd reduction(+ : z)
    for (std::int64_t j = 0; j < d; ++j) z += x[j] * w[j];
    z += b;
    loss += static_cast<double>(Loss::value(y[i], z));
    if constexpr (WithGrad) {
      const Real r = Loss::deriv(y[i], z);
      gb += r;
#pragma omp simd
      for (std::int64_t j = 0; j < d; ++j) g[j] += r * x[j];
    }
  }
  return loss;
}

}  // namespace mtlx::cpu
