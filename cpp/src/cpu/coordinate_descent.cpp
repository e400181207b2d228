// Block coordinate descent epochs for l1 / l2,1 least squares (see mtlx/coordinate_descent.hpp).
//
// One epoch loop, two ways to get a row's gradient, written as policies:
//   GramRows:     from Gram statistics, Q = [H_t w_t]_t kept up to date: O(k T) per row;
//   ResidualRows: from the residuals R = Y - X_S W_S kept up to date: O(n T) per row, for
//                 working sets larger than the rows (d >> n), where k x k Gram blocks cost more
//                 than passes over R and the Gram rows of thousands of features would not fit.
#include "mtlx/coordinate_descent.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "widest_vectors.hpp"

namespace mtlx::cpu {
namespace {

/// Tasks a row step keeps on the stack (beyond, the l2,1 row step falls back to one step size).
constexpr std::int64_t kMaxRowTasks = 1024;

/// Gradients from Gram statistics: grad_t = c_t (H_t w_t)[j] - B(j, t) (+ l2 w_t, added by the step).
struct GramRows {
  const CdProblem& p;
  double* Q;

  double curvature(std::int64_t t, std::int64_t j) const {
    const std::int64_t g = p.n_gram == 1 ? 0 : t;
    return p.c[t] * p.H[(g * p.k + j) * p.k + j];
  }
  bool active(std::int64_t, std::int64_t) const { return true; }

  void gradient(std::int64_t j, double* grad) const {
    const double* q = Q + j * p.T;
    const double* b = p.B + j * p.T;
    for (std::int64_t t = 0; t < p.T; ++t) grad[t] = p.c[t] * q[t] - b[t];
  }

  void begin_row(std::int64_t) {}
  void finish() {}

  /// Q(:, t) += H_t(:, j) delta_t for every task whose entry moved (H_t symmetric: its column j
  /// is its row j, contiguous).
  void moved(std::int64_t j, const double* delta) {
    const std::int64_t k = p.k, T = p.T;
    if (p.n_gram == 1) {
      const double* h = p.H + j * k;
      for (std::int64_t i = 0; i < k; ++i) {
        const double hij = h[i];
        if (hij == 0.0) continue;
        double* q = Q + i * T;
#pragma omp simd
        for (std::int64_t t = 0; t < T; ++t) q[t] += hij * delta[t];
      }
      return;
    }
    for (std::int64_t t = 0; t < T; ++t) {
      if (delta[t] == 0.0) continue;
      const double* h = p.H + (t * k + j) * k;
      for (std::int64_t i = 0; i < k; ++i) Q[i * T + t] += h[i] * delta[t];
    }
  }
};

/// Gradients from the residuals: grad_t = -c_t x_j' r_t; columns x_j (centered) contiguous.
///
/// Rows are taken in blocks of kBlock: one pass over R gives the gradients of the whole block,
/// each step corrects the later rows' gradients through the block's small Gram matrix
/// (r_t -= delta_t x_a changes -c_t x_b' r_t by c_t (x_b' x_a) delta_t), and one pass applies the
/// block's moves to R in one fused pass. The steps are those of row-by-row descent; R, the
/// working set's largest array, is read twice per block instead of three times per row
/// (memory-bound before: 3.6 GFlop/s on n = 500, T = 50).
struct ResidualRows {
  static constexpr std::int64_t kBlock = 4;

  const ResidualCdProblem& p;
  double* R;                  // T x n
  std::vector<double> grads;  // kBlock x T: the block's gradients, corrected as rows move
  std::vector<double> moves;  // kBlock x T: the block's deltas, applied to R at its end
  double gram[kBlock][kBlock] = {};
  std::int64_t first = 0, size = 0;  // the current block: rows first .. first + size - 1

  ResidualRows(const ResidualCdProblem& problem, double* residuals)
      : p(problem),
        R(residuals),
        grads(static_cast<std::size_t>(kBlock * problem.T)),
        moves(static_cast<std::size_t>(kBlock * problem.T)) {}

