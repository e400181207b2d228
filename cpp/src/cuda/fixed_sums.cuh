// Sums over an index range in an order fixed by the range's length alone (not by the device):
// a grid of at most kSumBlocks blocks of kSumThreads threads, each thread striding the range in
// index order, each block adding its threads in a fixed tree, and one thread per sum adding the
// blocks in block order. Repeated runs, and runs on different GPUs, give the same bits.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "check.cuh"
#include "mtlx/cuda.hpp"

namespace mtlx::cuda {
namespace {

template <int N, class Body>
__global__ void partial_sums_kernel(std::int64_t n, Body body, double* partial) {
  __shared__ double shared[N][kSumThreads];
  double acc[N];
  for (int k = 0; k < N; ++k) acc[k] = 0.0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride)
    body(i, acc);
  for (int k = 0; k < N; ++k) shared[k][threadIdx.x] = acc[k];
  __syncthreads();
  for (int width = kSumThreads / 2; width > 0; width >>= 1) {
    if (static_cast<int>(threadIdx.x) < width)
      for (int k = 0; k < N; ++k) shared[k][threadIdx.x] += shared[k][threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    for (int k = 0; k < N; ++k) partial[blockIdx.x * N + k] = shared[k][0];
}

template <int N>
__global__ void finish_sums_kernel(const double* partial, int n_blocks, double* result) {
  const int k = threadIdx.x;
  if (k >= N) return;
  double s = 0.0;
  for (int b = 0; b < n_blocks; ++b) s += partial[b * N + k];
  result[k] = s;
}

/// The N sums of body(i, acc) over i in [0, n), copied to `host` (synchronizes `s`).
template <int N, class Body>
void fixed_sums(std::int64_t n, Body body, const SumScratch& scratch, double* host, cudaStream_t s) {
  const std::int64_t wanted = (n + kSumThreads - 1) / kSumThreads;
  const int blocks = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(kSumBlocks, wanted)));
  partial_sums_kernel<N><<<blocks, kSumThreads, 0, s>>>(n, body, scratch.partial);
  check_launch("partial_sums_kernel");
  finish_sums_kernel<N><<<1, 32, 0, s>>>(scratch.partial, blocks, scratch.result);
  check_launch("finish_sums_kernel");
  check(cudaMemcpyAsync(host, scratch.result, N * sizeof(double), cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
}

/// body(i) over i in [0, n): one thread per index.
template <class Body>
__global__ void for_each_kernel(std::int64_t n, Body body) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) body(i);
}

template <class Body>
void for_each(std::int64_t n, Body body, cudaStream_t s, const char* what) {
  if (n <= 0) return;
  for_each_kernel<<<blocks_for(n, kSumThreads), kSumThreads, 0, s>>>(n, body);
  check_launch(what);
}

}  // namespace
}  // namespace mtlx::cuda
