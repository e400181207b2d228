/// \file vec_math.hpp
/// Branch-free exp and log1p on the ranges the logistic loss needs, so that a loop over a block
/// of margins vectorizes (libm's scalar calls do not) while staying within ~1 ulp of libm.
#pragma once

#include <cstdint>
#include <cstring>

#include "mtlx/hd.hpp"

namespace mtlx {

namespace detail {
MTLX_HD double bits_to_double(std::int64_t i) {
  double x;
  std::memcpy(&x, &i, sizeof x);
  return x;
}
MTLX_HD std::int64_t double_to_bits(double x) {
  std::int64_t i;
  std::memcpy(&i, &x, sizeof i);
  return i;
}
}  // namespace detail

/// exp(x) for x <= 0 (NaN stays NaN). Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, and the
/// degree-13 Taylor polynomial of exp(r) (truncation < 2^-57); 2^k is applied as two factors
/// so that results down to the subnormal range stay exact in their scale.
MTLX_HD double exp_nonpositive(double x) {
  const double shifter = 0x1.8p52;  // adding it rounds to an integer held in the low mantissa bits
  x = x < -746.0 ? -746.0 : x;
  const double kd = x * 0x1.71547652b82fep0 + shifter;
  const double k = kd - shifter;
  const double r = (x - k * 0x1.62e42fefa3800p-1) - k * 0x1.ef35793c7673p-45;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const std::int64_t ki = detail::double_to_bits(kd) - detail::double_to_bits(shifter);
  const std::int64_t k1 = ki >> 1;  // k = k1 + k2, each >= -538: both powers are normal numbers
  const std::int64_t k2 = ki - k1;
  return p * detail::bits_to_double((k1 + 1023) << 52) * detail::bits_to_double((k2 + 1023) << 52);
}

/// log(1 + u) for 0 <= u <= 1. v = 1 + u is rounded; c = (u - (v - 1)) / v restores what the
/// rounding lost. log v = k ln2 + log(1 + f) with v / 2^k in [sqrt(2)/2, sqrt(2)), and
/// log(1 + f) = 2 atanh(s), s = f / (2 + f), |s| < 0.172, its series summed to s^23 (truncation
/// < 2^-60).
MTLX_HD double log1p_unit(double u) {
  const double v = 1.0 + u;
  const double c = (u - (v - 1.0)) / v;
  const bool high = v > 0x1.6a09e667f3bcdp0;
  const double f = high ? 0.5 * v - 1.0 : v - 1.0;
  const double s = f / (2.0 + f);
  const double s2 = s * s;
  double p = 1.0 / 23.0;
  p = p * s2 + 1.0 / 21.0;
  p = p * s2 + 1.0 / 19.0;
  p = p * s2 + 1.0 / 17.0;
  p = p * s2 + 1.0 / 15.0;
  p = p * s2 + 1.0 / 13.0;
  p = p * s2 + 1.0 / 11.0;
  p = p * s2 + 1.0 / 9.0;
  p = p * s2 + 1.0 / 7.0;
  p = p * s2 + 1.0 / 5.0;
  p = p * s2 + 1.0 / 3.0;
  const double k = high ? 1.0 : 0.0;
  // fdlibm's arrangement: log(1 + f) = f - (hfsq - s (hfsq + R)) with R = 2 s^2 p keeps the
  // rounding of s out of the leading term.
  const double hfsq = 0.5 * f * f;
  const double R = 2.0 * s2 * p;
  return k * 0x1.62e42fefa3800p-1 - ((hfsq - (s * (hfsq + R) + (k * 0x1.ef35793c7673p-45 + c))) - f);
}

}  // namespace mtlx
