// Device queries and the plain copy kernel (the bandwidth reference of bench/bench_gpu.py).
#include <cuda_runtime.h>

#include "check.cuh"
#include "mtlx/cuda.hpp"

namespace mtlx::cuda {
namespace {

/// 16-byte words, grid-stride: the copy every memory-bound kernel is measured against.
__global__ void copy_kernel(const uint4* src, uint4* dst, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n; i += stride)
    dst[i] = src[i];
}

__global__ void copy_tail_kernel(const unsigned char* src, unsigned char* dst, std::size_t n) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = src[i];
}

}  // namespace

void copy_bytes(const void* src, void* dst, std::size_t n_bytes, std::uintptr_t stream) {
  const cudaStream_t s = as_stream(stream);
  const std::size_t words = n_bytes / sizeof(uint4);
  if (words > 0) {
    int device = 0, sms = 1;
    check(cudaGetDevice(&device), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
    copy_kernel<<<static_cast<unsigned>(sms) * 8u, 256, 0, s>>>(static_cast<const uint4*>(src),
                                                                static_cast<uint4*>(dst), words);
    check_launch("copy_kernel");
  }
  const std::size_t tail = n_bytes - words * sizeof(uint4);
  if (tail > 0) {
    copy_tail_kernel<<<1, 256, 0, s>>>(static_cast<const unsigned char*>(src) + words * sizeof(uint4),
                                       static_cast<unsigned char*>(dst) + words * sizeof(uint4), tail);
    check_launch("copy_tail_kernel");
  }
}

int device_count() {
  int n = 0;
  // No driver or no device: CUDA reports an error; for mtlx that is simply zero devices.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of the failed query
    return 0;
  }
  return n;
}

DeviceInfo device_info(int index) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
  int current = 0;
  check(cudaGetDevice(&current), "cudaGetDevice");
  check(cudaSetDevice(index), "cudaSetDevice");
  std::size_t free_bytes = 0, total_bytes = 0;
  const cudaError_t status = cudaMemGetInfo(&free_bytes, &total_bytes);
  check(cudaSetDevice(current), "cudaSetDevice");
  check(status, "cudaMemGetInfo");
  return DeviceInfo{prop.name, free_bytes, total_bytes, prop.major, prop.minor};
}

int runtime_version() { return CUDART_VERSION; }

}  // namespace mtlx::cuda