  double curvature(std::int64_t t, std::int64_t j) const { return p.c[t] * p.sq_norms[j]; }
  /// (Every entry: epochs on a per-task mask take epochs_per_task_l1 instead.)
  bool active(std::int64_t, std::int64_t) const { return true; }

  /// Before row j's step: its block's gradients, from one pass over R when j opens a block.
  void begin_row(std::int64_t j) {
    if (j < first || j >= first + size) start_block(j);
  }

  void gradient(std::int64_t j, double* grad) const {
    const double* g = grads.data() + (j - first) * p.T;
    std::copy(g, g + p.T, grad);
  }

  void moved(std::int64_t j, const double* delta) {
    const std::int64_t a = j - first, T = p.T;
    std::copy(delta, delta + T, moves.data() + a * T);
    for (std::int64_t b = a + 1; b < size; ++b) {
      const double g_ab = gram[a][b];
      double* g = grads.data() + b * T;
      for (std::int64_t t = 0; t < T; ++t) g[t] += p.c[t] * g_ab * delta[t];
    }
  }

  /// Applies the pending block's moves to R (at the end of every block and of the epoch).
  void finish() {
    const std::int64_t n = p.n, T = p.T;
    bool any = false;
    for (std::int64_t k = 0; k < size * T && !any; ++k) any = moves[static_cast<std::size_t>(k)] != 0.0;
    if (any) {
      const double* x[kBlock];
      for (std::int64_t a = 0; a < kBlock; ++a) x[a] = p.X + (first + std::min(a, size - 1)) * n;
      // Four tasks per pass, then the rest one by one: each x_a[i] loaded once for the four (one
      // task at a time was load-bound: five loads and a store per four FMAs; 30 -> 19 ms an epoch
      // of 6,600 rows, n = 500, T = 50).
      std::int64_t t = 0;
      for (; t + 3 < T; t += 4) {
        double d[4][kBlock];  // zero for rows that did not move and for the padding of a short block
        bool still = true;
        for (std::int64_t u = 0; u < 4; ++u) {
          for (std::int64_t a = 0; a < kBlock; ++a) {
            d[u][a] = a < size ? moves[static_cast<std::size_t>(a * T + t + u)] : 0.0;
            still = still && d[u][a] == 0.0;
          }
        }
        if (still) continue;  // (the four tasks' rows all still)
        double* r0 = R + t * n;
        double* r1 = r0 + n;
        double* r2 = r1 + n;
        double* r3 = r2 + n;
#pragma omp simd
        for (std::int64_t i = 0; i < n; ++i) {
          const double x0 = x[0][i], x1 = x[1][i], x2 = x[2][i], x3 = x[3][i];
          r0[i] -= (d[0][0] * x0 + d[0][1] * x1) + (d[0][2] * x2 + d[0][3] * x3);
          r1[i] -= (d[1][0] * x0 + d[1][1] * x1) + (d[1][2] * x2 + d[1][3] * x3);
          r2[i] -= (d[2][0] * x0 + d[2][1] * x1) + (d[2][2] * x2 + d[2][3] * x3);
          r3[i] -= (d[3][0] * x0 + d[3][1] * x1) + (d[3][2] * x2 + d[3][3] * x3);
        }
      }
      for (; t < T; ++t) {
        double d[kBlock];
        for (std::int64_t a = 0; a < kBlock; ++a) d[a] = a < size ? moves[static_cast<std::size_t>(a * T + t)] : 0.0;
        if (d[0] == 0.0 && d[1] == 0.0 && d[2] == 0.0 && d[3] == 0.0) continue;  // (task t's rows all still)
        double* r = R + t * n;
        // One fused pass (the block's rows together) instead of one per row.
#pragma omp simd
        for (std::int64_t i = 0; i < n; ++i) {
          r[i] -= (d[0] * x[0][i] + d[1] * x[1][i]) + (d[2] * x[2][i] + d[3] * x[3][i]);
        }
      }
    }
    first += size;
    size = 0;
  }

