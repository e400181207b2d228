// loss_grad for a CSR X: one pass over the non-zeros per call, per row the margins from the
// row's entries, the losses' derivatives, then the row's entries scattered into the gradient.
//
// Threads take lanes (contiguous row ranges, a count fixed by the shape) with private
// accumulators in double, added in lane order: bitwise the same result for any thread count.
#include "mtlx/grad_sparse.hpp"

#include <algorithm>
#include <vector>

#include "parallel.hpp"

namespace mtlx::cpu {
namespace {

// Most lanes: as for the dense shared-input kernel, enough to balance two-plus cores.
constexpr std::int64_t kMaxLanes = 16;

// One lane's partial sums: the loss, the intercepts' gradient (T) and the coefficients' (T x d
// for stacked rows, d x T for shared X: the layout its scatter writes contiguously).
struct LaneSums {
  double loss = 0.0;
  std::vector<double> gb, g;

  void start(std::int64_t T, std::int64_t d, bool with_grad) {
    if (!with_grad) return;
    gb.assign(static_cast<std::size_t>(T), 0.0);
    g.assign(static_cast<std::size_t>(T * d), 0.0);
  }
};

// The lanes' losses added in lane order; with the gradient, their intercept sums too.
template <class Real>
double reduce_lanes(const std::vector<LaneSums>& lanes, std::int64_t T, Real* gb) {
  double total = 0.0;
  for (const LaneSums& lane : lanes) total += lane.loss;
  if (gb) {
    for (std::int64_t t = 0; t < T; ++t) {
      double s = 0.0;
      for (const LaneSums& lane : lanes) s += lane.gb[static_cast<std::size_t>(t)];
      gb[t] = static_cast<Real>(s);
    }
  }
  return total;
}

// c_t s L(y, z) and its derivative through the loss of `kind`.
template <class Real>
inline double loss_and_deriv(const TaskLosses& tasks, std::int64_t t, double scale, Real y, Real z, double& deriv) {
  double value = 0.0;
  visit_loss(static_cast<LossKind>(tasks.losses[t]), tasks.loss_params[t], [&](auto loss) {
    value = scale * loss.value(y, z);
    deriv = scale * static_cast<double>(loss.deriv(y, z));
  });
  return value;
}

template <class Body>
void run_lanes(std::int64_t L, std::int64_t n, std::int64_t nnz, int n_threads, Body&& body) {
  const int used = static_cast<int>(std::min<std::int64_t>(std::max(n_threads, 1), L));
#pragma omp parallel for num_threads(used) schedule(dynamic, 1) if (used > 1 && nnz >= kMinParallelElements)
  for (std::int64_t lane = 0; lane < L; ++lane) body(lane, n * lane / L, n * (lane + 1) / L);
}

}  // namespace

std::int64_t sparse_lanes(std::int64_t n, std::int64_t nnz, std::int64_t d, std::int64_t T, std::size_t entry_bytes) {
  if (n <= 0) return 1;
  const double lane_bytes = static_cast<double>(std::max<std::int64_t>(1, d * T)) * sizeof(double);
  const double x_bytes = static_cast<double>(nnz) * static_cast<double>(entry_bytes);
  const auto affordable = static_cast<std::int64_t>(std::min(1e6, x_bytes / 8.0 / lane_bytes));
  return std::max<std::int64_t>(1, std::min({n, kMaxLanes, std::max<std::int64_t>(2, affordable)}));
}

template <class Real, class Index>
double loss_grad_csr_stacked(const CsrMatrix<Real, Index>& X, const Real* y, const std::int64_t* offsets,
                             const Real* sample_weight, const TaskLosses& tasks, const Real* Wt, const Real* b,
                             GradientOut<Real> grad, int n_threads) {
  const std::int64_t n = X.n_rows, d = X.n_cols, T = tasks.n_tasks;
  const bool with_grad = grad.gWt != nullptr;
  const std::int64_t nnz = n > 0 ? static_cast<std::int64_t>(X.indptr[n]) : 0;
  const std::int64_t L = sparse_lanes(n, nnz, d, T, sizeof(Real) + sizeof(Index));
  std::vector<LaneSums> lanes(static_cast<std::size_t>(L));

  run_lanes(L, n, nnz, n_threads, [&](std::int64_t lane, std::int64_t first, std::int64_t last) {
    LaneSums& out = lanes[static_cast<std::size_t>(lane)];
    out.start(T, d, with_grad);
    std::int64_t t = static_cast<std::int64_t>(std::upper_bound(offsets, offsets + T + 1, first) - offsets) - 1;
    for (std::int64_t i = first; i < last; ++i) {
      while (offsets[t + 1] <= i) ++t;
      const double s = sample_weight ? static_cast<double>(sample_weight[i]) : 1.0;
      if (s == 0.0 || tasks.weights[t] == 0.0) continue;  // a dropped row or task, whatever its loss
      const Real* w = Wt + t * d;
      const std::int64_t lo = static_cast<std::int64_t>(X.indptr[i]), hi = static_cast<std::int64_t>(X.indptr[i + 1]);
      double z = b ? static_cast<double>(b[t]) : 0.0;
      for (std::int64_t k = lo; k < hi; ++k) z += static_cast<double>(X.data[k]) * static_cast<double>(w[X.indices[k]]);
      double r = 0.0;
      out.loss += loss_and_deriv<Real>(tasks, t, tasks.weights[t] * s, y[i], static_cast<Real>(z), r);
      if (with_grad) {
        out.gb[static_cast<std::size_t>(t)] += r;
        double* g = out.g.data() + t * d;
        for (std::int64_t k = lo; k < hi; ++k) g[X.indices[k]] += r * static_cast<double>(X.data[k]);
      }
    }
  });

  const double total = reduce_lanes(lanes, T, with_grad ? grad.gb : static_cast<Real*>(nullptr));
  if (with_grad) {
    for (std::int64_t k = 0; k < T * d; ++k) {
      double s = 0.0;
      for (const LaneSums& lane : lanes) s += lane.g[static_cast<std::size_t>(k)];
      grad.gWt[k] = static_cast<Real>(s);
    }
  }
  return total;
}

template <class Real, class Index>
double loss_grad_csr_shared(const CsrMatrix<Real, Index>& X, const Real* Y, const Real* sample_weight,
                            const TaskLosses& tasks, const Real* Wt, const Real* b, GradientOut<Real> grad,
                            int n_threads) {
  const std::int64_t n = X.n_rows, d = X.n_cols, T = tasks.n_tasks;
  const bool with_grad = grad.gWt != nullptr;
  const std::int64_t nnz = n > 0 ? static_cast<std::int64_t>(X.indptr[n]) : 0;
  const std::int64_t L = sparse_lanes(n, nnz, d, T, sizeof(Real) + sizeof(Index));
  // W as d x T: a row's entry j reads the T coefficients of feature j contiguously.
  std::vector<double> Wd(static_cast<std::size_t>(d * T));
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t j = 0; j < d; ++j) Wd[static_cast<std::size_t>(j * T + t)] = static_cast<double>(Wt[t * d + j]);
  std::vector<LaneSums> lanes(static_cast<std::size_t>(L));

