// Block coordinate descent epochs on Gram statistics (see mtlx/coordinate_descent.hpp).
#include "mtlx/coordinate_descent.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mtlx::cpu {
namespace {

/// Q(:, t) += H_t(:, j) delta_t for every task whose entry moved (H_t symmetric: its column j
/// is its row j, contiguous).
void update_products(const CdProblem& p, std::int64_t j, const double* delta, double* Q) {
  const std::int64_t k = p.k, T = p.T;
  if (p.n_gram == 1) {
    const double* h = p.H + j * k;
    for (std::int64_t i = 0; i < k; ++i) {
      const double hij = h[i];
      if (hij == 0.0) continue;
      double* q = Q + i * T;
#pragma omp simd
      for (std::int64_t t = 0; t < T; ++t) q[t] += hij * delta[t];
    }
    return;
  }
  for (std::int64_t t = 0; t < T; ++t) {
    if (delta[t] == 0.0) continue;
    const double* h = p.H + (t * k + j) * k;
    for (std::int64_t i = 0; i < k; ++i) Q[i * T + t] += h[i] * delta[t];
  }
}

/// H_t(j, j).
double diagonal(const CdProblem& p, std::int64_t t, std::int64_t j) {
  const std::int64_t g = p.n_gram == 1 ? 0 : t;
  return p.H[(g * p.k + j) * p.k + j];
}

/// The new row j for l2,1: one proximal-gradient step on the row with step 1 / L_j,
/// L_j = max_t c_t H_t(j, j) + l2 (exact block minimization when the curvatures agree, as
/// for shared input with equal task weights). Writes delta = new - old.
void row_step_l21(const CdProblem& p, std::int64_t j, const double* w, const double* q, double* u, double* delta) {
  const std::int64_t T = p.T;
  const double* b = p.B + j * T;
  double L = 0.0;
  for (std::int64_t t = 0; t < T; ++t) L = std::max(L, p.c[t] * diagonal(p, t, j));
  L += p.l2;
  if (!(L > 0.0)) {  // a zero column without ridge: the row's minimizer is 0
    for (std::int64_t t = 0; t < T; ++t) delta[t] = -w[t];
    return;
  }
  double norm_sq = 0.0;
  for (std::int64_t t = 0; t < T; ++t) {
    const double grad = p.c[t] * q[t] - b[t] + p.l2 * w[t];
    u[t] = w[t] - grad / L;
    norm_sq += u[t] * u[t];
  }
  const double factor = group_shrink_factor(std::sqrt(norm_sq), p.alpha / L);
  for (std::int64_t t = 0; t < T; ++t) delta[t] = factor * u[t] - w[t];
}

/// The new row j for l1: each entry minimized exactly (its own curvature c_t H_t(j, j) + l2).
void row_step_l1(const CdProblem& p, std::int64_t j, const double* w, const double* q, double* delta) {
  const std::int64_t T = p.T;
  const double* b = p.B + j * T;
  for (std::int64_t t = 0; t < T; ++t) {
    const double h = p.c[t] * diagonal(p, t, j) + p.l2;
    if (!(h > 0.0)) {
      delta[t] = -w[t];
      continue;
    }
    const double grad = p.c[t] * q[t] - b[t] + p.l2 * w[t];
    delta[t] = soft_threshold(w[t] - grad / h, p.alpha / h) - w[t];
  }
}

}  // namespace

CdResult cd_epochs(const CdProblem& p, double* W, double* Q, std::int64_t max_epochs, double tol) {
  const std::int64_t k = p.k, T = p.T;
  std::vector<double> u(T), delta(T);
  CdResult result{0, 0.0, 0.0};
  while (result.epochs < max_epochs) {
    double max_change = 0.0, max_abs = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      double* w = W + j * T;
      if (p.penalty == PenaltyKind::l21) {
        row_step_l21(p, j, w, Q + j * T, u.data(), delta.data());
      } else {
        row_step_l1(p, j, w, Q + j * T, delta.data());
      }
      bool moved = false;
      for (std::int64_t t = 0; t < T; ++t) {
        if (delta[t] != 0.0) {
          moved = true;
          w[t] += delta[t];
          max_change = std::max(max_change, std::fabs(delta[t]));
        }
        max_abs = std::max(max_abs, std::fabs(w[t]));
      }
      if (moved) update_products(p, j, delta.data(), Q);
    }
    ++result.epochs;
    result.max_change = max_change;
    result.max_abs = max_abs;
    if (max_change <= tol * max_abs) break;
  }
  return result;
}

}  // namespace mtlx::cpu
