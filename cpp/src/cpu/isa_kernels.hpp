// The data-streaming kernels that are built once per instruction set, and their dispatcher.
#pragma once

#include "mtlx/grad.hpp"
#include "mtlx/tile_gemm.hpp"

#ifndef MTLX_ISA
#define MTLX_ISA generic
#endif

namespace mtlx::cpu {

#define MTLX_DECLARE_ISA_KERNELS(isa)                                                                             \
  namespace isa {                                                                                                 \
  template <class Real>                                                                                           \
  double loss_grad_stacked(const StackedTasks<Real>& data, const Real* Wt, const Real* b, GradientOut<Real> grad, \
                           int n_threads);                                                                        \
  }

MTLX_DECLARE_ISA_KERNELS(generic)
MTLX_DECLARE_ISA_KERNELS(avx2)
MTLX_DECLARE_ISA_KERNELS(avx512)
#undef MTLX_DECLARE_ISA_KERNELS

// The register-tiled GEMM (tile_gemm.cpp), built for AVX2 and AVX-512.
#define MTLX_DECLARE_TILE_GEMM(isa)                                                                                   \
  namespace isa {                                                                                                     \
  template <class Real>                                                                                               \
  void tile_gemm(std::int64_t m, std::int64_t n, std::int64_t k, const Real* A, std::int64_t a_row,                   \
                 std::int64_t a_col, const Real* B, std::int64_t b_row, std::int64_t b_col, bool accumulate, Real* C, \
                 std::int64_t ldc, int n_threads);                                                                    \
  }

MTLX_DECLARE_TILE_GEMM(avx2)
MTLX_DECLARE_TILE_GEMM(avx512)
#undef MTLX_DECLARE_TILE_GEMM

}  // namespace mtlx::cpu
