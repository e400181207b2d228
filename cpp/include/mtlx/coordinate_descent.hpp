/// \file coordinate_descent.hpp
/// Block coordinate descent for least squares with an l1 or l2,1 penalty, from Gram
/// statistics of a working set of k features: the inner solver of mtlx's working-set method.
///
/// With W (k x T, row j = feature j across the tasks) it minimizes
///     sum_t c_t (0.5 w_t' H_t w_t - w_t' h_t) + (l2 / 2) ||W||_F^2 + alpha g(W),
/// H_t the k x k Gram matrix of task t (one H shared by all tasks for shared input) and
/// B(j, t) = c_t h_t[j]. Each step minimizes over one row of W (l2,1: the row as a block;
/// l1: each entry) and keeps Q = [H_t w_t]_t (k x T) up to date, so a step costs O(k T) and
/// never touches the data. cd_epochs_residual runs the same steps from the data (O(n T) a row).
#pragma once

#include <cstdint>

#include "mtlx/prox.hpp"

namespace mtlx::cpu {

/// The working-set problem; every array is float64, C-contiguous.
struct CdProblem {
  const double* H;      ///< n_gram x k x k Gram matrices (n_gram = 1: shared by all tasks, or T)
  std::int64_t n_gram;  ///< 1 or T
  const double* B;      ///< k x T, B(j, t) = c_t h_t[j] (the correlations at W = 0)
  const double* c;      ///< T task weights c_t
  std::int64_t k;       ///< features in the working set
  std::int64_t T;       ///< tasks
  double alpha;         ///< strength of g
  double l2;            ///< ridge strength
  PenaltyKind penalty;  ///< l1 or l21
};

/// What a run of epochs did.
struct CdResult {
  std::int64_t epochs;  ///< epochs run
  double max_change;    ///< largest |W(j, t)| change in the last epoch
  double max_abs;       ///< largest |W(j, t)| after it
};

/// Runs epochs over the k rows (in order) until the largest change of an entry in an epoch
/// is at most tol times the largest entry, or max_epochs. W (k x T) is updated in place and
/// Q (k x T) must hold [H_t w_t]_t on entry; it is kept consistent with W.
CdResult cd_epochs(const CdProblem& problem, double* W, double* Q, std::int64_t max_epochs, double tol);

/// The same problem for one input matrix shared by the tasks, from the data instead of Gram
/// statistics: the k working-set columns of X (centered when there are intercepts) and the
/// residuals R = Y - X_S W (T x n), each row's gradient -c_t x_j' r_t costing O(n T). Pays when
/// the working set is larger than the rows (d >> n). Every array is float64, C-contiguous.
struct ResidualCdProblem {
  const double* X;         ///< k x n: row j is column j of the working set, contiguous
  const double* sq_norms;  ///< k: ||x_j||^2
  const double* c;         ///< T task weights c_t
  std::int64_t k;          ///< features in the working set
  std::int64_t n;          ///< rows
  std::int64_t T;          ///< tasks
  double alpha;            ///< strength of g
  double l2;               ///< ridge strength
  PenaltyKind penalty;     ///< l1 or l21
  /// k x T: with l1, the entries the epochs update (1) and leave as they are (0): per-task working
  /// sets (independent lassos: each task's support a small part of the union). Null: every entry.
  const std::uint8_t* active = nullptr;
};

/// Epochs as cd_epochs, with R (T x n) holding Y - X_S W on entry; it is kept consistent with W.
CdResult cd_epochs_residual(const ResidualCdProblem& problem, double* W, double* R, std::int64_t max_epochs,
                            double tol);

/// The residual problem with a sparse working set: its k columns as the rows of a CSR matrix
/// (column j of X_S: values data[indptr[j] .. indptr[j+1]) at rows indices[...]), centered
/// implicitly (x_j - xbar_j 1, never formed: the dense part of each move is carried as an offset of
/// every row of R, applied once at the end of the call). A row's gradient and move cost O(nnz_j T).
/// Index is the sparse X's own index type (int32 or int64), which the gathered columns keep.
template <class Index>
struct SparseResidualCdProblem {
  const double* data;      ///< the stored entries of the k columns
  const Index* indices;    ///< their rows (each < n)
  const Index* indptr;     ///< k + 1
  const double* xbar;      ///< k column means subtracted (null: no centering)
  const double* col_sums;  ///< k: sum_i x_ij
  const double* sq_norms;  ///< k: ||x_j - xbar_j||^2
  const double* c;         ///< T task weights c_t
  std::int64_t k, n, T;
  double alpha, l2;
  PenaltyKind penalty;
};

/// Epochs as cd_epochs_residual for a sparse working set; R, row-major n x T (a sample's T
/// residuals side by side), holds Y - ybar - X_S,c W on entry and on exit.
template <class Index>
CdResult cd_epochs_residual_sparse(const SparseResidualCdProblem<Index>& problem, double* W, double* R,
                                   std::int64_t max_epochs, double tol);

/// The inner problem of a proximal Newton step (mtlx/prox_newton.py): the quadratic model of a
/// smooth loss at an expansion point (W0, b0), on k working-set columns of the data,
///   sum_t [ g_t'(w_t - w0_t) + gb_t db_t + 0.5 sum_{i of t} h_i (x_i'(w_t - w0_t) + db_t)^2 ]
///   + (l2 / 2) ||W||_F^2 + alpha g(W),
/// g the loss's gradient and h its per-entry curvature at the expansion point (task and sample
/// weights included), db the intercepts' move (unpenalized). Q = X_S(W - W0) + db is kept up to
/// date, so a row's model gradient costs O(rows): with one X shared by the tasks (offsets null),
/// H and Q are T x n, task t's row t; with stacked tasks (offsets), H and Q have one entry per
/// row of X, task t's rows offsets[t] .. offsets[t+1]-1. Every array is float64, C-contiguous.
struct NewtonCdProblem {
  const double* X;     ///< k x n: row j is working-set column j, contiguous
  const double* G;     ///< k x T: the loss's gradient at the expansion point
  const double* H;     ///< T x n (shared) or n (stacked): the loss's curvature h >= 0 there
  const double* curv;  ///< k x T: sum over task t's rows of h_i x_ij^2
  const double* g_b;   ///< T: the intercepts' gradient at the expansion point (null: no intercepts)
  const double* h_b;   ///< T: sum over task t's rows of h_i (with g_b)
  std::int64_t k, n, T;
  double alpha, l2;
  PenaltyKind penalty;
  const std::int64_t* offsets = nullptr;  ///< T + 1 row offsets of stacked tasks (null: one shared X)
  /// k x T: with l1, the entries the epochs update (1) and leave as they are (0): per-task working
  /// sets, whose tasks' supports differ (independent lassos: each task's rows are a tenth of the
  /// union). Null: every entry.
  const std::uint8_t* active = nullptr;
};

/// Epochs of the model: each begins with the exact step of every intercept, then the rows as
/// cd_epochs. W (k x T) holds the current point (W0 at the start), Q (as H) and db (T) the
/// moves so far (zeros at the start); all are updated in place.
CdResult cd_epochs_newton(const NewtonCdProblem& problem, double* W, double* Q, double* db, std::int64_t max_epochs,
                          double tol);

}  // namespace mtlx::cpu