 private:
  void start_block(std::int64_t j) {
    finish();
    const std::int64_t n = p.n, T = p.T;
    first = j;
    size = std::min(kBlock, p.k - j);
    std::fill(moves.begin(), moves.end(), 0.0);
    const double* x[kBlock];
    for (std::int64_t a = 0; a < kBlock; ++a) x[a] = p.X + (first + std::min(a, size - 1)) * n;
    for (std::int64_t a = 0; a < size; ++a) {
      for (std::int64_t b = a + 1; b < size; ++b) {
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (std::int64_t i = 0; i < n; ++i) dot += x[a][i] * x[b][i];
        gram[a][b] = dot;
      }
    }
    // Four tasks per pass (x_a[i] loaded once for the four), then the rest one by one.
    std::int64_t t = 0;
    for (; t + 3 < T; t += 4) {
      const double* r0 = R + t * n;
      const double* r1 = r0 + n;
      const double* r2 = r1 + n;
      const double* r3 = r2 + n;
      double a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
      double a20 = 0, a21 = 0, a22 = 0, a23 = 0, a30 = 0, a31 = 0, a32 = 0, a33 = 0;
#pragma omp simd reduction(+ : a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33)
      for (std::int64_t i = 0; i < n; ++i) {
        const double x0 = x[0][i], x1 = x[1][i], x2 = x[2][i], x3 = x[3][i];
        const double q0 = r0[i], q1 = r1[i], q2 = r2[i], q3 = r3[i];
        a00 += x0 * q0;
        a01 += x0 * q1;
        a02 += x0 * q2;
        a03 += x0 * q3;
        a10 += x1 * q0;
        a11 += x1 * q1;
        a12 += x1 * q2;
        a13 += x1 * q3;
        a20 += x2 * q0;
        a21 += x2 * q1;
        a22 += x2 * q2;
        a23 += x2 * q3;
        a30 += x3 * q0;
        a31 += x3 * q1;
        a32 += x3 * q2;
        a33 += x3 * q3;
      }
      const double sums[kBlock][4] = {
          {a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}, {a30, a31, a32, a33}};
      for (std::int64_t a = 0; a < size; ++a) {
        for (std::int64_t u = 0; u < 4; ++u) grads[static_cast<std::size_t>(a * T + t + u)] = -p.c[t + u] * sums[a][u];
      }
    }
    for (; t < T; ++t) {
      const double* r = R + t * n;
      double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;  // kBlock = 4 (padded rows repeat the last)
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (std::int64_t i = 0; i < n; ++i) {
        const double ri = r[i];
        s0 += x[0][i] * ri;
        s1 += x[1][i] * ri;
        s2 += x[2][i] * ri;
        s3 += x[3][i] * ri;
      }
      const double sums[kBlock] = {s0, s1, s2, s3};
      for (std::int64_t a = 0; a < size; ++a) grads[static_cast<std::size_t>(a * T + t)] = -p.c[t] * sums[a];
    }
  }
};

/// Gradients from the residuals R (T x n) one row at a time, for few tasks: row j's gradient is
/// x_j' r_t, and its move updates R at once (r_t -= delta_t x_j, x_j and r_t still in L1). With
/// one task (a lasso) ResidualRows' blocks spent more on their four rows' Gram (six dot products
/// per block) than on the gradients: an epoch of 1,000 rows of n = 500 took 0.65 ms, now 0.18 ms.
struct SingleResidualRows {
  const ResidualCdProblem& p;
  double* R;  // T x n

  double curvature(std::int64_t t, std::int64_t j) const { return p.c[t] * p.sq_norms[j]; }
  bool active(std::int64_t, std::int64_t) const { return true; }
  void begin_row(std::int64_t) {}

  void gradient(std::int64_t j, double* grad) const {
    const std::int64_t n = p.n;
    const double* x = p.X + j * n;
    for (std::int64_t t = 0; t < p.T; ++t) {
      const double* r = R + t * n;
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (std::int64_t i = 0; i < n; ++i) s += x[i] * r[i];
      grad[t] = -p.c[t] * s;
    }
  }