  run_lanes(L, n, nnz, n_threads, [&](std::int64_t lane, std::int64_t first, std::int64_t last) {
    LaneSums& out = lanes[static_cast<std::size_t>(lane)];
    out.start(T, d, with_grad);
    std::vector<double> z(static_cast<std::size_t>(T)), r(static_cast<std::size_t>(T));
    for (std::int64_t i = first; i < last; ++i) {
      const std::int64_t lo = static_cast<std::int64_t>(X.indptr[i]), hi = static_cast<std::int64_t>(X.indptr[i + 1]);
      for (std::int64_t t = 0; t < T; ++t) z[static_cast<std::size_t>(t)] = b ? static_cast<double>(b[t]) : 0.0;
      for (std::int64_t k = lo; k < hi; ++k) {
        const double v = static_cast<double>(X.data[k]);
        const double* wj = Wd.data() + static_cast<std::int64_t>(X.indices[k]) * T;
        for (std::int64_t t = 0; t < T; ++t) z[static_cast<std::size_t>(t)] += v * wj[t];
      }
      for (std::int64_t t = 0; t < T; ++t) {
        const double s = sample_weight ? static_cast<double>(sample_weight[i * T + t]) : 1.0;
        double& rt = r[static_cast<std::size_t>(t)];
        rt = 0.0;
        if (s == 0.0) continue;  // an unlabelled entry
        out.loss += loss_and_deriv<Real>(tasks, t, tasks.weights[t] * s, Y[i * T + t],
                                         static_cast<Real>(z[static_cast<std::size_t>(t)]), rt);
      }
      if (with_grad) {
        for (std::int64_t t = 0; t < T; ++t) out.gb[static_cast<std::size_t>(t)] += r[static_cast<std::size_t>(t)];
        for (std::int64_t k = lo; k < hi; ++k) {
          const double v = static_cast<double>(X.data[k]);
          double* gj = out.g.data() + static_cast<std::int64_t>(X.indices[k]) * T;
          for (std::int64_t t = 0; t < T; ++t) gj[t] += v * r[static_cast<std::size_t>(t)];
        }
      }
    }
  });

  const double total = reduce_lanes(lanes, T, with_grad ? grad.gb : static_cast<Real*>(nullptr));
  if (with_grad) {
    for (std::int64_t j = 0; j < d; ++j) {
      for (std::int64_t t = 0; t < T; ++t) {
        double s = 0.0;
        for (const LaneSums& lane : lanes) s += lane.g[static_cast<std::size_t>(j * T + t)];
        grad.gWt[t * d + j] = static_cast<Real>(s);
      }
    }
  }
  return total;
}

#define MTLX_INSTANTIATE_CSR(Real, Index)                                                                             \
  template double loss_grad_csr_stacked<Real, Index>(const CsrMatrix<Real, Index>&, const Real*, const std::int64_t*, \
                                                     const Real*, const TaskLosses&, const Real*, const Real*,        \
                                                     GradientOut<Real>, int);                                         \
  template double loss_grad_csr_shared<Real, Index>(const CsrMatrix<Real, Index>&, const Real*, const Real*,          \
                                                    const TaskLosses&, const Real*, const Real*, GradientOut<Real>,   \
                                                    int);
MTLX_INSTANTIATE_CSR(double, std::int32_t)
MTLX_INSTANTIATE_CSR(double, std::int64_t)
MTLX_INSTANTIATE_CSR(float, std::int32_t)
MTLX_INSTANTIATE_CSR(float, std::int64_t)
#undef MTLX_INSTANTIATE_CSR

}  // namespace mtlx::cpu
