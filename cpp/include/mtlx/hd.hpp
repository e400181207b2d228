/// \file hd.hpp
/// The one macro that lets the same math compile for the CPU and for CUDA kernels.
#pragma once

#if defined(__CUDACC__)
/// Marks a function callable from host and device code when compiled by nvcc.
#define MTLX_HD __host__ __device__ __forceinline__
#else
/// On the CPU build the functors are plain inline functions.
#define MTLX_HD inline
#endif
