// The stacked (ragged per-task rows) loss and gradient on the device: one block per chunk of
// kChunkRows rows of one task. The block's warps compute the chunk's margins (a warp per row,
// lanes striding the features, a butterfly of shuffles), then its threads sweep the features,
// each summing r_i x_ij over the chunk's rows in order: the rows were just read, so the second
// read is served by the cache and X crosses the memory bus once per evaluation.
#include <cuda_runtime.h>

#include "check.cuh"
#include "mtlx/cuda.hpp"
#include "mtlx/losses.hpp"
#include "reduce.cuh"

namespace mtlx::cuda {
namespace {

constexpr int kThreads = 256;

template <class Real>
__global__ void stacked_chunk_kernel(StackedTasks<Real> data, ChunkPlan plan, const Real* Wt, const Real* b,
                                     bool with_grad, double* partial, double* chunk_loss, double* chunk_deriv) {
  __shared__ Real r[kChunkRows];
  __shared__ double v[kChunkRows];
  const std::int64_t k = blockIdx.x;
  const std::int64_t t = plan.chunk_task[k];
  const std::int64_t row0 = plan.chunk_begin[k];
  const int n_rows = static_cast<int>(plan.chunk_begin[k + 1] - row0);
  const std::int64_t d = data.n_features;
  const Real* w = Wt + t * d;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  const double c = data.weights[t];
  const auto kind = static_cast<LossKind>(data.losses[t]);
  const double param = data.loss_params[t];
  const Real bt = b != nullptr ? b[t] : Real(0);
  for (int q = warp; q < n_rows; q += n_warps) {
    const std::int64_t i = row0 + q;
    const Real* x = data.X + i * d;
    Real acc = 0;
    for (std::int64_t j = lane; j < d; j += 32) acc += x[j] * w[j];
    for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
    if (lane == 0) {
      const Real z = acc + bt;
      const Real yi = data.y[i];
      const Real s = data.sample_weight != nullptr ? data.sample_weight[i] : Real(1);
      visit_loss(kind, param, [&](const auto& loss) {
        // A zero weight drops the row whatever its loss (an infinite loss times 0 would be NaN).
        v[q] = s != Real(0) ? c * static_cast<double>(s) * loss.value(yi, z) : 0.0;
        r[q] = s != Real(0) ? static_cast<Real>(c * static_cast<double>(s * loss.deriv(yi, z))) : Real(0);
      });
    }
  }
  __syncthreads();
  if (with_grad) {
    const Real* X0 = data.X + row0 * d;
    for (std::int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      Real acc = 0;
      for (int q = 0; q < n_rows; ++q) acc += r[q] * X0[q * d + j];
      partial[k * d + j] = static_cast<double>(acc);
    }
  }
  if (threadIdx.x == 0) {
    double loss = 0.0, deriv = 0.0;
    for (int q = 0; q < n_rows; ++q) {
      loss += v[q];
      deriv += static_cast<double>(r[q]);
    }
    chunk_loss[k] = loss;
    chunk_deriv[k] = deriv;
  }
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
    stacked_chunk_kernel<Real><<<static_cast<unsigned>(plan.n_chunks), kThreads, 0, s>>>(
        data, plan, Wt, b, with_grad, work.partial, work.chunk_loss, work.chunk_deriv);
    check_launch("stacked_chunk_kernel");
  }
  if (T > 0) {
    if (with_grad && d > 0) {
      const dim3 grid(static_cast<unsigned>(T), blocks_for(d, kThreads));
      task_gradient_kernel<Real><<<grid, kThreads, 0, s>>>(work.partial, plan.task_chunks, d, grad.gWt);
      check_launch("task_gradient_kernel");
    }
    task_scalars_kernel<Real>
        <<<blocks_for(T, kThreads), kThreads, 0, s>>>(work.chunk_loss, work.chunk_deriv, plan.task_chunks,
                                                      plan.n_chunks, T, work.task_loss, with_grad ? grad.gb : nullptr);
    check_launch("task_scalars_kernel");
  }
  total_kernel<<<1, 1, 0, s>>>(work.task_loss, T, work.total);
  check_launch("total_kernel");
  double total = 0.0;
  check(cudaMemcpyAsync(&total, work.total, sizeof total, cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  return total;
}

template double loss_grad_stacked<double>(const StackedTasks<double>&, const ChunkPlan&, const double*, const double*,
                                          GradientOut<double>, const Workspace&, std::uintptr_t);
template double loss_grad_stacked<float>(const StackedTasks<float>&, const ChunkPlan&, const float*, const float*,
                                         GradientOut<float>, const Workspace&, std::uintptr_t);

}  // namespace mtlx::cuda
