// Picks the stacked-gradient kernel built for the widest instruction set this CPU supports.
#include <stdexcept>
#include <string>

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

bool has_tile_gemm() {
#if defined(MTLX_HAVE_X86_KERNELS)
  return isa() != Isa::generic;
#else
  return false;
#endif
}

template <class Real>
bool tile_gemm(std::int64_t m, std::int64_t n, std::int64_t k, const Real* A, std::int64_t a_row, std::int64_t a_col,
               const Real* B, std::int64_t b_row, std::int64_t b_col, bool accumulate, Real* C, std::int64_t ldc,
               int n_threads, const char* name) {
  Isa chosen = isa();
  if (name != nullptr) {
    const std::string wanted(name);
    const Isa asked = wanted == "avx512" ? Isa::avx512 : wanted == "avx2" ? Isa::avx2 : Isa::generic;
    if (asked == Isa::generic) throw std::invalid_argument("no register-tiled GEMM is built for '" + wanted + "'");
    if (static_cast<int>(asked) > static_cast<int>(chosen)) return false;  // (the CPU lacks it)
    chosen = asked;
  }
  switch (chosen) {
#if defined(MTLX_HAVE_X86_KERNELS)
    case Isa::avx512:
      avx512::tile_gemm(m, n, k, A, a_row, a_col, B, b_row, b_col, accumulate, C, ldc, n_threads);
      return true;
    case Isa::avx2:
      avx2::tile_gemm(m, n, k, A, a_row, a_col, B, b_row, b_col, accumulate, C, ldc, n_threads);
      return true;
#endif
    default:
      return false;
  }
}

template bool tile_gemm<double>(std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t, std::int64_t,
                                const double*, std::int64_t, std::int64_t, bool, double*, std::int64_t, int,
                                const char*);
template bool tile_gemm<float>(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, std::int64_t,
                               const float*, std::int64_t, std::int64_t, bool, float*, std::int64_t, int, const char*);

}  // namespace mtlx::cpu
