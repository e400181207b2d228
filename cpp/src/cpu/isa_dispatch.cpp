// Picks the stacked-gradient kernel built for the widest instruction set this CPU supports.
#include "isa_kernels.hpp"

namespace mtlx::cpu {
namespace {

enum class Isa { generic, avx2, avx512 };

Isa detect() {
#if defined(MTLX_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq")) {
    return Isa::avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::generic;
}

Isa isa() {
  static const Isa chosen = detect();
  return chosen;
}

}  // namespace

const char* active_isa() {
  switch (isa()) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    default:
      return "generic";
  }
}

template <class Real>
double loss_grad(const StackedTasks<Real>& data, const Real* Wt, const Real* b, GradientOut<Real> grad, int n_threads) {
  switch (isa()) {
#if defined(MTLX_HAVE_X86_KERNELS)
    case Isa::avx512:
      return avx512::loss_grad_stacked(data, Wt, b, grad, n_threads);
    case Isa::avx2:
      return avx2::loss_grad_stacked(data, Wt, b, grad, n_threads);
#endif
    default:
      return generic::loss_grad_stacked(data, Wt, b, grad, n_threads);
  }
}

template double loss_grad<double>(const StackedTasks<double>&, const double*, const double*, GradientOut<double>, int);
template double loss_grad<float>(const StackedTasks<float>&, const float*, const float*, GradientOut<float>, int);

}  // namespace mtlx::cpu
