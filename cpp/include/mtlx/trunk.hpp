/// \file trunk.hpp
/// Shared-trunk networks (hard parameter sharing): a stack of dense layers shared by every task,
/// optional task-specific layers above it, and one linear head and one loss per task.
///
/// The activations and the softmax loss are MTLX_HD functors (the math the CUDA kernels would
/// share); the batched forward and backward passes are in src/cpu/trunk.cpp, whose layer
/// products go to the register-tiled GEMM of tile_gemm.hpp (BLAS on CPUs without AVX2).
///
/// Parameter layout (one flat vector, row-major matrices), which mtlx/trunk/network.py mirrors:
///   trunk layer l = 1..L:        W_l (n_{l-1} x n_l), b_l (n_l)             n_0 = d
///   then per task t, in order:  task layer m = 1..M: V_m (g_{m-1} x g_m), c_m (g_m)   g_0 = n_L
///                               head: A_t (g_M x K_t), a_t (K_t)
/// A head of K_t = 1 output takes the task's scalar loss (LossKind); K_t > 1 outputs are the class
/// scores of a softmax (multinomial) loss whose targets are class indices 0..K_t-1.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>

#include "mtlx/hd.hpp"
#include "mtlx/losses.hpp"
#include "mtlx/vec_math.hpp"

