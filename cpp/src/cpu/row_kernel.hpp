// The fused one-pass kernel over a block of rows of one task: margins, losses, derivatives and
// the gradient contributions, while the rows sit in L1 cache.
#pragma once

#include <algorithm>
#include <cstdint>

namespace mtlx::cpu {

/// Rows whose margins share one sweep over w, and whose gradient terms are summed pairwise.
inline constexpr std::int64_t kRowGroup = 4;
/// Rows handled as one block (4 groups): their losses are evaluated in one vector loop (the
/// logistic loss's exp/log1p are then cheap) and their gradient terms are summed in registers,
/// so g is loaded and stored once per block rather than once per group.
inline constexpr std::int64_t kRowBlock = 4 * kRowGroup;
/// Blocks ahead whose rows are prefetched: while a block is summed into g from L1 no demand
/// miss goes to memory, and the hardware prefetcher alone then leaves the stream idle.
inline constexpr std::int64_t kPrefetchBlocks = 1;
inline constexpr std::int64_t kCacheLine = 64;

/// z[k] = x_k . w + b for the 4 rows of X (row-major, d columns), one sweep over w.
template <class Real>
inline void margins4(const Real* __restrict X, std::int64_t d, const Real* __restrict w, Real b,
                     Real* __restrict z) {
  const Real* __restrict x0 = X;
  const Real* __restrict x1 = x0 + d;
  const Real* __restrict x2 = x1 + d;
  const Real* __restrict x3 = x2 + d;
  Real z0 = 0, z1 = 0, z2 = 0, z3 = 0;
#pragma omp simd reduction(+ : z0, z1, z2, z3)
  for (std::int64_t j = 0; j < d; ++j) {
    z0 += x0[j] * w[j];
    z1 += x1[j] * w[j];
    z2 += x2[j] * w[j];
    z3 += x3[j] * w[j];
  }
  z[0] = z0 + b;
  z[1] = z1 + b;
  z[2] = z2 + b;
  z[3] = z3 + b;
}

/// x . w + b for one row.
template <class Real>
inline Real margin1(const Real* __restrict x, std::int64_t d, const Real* __restrict w, Real b) {
  Real z = 0;
#pragma omp simd reduction(+ : z)
  for (std::int64_t j = 0; j < d; ++j) z += x[j] * w[j];
  return z + b;
}

/// r[0] x_0[j] + ... + r[3] x_3[j] for the 4 rows of X, summed pairwise.
template <class Real>
inline Real group_term(const Real* __restrict X, std::int64_t d, const Real* __restrict r, std::int64_t j) {
  return (r[0] * X[j] + r[1] * X[d + j]) + (r[2] * X[2 * d + j] + r[3] * X[3 * d + j]);
}

/// Accumulates over rows [0, n_rows) of X (row-major, d columns):
///   returns sum_i L(y_i, x_i . w + b); when WithGrad, g += sum_i L'(y_i, z_i) x_i and gb += sum_i L'.
/// `g` has d entries (the caller zeroes it). The summation order depends only on n_rows and d.
template <class Loss, bool WithGrad, class Real>
double row_block(const Real* __restrict X, const Real* __restrict y, std::int64_t n_rows, std::int64_t d,
                 const Real* __restrict w, Real b, Real* __restrict g, Real& gb) {
  double loss = 0.0;
  alignas(64) Real z[kRowBlock];
  alignas(64) Real r[kRowBlock];
  for (std::int64_t i = 0; i < n_rows; i += kRowBlock) {
    const std::int64_t nb = std::min(kRowBlock, n_rows - i);
    const Real* __restrict Xb = X + i * d;
    if constexpr (WithGrad) {
      const char* p = reinterpret_cast<const char*>(X + std::min(i + kPrefetchBlocks * kRowBlock, n_rows) * d);
      const char* end = reinterpret_cast<const char*>(X + std::min(i + (kPrefetchBlocks + 1) * kRowBlock, n_rows) * d);
      for (; p < end; p += kCacheLine) __builtin_prefetch(p);
    }
    std::int64_t k = 0;
    for (; k + kRowGroup <= nb; k += kRowGroup) margins4(Xb + k * d, d, w, b, z + k);
    for (; k < nb; ++k) z[k] = margin1(Xb + k * d, d, w, b);
    double block_loss = 0.0;
    Real block_gb = 0;
#pragma omp simd reduction(+ : block_loss, block_gb)
    for (std::int64_t q = 0; q < nb; ++q) {
      block_loss += static_cast<double>(Loss::value(y[i + q], z[q]));
      if constexpr (WithGrad) {
        r[q] = Loss::deriv(y[i + q], z[q]);
        block_gb += r[q];
      }
    }
    loss += block_loss;
    if constexpr (WithGrad) {
      gb += block_gb;
      if (nb == kRowBlock) {
        const std::int64_t s = kRowGroup * d;
#pragma omp simd
        for (std::int64_t j = 0; j < d; ++j) {
          g[j] += (group_term(Xb, d, r, j) + group_term(Xb + s, d, r + kRowGroup, j)) +
                  (group_term(Xb + 2 * s, d, r + 2 * kRowGroup, j) + group_term(Xb + 3 * s, d, r + 3 * kRowGroup, j));
        }
      } else {
        for (k = 0; k + kRowGroup <= nb; k += kRowGroup) {
#pragma omp simd
          for (std::int64_t j = 0; j < d; ++j) g[j] += group_term(Xb + k * d, d, r + k, j);
        }
        for (; k < nb; ++k) {
#pragma omp simd
          for (std::int64_t j = 0; j < d; ++j) g[j] += r[k] * Xb[k * d + j];
        }
      }
    }
  }
  return loss;
}

}  // namespace mtlx::cpu