  void moved(std::int64_t j, const double* delta) {
    const std::int64_t n = p.n;
    const double* x = p.X + j * n;
    for (std::int64_t t = 0; t < p.T; ++t) {
      if (delta[t] == 0.0) continue;
      double* r = R + t * n;
      const double d = delta[t];
#pragma omp simd
      for (std::int64_t i = 0; i < n; ++i) r[i] -= d * x[i];
    }
  }

  void finish() {}
};

/// Tasks up to which residual epochs go one row at a time (SingleResidualRows): past them the
/// blocks' single pass over R per four rows saves more than their Gram costs (1,000 rows of
/// n = 500: 0.57 against 0.90 ms an epoch at T = 4, even at T = 8, 6.9 against 4.0 at T = 50).
constexpr std::int64_t kRowAtATimeTasks = 6;

/// Gradients from the residuals of a sparse working set, centered implicitly. With the stored part
/// R_s and an offset u (T) shared by every row, the residual is R = R_s + u 1'; sums_t = 1' R_s(:, t).
/// Then (x_j - xbar_j 1)' r_t = x_j' r_s,t + colsum_j u_t - xbar_j (sums_t + n u_t), and a move
/// delta of row j is r_s,t -= x_j delta_t (the stored entries only), u_t += xbar_j delta_t.
///
/// R is row-major (n x T: a sample's T residuals side by side), so that a stored entry x_ij reads
/// and updates one contiguous run of T values (the task-major layout, T values n apart, made the
/// epochs 3.3x slower on a 100,000 x 50,000 X at 0.1%, T = 20).
template <class Index>
struct SparseResidualRows {
  static constexpr std::int64_t kPrefetchAhead = 16;
  const SparseResidualCdProblem<Index>& p;
  double* R;  // n x T: the stored part R_s
  std::vector<double> u, sums;

  SparseResidualRows(const SparseResidualCdProblem<Index>& problem, double* residuals)
      : p(problem),
        R(residuals),
        u(static_cast<std::size_t>(problem.T), 0.0),
        sums(static_cast<std::size_t>(problem.T), 0.0) {
    if (!p.xbar) return;
    for (std::int64_t i = 0; i < p.n; ++i) {
      const double* r = R + i * p.T;
      for (std::int64_t t = 0; t < p.T; ++t) sums[static_cast<std::size_t>(t)] += r[t];
    }
  }

  double curvature(std::int64_t t, std::int64_t j) const { return p.c[t] * p.sq_norms[j]; }
  bool active(std::int64_t, std::int64_t) const { return true; }

  void gradient(std::int64_t j, double* grad) const {
    const std::int64_t lo = p.indptr[j], hi = p.indptr[j + 1], T = p.T;
    for (std::int64_t t = 0; t < T; ++t) grad[t] = 0.0;
    for (std::int64_t q = lo; q < hi; ++q) {
      // The residual row of the entry kPrefetchAhead on is fetched while this one is read: the
      // rows a column holds are scattered over R (moved() then finds them cached).
      if (q + kPrefetchAhead < hi) {
        const double* ahead = R + p.indices[q + kPrefetchAhead] * T;
        for (std::int64_t t = 0; t < T; t += 8) __builtin_prefetch(ahead + t);
      }
      const double v = p.data[q];
      const double* r = R + p.indices[q] * T;
      for (std::int64_t t = 0; t < T; ++t) grad[t] += v * r[t];
    }
    for (std::int64_t t = 0; t < T; ++t) {
      double s = grad[t];
      if (p.xbar) {
        const double ut = u[static_cast<std::size_t>(t)];
        s += p.col_sums[j] * ut - p.xbar[j] * (sums[static_cast<std::size_t>(t)] + static_cast<double>(p.n) * ut);
      }
      grad[t] = -p.c[t] * s;
    }
  }

  void begin_row(std::int64_t) {}