namespace mtlx {

/// Activation codes; exported to Python as mtlx._core.Activation.
enum class Activation : std::uint8_t { identity = 0, relu = 1, tanh = 2 };

/// Number of Activation values (codes at or above it are rejected at the binding).
inline constexpr int kNumActivations = 3;

/// a = z. Its derivative, like every activation's here, is written through the output a (what
/// the forward pass keeps), so the pre-activations need no buffer of their own.
struct IdentityActivation {
  template <class Real>
  MTLX_HD static Real value(Real z) {
    return z;
  }
  template <class Real>
  MTLX_HD static Real deriv_from_output(Real) {
    return Real(1);
  }
};

/// a = max(z, 0), written as a select (z < 0 ? 0 : z) so that a loop over a layer vectorizes
/// (a branch on the sign mispredicted on every other unit: 5 ns per element) and a NaN z stays NaN.
struct ReluActivation {
  template <class Real>
  MTLX_HD static Real value(Real z) {
    return z < Real(0) ? Real(0) : z;
  }
  template <class Real>
  MTLX_HD static Real deriv_from_output(Real a) {
    return a > Real(0) ? Real(1) : Real(0);
  }
};

/// a = tanh(z), da/dz = 1 - a^2, evaluated in double without branches so that a loop vectorizes
/// (libm's scalar tanh cost 16 ns per unit, ten times the layer's product): for |z| >= 1/8,
/// (1 - e) / (1 + e) with e = exp(-2|z|) (e <= 0.78: no cancellation, within 3 ulp); below, the
/// Taylor series to z^15 (the next term is 2e-18 relative at 1/8).
struct TanhActivation {
  template <class Real>
  MTLX_HD static Real value(Real z) {
    const double x = static_cast<double>(z);
    const double ax = std::fabs(x);
    const double e = exp_nonpositive(-2.0 * ax);
    const double far = (1.0 - e) / (1.0 + e);
    const double x2 = x * x;
    double p = -0x1.7da36452b75e3p-10;
    p = p * x2 + 0x1.d6d3d0e157de0p-9;
    p = p * x2 - 0x1.226e355e6c23dp-7;
    p = p * x2 + 0x1.664f4882c10fap-6;
    p = p * x2 - 0x1.ba1ba1ba1ba1cp-5;
    p = p * x2 + 0x1.1111111111111p-3;
    p = p * x2 - 0x1.5555555555555p-2;
    const double near = ax + ax * x2 * p;
    const double t = ax < 0.125 ? near : far;
    return static_cast<Real>(x < 0.0 ? -t : t + 0.0 * x);  // (0 * x carries a NaN past the comparison)
  }
  template <class Real>
  MTLX_HD static Real deriv_from_output(Real a) {
    return Real(1) - a * a;
  }
};

/// Calls f with the functor of `kind`; the one switch over Activation.
template <class F>
MTLX_HD auto visit_activation(Activation kind, F&& f) -> decltype(f(IdentityActivation{})) {
  switch (kind) {
    case Activation::relu:
      return f(ReluActivation{});
    case Activation::tanh:
      return f(TanhActivation{});
    case Activation::identity:
    default:
      return f(IdentityActivation{});
  }
}

/// Softmax cross-entropy of one row's K class scores z for the class `label`:
///   L = log sum_k exp(z_k) - z_label,   dL/dz_k = p_k - [k == label],
/// evaluated in double after subtracting max_k z_k (no overflow).
struct SoftmaxLoss {
  /// Returns L and writes scale * dL/dz into dz (dz may be null: value only).
  template <class Real>
  MTLX_HD static double value_and_deriv(const Real* z, int K, int label, double scale, Real* dz) {
    double top = static_cast<double>(z[0]);
    for (int k = 1; k < K; ++k) top = static_cast<double>(z[k]) > top ? static_cast<double>(z[k]) : top;
    double total = 0.0;
    for (int k = 0; k < K; ++k) total += std::exp(static_cast<double>(z[k]) - top);
    const double log_total = std::log(total);
    if (dz != nullptr) {
      for (int k = 0; k < K; ++k) {
        const double p = std::exp(static_cast<double>(z[k]) - top - log_total);
        dz[k] = static_cast<Real>(scale * (p - (k == label ? 1.0 : 0.0)));
      }
    }
    // A NaN score makes `top` ignore it; adding 0 * z_k carries it into the value.
    double carry = 0.0;
    for (int k = 0; k < K; ++k) carry += 0.0 * static_cast<double>(z[k]);
    return log_total + top - static_cast<double>(z[label]) + carry;
  }
};

/// One Adam step on element i (Kingma & Ba 2015, bias-corrected):
///   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,  p -= lr_t m / (sqrt(v) + eps_t),
/// with lr_t = lr sqrt(1 - b2^k) / (1 - b1^k) and eps_t = eps sqrt(1 - b2^k) (scikit-learn's and
/// PyTorch's Adam: eps added to the bias-corrected sqrt(v)).
struct AdamStep {
  double lr_t, b1, b2, eps_t;
  template <class Real>
  MTLX_HD void operator()(Real& p, Real g, Real& m, Real& v) const {
    step<double>(p, g, m, v);
  }
  /// The same step with its ratio m / (sqrt(v) + eps) taken in `Ratio`: float for a float32
  /// network, whose gradient holds no more digits (PyTorch takes the whole step in float32), at
  /// twice the vector width and a fraction of the divider's time; the moments and p stay in Real.
  template <class Ratio, class Real>
  MTLX_HD void step(Real& p, Real g, Real& m, Real& v) const {
    const double md = b1 * static_cast<double>(m) + (1.0 - b1) * static_cast<double>(g);
    const double vd = b2 * static_cast<double>(v) + (1.0 - b2) * static_cast<double>(g) * static_cast<double>(g);
    m = static_cast<Real>(md);
    v = static_cast<Real>(vd);
    const Ratio ratio = static_cast<Ratio>(lr_t * md) / (std::sqrt(static_cast<Ratio>(vd)) + static_cast<Ratio>(eps_t));
    p = static_cast<Real>(static_cast<double>(p) - static_cast<double>(ratio));
  }
};

/// The layer widths of a network.
struct TrunkShape {
  const std::int64_t* trunk_sizes;  ///< n_0 = d, n_1, ..., n_L (L >= 1)
  int n_trunk_layers;               ///< L
  const std::int64_t* task_sizes;   ///< g_1, ..., g_M (task-specific hidden layers; may be empty)
  int n_task_layers;                ///< M
  Activation activation;            ///< of every hidden layer (heads are linear)
};

/// The tasks of one call: their rows of X, head widths and losses.
struct TrunkTasks {
  std::int64_t T;
  const std::int64_t* row_begin;  ///< task t reads rows [row_begin[t], row_end[t]) of X
  const std::int64_t* row_end;
  const std::int64_t* out_dims;  ///< K_t
  const std::uint8_t* losses;    ///< LossKind of a K_t = 1 head (ignored for K_t > 1: softmax)
  const double* loss_params;     ///< Huber's epsilon
  /// Every task reads every row (one X shared by all tasks): linear heads then run as one product.
  /// Set by the caller from the data's layout, never inferred from the ranges, so that a rank
  /// holding one task of a stacked problem computes what one process computes for that task.
  bool shared_rows = false;
};

/// Targets of one call: entry (i, target_col[t]) of the row-major N x n_cols arrays is task t's
/// target and weight on row i (a class index for a softmax head). A weight of 0 leaves the entry out.
template <class Real>
struct TrunkTargets {
  const Real* values;
  const Real* weights;
  std::int64_t n_cols;
  const std::int64_t* target_col;
};

/// Number of parameters of the network for the given heads.
std::int64_t trunk_n_params(const TrunkShape& shape, const TrunkTasks& tasks);

namespace cpu {

/// Rows per block of the shared-input evaluation (trunk_loss_grad): small enough that a block's
/// activations and gradients stay in cache from its forward pass to its backward pass (100,000 x
/// 100, width 128, float32, one thread: 75 ms per evaluation in blocks of 256 rows, 80 in 512 or
/// 1,024, 84 in 2,048, 131 unblocked). A pass over more rows than this runs its blocks on the
/// core's threads.
inline constexpr std::int64_t kTrunkBlockRows = 256;

/// F = sum_t task_scale[t] * task_loss[t], task_loss[t] = sum_i w_it L_t(y_it, f_t(x_i)).
/// Writes task_loss (T), and dF/dparams into grad when grad is not null. Deterministic (row chunks
/// of fixed size, summed in order; products whose every element is one chain in a fixed order,
/// tile_gemm.hpp), the same for every thread count; with BLAS for the products instead (CPUs
/// without AVX2), for a given thread count.
///
/// One X shared by every task with linear heads (tasks.shared_rows, no task layers): the rows go
/// in blocks of kTrunkBlockRows, forward and backward while a block is in cache, and the
/// n_threads threads take fixed runs of blocks (the results are the same for every n_threads),
/// each running its products on its own: over more than one block, the caller limits BLAS (where
/// it is used) to one thread.
/// task_trunk_grad must be null there.
///
/// With task_trunk_grad (T x n_trunk, row-major) not null, the tasks' row ranges must not overlap:
/// each task's share of the trunk's gradient is written to its own row there (the trunk block of
/// grad is left untouched). Each row then depends only on that task's rows, so a sum over tasks
/// that does not depend on their order (mtlx/exact_sum.hpp) gives the same bits however the tasks
/// are spread over processes.
template <class Real>
double trunk_loss_grad(const Real* X, std::int64_t N, const TrunkShape& shape, const TrunkTasks& tasks,
                       const TrunkTargets<Real>& targets, const double* task_scale, const Real* params, Real* grad,
                       double* task_loss, int n_threads, Real* task_trunk_grad = nullptr);

/// Outputs of every task's head: out (N x sum_t K_t, row-major) gets task t's K_t columns on its
/// rows (other rows of those columns untouched).
template <class Real>
void trunk_predict(const Real* X, std::int64_t N, const TrunkShape& shape, const TrunkTasks& tasks, const Real* params,
                   Real* out, int n_threads);

/// The shared representation (the last trunk layer's activations), N x n_L row-major.
template <class Real>
void trunk_representation(const Real* X, std::int64_t N, const TrunkShape& shape, const Real* params, Real* out,
                          int n_threads);

/// The settings of a minibatch epoch (adam_epoch): Adam's, and the objective's ridge and weighting.
struct AdamSettings {
  double lr, beta1, beta2, eps;
  double l2;         ///< ridge strength on the entries where weight_mask is 1
  bool uncertainty;  ///< theta ends with one log-variance s_t per local task
  double inv_tasks;  ///< 1 / T, T the number of tasks of every rank
};

/// What an epoch did.
struct EpochOutcome {
  double objective_sum = 0.0;  ///< the sum over its batches of the batch objective F
  std::int64_t batches = 0;    ///< batches completed (fewer when one went non-finite)
  bool finite = true;
};

/// Sums a buffer over every process in place (identity in one process; an MPI Allreduce through
/// Python otherwise). The buffer is [trunk gradient | per-task losses (global slots) | per-task
/// presence in the batch (global slots) | F | flag].
using Reduce = std::function<void(double*, std::int64_t)>;

/// One epoch of minibatch Adam on the shared-trunk objective (mtlx/trunk/objective.py's, for a
/// batch): F = sum_t c_t L_t + (l2/2) ||weights||^2, c_t = inv_tasks (uncertainty: inv_tasks
/// exp(-s_t), plus inv_tasks s_t), L_t task t's weighted mean loss over its rows in the batch.
/// Batch b is the rows batch_rows[...] of X (in order: a shared X's rows, or task 0's rows, then
/// task 1's, ...), batch_sizes[b * n_groups + t] of them for task t (n_groups = 1 for a shared
/// X). theta (float64; the network's parameters, then the log-variances), m, v and step are
/// Adam's state, updated in place. task_loss_sum (global slots) accumulates each batch's L_t, and
/// task_batches counts the batches that held task t with weight: a task with fewer rows than
/// there are batches (or a shared X's column of missing labels) is absent from some, and takes no
/// part in their F (no L_t, no s_t term). Stops before the update of a batch whose F or trunk
/// gradient is not finite.
template <class Real>
EpochOutcome adam_epoch(const Real* X, std::int64_t n_features, const Real* targets, const Real* weights,
                        std::int64_t n_cols, const TrunkShape& shape, const TrunkTasks& tasks,
                        const std::int64_t* target_col, const std::int64_t* batch_rows, const std::int64_t* batch_sizes,
                        std::int64_t n_batches, double* theta, double* m, double* v, std::int64_t& step,
                        const std::uint8_t* weight_mask, const AdamSettings& settings, const std::int64_t* local_index,
                        std::int64_t n_global_tasks, double* task_loss_sum, double* task_batches, const Reduce& reduce,
                        int n_threads);

}  // namespace cpu
}  // namespace mtlx
