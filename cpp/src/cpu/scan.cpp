// Whole-array scans: the NaN/inf check done once at the edge, and the plain read loop that
// benchmarks use as the machine's bandwidth reference.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "mtlx/grad.hpp"

namespace mtlx::cpu {

template <class Real>
std::int64_t first_nonfinite_row(const Real* X, std::int64_t n_rows, std::int64_t n_cols, int n_threads) {
  std::int64_t first = std::numeric_limits<std::int64_t>::max();
#pragma omp parallel for num_threads(n_threads) schedule(static) reduction(min : first)
  for (std::int64_t i = 0; i < n_rows; ++i) {
    const Real* x = X + i * n_cols;
    // x - x is 0 for finite x and NaN for NaN or +-inf: one vectorizable test per entry.
    Real probe = 0;
#pragma omp simd reduction(+ : probe)
    for (std::int64_t j = 0; j < n_cols; ++j) probe += x[j] - x[j];
    if (probe != Real(0)) first = std::min(first, i);
  }
  return first == std::numeric_limits<std::int64_t>::max() ? -1 : first;
}

template <class Real>
double read_sum(const Real* data, std::int64_t size, int n_threads) {
  double total = 0.0;
#pragma omp parallel num_threads(n_threads) reduction(+ : total)
  {
    std::int64_t begin = 0, end = size;
#ifdef _OPENMP
    const std::int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    begin = size * id / nt;
    end = size * (id + 1) / nt;
#endif
    Real acc = 0;
#pragma omp simd reduction(+ : acc)
    for (std::int64_t i = begin; i < end; ++i) acc += data[i];
    total += acc;
  }
  return total;
}

template std::int64_t first_nonfinite_row<double>(const double*, std::int64_t, std::int64_t, int);
template std::int64_t first_nonfinite_row<float>(const float*, std::int64_t, std::int64_t, int);
template double read_sum<double>(const double*, std::int64_t, int);
template double read_sum<float>(const float*, std::int64_t, int);

}  // namespace mtlx::cpu
