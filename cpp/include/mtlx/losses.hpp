/// \file losses.hpp
/// Per-sample losses L(y, z) of a margin z = x . w + b, written once for CPU loops and CUDA kernels.
///
/// Each loss is a stateless functor with two MTLX_HD members:
///   value(y, z)  the loss, in double whatever Real is (a float32 residual of 2e19 squares to
///                4e38, past float32's range, but not past double's), finite for finite input;
///   deriv(y, z)  dL/dz.
#pragma once

#include <cmath>
#include <cstdint>

#include "mtlx/hd.hpp"
#include "mtlx/vec_math.hpp"

namespace mtlx {

/// Loss codes; exported to Python as mtlx._core.LossKind (the only place the numbering is written).
enum class LossKind : std::uint8_t { squared = 0, logistic = 1 };

/// Number of LossKind values (codes at or above it are rejected at the binding).
inline constexpr int kNumLossKinds = 2;

/// Squared loss 0.5 (y - z)^2 (regression).
struct SquaredLoss {
  template <class Real>
  MTLX_HD static double value(Real y, Real z) {
    const double r = static_cast<double>(z) - static_cast<double>(y);
    return 0.5 * r * r;
  }
  template <class Real>
  MTLX_HD static Real deriv(Real y, Real z) {
    return z - y;
  }
};

/// Logistic loss log(1 + exp(-y z)) for labels y in {-1, +1} (binary classification).
///
/// Evaluated in double whatever Real is, without branches, so that a loop over many margins
/// vectorizes: with t = y z and e = exp(-|t|) <= 1 (never overflows),
///   L = max(-t, 0) + log1p(e),   dL/dz = -y sigmoid(-t) = -y (t > 0 ? e : 1) / (1 + e).
/// Vectorized max and min return their second operand for a NaN, which turned a NaN margin (an
/// overflowed product of X and W) into a loss of 0; adding 0 * t, exactly 0 for a finite t,
/// carries a NaN or an infinite margin into the result, where the caller reports it.
struct LogisticLoss {
  template <class Real>
  MTLX_HD static double value(Real y, Real z) {
    const double t = static_cast<double>(y) * static_cast<double>(z);
    const double e = exp_nonpositive(-std::fabs(t));
    return (t > 0.0 ? 0.0 : -t) + log1p_unit(e) + 0.0 * t;
  }
  template <class Real>
  MTLX_HD static Real deriv(Real y, Real z) {
    const double t = static_cast<double>(y) * static_cast<double>(z);
    const double e = exp_nonpositive(-std::fabs(t));
    return static_cast<Real>(-static_cast<double>(y) * (t > 0.0 ? e : 1.0) / (1.0 + e) + 0.0 * t);
  }
};

}  // namespace mtlx
