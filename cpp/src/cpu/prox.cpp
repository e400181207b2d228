// Proximal operators and values of the coupling penalties over the whole W (see prox.hpp).
#include "mtlx/prox.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "mtlx/lapack.hpp"
#include "parallel.hpp"

namespace mtlx::cpu {
namespace {

// Per-task partial sums reduced in task order: deterministic for any thread count.
template <class F>
double sum_over_tasks(std::int64_t T, std::int64_t d, int n_threads, F task_sum) {
  std::vector<double> part(static_cast<std::size_t>(T));
#pragma omp parallel for num_threads(n_threads) schedule(static) if (T * d >= kMinParallelElements)
  for (std::int64_t t = 0; t < T; ++t) part[t] = task_sum(t);
  double total = 0.0;
  for (double v : part) total += v;
  return total;
}

template <class Real>
double prox_l1(const Real* V, std::int64_t T, std::int64_t d, Real tau, Real* out, int n_threads) {
  return sum_over_tasks(T, d, n_threads, [&](std::int64_t t) {
    double s = 0.0;
    for (std::int64_t j = t * d; j < (t + 1) * d; ++j) {
      out[j] = soft_threshold(V[j], tau);
      s += std::fabs(static_cast<double>(out[j]));
    }
    return s;
  });
}

// Row j of W (feature j across tasks) is strided by d in the T x d storage; norms are summed
// task by task so every access is contiguous, in double to keep float32 norms accurate. Each row
// is scaled by its largest entry first, as BLAS nrm2 does: the squares of a row of norm 1e200
// overflow and those of a row of norm 1e-170 underflow, which left the one unshrunk and zeroed
// the other.
template <class Real>
std::vector<double> feature_norms(const Real* W, std::int64_t T, std::int64_t d) {
  std::vector<double> scale(static_cast<std::size_t>(d), 0.0), sq(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t t = 0; t < T; ++t) {
    const Real* w = W + t * d;
    for (std::int64_t j = 0; j < d; ++j) scale[j] = std::max(scale[j], std::fabs(static_cast<double>(w[j])));
  }
  for (std::int64_t t = 0; t < T; ++t) {
    const Real* w = W + t * d;
    for (std::int64_t j = 0; j < d; ++j) {
      if (scale[j] > 0.0) {
        const double v = static_cast<double>(w[j]) / scale[j];
        sq[j] += v * v;
      }
    }
  }
  for (std::int64_t j = 0; j < d; ++j) sq[j] = scale[j] * std::sqrt(sq[j]);
  return sq;
}

template <class Real>
double prox_l21(const Real* V, std::int64_t T, std::int64_t d, Real tau, Real* out, int n_threads) {
  const std::vector<double> norms = feature_norms(V, T, d);
  std::vector<Real> factor(static_cast<std::size_t>(d));
  double value = 0.0;
  for (std::int64_t j = 0; j < d; ++j) {
    const double f = group_shrink_factor(norms[j], static_cast<double>(tau));
    factor[j] = static_cast<Real>(f);
    value += f * norms[j];
  }
#pragma omp parallel for num_threads(n_threads) schedule(static) if (T * d >= kMinParallelElements)
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t j = 0; j < d; ++j) out[t * d + j] = V[t * d + j] * factor[j];
  }
  return value;
}

// Singular value thresholding through LAPACK's divide-and-conquer SVD. In column-major terms the
// T x d row-major storage is W itself (d x T, leading dimension d).
template <class Real>
double prox_trace(const Real* V, std::int64_t T, std::int64_t d, Real tau, Real* out) {
  const int m = static_cast<int>(d), n = static_cast<int>(T), k = std::min(m, n);
  if (k == 0) return 0.0;
  std::vector<Real> A(V, V + T * d), s(k), U(static_cast<std::size_t>(m) * k), VT(static_cast<std::size_t>(k) * n);
  lapack::gesdd<Real>(true, m, n, A.data(), m, s.data(), U.data(), m, VT.data(), k);
  int rank = 0;
  double value = 0.0;
  for (int i = 0; i < k; ++i) {
    const Real shrunk = shrink_singular_value(s[i], tau);
    if (shrunk > Real(0)) rank = i + 1;  // singular values come sorted in decreasing order
    value += shrunk;
    for (int r = 0; r < m; ++r) U[static_cast<std::size_t>(i) * m + r] *= shrunk;
  }
  if (rank == 0) {
    std::fill(out, out + T * d, Real(0));
    return 0.0;
  }
  lapack::gemm<Real>('N', 'N', m, n, rank, Real(1), U.data(), m, VT.data(), k, Real(0), out, m);
  return value;
}

