// loss_grad for the shared-input layout: X is read once per call in row blocks; the two
// products per block (margins Z = X_blk W, gradient G += X_blk^T R) go to BLAS, the loss and its
// derivative run elementwise over the small block of margins in between.
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

template <class Loss, class Real>
void loss_and_deriv(const Real* y, Real* z, double c, bool with_grad, double& loss) {
  loss += c * static_cast<double>(Loss::value(*y, *z));
  if (with_grad) *z = static_cast<Real>(c) * Loss::deriv(*y, *z);
}

}  // namespace

template <class Real>
double loss_grad(const SharedTasks<Real>& data, const Real* Wt, const Real* b, GradientOut<Real> grad, int n_threads) {
  const std::int64_t n = data.n_samples, T = data.n_tasks, d = data.n_features;
  const bool with_grad = grad.gWt != nullptr;
  const std::int64_t B = block_rows(d, sizeof(Real));
  std::vector<Real> Z(static_cast<std::size_t>(std::min(B, n) * T));
  std::vector<double> row_loss(static_cast<std::size_t>(std::min(B, n)));
  std::vector<double> gb(static_cast<std::size_t>(T), 0.0);
  if (with_grad) std::fill(grad.gWt, grad.gWt + T * d, Real(0));

  double total = 0.0;
  for (std::int64_t start = 0; start < n; start += B) {
    const std::int64_t rows = std::min(B, n - start);
    const Real* Xb = data.X + start * d;
    const Real* Yb = data.Y + start * T;
    // Column-major view: Xb is d x rows (ld d), Wt is d x T (ld d), Z is T x rows (ld T).
    lapack::gemm<Real>('T', 'N', static_cast<int>(T), static_cast<int>(rows), static_cast<int>(d), Real(1), Wt,
                       static_cast<int>(d), Xb, static_cast<int>(d), Real(0), Z.data(), static_cast<int>(T));
#pragma omp parallel for num_threads(n_threads) schedule(static) if (rows * T >= kMinParallelElements)
    for (std::int64_t i = 0; i < rows; ++i) {
      double loss = 0.0;
      Real* zi = Z.data() + i * T;
      const Real* yi = Yb + i * T;
      for (std::int64_t t = 0; t < T; ++t) {
        if (b) zi[t] += b[t];
        const double c = data.weights[t];
        switch (static_cast<LossKind>(data.losses[t])) {
          case LossKind::squared:
            loss_and_deriv<SquaredLoss>(yi + t, zi + t, c, with_grad, loss);
            break;
          case LossKind::logistic:
            loss_and_deriv<LogisticLoss>(yi + t, zi + t, c, with_grad, loss);
            break;
        }
      }
      row_loss[i] = loss;
    }
    for (std::int64_t i = 0; i < rows; ++i) total += row_loss[i];
    if (with_grad) {
      for (std::int64_t i = 0; i < rows; ++i) {
        const Real* ri = Z.data() + i * T;
        for (std::int64_t t = 0; t < T; ++t) gb[t] += ri[t];
      }
      // G (d x T, ld d) += Xb (d x rows) * R^T, with R = Z now holding c_t L'(y, z) (T x rows).
      lapack::gemm<Real>('N', 'T', static_cast<int>(d), static_cast<int>(T), static_cast<int>(rows), Real(1), Xb,
                         static_cast<int>(d), Z.data(), static_cast<int>(T), Real(1), grad.gWt, static_cast<int>(d));
    }
  }
  if (with_grad) {
    for (std::int64_t t = 0; t < T; ++t) grad.gb[t] = static_cast<Real>(gb[t]);
  }
  return total;
}

template double loss_grad<double>(const SharedTasks<double>&, const double*, const double*, GradientOut<double>, int);
template double loss_grad<float>(const SharedTasks<float>&, const float*, const float*, GradientOut<float>, int);

}  // namespace mtlx::cpu
