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
#include "mtlx/prox.hpp"

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

/// A CSR matrix in device memory with int32 indices (cuSPARSE's, through CuPy): row i holds
/// data[indptr[i] .. indptr[i + 1]) at columns indices[...], increasing.
template <class Real>
struct DeviceCsr {
  const Real* data;
  const std::int32_t* indices;
  const std::int32_t* indptr;
};

/// Stacked layout with a CSR X: as loss_grad_stacked (the same chunks, a warp per row for its
/// margin over the row's entries, summed in double). The gradient reads X' (`XT`, d rows, sample
/// indices sorted): thread (t, j) sums r_i x_ij over task t's entries of feature j in row order
/// (zero where there is none): no partial sums per chunk, whose n_chunks x d doubles would outgrow
/// a sparse X. `r`: n Reals of scratch (the rows' c s L'). Synchronizes `stream` to return.
template <class Real>
double loss_grad_stacked_csr(const StackedTasks<Real>& data, const DeviceCsr<Real>& X, const DeviceCsr<Real>& XT,
                             const ChunkPlan& plan, const Real* Wt, const Real* b, GradientOut<Real> grad, Real* r,
                             const Workspace& work, std::uintptr_t stream);

/// Shared layout, the part after the product Z = X Wt' (n x T, computed by cuBLAS through the
/// caller): R = c_t s_it L_t'(Y, Z + b) into `R` (when not null; the gradient is then R' X, again
/// by cuBLAS), gb = column sums of R, and the returned loss. Rows are cut into chunks of
/// kChunkRows. `work.chunk_loss` and `work.chunk_deriv` hold ceil(n / kChunkRows) x T doubles.
template <class Real>
double shared_residuals(const SharedTasks<Real>& data, const Real* Z, const Real* b, Real* R, Real* gb,
                        const Workspace& work, std::uintptr_t stream);

/// Launch shape of the fixed-order sums (fixed_sums.cuh): the order depends on the length alone.
inline constexpr int kSumBlocks = 256;
inline constexpr int kSumThreads = 256;

/// Device scratch of the fixed-order sums: kSumBlocks x 8 partials, then 8 results (doubles).
struct SumScratch {
  double* partial;
  double* result;
};

// FISTA's fused vector steps over float64 device vectors of n entries (the math: fista_ops.hpp).

/// out = y - step * g.
void gradient_step(const double* y, const double* g, double step, double* out, std::int64_t n, std::uintptr_t stream);
/// The five TrialSums (step_sq, linear, trial_sq, extrap_sq, momentum) into host_out[0..4]; move = x+ - x.
void trial_sums(const double* x_new, const double* y, const double* x, const double* g, double* move, std::int64_t n,
                const SumScratch& scratch, double* host_out, std::uintptr_t stream);
/// y = x+ + beta * move.
void extrapolate(const double* x_new, const double* move, double beta, double* y, std::int64_t n,
                 std::uintptr_t stream);
/// g_y = (1 + beta) g_new - beta g_x; returns <g_new + g_y, move>.
double extrapolate_gradient(const double* g_new, const double* g_x, const double* move, double beta, double* g_y,
                            std::int64_t n, const SumScratch& scratch, std::uintptr_t stream);
/// ||a||^2.
double squared_norm(const double* a, std::int64_t n, const SumScratch& scratch, std::uintptr_t stream);

/// out = prox of tau * g at V (T x d row-major float64; out may alias V) for g = l1, l21 or mean;
/// returns g(out). `feature`: 2 d doubles of device scratch.
double prox(PenaltyKind kind, const double* V, std::int64_t T, std::int64_t d, double tau, double* out, double* feature,
            const SumScratch& scratch, std::uintptr_t stream);
/// g(V) for g = l1, l21 or mean.
double penalty_value(PenaltyKind kind, const double* V, std::int64_t T, std::int64_t d, double* feature,
                     const SumScratch& scratch, std::uintptr_t stream);

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
