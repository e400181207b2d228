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

/// Rows whose margins share one sweep over w and whose gradient terms share one sweep over g.
/// Two, not four: the rows of a group are read as interleaved streams, and out of cache two
/// streams plus a software prefetch keep the memory system busy (0.87-1.0 of a plain read loop
/// for d = 50 .. 1000, both dtypes), where four rows of more than ~3 KB fell to 0.65-0.75.
inline constexpr std::int64_t kRowGroup = 2;
inline constexpr std::int64_t kCacheLine = 64;

/// How far ahead of a row group its margin sweep prefetches, one cache line per vector step:
/// far enough to hide the memory latency at the rate a group is consumed, near enough that
/// the lines are still in L1 when read (measured best at 3-4 KB; 1 KB and 8 KB lose 10-20%).
inline constexpr std::int64_t kPrefetchBytes = 4096;

/// Rows per block: margins first, then the block's losses and derivatives in one vector loop,
/// then its gradient terms. The logistic loss's exp/log1p want 16 lanes per evaluation; the
/// squared loss costs nothing to evaluate, so its block is one group.
template <class Loss>
inline constexpr std::int64_t kRowBlock = 16;
template <>
inline constexpr std::int64_t kRowBlock<SquaredLoss> = kRowGroup;

/// Bytes of the vectors the rows are read in: the build's register width (256 bits where AVX
/// is on, as the AVX-512 build prefers: 512-bit rows measured 0.72 of the read loop from DRAM
/// against 0.94 for 256; SSE's 128 bits in the generic build, where wider vector types would
/// be split and spilled).
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
alignas(64) inline constexpr Real kLaneIndex[16] = {0, 1, 2,  3,  4,  5,  6,  7,
                                                    8, 9, 10, 11, 12, 13, 14, 15};  // lane numbers (first kLanes used)

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

/// A hint to fetch the cache line at `address` into L1. An integer, not a pointer: addresses
/// past the end of X are prefetched too (a prefetch never faults), and pointer arithmetic
/// there would be undefined.
inline void prefetch(std::uintptr_t address) { __builtin_prefetch(reinterpret_cast<const void*>(address)); }

/// Prefetches the cache lines of one vector step of a row group (2 rows of kLanes values).
template <class Real>
inline void prefetch_step(std::uintptr_t address) {
  for (std::int64_t c = 0; c < kRowGroup * kVecBytes; c += kCacheLine)
    prefetch(address + static_cast<std::uintptr_t>(c));
}

