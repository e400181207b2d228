/// \file hd.hpp
/// The one macro that lets the same math compile for the CPU and for CUDA kernels.
#pragma once

#if defined(__CUDACC__)
/// Marks a function callable from host and device code when compiled by nvcc.
#define MTLX_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
/// On the CPU the functors are always inlined: the streaming kernels are compiled once per
/// instruction set, and an out-of-line copy would be one weak symbol shared by all those builds.
#define MTLX_HD inline __attribute__((always_inline))
#else
/// Other CPU compilers: plain inline functions.
#define MTLX_HD inline
#endif

/// Compiles a CPU loop for several instruction sets, chosen when the library loads (GCC's
/// function multi-versioning): the baseline build targets x86-64's SSE2, where a loop of square
/// roots and divisions runs two lanes wide. Not for functions whose results must agree across
/// machines bitwise (a clone may contract a * b + c into one rounding).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__CUDACC__) && \
    !defined(__SANITIZE_ADDRESS__)
#define MTLX_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MTLX_CLONES
#endif
