/// \file csr_products.hpp
/// Products of a CSR matrix with dense row-major blocks, and its column gather: the passes over a
/// sparse X that the working-set engine makes (gap checks, residuals, the working set's columns).
///
/// Every product is bitwise the same for any thread count: threads split the output (rows of
/// X V, column ranges of X' R), and each output entry is summed over X's entries in storage order.
#pragma once

#include <cstdint>

#include "mtlx/grad_sparse.hpp"

namespace mtlx::cpu {

/// out (d x T, row-major) = X' R, or out += X' R with `accumulate`, for R (n x T, row-major).
template <class Real, class Index>
void csr_transpose_times(const CsrMatrix<Real, Index>& X, const double* R, std::int64_t T, double* out, bool accumulate,
                         int n_threads);

/// out (n x T, row-major) = X V, or out += X V with `accumulate`, for V (d x T, row-major).
template <class Real, class Index>
void csr_times(const CsrMatrix<Real, Index>& X, const double* V, std::int64_t T, double* out, bool accumulate,
               int n_threads);

/// out (k x d, row-major) = C X for a k x n CSR matrix C (double entries, X's index type: the
/// selected columns of X as csr_gather_columns lays them out) and X (n x d): with C = X_S',
/// the Gram rows X_S' X, dense, written straight into the working-set engine's cache. Output rows
/// are independent (threads split them): bitwise the same for any thread count.
template <class Real, class Index>
void csr_gram_rows(const CsrMatrix<double, Index>& C, const CsrMatrix<Real, Index>& X, double* out, int n_threads);

/// Where each selected column starts among the gathered entries: `position` (n_cols entries, each
/// < k) sends column j to row position[j] of a k x n CSR matrix (position[j] < 0: not selected);
/// indptr (k + 1) receives that matrix's row pointers, in X's index type (X's own entries fit it,
/// so the selected ones do).
template <class Real, class Index>
void csr_selected_column_starts(const CsrMatrix<Real, Index>& X, const std::int64_t* position, std::int64_t k,
                                Index* indptr);

/// The selected columns gathered by a counting sort (one pass over X's entries, memory of the
/// selected entries only) into the k x n CSR matrix whose `indptr` csr_selected_column_starts
/// gave: each row lists its entries by ascending row of X (`rows`, their values in `data`), with
/// the column's sum and sum of squares. The row indices take X's index type (the caller checks
/// that X's row count fits it): with scipy's int32, a third less memory than int64 rows. Returns
/// false, having written nothing past a column's range, when the entries do not fill `indptr`'s
/// ranges exactly (starts counted by the caller from other data than X's).
template <class Real, class Index>
bool csr_gather_columns(const CsrMatrix<Real, Index>& X, const std::int64_t* position, std::int64_t k,
                        const Index* indptr, double* data, Index* rows, double* sums, double* squares);

}  // namespace mtlx::cpu