/// {sum of a0's lanes, sum of a1's lanes} (shuffle-adds instead of a horizontal sum each).
template <class Real>
inline void sum_lanes2(Lanes<Real> a0, Lanes<Real> a1, Real* z) {
  if constexpr (kLanes<Real> == 2) {
    const Lanes<Real> h = __builtin_shufflevector(a0, a1, 0, 2) + __builtin_shufflevector(a0, a1, 1, 3);
    std::memcpy(z, &h, sizeof h);
  } else {
    const Lanes4<Real> b0 = fold4<Real>(a0), b1 = fold4<Real>(a1);
    const Lanes4<Real> h = __builtin_shufflevector(b0, b1, 0, 4, 2, 6) + __builtin_shufflevector(b0, b1, 1, 5, 3, 7);
    z[0] = h[0] + h[2];
    z[1] = h[1] + h[3];
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

/// z[k] = x_k . w + b for the 2 rows of X (row-major, d columns), one sweep over w, prefetching
/// the cache line `ahead` bytes past each step's (the two rows' bytes advance one line per
/// 256-bit step). Lane l of each accumulator sums the columns j = l mod kLanes; the last
/// d mod kLanes columns come from one load that ends at column d, its lanes already summed
/// masked off (no scalar tail, whose lane inserts would go through memory and stall the vector
/// loads on store forwarding).
template <class Real>
inline void margins2(const Real* __restrict X, std::int64_t d, const Real* __restrict w, Real b, Real* __restrict z,
                     std::uintptr_t ahead) {
  constexpr std::int64_t L = kLanes<Real>;
  if (d < L) {
    for (int k = 0; k < 2; ++k) z[k] = margin1(X + k * d, d, w, b);
    return;
  }
  const Real* __restrict x0 = X;
  const Real* __restrict x1 = x0 + d;
  Lanes<Real> a0{}, a1{};
  std::int64_t j = 0;
  for (; j + L <= d; j += L) {
    const Lanes<Real> wj = load_lanes(w + j);
    a0 += load_lanes(x0 + j) * wj;
    a1 += load_lanes(x1 + j) * wj;
    prefetch_step<Real>(ahead + 2 * j * sizeof(Real));
  }
  if (j < d) {
    const std::int64_t t = d - L;
    const Lanes<Real> lane = load_lanes(kLaneIndex<Real>);
    const Lanes<Real> zero{};
    const auto fresh = lane >= static_cast<Real>(j - t);
    const Lanes<Real> wt = load_lanes(w + t);
    a0 += fresh ? load_lanes(x0 + t) * wt : zero;
    a1 += fresh ? load_lanes(x1 + t) * wt : zero;
  }
  sum_lanes2<Real>(a0, a1, z);
  z[0] += b;
  z[1] += b;
}

/// g += r[0] x_0 + r[1] x_1 over the 2 rows of X (in L1: the margin sweep just read them).
template <class Real>
inline void add_terms2(const Real* __restrict X, std::int64_t d, const Real* __restrict r, Real* __restrict g) {
  const Real* __restrict x0 = X;
  const Real* __restrict x1 = x0 + d;
  const Real r0 = r[0], r1 = r[1];
#pragma omp simd
  for (std::int64_t j = 0; j < d; ++j) g[j] += r0 * x0[j] + r1 * x1[j];
}

/// Accumulates over rows [0, n_rows) of X (row-major, d columns):
///   returns sum_i s_i L(y_i, x_i . w + b); when WithGrad, g += sum_i s_i L'(y_i, z_i) x_i and
///   gb += sum_i s_i L', with row weights s (Weighted; s_i = 1 otherwise).
/// `g` has d entries (the caller zeroes it). The summation order depends only on n_rows and d.
template <class Loss, bool WithGrad, bool Weighted, class Real>
double row_block(const Loss& loss_fn, const Real* __restrict X, const Real* __restrict y, const Real* __restrict s,
                 std::int64_t n_rows, std::int64_t d, const Real* __restrict w, Real b, Real* __restrict g, Real& gb) {
  constexpr std::int64_t B = kRowBlock<Loss>;
  const std::uintptr_t group_bytes = kRowGroup * d * sizeof(Real);
  double loss = 0.0;
  alignas(64) Real z[B];
  alignas(64) Real r[B];
  for (std::int64_t i = 0; i < n_rows; i += B) {
    const std::int64_t nb = std::min(B, n_rows - i);
    const Real* __restrict Xb = X + i * d;
    // Prefetches run past the block's (and the chunk's) last row: harmless, as a prefetch of
    // an unmapped address never faults, and the next chunk's rows usually follow anyway.
    const std::uintptr_t ahead = reinterpret_cast<std::uintptr_t>(Xb) + kPrefetchBytes;
    std::int64_t k = 0;
    for (; k + kRowGroup <= nb; k += kRowGroup)
      margins2(Xb + k * d, d, w, b, z + k, ahead + k / kRowGroup * group_bytes);
    for (; k < nb; ++k) z[k] = margin1(Xb + k * d, d, w, b);
    double block_loss = 0.0;
    Real block_gb = 0;
#pragma omp simd reduction(+ : block_loss, block_gb)
    for (std::int64_t q = 0; q < nb; ++q) {
      if constexpr (Weighted) {
        // A zero weight drops the row whatever its loss (an infinite loss times 0 would be NaN).
        const Real sq = s[i + q];
        block_loss += sq != Real(0) ? static_cast<double>(sq) * loss_fn.value(y[i + q], z[q]) : 0.0;
        if constexpr (WithGrad) {
          r[q] = sq != Real(0) ? sq * loss_fn.deriv(y[i + q], z[q]) : Real(0);
          block_gb += r[q];
        }
      } else {
        block_loss += static_cast<double>(loss_fn.value(y[i + q], z[q]));
        if constexpr (WithGrad) {
          r[q] = loss_fn.deriv(y[i + q], z[q]);
          block_gb += r[q];
        }
      }
    }
    loss += block_loss;
    if constexpr (WithGrad) {
      gb += block_gb;
      // No prefetch here: a 16-row logistic block's gradient sweep measured no faster with one.
      for (k = 0; k + kRowGroup <= nb; k += kRowGroup) add_terms2(Xb + k * d, d, r + k, g);
      for (; k < nb; ++k) {
#pragma omp simd
        for (std::int64_t j = 0; j < d; ++j) g[j] += r[k] * Xb[k * d + j];
      }
    }
  }
  return loss;
}

}  // namespace
}  // namespace mtlx::cpu
