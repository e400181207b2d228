// The stacked (ragged per-task rows) loss and gradient on the device: one block per chunk of
// kChunkRows rows of one task, a warp per row for its margin (lanes striding the features, a
// butterfly of shuffles that leaves the sum in every lane).
//
// Two ways to the gradient, chosen by d alone (so the summation order is a function of the shape):
//  * narrow rows (the warps' accumulators, kWarps x d, fit in 48 KB of shared memory): each warp
//    adds r_i x_i into its own accumulator right after the margin, re-reading the row it just read
//    (an L1 hit), and the block adds its warps in order: X crosses the memory bus once;
//  * wide rows: the block's threads sweep the features after all margins, each summing r_i x_ij
//    over the chunk's rows in order (the rows are read a second time, from L2 where they still are).
#include <cuda_runtime.h>

#include "check.cuh"
#include "mtlx/cuda.hpp"
#include "mtlx/losses.hpp"
#include "reduce.cuh"

namespace mtlx::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
/// Shared memory the warps' accumulators may take (the default per-block limit of every GPU).
constexpr std::size_t kWarpAccumulatorBytes = 48 * 1024;

/// The margin's loss terms of row i of task t (c s L and c s L'; zero for a zero weight).
template <class Real>
struct RowTerms {
  double value;
  Real deriv;
};

template <class Real>
__device__ RowTerms<Real> row_terms(const StackedTasks<Real>& data, std::int64_t t, std::int64_t i, Real z) {
  const double c = data.weights[t];
  const Real yi = data.y[i];
  const Real s = data.sample_weight != nullptr ? data.sample_weight[i] : Real(1);
  RowTerms<Real> out{0.0, Real(0)};
  visit_loss(static_cast<LossKind>(data.losses[t]), data.loss_params[t], [&](const auto& loss) {
    // A zero weight drops the row whatever its loss (an infinite loss times 0 would be NaN); a task
    // of weight 0 counts nothing (the CPU skips it).
    if (s != Real(0) && c != 0.0) {
      out.value = c * static_cast<double>(s) * loss.value(yi, z);
      out.deriv = static_cast<Real>(c * static_cast<double>(s * loss.deriv(yi, z)));
    }
  });
  return out;
}

/// The chunk's loss and derivative sums, in row order (one thread).
template <class Real>
__device__ void chunk_sums(const double* v, const Real* r, int n_rows, double* loss, double* deriv) {
  double l = 0.0, g = 0.0;
  for (int q = 0; q < n_rows; ++q) {
    l += v[q];
    g += static_cast<double>(r[q]);
  }
  *loss = l;
  *deriv = g;
}

/// x . w over a warp: lanes stride the features, then a butterfly (every lane gets the sum).
template <class Real>
__device__ Real warp_dot(const Real* x, const Real* w, std::int64_t d, int lane) {
  Real acc = 0;
  for (std::int64_t j = lane; j < d; j += 32) acc += x[j] * w[j];
  for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
  return acc;
}

/// This block's chunk: its index, task, rows, the task's coefficients and intercept, and the
/// thread's lane and warp.
template <class Real>
struct Chunk {
  std::int64_t k, t, row0, d;
  int n_rows, lane, warp;
  const Real* w;
  Real bt;
  __device__ Chunk(const StackedTasks<Real>& data, const ChunkPlan& plan, const Real* Wt, const Real* b)
      : k(blockIdx.x),
        t(plan.chunk_task[blockIdx.x]),
        row0(plan.chunk_begin[blockIdx.x]),
        d(data.n_features),
        n_rows(static_cast<int>(plan.chunk_begin[blockIdx.x + 1] - plan.chunk_begin[blockIdx.x])),
        lane(static_cast<int>(threadIdx.x & 31)),
        warp(static_cast<int>(threadIdx.x >> 5)),
        w(Wt + plan.chunk_task[blockIdx.x] * data.n_features),
        bt(b != nullptr ? b[plan.chunk_task[blockIdx.x]] : Real(0)) {}

  /// Row q of the chunk, by this warp: its margin and loss terms (all lanes), v[q] and r[q] stored by lane 0.
  __device__ RowTerms<Real> row(const StackedTasks<Real>& data, int q, double* v, Real* r) const {
    const std::int64_t i = row0 + q;
    const RowTerms<Real> terms = row_terms(data, t, i, warp_dot(data.X + i * d, w, d, lane) + bt);
    if (lane == 0) {
      v[q] = terms.value;
      r[q] = terms.deriv;
    }
    return terms;
  }
};

