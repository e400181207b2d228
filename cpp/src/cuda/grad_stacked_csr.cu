// The stacked layout's loss and gradient on the device for a CSR X (declared in mtlx/cuda.hpp).
//
// Margins: the dense kernel's chunks and warps (stacked_rows.cuh), each warp's lanes striding the
// row's stored entries. Gradient: one thread per feature walks that feature's entries of X' in
// row order; the stacked rows are grouped by task, so the walk meets each task's rows in one run
// and writes its sum when the run ends. Every sum has a fixed order: repeated runs are bitwise
// equal.
#include <cuda_runtime.h>

#include "check.cuh"
#include "mtlx/cuda.hpp"
#include "reduce.cuh"
#include "stacked_rows.cuh"

namespace mtlx::cuda {
namespace {

/// x_i . w over a warp: lanes stride row i's stored entries, then a butterfly (every lane gets the sum).
template <class Real>
__device__ Real warp_csr_dot(const DeviceCsr<Real>& X, std::int64_t i, const Real* w, int lane) {
  Real acc = 0;
  for (std::int64_t k = X.indptr[i] + lane; k < X.indptr[i + 1]; k += 32) acc += X.data[k] * w[X.indices[k]];
  for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
  return acc;
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

/// gWt[t, j] = sum of r_i x_ij over task t's rows i, for the feature j of this thread (see the file comment).
template <class Real>
__global__ void csr_task_gradient_kernel(DeviceCsr<Real> XT, const Real* r, const std::int64_t* row_task,
                                         std::int64_t n_tasks, std::int64_t d, Real* gWt) {
  const std::int64_t j = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (j >= d) return;
  for (std::int64_t t = 0; t < n_tasks; ++t) gWt[t * d + j] = Real(0);
  double acc = 0.0;
  std::int64_t current = -1;
  for (std::int64_t k = XT.indptr[j]; k < XT.indptr[j + 1]; ++k) {
    const std::int64_t i = XT.indices[k];
    const std::int64_t t = row_task[i];
    if (t != current) {
      if (current >= 0) gWt[current * d + j] = static_cast<Real>(acc);
      acc = 0.0;
      current = t;
    }
    acc += static_cast<double>(XT.data[k]) * static_cast<double>(r[i]);
  }
  if (current >= 0) gWt[current * d + j] = static_cast<Real>(acc);
}

}  // namespace

template <class Real>
double loss_grad_stacked_csr(const StackedTasks<Real>& data, const DeviceCsr<Real>& X, const DeviceCsr<Real>& XT,
                             const std::int64_t* row_task, const ChunkPlan& plan, const Real* Wt, const Real* b,
                             GradientOut<Real> grad, Real* r, const Workspace& work, std::uintptr_t stream) {
  const cudaStream_t s = as_stream(stream);
  const bool with_grad = grad.gWt != nullptr;
  const std::int64_t T = data.n_tasks, d = data.n_features;
  if (plan.n_chunks > 0) {
    stacked_csr_kernel<Real><<<static_cast<unsigned>(plan.n_chunks), kThreads, 0, s>>>(
        data, X, plan, Wt, b, with_grad ? r : nullptr, work.chunk_loss, work.chunk_deriv);
    check_launch("stacked_csr_kernel");
  }
  if (T > 0 && with_grad && d > 0) {
    csr_task_gradient_kernel<Real><<<blocks_for(d, kThreads), kThreads, 0, s>>>(XT, r, row_task, T, d, grad.gWt);
    check_launch("csr_task_gradient_kernel");
  }
  return stacked_task_totals<Real>(work, plan, T, with_grad ? grad.gb : nullptr, s);
}

template double loss_grad_stacked_csr<double>(const StackedTasks<double>&, const DeviceCsr<double>&,
                                              const DeviceCsr<double>&, const std::int64_t*, const ChunkPlan&,
                                              const double*, const double*, GradientOut<double>, double*,
                                              const Workspace&, std::uintptr_t);
template double loss_grad_stacked_csr<float>(const StackedTasks<float>&, const DeviceCsr<float>&,
                                             const DeviceCsr<float>&, const std::int64_t*, const ChunkPlan&,
                                             const float*, const float*, GradientOut<float>, float*, const Workspace&,
                                             std::uintptr_t);

}  // namespace mtlx::cuda
