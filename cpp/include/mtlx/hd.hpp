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
