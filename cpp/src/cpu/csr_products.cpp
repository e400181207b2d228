// The passes over a CSR X that the working-set engine makes, in row-major layouts: a stored entry
// reads or adds one contiguous run of T values (task-major blocks touched T cache lines n and d
// apart per entry: 3x slower on a 100,000 x 50,000 X at 0.1%, T = 20).
#include "mtlx/csr_products.hpp"

#include <algorithm>
#include <vector>

#include "parallel.hpp"
#include "widest_vectors.hpp"

namespace mtlx::cpu {
namespace {

// Threads worth starting for a pass over nnz entries of T values each.
int threads_for(std::int64_t nnz, std::int64_t T, int n_threads) {
  return (n_threads > 1 && nnz * std::max<std::int64_t>(T, 1) >= kMinParallelElements) ? n_threads : 1;
}

template <class Index>
std::int64_t at(const Index* p, std::int64_t i) {
  return static_cast<std::int64_t>(p[i]);
}

constexpr std::int64_t kAhead = 16;

}  // namespace

template <class Real, class Index>
MTLX_WIDEST_VECTORS void csr_transpose_times(const CsrMatrix<Real, Index>& X, const double* R, std::int64_t T,
                                             double* out, bool accumulate, int n_threads) {
  const std::int64_t d = X.n_cols, n = X.n_rows;
  const std::int64_t nnz = n > 0 ? at(X.indptr, n) : 0;
  const int used = threads_for(nnz, T, n_threads);
  // Thread p owns the rows (features) [d p / used, d (p + 1) / used) of out and scans every stored
  // entry for those in its range: each out entry still sums over the rows of X ascending, as on
  // one thread (bitwise the same result), for every thread reading X's indices. (Private copies
  // of out would read X once, but cost d x T each and sum in an order set by the thread count;
  // splitting the tasks instead made two threads write the same cache lines: 2x slower.)
#pragma omp parallel for num_threads(used) schedule(static, 1) if (used > 1)
  for (int part = 0; part < used; ++part) {
    const std::int64_t lo_col = d * part / used, hi_col = d * (part + 1) / used;
    if (!accumulate) std::fill(out + lo_col * T, out + hi_col * T, 0.0);
    for (std::int64_t i = 0; i < n; ++i) {
      const double* __restrict ri = R + i * T;
      for (std::int64_t q = at(X.indptr, i); q < at(X.indptr, i + 1); ++q) {
        // The row of out that the entry kAhead on adds to is fetched while this one is added:
        // rows of out are hit at random, and d x T doubles exceed the caches (44 -> 32 ms a
        // pass at 100,000 x 50,000, 0.1%, T = 20).
        if (q + kAhead < nnz) {
          const std::int64_t ahead = at(X.indices, q + kAhead);
          if (ahead >= lo_col && ahead < hi_col) {
            for (std::int64_t t = 0; t < T; t += 8) __builtin_prefetch(out + ahead * T + t, 1);
          }
        }
        const std::int64_t j = at(X.indices, q);
        if (j < lo_col || j >= hi_col) continue;
        const double v = static_cast<double>(X.data[q]);
        double* __restrict oj = out + j * T;
        for (std::int64_t t = 0; t < T; ++t) oj[t] += v * ri[t];
      }
    }
  }
}

template <class Real, class Index>
MTLX_WIDEST_VECTORS void csr_times(const CsrMatrix<Real, Index>& X, const double* V, std::int64_t T, double* out,
                                   bool accumulate, int n_threads) {
  const std::int64_t n = X.n_rows;
  const std::int64_t nnz = n > 0 ? at(X.indptr, n) : 0;
  const int used = threads_for(nnz, T, n_threads);
  // Row i of the output: the sum over row i's entries in order, each a contiguous run of V.
#pragma omp parallel for num_threads(used) schedule(static) if (used > 1)
  for (std::int64_t i = 0; i < n; ++i) {
    double* __restrict oi = out + i * T;
    if (!accumulate) std::fill(oi, oi + T, 0.0);
    const std::int64_t hi = at(X.indptr, i + 1);
    for (std::int64_t q = at(X.indptr, i); q < hi; ++q) {
      if (q + kAhead < nnz) {
        const double* ahead = V + at(X.indices, q + kAhead) * T;
        for (std::int64_t l = 0; l < T; l += 8) __builtin_prefetch(ahead + l);
      }
      const double x = static_cast<double>(X.data[q]);
      const double* __restrict vj = V + at(X.indices, q) * T;
      for (std::int64_t t = 0; t < T; ++t) oi[t] += x * vj[t];
    }
  }
}

template <class Real, class Index>
void csr_gram_rows(const CsrMatrix<double, Index>& C, const CsrMatrix<Real, Index>& X, double* out, int n_threads) {
  const std::int64_t k = C.n_rows, d = X.n_cols;
  const std::int64_t work =
      k > 0 ? at(C.indptr, k) * std::max<std::int64_t>(1, at(X.indptr, X.n_rows) / std::max<std::int64_t>(X.n_rows, 1))
            : 0;
  const int used = threads_for(work, 1, n_threads);
  // Row p of the output: the rows of X that column p of X_S meets, scaled and added in order.
#pragma omp parallel for num_threads(used) schedule(dynamic, 1) if (used > 1)
  for (std::int64_t p = 0; p < k; ++p) {
    double* __restrict op = out + p * d;
    std::fill(op, op + d, 0.0);
    for (std::int64_t q = at(C.indptr, p); q < at(C.indptr, p + 1); ++q) {
      const std::int64_t i = at(C.indices, q);
      const double v = C.data[q];
      for (std::int64_t e = at(X.indptr, i); e < at(X.indptr, i + 1); ++e)
        op[at(X.indices, e)] += v * static_cast<double>(X.data[e]);
    }
  }
}

template <class Real, class Index>
void csr_selected_column_starts(const CsrMatrix<Real, Index>& X, const std::int64_t* position, std::int64_t k,
                                Index* indptr) {
  std::fill(indptr, indptr + k + 1, Index{0});
  const std::int64_t nnz = X.n_rows > 0 ? at(X.indptr, X.n_rows) : 0;
  for (std::int64_t q = 0; q < nnz; ++q) {
    const std::int64_t p = position[at(X.indices, q)];
    if (p >= 0) ++indptr[p + 1];
  }
  for (std::int64_t j = 0; j < k; ++j) indptr[j + 1] += indptr[j];
}

template <class Real, class Index>
bool csr_gather_columns(const CsrMatrix<Real, Index>& X, const std::int64_t* position, std::int64_t k,
                        const Index* indptr, double* data, Index* rows, double* sums, double* squares) {
  // Rows visited in order, so each selected column lists its entries by ascending row (scipy's
  // column indexing sorted and made temporaries the size of X).
  std::vector<std::int64_t> next(indptr, indptr + k);  // (int64: the counts as they grow)
  for (std::int64_t i = 0; i < X.n_rows; ++i) {
    for (std::int64_t q = at(X.indptr, i); q < at(X.indptr, i + 1); ++q) {
      const std::int64_t p = position[at(X.indices, q)];
      if (p < 0) continue;
      const std::int64_t slot = next[static_cast<std::size_t>(p)]++;
      if (slot >= at(indptr, p + 1)) return false;  // (starts the caller counted that do not fit X)
      data[slot] = static_cast<double>(X.data[q]);
      rows[slot] = static_cast<Index>(i);
    }
  }
  for (std::int64_t j = 0; j < k; ++j) {
    if (next[static_cast<std::size_t>(j)] != at(indptr, j + 1)) return false;  // (a column short of its range)
    double s = 0.0, s2 = 0.0;
    for (std::int64_t q = at(indptr, j); q < at(indptr, j + 1); ++q) {
      s += data[q];
      s2 += data[q] * data[q];
    }
    sums[j] = s;
    squares[j] = s2;
  }
  return true;
}

#define MTLX_CSR_PRODUCTS(Real, Index)                                                                                \
  template void csr_transpose_times<Real, Index>(const CsrMatrix<Real, Index>&, const double*, std::int64_t, double*, \
                                                 bool, int);                                                          \
  template void csr_times<Real, Index>(const CsrMatrix<Real, Index>&, const double*, std::int64_t, double*, bool,     \
                                       int);                                                                          \
  template void csr_gram_rows<Real, Index>(const CsrMatrix<double, Index>&, const CsrMatrix<Real, Index>&, double*,   \
                                           int);                                                                      \
  template void csr_selected_column_starts<Real, Index>(const CsrMatrix<Real, Index>&, const std::int64_t*,           \
                                                        std::int64_t, Index*);                                        \
  template bool csr_gather_columns<Real, Index>(const CsrMatrix<Real, Index>&, const std::int64_t*, std::int64_t,     \
                                                const Index*, double*, Index*, double*, double*);
MTLX_CSR_PRODUCTS(double, std::int32_t)
MTLX_CSR_PRODUCTS(double, std::int64_t)
MTLX_CSR_PRODUCTS(float, std::int32_t)
MTLX_CSR_PRODUCTS(float, std::int64_t)
#undef MTLX_CSR_PRODUCTS

}  // namespace mtlx::cpu
