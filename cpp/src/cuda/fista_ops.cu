// FISTA's fused vector steps on the device (float64: the iterate's dtype), around the per-entry
// functions of fista_ops.hpp; the sums come back to the host, nothing else.
#include <cuda_runtime.h>

#include "check.cuh"
#include "fixed_sums.cuh"
#include "mtlx/cuda.hpp"
#include "mtlx/fista_ops.hpp"

namespace mtlx::cuda {
namespace {

struct GradientStep {
  const double *y, *g;
  double step;
  double* out;
  __device__ void operator()(std::int64_t i) const { out[i] = gradient_step_entry(y[i], g[i], step); }
};

struct Extrapolate {
  const double *x_new, *move;
  double beta;
  double* y;
  __device__ void operator()(std::int64_t i) const { y[i] = extrapolate_entry(x_new[i], move[i], beta); }
};

struct TrialTerms {
  const double *x_new, *y, *x, *g;
  double* move;
  __device__ void operator()(std::int64_t i, double* acc) const {
    TrialSums s{acc[0], acc[1], acc[2], acc[3], acc[4]};
    move[i] = add_trial_terms(x_new[i], y[i], x[i], g[i], s);
    acc[0] = s.step_sq;
    acc[1] = s.linear;
    acc[2] = s.trial_sq;
    acc[3] = s.extrap_sq;
    acc[4] = s.momentum;
  }
};

struct ExtrapolateGradient {
  const double *g_new, *g_x, *move;
  double a, b;
  double* g_y;
  __device__ void operator()(std::int64_t i, double* acc) const {
    acc[0] += extrapolate_gradient_entry(g_new[i], g_x[i], move[i], a, b, g_y[i]);
  }
};

struct SquaredNorm {
  const double* a;
  __device__ void operator()(std::int64_t i, double* acc) const { acc[0] += a[i] * a[i]; }
};

}  // namespace

void gradient_step(const double* y, const double* g, double step, double* out, std::int64_t n, std::uintptr_t stream) {
  for_each(n, GradientStep{y, g, step, out}, as_stream(stream), "gradient_step");
}

void extrapolate(const double* x_new, const double* move, double beta, double* y, std::int64_t n,
                 std::uintptr_t stream) {
  for_each(n, Extrapolate{x_new, move, beta, y}, as_stream(stream), "extrapolate");
}

void trial_sums(const double* x_new, const double* y, const double* x, const double* g, double* move, std::int64_t n,
                const SumScratch& scratch, double* host_out, std::uintptr_t stream) {
  fixed_sums<5>(n, TrialTerms{x_new, y, x, g, move}, scratch, host_out, as_stream(stream));
}

double extrapolate_gradient(const double* g_new, const double* g_x, const double* move, double beta, double* g_y,
                            std::int64_t n, const SumScratch& scratch, std::uintptr_t stream) {
  double sum = 0.0;
  fixed_sums<1>(n, ExtrapolateGradient{g_new, g_x, move, 1.0 + beta, beta, g_y}, scratch, &sum, as_stream(stream));
  return sum;
}

double squared_norm(const double* a, std::int64_t n, const SumScratch& scratch, std::uintptr_t stream) {
  double sum = 0.0;
  fixed_sums<1>(n, SquaredNorm{a}, scratch, &sum, as_stream(stream));
  return sum;
}

}  // namespace mtlx::cuda
