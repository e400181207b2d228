/// \file losses.hpp
/// Per-sample losses L(y, z) of a margin z = x . w + b, written once for CPU loops and CUDA kernels.
///
/// Each loss is a stateless functor with two MTLX_HD members:
///   value(y, z)  the loss, finite for every finite input (no overflow for any z);
///   deriv(y, z)  dL/dz.
#pragma once

#include <cmath>
#include <cstdint>

#include "mtlx/hd.hpp"

namespace mtlx {

/// Loss codes shared with the Python layer (mtlx/losses.py keeps the same numbering).
enum class LossKind : std::uint8_t { squared = 0, logistic = 1 };

/// Squared loss 0.5 (y - z)^2 (regression).
struct SquaredLoss {
  template <class Real>
  MTLX_HD static Real value(Real y, Real z) {
    const Real r = z - y;
    return Real(0.5) * r * r;
  }
  template <class Real>
  MTLX_HD static Real deriv(Real y, Real z) {
    return z - y;
  }
};

/// Logistic loss log(1 + exp(-y z)) for labels y in {-1, +1} (binary classification).
struct LogisticLoss {
  /// log(1 + exp(-t)) without overflow: for t < 0 it equals -t + log(1 + exp(t)), where exp(t) < 1.
  template <class Real>
  MTLX_HD static Real value(Real y, Real z) {
    const Real t = y * z;
    return t > Real(0) ? std::log1p(std::exp(-t)) : -t + std::log1p(std::exp(t));
  }
  /// -y * sigmoid(-y z), with the exponential always of a non-positive argument.
  template <class Real>
  MTLX_HD static Real deriv(Real y, Real z) {
    const Real t = y * z;
    if (t > Real(0)) {
      const Real e = std::exp(-t);
      return -y * e / (Real(1) + e);
    }
    return -y / (Real(1) + std::exp(t));
  }
};

}  // namespace mtlx
