// The fixed-order reductions the stacked and shared kernels share.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "check.cuh"
#include "mtlx/cuda.hpp"

namespace mtlx::cuda {

/// Per task t: task_loss[t] = sum of chunk_loss over its chunks, gb[t] = sum of chunk_deriv (in chunk
/// order); `stride` and `column` pick the task's column of a chunk x T table (shared layout: stride
/// T, column t, chunks 0..n_chunks-1) or a chunk range of a flat table (stacked: stride 1).
template <class Real>
__global__ void task_scalars_kernel(const double* chunk_loss, const double* chunk_deriv,
                                    const std::int64_t* task_chunks, std::int64_t n_chunks_all, std::int64_t n_tasks,
                                    double* task_loss, Real* gb) {
  const std::int64_t t = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (t >= n_tasks) return;
  double loss = 0.0, deriv = 0.0;
  if (task_chunks != nullptr) {  // stacked: a range of chunks per task
    for (std::int64_t k = task_chunks[t]; k < task_chunks[t + 1]; ++k) {
      loss += chunk_loss[k];
      deriv += chunk_deriv[k];
    }
  } else {  // shared: column t of an n_chunks x T table
    for (std::int64_t k = 0; k < n_chunks_all; ++k) {
      loss += chunk_loss[k * n_tasks + t];
      deriv += chunk_deriv[k * n_tasks + t];
    }
  }
  task_loss[t] = loss;
  if (gb != nullptr) gb[t] = static_cast<Real>(deriv);
}

namespace {
/// total[0] = sum of task_loss in task order (one thread: T numbers, once per evaluation).
__global__ void total_kernel(const double* task_loss, std::int64_t n_tasks, double* total) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double s = 0.0;
  for (std::int64_t t = 0; t < n_tasks; ++t) s += task_loss[t];
  total[0] = s;
}

/// The total over tasks (one kernel), brought to the host: the one scalar an evaluation returns.
inline double total_loss(const Workspace& work, std::int64_t n_tasks, cudaStream_t s) {
  total_kernel<<<1, 1, 0, s>>>(work.task_loss, n_tasks, work.total);
  check_launch("total_kernel");
  double total = 0.0;
  check(cudaMemcpyAsync(&total, work.total, sizeof total, cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  return total;
}

/// The stacked kernels' last steps: each task's loss and gb from its chunks' sums (in chunk order),
/// then the total, brought to the host.
template <class Real>
double stacked_task_totals(const Workspace& work, const ChunkPlan& plan, std::int64_t n_tasks, Real* gb,
                           cudaStream_t s) {
  if (n_tasks > 0) {
    task_scalars_kernel<Real><<<blocks_for(n_tasks, 256), 256, 0, s>>>(
        work.chunk_loss, work.chunk_deriv, plan.task_chunks, plan.n_chunks, n_tasks, work.task_loss, gb);
    check_launch("task_scalars_kernel");
  }
  return total_loss(work, n_tasks, s);
}
}  // namespace

}  // namespace mtlx::cuda
