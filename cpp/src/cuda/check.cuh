// Turning CUDA errors into C++ exceptions (pybind11 raises them as RuntimeError in Python).
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace mtlx::cuda {

/// Throws std::runtime_error naming the call and CUDA's message when `status` is an error.
inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status));
}

/// After a kernel launch: a bad configuration is reported here, not at the next synchronization.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline cudaStream_t as_stream(std::uintptr_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

/// Blocks of `threads` covering n items (at least one block).
inline unsigned blocks_for(long long n, int threads) {
  const long long b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b > 0 ? b : 1);
}

}  // namespace mtlx::cuda
