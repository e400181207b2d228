// Shared-trunk networks on the CPU: batched forward and backward passes of every task.
//
// Layer products go to the register-tiled GEMM (tile_gemm.cpp; BLAS on CPUs without AVX2);
// activations, losses and bias sums are loops over fixed chunks of rows, summed in chunk order, so
// that the result does not depend on the number of threads.
#include "mtlx/trunk.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "isa_kernels.hpp"
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
  if (n_threads <= 1 || n_chunks < 2 || rows * width < kMinParallelElements) {
    // On the calling thread, without entering an OpenMP region: even a serialized one costs about
    // a microsecond, and a minibatch of school's 139 tasks made hundreds of such calls.
    for (i64 c = 0; c < n_chunks; ++c) f(c, c * kChunkRows, std::min(rows, (c + 1) * kChunkRows));
    return;
  }
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (i64 c = 0; c < n_chunks; ++c) f(c, c * kChunkRows, std::min(rows, (c + 1) * kChunkRows));
}

// f(i) for i in [0, n), on n_threads threads taking indices as they finish (schedule dynamic: the
// items may differ in size, as ragged tasks do). An exception may not leave an OpenMP region: the
// first one is kept and raised after it.
template <class F>
void for_each_index(i64 n, int n_threads, F&& f) {
  if (n_threads <= 1 || n < 2) {
    for (i64 i = 0; i < n; ++i) f(i);
    return;
  }
  std::exception_ptr failure;
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
  for (i64 i = 0; i < n; ++i) {
    try {
      f(i);
    } catch (...) {
#pragma omp critical(mtlx_trunk_for_each_index)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

// Whether the tasks read disjoint row ranges of the N rows, in order (stacked tasks): then each
// writes only its own rows of the representation's gradient.
inline bool task_rows_disjoint(const TrunkTasks& tasks, i64 N) {
  i64 end = 0;
  for (i64 t = 0; t < tasks.T; ++t) {
    if (tasks.row_begin[t] < end || tasks.row_end[t] < tasks.row_begin[t]) return false;
    end = tasks.row_end[t];
  }
  return end <= N;
}

// Zeroed partial sums of row chunks: on the stack when few (a task's rows in a minibatch: one
// chunk), so that per-task calls allocate nothing.
class ChunkSums {
 public:
  explicit ChunkSums(i64 n) : n_(n) {
    if (n_ > kInline)
      heap_.assign(static_cast<std::size_t>(n_), 0.0);
    else
      std::fill(inline_, inline_ + n_, 0.0);
  }
  double* data() { return n_ > kInline ? heap_.data() : inline_; }
  double& operator[](i64 i) { return data()[i]; }
  double* begin() { return data(); }
  double* end() { return data() + n_; }

 private:
  static constexpr i64 kInline = 256;
  i64 n_;
  double inline_[kInline];
  std::vector<double> heap_;
};

// Row-major C (m x n) = alpha op(A) op(B) + beta C: by the register-tiled kernel (tile_gemm.cpp;
// alpha 1, beta 0 or 1, as every product here) on n_threads threads where the CPU has one, else
// through column-major BLAS GEMM on the transposes (threaded as the caller's blas_threads says).
template <class Real>
void gemm_rm(bool trans_a, bool trans_b, i64 m, i64 n, i64 k, Real alpha, const Real* A, i64 lda, const Real* B,
             i64 ldb, Real beta, Real* C, i64 ldc, int n_threads) {
  if (m == 0 || n == 0) return;
  if (alpha == Real(1) && (beta == Real(0) || beta == Real(1)) &&
      tile_gemm<Real>(m, n, k, A, trans_a ? 1 : lda, trans_a ? lda : 1, B, trans_b ? 1 : ldb, trans_b ? ldb : 1,
                      beta == Real(1), C, ldc, n_threads))
    return;
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

// The activation loops, inlined into each compiled variant below (a lambda would be compiled
// once, for the baseline, and called from every variant).
template <class Act, class Real>
inline __attribute__((always_inline)) void activate_loop(Real* Z, i64 lo, i64 hi, i64 n, i64 ld, const Real* b) {
  for (i64 i = lo; i < hi; ++i) {
    Real* __restrict z = Z + i * ld;  // (a row of the layer never overlaps its biases)
    const Real* __restrict bias = b;
    for (i64 j = 0; j < n; ++j) z[j] = Act::value(static_cast<Real>(z[j] + bias[j]));
  }
}

template <class Act, class Real>
inline __attribute__((always_inline)) void deactivate_loop(Real* __restrict dA, const Real* __restrict A, i64 lo,
                                                           i64 hi) {
  for (i64 i = lo; i < hi; ++i) dA[i] *= Act::deriv_from_output(A[i]);
}

// Rows [lo, hi) of Z (leading dimension ld) <- act(Z + b); compiled per vector width (the tanh's
// exp and division run 2 lanes wide in the SSE2 baseline, 8 with AVX-512).
template <class Real>
MTLX_CLONES void activate_rows(Real* Z, i64 lo, i64 hi, i64 n, i64 ld, const Real* b, Activation act) {
  switch (act) {
    case Activation::relu:
      return activate_loop<ReluActivation>(Z, lo, hi, n, ld, b);
    case Activation::tanh:
      return activate_loop<TanhActivation>(Z, lo, hi, n, ld, b);
    case Activation::identity:
    default:
      return activate_loop<IdentityActivation>(Z, lo, hi, n, ld, b);
  }
}

// dA[lo, hi) <- dA * act'(A), contiguous entries; compiled per vector width.
template <class Real>
MTLX_CLONES void deactivate_entries(Real* dA, const Real* A, i64 lo, i64 hi, Activation act) {
  switch (act) {
    case Activation::relu:
      return deactivate_loop<ReluActivation>(dA, A, lo, hi);
    case Activation::tanh:
      return deactivate_loop<TanhActivation>(dA, A, lo, hi);
    case Activation::identity:
    default:
      return deactivate_loop<IdentityActivation>(dA, A, lo, hi);
  }
}

// Z (rows x n, leading dimension ld) <- act(Z + b).
template <class Real>
void bias_activate(Real* Z, i64 rows, i64 n, i64 ld, const Real* b, Activation act, int n_threads) {
  for_row_chunks(rows, n, n_threads, [&](i64, i64 lo, i64 hi) { activate_rows(Z, lo, hi, n, ld, b, act); });
}

// dA (rows x n) <- dA * act'(A): the gradient with respect to the pre-activations.
template <class Real>
void activation_backward(Real* dA, const Real* A, i64 rows, i64 n, Activation act, int n_threads) {
  if (act == Activation::identity) return;
  for_row_chunks(rows, n, n_threads, [&](i64, i64 lo, i64 hi) { deactivate_entries(dA, A, lo * n, hi * n, act); });
}

// p[j] += D[i, j] over rows [lo, hi); compiled per vector width.
template <class Real>
MTLX_CLONES void add_rows(const Real* __restrict D, i64 lo, i64 hi, i64 n, i64 ld, double* __restrict p) {
  for (i64 i = lo; i < hi; ++i) {
    for (i64 j = 0; j < n; ++j) p[j] += static_cast<double>(D[i * ld + j]);
  }
}

// partials[c * n + j] += the sum over chunk c's rows of D[i, j] (rows x n, leading dimension ld).
template <class Real>
void chunk_column_sums(const Real* D, i64 rows, i64 n, i64 ld, double* partials, int n_threads) {
  for_row_chunks(rows, n, n_threads, [&](i64 c, i64 lo, i64 hi) { add_rows(D, lo, hi, n, ld, partials + c * n); });
}

// out[j] = sum_c partials[c * n + j], the chunks in order.
template <class Real>
void sum_chunks(const double* partials, i64 n_chunks, i64 n, Real* out) {
  for (i64 j = 0; j < n; ++j) {
    double s = 0.0;
    for (i64 c = 0; c < n_chunks; ++c) s += partials[c * n + j];
    out[j] = static_cast<Real>(s);
  }
}

// out[j] = sum_i D[i, j] (rows x n, leading dimension ld): chunk partials in double, summed in order.
template <class Real>
void column_sums(const Real* D, i64 rows, i64 n, i64 ld, Real* out, int n_threads) {
  const i64 n_chunks = n_chunks_of(rows);
  ChunkSums partial(n_chunks * n);
  chunk_column_sums(D, rows, n, ld, partial.data(), n_threads);
  sum_chunks(partial.data(), n_chunks, n, out);
}

// One entry of a one-output head of weight w: adds w f(y, z) to sum and, dz not null, writes
// scale * w * f'(y, z) to *dz. A missing label (w = 0: no loss, no gradient, its target may be
// anything) is a select, not a branch, so that the row loops around it can vectorize.
template <class Loss, class Real>
inline __attribute__((always_inline)) void head_entry(const Loss& f, double w, Real y, Real z, double scale,
                                                      double& sum, Real* dz) {
  const bool missing = w == 0.0;
  sum += missing ? 0.0 : w * f.value(y, z);
  if (dz != nullptr) *dz = missing ? Real(0) : static_cast<Real>(scale * w * static_cast<double>(f.deriv(y, z)));
}

// Rows [lo, hi) of a one-output head: the summed weighted loss f, and with dO not null scale * w *
// f' into dO. One loss type per call (the dispatch outside the row loop, which it had cost as
// much as the loss), compiled per vector width.
template <class Loss, class Real>
inline __attribute__((always_inline)) double scalar_head_rows(const Loss& f, const Real* O, Real* dO, i64 ld, i64 lo,
                                                              i64 hi, i64 first_row, const TrunkTargets<Real>& tg,
                                                              i64 col, double scale) {
  double s = 0.0;
  for (i64 i = lo; i < hi; ++i) {
    const i64 entry = (first_row + i) * tg.n_cols + col;
    head_entry(f, static_cast<double>(tg.weights[entry]), tg.values[entry], O[i * ld], scale, s,
               dO == nullptr ? nullptr : dO + i * ld);
  }
  return s;
}

template <class Real>
MTLX_CLONES double scalar_head_loss(const Real* O, Real* dO, i64 ld, i64 lo, i64 hi, i64 first_row,
                                    const TrunkTargets<Real>& tg, i64 col, LossKind kind, double param, double scale) {
  return visit_loss(kind, param,
                    [&](auto f) { return scalar_head_rows(f, O, dO, ld, lo, hi, first_row, tg, col, scale); });
}

// Every task a one-output head of one loss, task t on target column t of T (one X shared by every
// task, the usual case): rows [lo, hi) of O (T per row) with each task's sum into sums[t] and,
// dO not null, scale[t] * w * f' into dO. The loop runs along a row (contiguous in O, the targets
// and the weights: it vectorizes), each task's sum over the rows in order: the bits of the loop
// per task (scalar_head_rows), which read one strided column at a time.
template <class Loss, class Real>
inline __attribute__((always_inline)) void uniform_heads_rows(const Loss& f, const Real* __restrict O,
                                                              Real* __restrict dO, i64 T, i64 lo, i64 hi, i64 first_row,
                                                              const TrunkTargets<Real>& tg,
                                                              const double* __restrict scale, double* __restrict sums) {
  for (i64 i = lo; i < hi; ++i) {
    const Real* __restrict w_row = tg.weights + (first_row + i) * T;
    const Real* __restrict y_row = tg.values + (first_row + i) * T;
    const Real* __restrict z_row = O + i * T;
    for (i64 t = 0; t < T; ++t) {
      head_entry(f, static_cast<double>(w_row[t]), y_row[t], z_row[t], scale[t], sums[t],
                 dO == nullptr ? nullptr : dO + i * T + t);
    }
  }
}

template <class Real>
MTLX_CLONES void uniform_heads_loss(const Real* O, Real* dO, i64 T, i64 lo, i64 hi, i64 first_row,
                                    const TrunkTargets<Real>& tg, LossKind kind, double param, const double* scale,
                                    double* sums) {
  visit_loss(kind, param, [&](auto f) {
    uniform_heads_rows(f, O, dO, T, lo, hi, first_row, tg, scale, sums);
    return 0;
  });
}

// Whether uniform_heads_loss applies: one-output heads of one loss, task t on target column t of T.
inline bool heads_are_uniform(const TrunkTasks& tasks, i64 n_cols, const i64* target_col) {
  if (n_cols != tasks.T) return false;
  for (i64 t = 0; t < tasks.T; ++t) {
    if (tasks.out_dims[t] != 1 || target_col[t] != t || tasks.losses[t] != tasks.losses[0] ||
        tasks.loss_params[t] != tasks.loss_params[0])
      return false;
  }
  return true;
}

// The summed weighted loss of a head's rows [lo, hi) of outputs O (K per row, leading dimension
// ld; targets from row first_row + i); with dO not null, dO (same leading dimension) gets
// scale * w * dL/dO.
template <class Real>
double head_loss_rows(const Real* O, Real* dO, i64 ld, i64 lo, i64 hi, i64 K, i64 first_row,
                      const TrunkTargets<Real>& tg, i64 col, LossKind kind, double param, double scale) {
  if (K == 1) return scalar_head_loss(O, dO, ld, lo, hi, first_row, tg, col, kind, param, scale);
  double s = 0.0;
  for (i64 i = lo; i < hi; ++i) {
    const i64 entry = (first_row + i) * tg.n_cols + col;
    const double w = static_cast<double>(tg.weights[entry]);
    Real* dz = dO == nullptr ? nullptr : dO + i * ld;
    if (w == 0.0) {  // a missing label
      if (dz != nullptr) std::fill(dz, dz + K, Real(0));
      continue;
    }
    s += w * SoftmaxLoss::value_and_deriv(O + i * ld, static_cast<int>(K), static_cast<int>(tg.values[entry]),
                                          scale * w, dz);
  }
  return s;
}

// Task t's summed weighted loss over its m rows of outputs O (leading dimension ld): the sums of
// chunks of rows, added in order.
template <class Real>
double head_loss(const Real* O, Real* dO, i64 ld, i64 m, i64 K, i64 first_row, const TrunkTargets<Real>& tg, i64 col,
                 LossKind kind, double param, double scale, int n_threads) {
  const i64 n_chunks = n_chunks_of(m);
  ChunkSums partial(n_chunks);
  for_row_chunks(m, K, n_threads, [&](i64 c, i64 lo, i64 hi) {
    partial[c] = head_loss_rows(O, dO, ld, lo, hi, K, first_row, tg, col, kind, param, scale);
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

// Buffers kept from call to call (per thread, grow-only): a fit evaluates the same shapes thousands
// of times, and fresh layer-sized allocations cost page faults and zeroing (a quarter of a
// school-sized evaluation). Slots name the buffers of one call; no two live buffers share a slot.
enum Slot : std::size_t {
  kDH,        // dF/d(representation), N x h
  kOutputs,   // head outputs
  kDOutputs,  // their gradient
  kHeads,     // all heads side by side (h x sum K) and their biases
  kHeadBiases,
  kHeadsT,  // the heads transposed (sum K x h)
  kDHeads,
  kDHeadBiases,
  kDelta,  // trunk backward: the current layer's delta, and the one below
  kBelow,
  kTaskDelta,  // task layers backward
  kTaskBelow,
  kBatchX,  // a minibatch: its rows, targets and weights (adam_epoch)
  kBatchTargets,
  kBatchWeights,
  kTrunkActs,                   // + l: the trunk's activations
  kTaskActs = kTrunkActs + 64,  // + k: a task's own layers
};

template <class Real>
Real* scratch(std::size_t slot, i64 n) {
  thread_local std::vector<std::vector<Real>> pool;
  // (growing the pool moves the buffers, never their storage: pointers handed out stay valid)
  if (pool.size() <= slot) pool.resize(slot + 1);
  if (static_cast<i64>(pool[slot].size()) < n) pool[slot].resize(static_cast<std::size_t>(n));
  return pool[slot].data();
}

template <class Real>
Real* zeroed(std::size_t slot, i64 n) {
  Real* p = scratch<Real>(slot, n);
  std::fill(p, p + n, Real(0));
  return p;
}

// The forward pass of the trunk: acts[l] (N x n_{l+1}) for every layer l.
template <class Real>
std::vector<Real*> trunk_forward(const Real* X, i64 N, const TrunkShape& s, const Layout& lay, const Real* params,
                                 int n_threads) {
  std::vector<Real*> acts(s.n_trunk_layers);
  const Real* in = X;
  for (int l = 0; l < s.n_trunk_layers; ++l) {
    const i64 n_in = s.trunk_sizes[l], n_out = s.trunk_sizes[l + 1];
    acts[l] = scratch<Real>(kTrunkActs + l, N * n_out);
    gemm_rm<Real>(false, false, N, n_out, n_in, Real(1), in, n_in, params + lay.trunk_w[l], n_out, Real(0), acts[l],
                  n_out, n_threads);
    bias_activate(acts[l], N, n_out, n_out, params + lay.trunk_b[l], s.activation, n_threads);
    in = acts[l];
  }
  return acts;
}

// The task layers of task t on its m rows of the representation H (leading dimension ld_h):
// returns their activations, one m x g_k buffer per layer (reused by the next task).
template <class Real>
std::vector<Real*> task_forward(const Real* H, i64 ld_h, i64 m, const TrunkShape& s, const Layout& lay,
                                const Real* block, int n_threads) {
  std::vector<Real*> acts(s.n_task_layers);
  const Real* in = H;
  i64 n_in = s.trunk_sizes[s.n_trunk_layers], ld_in = ld_h;
  for (int k = 0; k < s.n_task_layers; ++k) {
    const i64 n_out = s.task_sizes[k];
    acts[k] = scratch<Real>(kTaskActs + k, m * n_out);
    gemm_rm<Real>(false, false, m, n_out, n_in, Real(1), in, ld_in, block + lay.rel_w[k], n_out, Real(0), acts[k],
                  n_out, n_threads);
    bias_activate(acts[k], m, n_out, n_out, block + lay.rel_b[k], s.activation, n_threads);
    in = acts[k];
    n_in = n_out;
    ld_in = n_out;
  }
  return acts;
}

// Out (m x K, leading dimension ld) = G A + a: a head's outputs.
template <class Real>
void head_forward(const Real* G, i64 ld_g, i64 m, i64 g, i64 K, const Real* A, const Real* a, Real* out, i64 ld,
                  int n_threads) {
  gemm_rm<Real>(false, false, m, K, g, Real(1), G, ld_g, A, K, Real(0), out, ld, n_threads);
  for_row_chunks(m, K, n_threads, [&](i64, i64 lo, i64 hi) {
    for (i64 i = lo; i < hi; ++i) {
      for (i64 k = 0; k < K; ++k) out[i * ld + k] += a[k];
    }
  });
}

bool heads_share_all_rows(const TrunkShape& s, const TrunkTasks& tasks) {
  return tasks.shared_rows && s.n_task_layers == 0;
}

// O (m x K) = H At' + a: each output a dot product of a row of H (m x h) and a row of At (K x h),
// summed in 16 lanes in a fixed order (vectorized; a single running sum is a chain of dependent
// additions, 4 cycles each), the lanes then added pairwise.
template <class Real>
MTLX_CLONES void head_outputs(const Real* __restrict H, i64 m, i64 h, i64 K, const Real* __restrict At,
                              const Real* __restrict a, Real* __restrict O) {
  constexpr i64 kLanes = 16;
  for (i64 i = 0; i < m; ++i) {
    const Real* __restrict x = H + i * h;
    for (i64 k = 0; k < K; ++k) {
      const Real* __restrict w = At + k * h;
      Real lanes[kLanes] = {};
      i64 j = 0;
      for (; j + kLanes <= h; j += kLanes) {
        for (i64 l = 0; l < kLanes; ++l) lanes[l] += x[j + l] * w[j + l];
      }
      for (i64 l = 0; j + l < h; ++l) lanes[l] += x[j + l] * w[j + l];
      for (i64 width = kLanes / 2; width > 0; width /= 2) {
        for (i64 l = 0; l < width; ++l) lanes[l] += lanes[l + width];
      }
      O[i * K + k] = a[k] + lanes[0];
    }
  }
}

// The head's gradient gAt (K x h, added) and ga (K, added), and the representation's dH (m x h,
// added), from the outputs' gradient dO (m x K).
template <class Real>
MTLX_CLONES void head_backward(const Real* __restrict H, const Real* __restrict dO, i64 m, i64 h, i64 K,
                               const Real* __restrict At, Real* __restrict gAt, Real* __restrict ga,
                               Real* __restrict dH) {
  for (i64 i = 0; i < m; ++i) {
    const Real* __restrict x = H + i * h;
    Real* __restrict dx = dH + i * h;
    for (i64 k = 0; k < K; ++k) {
      const Real d = dO[i * K + k];
      if (d == Real(0)) continue;  // (a missing label)
      ga[k] += d;
      Real* __restrict g = gAt + k * h;
      const Real* __restrict w = At + k * h;
      for (i64 j = 0; j < h; ++j) {
        g[j] += x[j] * d;
        dx[j] += d * w[j];
      }
    }
  }
}

// A task's linear head on its m rows of the representation H (m x h): outputs, loss and, with
// ghead not null, the head's gradient into ghead (h x K, then K) and the representation's into
// dH (added). Row loops rather than BLAS: with many tasks a minibatch holds a few rows of each,
// and a library call per task and product cost more than the work (school, 139 tasks: 3x).
template <class Real>
double linear_head(const Real* H, i64 m, i64 h, i64 K, const Real* head, Real* ghead, Real* dH, i64 first_row,
                   const TrunkTargets<Real>& tg, i64 col, LossKind kind, double param, double scale, int n_threads) {
  const Real* A = head;
  const Real* a = head + h * K;
  // The loops read the head as K rows of h (its transpose; the head itself when K = 1).
  const Real* At = A;
  if (K > 1) {
    Real* t = scratch<Real>(kHeads, K * h);
    for (i64 j = 0; j < h; ++j) {
      for (i64 k = 0; k < K; ++k) t[k * h + j] = A[j * K + k];
    }
    At = t;
  }
  Real* O = scratch<Real>(kOutputs, m * K);
  head_outputs(H, m, h, K, At, a, O);
  Real* dO = ghead == nullptr ? nullptr : scratch<Real>(kDOutputs, m * K);
  const double loss = head_loss(O, dO, K, m, K, first_row, tg, col, kind, param, scale, n_threads);
  if (ghead == nullptr) return loss;
  Real* gA = ghead;
  Real* ga = ghead + h * K;
  std::fill(ghead, ghead + h * K + K, Real(0));
  Real* gAt = K > 1 ? zeroed<Real>(kDHeads, K * h) : gA;
  head_backward(H, dO, m, h, K, At, gAt, ga, dH);
  if (K > 1) {
    for (i64 j = 0; j < h; ++j) {
      for (i64 k = 0; k < K; ++k) gA[j * K + k] = gAt[k * h + j];
    }
  }
  return loss;
}

// Down through the trunk from delta = dF/d(representation) on rows [first_row, first_row + N)
// (overwritten; the layers below use the slots kBelow and kDelta in turn): the trunk's gradient
// into grad. A block of a larger pass (bias_partials not null) adds its weight gradients to
// grad's (accumulate) and its chunks' bias sums to bias_partials[l] from chunk first_chunk on.
template <class Real>
void trunk_backward(const Real* X, const std::vector<Real*>& acts, i64 first_row, i64 N, const TrunkShape& s,
                    const Layout& lay, const Real* params, Real* delta, Real* grad, int n_threads,
                    bool accumulate = false, double* const* bias_partials = nullptr, i64 first_chunk = 0) {
  std::size_t slot = kDelta;  // (so that the first layer below goes to kBelow)
  for (int l = s.n_trunk_layers - 1; l >= 0; --l) {
    const i64 n_in = s.trunk_sizes[l], n_out = s.trunk_sizes[l + 1];
    activation_backward(delta, acts[l] + first_row * n_out, N, n_out, s.activation, n_threads);
    const Real* in = l ? acts[l - 1] + first_row * n_in : X;
    gemm_rm<Real>(true, false, n_in, n_out, N, Real(1), in, n_in, delta, n_out, Real(accumulate ? 1 : 0),
                  grad + lay.trunk_w[l], n_out, n_threads);
    if (bias_partials != nullptr)
      chunk_column_sums(delta, N, n_out, n_out, bias_partials[l] + first_chunk * n_out, n_threads);
    else
      column_sums(delta, N, n_out, n_out, grad + lay.trunk_b[l], n_threads);
    if (l) {  // the layer below's delta goes to the other of the two slots
      slot = slot == kDelta ? kBelow : kDelta;
      Real* below = scratch<Real>(slot, N * n_in);
      gemm_rm<Real>(false, true, N, n_in, n_out, Real(1), delta, n_out, params + lay.trunk_w[l], n_out, Real(0), below,
                    n_in, n_threads);
      delta = below;
    }
  }
}

// Rows per block of the shared-input evaluation (trunk.hpp): a multiple of kChunkRows, so that its
// chunks, and every sum taken chunk by chunk, are those of one pass over all the rows.
constexpr i64 kBlockRows = kTrunkBlockRows;
static_assert(kBlockRows % kChunkRows == 0, "a block holds whole chunks");

// Runs of blocks summed apart (the threads' shares of a shared-input pass; a constant, so that the
// sums are the same for every number of threads).
constexpr i64 kRuns = 8;

// One input for every task and linear heads (all heads in one product, H [A_1 ... A_T]): F, the
// tasks' losses and (grad not null) the gradient, the rows in blocks of kBlockRows. Unblocked, a
// pass over 100,000 rows spent more time moving its N x width buffers through memory (and
// zeroing them, inside BLAS) than in the products.
template <class Real>
double shared_heads_loss_grad(const Real* X, i64 N, const TrunkShape& s, const Layout& lay, const TrunkTasks& tasks,
                              const TrunkTargets<Real>& tg, const double* task_scale, const Real* params, Real* grad,
                              double* task_loss, int n_threads) {
  const int L = s.n_trunk_layers;
  const i64 T = tasks.T, d = s.trunk_sizes[0], h = s.trunk_sizes[L];
  std::vector<i64> col(T + 1, 0);
  for (i64 t = 0; t < T; ++t) col[t + 1] = col[t] + tasks.out_dims[t];
  const i64 SK = col[T];
  // All heads side by side (h x SK), their biases, and the heads transposed (SK x h): dH = dO A'
  // then reads its B in place, where a transposed A was copied into panels for every block.
  Real* A = scratch<Real>(kHeads, h * SK);
  Real* a = scratch<Real>(kHeadBiases, SK);
  Real* At = scratch<Real>(kHeadsT, SK * h);
  for (i64 t = 0; t < T; ++t) {
    const Real* head = params + lay.task_start[t] + lay.rel_head;
    const i64 K = tasks.out_dims[t];
    for (i64 r = 0; r < h; ++r) {
      std::copy(head + r * K, head + (r + 1) * K, A + r * SK + col[t]);
      for (i64 k = 0; k < K; ++k) At[(col[t] + k) * h + r] = head[r * K + k];
    }
    std::copy(head + h * K, head + h * K + K, a + col[t]);
  }
  const bool uniform = T > 0 && heads_are_uniform(tasks, tg.n_cols, tg.target_col);
  // Chunk partials (the losses', the bias gradients'), summed in chunk order at the end.
  const i64 n_chunks = n_chunks_of(N);
  std::vector<double> loss_part(static_cast<std::size_t>(n_chunks * T), 0.0);
  std::vector<double> head_bias_part(grad == nullptr ? 0 : static_cast<std::size_t>(n_chunks * SK), 0.0);
  std::vector<std::vector<double>> trunk_bias_part(grad == nullptr ? 0 : L);
  std::vector<double*> trunk_bias_ptr;
  for (auto& part : trunk_bias_part) {
    const i64 width = s.trunk_sizes[trunk_bias_ptr.size() + 1];
    part.assign(static_cast<std::size_t>(n_chunks * width), 0.0);
    trunk_bias_ptr.push_back(part.data());
  }
  // The heads' gradient, transposed (SK x h): dO' H has h columns where H' dO had SK (20 heads
  // fill a 32-float tile to 62%, 128 units fill four); the same products in the same order.
  Real* dA = grad == nullptr ? nullptr : scratch<Real>(kDHeads, h * SK);
  if (grad != nullptr && N == 0) {  // no block below writes them: empty sums
    std::fill(grad, grad + lay.total, Real(0));
    std::fill(dA, dA + h * SK, Real(0));
  }
  // The blocks in kRuns contiguous runs, each summing its products' gradients on its own (the
  // first run into grad and dA), the runs added in order at the end: threads take whole runs,
  // and the sums do not depend on how many there are.
  const i64 n_blocks = (N + kBlockRows - 1) / kBlockRows, n_runs = std::min(kRuns, n_blocks);
  const i64 n_trunk = lay.task_start.empty() ? lay.total : lay.task_start[0];
  std::vector<Real> run_grads(grad == nullptr ? 0
                                              : static_cast<std::size_t>(std::max<i64>(n_runs - 1, 0)) *
                                                    static_cast<std::size_t>(n_trunk + h * SK));
  const auto run = [&](i64 k) {
    Real* g_trunk = grad;
    Real* g_heads = dA;
    if (grad != nullptr && k > 0) {
      g_trunk = run_grads.data() + (k - 1) * (n_trunk + h * SK);
      g_heads = g_trunk + n_trunk;
    }
    const i64 first = k * n_blocks / n_runs, last = (k + 1) * n_blocks / n_runs;
    for (i64 blk = first; blk < last; ++blk) {
      const i64 r0 = blk * kBlockRows, B = std::min(kBlockRows, N - r0), c0 = r0 / kChunkRows;
      const auto acts = trunk_forward(X + r0 * d, B, s, lay, params, 1);
      const Real* H = acts[L - 1];
      Real* O = scratch<Real>(kOutputs, B * SK);
      Real* dO = grad == nullptr ? nullptr : scratch<Real>(kDOutputs, B * SK);
      head_forward(H, h, B, h, SK, A, a, O, SK, 1);
      for_row_chunks(B, SK, 1, [&](i64 c, i64 lo, i64 hi) {
        if (uniform) {
          uniform_heads_loss(O, dO, T, lo, hi, r0, tg, static_cast<LossKind>(tasks.losses[0]), tasks.loss_params[0],
                             task_scale, loss_part.data() + (c0 + c) * T);
          return;
        }
        for (i64 t = 0; t < T; ++t) {
          loss_part[(c0 + c) * T + t] = head_loss_rows(
              O + col[t], dO == nullptr ? nullptr : dO + col[t], SK, lo, hi, tasks.out_dims[t], r0, tg,
              tg.target_col[t], static_cast<LossKind>(tasks.losses[t]), tasks.loss_params[t], task_scale[t]);
        }
      });
      if (grad == nullptr) continue;
      const bool accumulate = blk > first;
      gemm_rm<Real>(true, false, SK, h, B, Real(1), dO, SK, H, h, Real(accumulate ? 1 : 0), g_heads, h, 1);
      chunk_column_sums(dO, B, SK, SK, head_bias_part.data() + c0 * SK, 1);
      Real* dH = scratch<Real>(kDH, B * h);
      gemm_rm<Real>(false, false, B, h, SK, Real(1), dO, SK, At, h, Real(0), dH, h, 1);
      trunk_backward(X + r0 * d, acts, 0, B, s, lay, params, dH, g_trunk, 1, accumulate, trunk_bias_ptr.data(), c0);
    }
  };
  // (Each run's products on its own thread; BLAS, where used, is limited to one by the caller,
  // TrunkObjective.)
  for_each_index(n_runs, n_threads, run);
  if (grad != nullptr) {
    for (i64 k = 1; k < n_runs; ++k) {
      const Real* g = run_grads.data() + (k - 1) * (n_trunk + h * SK);
      for (int l = 0; l < L; ++l) {
        const i64 size = s.trunk_sizes[l] * s.trunk_sizes[l + 1];
        Real* into = grad + lay.trunk_w[l];
        const Real* from = g + lay.trunk_w[l];
        for (i64 i = 0; i < size; ++i) into[i] += from[i];
      }
      for (i64 i = 0; i < h * SK; ++i) dA[i] += g[n_trunk + i];
    }
  }
  double value = 0.0;
  for (i64 t = 0; t < T; ++t) {
    double total = 0.0;
    for (i64 c = 0; c < n_chunks; ++c) total += loss_part[c * T + t];
    task_loss[t] = total;
    value += task_scale[t] * total;
  }
  if (grad == nullptr) return value;
  for (int l = 0; l < L; ++l) sum_chunks(trunk_bias_ptr[l], n_chunks, s.trunk_sizes[l + 1], grad + lay.trunk_b[l]);
  Real* da = scratch<Real>(kDHeadBiases, SK);
  sum_chunks(head_bias_part.data(), n_chunks, SK, da);
  for (i64 t = 0; t < T; ++t) {
    Real* head = grad + lay.task_start[t] + lay.rel_head;
    const i64 K = tasks.out_dims[t];
    for (i64 r = 0; r < h; ++r) {
      for (i64 k = 0; k < K; ++k) head[r * K + k] = dA[(col[t] + k) * h + r];
    }
    std::copy(da + col[t], da + col[t] + K, head + h * K);
  }
  return value;
}

}  // namespace

template <class Real>
double trunk_loss_grad(const Real* X, i64 N, const TrunkShape& s, const TrunkTasks& tasks, const TrunkTargets<Real>& tg,
                       const double* task_scale, const Real* params, Real* grad, double* task_loss, int n_threads,
                       Real* task_trunk_grad) {
  const Layout lay(s, tasks);
  if (heads_share_all_rows(s, tasks)) {
    if (task_trunk_grad != nullptr)
      throw std::invalid_argument("per-task shares of the trunk's gradient need tasks with rows of their own");
    return shared_heads_loss_grad(X, N, s, lay, tasks, tg, task_scale, params, grad, task_loss, n_threads);
  }
  const int L = s.n_trunk_layers;
  const i64 h = s.trunk_sizes[L];
  const auto acts = trunk_forward(X, N, s, lay, params, n_threads);
  const Real* H = acts[L - 1];
  // The tasks side by side, each on one thread, where
  // - their rows are disjoint (stacked tasks: each writes its own rows of dH);
  // - the pass is large enough to pay for the threads (a minibatch's few rows per task are not:
  //   they stay on the calling thread, each task's products threaded as before);
  // - no task holds more than a thread's share of the rows (one task of most rows would run on
  //   one thread where its products had all of them);
  // - the products run in tile_gemm (BLAS, where it runs them, is threaded n_threads ways by the
  //   caller: one task per thread would run n_threads^2 threads).
  // Every task's arithmetic is the same either way, and F adds the tasks in order. The largest
  // tasks are handed out first, so that a large one does not start last.
  bool side_by_side = n_threads > 1 && tasks.T > 1 && N * h >= kMinParallelElements && task_rows_disjoint(tasks, N) &&
                      cpu::has_tile_gemm();
  for (i64 t = 0; side_by_side && t < tasks.T; ++t) {
    if ((tasks.row_end[t] - tasks.row_begin[t]) * n_threads > N) side_by_side = false;
  }
  std::vector<i64> by_size;
  if (side_by_side) {
    by_size.resize(static_cast<std::size_t>(tasks.T));
    for (i64 t = 0; t < tasks.T; ++t) by_size[t] = t;
    std::stable_sort(by_size.begin(), by_size.end(), [&](i64 a, i64 b) {
      return tasks.row_end[a] - tasks.row_begin[a] > tasks.row_end[b] - tasks.row_begin[b];
    });
  }
  // The task of the i-th item handed out.
  const auto task_of = [&](i64 i) { return side_by_side ? by_size[i] : i; };
  const int threads = side_by_side ? 1 : n_threads;  // within one task
  Real* dH = nullptr;
  if (grad != nullptr) {
    // Tasks on row ranges add into a zeroed buffer; side by side, each task zeroes its own rows
    // (in its thread's cache), and the rows of no task are zeroed here.
    dH = side_by_side ? scratch<Real>(kDH, N * h) : zeroed<Real>(kDH, N * h);
    if (side_by_side) {
      i64 covered = 0;
      for (i64 t = 0; t <= tasks.T; ++t) {
        const i64 next = t < tasks.T ? tasks.row_begin[t] : N;
        std::fill(dH + covered * h, dH + next * h, Real(0));
        if (t < tasks.T) covered = tasks.row_end[t];
      }
    }
  }
  const auto task_pass = [&](i64 i) {
    const i64 t = task_of(i);
    const i64 r0 = tasks.row_begin[t];
    if (side_by_side && grad != nullptr) std::fill(dH + r0 * h, dH + tasks.row_end[t] * h, Real(0));
    if (s.n_task_layers == 0) {
      task_loss[t] = linear_head(H + r0 * h, tasks.row_end[t] - r0, h, tasks.out_dims[t], params + lay.task_start[t],
                                 grad == nullptr ? nullptr : grad + lay.task_start[t],
                                 grad == nullptr ? nullptr : dH + r0 * h, r0, tg, tg.target_col[t],
                                 static_cast<LossKind>(tasks.losses[t]), tasks.loss_params[t], task_scale[t], threads);
      return;
    }
    const i64 g_last = s.task_sizes[s.n_task_layers - 1];
    const i64 m = tasks.row_end[t] - r0, K = tasks.out_dims[t];
    const Real* block = params + lay.task_start[t];
    const Real* Ht = H + r0 * h;
    const auto tacts = task_forward(Ht, h, m, s, lay, block, threads);
    const Real* G = s.n_task_layers ? tacts.back() : Ht;
    const i64 ld_g = s.n_task_layers ? g_last : h;
    Real* O = scratch<Real>(kOutputs, m * K);
    Real* dO = grad == nullptr ? nullptr : scratch<Real>(kDOutputs, m * K);
    head_forward(G, ld_g, m, g_last, K, block + lay.rel_head, block + lay.rel_head + g_last * K, O, K, threads);
    task_loss[t] = head_loss(O, dO, K, m, K, r0, tg, tg.target_col[t], static_cast<LossKind>(tasks.losses[t]),
                             tasks.loss_params[t], task_scale[t], threads);
    if (grad == nullptr) return;
    Real* gblock = grad + lay.task_start[t];
    gemm_rm<Real>(true, false, g_last, K, m, Real(1), G, ld_g, dO, K, Real(0), gblock + lay.rel_head, K, threads);
    column_sums(dO, m, K, K, gblock + lay.rel_head + g_last * K, threads);
    // Down through the task layers: delta = dG * act'(G), then dV = G_prev' delta, dG_prev = delta V'.
    // (Without task layers this adds into the representation's gradient: tasks on the same rows add up.)
    std::size_t slot = kTaskDelta;
    Real* delta = s.n_task_layers ? scratch<Real>(slot, m * g_last) : dH + r0 * h;
    gemm_rm<Real>(false, true, m, g_last, K, Real(1), dO, K, block + lay.rel_head, K,
                  s.n_task_layers ? Real(0) : Real(1), delta, s.n_task_layers ? g_last : h, threads);
    for (int k = s.n_task_layers - 1; k >= 0; --k) {
      const i64 n_out = s.task_sizes[k], n_in = k ? s.task_sizes[k - 1] : h;
      activation_backward(delta, tacts[k], m, n_out, s.activation, threads);
      const Real* in = k ? tacts[k - 1] : Ht;
      const i64 ld_in = k ? n_in : h;
      gemm_rm<Real>(true, false, n_in, n_out, m, Real(1), in, ld_in, delta, n_out, Real(0), gblock + lay.rel_w[k],
                    n_out, threads);
      column_sums(delta, m, n_out, n_out, gblock + lay.rel_b[k], threads);
      if (k) {
        slot = slot == kTaskDelta ? kTaskBelow : kTaskDelta;
        Real* below = scratch<Real>(slot, m * n_in);
        gemm_rm<Real>(false, true, m, n_in, n_out, Real(1), delta, n_out, block + lay.rel_w[k], n_out, Real(0), below,
                      n_in, threads);
        delta = below;
      } else {  // the representation's gradient: tasks on the same rows add up
        gemm_rm<Real>(false, true, m, h, n_out, Real(1), delta, n_out, block + lay.rel_w[0], n_out, Real(1),
                      dH + r0 * h, h, threads);
      }
    }
  };
  for_each_index(tasks.T, side_by_side ? n_threads : 1, task_pass);
  double value = 0.0;
  for (i64 t = 0; t < tasks.T; ++t) value += task_scale[t] * task_loss[t];
  if (grad == nullptr) return value;
  if (task_trunk_grad != nullptr) {  // each task's share of the trunk's gradient, from its rows alone
    const i64 n_trunk = lay.task_start.empty() ? lay.total : lay.task_start[0];
    for_each_index(tasks.T, side_by_side ? n_threads : 1, [&](i64 i) {
      const i64 t = task_of(i);
      const i64 r0 = tasks.row_begin[t], m = tasks.row_end[t] - r0;
      trunk_backward(X + r0 * s.trunk_sizes[0], acts, r0, m, s, lay, params, dH + r0 * h, task_trunk_grad + t * n_trunk,
                     threads);
    });
    return value;
  }
  trunk_backward(X, acts, 0, N, s, lay, params, dH, grad, n_threads);
  return value;
}

template <class Real>
void trunk_predict(const Real* X, i64 N, const TrunkShape& s, const TrunkTasks& tasks, const Real* params, Real* out,
                   int n_threads) {
  const Layout lay(s, tasks);
  const i64 h = s.trunk_sizes[s.n_trunk_layers];
  const i64 g_last = s.n_task_layers ? s.task_sizes[s.n_task_layers - 1] : h;
  const auto acts = trunk_forward(X, N, s, lay, params, n_threads);
  i64 SK = 0;
  for (i64 t = 0; t < tasks.T; ++t) SK += tasks.out_dims[t];
  i64 col = 0;
  for (i64 t = 0; t < tasks.T; ++t) {
    const i64 r0 = tasks.row_begin[t], m = tasks.row_end[t] - r0, K = tasks.out_dims[t];
    const Real* block = params + lay.task_start[t];
    const Real* Ht = acts.back() + r0 * h;
    const auto tacts = task_forward(Ht, h, m, s, lay, block, n_threads);
    const Real* G = s.n_task_layers ? tacts.back() : Ht;
    head_forward(G, s.n_task_layers ? g_last : h, m, g_last, K, block + lay.rel_head, block + lay.rel_head + g_last * K,
                 out + r0 * SK + col, SK, n_threads);
    col += K;
  }
}

template <class Real>
void trunk_representation(const Real* X, i64 N, const TrunkShape& s, const Real* params, Real* out, int n_threads) {
  const TrunkTasks none{0, nullptr, nullptr, nullptr, nullptr, nullptr};
  const Layout lay(s, none);
  const auto acts = trunk_forward(X, N, s, lay, params, n_threads);
  std::copy(acts.back(), acts.back() + N * s.trunk_sizes[s.n_trunk_layers], out);
}

// True when every x[0..n) is finite: no entry with every exponent bit set (inf, NaN). An OR of
// integer tests vectorizes; a floating-point test per entry with an early exit ran scalar, the
// largest part of a 256-row batch's bookkeeping.
template <class G>
MTLX_CLONES bool all_finite(const G* __restrict x, i64 n) {
  using Bits = std::conditional_t<sizeof(G) == 8, std::uint64_t, std::uint32_t>;
  constexpr Bits kExponent = static_cast<Bits>(sizeof(G) == 8 ? 0x7ff0000000000000ULL : 0x7f800000ULL);
  Bits bad = 0;
  for (i64 i = 0; i < n; ++i) {
    Bits b;
    std::memcpy(&b, x + i, sizeof b);
    bad |= static_cast<Bits>((b & kExponent) == kExponent);
  }
  return bad == 0;
}

// Requests the cache lines of row `row` of src (width columns).
template <class Real>
inline void prefetch_row(const Real* src, i64 width, i64 row) {
  constexpr i64 kLine = 64 / static_cast<i64>(sizeof(Real));
  const Real* p = src + row * width;
  for (i64 j = 0; j < width; j += kLine) __builtin_prefetch(p + j);
  if (width > 0) __builtin_prefetch(p + width - 1);
}

// A minibatch's rows rows[0..n) of X (d columns), the targets and the weights (n_cols each),
// gathered into Xb, Yb, Wb. The rows are random draws from the whole data: each row's lines are
// requested kAhead rows before it is copied, in all three arrays at once, so that their misses
// overlap (one at a time they were a tenth of a 256-row batch; 3x faster measured in isolation).
template <class Real>
void gather_batch(const Real* X, i64 d, const Real* targets, const Real* weights, i64 n_cols, const i64* rows, i64 n,
                  Real* Xb, Real* Yb, Real* Wb) {
  constexpr i64 kAhead = 8;
  const auto request = [&](i64 row) {
    prefetch_row(X, d, row);
    prefetch_row(targets, n_cols, row);
    prefetch_row(weights, n_cols, row);
  };
  for (i64 i = 0; i < std::min(n, kAhead); ++i) request(rows[i]);
  for (i64 i = 0; i < n; ++i) {
    if (i + kAhead < n) request(rows[i + kAhead]);
    const i64 row = rows[i];
    std::copy(X + row * d, X + (row + 1) * d, Xb + i * d);
    std::copy(targets + row * n_cols, targets + (row + 1) * n_cols, Yb + i * n_cols);
    std::copy(weights + row * n_cols, weights + (row + 1) * n_cols, Wb + i * n_cols);
  }
}

// Each task's weights over a minibatch's rows scaled to sum to 1 (0 where they sum to 0), and
// present[t] = whether task t has weight in the batch. With one X shared by every task (every
// task on every row), the tasks' columns are summed in one pass over the rows, each column in row
// order (the sums a pass per task would give).
template <class Real>
void normalize_batch_weights(Real* Wb, i64 n_cols, const TrunkTasks& tasks, const i64* begin, const i64* end,
                             const i64* target_col, std::uint8_t* present) {
  const auto inverse_of = [](double total) { return total > 0.0 ? static_cast<Real>(1.0 / total) : Real(0); };
  if (tasks.shared_rows && tasks.T > 0) {
    const i64 n = end[0];
    std::vector<double> total(static_cast<std::size_t>(n_cols), 0.0);
    std::vector<Real> inverse(static_cast<std::size_t>(n_cols), Real(1));
    for (i64 i = 0; i < n; ++i) {
      for (i64 c = 0; c < n_cols; ++c) total[c] += static_cast<double>(Wb[i * n_cols + c]);
    }
    for (i64 t = 0; t < tasks.T; ++t) {
      inverse[target_col[t]] = inverse_of(total[target_col[t]]);
      present[t] = total[target_col[t]] > 0.0;
    }
    for (i64 i = 0; i < n; ++i) {
      for (i64 c = 0; c < n_cols; ++c) Wb[i * n_cols + c] *= inverse[c];
    }
    return;
  }
  for (i64 t = 0; t < tasks.T; ++t) {
    double total = 0.0;
    for (i64 i = begin[t]; i < end[t]; ++i) total += static_cast<double>(Wb[i * n_cols + target_col[t]]);
    const Real inverse = inverse_of(total);
    present[t] = total > 0.0;
    for (i64 i = begin[t]; i < end[t]; ++i) Wb[i * n_cols + target_col[t]] *= inverse;
  }
}

// sum of the masked theta^2 in 8 fixed lanes (the same order on every call: deterministic).
MTLX_CLONES inline double ridge_sum(const double* theta, const std::uint8_t* mask, i64 n) {
  double lanes[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  i64 i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const double u = theta[i + k] * static_cast<double>(mask[i + k]);
      lanes[k] += u * u;
    }
  }
  for (; i < n; ++i) {
    const double u = theta[i] * static_cast<double>(mask[i]);
    lanes[0] += u * u;
  }
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// One Adam step over n parameters with the ridge term l2 theta on the masked ones; copies theta to
// out (the kernel's dtype) and returns the new sum of the masked theta^2 (ridge_sum). Compiled
// for the machine's vector width as well (MTLX_CLONES): with school's 139 heads the parameters
// outnumber a batch's rows, and a scalar pass (a square root and a division per parameter) was
// most of a minibatch's time. The step's ratio is taken in Real (AdamStep::step).
template <class G, class Real>
MTLX_CLONES double adam_pass(const AdamStep& step, double l2, const G* __restrict grad, double* __restrict theta,
                             double* __restrict m, double* __restrict v, const std::uint8_t* __restrict mask,
                             Real* __restrict out, i64 n) {
  // The step by value and the arrays restrict: with the step's fields behind a reference, every
  // store to theta, m or v might have changed them, and the loop ran scalar (a quarter of a
  // 256-row batch's time on one shared X). (mask multiplies rather than selects: a conditional
  // load kept the loop scalar too; so did the ridge sum's lanes in the same loop.)
  const AdamStep op = step;
  for (i64 i = 0; i < n; ++i) {
    double p = theta[i], mi = m[i], vi = v[i];
    op.step<Real>(p, static_cast<double>(grad[i]) + l2 * (p * static_cast<double>(mask[i])), mi, vi);
    theta[i] = p;
    m[i] = mi;
    v[i] = vi;
    out[i] = static_cast<Real>(p);
  }
  return ridge_sum(theta, mask, n);
}

template <class Real>
EpochOutcome adam_epoch(const Real* X, i64 d, const Real* targets, const Real* weights, i64 n_cols, const TrunkShape& s,
                        const TrunkTasks& tasks, const i64* target_col, const i64* batch_rows, const i64* batch_sizes,
                        i64 n_batches, double* theta, double* m, double* v, i64& step, const std::uint8_t* weight_mask,
                        const AdamSettings& a, const i64* local_index, i64 n_global_tasks, double* task_loss_sum,
                        double* task_batches, const Reduce& reduce, int n_threads) {
  const Layout lay(s, tasks);
  const i64 T = tasks.T, P = lay.total, nt = lay.task_start.empty() ? P : lay.task_start[0];
  const i64 n_groups = tasks.shared_rows ? 1 : T;
  std::vector<Real> params(static_cast<std::size_t>(P)), grad(static_cast<std::size_t>(P));
  // theta's ridge terms (trunk, local blocks) and its copy in Real: kept current by the step below,
  // which updates, copies and sums in one pass over the parameters.
  for (i64 i = 0; i < P; ++i) params[i] = static_cast<Real>(theta[i]);
  double ridge_trunk = ridge_sum(theta, weight_mask, nt), ridge_local = ridge_sum(theta + nt, weight_mask + nt, P - nt);
  std::vector<double> scale(static_cast<std::size_t>(T)), loss(static_cast<std::size_t>(T));
  // [trunk gradient | tasks' losses | tasks present | F | flag] (Reduce)
  std::vector<double> buf(static_cast<std::size_t>(nt + 2 * n_global_tasks + 2));
  const i64 at_loss = nt, at_present = nt + n_global_tasks, at_F = nt + 2 * n_global_tasks;
  std::vector<i64> begin(static_cast<std::size_t>(T)), end(static_cast<std::size_t>(T));
  std::vector<std::uint8_t> present(static_cast<std::size_t>(T));
  EpochOutcome out;
  i64 first = 0;
  for (i64 b = 0; b < n_batches; ++b) {
    // The batch's rows, gathered, and each task's weights normalized to sum to 1 over them.
    i64 n = 0;
    for (i64 t = 0; t < n_groups; ++t) n += batch_sizes[b * n_groups + t];
    Real* Xb = scratch<Real>(kBatchX, n * d);
    Real* Yb = scratch<Real>(kBatchTargets, n * n_cols);
    Real* Wb = scratch<Real>(kBatchWeights, n * n_cols);
    gather_batch(X, d, targets, weights, n_cols, batch_rows + first, n, Xb, Yb, Wb);
    first += n;
    i64 at = 0;
    for (i64 t = 0; t < T; ++t) {
      begin[t] = tasks.shared_rows ? 0 : at;
      end[t] = tasks.shared_rows ? n : at + batch_sizes[b * n_groups + t];
      at = end[t];
    }
    normalize_batch_weights(Wb, n_cols, tasks, begin.data(), end.data(), target_col, present.data());
    TrunkTasks batch = tasks;
    batch.row_begin = begin.data();
    batch.row_end = end.data();
    const TrunkTargets<Real> tg{Yb, Wb, n_cols, target_col};
    // (uncertainty) sum_t s_t / T over the tasks in the batch. A task with no weight in it (fewer
    // rows than there are batches; a shared X's missing labels) is not part of this batch's F: no
    // loss, and no s_t term, whose gradient alone drove s_t down as if its loss were 0.
    double extra = 0.0;
    for (i64 t = 0; t < T; ++t) {
      const double s_t = a.uncertainty ? theta[P + t] : 0.0;
      scale[t] = a.inv_tasks * (a.uncertainty ? std::exp(-s_t) : 1.0);
      if (present[t]) extra += a.inv_tasks * s_t;
    }
    double F = trunk_loss_grad(Xb, n, s, batch, tg, scale.data(), params.data(), grad.data(), loss.data(), n_threads);
    F += extra + 0.5 * a.l2 * ridge_local;
    bool finite;
    if (reduce) {
      // One reduction: the trunk's gradient, the tasks' losses and presence, F (and the failure
      // flag, unused here).
      std::fill(buf.begin(), buf.end(), 0.0);
      for (i64 i = 0; i < nt; ++i) buf[i] = static_cast<double>(grad[i]);
      for (i64 t = 0; t < T; ++t) {
        buf[at_loss + local_index[t]] = loss[t];
        buf[at_present + local_index[t]] = present[t];
      }
      buf[at_F] = F;
      reduce(buf.data(), static_cast<i64>(buf.size()));
      F = buf[at_F] + 0.5 * a.l2 * ridge_trunk;
      finite = std::isfinite(F) && all_finite(buf.data(), nt);
    } else {  // one process: the trunk's gradient is the kernel's, read where it is
      F += 0.5 * a.l2 * ridge_trunk;
      finite = std::isfinite(F) && all_finite(grad.data(), nt);
    }
    if (!finite) {  // (F and the trunk's gradient are global: every rank stops here)
      out.finite = false;
      return out;
    }
    // The Adam step (AdamStep), fused with the gradient's ridge term, theta's copy in Real and the
    // new ridge terms: one pass over the parameters.
    ++step;
    const double c1 = 1.0 - std::pow(a.beta1, static_cast<double>(step));
    const double c2 = std::sqrt(1.0 - std::pow(a.beta2, static_cast<double>(step)));
    const AdamStep op{a.lr * c2 / c1, a.beta1, a.beta2, a.eps * c2};
    ridge_trunk = reduce ? adam_pass(op, a.l2, buf.data(), theta, m, v, weight_mask, params.data(), nt)
                         : adam_pass(op, a.l2, grad.data(), theta, m, v, weight_mask, params.data(), nt);
    ridge_local =
        adam_pass(op, a.l2, grad.data() + nt, theta + nt, m + nt, v + nt, weight_mask + nt, params.data() + nt, P - nt);
    if (a.uncertainty) {  // (a task not in the batch: a step on a zero gradient, as for its head)
      for (i64 t = 0; t < T; ++t) {
        const double g = present[t] ? a.inv_tasks * (1.0 - std::exp(-theta[P + t]) * loss[t]) : 0.0;
        op(theta[P + t], g, m[P + t], v[P + t]);
      }
    }
    out.objective_sum += F;
    if (reduce) {
      for (i64 t = 0; t < n_global_tasks; ++t) {
        task_loss_sum[t] += buf[at_loss + t];
        task_batches[t] += buf[at_present + t];
      }
    } else {
      for (i64 t = 0; t < T; ++t) {
        task_loss_sum[local_index[t]] += loss[t];
        task_batches[local_index[t]] += present[t];
      }
    }
    ++out.batches;
  }
  return out;
}

#define MTLX_TRUNK_INSTANTIATE(Real)                                                                                   \
  template double trunk_loss_grad<Real>(const Real*, i64, const TrunkShape&, const TrunkTasks&,                        \
                                        const TrunkTargets<Real>&, const double*, const Real*, Real*, double*, int,    \
                                        Real*);                                                                        \
  template void trunk_predict<Real>(const Real*, i64, const TrunkShape&, const TrunkTasks&, const Real*, Real*, int);  \
  template void trunk_representation<Real>(const Real*, i64, const TrunkShape&, const Real*, Real*, int);              \
  template EpochOutcome adam_epoch<Real>(const Real*, i64, const Real*, const Real*, i64, const TrunkShape&,           \
                                         const TrunkTasks&, const i64*, const i64*, const i64*, i64, double*, double*, \
                                         double*, i64&, const std::uint8_t*, const AdamSettings&, const i64*, i64,     \
                                         double*, double*, const Reduce&, int);
MTLX_TRUNK_INSTANTIATE(double)
MTLX_TRUNK_INSTANTIATE(float)
#undef MTLX_TRUNK_INSTANTIATE

}  // namespace cpu
}  // namespace mtlx
