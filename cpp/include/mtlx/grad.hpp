/// \file grad.hpp
/// The smooth part of the objective, sum_t c_t sum_i L_t(y_ti, x_ti . w_t + b_t), and its
/// gradient for every task in one call.
///
/// Two data layouts reach the core:
///   StackedTasks: each task its own rows, stacked in task order (layouts "different inputs");
///   SharedTasks:  one X read once for all tasks, targets Y of shape n x T ("same input").
/// Coefficients are passed as Wt, row-major T x d (row t = w_t), so each task vector is contiguous.
///
/// Results are deterministic whatever the thread count: work is cut into fixed chunks whose
/// partial sums are reduced in a fixed order.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mtlx/losses.hpp"

namespace mtlx {

/// Ragged tasks stacked row-wise: rows offsets[t] .. offsets[t+1]-1 of X and y belong to task t.
template <class Real>
struct StackedTasks {
  const Real* X;                ///< n x d, row-major
  const Real* y;                ///< n
  const std::int64_t* offsets;  ///< n_tasks + 1, non-decreasing, offsets[0] = 0
  const std::uint8_t* losses;   ///< n_tasks LossKind codes
  const double* loss_params;    ///< n_tasks loss parameters (Huber's epsilon; unused by the others)
  const double* weights;        ///< n_tasks task weights c_t
  std::int64_t n_tasks;
  std::int64_t n_features;
  const Real* sample_weight = nullptr;  ///< n row weights s_i >= 0 (null: all 1): L -> s_i L
};

/// One input matrix shared by every task.
template <class Real>
struct SharedTasks {
  const Real* X;               ///< n x d, row-major
  const Real* Y;               ///< n x n_tasks, row-major
  const std::uint8_t* losses;  ///< n_tasks LossKind codes
  const double* loss_params;   ///< n_tasks loss parameters (Huber's epsilon; unused by the others)
  const double* weights;       ///< n_tasks task weights c_t
  std::int64_t n_samples;
  std::int64_t n_tasks;
  std::int64_t n_features;
  /// n x n_tasks entry weights s_it >= 0, row-major (null: all 1): L_t -> s_it L_t. Row weights
  /// repeated per task, times 0 where a row is not labelled for a task (missing labels).
  const Real* sample_weight = nullptr;
};

/// Where the gradient goes; both null means "value only" (a cheaper pass for line searches).
template <class Real>
struct GradientOut {
  Real* gWt = nullptr;  ///< n_tasks x d, row-major, overwritten
  Real* gb = nullptr;   ///< n_tasks, overwritten (gradient w.r.t. the intercepts)
};

namespace cpu {

/// Loss value of the stacked layout at (Wt, b); fills `grad` when grad.gWt is non-null.
/// `b` may be null (no intercepts: b = 0).
template <class Real>
double loss_grad(const StackedTasks<Real>& data, const Real* Wt, const Real* b, GradientOut<Real> grad, int n_threads);

/// Same for the shared-input layout: X is read once per call, in row blocks, with BLAS products.
/// Threads take fixed lanes of blocks (see shared_lanes); each calls BLAS, which the caller should
/// hold to one thread when n_threads > 1 (the parallelism is the lanes').
template <class Real>
double loss_grad(const SharedTasks<Real>& data, const Real* Wt, const Real* b, GradientOut<Real> grad, int n_threads);

/// Number of lanes (independent partial sums, the parallel units) of the shared-input loss_grad
/// for n x d data with T tasks and entries of `real_size` bytes: a function of the shape only.
std::int64_t shared_lanes(std::int64_t n, std::int64_t d, std::int64_t T, std::size_t real_size);

/// Index of the first row of the n x d matrix X holding a NaN or an infinity, or -1.
template <class Real>
std::int64_t first_nonfinite_row(const Real* X, std::int64_t n_rows, std::int64_t n_cols, int n_threads);

/// Instruction set of the streaming kernels in use on this CPU: "avx512", "avx2" or "generic".
const char* active_isa();

/// Sum of all entries of a contiguous array: a plain read loop, the bandwidth reference for benchmarks.
template <class Real>
double read_sum(const Real* data, std::int64_t size, int n_threads);

}  // namespace cpu
}  // namespace mtlx
