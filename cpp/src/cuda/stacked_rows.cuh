// The stacked layout's rows on the device, shared by the dense (grad_stacked.cu) and the CSR
// (grad_stacked_csr.cu) kernels: a block per chunk of kChunkRows rows of one task, a warp per row,
// and each row's loss terms from the CPU's functors (losses.hpp).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "mtlx/cuda.hpp"
#include "mtlx/losses.hpp"

namespace mtlx::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

/// The margin's loss terms of row i of task t (c s L and c s L'; zero for a zero weight).
template <class Real>
struct RowTerms {
  double value;
  Real deriv;
};

template <class Real>
__device__ RowTerms<Real> row_terms(const StackedTasks<Real>& data, std::int64_t t, std::int64_t i, Real z) {
  const double c = data.weights[t];
  const Real yi = data.y[i];
  const Real s = data.sample_weight != nullptr ? data.sample_weight[i] : Real(1);
  RowTerms<Real> out{0.0, Real(0)};
  visit_loss(static_cast<LossKind>(data.losses[t]), data.loss_params[t], [&](const auto& loss) {
    // A zero weight drops the row whatever its loss (an infinite loss times 0 would be NaN); a task
    // of weight 0 counts nothing (the CPU skips it).
    if (s != Real(0) && c != 0.0) {
      out.value = c * static_cast<double>(s) * loss.value(yi, z);
      out.deriv = static_cast<Real>(c * static_cast<double>(s * loss.deriv(yi, z)));
    }
  });
  return out;
}

/// The chunk's loss and derivative sums, in row order (one thread).
template <class Real>
__device__ void chunk_sums(const double* v, const Real* r, int n_rows, double* loss, double* deriv) {
  double l = 0.0, g = 0.0;
  for (int q = 0; q < n_rows; ++q) {
    l += v[q];
    g += static_cast<double>(r[q]);
  }
  *loss = l;
  *deriv = g;
}

/// x . w over a warp: lanes stride the features, then a butterfly (every lane gets the sum).
template <class Real>
__device__ Real warp_dot(const Real* x, const Real* w, std::int64_t d, int lane) {
  Real acc = 0;
  for (std::int64_t j = lane; j < d; j += 32) acc += x[j] * w[j];
  for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
  return acc;
}

/// This block's chunk: its index, task, rows, the task's coefficients and intercept, and the
/// thread's lane and warp.
template <class Real>
struct Chunk {
  std::int64_t k, t, row0, d;
  int n_rows, lane, warp;
  const Real* w;
  Real bt;
  __device__ Chunk(const StackedTasks<Real>& data, const ChunkPlan& plan, const Real* Wt, const Real* b)
      : k(blockIdx.x),
        t(plan.chunk_task[blockIdx.x]),
        row0(plan.chunk_begin[blockIdx.x]),
        d(data.n_features),
        n_rows(static_cast<int>(plan.chunk_begin[blockIdx.x + 1] - plan.chunk_begin[blockIdx.x])),
        lane(static_cast<int>(threadIdx.x & 31)),
        warp(static_cast<int>(threadIdx.x >> 5)),
        w(Wt + plan.chunk_task[blockIdx.x] * data.n_features),
        bt(b != nullptr ? b[plan.chunk_task[blockIdx.x]] : Real(0)) {}

  /// Row q of the chunk, by this warp: its margin and loss terms (all lanes), v[q] and r[q] stored by lane 0.
  __device__ RowTerms<Real> row(const StackedTasks<Real>& data, int q, double* v, Real* r) const {
    const std::int64_t i = row0 + q;
    const RowTerms<Real> terms = row_terms(data, t, i, warp_dot(data.X + i * d, w, d, lane) + bt);
    if (lane == 0) {
      v[q] = terms.value;
      r[q] = terms.deriv;
    }
    return terms;
  }
};

}  // namespace
}  // namespace mtlx::cuda
