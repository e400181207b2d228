// The data-streaming kernels that are built once per instruction set, and their dispatcher.
#pragma once

#include "mtlx/grad.hpp"

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

}  // namespace mtlx::cpu
