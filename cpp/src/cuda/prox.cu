// The proxes of l1, l21 and the mean penalty on the device (float64, V: T x d row-major as on the
// CPU), around the per-entry functors of prox.hpp. The trace norm's prox, an eigendecomposition of
// the small Gram matrix, runs through CuPy's cuSOLVER binding (mtlx/gpu/backend.py).
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>

#include "check.cuh"
#include "fixed_sums.cuh"
#include "mtlx/cuda.hpp"
#include "mtlx/prox.hpp"

namespace mtlx::cuda {
namespace {

struct SoftThreshold {
  const double* V;
  double tau;
  double* out;
  __device__ void operator()(std::int64_t i, double* acc) const {
    out[i] = soft_threshold(V[i], tau);
    acc[0] += std::fabs(out[i]);
  }
};

struct AbsSum {
  const double* V;
  __device__ void operator()(std::int64_t i, double* acc) const { acc[0] += std::fabs(V[i]); }
};

/// norms[j] = ||V[:, j]|| (feature j across tasks), scaled by the column's largest entry first as
/// the CPU does (no overflow at 1e200, no underflow at 1e-170); tasks added in order.
__global__ void feature_norms_kernel(const double* V, std::int64_t T, std::int64_t d, double* norms) {
  const std::int64_t j = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (j >= d) return;
  double scale = 0.0;
  for (std::int64_t t = 0; t < T; ++t) scale = fmax(scale, std::fabs(V[t * d + j]));
  double sq = 0.0;
  if (scale > 0.0) {
    for (std::int64_t t = 0; t < T; ++t) {
      const double v = V[t * d + j] / scale;
      sq += v * v;
    }
  }
  norms[j] = scale * std::sqrt(sq);
}

struct GroupFactors {
  const double* norms;
  double tau;
  double* factor;
  __device__ void operator()(std::int64_t j, double* acc) const {
    const double f = group_shrink_factor(norms[j], tau);
    factor[j] = f;
    acc[0] += f * norms[j];
  }
};

struct SumOf {
  const double* a;
  __device__ void operator()(std::int64_t i, double* acc) const { acc[0] += a[i]; }
};

struct ScaleColumns {
  const double* V;
  const double* factor;
  std::int64_t d;
  double* out;
  __device__ void operator()(std::int64_t i) const { out[i] = V[i] * factor[i % d]; }
};

/// mean[j] = sum_t V[t, j] / T, each term divided before it is added (as the CPU: no overflow).
__global__ void task_mean_kernel(const double* V, std::int64_t T, std::int64_t d, double* mean) {
  const std::int64_t j = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (j >= d) return;
  const double share = 1.0 / static_cast<double>(T);
  double s = 0.0;
  for (std::int64_t t = 0; t < T; ++t) s += V[t * d + j] * share;
  mean[j] = s;
}

struct Spread {
  const double* V;
  const double* mean;
  std::int64_t d;
  __device__ void operator()(std::int64_t i, double* acc) const {
    const double e = V[i] - mean[i % d];
    acc[0] += e * e;
  }
};

struct ShrinkTowardMean {
  const double* V;
  const double* mean;
  std::int64_t d;
  double tau;
  double* out;
  __device__ void operator()(std::int64_t i) const { out[i] = shrink_toward_mean(V[i], mean[i % d], tau); }
};

void feature_pass(const double* V, std::int64_t T, std::int64_t d, double* out, bool mean, cudaStream_t s) {
  if (d <= 0) return;
  if (mean)
    task_mean_kernel<<<blocks_for(d, kSumThreads), kSumThreads, 0, s>>>(V, T, d, out);
  else
    feature_norms_kernel<<<blocks_for(d, kSumThreads), kSumThreads, 0, s>>>(V, T, d, out);
  check_launch(mean ? "task_mean_kernel" : "feature_norms_kernel");
}

}  // namespace

double prox(PenaltyKind kind, const double* V, std::int64_t T, std::int64_t d, double tau, double* out, double* feature,
            const SumScratch& scratch, std::uintptr_t stream) {
  const cudaStream_t s = as_stream(stream);
  const std::int64_t n = T * d;
  double value = 0.0;
  switch (kind) {
    case PenaltyKind::l1:
      fixed_sums<1>(n, SoftThreshold{V, tau, out}, scratch, &value, s);
      return value;
    case PenaltyKind::l21: {
      double* norms = feature;
      double* factor = feature + d;
      feature_pass(V, T, d, norms, false, s);
      fixed_sums<1>(d, GroupFactors{norms, tau, factor}, scratch, &value, s);
      for_each(n, ScaleColumns{V, factor, d, out}, s, "scale_columns");
      return value;
    }
    case PenaltyKind::mean: {
      if (T == 0) return 0.0;
      feature_pass(V, T, d, feature, true, s);
      fixed_sums<1>(n, Spread{V, feature, d}, scratch, &value, s);
      for_each(n, ShrinkTowardMean{V, feature, d, tau, out}, s, "shrink_toward_mean");
      // The mean is unchanged by the prox: g(out) is g(V) times the squared shrink factor.
      const double shrink = 1.0 / (1.0 + tau);
      return 0.5 * value * shrink * shrink;
    }
    default:
      throw std::invalid_argument("the CUDA prox covers l1, l21 and mean (the trace norm runs through CuPy)");
  }
}

double penalty_value(PenaltyKind kind, const double* V, std::int64_t T, std::int64_t d, double* feature,
                     const SumScratch& scratch, std::uintptr_t stream) {
  const cudaStream_t s = as_stream(stream);
  double value = 0.0;
  switch (kind) {
    case PenaltyKind::l1:
      fixed_sums<1>(T * d, AbsSum{V}, scratch, &value, s);
      return value;
    case PenaltyKind::l21:
      feature_pass(V, T, d, feature, false, s);
      fixed_sums<1>(d, SumOf{feature}, scratch, &value, s);
      return value;
    case PenaltyKind::mean:
      if (T == 0) return 0.0;
      feature_pass(V, T, d, feature, true, s);
      fixed_sums<1>(T * d, Spread{V, feature, d}, scratch, &value, s);
      return 0.5 * value;
    default:
      throw std::invalid_argument("the CUDA penalty values cover l1, l21 and mean (the trace norm runs through CuPy)");
  }
}

}  // namespace mtlx::cuda