  void moved(std::int64_t j, const double* delta) {
    const std::int64_t lo = p.indptr[j], hi = p.indptr[j + 1], T = p.T;
    for (std::int64_t q = lo; q < hi; ++q) {
      const double v = p.data[q];
      double* r = R + p.indices[q] * T;
      for (std::int64_t t = 0; t < T; ++t) r[t] -= v * delta[t];
    }
    if (p.xbar) {
      for (std::int64_t t = 0; t < T; ++t) {
        u[static_cast<std::size_t>(t)] += p.xbar[j] * delta[t];
        sums[static_cast<std::size_t>(t)] -= p.col_sums[j] * delta[t];
      }
    }
  }

  /// Applies the offset: R = R_s + u 1' again (a consistent residual after every epoch).
  void finish() {
    if (!p.xbar) return;
    for (std::int64_t i = 0; i < p.n; ++i) {
      double* r = R + i * p.T;
      for (std::int64_t t = 0; t < p.T; ++t) r[t] += u[static_cast<std::size_t>(t)];
    }
    for (std::int64_t t = 0; t < p.T; ++t) {
      sums[static_cast<std::size_t>(t)] += u[static_cast<std::size_t>(t)] * static_cast<double>(p.n);
      u[static_cast<std::size_t>(t)] = 0.0;
    }
  }
};

/// Model gradients of a proximal Newton step (see NewtonCdProblem): g_jt + sum_i x_ij h_ti Q_ti.
struct NewtonRows {
  const NewtonCdProblem& p;
  double* Q;   // as H: X_S (W - W0) + db
  double* db;  // T

  /// Task t's entries of H and Q, and its rows of X: [lo, hi) in a per-task row (shared X) or
  /// in the stacked rows.
  std::int64_t base(std::int64_t t) const { return p.offsets ? 0 : t * p.n; }
  std::int64_t lo(std::int64_t t) const { return p.offsets ? p.offsets[t] : 0; }
  std::int64_t hi(std::int64_t t) const { return p.offsets ? p.offsets[t + 1] : p.n; }

  double curvature(std::int64_t t, std::int64_t j) const { return p.curv[j * p.T + t]; }
  /// Whether entry (j, t) is in the working set (all entries without a mask).
  bool active(std::int64_t j, std::int64_t t) const { return !p.active || p.active[j * p.T + t] != 0; }

  void begin_row(std::int64_t) {}

  void gradient(std::int64_t j, double* grad) const {
    const double* x = p.X + j * p.n;
    for (std::int64_t t = 0; t < p.T; ++t) {
      if (!active(j, t)) {  // (outside the working set: row_step_l1 leaves the entry alone)
        grad[t] = 0.0;
        continue;
      }
      const double* h = p.H + base(t);
      const double* q = Q + base(t);
      double s = 0.0;
      const std::int64_t a = lo(t), b = hi(t);
#pragma omp simd reduction(+ : s)
      for (std::int64_t i = a; i < b; ++i) s += x[i] * h[i] * q[i];
      grad[t] = p.G[j * p.T + t] + s;
    }
  }

  void moved(std::int64_t j, const double* delta) {
    const double* x = p.X + j * p.n;
    for (std::int64_t t = 0; t < p.T; ++t) {
      const double dt = delta[t];
      if (dt == 0.0) continue;
      double* q = Q + base(t);
      const std::int64_t a = lo(t), b = hi(t);
#pragma omp simd
      for (std::int64_t i = a; i < b; ++i) q[i] += x[i] * dt;
    }
  }

  void finish() {}

