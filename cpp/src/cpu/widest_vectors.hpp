// Kernels compiled for AVX2 and AVX-512 beside the portable baseline, the best picked at load
// time (an ifunc; the whole call tree is inlined into each clone): the baseline's 2-wide vectors
// without FMA ran the residual epochs at a third of the speed. (Not under AddressSanitizer, whose
// runtime does not take ifuncs before it starts.)
#pragma once

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define MTLX_WIDEST_VECTORS __attribute__((target_clones("default", "avx2", "arch=x86-64-v4"), flatten))
#else
#define MTLX_WIDEST_VECTORS
#endif
