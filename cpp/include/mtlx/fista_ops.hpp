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

#include "mtlx/hd.hpp"

namespace mtlx {

/// The five inner products a line-search trial needs, for x+ (the trial point), y (where the
/// gradient was taken), x (the last iterate) and g = grad f(y).
struct TrialSums {
  double step_sq;    ///< ||x+ - y||^2
  double linear;     ///< <g, x+ - y>
  double trial_sq;   ///< ||x+||^2
  double extrap_sq;  ///< ||y||^2
  double momentum;   ///< <x+ - y, x+ - x>, negative when the step turns against the last move
};

// The per-entry arithmetic of each step, shared by the CPU loops (cpu/fista_ops.cpp) and the CUDA
// kernels (cuda/fista_ops.cu): the loops differ only in how they cut the index range and add up.

/// y - step * g.
template <class Real>
MTLX_HD Real gradient_step_entry(Real y, Real g, Real step) {
  return y - step * g;
}

/// Adds one entry's terms to `s` and returns the entry's move x+ - x.
template <class Real>
MTLX_HD Real add_trial_terms(Real x_new, Real y, Real x, Real g, TrialSums& s) {
  const double xn = x_new, yi = y;
  const double diff = xn - yi;
  const Real move = x_new - x;
  s.step_sq += diff * diff;
  s.linear += static_cast<double>(g) * diff;
  s.trial_sq += xn * xn;
  s.extrap_sq += yi * yi;
  s.momentum += diff * static_cast<double>(move);
  return move;
}

/// x+ + beta * move.
template <class Real>
MTLX_HD Real extrapolate_entry(Real x_new, Real move, Real beta) {
  return x_new + beta * move;
}

/// g_y = a g_new - b g_x (a = 1 + beta, b = beta) into `g_y`; returns (g_new + g_y) * move.
template <class Real>
MTLX_HD double extrapolate_gradient_entry(Real g_new, Real g_x, Real move, Real a, Real b, Real& g_y) {
  g_y = a * g_new - b * g_x;
  return (static_cast<double>(g_new) + static_cast<double>(g_y)) * static_cast<double>(move);
}

namespace cpu {

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

}  // namespace cpu
}  // namespace mtlx
