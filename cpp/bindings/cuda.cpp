// pybind11 bindings of the CUDA backend as mtlx._core.cuda (compiled only with MTLX_CUDA).
//
// Device arrays arrive as integers (their device pointers) checked by the Python layer
// (mtlx/gpu/arrays.py: dtype, shape, C order, device); the core never dereferences them on the host.
// Every call releases the GIL.
#include "mtlx/cuda.hpp"

#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace py = pybind11;

namespace {

template <class T>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

/// The stacked layout's description (every pointer a device pointer, 0 for null).
template <class Real>
mtlx::StackedTasks<Real> stacked_tasks(std::uintptr_t X, std::uintptr_t y, std::uintptr_t losses,
                                       std::uintptr_t loss_params, std::uintptr_t weights, std::uintptr_t sample_weight,
                                       std::int64_t n_tasks, std::int64_t n_features) {
  return {ptr<const Real>(X),
          ptr<const Real>(y),
          nullptr,
          ptr<const std::uint8_t>(losses),
          ptr<const double>(loss_params),
          ptr<const double>(weights),
          n_tasks,
          n_features,
          ptr<const Real>(sample_weight)};
}

mtlx::cuda::ChunkPlan chunk_plan(std::uintptr_t chunk_begin, std::uintptr_t chunk_task, std::uintptr_t task_chunks,
                                 std::int64_t n_chunks) {
  return {ptr<const std::int64_t>(chunk_begin), ptr<const std::int64_t>(chunk_task),
          ptr<const std::int64_t>(task_chunks), n_chunks};
}

template <class Real>
double stacked(std::uintptr_t X, std::uintptr_t y, std::uintptr_t losses, std::uintptr_t loss_params,
               std::uintptr_t weights, std::uintptr_t sample_weight, std::int64_t n_tasks, std::int64_t n_features,
               std::uintptr_t chunk_begin, std::uintptr_t chunk_task, std::uintptr_t task_chunks, std::int64_t n_chunks,
               std::uintptr_t Wt, std::uintptr_t b, std::uintptr_t gWt, std::uintptr_t gb, std::uintptr_t partial,
               std::uintptr_t chunk_loss, std::uintptr_t chunk_deriv, std::uintptr_t task_loss, std::uintptr_t total,
               std::uintptr_t stream) {
  const auto data = stacked_tasks<Real>(X, y, losses, loss_params, weights, sample_weight, n_tasks, n_features);
  const auto plan = chunk_plan(chunk_begin, chunk_task, task_chunks, n_chunks);
  const mtlx::cuda::Workspace work{ptr<double>(partial), ptr<double>(chunk_loss), ptr<double>(chunk_deriv),
                                   ptr<double>(task_loss), ptr<double>(total)};
  mtlx::GradientOut<Real> grad{ptr<Real>(gWt), ptr<Real>(gb)};
  py::gil_scoped_release release;
  return mtlx::cuda::loss_grad_stacked<Real>(data, plan, ptr<const Real>(Wt), ptr<const Real>(b), grad, work, stream);
}

template <class Real>
mtlx::cuda::DeviceCsr<Real> device_csr(std::uintptr_t data, std::uintptr_t indices, std::uintptr_t indptr) {
  return {ptr<const Real>(data), ptr<const std::int32_t>(indices), ptr<const std::int32_t>(indptr)};
}

template <class Real>
double stacked_csr(std::uintptr_t X_data, std::uintptr_t X_indices, std::uintptr_t X_indptr, std::uintptr_t XT_data,
                   std::uintptr_t XT_indices, std::uintptr_t XT_indptr, std::uintptr_t y, std::uintptr_t losses,
                   std::uintptr_t loss_params, std::uintptr_t weights, std::uintptr_t sample_weight,
                   std::int64_t n_tasks, std::int64_t n_features, std::uintptr_t chunk_begin, std::uintptr_t chunk_task,
                   std::uintptr_t task_chunks, std::int64_t n_chunks, std::uintptr_t Wt, std::uintptr_t b,
                   std::uintptr_t gWt, std::uintptr_t gb, std::uintptr_t r, std::uintptr_t chunk_loss,
                   std::uintptr_t chunk_deriv, std::uintptr_t task_loss, std::uintptr_t total, std::uintptr_t stream) {
  const auto data = stacked_tasks<Real>(0, y, losses, loss_params, weights, sample_weight, n_tasks, n_features);
  const auto X = device_csr<Real>(X_data, X_indices, X_indptr);
  const auto XT = device_csr<Real>(XT_data, XT_indices, XT_indptr);
  const auto plan = chunk_plan(chunk_begin, chunk_task, task_chunks, n_chunks);
  const mtlx::cuda::Workspace work{nullptr, ptr<double>(chunk_loss), ptr<double>(chunk_deriv), ptr<double>(task_loss),
                                   ptr<double>(total)};
  mtlx::GradientOut<Real> grad{ptr<Real>(gWt), ptr<Real>(gb)};
  py::gil_scoped_release release;
  return mtlx::cuda::loss_grad_stacked_csr<Real>(data, X, XT, plan, ptr<const Real>(Wt), ptr<const Real>(b), grad,
                                                 ptr<Real>(r), work, stream);
}

template <class Real>
double shared(std::uintptr_t Y, std::uintptr_t losses, std::uintptr_t loss_params, std::uintptr_t weights,
              std::uintptr_t sample_weight, std::int64_t n_samples, std::int64_t n_tasks, std::uintptr_t Z,
              std::uintptr_t b, std::uintptr_t R, std::uintptr_t gb, std::uintptr_t chunk_loss,
              std::uintptr_t chunk_deriv, std::uintptr_t task_loss, std::uintptr_t total, std::uintptr_t stream) {
  mtlx::SharedTasks<Real> data{nullptr,
                               ptr<const Real>(Y),
                               ptr<const std::uint8_t>(losses),
                               ptr<const double>(loss_params),
                               ptr<const double>(weights),
                               n_samples,
                               n_tasks,
                               0,
                               ptr<const Real>(sample_weight)};
  const mtlx::cuda::Workspace work{nullptr, ptr<double>(chunk_loss), ptr<double>(chunk_deriv), ptr<double>(task_loss),
                                   ptr<double>(total)};
  py::gil_scoped_release release;
  return mtlx::cuda::shared_residuals<Real>(data, ptr<const Real>(Z), ptr<const Real>(b), ptr<Real>(R), ptr<Real>(gb),
                                            work, stream);
}

template <class Real>
void bind_real(py::module_& cu, const std::string& suffix) {
  cu.def(("loss_grad_stacked_" + suffix).c_str(), &stacked<Real>, py::arg("X"), py::arg("y"), py::arg("losses"),
         py::arg("loss_params"), py::arg("weights"), py::arg("sample_weight"), py::arg("n_tasks"),
         py::arg("n_features"), py::arg("chunk_begin"), py::arg("chunk_task"), py::arg("task_chunks"),
         py::arg("n_chunks"), py::arg("Wt"), py::arg("b"), py::arg("gWt"), py::arg("gb"), py::arg("partial"),
         py::arg("chunk_loss"), py::arg("chunk_deriv"), py::arg("task_loss"), py::arg("total"), py::arg("stream"),
         "Stacked-layout loss (returned) and gradient on the device (mtlx/cuda.hpp). 0 is a null pointer.");
  cu.def(("loss_grad_stacked_csr_" + suffix).c_str(), &stacked_csr<Real>, py::arg("X_data"), py::arg("X_indices"),
         py::arg("X_indptr"), py::arg("XT_data"), py::arg("XT_indices"), py::arg("XT_indptr"), py::arg("y"),
         py::arg("losses"), py::arg("loss_params"), py::arg("weights"), py::arg("sample_weight"), py::arg("n_tasks"),
         py::arg("n_features"), py::arg("chunk_begin"), py::arg("chunk_task"), py::arg("task_chunks"),
         py::arg("n_chunks"), py::arg("Wt"), py::arg("b"), py::arg("gWt"), py::arg("gb"), py::arg("r"),
         py::arg("chunk_loss"), py::arg("chunk_deriv"), py::arg("task_loss"), py::arg("total"), py::arg("stream"),
         "Stacked-layout loss (returned) and gradient on the device for a CSR X and its transpose (int32 "
         "indices; mtlx/cuda.hpp). 0 is a null pointer.");
  cu.def(("shared_residuals_" + suffix).c_str(), &shared<Real>, py::arg("Y"), py::arg("losses"), py::arg("loss_params"),
         py::arg("weights"), py::arg("sample_weight"), py::arg("n_samples"), py::arg("n_tasks"), py::arg("Z"),
         py::arg("b"), py::arg("R"), py::arg("gb"), py::arg("chunk_loss"), py::arg("chunk_deriv"), py::arg("task_loss"),
         py::arg("total"), py::arg("stream"),
         "Shared-layout loss (returned), R = c s L'(Y, Z + b) and gb on the device (mtlx/cuda.hpp).");
}

mtlx::cuda::SumScratch scratch(std::uintptr_t partial, std::uintptr_t result) {
  return {ptr<double>(partial), ptr<double>(result)};
}

// FISTA's vector steps and the native proxes on float64 device vectors (mtlx/cuda.hpp).
void bind_fista_ops(py::module_& cu) {
  cu.def(
      "gradient_step",
      [](std::uintptr_t y, std::uintptr_t g, double step, std::uintptr_t out, std::int64_t n, std::uintptr_t stream) {
        py::gil_scoped_release release;
        mtlx::cuda::gradient_step(ptr<const double>(y), ptr<const double>(g), step, ptr<double>(out), n, stream);
      },
      py::arg("y"), py::arg("g"), py::arg("step"), py::arg("out"), py::arg("n"), py::arg("stream"),
      "out = y - step * g.");
  cu.def(
      "trial_sums",
      [](std::uintptr_t x_new, std::uintptr_t y, std::uintptr_t x, std::uintptr_t g, std::uintptr_t move,
         std::int64_t n, std::uintptr_t partial, std::uintptr_t result, std::uintptr_t stream) {
        double out[5];
        {
          py::gil_scoped_release release;
          mtlx::cuda::trial_sums(ptr<const double>(x_new), ptr<const double>(y), ptr<const double>(x),
                                 ptr<const double>(g), ptr<double>(move), n, scratch(partial, result), out, stream);
        }
        return py::make_tuple(out[0], out[1], out[2], out[3], out[4]);
      },
      py::arg("x_new"), py::arg("y"), py::arg("x"), py::arg("g"), py::arg("move"), py::arg("n"), py::arg("partial"),
      py::arg("result"), py::arg("stream"), "The five sums of a line-search trial; move = x_new - x.");
  cu.def(
      "extrapolate",
      [](std::uintptr_t x_new, std::uintptr_t move, double beta, std::uintptr_t y, std::int64_t n,
         std::uintptr_t stream) {
        py::gil_scoped_release release;
        mtlx::cuda::extrapolate(ptr<const double>(x_new), ptr<const double>(move), beta, ptr<double>(y), n, stream);
      },
      py::arg("x_new"), py::arg("move"), py::arg("beta"), py::arg("y"), py::arg("n"), py::arg("stream"),
      "y = x_new + beta * move.");
  cu.def(
      "extrapolate_gradient",
      [](std::uintptr_t g_new, std::uintptr_t g_x, std::uintptr_t move, double beta, std::uintptr_t g_y, std::int64_t n,
         std::uintptr_t partial, std::uintptr_t result, std::uintptr_t stream) {
        py::gil_scoped_release release;
        return mtlx::cuda::extrapolate_gradient(ptr<const double>(g_new), ptr<const double>(g_x),
                                                ptr<const double>(move), beta, ptr<double>(g_y), n,
                                                scratch(partial, result), stream);
      },
      py::arg("g_new"), py::arg("g_x"), py::arg("move"), py::arg("beta"), py::arg("g_y"), py::arg("n"),
      py::arg("partial"), py::arg("result"), py::arg("stream"),
      "g_y = (1 + beta) g_new - beta g_x; returns <g_new + g_y, move>.");
  cu.def(
      "squared_norm",
      [](std::uintptr_t a, std::int64_t n, std::uintptr_t partial, std::uintptr_t result, std::uintptr_t stream) {
        py::gil_scoped_release release;
        return mtlx::cuda::squared_norm(ptr<const double>(a), n, scratch(partial, result), stream);
      },
      py::arg("a"), py::arg("n"), py::arg("partial"), py::arg("result"), py::arg("stream"), "||a||^2.");
  cu.def(
      "prox",
      [](int kind, std::uintptr_t V, std::int64_t T, std::int64_t d, double tau, std::uintptr_t out,
         std::uintptr_t feature, std::uintptr_t partial, std::uintptr_t result, std::uintptr_t stream) {
        py::gil_scoped_release release;
        return mtlx::cuda::prox(static_cast<mtlx::PenaltyKind>(kind), ptr<const double>(V), T, d, tau, ptr<double>(out),
                                ptr<double>(feature), scratch(partial, result), stream);
      },
      py::arg("kind"), py::arg("V"), py::arg("T"), py::arg("d"), py::arg("tau"), py::arg("out"), py::arg("feature"),
      py::arg("partial"), py::arg("result"), py::arg("stream"),
      "out = prox of tau * g at V (l1, l21, mean; T x d float64); returns g(out).");
  cu.def(
      "penalty_value",
      [](int kind, std::uintptr_t V, std::int64_t T, std::int64_t d, std::uintptr_t feature, std::uintptr_t partial,
         std::uintptr_t result, std::uintptr_t stream) {
        py::gil_scoped_release release;
        return mtlx::cuda::penalty_value(static_cast<mtlx::PenaltyKind>(kind), ptr<const double>(V), T, d,
                                         ptr<double>(feature), scratch(partial, result), stream);
      },
      py::arg("kind"), py::arg("V"), py::arg("T"), py::arg("d"), py::arg("feature"), py::arg("partial"),
      py::arg("result"), py::arg("stream"), "g(V) for l1, l21, mean (T x d float64).");
}

}  // namespace

