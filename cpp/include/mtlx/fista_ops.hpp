/// \file fista_ops.hpp
/// The vector arithmetic of one accelerated proximal-gradient iteration, fused into single
/// passes over the flat parameter vector theta = [W, b].
///
/// The Python loop would otherwise make a dozen numpy calls per line-search trial (subtract,
/// scale, five dot products, ...), which on school-sized problems (a few thousand parameters)
/// cost as much as the data pass itself. Sums are accumulated in double, in index order:
/// results do not depend on threads (these loops are serial: they touch O(dT) numbers).
#pragma once

#include <cstdint>

namespace mtlx::cpu {

/// The five inner products a line-search trial needs, for x+ (the trial point), y (where the
/// gradient was taken), x (the last iterate) and g = grad f(y).
struct TrialSums {
  double step_sq;    ///< ||x+ - y||^2
  double linear;     ///< <g, x+ - y>
  double trial_sq;   ///< ||x+||^2
  double extrap_sq;  ///< ||y||^2
  double momentum;   ///< <x+ - y, x+ - x>, negative when the step turns against the last move
};

/// out = y - step * g (the gradient step before the prox).
template <class Real>
void gradient_step(const Real* y, const Real* g, double step, Real* out, std::int64_t n);

/// The TrialSums of (x+, y, x, g); also writes move = x+ - x (kept for the momentum update).
template <class Real>
TrialSums trial_sums(const Real* x_new, const Real* y, const Real* x, const Real* g, Real* move, std::int64_t n);

/// y = x+ + beta * move (the extrapolated point after an accepted step).
template <class Real>
void extrapolate(const Real* x_new, const Real* move, double beta, Real* y, std::int64_t n);

/// For a quadratic f: g_y = (1 + beta) g_new - beta g_x (grad f at y = x+ + beta move, by
/// linearity), and returns <g_new + g_y, move> (beta times it over 2 is f(y) - f(x+)).
template <class Real>
double extrapolate_gradient(const Real* g_new, const Real* g_x, const Real* move, double beta, Real* g_y,
                            std::int64_t n);

}  // namespace mtlx::cpu
