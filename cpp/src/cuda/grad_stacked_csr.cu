// The stacked layout's loss and gradient on the device for a CSR X (declared in mtlx/cuda.hpp).
//
// Margins: the dense kernel's chunks and warps (stacked_rows.cuh), each warp's lanes striding the
// row's stored entries. Gradient: thread (t, j) sums task t's entries of feature j, found in row j
// of X' (its sample indices sorted; the stacked rows grouped by task) by a binary search for the
// task's first row, then in row order. T x d threads, each with its share of the column: a dense
// column does not hold one thread for n steps. Every sum has a fixed order: repeated runs are
// bitwise equal.
#include <cuda_runtime.h>

#include "check.cuh"
#include "mtlx/cuda.hpp"
#include "reduce.cuh"
#include "stacked_rows.cuh"

namespace mtlx::cuda {
namespace {

/// x_i . w over a warp, in double as the CPU's CSR pass: lanes stride row i's stored entries, then a
/// butterfly (every lane gets the sum).
template <class Real>
__device__ Real warp_csr_dot(const DeviceCsr<Real>& X, std::int64_t i, const Real* w, int lane) {
  double acc = 0.0;
  const std::int64_t end = X.indptr[i + 1];
  for (std::int64_t k = static_cast<std::int64_t>(X.indptr[i]) + lane; k < end; k += 32)
    acc += static_cast<double>(X.data[k]) * static_cast<double>(w[X.indices[k]]);
  for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
  return static_cast<Real>(acc);
}

template <class Real>
__global__ void stacked_csr_kernel(StackedTasks<Real> data, DeviceCsr<Real> X, ChunkPlan plan, const Real* Wt,
                                   const Real* b, Real* r_out, double* chunk_loss, double* chunk_deriv) {
  __shared__ Real r[kChunkRows];
  __shared__ double v[kChunkRows];
  const Chunk<Real> c(data, plan, Wt, b);
  for (int q = c.warp; q < c.n_rows; q += kWarps) {
    const std::int64_t i = c.row0 + q;
    const RowTerms<Real> terms = row_terms(data, c.t, i, warp_csr_dot(X, i, c.w, c.lane) + c.bt);
    if (c.lane == 0) {
      v[q] = terms.value;
      r[q] = terms.deriv;
      if (r_out != nullptr) r_out[i] = terms.deriv;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) chunk_sums(v, r, c.n_rows, chunk_loss + c.k, chunk_deriv + c.k);
}

/// The first position in [lo, hi) of the sorted `indices` whose value is >= `row`.
__device__ std::int64_t lower_bound(const std::int32_t* indices, std::int64_t lo, std::int64_t hi, std::int64_t row) {
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (indices[mid] < row)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/// gWt[t, j] = sum of r_i x_ij over task t's rows i (thread (t, j); see the file comment).
template <class Real>
__global__ void csr_task_gradient_kernel(DeviceCsr<Real> XT, const Real* r, ChunkPlan plan, std::int64_t d, Real* gWt) {
  // Tasks on x (up to 2^31 - 1 blocks), feature blocks on y (at most 65535: d up to 16.7 million).
  const std::int64_t t = blockIdx.x;
  const std::int64_t j = blockIdx.y * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (j >= d) return;
  const std::int64_t first_row = plan.chunk_begin[plan.task_chunks[t]];
  const std::int64_t end_row = plan.chunk_begin[plan.task_chunks[t + 1]];
  const std::int64_t lo = XT.indptr[j], hi = XT.indptr[j + 1];
  double acc = 0.0;
  for (std::int64_t k = lower_bound(XT.indices, lo, hi, first_row); k < hi && XT.indices[k] < end_row; ++k)
    acc += static_cast<double>(XT.data[k]) * static_cast<double>(r[XT.indices[k]]);
  gWt[t * d + j] = static_cast<Real>(acc);
}

}  // namespace

template <class Real>
double loss_grad_stacked_csr(const StackedTasks<Real>& data, const DeviceCsr<Real>& X, const DeviceCsr<Real>& XT,
                             const ChunkPlan& plan, const Real* Wt, const Real* b, GradientOut<Real> grad, Real* r,
                             const Workspace& work, std::uintptr_t stream) {
  const cudaStream_t s = as_stream(stream);
  const bool with_grad = grad.gWt != nullptr;
  const std::int64_t T = data.n_tasks, d = data.n_features;
  if (plan.n_chunks > 0) {
    stacked_csr_kernel<Real><<<static_cast<unsigned>(plan.n_chunks), kThreads, 0, s>>>(
        data, X, plan, Wt, b, with_grad ? r : nullptr, work.chunk_loss, work.chunk_deriv);
    check_launch("stacked_csr_kernel");
  }
  if (T > 0 && with_grad && d > 0) {
    const dim3 grid(static_cast<unsigned>(T), blocks_for(d, kThreads));
    csr_task_gradient_kernel<Real><<<grid, kThreads, 0, s>>>(XT, r, plan, d, grad.gWt);
    check_launch("csr_task_gradient_kernel");
  }
  return stacked_task_totals<Real>(work, plan, T, with_grad ? grad.gb : nullptr, s);
}

template double loss_grad_stacked_csr<double>(const StackedTasks<double>&, const DeviceCsr<double>&,
                                              const DeviceCsr<double>&, const ChunkPlan&, const double*, const double*,
                                              GradientOut<double>, double*, const Workspace&, std::uintptr_t);
template double loss_grad_stacked_csr<float>(const StackedTasks<float>&, const DeviceCsr<float>&,
                                             const DeviceCsr<float>&, const ChunkPlan&, const float*, const float*,
                                             GradientOut<float>, float*, const Workspace&, std::uintptr_t);

}  // namespace mtlx::cuda
