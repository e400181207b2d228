/// \file prox.hpp
/// Proximal operators of the coupling penalties g(W), applied to the whole coefficient matrix.
///
/// Layout: W is d x T (column t = task t), stored column-major, i.e. as T contiguous
/// task vectors of length d ("Wt", row-major T x d). Each operator computes
///     out = argmin_U 0.5 ||U - V||_F^2 + tau * g(U)
/// in one call and returns g(out), so the solver gets the penalty value at the new point
/// without a second pass. `out` may alias `V`.
#pragma once

#include <cmath>
#include <cstdint>

#include "mtlx/hd.hpp"

namespace mtlx {

/// Penalties with a native prox; exported to Python as mtlx._core.PenaltyKind (the only place
/// the numbering is written).
enum class PenaltyKind : std::uint8_t { none = 0, l1 = 1, l21 = 2, trace = 3, mean = 4 };

/// Number of PenaltyKind values (codes at or above it are rejected at the binding).
inline constexpr int kNumPenaltyKinds = 5;

/// Soft thresholding, the prox of tau |v|.
template <class Real>
MTLX_HD Real soft_threshold(Real v, Real tau) {
  const Real a = std::fabs(v) - tau;
  return a > Real(0) ? std::copysign(a, v) : Real(0);
}

/// Factor that block soft thresholding applies to a group of Euclidean norm `norm`:
/// max(0, 1 - tau / norm), 0 for a zero group (no division by zero).
template <class Real>
MTLX_HD Real group_shrink_factor(Real norm, Real tau) {
  return norm > tau ? Real(1) - tau / norm : Real(0);
}

/// Shrunk singular value max(s - tau, 0) (singular value thresholding).
template <class Real>
MTLX_HD Real shrink_singular_value(Real s, Real tau) {
  return s > tau ? s - tau : Real(0);
}

/// Prox of tau * 0.5 ||v - m||^2 across tasks, per coordinate: the deviation from the task
/// mean m shrinks by 1 / (1 + tau) while m itself is kept (mean-regularized MTL).
template <class Real>
MTLX_HD Real shrink_toward_mean(Real v, Real mean, Real tau) {
  return mean + (v - mean) / (Real(1) + tau);
}

namespace cpu {

/// out = prox of tau * g at V (both n_tasks x n_features row-major); returns g(out).
template <class Real>
double prox(PenaltyKind kind, const Real* V, std::int64_t n_tasks, std::int64_t n_features, Real tau, Real* out,
            int n_threads);

/// g(W) for W stored as n_tasks x n_features row-major.
template <class Real>
double penalty_value(PenaltyKind kind, const Real* W, std::int64_t n_tasks, std::int64_t n_features, int n_threads);

}  // namespace cpu
}  // namespace mtlx