// Mean of the task vectors, accumulated in double in task order (deterministic). Each term is
// divided by T before it is added, so the sum cannot overflow where the mean itself is finite
// (a column of 1e308s summed first gave inf, and the prox NaN).
template <class Real>
std::vector<double> task_mean(const Real* W, std::int64_t T, std::int64_t d) {
  std::vector<double> mean(static_cast<std::size_t>(d), 0.0);
  const double share = 1.0 / static_cast<double>(T);
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t j = 0; j < d; ++j) mean[j] += static_cast<double>(W[t * d + j]) * share;
  }
  return mean;
}

template <class Real>
double spread_around(const Real* W, const std::vector<double>& mean, std::int64_t T, std::int64_t d, int n_threads) {
  return 0.5 * sum_over_tasks(T, d, n_threads, [&](std::int64_t t) {
           double s = 0.0;
           for (std::int64_t j = 0; j < d; ++j) {
             const double e = static_cast<double>(W[t * d + j]) - mean[j];
             s += e * e;
           }
           return s;
         });
}

template <class Real>
double prox_mean(const Real* V, std::int64_t T, std::int64_t d, Real tau, Real* out, int n_threads) {
  if (T == 0) return 0.0;
  const std::vector<double> mean = task_mean(V, T, d);
  const double value = spread_around(V, mean, T, d, n_threads);
#pragma omp parallel for num_threads(n_threads) schedule(static) if (T * d >= kMinParallelElements)
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t j = 0; j < d; ++j) {
      out[t * d + j] =
          static_cast<Real>(shrink_toward_mean(static_cast<double>(V[t * d + j]), mean[j], static_cast<double>(tau)));
    }
  }
  // The mean is unchanged by the prox, so g(out) is g(V) scaled by the squared shrink factor.
  const double shrink = 1.0 / (1.0 + static_cast<double>(tau));
  return value * shrink * shrink;
}

template <class Real>
double nuclear_norm(const Real* W, std::int64_t T, std::int64_t d) {
  const int m = static_cast<int>(d), n = static_cast<int>(T), k = std::min(m, n);
  if (k == 0) return 0.0;
  std::vector<Real> A(W, W + T * d), s(k);
  lapack::gesdd<Real>(false, m, n, A.data(), m, s.data(), nullptr, 1, nullptr, 1);
  double value = 0.0;
  for (Real v : s) value += v;
  return value;
}

}  // namespace

template <class Real>
double prox(PenaltyKind kind, const Real* V, std::int64_t T, std::int64_t d, Real tau, Real* out, int n_threads) {
  switch (kind) {
    case PenaltyKind::none:
      if (out != V) std::copy(V, V + T * d, out);
      return 0.0;
    case PenaltyKind::l1:
      return prox_l1(V, T, d, tau, out, n_threads);
    case PenaltyKind::l21:
      return prox_l21(V, T, d, tau, out, n_threads);
    case PenaltyKind::trace:
      return prox_trace(V, T, d, tau, out);
    case PenaltyKind::mean:
      return prox_mean(V, T, d, tau, out, n_threads);
  }
  throw std::invalid_argument("mtlx core: unknown penalty code");
}

template <class Real>
double penalty_value(PenaltyKind kind, const Real* W, std::int64_t T, std::int64_t d, int n_threads) {
  switch (kind) {
    case PenaltyKind::none:
      return 0.0;
    case PenaltyKind::l1:
      return sum_over_tasks(T, d, n_threads, [&](std::int64_t t) {
        double s = 0.0;
        for (std::int64_t j = t * d; j < (t + 1) * d; ++j) s += std::fabs(static_cast<double>(W[j]));
        return s;
      });
    case PenaltyKind::l21: {
      double s = 0.0;
      for (double v : feature_norms(W, T, d)) s += v;
      return s;
    }
    case PenaltyKind::trace:
      return nuclear_norm(W, T, d);
    case PenaltyKind::mean:
      return T == 0 ? 0.0 : spread_around(W, task_mean(W, T, d), T, d, n_threads);
  }
  throw std::invalid_argument("mtlx core: unknown penalty code");
}

template double prox<double>(PenaltyKind, const double*, std::int64_t, std::int64_t, double, double*, int);
template double prox<float>(PenaltyKind, const float*, std::int64_t, std::int64_t, float, float*, int);
template double penalty_value<double>(PenaltyKind, const double*, std::int64_t, std::int64_t, int);
template double penalty_value<float>(PenaltyKind, const float*, std::int64_t, std::int64_t, int);

}  // namespace mtlx::cpu