/// Adds the submodule mtlx._core.cuda to `m`.
void register_cuda(py::module_& m) {
  py::module_ cu = m.def_submodule("cuda", "The CUDA backend's kernels (device pointers as integers).");
  cu.attr("CHUNK_ROWS") = mtlx::cuda::kChunkRows;
  cu.attr("SUM_BLOCKS") = mtlx::cuda::kSumBlocks;
  cu.def("device_count", &mtlx::cuda::device_count, "Number of CUDA devices visible (0 without a driver).");
  cu.def("runtime_version", &mtlx::cuda::runtime_version, "CUDA runtime version the core was built with.");
  cu.def(
      "device_info",
      [](int index) {
        const mtlx::cuda::DeviceInfo info = mtlx::cuda::device_info(index);
        return py::make_tuple(info.name, info.free_bytes, info.total_bytes, info.major, info.minor);
      },
      py::arg("index"), "(name, free bytes, total bytes, major, minor) of device `index`.");
  cu.def(
      "copy_bytes",
      [](std::uintptr_t src, std::uintptr_t dst, std::size_t n_bytes, std::uintptr_t stream) {
        py::gil_scoped_release release;
        mtlx::cuda::copy_bytes(ptr<const void>(src), ptr<void>(dst), n_bytes, stream);
      },
      py::arg("src"), py::arg("dst"), py::arg("n_bytes"), py::arg("stream"),
      "dst = src (n_bytes), enqueued on stream: the bandwidth reference.");
  bind_real<double>(cu, "f64");
  bind_real<float>(cu, "f32");
  bind_fista_ops(cu);
}
