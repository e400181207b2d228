// loss_grad for ragged tasks stacked row-wise: OpenMP over fixed (task, row block) chunks.
//
// This file is compiled once per instruction set (MTLX_ISA names the namespace: generic, avx2,
// avx512); isa_dispatch.cpp picks the widest one the running CPU supports, so one build runs
// everywhere and still uses the vector units of the machine it runs on.
#include <algorithm>
#include <vector>

#include "isa_kernels.hpp"
#include "row_kernel.hpp"

namespace mtlx::cpu::MTLX_ISA {
namespace {

struct Chunk {
  std::int64_t task, begin, end;
};

// Rows per chunk depend on d only (never on the thread count), so the reduction order, and
// hence every bit of the result, is the same on 1 or 64 threads. ~256 KiB of X per chunk keeps
// scheduling overhead small while splitting big tasks finely enough to balance two-plus cores.
constexpr std::int64_t kChunkBytes = 256 * 1024;

std::int64_t rows_per_chunk(std::int64_t d, std::size_t real_size) {
  return std::clamp<std::int64_t>(kChunkBytes / std::max<std::int64_t>(1, d * static_cast<std::int64_t>(real_size)), 64,
                                  1 << 16);
}

template <class Real, bool WithGrad>
double run_chunk(const StackedTasks<Real>& data, const Chunk& c, const Real* Wt, const Real* b, Real* g, Real& gb) {
  const std::int64_t d = data.n_features;
  const Real* X = data.X + c.begin * d;
  const Real* y = data.y + c.begin;
  const Real* w = Wt + c.task * d;
  const Real bt = b ? b[c.task] : Real(0);
  const std::int64_t rows = c.end - c.begin;
  // A task of weight 0 adds nothing: its rows are not read (the columns of a multiclass task, whose
  // softmax loss mtlx.objective adds itself, reach the core at weight 0).
  if (data.weights[c.task] == 0.0) return 0.0;
  return visit_loss(static_cast<LossKind>(data.losses[c.task]), data.loss_params[c.task], [&](auto loss) {
    if (data.sample_weight)
      return row_block<decltype(loss), WithGrad, true>(loss, X, y, data.sample_weight + c.begin, rows, d, w, bt, g, gb);
    return row_block<decltype(loss), WithGrad, false>(loss, X, y, static_cast<const Real*>(nullptr), rows, d, w, bt, g,
                                                      gb);
  });
}

template <class Real, bool WithGrad>
double stacked_pass(const StackedTasks<Real>& data, const Real* Wt, const Real* b, GradientOut<Real> grad,
                    int n_threads) {
  const std::int64_t T = data.n_tasks, d = data.n_features;
  const std::int64_t step = rows_per_chunk(d, sizeof(Real));

  std::vector<Chunk> chunks;
  std::vector<std::int64_t> first_chunk(T + 1);
  for (std::int64_t t = 0; t < T; ++t) {
    first_chunk[t] = static_cast<std::int64_t>(chunks.size());
    for (std::int64_t r = data.offsets[t]; r < data.offsets[t + 1]; r += step) {
      chunks.push_back({t, r, std::min(r + step, data.offsets[t + 1])});
    }
  }
  first_chunk[T] = static_cast<std::int64_t>(chunks.size());
  const std::int64_t n_chunks = first_chunk[T];

  // Per chunk: [loss, gb, g_0 .. g_{d-1}] in double, reduced per task below in chunk order.
  const std::int64_t stride = WithGrad ? d + 2 : 1;
  std::vector<double> partial(static_cast<std::size_t>(n_chunks * stride));
  std::vector<double> task_loss(T);

  // At most one thread per chunk's worth of X: waking a sleeping (passive) thread costs about
  // as much as summing a chunk, so a call of one chunk or less runs on the calling thread. The
  // chunks, hence the bits of the result, are the same for any count.
  const std::int64_t x_bytes = data.offsets[T] * d * static_cast<std::int64_t>(sizeof(Real));
  const int used =
      static_cast<int>(std::clamp<std::int64_t>((x_bytes + kChunkBytes - 1) / kChunkBytes, 1, std::max(1, n_threads)));

#pragma omp parallel num_threads(used)
  {
    std::vector<Real> g(WithGrad ? d : 0);
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t c = 0; c < n_chunks; ++c) {
      double* out = partial.data() + c * stride;
      Real gb = 0;
      std::fill(g.begin(), g.end(), Real(0));
      out[0] = run_chunk<Real, WithGrad>(data, chunks[c], Wt, b, g.data(), gb);
      if constexpr (WithGrad) {
        out[1] = gb;
        for (std::int64_t j = 0; j < d; ++j) out[2 + j] = g[j];
      }
    }

    std::vector<double> acc(WithGrad ? d + 1 : 0);
#pragma omp for schedule(static)
    for (std::int64_t t = 0; t < T; ++t) {
      const double c_t = data.weights[t];
      double loss = 0.0;
      for (std::int64_t c = first_chunk[t]; c < first_chunk[t + 1]; ++c) loss += partial[c * stride];
      task_loss[t] = c_t * loss;
      if constexpr (WithGrad) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (std::int64_t c = first_chunk[t]; c < first_chunk[t + 1]; ++c) {
          const double* p = partial.data() + c * stride + 1;
          for (std::int64_t j = 0; j <= d; ++j) acc[j] += p[j];
        }
        grad.gb[t] = static_cast<Real>(c_t * acc[0]);
        Real* gw = grad.gWt + t * d;
        for (std::int64_t j = 0; j < d; ++j) gw[j] = static_cast<Real>(c_t * acc[j + 1]);
      }
    }
  }
  double total = 0.0;
  for (std::int64_t t = 0; t < T; ++t) total += task_loss[t];
  return total;
}

}  // namespace

template <class Real>
double loss_grad_stacked(const StackedTasks<Real>& data, const Real* Wt, const Real* b, GradientOut<Real> grad,
                         int n_threads) {
  if (grad.gWt != nullptr) return stacked_pass<Real, true>(data, Wt, b, grad, n_threads);
  return stacked_pass<Real, false>(data, Wt, b, grad, n_threads);
}

template double loss_grad_stacked<double>(const StackedTasks<double>&, const double*, const double*,
                                          GradientOut<double>, int);
template double loss_grad_stacked<float>(const StackedTasks<float>&, const float*, const float*, GradientOut<float>,
                                         int);

}  // namespace mtlx::cpu::MTLX_ISA
