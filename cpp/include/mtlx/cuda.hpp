/// \file cuda.hpp
/// The CUDA backend's host-callable entry points (built with MTLX_CUDA; see cpp/src/cuda/).
///
/// Every pointer is a device pointer (CuPy's allocations, or any producer's through
/// __cuda_array_interface__ / DLPack), every call is enqueued on `stream` (a cudaStream_t passed
/// as an integer, so that this header needs no CUDA include and the pybind11 module compiles with
/// the host compiler). The arithmetic per row is the CPU's: the loss functors of losses.hpp.
///
/// Determinism: rows are cut into fixed chunks inside each task, a chunk's sums run in row order
/// in one thread, and chunks and tasks are summed in index order; the warp reduction of a margin
/// is a fixed butterfly. Repeated runs are bitwise equal on one device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "mtlx/grad.hpp"

namespace mtlx::cuda {

/// Rows per chunk of the stacked kernel (a chunk never crosses a task boundary).
inline constexpr std::int64_t kChunkRows = 64;

/// The fixed cut of stacked rows into chunks, computed once per dataset on the host (device copies).
struct ChunkPlan {
  const std::int64_t* chunk_begin;  ///< n_chunks + 1 row indices (chunk k is rows [begin[k], begin[k+1]))
  const std::int64_t* chunk_task;   ///< n_chunks: the task of each chunk
  const std::int64_t* task_chunks;  ///< n_tasks + 1: chunks task_chunks[t] .. task_chunks[t+1]-1 are task t
  std::int64_t n_chunks;
};

/// Scratch the stacked and shared kernels write (device memory, sizes in doubles as named).
struct Workspace {
  double* partial;      ///< n_chunks x d: per-chunk gradient sums (stacked layout)
  double* chunk_loss;   ///< n_chunks (stacked) or n_chunks x T (shared)
  double* chunk_deriv;  ///< same size as chunk_loss
  double* task_loss;    ///< n_tasks
  double* total;        ///< 1
};

/// Stacked layout: returns sum_t c_t sum_i s_i L_t(y_i, x_i . w_t + b_t); when grad.gWt is not null
/// writes its gradient (gWt: T x d, gb: T). All data pointers of `data` (X, y, offsets, losses,
/// loss_params, weights, sample_weight) are device pointers. Synchronizes `stream` to return.
template <class Real>
double loss_grad_stacked(const StackedTasks<Real>& data, const ChunkPlan& plan, const Real* Wt, const Real* b,
                         GradientOut<Real> grad, const Workspace& work, std::uintptr_t stream);

/// Shared layout, the part after the product Z = X Wt' (n x T, computed by cuBLAS through the
/// caller): R = c_t s_it L_t'(Y, Z + b) into `R` (when not null; the gradient is then R' X, again
/// by cuBLAS), gb = column sums of R, and the returned loss. Rows are cut into chunks of
/// kChunkRows. `work.chunk_loss` and `work.chunk_deriv` hold ceil(n / kChunkRows) x T doubles.
template <class Real>
double shared_residuals(const SharedTasks<Real>& data, const Real* Z, const Real* b, Real* R, Real* gb,
                        const Workspace& work, std::uintptr_t stream);

/// dst = src over n_bytes (a plain copy kernel, the bandwidth reference of bench_gpu.py).
void copy_bytes(const void* src, void* dst, std::size_t n_bytes, std::uintptr_t stream);

/// Number of CUDA devices visible (0 without a driver or a device).
int device_count();

/// Name, free and total bytes of device `index` (the current one is kept).
struct DeviceInfo {
  std::string name;
  std::size_t free_bytes;
  std::size_t total_bytes;
  int major;
  int minor;
};
DeviceInfo device_info(int index);

/// The CUDA runtime version this build was compiled against (e.g. 13000).
int runtime_version();

}  // namespace mtlx::cuda
