// loss_grad for the shared-input layout: X is read once per call in row blocks; the two
// products per block (margins Z = X_blk W, gradient G += X_blk^T R) go to BLAS, the loss and its
// derivative run elementwise over the small block of margins in between.
//
// Threads: the blocks are dealt into a fixed number of lanes (contiguous runs of blocks, each
// with its own gradient accumulator), lanes taken dynamically by the threads, each lane's blocks
// in order, then the lanes' sums added in lane order. The lane count depends on the shape only,
// so the result is bitwise the same for any thread count. The caller runs BLAS single-threaded
// around a multi-threaded call (mtlx.objective): with BLAS's own threads inside each small
// product instead, every product waited for the slowest thread, and a core taken by another
// process made two threads 1.8x slower than one (bench/bench_threads.py).
#include <algorithm>
#include <vector>

#include "mtlx/grad.hpp"
#include "mtlx/lapack.hpp"
#include "parallel.hpp"

namespace mtlx::cpu {
namespace {

// A block of ~512 KiB of X stays cache-resident between the two products, so X streams from
// memory once. The size depends on d only: the reduction order never depends on threads.
std::int64_t block_rows(std::int64_t d, std::size_t real_size) {
  return std::clamp<std::int64_t>((512 * 1024) / std::max<std::int64_t>(1, d * static_cast<std::int64_t>(real_size)),
                                  32, 1 << 14);
}

// Most lanes: enough for a thread taken away half the time to leave only a small tail.
constexpr std::int64_t kMaxLanes = 16;

// One lane: blocks [first, last) in order, into its own loss, gb (T) and gradient (T x d).
template <class Real>
double lane_loss_grad(const SharedTasks<Real>& data, const Real* Wt, const Real* b, std::int64_t B, std::int64_t first,
                      std::int64_t last, Real* Z, double* gb, Real* gWt) {
  const std::int64_t n = data.n_samples, T = data.n_tasks, d = data.n_features;
  double total = 0.0;
  for (std::int64_t blk = first; blk < last; ++blk) {
    const std::int64_t start = blk * B, rows = std::min(B, n - start);
    const Real* Xb = data.X + start * d;
    const Real* Yb = data.Y + start * T;
    const Real* Sb = data.sample_weight ? data.sample_weight + start * T : nullptr;
    // Column-major view: Xb is d x rows (ld d), Wt is d x T (ld d), Z is T x rows (ld T).
    lapack::gemm<Real>('T', 'N', static_cast<int>(T), static_cast<int>(rows), static_cast<int>(d), Real(1), Wt,
                       static_cast<int>(d), Xb, static_cast<int>(d), Real(0), Z, static_cast<int>(T));
    for (std::int64_t i = 0; i < rows; ++i) {
      double loss = 0.0;
      Real* zi = Z + i * T;
      const Real* yi = Yb + i * T;
      for (std::int64_t t = 0; t < T; ++t) {
        if (b) zi[t] += b[t];
        double c = data.weights[t];
        if (Sb) {
          // A zero weight (an unlabelled entry) drops the entry whatever its loss.
          c *= static_cast<double>(Sb[i * T + t]);
          if (c == 0.0) {
            zi[t] = Real(0);
            continue;
          }
        }
        visit_loss(static_cast<LossKind>(data.losses[t]), data.loss_params[t], [&](auto loss_fn) {
          loss += c * loss_fn.value(yi[t], zi[t]);
          if (gWt) zi[t] = static_cast<Real>(c) * loss_fn.deriv(yi[t], zi[t]);
        });
      }
      total += loss;
    }
    if (gWt) {
      for (std::int64_t i = 0; i < rows; ++i) {
        const Real* ri = Z + i * T;
        for (std::int64_t t = 0; t < T; ++t) gb[t] += ri[t];
      }
      // G (d x T, ld d) += Xb (d x rows) * R^T, with R = Z now holding c_t L'(y, z) (T x rows).
      lapack::gemm<Real>('N', 'T', static_cast<int>(d), static_cast<int>(T), static_cast<int>(rows), Real(1), Xb,
                         static_cast<int>(d), Z, static_cast<int>(T), Real(1), gWt, static_cast<int>(d));
    }
  }
  return total;
}

}  // namespace

std::int64_t shared_lanes(std::int64_t n, std::int64_t d, std::int64_t T, std::size_t real_size) {
  if (n <= 0) return 1;
  const std::int64_t B = block_rows(d, real_size);
  const std::int64_t blocks = (n + B - 1) / B;
  // Accumulators beyond the first two stay within an eighth of X's bytes.
  const double lane_bytes = static_cast<double>(std::max<std::int64_t>(1, d * T)) * static_cast<double>(real_size);
  const double x_bytes = static_cast<double>(n) * static_cast<double>(d) * static_cast<double>(real_size);
  const auto affordable = static_cast<std::int64_t>(std::min(1e6, x_bytes / 8.0 / lane_bytes));
  return std::max<std::int64_t>(1, std::min({blocks, kMaxLanes, std::max<std::int64_t>(2, affordable)}));
}

template <class Real>
double loss_grad(const SharedTasks<Real>& data, const Real* Wt, const Real* b, GradientOut<Real> grad, int n_threads) {
  const std::int64_t n = data.n_samples, T = data.n_tasks, d = data.n_features;
  const bool with_grad = grad.gWt != nullptr;
  const std::int64_t B = block_rows(d, sizeof(Real));
  const std::int64_t blocks = n > 0 ? (n + B - 1) / B : 0;
  const std::int64_t L = shared_lanes(n, d, T, sizeof(Real));
  // Lane 0 accumulates straight into the output; lanes 1.. into their own buffers.
  std::vector<Real> Z(static_cast<std::size_t>(L * std::min(B, std::max<std::int64_t>(n, 1)) * T));
  std::vector<Real> lane_grad(with_grad ? static_cast<std::size_t>((L - 1) * T * d) : 0, Real(0));
  std::vector<double> lane_gb(static_cast<std::size_t>(L * T), 0.0);
  std::vector<double> lane_loss(static_cast<std::size_t>(L), 0.0);
  if (with_grad) std::fill(grad.gWt, grad.gWt + T * d, Real(0));
  const std::int64_t z_stride = std::min(B, std::max<std::int64_t>(n, 1)) * T;
  const int used = static_cast<int>(std::min<std::int64_t>(std::max(n_threads, 1), L));

#pragma omp parallel for num_threads(used) schedule(dynamic, 1) if (used > 1 && n * d >= kMinParallelElements)
  for (std::int64_t lane = 0; lane < L; ++lane) {
    const std::int64_t first = blocks * lane / L, last = blocks * (lane + 1) / L;
    Real* g = !with_grad ? nullptr : lane == 0 ? grad.gWt : lane_grad.data() + (lane - 1) * T * d;
    lane_loss[static_cast<std::size_t>(lane)] =
        lane_loss_grad(data, Wt, b, B, first, last, Z.data() + lane * z_stride, lane_gb.data() + lane * T, g);
  }

  double total = 0.0;
  for (std::int64_t lane = 0; lane < L; ++lane) total += lane_loss[static_cast<std::size_t>(lane)];
  if (with_grad) {
    for (std::int64_t lane = 1; lane < L; ++lane) {
      const Real* g = lane_grad.data() + (lane - 1) * T * d;
      for (std::int64_t k = 0; k < T * d; ++k) grad.gWt[k] += g[k];
    }
    for (std::int64_t t = 0; t < T; ++t) {
      double s = 0.0;
      for (std::int64_t lane = 0; lane < L; ++lane) s += lane_gb[static_cast<std::size_t>(lane * T + t)];
      grad.gb[t] = static_cast<Real>(s);
    }
  }
  return total;
}

template double loss_grad<double>(const SharedTasks<double>&, const double*, const double*, GradientOut<double>, int);
template double loss_grad<float>(const SharedTasks<float>&, const float*, const float*, GradientOut<float>, int);

}  // namespace mtlx::cpu
