/// \file gram.hpp
/// The squared loss through per-task Gram matrices: when d is small against m_t, one
/// iteration costs O(T d^2) instead of a pass over all rows.
///
/// For task t with residual r_t = y_t - X_t w_t - b_t, f_t = 0.5 c_t ||r_t||^2. Expanding it
/// around w = 0 (0.5 w'Gw - w'X'y + 0.5 y'y) cancels catastrophically once ||r_t|| << ||y_t||:
/// the rounding error of each term is eps ||y_t||^2. Instead each task keeps a reference point
/// (w0, b0) with its residual r0 computed directly, and expands around it:
///
///   ||r||^2 = ||r0||^2 - 2 (dw' X'r0 + db 1'r0) + ||X dw + db 1||^2,   dw = w - w0, db = b - b0,
///
/// where the quadratic term is dw'G dw + 2 db s'dw + db^2 m (G = X'X, s = X'1). Every term is
/// then of the size of ||r||^2 as long as ||X dw + db 1||^2 <= kRefresh ||r||^2; when a call
/// finds it larger, that task's reference moves to the current point by one direct pass over
/// its rows. Near the optimum the reference stops moving and calls never touch X.
#pragma once

#include <cstdint>

#include "mtlx/grad.hpp"

namespace mtlx {

/// A task's quadratic term may be this many times its ||r||^2 before the reference moves: the
/// value then carries an error of a few tens of eps relative, like the direct form.
inline constexpr double kGramRefresh = 4.0;

/// Gram statistics, computed once: n_gram = T (stacked) or 1 (shared: one X for all tasks).
template <class Real>
struct GramStats {
  const Real* G;  ///< n_gram x d x d, row-major, symmetric: X_t' X_t
  const Real* s;  ///< n_gram x d: column sums X_t' 1
};

/// Reference point of each task, moved in place by the calls (see the file comment).
template <class Real>
struct GramReference {
  Real* W0;     ///< T x d
  Real* b0;     ///< T
  double* P0;   ///< T x d: X_t' r0_t
  double* rr0;  ///< T: ||r0_t||^2; NaN marks a task with no reference yet
  double* rs0;  ///< T: 1' r0_t
};

namespace cpu {

/// G_t = X_t' X_t and s_t = X_t' 1 for every task (BLAS syrk per task).
template <class Real>
void gram_build(const StackedTasks<Real>& data, Real* G, Real* s);

/// G = X' X and s = X' 1 once for the shared X.
template <class Real>
void gram_build(const SharedTasks<Real>& data, Real* G, Real* s);

/// Squared loss sum_t 0.5 c_t ||y_t - X_t w_t - b_t||^2 and its gradient from the Gram
/// statistics (every task must use the squared loss). Deterministic for any thread count: each
/// task is computed by one thread, and the task values are summed in task order.
template <class Real>
double loss_grad_gram(const StackedTasks<Real>& data, const GramStats<Real>& stats, GramReference<Real> ref,
                      const Real* Wt, const Real* b, GradientOut<Real> grad, int n_threads);

template <class Real>
double loss_grad_gram(const SharedTasks<Real>& data, const GramStats<Real>& stats, GramReference<Real> ref,
                      const Real* Wt, const Real* b, GradientOut<Real> grad, int n_threads);

}  // namespace cpu
}  // namespace mtlx
