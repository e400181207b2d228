// The stacked (ragged per-task rows) loss and gradient on the device: one block per chunk of
// kChunkRows rows of one task, a warp per row for its margin (lanes striding the features, a
// butterfly of shuffles that leaves the sum in every lane).
//
// Two ways to the gradient, chosen by d alone (so the summation order is a function of the shape):
//  * narrow rows (the warps' accumulators, kWarps x d, fit in 48 KB of shared memory): each warp
//    adds r_i x_i into its own accumulator right after the margin, re-reading the row it just read
//    (an L1 hit), and the block adds its warps in order: X crosses the memory bus once;
//  * wide rows: the block's threads sweep the features after all margins, each summing r_i x_ij
//    over the chunk's rows in order (the rows are read a second time, from L2 where they still are).
#include <cuda_runtime.h>

#include "check.cuh"
#include "mtlx/cuda.hpp"
#include "mtlx/losses.hpp"
#include "reduce.cuh"
#include "stacked_rows.cuh"

namespace mtlx::cuda {
namespace {

/// Shared memory the warps' accumulators may take (the default per-block limit of every GPU).
constexpr std::size_t kWarpAccumulatorBytes = 48 * 1024;

/// The narrow-row kernel (see the file comment); dynamic shared memory: kWarps x d Reals.
template <class Real>
__global__ void stacked_warp_kernel(StackedTasks<Real> data, ChunkPlan plan, const Real* Wt, const Real* b,
                                    bool with_grad, double* partial, double* chunk_loss, double* chunk_deriv) {
  extern __shared__ unsigned char shared_bytes[];
  Real* acc = reinterpret_cast<Real*>(shared_bytes);
  __shared__ Real r[kChunkRows];
  __shared__ double v[kChunkRows];
  const Chunk<Real> c(data, plan, Wt, b);
  const std::int64_t k = c.k, row0 = c.row0, d = c.d;
  const int n_rows = c.n_rows;
  if (with_grad)
    for (std::int64_t j = threadIdx.x; j < kWarps * d; j += blockDim.x) acc[j] = Real(0);
  __syncthreads();
  Real* mine = acc + c.warp * d;
  for (int q = c.warp; q < n_rows; q += kWarps) {
    const RowTerms<Real> terms = c.row(data, q, v, r);
    if (with_grad) {
      const Real* x = data.X + (row0 + q) * d;  // (just read by the margin: an L1 hit)
      for (std::int64_t j = c.lane; j < d; j += 32) mine[j] += terms.deriv * x[j];
    }
  }
  __syncthreads();
  if (with_grad) {
    for (std::int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      Real sum = 0;
      for (int u = 0; u < kWarps; ++u) sum += acc[u * d + j];
      partial[k * d + j] = static_cast<double>(sum);
    }
  }
  if (threadIdx.x == 0) chunk_sums(v, r, n_rows, chunk_loss + k, chunk_deriv + k);
}

template <class Real>
__global__ void stacked_chunk_kernel(StackedTasks<Real> data, ChunkPlan plan, const Real* Wt, const Real* b,
                                     bool with_grad, double* partial, double* chunk_loss, double* chunk_deriv) {
  __shared__ Real r[kChunkRows];
  __shared__ double v[kChunkRows];
  const Chunk<Real> c(data, plan, Wt, b);
  const std::int64_t k = c.k, row0 = c.row0, d = c.d;
  const int n_rows = c.n_rows;
  for (int q = c.warp; q < n_rows; q += kWarps) c.row(data, q, v, r);
  __syncthreads();
  if (with_grad) {
    const Real* X0 = data.X + row0 * d;
    for (std::int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      Real acc = 0;
      for (int q = 0; q < n_rows; ++q) acc += r[q] * X0[q * d + j];
      partial[k * d + j] = static_cast<double>(acc);
    }
  }
  if (threadIdx.x == 0) chunk_sums(v, r, n_rows, chunk_loss + k, chunk_deriv + k);
}

/// gWt[t, j] = sum of partial[k, j] over task t's chunks, in chunk order (threads over j).
template <class Real>
__global__ void task_gradient_kernel(const double* partial, const std::int64_t* task_chunks, std::int64_t d,
                                     Real* gWt) {
  // Tasks on x (up to 2^31 - 1 blocks), feature blocks on y (at most 65535: d up to 16.7 million).
  const std::int64_t t = blockIdx.x;
  const std::int64_t j = blockIdx.y * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (j >= d) return;
  double s = 0.0;
  for (std::int64_t k = task_chunks[t]; k < task_chunks[t + 1]; ++k) s += partial[k * d + j];
  gWt[t * d + j] = static_cast<Real>(s);
}

}  // namespace

template <class Real>
double loss_grad_stacked(const StackedTasks<Real>& data, const ChunkPlan& plan, const Real* Wt, const Real* b,
                         GradientOut<Real> grad, const Workspace& work, std::uintptr_t stream) {
  const cudaStream_t s = as_stream(stream);
  const bool with_grad = grad.gWt != nullptr;
  const std::int64_t T = data.n_tasks, d = data.n_features;
  if (plan.n_chunks > 0) {
    const unsigned blocks = static_cast<unsigned>(plan.n_chunks);
    const std::size_t accumulators = static_cast<std::size_t>(kWarps) * static_cast<std::size_t>(d) * sizeof(Real);
    if (accumulators <= kWarpAccumulatorBytes) {
      stacked_warp_kernel<Real><<<blocks, kThreads, with_grad ? accumulators : 0, s>>>(
          data, plan, Wt, b, with_grad, work.partial, work.chunk_loss, work.chunk_deriv);
      check_launch("stacked_warp_kernel");
    } else {
      stacked_chunk_kernel<Real>
          <<<blocks, kThreads, 0, s>>>(data, plan, Wt, b, with_grad, work.partial, work.chunk_loss, work.chunk_deriv);
      check_launch("stacked_chunk_kernel");
    }
  }
  if (T > 0 && with_grad && d > 0) {
    const dim3 grid(static_cast<unsigned>(T), blocks_for(d, kThreads));
    task_gradient_kernel<Real><<<grid, kThreads, 0, s>>>(work.partial, plan.task_chunks, d, grad.gWt);
    check_launch("task_gradient_kernel");
  }
  return stacked_task_totals<Real>(work, plan, T, with_grad ? grad.gb : nullptr, s);
}

template double loss_grad_stacked<double>(const StackedTasks<double>&, const ChunkPlan&, const double*, const double*,
                                          GradientOut<double>, const Workspace&, std::uintptr_t);
template double loss_grad_stacked<float>(const StackedTasks<float>&, const ChunkPlan&, const float*, const float*,
                                         GradientOut<float>, const Workspace&, std::uintptr_t);

}  // namespace mtlx::cuda
