// The fused one-pass kernel over a block of rows of one task: margins, losses, derivatives and
// the gradient contributions, while the rows sit in L1 cache.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

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

/// Bytes of the vectors the margins are accumulated in: the build's register width (256 bits
/// where AVX is on, as the AVX-512 build prefers; SSE's 128 bits in the generic build, where
/// wider vector types would be split and spilled).
#if defined(__AVX__)
inline constexpr int kVecBytes = 32;
#else
inline constexpr int kVecBytes = 16;
#endif

/// `full`: one register of Real; `four`: the 4-lane vector of a row group's margins.
template <class Real>
struct LaneTypes {
  typedef Real full __attribute__((vector_size(kVecBytes)));
  typedef Real four __attribute__((vector_size(4 * sizeof(Real))));
};
template <class Real>
using Lanes = typename LaneTypes<Real>::full;
template <class Real>
using Lanes4 = typename LaneTypes<Real>::four;
template <class Real>
inline constexpr std::int64_t kLanes = kVecBytes / sizeof(Real);
template <class Real>
alignas(32) inline constexpr Real kLaneIndex[8] = {0, 1, 2, 3, 4, 5, 6, 7};  // lane numbers (first kLanes used)

template <class Real>
inline Lanes<Real> load_lanes(const Real* p) {
  Lanes<Real> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// a folded to 4 lanes (lane l + lane l + 4 for 8-lane floats).
template <class Real>
inline Lanes4<Real> fold4(Lanes<Real> a) {
  if constexpr (kLanes<Real> == 8) {
    return __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  } else {
    return a;
  }
}

/// The sums of the lanes of a0 .. a3 in one vector (transpose-add: 2 to 4 shuffle-add steps for
/// all four instead of a horizontal sum each, which cost more than the short dots they end).
template <class Real>
inline Lanes4<Real> sum_lanes4(Lanes<Real> a0, Lanes<Real> a1, Lanes<Real> a2, Lanes<Real> a3) {
  if constexpr (kLanes<Real> == 2) {
    const Lanes<Real> h01 = __builtin_shufflevector(a0, a1, 0, 2) + __builtin_shufflevector(a0, a1, 1, 3);
    const Lanes<Real> h23 = __builtin_shufflevector(a2, a3, 0, 2) + __builtin_shufflevector(a2, a3, 1, 3);
    return __builtin_shufflevector(h01, h23, 0, 1, 2, 3);
  } else {
    const Lanes4<Real> b0 = fold4<Real>(a0), b1 = fold4<Real>(a1), b2 = fold4<Real>(a2), b3 = fold4<Real>(a3);
    const Lanes4<Real> h01 = __builtin_shufflevector(b0, b1, 0, 4, 2, 6) + __builtin_shufflevector(b0, b1, 1, 5, 3, 7);
    const Lanes4<Real> h23 = __builtin_shufflevector(b2, b3, 0, 4, 2, 6) + __builtin_shufflevector(b2, b3, 1, 5, 3, 7);
    return __builtin_shufflevector(h01, h23, 0, 1, 4, 5) + __builtin_shufflevector(h01, h23, 2, 3, 6, 7);
  }
}

/// x . w + b for one row.
template <class Real>
inline Real margin1(const Real* __restrict x, std::int64_t d, const Real* __restrict w, Real b) {
  Real z = 0;
#pragma omp simd reduction(+ : z)
  for (std::int64_t j = 0; j < d; ++j) z += x[j] * w[j];
  return z + b;
}

/// z[k] = x_k . w + b for the 4 rows of X (row-major, d columns), one sweep over w. Lane l of
/// each accumulator sums the columns j = l mod kLanes; the last d mod kLanes columns come from
/// one load that ends at column d, its lanes already summed masked off (no scalar tail, whose
/// lane inserts would go through memory and stall the vector loads on store forwarding).
template <class Real>
inline void margins4(const Real* __restrict X, std::int64_t d, const Real* __restrict w, Real b, Real* __restrict z) {
  constexpr std::int64_t L = kLanes<Real>;
  if (d < L) {
    for (int k = 0; k < 4; ++k) z[k] = margin1(X + k * d, d, w, b);
    return;
  }
  const Real* __restrict x0 = X;
  const Real* __restrict x1 = x0 + d;
  const Real* __restrict x2 = x1 + d;
  const Real* __restrict x3 = x2 + d;
  Lanes<Real> a0{}, a1{}, a2{}, a3{};
  std::int64_t j = 0;
  for (; j + L <= d; j += L) {
    const Lanes<Real> wj = load_lanes(w + j);
    a0 += load_lanes(x0 + j) * wj;
    a1 += load_lanes(x1 + j) * wj;
    a2 += load_lanes(x2 + j) * wj;
    a3 += load_lanes(x3 + j) * wj;
  }
  if (j < d) {
    const std::int64_t t = d - L;
    const Lanes<Real> lane = load_lanes(kLaneIndex<Real>);
    const Lanes<Real> zero{};
    const auto fresh = lane >= static_cast<Real>(j - t);
    const Lanes<Real> wt = load_lanes(w + t);
    a0 += fresh ? load_lanes(x0 + t) * wt : zero;
    a1 += fresh ? load_lanes(x1 + t) * wt : zero;
    a2 += fresh ? load_lanes(x2 + t) * wt : zero;
    a3 += fresh ? load_lanes(x3 + t) * wt : zero;
  }
  const Lanes4<Real> zs = sum_lanes4<Real>(a0, a1, a2, a3) + b;
  std::memcpy(z, &zs, sizeof zs);
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
    // demand miss goes out, and the hardware prefetcher alone then leaves L3 idle (squared
    // loss, 80 MB of X in this machine's L3: 0.65-0.75 of the read loop without, 1.1-1.2 with;
    // neutral from DRAM). A 16-row logistic block's burst of prefetches measured slower.
    if constexpr (WithGrad && B == kRowGroup) {
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