  /// The exact minimization of the model over each intercept (the others fixed); returns the
  /// largest move.
  double intercept_steps() {
    if (p.g_b == nullptr) return 0.0;
    double largest = 0.0;
    for (std::int64_t t = 0; t < p.T; ++t) {
      if (!(p.h_b[t] > 0.0)) continue;
      const double* h = p.H + base(t);
      double* q = Q + base(t);
      const std::int64_t a = lo(t), b = hi(t);
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (std::int64_t i = a; i < b; ++i) s += h[i] * q[i];
      const double step = -(p.g_b[t] + s) / p.h_b[t];
      if (step == 0.0) continue;
#pragma omp simd
      for (std::int64_t i = a; i < b; ++i) q[i] += step;
      db[t] += step;
      largest = std::max(largest, std::fabs(step));
    }
    return largest;
  }
};

/// The minimizer over u of sum_t a_t (u_t - z_t)^2 / 2 + lambda ||u||_2 (a_t > 0): the prox of the
/// group norm in the metric diag(a). u = 0 when ||a z|| <= lambda; else u_t = a_t z_t r / (a_t r +
/// lambda) with r = ||u|| the root of psi(r) = sum_t (a_t z_t / (a_t r + lambda))^2 - 1. psi is
/// convex and decreasing, so Newton's method from a point left of the root stays left of it and
/// converges monotonically (quadratically near it): it starts at (||a z|| - lambda) / max_t a_t,
/// where psi >= 0, the root itself when the a_t are equal (block soft thresholding, one step).
/// Writes u into `out`.
inline void weighted_group_prox(const double* a, const double* z, std::int64_t T, double lambda, double* out) {
  double norm_sq = 0.0, a_max = 0.0;
  for (std::int64_t t = 0; t < T; ++t) {
    norm_sq += (a[t] * z[t]) * (a[t] * z[t]);
    a_max = std::max(a_max, a[t]);
  }
  const double norm = std::sqrt(norm_sq);
  if (!(norm > lambda)) {
    for (std::int64_t t = 0; t < T; ++t) out[t] = 0.0;
    return;
  }
  double r = (norm - lambda) / a_max;
  for (int iteration = 0; iteration < 60; ++iteration) {
    double psi = -1.0, slope = 0.0;
    for (std::int64_t t = 0; t < T; ++t) {
      const double denominator = a[t] * r + lambda;
      const double q = a[t] * z[t] / denominator;
      psi += q * q;
      slope -= 2.0 * q * q * a[t] / denominator;
    }
    if (!(psi > 0.0) || !(slope < 0.0)) break;  // at the root (to rounding)
    const double step = -psi / slope;
    r += step;
    if (step <= 1e-14 * r) break;
  }
  for (std::int64_t t = 0; t < T; ++t) out[t] = a[t] * z[t] * r / (a[t] * r + lambda);
}

/// The new row j for l2,1: the exact minimization over the row of the separable quadratic model
/// sum_t (grad_t d_t + (h_t + l2) d_t^2 / 2) + alpha ||w + d|| with h_t the task's curvature
/// c_t H_t(j, j) (weighted_group_prox). The per-task curvatures of a row differ when tasks have
/// their own rows, weights or a loss's curvature (logistic): one step 1 / max_t h_t, as before,
/// moved the tasks of lower curvature by a fraction of their way (issue 15: on school and on
/// logistic l21 the epochs crawled). A task of zero curvature (and no ridge) has its entry 0.
/// Writes delta = new - old.
template <class Rows>
void row_step_l21(const Rows& rows, std::int64_t T, double alpha, double l2, std::int64_t j, const double* w,
                  double* grad, double* delta) {
  double L = 0.0;
  for (std::int64_t t = 0; t < T; ++t) L = std::max(L, rows.curvature(t, j));
  L += l2;
  if (!(L > 0.0)) {  // a zero column without ridge: the row's minimizer is 0
    for (std::int64_t t = 0; t < T; ++t) delta[t] = -w[t];
    return;
  }
  rows.gradient(j, grad);
  double a[kMaxRowTasks], z[kMaxRowTasks], u[kMaxRowTasks];
  if (T > kMaxRowTasks) {  // (rows of more tasks than the stack buffers: the step of the largest curvature)
    double norm_sq = 0.0;
    for (std::int64_t t = 0; t < T; ++t) {
      grad[t] = w[t] - (grad[t] + l2 * w[t]) / L;  // the unshrunk row
      norm_sq += grad[t] * grad[t];
    }
    const double factor = group_shrink_factor(std::sqrt(norm_sq), alpha / L);
    for (std::int64_t t = 0; t < T; ++t) delta[t] = factor * grad[t] - w[t];
    return;
  }
  for (std::int64_t t = 0; t < T; ++t) {
    // A task without curvature stays at 0 (its entry has no quadratic to minimize: the row's
    // minimizer is 0 there or unbounded; the penalty keeps it 0 only for a zero gradient, and a
    // floor of L * 1e-12 keeps the step finite otherwise).
    a[t] = std::max(rows.curvature(t, j) + l2, 1e-12 * L);
    z[t] = w[t] - (grad[t] + l2 * w[t]) / a[t];
  }
  weighted_group_prox(a, z, T, alpha, u);
  for (std::int64_t t = 0; t < T; ++t) delta[t] = u[t] - w[t];
}

/// An l1 entry minimized exactly: w's new value for the gradient grad at w and the curvature h
/// (without ridge); 0 for a zero curvature without ridge.
inline double l1_entry(double w, double grad, double h, double alpha, double l2) {
  h += l2;
  if (!(h > 0.0)) return 0.0;
  return soft_threshold(w - (grad + l2 * w) / h, alpha / h);
}

/// The new row j for l1: each entry minimized exactly (its own curvature c_t H_t(j, j) + l2).
template <class Rows>
void row_step_l1(const Rows& rows, std::int64_t T, double alpha, double l2, std::int64_t j, const double* w,
                 double* grad, double* delta) {
  rows.gradient(j, grad);
  for (std::int64_t t = 0; t < T; ++t) {
    if (!rows.active(j, t)) {  // an entry outside a per-task working set (see NewtonCdProblem::active)
      delta[t] = 0.0;
      continue;
    }
    delta[t] = l1_entry(w[t], grad[t], rows.curvature(t, j), alpha, l2) - w[t];
  }
}

template <class Rows>
CdResult epochs(Rows& rows, std::int64_t k, std::int64_t T, double alpha, double l2, PenaltyKind penalty, double* W,
                std::int64_t max_epochs, double tol) {
  std::vector<double> grad(static_cast<std::size_t>(T)), delta(static_cast<std::size_t>(T));
  CdResult result{0, 0.0, 0.0};
  while (result.epochs < max_epochs) {
    double max_change = 0.0, max_abs = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      double* w = W + j * T;
      rows.begin_row(j);
      if (penalty == PenaltyKind::l21) {
        row_step_l21(rows, T, alpha, l2, j, w, grad.data(), delta.data());
      } else {
        row_step_l1(rows, T, alpha, l2, j, w, grad.data(), delta.data());
      }
      bool moved = false;
      for (std::int64_t t = 0; t < T; ++t) {
        if (delta[static_cast<std::size_t>(t)] != 0.0) {
          moved = true;
          w[t] += delta[static_cast<std::size_t>(t)];
          max_change = std::max(max_change, std::fabs(delta[static_cast<std::size_t>(t)]));
        }
        max_abs = std::max(max_abs, std::fabs(w[t]));
      }
      if (moved) rows.moved(j, delta.data());
    }
    rows.finish();
    ++result.epochs;
    result.max_change = max_change;
    result.max_abs = max_abs;
    if (max_change <= tol * max_abs) break;
  }
  return result;
}

/// Epochs of l1 on per-task working sets (ResidualCdProblem::active): l1 couples no tasks, so each
/// entry's step needs only its own task's residual row r_t: a row x_j is read once and stepped
/// for the tasks whose sets hold it (each task's entries still in ascending rows, each step
/// l1_entry as in row_step_l1). The row-blocked epochs computed whole blocks of four rows for
/// every task in which any of them was active; visiting tasks in the outer loop read every row
/// once per task.
CdResult epochs_per_task_l1(const ResidualCdProblem& p, double* W, double* R, std::int64_t max_epochs, double tol) {
  const std::int64_t k = p.k, n = p.n, T = p.T;
  std::vector<std::int64_t> start(static_cast<std::size_t>(k + 1), 0), tasks;
  for (std::int64_t j = 0; j < k; ++j) {
    for (std::int64_t t = 0; t < T; ++t) {
      if (p.active[j * T + t] != 0) tasks.push_back(t);
    }
    start[static_cast<std::size_t>(j + 1)] = static_cast<std::int64_t>(tasks.size());
  }
  CdResult result{0, 0.0, 0.0};
  while (result.epochs < max_epochs) {
    double max_change = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      const double* x = p.X + j * n;
      for (std::int64_t q = start[static_cast<std::size_t>(j)]; q < start[static_cast<std::size_t>(j + 1)]; ++q) {
        const std::int64_t t = tasks[static_cast<std::size_t>(q)];
        double* r = R + t * n;
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (std::int64_t i = 0; i < n; ++i) dot += x[i] * r[i];
        double& w = W[j * T + t];
        const double next = l1_entry(w, -p.c[t] * dot, p.c[t] * p.sq_norms[j], p.alpha, p.l2);
        const double delta = next - w;
        if (delta == 0.0) continue;
        w = next;
        max_change = std::max(max_change, std::fabs(delta));
#pragma omp simd
        for (std::int64_t i = 0; i < n; ++i) r[i] -= delta * x[i];
      }
    }
    double max_abs = 0.0;
    for (std::int64_t q = 0; q < k * T; ++q) max_abs = std::max(max_abs, std::fabs(W[q]));
    ++result.epochs;
    result.max_change = max_change;
    result.max_abs = max_abs;
    if (max_change <= tol * max_abs) break;
  }
  return result;
}

}  // namespace

