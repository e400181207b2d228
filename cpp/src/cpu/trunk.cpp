// Shared-trunk networks on the CPU: batched forward and backward passes of every task.
//
// Layer products go to BLAS (row-major matrices through column-major GEMM); activations, losses
// and bias sums are loops over fixed chunks of rows, summed in chunk order, so that the result
// does not depend on the number of threads.
#include "mtlx/trunk.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "mtlx/lapack.hpp"
#include "parallel.hpp"

namespace mtlx {
namespace {

using i64 = std::int64_t;

// Offsets of every block in the flat parameter vector (the layout documented in trunk.hpp).
struct Layout {
  std::vector<i64> trunk_w, trunk_b;  // per trunk layer
  std::vector<i64> rel_w, rel_b;      // per task layer, relative to the task's block
  i64 rel_head = 0;                   // the head's matrix, relative to the task's block
  std::vector<i64> task_start;        // per task
  i64 total = 0;

  Layout(const TrunkShape& s, const TrunkTasks& tasks) {
    i64 at = 0;
    for (int l = 0; l < s.n_trunk_layers; ++l) {
      trunk_w.push_back(at);
      at += s.trunk_sizes[l] * s.trunk_sizes[l + 1];
      trunk_b.push_back(at);
      at += s.trunk_sizes[l + 1];
    }
    i64 rel = 0, prev = s.trunk_sizes[s.n_trunk_layers];
    for (int m = 0; m < s.n_task_layers; ++m) {
      rel_w.push_back(rel);
      rel += prev * s.task_sizes[m];
      rel_b.push_back(rel);
      rel += s.task_sizes[m];
      prev = s.task_sizes[m];
    }
    rel_head = rel;
    for (i64 t = 0; t < tasks.T; ++t) {
      task_start.push_back(at);
      at += rel + prev * tasks.out_dims[t] + tasks.out_dims[t];
    }
    total = at;
  }
};

}  // namespace

i64 trunk_n_params(const TrunkShape& shape, const TrunkTasks& tasks) { return Layout(shape, tasks).total; }

namespace cpu {
namespace {

// Rows per chunk of the elementwise loops and of the deterministic sums over rows.
constexpr i64 kChunkRows = 256;

i64 n_chunks_of(i64 rows) { return (rows + kChunkRows - 1) / kChunkRows; }

// f(chunk, lo, hi) over fixed chunks of rows; threads only where the work pays for them.
template <class F>
void for_row_chunks(i64 rows, i64 width, int n_threads, F&& f) {
  const i64 n_chunks = n_chunks_of(rows);
  const int used = std::max(1, n_threads);
  (void)used;
#pragma omp parallel for num_threads(used) schedule(static) if (used > 1 && rows * width >= kMinParallelElements)
  for (i64 c = 0; c < n_chunks; ++c) f(c, c * kChunkRows, std::min(rows, (c + 1) * kChunkRows));
}

// Row-major C (m x n) = alpha op(A) op(B) + beta C, through column-major GEMM on the transposes.
template <class Real>
void gemm_rm(bool trans_a, bool trans_b, i64 m, i64 n, i64 k, Real alpha, const Real* A, i64 lda, const Real* B,
             i64 ldb, Real beta, Real* C, i64 ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum (a rank or task without rows): BLAS would not touch C
    for (i64 i = 0; i < m; ++i) {
      for (i64 j = 0; j < n; ++j) C[i * ldc + j] = beta == Real(0) ? Real(0) : beta * C[i * ldc + j];
    }
    return;
  }
  lapack::gemm<Real>(trans_b ? 'T' : 'N', trans_a ? 'T' : 'N', static_cast<int>(n), static_cast<int>(m),
                     static_cast<int>(k), alpha, B, static_cast<int>(ldb), A, static_cast<int>(lda), beta, C,
                     static_cast<int>(ldc));
}

// Z (rows x n, leading dimension ld) <- act(Z + b).
template <class Real>
void bias_activate(Real* Z, i64 rows, i64 n, i64 ld, const Real* b, Activation act, int n_threads) {
  visit_activation(act, [&](auto f) {
    for_row_chunks(rows, n, n_threads, [&](i64, i64 lo, i64 hi) {
      for (i64 i = lo; i < hi; ++i) {
        Real* z = Z + i * ld;
        for (i64 j = 0; j < n; ++j) z[j] = f.value(static_cast<Real>(z[j] + b[j]));
      }
    });
    return 0;
  });
}

// dA (rows x n) <- dA * act'(A): the gradient with respect to the pre-activations.
template <class Real>
void activation_backward(Real* dA, const Real* A, i64 rows, i64 n, Activation act, int n_threads) {
  if (act == Activation::identity) return;
  visit_activation(act, [&](auto f) {
    for_row_chunks(rows, n, n_threads, [&](i64, i64 lo, i64 hi) {
      for (i64 i = lo * n; i < hi * n; ++i) dA[i] *= f.deriv_from_output(A[i]);
    });
    return 0;
  });
}

// out[j] = sum_i D[i, j] (rows x n, leading dimension ld): chunk partials in double, summed in order.
template <class Real>
void column_sums(const Real* D, i64 rows, i64 n, i64 ld, Real* out, int n_threads) {
  const i64 n_chunks = n_chunks_of(rows);
  std::vector<double> partial(static_cast<std::size_t>(n_chunks * n), 0.0);
  for_row_chunks(rows, n, n_threads, [&](i64 c, i64 lo, i64 hi) {
    double* p = partial.data() + c * n;
    for (i64 i = lo; i < hi; ++i) {
      for (i64 j = 0; j < n; ++j) p[j] += static_cast<double>(D[i * ld + j]);
    }
  });
  for (i64 j = 0; j < n; ++j) {
    double s = 0.0;
    for (i64 c = 0; c < n_chunks; ++c) s += partial[c * n + j];
    out[j] = static_cast<Real>(s);
  }
}

// Task t's summed weighted loss over its m rows of outputs O (leading dimension ld); with dO not
// null, dO (same leading dimension) gets scale * w * dL/dO.
template <class Real>
double head_loss(const Real* O, Real* dO, i64 ld, i64 m, i64 K, i64 first_row, const TrunkTargets<Real>& tg, i64 col,
                 LossKind kind, double param, double scale, int n_threads) {
  const i64 n_chunks = n_chunks_of(m);
  std::vector<double> partial(static_cast<std::size_t>(n_chunks), 0.0);
  for_row_chunks(m, K, n_threads, [&](i64 c, i64 lo, i64 hi) {
    double s = 0.0;
    for (i64 i = lo; i < hi; ++i) {
      const i64 entry = (first_row + i) * tg.n_cols + col;
      const double w = static_cast<double>(tg.weights[entry]);
      const Real* z = O + i * ld;
      Real* dz = dO == nullptr ? nullptr : dO + i * ld;
      if (w == 0.0) {  // a missing label: no loss, no gradient (its target may be anything)
        if (dz != nullptr) std::fill(dz, dz + K, Real(0));
        continue;
      }
      const Real y = tg.values[entry];
      if (K > 1) {
        s += w * SoftmaxLoss::value_and_deriv(z, static_cast<int>(K), static_cast<int>(y), scale * w, dz);
      } else {
        visit_loss(kind, param, [&](auto f) {
          s += w * f.value(y, z[0]);
          if (dz != nullptr) dz[0] = static_cast<Real>(scale * w * static_cast<double>(f.deriv(y, z[0])));
          return 0;
        });
      }
    }
    partial[c] = s;
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

// The forward pass of the trunk: acts[l] (N x n_{l+1}) for every layer l.
template <class Real>
std::vector<std::vector<Real>> trunk_forward(const Real* X, i64 N, const TrunkShape& s, const Layout& lay,
                                             const Real* params, int n_threads) {
  std::vector<std::vector<Real>> acts(s.n_trunk_layers);
  const Real* in = X;
  for (int l = 0; l < s.n_trunk_layers; ++l) {
    const i64 n_in = s.trunk_sizes[l], n_out = s.trunk_sizes[l + 1];
    acts[l].resize(static_cast<std::size_t>(N * n_out));
    gemm_rm<Real>(false, false, N, n_out, n_in, Real(1), in, n_in, params + lay.trunk_w[l], n_out, Real(0),
                  acts[l].data(), n_out);
    bias_activate(acts[l].data(), N, n_out, n_out, params + lay.trunk_b[l], s.activation, n_threads);
    in = acts[l].data();
  }
  return acts;
}

// The task layers of task t on its m rows of the representation H (leading dimension ld_h):
// returns their activations, one m x g_k buffer per layer.
template <class Real>
std::vector<std::vector<Real>> task_forward(const Real* H, i64 ld_h, i64 m, const TrunkShape& s, const Layout& lay,
                                            const Real* block, int n_threads) {
  std::vector<std::vector<Real>> acts(s.n_task_layers);
  const Real* in = H;
  i64 n_in = s.trunk_sizes[s.n_trunk_layers], ld_in = ld_h;
  for (int k = 0; k < s.n_task_layers; ++k) {
    const i64 n_out = s.task_sizes[k];
    acts[k].resize(static_cast<std::size_t>(m * n_out));
    gemm_rm<Real>(false, false, m, n_out, n_in, Real(1), in, ld_in, block + lay.rel_w[k], n_out, Real(0),
                  acts[k].data(), n_out);
    bias_activate(acts[k].data(), m, n_out, n_out, block + lay.rel_b[k], s.activation, n_threads);
    in = acts[k].data();
    n_in = n_out;
    ld_in = n_out;
  }
  return acts;
}

// Out (m x K, leading dimension ld) = G A + a: a head's outputs.
template <class Real>
void head_forward(const Real* G, i64 ld_g, i64 m, i64 g, i64 K, const Real* A, const Real* a, Real* out, i64 ld,
                  int n_threads) {
  gemm_rm<Real>(false, false, m, K, g, Real(1), G, ld_g, A, K, Real(0), out, ld);
  for_row_chunks(m, K, n_threads, [&](i64, i64 lo, i64 hi) {
    for (i64 i = lo; i < hi; ++i) {
      for (i64 k = 0; k < K; ++k) out[i * ld + k] += a[k];
    }
  });
}

bool heads_share_all_rows(const TrunkShape& s, const TrunkTasks& tasks, i64 N) {
  if (s.n_task_layers != 0) return false;
  for (i64 t = 0; t < tasks.T; ++t) {
    if (tasks.row_begin[t] != 0 || tasks.row_end[t] != N) return false;
  }
  return true;
}

// Down through the trunk from delta = dF/d(representation) on rows [first_row, first_row + N):
// the trunk's gradient into grad (its first block).
template <class Real>
void trunk_backward(const Real* X, const std::vector<std::vector<Real>>& acts, i64 first_row, i64 N,
                    const TrunkShape& s, const Layout& lay, const Real* params, std::vector<Real> delta, Real* grad,
                    int n_threads) {
  const int L = s.n_trunk_layers;
  std::vector<Real> prev;
  for (int l = L - 1; l >= 0; --l) {
    const i64 n_in = s.trunk_sizes[l], n_out = s.trunk_sizes[l + 1];
    activation_backward(delta.data(), acts[l].data() + first_row * n_out, N, n_out, s.activation, n_threads);
    const Real* in = l ? acts[l - 1].data() + first_row * n_in : X;
    gemm_rm<Real>(true, false, n_in, n_out, N, Real(1), in, n_in, delta.data(), n_out, Real(0), grad + lay.trunk_w[l],
                  n_out);
    column_sums(delta.data(), N, n_out, n_out, grad + lay.trunk_b[l], n_threads);
    if (l) {
      prev.assign(static_cast<std::size_t>(N * n_in), Real(0));
      gemm_rm<Real>(false, true, N, n_in, n_out, Real(1), delta.data(), n_out, params + lay.trunk_w[l], n_out, Real(0),
                    prev.data(), n_in);
      delta.swap(prev);
    }
  }
}

}  // namespace

template <class Real>
double trunk_loss_grad(const Real* X, i64 N, const TrunkShape& s, const TrunkTasks& tasks, const TrunkTargets<Real>& tg,
                       const double* task_scale, const Real* params, Real* grad, double* task_loss, int n_threads,
                       Real* task_trunk_grad) {
  const Layout lay(s, tasks);
  const int L = s.n_trunk_layers;
  const i64 h = s.trunk_sizes[L];
  auto acts = trunk_forward(X, N, s, lay, params, n_threads);
  const Real* H = acts[L - 1].data();
  std::vector<Real> dH(grad == nullptr ? 0 : static_cast<std::size_t>(N * h), Real(0));
  double value = 0.0;

  if (heads_share_all_rows(s, tasks, N)) {
    // One input for every task and linear heads: all heads in one product, H [A_1 ... A_T].
    std::vector<i64> col(tasks.T + 1, 0);
    for (i64 t = 0; t < tasks.T; ++t) col[t + 1] = col[t] + tasks.out_dims[t];
    const i64 SK = col[tasks.T];
    std::vector<Real> A(static_cast<std::size_t>(h * SK)), a(static_cast<std::size_t>(SK));
    for (i64 t = 0; t < tasks.T; ++t) {
      const Real* head = params + lay.task_start[t] + lay.rel_head;
      const i64 K = tasks.out_dims[t];
      for (i64 r = 0; r < h; ++r) std::copy(head + r * K, head + (r + 1) * K, A.data() + r * SK + col[t]);
      std::copy(head + h * K, head + h * K + K, a.data() + col[t]);
    }
    std::vector<Real> O(static_cast<std::size_t>(N * SK)), dO(grad == nullptr ? 0 : O.size());
    head_forward(H, h, N, h, SK, A.data(), a.data(), O.data(), SK, n_threads);
    for (i64 t = 0; t < tasks.T; ++t) {
      task_loss[t] = head_loss(O.data() + col[t], grad == nullptr ? nullptr : dO.data() + col[t], SK, N,
                               tasks.out_dims[t], 0, tg, tg.target_col[t], static_cast<LossKind>(tasks.losses[t]),
                               tasks.loss_params[t], task_scale[t], n_threads);
      value += task_scale[t] * task_loss[t];
    }
    if (grad != nullptr) {
      std::vector<Real> dA(A.size()), da(a.size());
      gemm_rm<Real>(true, false, h, SK, N, Real(1), H, h, dO.data(), SK, Real(0), dA.data(), SK);
      column_sums(dO.data(), N, SK, SK, da.data(), n_threads);
      for (i64 t = 0; t < tasks.T; ++t) {
        Real* head = grad + lay.task_start[t] + lay.rel_head;
        const i64 K = tasks.out_dims[t];
        for (i64 r = 0; r < h; ++r)
          std::copy(dA.data() + r * SK + col[t], dA.data() + r * SK + col[t] + K, head + r * K);
        std::copy(da.data() + col[t], da.data() + col[t] + K, head + h * K);
      }
      gemm_rm<Real>(false, true, N, h, SK, Real(1), dO.data(), SK, A.data(), SK, Real(0), dH.data(), h);
    }
  } else {
    const i64 g_last = s.n_task_layers ? s.task_sizes[s.n_task_layers - 1] : h;
    for (i64 t = 0; t < tasks.T; ++t) {
      const i64 r0 = tasks.row_begin[t], m = tasks.row_end[t] - r0, K = tasks.out_dims[t];
      const Real* block = params + lay.task_start[t];
      const Real* Ht = H + r0 * h;
      auto tacts = task_forward(Ht, h, m, s, lay, block, n_threads);
      const Real* G = s.n_task_layers ? tacts.back().data() : Ht;
      const i64 ld_g = s.n_task_layers ? g_last : h;
      std::vector<Real> O(static_cast<std::size_t>(m * K)), dO(grad == nullptr ? 0 : O.size());
      head_forward(G, ld_g, m, g_last, K, block + lay.rel_head, block + lay.rel_head + g_last * K, O.data(), K,
                   n_threads);
      task_loss[t] = head_loss(O.data(), grad == nullptr ? nullptr : dO.data(), K, m, K, r0, tg, tg.target_col[t],
                               static_cast<LossKind>(tasks.losses[t]), tasks.loss_params[t], task_scale[t], n_threads);
      value += task_scale[t] * task_loss[t];
      if (grad == nullptr) continue;
      Real* gblock = grad + lay.task_start[t];
      gemm_rm<Real>(true, false, g_last, K, m, Real(1), G, ld_g, dO.data(), K, Real(0), gblock + lay.rel_head, K);
      column_sums(dO.data(), m, K, K, gblock + lay.rel_head + g_last * K, n_threads);
      // Down through the task layers: delta = dG * act'(G), then dV = G_prev' delta, dG_prev = delta V'.
      std::vector<Real> delta(static_cast<std::size_t>(m * g_last));
      // (without task layers this adds into the representation's gradient: tasks on the same rows add up)
      gemm_rm<Real>(false, true, m, g_last, K, Real(1), dO.data(), K, block + lay.rel_head, K,
                    s.n_task_layers ? Real(0) : Real(1), s.n_task_layers ? delta.data() : dH.data() + r0 * h,
                    s.n_task_layers ? g_last : h);
      for (int k = s.n_task_layers - 1; k >= 0; --k) {
        const i64 n_out = s.task_sizes[k], n_in = k ? s.task_sizes[k - 1] : h;
        activation_backward(delta.data(), tacts[k].data(), m, n_out, s.activation, n_threads);
        const Real* in = k ? tacts[k - 1].data() : Ht;
        const i64 ld_in = k ? n_in : h;
        gemm_rm<Real>(true, false, n_in, n_out, m, Real(1), in, ld_in, delta.data(), n_out, Real(0),
                      gblock + lay.rel_w[k], n_out);
        column_sums(delta.data(), m, n_out, n_out, gblock + lay.rel_b[k], n_threads);
        if (k) {
          std::vector<Real> prev(static_cast<std::size_t>(m * n_in));
          gemm_rm<Real>(false, true, m, n_in, n_out, Real(1), delta.data(), n_out, block + lay.rel_w[k], n_out, Real(0),
                        prev.data(), n_in);
          delta.swap(prev);
        } else {  // the representation's gradient: tasks on the same rows add up
          gemm_rm<Real>(false, true, m, h, n_out, Real(1), delta.data(), n_out, block + lay.rel_w[0], n_out, Real(1),
                        dH.data() + r0 * h, h);
        }
      }
    }
  }
  if (grad == nullptr) return value;
  if (task_trunk_grad != nullptr) {  // each task's share of the trunk's gradient, from its rows alone
    const i64 n_trunk = lay.task_start.empty() ? lay.total : lay.task_start[0];
    for (i64 t = 0; t < tasks.T; ++t) {
      const i64 r0 = tasks.row_begin[t], m = tasks.row_end[t] - r0;
      trunk_backward(X + r0 * s.trunk_sizes[0], acts, r0, m, s, lay, params,
                     std::vector<Real>(dH.begin() + r0 * h, dH.begin() + (r0 + m) * h), task_trunk_grad + t * n_trunk,
                     n_threads);
    }
    return value;
  }
  trunk_backward(X, acts, 0, N, s, lay, params, std::move(dH), grad, n_threads);
  return value;
}

template <class Real>
void trunk_predict(const Real* X, i64 N, const TrunkShape& s, const TrunkTasks& tasks, const Real* params, Real* out,
                   int n_threads) {
  const Layout lay(s, tasks);
  const i64 h = s.trunk_sizes[s.n_trunk_layers];
  const i64 g_last = s.n_task_layers ? s.task_sizes[s.n_task_layers - 1] : h;
  auto acts = trunk_forward(X, N, s, lay, params, n_threads);
  i64 SK = 0;
  for (i64 t = 0; t < tasks.T; ++t) SK += tasks.out_dims[t];
  i64 col = 0;
  for (i64 t = 0; t < tasks.T; ++t) {
    const i64 r0 = tasks.row_begin[t], m = tasks.row_end[t] - r0, K = tasks.out_dims[t];
    const Real* block = params + lay.task_start[t];
    const Real* Ht = acts.back().data() + r0 * h;
    auto tacts = task_forward(Ht, h, m, s, lay, block, n_threads);
    const Real* G = s.n_task_layers ? tacts.back().data() : Ht;
    head_forward(G, s.n_task_layers ? g_last : h, m, g_last, K, block + lay.rel_head, block + lay.rel_head + g_last * K,
                 out + r0 * SK + col, SK, n_threads);
    col += K;
  }
}

template <class Real>
void trunk_representation(const Real* X, i64 N, const TrunkShape& s, const Real* params, Real* out, int n_threads) {
  const TrunkTasks none{0, nullptr, nullptr, nullptr, nullptr, nullptr};
  const Layout lay(s, none);
  auto acts = trunk_forward(X, N, s, lay, params, n_threads);
  std::copy(acts.back().begin(), acts.back().end(), out);
}

template <class Real>
void adam_update(Real* params, const Real* grad, Real* m, Real* v, i64 n, double lr, double b1, double b2, double eps,
                 i64 step) {
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(step));
  const double c2 = std::sqrt(1.0 - std::pow(b2, static_cast<double>(step)));
  const AdamStep op{lr * c2 / c1, b1, b2, eps * c2};
  for (i64 i = 0; i < n; ++i) op(params[i], grad[i], m[i], v[i]);
}

#define MTLX_TRUNK_INSTANTIATE(Real)                                                                                  \
  template double trunk_loss_grad<Real>(const Real*, i64, const TrunkShape&, const TrunkTasks&,                       \
                                        const TrunkTargets<Real>&, const double*, const Real*, Real*, double*, int,   \
                                        Real*);                                                                       \
  template void trunk_predict<Real>(const Real*, i64, const TrunkShape&, const TrunkTasks&, const Real*, Real*, int); \
  template void trunk_representation<Real>(const Real*, i64, const TrunkShape&, const Real*, Real*, int);             \
  template void adam_update<Real>(Real*, const Real*, Real*, Real*, i64, double, double, double, double, i64);
MTLX_TRUNK_INSTANTIATE(double)
MTLX_TRUNK_INSTANTIATE(float)
#undef MTLX_TRUNK_INSTANTIATE

}  // namespace cpu
}  // namespace mtlx
