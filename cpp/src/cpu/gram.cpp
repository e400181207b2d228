// Squared loss from per-task Gram statistics around a moving reference point (see gram.hpp).
#include "mtlx/gram.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "mtlx/lapack.hpp"
#include "parallel.hpp"

namespace mtlx::cpu {
namespace {

// Where task t's rows, targets and Gram statistics are, whatever the layout.
template <class Real>
struct TaskView {
  const Real* X;  // m x d, row-major
  const Real* y;  // m targets, y_stride apart
  std::int64_t y_stride;
  std::int64_t m;
  const Real* G;  // d x d
  const Real* s;  // d
};

// X' X (upper triangle by syrk, then mirrored) and X' 1 of one m x d row-major block.
template <class Real>
void gram_of(const Real* X, std::int64_t m, std::int64_t d, Real* G, Real* s) {
  // Row-major X (m x d) is the column-major d x m matrix A; A A' is X' X.
  lapack::syrk<Real>('U', 'N', static_cast<int>(d), static_cast<int>(m), Real(1), X, static_cast<int>(d), Real(0), G,
                     static_cast<int>(d));
  for (std::int64_t j = 0; j < d; ++j) {
    for (std::int64_t k = j + 1; k < d; ++k) G[j * d + k] = G[k * d + j];
  }
  std::vector<double> sum(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t i = 0; i < m; ++i) {
    const Real* x = X + i * d;
    for (std::int64_t j = 0; j < d; ++j) sum[j] += x[j];
  }
  for (std::int64_t j = 0; j < d; ++j) s[j] = static_cast<Real>(sum[j]);
}

// Moves task t's reference to (w, b): r0 = y - X w - b, its norm, its sum and X' r0, directly.
template <class Real>
void refresh(const TaskView<Real>& v, std::int64_t d, const Real* w, Real b, Real* w0, Real& b0, double* p0,
             double& rr0, double& rs0) {
  std::fill(p0, p0 + d, 0.0);
  double rr = 0.0, rs = 0.0;
  for (std::int64_t i = 0; i < v.m; ++i) {
    const Real* x = v.X + i * d;
    double z = 0.0;
    // Vectorized (reassociated) sum: this pass is the whole cost of a refresh.
#pragma omp simd reduction(+ : z)
    for (std::int64_t j = 0; j < d; ++j) z += static_cast<double>(x[j]) * w[j];
    const double r = static_cast<double>(v.y[i * v.y_stride]) - z - b;
    rr += r * r;
    rs += r;
    for (std::int64_t j = 0; j < d; ++j) p0[j] += r * x[j];
  }
  std::copy(w, w + d, w0);
  b0 = b;
  rr0 = rr;
  rs0 = rs;
}

// Hpre (T x d), when given, holds G dw of every task already (one BLAS-3 product for shared X).
template <class Real, class ViewOf>
double gram_loop(ViewOf view_of, std::int64_t T, std::int64_t d, const double* weights, GramReference<Real> ref,
                 const Real* Wt, const Real* b, GradientOut<Real> grad, int n_threads, const Real* Hpre = nullptr) {
  std::vector<double> task_value(static_cast<std::size_t>(T));
#pragma omp parallel num_threads(n_threads) if (T > 1 && T * d * d >= kMinParallelElements)
  {
    std::vector<double> dw(static_cast<std::size_t>(d)), h(static_cast<std::size_t>(d));
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t t = 0; t < T; ++t) {
      const TaskView<Real> v = view_of(t);
      const Real* w = Wt + t * d;
      const Real bt = b ? b[t] : Real(0);
      Real* w0 = ref.W0 + t * d;
      const double* p0 = ref.P0 + t * d;
      double db = static_cast<double>(bt) - ref.b0[t];
      for (std::int64_t j = 0; j < d; ++j) dw[j] = static_cast<double>(w[j]) - w0[j];
      // h = G dw, by rows of the symmetric G so that the inner loop is a contiguous axpy.
      std::fill(h.begin(), h.end(), 0.0);
      if (Hpre) std::copy(Hpre + t * d, Hpre + (t + 1) * d, h.begin());
      for (std::int64_t k = 0; k < d && !Hpre; ++k) {
        const double a = dw[k];
        if (a == 0.0) continue;
        const Real* g = v.G + k * d;
        for (std::int64_t j = 0; j < d; ++j) h[j] += a * g[j];
      }
      double quad = 0.0, lin = 0.0, sdw = 0.0;
      for (std::int64_t j = 0; j < d; ++j) {
        quad += dw[j] * h[j];
        lin += dw[j] * p0[j];
        sdw += static_cast<double>(v.s[j]) * dw[j];
      }
      quad += db * (2.0 * sdw + db * static_cast<double>(v.m));
      lin += db * ref.rs0[t];
      double rr = ref.rr0[t] - 2.0 * lin + quad;
      // Also true for the NaN of a task without a reference yet.
      if (!(quad <= kGramRefresh * rr)) {
        refresh(v, d, w, bt, w0, ref.b0[t], ref.P0 + t * d, ref.rr0[t], ref.rs0[t]);
        std::fill(dw.begin(), dw.end(), 0.0);
        std::fill(h.begin(), h.end(), 0.0);
        db = sdw = 0.0;
        rr = ref.rr0[t];
      }
      const double c = weights[t];
      task_value[t] = 0.5 * c * rr;
      if (grad.gWt) {
        // grad_w = -c X' r = c (G dw + db s - X' r0); grad_b = -c 1' r = c (s' dw + db m - 1' r0).
        Real* gw = grad.gWt + t * d;
        for (std::int64_t j = 0; j < d; ++j) {
          gw[j] = static_cast<Real>(c * (h[j] + db * static_cast<double>(v.s[j]) - p0[j]));
        }
        grad.gb[t] = static_cast<Real>(c * (sdw + db * static_cast<double>(v.m) - ref.rs0[t]));
      }
    }
  }
  double total = 0.0;
  for (std::int64_t t = 0; t < T; ++t) total += task_value[t];
  return total;
}

}  // namespace