MTLX_WIDEST_VECTORS
CdResult cd_epochs(const CdProblem& p, double* W, double* Q, std::int64_t max_epochs, double tol) {
  GramRows rows{p, Q};
  return epochs(rows, p.k, p.T, p.alpha, p.l2, p.penalty, W, max_epochs, tol);
}

MTLX_WIDEST_VECTORS
CdResult cd_epochs_residual(const ResidualCdProblem& p, double* W, double* R, std::int64_t max_epochs, double tol) {
  if (p.active != nullptr && p.penalty == PenaltyKind::l1) return epochs_per_task_l1(p, W, R, max_epochs, tol);
  if (p.T <= kRowAtATimeTasks) {
    SingleResidualRows rows{p, R};
    return epochs(rows, p.k, p.T, p.alpha, p.l2, p.penalty, W, max_epochs, tol);
  }
  ResidualRows rows(p, R);
  return epochs(rows, p.k, p.T, p.alpha, p.l2, p.penalty, W, max_epochs, tol);
}

MTLX_WIDEST_VECTORS
CdResult cd_epochs_newton(const NewtonCdProblem& p, double* W, double* Q, double* db, std::int64_t max_epochs,
                          double tol) {
  NewtonRows rows{p, Q, db};
  CdResult result{0, 0.0, 0.0};
  while (result.epochs < max_epochs) {
    const double intercept_move = rows.intercept_steps();
    const CdResult epoch = epochs(rows, p.k, p.T, p.alpha, p.l2, p.penalty, W, 1, 0.0);
    ++result.epochs;
    result.max_change = std::max(epoch.max_change, intercept_move);
    result.max_abs = epoch.max_abs;
    if (epoch.max_change <= tol * epoch.max_abs && intercept_move <= tol * std::max(epoch.max_abs, 1.0)) break;
  }
  return result;
}

template <class Index>
MTLX_WIDEST_VECTORS CdResult cd_epochs_residual_sparse(const SparseResidualCdProblem<Index>& p, double* W, double* R,
                                                       std::int64_t max_epochs, double tol) {
  SparseResidualRows<Index> rows(p, R);
  return epochs(rows, p.k, p.T, p.alpha, p.l2, p.penalty, W, max_epochs, tol);
}

template CdResult cd_epochs_residual_sparse<std::int32_t>(const SparseResidualCdProblem<std::int32_t>&, double*,
                                                          double*, std::int64_t, double);
template CdResult cd_epochs_residual_sparse<std::int64_t>(const SparseResidualCdProblem<std::int64_t>&, double*,
                                                          double*, std::int64_t, double);

}  // namespace mtlx::cpu
