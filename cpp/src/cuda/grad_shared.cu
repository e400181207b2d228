// The shared-input layout on the device, between the two cuBLAS products the caller makes
// (Z = X Wt' before, gWt = R' X after): the per-entry loss derivatives R, and the per-task loss
// and intercept gradient by fixed-order chunk sums. Threads run over tasks (the contiguous
// dimension of Z, Y and R), each summing its column over a chunk of kChunkRows rows in order.
#include <cuda_runtime.h>

#include "check.cuh"
#include "mtlx/cuda.hpp"
#include "mtlx/losses.hpp"
#include "reduce.cuh"

namespace mtlx::cuda {
namespace {

constexpr int kThreads = 128;

template <class Real>
__global__ void shared_chunk_kernel(SharedTasks<Real> data, const Real* Z, const Real* b, Real* R, double* chunk_loss,
                                    double* chunk_deriv) {
  const std::int64_t T = data.n_tasks;
  // Row chunks on x (up to 2^31 - 1 blocks), task blocks on y (at most 65535: T up to 8.3 million).
  const std::int64_t t = blockIdx.y * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (t >= T) return;
  const std::int64_t k = blockIdx.x;
  const std::int64_t row0 = k * kChunkRows;
  const std::int64_t row1 = row0 + kChunkRows < data.n_samples ? row0 + kChunkRows : data.n_samples;
  const double c = data.weights[t];
  const auto kind = static_cast<LossKind>(data.losses[t]);
  const double param = data.loss_params[t];
  const Real bt = b != nullptr ? b[t] : Real(0);
  double loss = 0.0, deriv = 0.0;
  visit_loss(kind, param, [&](const auto& fn) {
    for (std::int64_t i = row0; i < row1; ++i) {
      const std::int64_t e = i * T + t;
      const Real z = Z[e] + bt;
      const Real y = data.Y[e];
      const Real s = data.sample_weight != nullptr ? data.sample_weight[e] : Real(1);
      // A zero weight (a dropped row, a missing label, a task of weight 0) counts nothing, whatever
      // the loss there.
      const bool counts = s != Real(0) && c != 0.0;
      const double value = counts ? c * static_cast<double>(s) * fn.value(y, z) : 0.0;
      const Real r = counts ? static_cast<Real>(c * static_cast<double>(s * fn.deriv(y, z))) : Real(0);
      loss += value;
      deriv += static_cast<double>(r);
      if (R != nullptr) R[e] = r;
    }
  });
  chunk_loss[k * T + t] = loss;
  chunk_deriv[k * T + t] = deriv;
}

}  // namespace

template <class Real>
double shared_residuals(const SharedTasks<Real>& data, const Real* Z, const Real* b, Real* R, Real* gb,
                        const Workspace& work, std::uintptr_t stream) {
  const cudaStream_t s = as_stream(stream);
  const std::int64_t T = data.n_tasks;
  const std::int64_t n_chunks = (data.n_samples + kChunkRows - 1) / kChunkRows;
  if (T > 0 && n_chunks > 0) {
    const dim3 grid(static_cast<unsigned>(n_chunks), blocks_for(T, kThreads));
    shared_chunk_kernel<Real><<<grid, kThreads, 0, s>>>(data, Z, b, R, work.chunk_loss, work.chunk_deriv);
    check_launch("shared_chunk_kernel");
  }
  if (T > 0) {
    task_scalars_kernel<Real><<<blocks_for(T, kThreads), kThreads, 0, s>>>(work.chunk_loss, work.chunk_deriv, nullptr,
                                                                           n_chunks, T, work.task_loss, gb);
    check_launch("task_scalars_kernel");
  }
  return total_loss(work, T, s);
}

template double shared_residuals<double>(const SharedTasks<double>&, const double*, const double*, double*, double*,
                                         const Workspace&, std::uintptr_t);
template double shared_residuals<float>(const SharedTasks<float>&, const float*, const float*, float*, float*,
                                        const Workspace&, std::uintptr_t);

}  // namespace mtlx::cuda