template <class Real>
void gram_build(const StackedTasks<Real>& data, Real* G, Real* s) {
  const std::int64_t d = data.n_features;
  for (std::int64_t t = 0; t < data.n_tasks; ++t) {
    const std::int64_t lo = data.offsets[t], m = data.offsets[t + 1] - lo;
    gram_of(data.X + lo * d, m, d, G + t * d * d, s + t * d);
  }
}

template <class Real>
void gram_build(const SharedTasks<Real>& data, Real* G, Real* s) {
  gram_of(data.X, data.n_samples, data.n_features, G, s);
}

template <class Real>
double loss_grad_gram(const StackedTasks<Real>& data, const GramStats<Real>& stats, GramReference<Real> ref,
                      const Real* Wt, const Real* b, GradientOut<Real> grad, int n_threads) {
  const std::int64_t d = data.n_features;
  auto view_of = [&](std::int64_t t) {
    const std::int64_t lo = data.offsets[t];
    return TaskView<Real>{data.X + lo * d,          data.y + lo,         1,
                          data.offsets[t + 1] - lo, stats.G + t * d * d, stats.s + t * d};
  };
  return gram_loop<Real>(view_of, data.n_tasks, d, data.weights, ref, Wt, b, grad, n_threads);
}

template <class Real>
double loss_grad_gram(const SharedTasks<Real>& data, const GramStats<Real>& stats, GramReference<Real> ref,
                      const Real* Wt, const Real* b, GradientOut<Real> grad, int n_threads) {
  const std::int64_t T = data.n_tasks, d = data.n_features;
  auto view_of = [&](std::int64_t t) {
    return TaskView<Real>{data.X, data.Y + t, T, data.n_samples, stats.G, stats.s};
  };
  // Every task shares G: G dW for all tasks is one matrix product (BLAS-3) rather than T
  // passes over G, which no longer fits in cache for d in the thousands.
  std::vector<Real> dW(static_cast<std::size_t>(T * d)), H(static_cast<std::size_t>(T * d));
  for (std::int64_t i = 0; i < T * d; ++i) dW[i] = Wt[i] - ref.W0[i];
  // Column-major: dW and H are d x T (ld d), G is d x d and symmetric.
  lapack::gemm<Real>('N', 'N', static_cast<int>(d), static_cast<int>(T), static_cast<int>(d), Real(1), stats.G,
                     static_cast<int>(d), dW.data(), static_cast<int>(d), Real(0), H.data(), static_cast<int>(d));
  return gram_loop<Real>(view_of, T, d, data.weights, ref, Wt, b, grad, n_threads, H.data());
}

template void gram_build<double>(const StackedTasks<double>&, double*, double*);
template void gram_build<double>(const SharedTasks<double>&, double*, double*);
template double loss_grad_gram<double>(const StackedTasks<double>&, const GramStats<double>&, GramReference<double>,
                                       const double*, const double*, GradientOut<double>, int);
template double loss_grad_gram<double>(const SharedTasks<double>&, const GramStats<double>&, GramReference<double>,
                                       const double*, const double*, GradientOut<double>, int);
template void gram_build<float>(const StackedTasks<float>&, float*, float*);
template void gram_build<float>(const SharedTasks<float>&, float*, float*);
template double loss_grad_gram<float>(const StackedTasks<float>&, const GramStats<float>&, GramReference<float>,
                                      const float*, const float*, GradientOut<float>, int);
template double loss_grad_gram<float>(const SharedTasks<float>&, const GramStats<float>&, GramReference<float>,
                                      const float*, const float*, GradientOut<float>, int);

}  // namespace mtlx::cpu