/// The narrow-row kernel (see the file comment); dynamic shared memory: kWarps x d Reals.
template <class Real>
__global__ void stacked_warp_kernel(StackedTasks<Real> data, ChunkPlan plan, const Real* Wt, const Real* b,
                                    bool with_grad, double* partial, double* chunk_loss, double* chunk_deriv) {
  extern __shared__ unsigned char shared_bytes[];
  Real* acc = reinterpret_cast<Real*>(shared_bytes);
  __shared__ Real r[kChunkRows];
  __shared__ double v[kChunkRows];
  const Chunk<Real> c(data, plan, Wt, b);
  const std::int64_t k = c.k, row0 = c.row0, d = c.d;
  const int n_rows = c.n_rows;
  if (with_grad)
    for (std::int64_t j = threadIdx.x; j < kWarps * d; j += blockDim.x) acc[j] = Real(0);
  __syncthreads();
  Real* mine = acc + c.warp * d;
  for (int q = c.warp; q < n_rows; q += kWarps) {
    const RowTerms<Real> terms = c.row(data, q, v, r);
    if (with_grad) {
      const Real* x = data.X + (row0 + q) * d;  // (just read by the margin: an L1 hit)
      for (std::int64_t j = c.lane; j < d; j += 32) mine[j] += terms.deriv * x[j];
    }
  }
  __syncthreads();
  if (with_grad) {
    for (std::int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      Real sum = 0;
      for (int u = 0; u < kWarps; ++u) sum += acc[u * d + j];
      partial[k * d + j] = static_cast<double>(sum);
    }
  }
  if (threadIdx.x == 0) chunk_sums(v, r, n_rows, chunk_loss + k, chunk_deriv + k);
}

template <class Real>
__global__ void stacked_chunk_kernel(StackedTasks<Real> data, ChunkPlan plan, const Real* Wt, const Real* b,
                                     bool with_grad, double* partial, double* chunk_loss, double* chunk_deriv) {
  __shared__ Real r[kChunkRows];
  __shared__ double v[kChunkRows];
  const Chunk<Real> c(data, plan, Wt, b);
  const std::int64_t k = c.k, row0 = c.row0, d = c.d;
  const int n_rows = c.n_rows;
  for (int q = c.warp; q < n_rows; q += kWarps) c.row(data, q, v, r);
  __syncthreads();
  if (with_grad) {
    const Real* X0 = data.X + row0 * d;
    for (std::int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      Real acc = 0;
      for (int q = 0; q < n_rows; ++q) acc += r[q] * X0[q * d + j];
      partial[k * d + j] = static_cast<double>(acc);
    }
  }
  if (threadIdx.x == 0) chunk_sums(v, r, n_rows, chunk_loss + k, chunk_deriv + k);
}

/// gWt[t, j] = sum of partial[k, j] over task t's chunks, in chunk order (threads over j).
template <class Real>
__global__ void task_gradient_kernel(const double* partial, const std::int64_t* task_chunks, std::int64_t d,
                                     Real* gWt) {
  // Tasks on x (up to 2^31 - 1 blocks), feature blocks on y (at most 65535: d up to 16.7 million).
  const std::int64_t t = blockIdx.x;
  const std::int64_t j = blockIdx.y * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (j >= d) return;
  double s = 0.0;
  for (std::int64_t k = task_chunks[t]; k < task_chunks[t + 1]; ++k) s += partial[k * d + j];
  gWt[t * d + j] = static_cast<Real>(s);
}

}  // namespace

template <class Real>
double loss_grad_stacked(const StackedTasks<Real>& data, const ChunkPlan& plan, const Real* Wt, const Real* b,
                         GradientOut<Real> grad, const Workspace& work, std::uintptr_t stream) {
  const cudaStream_t s = as_stream(stream);
  const bool with_grad = grad.gWt != nullptr;
  const std::int64_t T = data.n_tasks, d = data.n_features;
  if (plan.n_chunks > 0) {
    const unsigned blocks = static_cast<unsigned>(plan.n_chunks);
    const std::size_t accumulators = static_cast<std::size_t>(kWarps) * static_cast<std::size_t>(d) * sizeof(Real);
    if (accumulators <= kWarpAccumulatorBytes) {
      stacked_warp_kernel<Real><<<blocks, kThreads, with_grad ? accumulators : 0, s>>>(
          data, plan, Wt, b, with_grad, work.partial, work.chunk_loss, work.chunk_deriv);
      check_launch("stacked_warp_kernel");
    } else {
      stacked_chunk_kernel<Real>
          <<<blocks, kThreads, 0, s>>>(data, plan, Wt, b, with_grad, work.partial, work.chunk_loss, work.chunk_deriv);
      check_launch("stacked_chunk_kernel");
    }
  }
  if (T > 0) {
    if (with_grad && d > 0) {
      const dim3 grid(static_cast<unsigned>(T), blocks_for(d, kThreads));
      task_gradient_kernel<Real><<<grid, kThreads, 0, s>>>(work.partial, plan.task_chunks, d, grad.gWt);
      check_launch("task_gradient_kernel");
    }
    task_scalars_kernel<Real>
        <<<blocks_for(T, kThreads), kThreads, 0, s>>>(work.chunk_loss, work.chunk_deriv, plan.task_chunks,
                                                      plan.n_chunks, T, work.task_loss, with_grad ? grad.gb : nullptr);
    check_launch("task_scalars_kernel");
  }
  return total_loss(work, T, s);
}

template double loss_grad_stacked<double>(const StackedTasks<double>&, const ChunkPlan&, const double*, const double*,
                                          GradientOut<double>, const Workspace&, std::uintptr_t);
template double loss_grad_stacked<float>(const StackedTasks<float>&, const ChunkPlan&, const float*, const float*,
                                         GradientOut<float>, const Workspace&, std::uintptr_t);

}  // namespace mtlx::cuda
