// Passes over a dense row-major X for the working-set engine (see mtlx/dense_columns.hpp).
#include "mtlx/dense_columns.hpp"

#include <algorithm>

#include "parallel.hpp"
#include "widest_vectors.hpp"

namespace mtlx::cpu {
namespace {

/// Columns of X per range a thread takes: the range's outputs (m x 2,048 doubles, 16 KiB a
/// residual) stay in cache while X's rows stream by. Fixed: the sums do not depend on threads.
constexpr std::int64_t kColumnRange = 2048;

/// Rows of X a pass takes at once (each output entry gets their four terms in one add).
constexpr std::int64_t kRowGroup = 4;

int threads_for(std::int64_t work, int n_threads) {
  return (n_threads > 1 && work >= kMinParallelElements) ? n_threads : 1;
}

}  // namespace

template <class Real>
MTLX_WIDEST_VECTORS void dense_transpose_times(const Real* X, std::int64_t n, std::int64_t d, const double* R,
                                               std::int64_t m, double* out, int n_threads) {
  const std::int64_t ranges = (d + kColumnRange - 1) / kColumnRange;
  const int used = threads_for(n * d * std::max<std::int64_t>(m, 1), n_threads);
#pragma omp parallel for num_threads(used) schedule(static) if (used > 1)
  for (std::int64_t range = 0; range < ranges; ++range) {
    const std::int64_t lo = range * kColumnRange, width = std::min(kColumnRange, d - lo);
    for (std::int64_t q = 0; q < m; ++q) std::fill(out + q * d + lo, out + q * d + lo + width, 0.0);
    std::int64_t i = 0;
    for (; i + kRowGroup <= n; i += kRowGroup) {
      const Real* x0 = X + i * d + lo;
      const Real* x1 = x0 + d;
      const Real* x2 = x1 + d;
      const Real* x3 = x2 + d;
      for (std::int64_t q = 0; q < m; ++q) {
        const double* r = R + q * n + i;
        const double r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
        double* o = out + q * d + lo;
#pragma omp simd
        for (std::int64_t j = 0; j < width; ++j) {
          o[j] += (r0 * static_cast<double>(x0[j]) + r1 * static_cast<double>(x1[j])) +
                  (r2 * static_cast<double>(x2[j]) + r3 * static_cast<double>(x3[j]));
        }
      }
    }
    for (; i < n; ++i) {
      const Real* x = X + i * d + lo;
      for (std::int64_t q = 0; q < m; ++q) {
        const double r = R[q * n + i];
        double* o = out + q * d + lo;
#pragma omp simd
        for (std::int64_t j = 0; j < width; ++j) o[j] += r * static_cast<double>(x[j]);
      }
    }
  }
}

template <class Real>
void dense_gather_columns(const Real* X, std::int64_t n, std::int64_t d, const std::int64_t* features, std::int64_t k,
                          const double* xbar, double* out, int n_threads) {
  // Eight rows at a time: each feature's eight values fill one cache line of its output row, and
  // the eight rows' lines of X serve the neighbouring features (numpy's X[:, S].T copy made two
  // passes, the second a transpose).
  constexpr std::int64_t kRows = 8;
  const std::int64_t groups = (n + kRows - 1) / kRows;
  const int used = threads_for(n * k, n_threads);
#pragma omp parallel for num_threads(used) schedule(static) if (used > 1)
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::int64_t i0 = g * kRows, rows = std::min(kRows, n - i0);
    for (std::int64_t p = 0; p < k; ++p) {
      const Real* x = X + i0 * d + features[p];
      const double shift = xbar == nullptr ? 0.0 : xbar[p];
      double* o = out + p * n + i0;
      for (std::int64_t a = 0; a < rows; ++a) o[a] = static_cast<double>(x[a * d]) - shift;
    }
  }
}

template void dense_transpose_times<float>(const float*, std::int64_t, std::int64_t, const double*, std::int64_t,
                                           double*, int);
template void dense_transpose_times<double>(const double*, std::int64_t, std::int64_t, const double*, std::int64_t,
                                            double*, int);
template void dense_gather_columns<float>(const float*, std::int64_t, std::int64_t, const std::int64_t*, std::int64_t,
                                          const double*, double*, int);
template void dense_gather_columns<double>(const double*, std::int64_t, std::int64_t, const std::int64_t*, std::int64_t,
                                           const double*, double*, int);

}  // namespace mtlx::cpu
