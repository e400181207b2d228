// The fused one-pass kernel over a block of rows of one task: margins, losses, derivatives and
// the gradient contributions, while the rows sit in L1 cache.
#pragma once

#include <algorithm>
#include <cstdint>

#include "mtlx/losses.hpp"

namespace mtlx::cpu {
// Internal linkage: this header is compiled once per instruction set (grad_stacked.cpp), and
// an out-of-line template instance with external linkage would be one weak symbol that the
// linker shares among all of them, so the AVX-512 dispatch could run the generic build's code.
namespace {

/// Rows whose margins share one sweep over w, and whose gradient terms are summed pairwise.
inline constexpr std::int64_t kRowGroup = 4;
inline constexpr std::int64_t kCacheLine = 64;

/// Rows per block: margins first, then the block's losses and derivatives in one vector loop,
/// then its gradient terms summed in registers. The logistic loss's exp/log1p want 16 lanes per
/// evaluation; the squared loss costs nothing to evaluate, and its update is best issued right
/// after each group's margins (the two then overlap: horizontal sums vs loads and FMAs).
template <class Loss>
inline constexpr std::int64_t kRowBlock = 4 * kRowGroup;
template <>
inline constexpr std::int64_t kRowBlock<SquaredLoss> = kRowGroup;

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

/// sum_k r[k] x_k[j] over the NG * 4 rows of X, summed as a balanced tree of 4-row groups.
template <int NG, class Real>
inline Real block_term(const Real* __restrict X, std::int64_t d, const Real* __restrict r, std::int64_t j) {
  if constexpr (NG == 1) {
    return (r[0] * X[j] + r[1] * X[d + j]) + (r[2] * X[2 * d + j] + r[3] * X[3 * d + j]);
  } else {
    constexpr int half = NG / 2;
    return block_term<half>(X, d, r, j) + block_term<NG - half>(X + half * kRowGroup * d, d, r + half * kRowGroup, j);
  }
}

/// Accumulates over rows [0, n_rows) of X (row-major, d columns):
///   returns sum_i L(y_i, x_i . w + b); when WithGrad, g += sum_i L'(y_i, z_i) x_i and gb += sum_i L'.
/// `g` has d entries (the caller zeroes it). The summation order depends only on n_rows and d.
template <class Loss, bool WithGrad, class Real>
double row_block(const Real* __restrict X, const Real* __restrict y, std::int64_t n_rows, std::int64_t d,
                 const Real* __restrict w, Real b, Real* __restrict g, Real& gb) {
  constexpr std::int64_t B = kRowBlock<Loss>;
  double loss = 0.0;
  alignas(64) Real z[B];
  alignas(64) Real r[B];
  for (std::int64_t i = 0; i < n_rows; i += B) {
    const std::int64_t nb = std::min(B, n_rows - i);
    const Real* __restrict Xb = X + i * d;
    // Software prefetch of the block after next: while a block is summed into g from L1 no
    // demand miss goes to memory, and the hardware prefetcher alone then leaves it idle.
    if constexpr (WithGrad) {
      const char* p = reinterpret_cast<const char*>(X + std::min(i + 2 * B, n_rows) * d);
      const char* end = reinterpret_cast<const char*>(X + std::min(i + 3 * B, n_rows) * d);
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
      if (nb == B) {
#pragma omp simd
        for (std::int64_t j = 0; j < d; ++j) g[j] += block_term<B / kRowGroup>(Xb, d, r, j);
      } else {
        for (k = 0; k + kRowGroup <= nb; k += kRowGroup) {
#pragma omp simd
          for (std::int64_t j = 0; j < d; ++j) g[j] += block_term<1>(Xb + k * d, d, r + k, j);
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

}  // namespace
}  // namespace mtlx::cpu
