// Row norms for the working-set engine's screening and gap checks (rows of d x T arrays, called
// several times per check): numpy's scaled version made five passes and three temporaries.
#include "mtlx/row_norms.hpp"

#include <cmath>

#include "widest_vectors.hpp"

namespace mtlx::cpu {
namespace {

// Beyond these bounds the plain sum may have lost entries to underflow or overflowed: between
// them, underflowed squares change it by at most cols * 2^-1074, a relative 2^-114 per column.
constexpr double kLowest = 0x1p-960, kHighest = 0x1p1000;

double scaled_norm(const double* x, std::int64_t cols) {
  double scale = 0.0;
  for (std::int64_t j = 0; j < cols; ++j) scale = std::fmax(scale, std::fabs(x[j]));
  for (std::int64_t j = 0; j < cols; ++j) {
    if (std::isnan(x[j])) return x[j];
  }
  if (scale == 0.0) return 0.0;
  if (std::isinf(scale)) return scale;
  double s = 0.0;
  for (std::int64_t j = 0; j < cols; ++j) {
    const double v = x[j] / scale;
    s += v * v;
  }
  return scale * std::sqrt(s);
}

}  // namespace

MTLX_WIDEST_VECTORS
void row_norms(const double* M, std::int64_t rows, std::int64_t cols, double* out) {
  for (std::int64_t i = 0; i < rows; ++i) {
    const double* x = M + i * cols;
    double s = 0.0;
    for (std::int64_t j = 0; j < cols; ++j) s += x[j] * x[j];
    out[i] = (s >= kLowest && s <= kHighest) ? std::sqrt(s) : scaled_norm(x, cols);
  }
}

}  // namespace mtlx::cpu
