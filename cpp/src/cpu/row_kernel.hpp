// The fused one-pass kernel over a block of rows of one task: margins, losses, derivatives and
// the gradient contributions, while the rows sit in L1 cache.
#pragma once

#include <cstdint>

namespace mtlx::cpu {

/// Rows handled together: their margins share one sweep over w, and their gradient updates one
/// load/store sweep over g (one row at a time would make g's traffic as large as X's).
inline constexpr std::int64_t kRowGroup = 4;
inline constexpr std::int64_t kCacheLine = 64;

/// Accumulates over rows [0, n_rows) of X (row-major, d columns):
///   returns sum_i L(y_i, x_i . w + b); when WithGrad, g += sum_i L'(y_i, z_i) x_i and gb += sum_i L'.
/// `g` has d entries (the caller zeroes it). The summation order depends only on n_rows and d.
template <class Loss, bool WithGrad, class Real>
double row_block(const Real* __restrict X, const Real* __restrict y, std::int64_t n_rows, std::int64_t d,
                 const Real* __restrict w, Real b, Real* __restrict g, Real& gb) {
  double loss = 0.0;
  std::int64_t i = 0;
  for (; i + kRowGroup <= n_rows; i += kRowGroup) {
    const Real* __restrict x0 = X + i * d;
    const Real* __restrict x1 = x0 + d;
    const Real* __restrict x2 = x1 + d;
    const Real* __restrict x3 = x2 + d;
    // Software prefetch of the group after next: with the gradient update in the loop the
    // hardware prefetcher alone no longer keeps enough reads in flight to saturate memory.
    if (WithGrad && i + 3 * kRowGroup <= n_rows) {
      const Real* ahead = X + (i + 2 * kRowGroup) * d;
      for (std::int64_t k = 0; k < kRowGroup * d; k += kCacheLine / static_cast<std::int64_t>(sizeof(Real))) {
        __builtin_prefetch(ahead + k);
      }
    }
    Real z0 = 0, z1 = 0, z2 = 0, z3 = 0;
#pragma omp simd reduction(+ : z0, z1, z2, z3)
    for (std::int64_t j = 0; j < d; ++j) {
      z0 += x0[j] * w[j];
      z1 += x1[j] * w[j];
      z2 += x2[j] * w[j];
      z3 += x3[j] * w[j];
    }
    z0 += b;
    z1 += b;
    z2 += b;
    z3 += b;
    loss += static_cast<double>(Loss::value(y[i], z0)) + static_cast<double>(Loss::value(y[i + 1], z1)) +
            static_cast<double>(Loss::value(y[i + 2], z2)) + static_cast<double>(Loss::value(y[i + 3], z3));
    if constexpr (WithGrad) {
      const Real r0 = Loss::deriv(y[i], z0), r1 = Loss::deriv(y[i + 1], z1);
      const Real r2 = Loss::deriv(y[i + 2], z2), r3 = Loss::deriv(y[i + 3], z3);
      gb += (r0 + r1) + (r2 + r3);
#pragma omp simd
      for (std::int64_t j = 0; j < d; ++j) g[j] += (r0 * x0[j] + r1 * x1[j]) + (r2 * x2[j] + r3 * x3[j]);
    }
  }
  for (; i < n_rows; ++i) {
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
