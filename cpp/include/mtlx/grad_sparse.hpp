/// \file grad_sparse.hpp
/// The smooth part of the objective and its gradient for a sparse X in CSR form (text, one-hot
/// and other mostly-zero inputs), in both layouts, without ever forming a dense copy of X.
///
/// Rows are dealt into a fixed number of lanes (contiguous row ranges; the count depends on the
/// shape only), each with its own gradient accumulator in double, added in lane order: the result
/// is bitwise the same for any thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mtlx/grad.hpp"

namespace mtlx {

/// A CSR matrix as scipy stores it: row i holds data[indptr[i] .. indptr[i+1]) at columns indices[...].
/// Index is the dtype of indptr and indices (int32 or int64, as scipy chose: never converted).
template <class Real, class Index>
struct CsrMatrix {
  const Real* data;
  const Index* indices;
  const Index* indptr;  ///< n_rows + 1
  std::int64_t n_rows;
  std::int64_t n_cols;
};

/// The per-task arrays both layouts share (see StackedTasks and SharedTasks).
struct TaskLosses {
  const std::uint8_t* losses;  ///< n_tasks LossKind codes
  const double* loss_params;   ///< n_tasks loss parameters
  const double* weights;       ///< n_tasks task weights c_t
  std::int64_t n_tasks;
};

namespace cpu {

/// Stacked layout: rows offsets[t] .. offsets[t+1]-1 of X and y are task t; sample_weight (n) may be null.
template <class Real, class Index>
double loss_grad_csr_stacked(const CsrMatrix<Real, Index>& X, const Real* y, const std::int64_t* offsets,
                             const Real* sample_weight, const TaskLosses& tasks, const Real* Wt, const Real* b,
                             GradientOut<Real> grad, int n_threads);

/// Shared layout: one X for every task, Y n x T row-major; sample_weight (n x T) may be null.
template <class Real, class Index>
double loss_grad_csr_shared(const CsrMatrix<Real, Index>& X, const Real* Y, const Real* sample_weight,
                            const TaskLosses& tasks, const Real* Wt, const Real* b, GradientOut<Real> grad,
                            int n_threads);

/// Number of lanes of the sparse loss_grad for n rows, nnz non-zeros of `entry_bytes` each (value
/// and index) and a T x d gradient: a function of the shape only.
std::int64_t sparse_lanes(std::int64_t n, std::int64_t nnz, std::int64_t d, std::int64_t T, std::size_t entry_bytes);

}  // namespace cpu
}  // namespace mtlx
