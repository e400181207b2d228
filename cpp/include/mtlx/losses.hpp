/// \file losses.hpp
/// Per-sample losses L(y, z) of a margin z = x . w + b, written once for CPU loops and CUDA kernels.
///
/// Each loss is a small functor (its parameter, if it has one, as a member) with two MTLX_HD members:
///   value(y, z)  the loss, in double whatever Real is (a float32 residual of 2e19 squares to
///                4e38, past float32's range, but not past double's), finite for finite input
///                (the Poisson loss's exp(z) excepted: a trial point past z = 709 is infinite, and
///                the line search steps back from it);
///   deriv(y, z)  dL/dz;
/// and two the proximal Newton engine (mtlx/prox_newton.py) takes through the host:
///   curvature(y, z)  d^2L/dz^2 (where dL/dz has a kink, the generalized second derivative: the
///                    one-sided value of the region the margin is in);
///   conjugate(y, u)  L*(y, u) = sup_z (u z - L(y, z)), +inf outside its domain: the dual
///                    objective of the duality-gap certificate.
/// `visit_loss` is the one switch over LossKind: a new loss is its functor, one enum value and one
/// case there (and its Python class in mtlx/losses.py).
#pragma once

#include <cmath>
#include <cstdint>

#include "mtlx/hd.hpp"
#include "mtlx/vec_math.hpp"

namespace mtlx {

/// Loss codes; exported to Python as mtlx._core.LossKind (the only place the numbering is written).
enum class LossKind : std::uint8_t { squared = 0, logistic = 1, huber = 2, squared_hinge = 3, poisson = 4 };

/// Number of LossKind values (codes at or above it are rejected at the binding).
inline constexpr int kNumLossKinds = 5;

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
  MTLX_HD static double curvature(double, double) { return 1.0; }
  MTLX_HD static double conjugate(double y, double u) { return u * (0.5 * u + y); }
};

/// +inf, the conjugate of a loss outside its domain.
MTLX_HD double outside_domain() { return HUGE_VAL; }

/// p log p with 0 log 0 = 0.
MTLX_HD double xlogx(double p) { return p > 0.0 ? p * std::log(p) : 0.0; }

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
  /// sigmoid(t) sigmoid(-t) = e / (1 + e)^2.
  MTLX_HD static double curvature(double y, double z) {
    const double e = std::exp(-std::fabs(y * z));
    return e / ((1.0 + e) * (1.0 + e));
  }
  /// With p = -u y in [0, 1]: p log p + (1 - p) log(1 - p).
  MTLX_HD static double conjugate(double y, double u) {
    const double p = -u * y;
    if (p < 0.0 || p > 1.0) return outside_domain();
    return xlogx(p) + xlogx(1.0 - p);
  }
};

/// Huber loss in scikit-learn's HuberRegressor convention (its loss part, scale fixed at 1): with
/// r = y - z, L = r^2 for |r| <= epsilon, 2 epsilon |r| - epsilon^2 beyond (robust regression;
/// dL/dz = -2 clip(r, -epsilon, epsilon), Lipschitz with constant 2).
struct HuberLoss {
  double epsilon;
  template <class Real>
  MTLX_HD double value(Real y, Real z) const {
    const double r = static_cast<double>(y) - static_cast<double>(z);
    const double a = std::fabs(r);
    // 0 * r carries a NaN residual past the comparison (see LogisticLoss).
    return (a <= epsilon ? r * r : epsilon * (2.0 * a - epsilon)) + 0.0 * r;
  }
  template <class Real>
  MTLX_HD Real deriv(Real y, Real z) const {
    const double r = static_cast<double>(y) - static_cast<double>(z);
    const double c = r > epsilon ? epsilon : (r < -epsilon ? -epsilon : r);
    return static_cast<Real>(-2.0 * c + 0.0 * r);
  }
  MTLX_HD double curvature(double y, double z) const { return std::fabs(y - z) <= epsilon ? 2.0 : 0.0; }
  /// u y + u^2 / 4 for |u| <= 2 epsilon (the conjugate of r^2 / Huber's linear tails).
  MTLX_HD double conjugate(double y, double u) const {
    if (std::fabs(u) > 2.0 * epsilon) return outside_domain();
    return u * y + 0.25 * u * u;
  }
};

/// Squared hinge loss max(0, 1 - y z)^2 for labels y in {-1, +1} (the linear SVM of LinearSVC's
/// default loss; dL/dz = -2 y max(0, 1 - y z), Lipschitz with constant 2).
struct SquaredHingeLoss {
  template <class Real>
  MTLX_HD static double value(Real y, Real z) {
    const double m = 1.0 - static_cast<double>(y) * static_cast<double>(z);
    const double h = m > 0.0 ? m : 0.0;
    return h * h + 0.0 * m;
  }
  template <class Real>
  MTLX_HD static Real deriv(Real y, Real z) {
    const double m = 1.0 - static_cast<double>(y) * static_cast<double>(z);
    return static_cast<Real>(-2.0 * static_cast<double>(y) * (m > 0.0 ? m : 0.0) + 0.0 * m);
  }
  MTLX_HD static double curvature(double y, double z) { return y * z < 1.0 ? 2.0 : 0.0; }
  /// With v = u y <= 0: v + v^2 / 4.
  MTLX_HD static double conjugate(double y, double u) {
    const double v = u * y;
    if (v > 0.0) return outside_domain();
    return v + 0.25 * v * v;
  }
};

/// Poisson loss with the log link for counts y >= 0: half the Poisson deviance,
///   L = exp(z) - y z + y log y - y   (0 log 0 = 0),
/// scikit-learn's PoissonRegressor's loss. The constant y log y - y puts the minimum over z at 0
/// (z = log y), so the objective does not cancel to a small difference of large terms.
/// dL/dz = exp(z) - y; its curvature exp(z) has no global bound (the line search finds it).
struct PoissonLoss {
  template <class Real>
  MTLX_HD static double value(Real y, Real z) {
    const double yd = static_cast<double>(y), zd = static_cast<double>(z);
    const double ylogy = yd > 0.0 ? yd * std::log(yd) : 0.0;
    return std::exp(zd) - yd * zd + ylogy - yd;
  }
  template <class Real>
  MTLX_HD static Real deriv(Real y, Real z) {
    return static_cast<Real>(std::exp(static_cast<double>(z)) - static_cast<double>(y));
  }
  MTLX_HD static double curvature(double, double z) { return std::exp(z); }
  /// With m = u + y >= 0: m log m - m - (y log y - y).
  MTLX_HD static double conjugate(double y, double u) {
    const double m = u + y;
    if (m < 0.0) return outside_domain();
    return xlogx(m) - m - xlogx(y) + y;
  }
};

/// Calls f with the functor of loss `kind` (built with `param` where the loss has one: Huber's
/// epsilon) and returns what f returns. The one switch over LossKind in the core.
template <class F>
MTLX_HD auto visit_loss(LossKind kind, double param, F&& f) -> decltype(f(SquaredLoss{})) {
  switch (kind) {
    case LossKind::logistic:
      return f(LogisticLoss{});
    case LossKind::huber:
      return f(HuberLoss{param});
    case LossKind::squared_hinge:
      return f(SquaredHingeLoss{});
    case LossKind::poisson:
      return f(PoissonLoss{});
    case LossKind::squared:
    default:
      return f(SquaredLoss{});
  }
}

}  // namespace mtlx
