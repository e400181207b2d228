// Fused vector arithmetic of a FISTA iteration (see fista_ops.hpp).
#include "mtlx/fista_ops.hpp"

namespace mtlx::cpu {

template <class Real>
void gradient_step(const Real* y, const Real* g, double step, Real* out, std::int64_t n) {
  const Real s = static_cast<Real>(step);
  for (std::int64_t i = 0; i < n; ++i) out[i] = gradient_step_entry(y[i], g[i], s);
}

template <class Real>
TrialSums trial_sums(const Real* x_new, const Real* y, const Real* x, const Real* g, Real* move, std::int64_t n) {
  TrialSums s{0.0, 0.0, 0.0, 0.0, 0.0};
  for (std::int64_t i = 0; i < n; ++i) move[i] = add_trial_terms(x_new[i], y[i], x[i], g[i], s);
  return s;
}

template <class Real>
void extrapolate(const Real* x_new, const Real* move, double beta, Real* y, std::int64_t n) {
  const Real b = static_cast<Real>(beta);
  for (std::int64_t i = 0; i < n; ++i) y[i] = extrapolate_entry(x_new[i], move[i], b);
}

template <class Real>
double extrapolate_gradient(const Real* g_new, const Real* g_x, const Real* move, double beta, Real* g_y,
                            std::int64_t n) {
  const Real a = static_cast<Real>(1.0 + beta), b = static_cast<Real>(beta);
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) sum += extrapolate_gradient_entry(g_new[i], g_x[i], move[i], a, b, g_y[i]);
  return sum;
}

template void gradient_step<float>(const float*, const float*, double, float*, std::int64_t);
template void gradient_step<double>(const double*, const double*, double, double*, std::int64_t);
template TrialSums trial_sums<float>(const float*, const float*, const float*, const float*, float*, std::int64_t);
template TrialSums trial_sums<double>(const double*, const double*, const double*, const double*, double*,
                                      std::int64_t);
template void extrapolate<float>(const float*, const float*, double, float*, std::int64_t);
template void extrapolate<double>(const double*, const double*, double, double*, std::int64_t);
template double extrapolate_gradient<float>(const float*, const float*, const float*, double, float*, std::int64_t);
template double extrapolate_gradient<double>(const double*, const double*, const double*, double, double*,
                                             std::int64_t);

}  // namespace mtlx::cpu
