// pybind11 bindings of the core as the private module mtlx._core.
//
// Arrays are bound as C-contiguous arrays of the exact dtype with .noconvert(): a wrong dtype
// or layout is a TypeError here, never a hidden copy. The Python package converts once, at
// the edge. Every core call releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#include "mtlx/coordinate_descent.hpp"
#include "mtlx/csr_products.hpp"
#include "mtlx/dense_columns.hpp"
#include "mtlx/exact_sum.hpp"
#include "mtlx/fista_ops.hpp"
#include "mtlx/grad.hpp"
#include "mtlx/grad_sparse.hpp"
#include "mtlx/gram.hpp"
#include "mtlx/lapack.hpp"
#include "mtlx/prox.hpp"
#include "mtlx/row_norms.hpp"
#include "mtlx/tile_gemm.hpp"
#include "mtlx/trunk.hpp"

namespace py = pybind11;

#ifdef MTLX_HAVE_CUDA
void register_cuda(py::module_& m);  // cuda.cpp: the submodule mtlx._core.cuda
#endif

namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

// Buffers a solve makes and frees over and over in varying sizes (a working set's gathered
// columns) get mapped pages of their own from 1 MiB on, unmapped when the array dies. From the
// heap (glibc serves blocks of up to 32 MiB there once large ones have been freed), a larger
// successor lands beyond the freed block and the process holds both: +9 MB, 6% of the matrix,
// on bench_memory's 10^7-entry sparse fit.
template <class T>
py::array_t<T> own_pages_array(std::int64_t n) {
#if defined(__unix__) || defined(__APPLE__)
  constexpr std::size_t kOwnPagesFrom = std::size_t{1} << 20;
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
  if (bytes >= kOwnPagesFrom) {
    void* pages = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED) throw std::bad_alloc();
    struct Mapping {
      void* pages;
      std::size_t bytes;
    };
    py::capsule owner(new Mapping{pages, bytes}, [](void* p) {
      auto* mapping = static_cast<Mapping*>(p);
      munmap(mapping->pages, mapping->bytes);
      delete mapping;
    });
    return py::array_t<T>({static_cast<py::ssize_t>(n)}, {static_cast<py::ssize_t>(sizeof(T))}, static_cast<T*>(pages),
                          owner);
  }
#endif
  return py::array_t<T>(static_cast<py::ssize_t>(n));
}

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

void expect_shape(const py::array& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  py::ssize_t i = 0;
  for (py::ssize_t s : shape) ok = ok && a.shape(i++) == s;
  if (!ok) {
    std::string want = "(";
    i = 0;
    for (py::ssize_t s : shape) want += (i++ ? ", " : "") + std::to_string(s);
    want += shape.size() == 1 ? ",)" : ")";
    throw std::invalid_argument(std::string(name) + " has shape " + shape_of(a) + ", expected " + want);
  }
}

void expect_writable(const py::array& a, const char* name) {
  if (!a.writeable()) throw std::invalid_argument(std::string(name) + " is read-only");
}

template <class Real>
mtlx::GradientOut<Real> gradient_out(std::optional<carray<Real>>& gWt, std::optional<carray<Real>>& gb, py::ssize_t T,
                                     py::ssize_t d) {
  if (gWt.has_value() != gb.has_value()) throw std::invalid_argument("pass both gW and gb, or neither");
  if (!gWt) return {};
  expect_shape(*gWt, "gW", {T, d});
  expect_shape(*gb, "gb", {T});
  expect_writable(*gWt, "gW");
  expect_writable(*gb, "gb");
  return {gWt->mutable_data(), gb->mutable_data()};
}

template <class Real>
const Real* intercepts(const std::optional<carray<Real>>& b, py::ssize_t T) {
  if (!b) return nullptr;
  expect_shape(*b, "b", {T});
  return b->data();
}

void check_offsets(const carray<std::int64_t>& offsets, py::ssize_t n) {
  if (offsets.ndim() != 1 || offsets.shape(0) < 1) throw std::invalid_argument("offsets must be 1-D, non-empty");
  const py::ssize_t T = offsets.shape(0) - 1;
  const std::int64_t* off = offsets.data();
  if (off[0] != 0 || off[T] != n) throw std::invalid_argument("offsets must start at 0 and end at n_samples");
  for (py::ssize_t t = 0; t < T; ++t) {
    if (off[t + 1] < off[t]) throw std::invalid_argument("offsets must be non-decreasing");
  }
}

// The penalty of a coordinate-descent call (l1 or l21), with alpha and l2 checked.
mtlx::PenaltyKind cd_penalty(std::uint8_t penalty, double alpha, double l2) {
  const auto kind = static_cast<mtlx::PenaltyKind>(penalty);
  if (kind != mtlx::PenaltyKind::l1 && kind != mtlx::PenaltyKind::l21) {
    throw std::invalid_argument("coordinate descent handles the l1 and l21 penalties, got code " +
                                std::to_string(penalty));
  }
  if (!(alpha >= 0.0) || !(l2 >= 0.0)) throw std::invalid_argument("alpha and l2 must be >= 0");
  return kind;
}

void expect_task_vectors(const carray<std::uint8_t>& losses, const carray<double>& loss_params,
                         const carray<double>& weights, py::ssize_t T) {
  expect_shape(losses, "losses", {T});
  expect_shape(loss_params, "loss_params", {T});
  expect_shape(weights, "weights", {T});
  for (py::ssize_t t = 0; t < T; ++t) {
    if (losses.data()[t] >= mtlx::kNumLossKinds) {
      throw std::invalid_argument("task " + std::to_string(t) + ": unknown loss code " +
                                  std::to_string(losses.data()[t]));
    }
    const double p = loss_params.data()[t];
    if (static_cast<mtlx::LossKind>(losses.data()[t]) == mtlx::LossKind::huber && !(p > 0.0 && p < HUGE_VAL)) {
      throw std::invalid_argument("task " + std::to_string(t) + ": the Huber loss needs a finite epsilon > 0, got " +
                                  std::to_string(p));
    }
  }
}

mtlx::LossKind checked_loss(std::uint8_t kind, double param) {
  if (kind >= mtlx::kNumLossKinds) throw std::invalid_argument("unknown loss code " + std::to_string(kind));
  const auto loss = static_cast<mtlx::LossKind>(kind);
  if (loss == mtlx::LossKind::huber && !(param > 0.0 && param < HUGE_VAL))
    throw std::invalid_argument("the Huber loss needs a finite epsilon > 0, got " + std::to_string(param));
  return loss;
}

// The common length of a pointwise call's 1-D arrays: the targets y and the margins (or duals).
py::ssize_t pointwise_length(const carray<double>& y, const carray<double>& other, const char* name) {
  if (y.ndim() != 1) throw std::invalid_argument("y must be 1-D, got shape " + shape_of(y));
  expect_shape(other, name, {y.shape(0)});
  return y.shape(0);
}

template <class Real>
void bind_dtype(py::module_& m) {
  m.def(
      "loss_grad_stacked",
      [](const carray<Real>& X, const carray<Real>& y, const carray<std::int64_t>& offsets,
         const carray<std::uint8_t>& losses, const carray<double>& loss_params, const carray<double>& weights,
         const carray<Real>& Wt, const std::optional<carray<Real>>& b, std::optional<carray<Real>> gWt,
         std::optional<carray<Real>> gb, int n_threads, const std::optional<carray<Real>>& sample_weight) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        const py::ssize_t n = X.shape(0), d = X.shape(1);
        expect_shape(y, "y", {n});
        if (sample_weight) expect_shape(*sample_weight, "sample_weight", {n});
        check_offsets(offsets, n);
        const py::ssize_t T = offsets.shape(0) - 1;
        const std::int64_t* off = offsets.data();
        expect_task_vectors(losses, loss_params, weights, T);
        expect_shape(Wt, "Wt", {T, d});
        mtlx::StackedTasks<Real> data{X.data(), y.data(), off, losses.data(), loss_params.data(), weights.data(), T, d};
        if (sample_weight) data.sample_weight = sample_weight->data();
        const Real* bp = intercepts(b, T);
        auto grad = gradient_out(gWt, gb, T, d);
        py::gil_scoped_release release;
        return mtlx::cpu::loss_grad(data, Wt.data(), bp, grad, n_threads);
      },
      py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("offsets").noconvert(), py::arg("losses").noconvert(),
      py::arg("loss_params").noconvert(), py::arg("weights").noconvert(), py::arg("Wt").noconvert(),
      py::arg("b").noconvert(), py::arg("gWt").noconvert(), py::arg("gb").noconvert(), py::arg("n_threads"),
      py::arg("sample_weight").noconvert() = py::none(),
      "Loss of stacked ragged tasks at (Wt, b), rows weighted by sample_weight; gradient into (gWt, gb) if given.");

  m.def(
      "loss_grad_shared",
      [](const carray<Real>& X, const carray<Real>& Y, const carray<std::uint8_t>& losses,
         const carray<double>& loss_params, const carray<double>& weights, const carray<Real>& Wt,
         const std::optional<carray<Real>>& b, std::optional<carray<Real>> gWt, std::optional<carray<Real>> gb,
         int n_threads, const std::optional<carray<Real>>& sample_weight) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        if (Y.ndim() != 2) throw std::invalid_argument("Y must be 2-D, got shape " + shape_of(Y));
        const py::ssize_t n = X.shape(0), d = X.shape(1), T = Y.shape(1);
        expect_shape(Y, "Y", {n, T});
        if (sample_weight) expect_shape(*sample_weight, "sample_weight", {n, T});
        expect_task_vectors(losses, loss_params, weights, T);
        expect_shape(Wt, "Wt", {T, d});
        mtlx::SharedTasks<Real> data{X.data(), Y.data(), losses.data(), loss_params.data(), weights.data(), n, T, d};
        if (sample_weight) data.sample_weight = sample_weight->data();
        const Real* bp = intercepts(b, T);
        auto grad = gradient_out(gWt, gb, T, d);
        py::gil_scoped_release release;
        return mtlx::cpu::loss_grad(data, Wt.data(), bp, grad, n_threads);
      },
      py::arg("X").noconvert(), py::arg("Y").noconvert(), py::arg("losses").noconvert(),
      py::arg("loss_params").noconvert(), py::arg("weights").noconvert(), py::arg("Wt").noconvert(),
      py::arg("b").noconvert(), py::arg("gWt").noconvert(), py::arg("gb").noconvert(), py::arg("n_threads"),
      py::arg("sample_weight").noconvert() = py::none(),
      "Loss of tasks sharing one X at (Wt, b), entries weighted by sample_weight; gradient into (gWt, gb) if given.");

  m.def(
      "prox",
      [](int kind, const carray<Real>& V, Real tau, carray<Real> out, int n_threads) {
        if (V.ndim() != 2) throw std::invalid_argument("V must be 2-D, got shape " + shape_of(V));
        if (kind < 0 || kind >= mtlx::kNumPenaltyKinds) {
          throw std::invalid_argument("unknown penalty code " + std::to_string(kind));
        }
        expect_shape(out, "out", {V.shape(0), V.shape(1)});
        expect_writable(out, "out");
        const Real* v = V.data();
        Real* o = out.mutable_data();
        py::gil_scoped_release release;
        return mtlx::cpu::prox(static_cast<mtlx::PenaltyKind>(kind), v, V.shape(0), V.shape(1), tau, o, n_threads);
      },
      py::arg("kind"), py::arg("V").noconvert(), py::arg("tau"), py::arg("out").noconvert(), py::arg("n_threads"),
      "out = prox of tau*g at V (V, out: T x d row-major, may alias); returns g(out).");

  m.def(
      "penalty_value",
      [](int kind, const carray<Real>& W, int n_threads) {
        if (W.ndim() != 2) throw std::invalid_argument("W must be 2-D, got shape " + shape_of(W));
        if (kind < 0 || kind >= mtlx::kNumPenaltyKinds) {
          throw std::invalid_argument("unknown penalty code " + std::to_string(kind));
        }
        const Real* w = W.data();
        py::gil_scoped_release release;
        return mtlx::cpu::penalty_value(static_cast<mtlx::PenaltyKind>(kind), w, W.shape(0), W.shape(1), n_threads);
      },
      py::arg("kind"), py::arg("W").noconvert(), py::arg("n_threads"), "g(W) for W stored T x d row-major.");

  m.def(
      "first_nonfinite_row",
      [](const carray<Real>& X, int n_threads) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        const Real* x = X.data();
        py::gil_scoped_release release;
        return mtlx::cpu::first_nonfinite_row(x, X.shape(0), X.shape(1), n_threads);
      },
      py::arg("X").noconvert(), py::arg("n_threads"), "Index of the first row with NaN or inf, or -1.");

  m.def(
      "read_sum",
      [](const carray<Real>& a, int n_threads) {
        const Real* p = a.data();
        const py::ssize_t size = a.size();
        py::gil_scoped_release release;
        return mtlx::cpu::read_sum(p, size, n_threads);
      },
      py::arg("a").noconvert(), py::arg("n_threads"), "Sum of all entries: a plain read loop (bandwidth reference).");
}

// The Gram statistics (n_gram matrices of d x d) and the per-task reference point, checked.
template <class Real>
struct GramArgs {
  mtlx::GramStats<Real> stats;
  mtlx::GramReference<Real> ref;
};

template <class Real>
GramArgs<Real> gram_args(const carray<Real>& G, const carray<Real>& s, carray<Real>& W0, carray<Real>& b0,
                         carray<double>& P0, carray<double>& rr0, carray<double>& rs0, py::ssize_t n_gram,
                         py::ssize_t T, py::ssize_t d) {
  expect_shape(G, "G", {n_gram, d, d});
  expect_shape(s, "s", {n_gram, d});
  expect_shape(W0, "W0", {T, d});
  expect_shape(b0, "b0", {T});
  expect_shape(P0, "P0", {T, d});
  expect_shape(rr0, "rr0", {T});
  expect_shape(rs0, "rs0", {T});
  for (const py::array* a : {static_cast<py::array*>(&W0), static_cast<py::array*>(&b0), static_cast<py::array*>(&P0),
                             static_cast<py::array*>(&rr0), static_cast<py::array*>(&rs0)}) {
    expect_writable(*a, "the Gram reference");
  }
  return {{G.data(), s.data()},
          {W0.mutable_data(), b0.mutable_data(), P0.mutable_data(), rr0.mutable_data(), rs0.mutable_data()}};
}

template <class Real>
void bind_gram(py::module_& m) {
  m.def(
      "gram_build_stacked",
      [](const carray<Real>& X, const carray<std::int64_t>& offsets, carray<Real> G, carray<Real> s) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        const py::ssize_t n = X.shape(0), d = X.shape(1);
        check_offsets(offsets, n);
        const py::ssize_t T = offsets.shape(0) - 1;
        expect_shape(G, "G", {T, d, d});
        expect_shape(s, "s", {T, d});
        expect_writable(G, "G");
        expect_writable(s, "s");
        mtlx::StackedTasks<Real> data{X.data(), nullptr, offsets.data(), nullptr, nullptr, nullptr, T, d};
        Real* g = G.mutable_data();
        Real* sp = s.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::gram_build(data, g, sp);
      },
      py::arg("X").noconvert(), py::arg("offsets").noconvert(), py::arg("G").noconvert(), py::arg("s").noconvert(),
      "G[t] = X_t' X_t and s[t] = X_t' 1 for the stacked tasks.");

  m.def(
      "gram_build_shared",
      [](const carray<Real>& X, carray<Real> G, carray<Real> s) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        const py::ssize_t n = X.shape(0), d = X.shape(1);
        expect_shape(G, "G", {1, d, d});
        expect_shape(s, "s", {1, d});
        expect_writable(G, "G");
        expect_writable(s, "s");
        mtlx::SharedTasks<Real> data{X.data(), nullptr, nullptr, nullptr, nullptr, n, 0, d};
        Real* g = G.mutable_data();
        Real* sp = s.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::gram_build(data, g, sp);
      },
      py::arg("X").noconvert(), py::arg("G").noconvert(), py::arg("s").noconvert(),
      "G[0] = X' X and s[0] = X' 1 for the shared X.");

  m.def(
      "loss_grad_gram_stacked",
      [](const carray<Real>& X, const carray<Real>& y, const carray<std::int64_t>& offsets,
         const carray<double>& weights, const carray<Real>& G, const carray<Real>& s, carray<Real> W0, carray<Real> b0,
         carray<double> P0, carray<double> rr0, carray<double> rs0, const carray<Real>& Wt,
         const std::optional<carray<Real>>& b, std::optional<carray<Real>> gWt, std::optional<carray<Real>> gb,
         int n_threads) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        const py::ssize_t n = X.shape(0), d = X.shape(1);
        expect_shape(y, "y", {n});
        check_offsets(offsets, n);
        const py::ssize_t T = offsets.shape(0) - 1;
        expect_shape(weights, "weights", {T});
        expect_shape(Wt, "Wt", {T, d});
        auto args = gram_args(G, s, W0, b0, P0, rr0, rs0, T, T, d);
        mtlx::StackedTasks<Real> data{X.data(), y.data(), offsets.data(), nullptr, nullptr, weights.data(), T, d};
        const Real* bp = intercepts(b, T);
        auto grad = gradient_out(gWt, gb, T, d);
        py::gil_scoped_release release;
        return mtlx::cpu::loss_grad_gram(data, args.stats, args.ref, Wt.data(), bp, grad, n_threads);
      },
      py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("offsets").noconvert(),
      py::arg("weights").noconvert(), py::arg("G").noconvert(), py::arg("s").noconvert(), py::arg("W0").noconvert(),
      py::arg("b0").noconvert(), py::arg("P0").noconvert(), py::arg("rr0").noconvert(), py::arg("rs0").noconvert(),
      py::arg("Wt").noconvert(), py::arg("b").noconvert(), py::arg("gWt").noconvert(), py::arg("gb").noconvert(),
      py::arg("n_threads"),
      "Squared loss of stacked tasks from their Gram statistics; moves the reference (W0, ...) in place.");

  m.def(
      "loss_grad_gram_shared",
      [](const carray<Real>& X, const carray<Real>& Y, const carray<double>& weights, const carray<Real>& G,
         const carray<Real>& s, carray<Real> W0, carray<Real> b0, carray<double> P0, carray<double> rr0,
         carray<double> rs0, const carray<Real>& Wt, const std::optional<carray<Real>>& b,
         std::optional<carray<Real>> gWt, std::optional<carray<Real>> gb, int n_threads) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        if (Y.ndim() != 2) throw std::invalid_argument("Y must be 2-D, got shape " + shape_of(Y));
        const py::ssize_t n = X.shape(0), d = X.shape(1), T = Y.shape(1);
        expect_shape(Y, "Y", {n, T});
        expect_shape(weights, "weights", {T});
        expect_shape(Wt, "Wt", {T, d});
        auto args = gram_args(G, s, W0, b0, P0, rr0, rs0, 1, T, d);
        mtlx::SharedTasks<Real> data{X.data(), Y.data(), nullptr, nullptr, weights.data(), n, T, d};
        const Real* bp = intercepts(b, T);
        auto grad = gradient_out(gWt, gb, T, d);
        py::gil_scoped_release release;
        return mtlx::cpu::loss_grad_gram(data, args.stats, args.ref, Wt.data(), bp, grad, n_threads);
      },
      py::arg("X").noconvert(), py::arg("Y").noconvert(), py::arg("weights").noconvert(), py::arg("G").noconvert(),
      py::arg("s").noconvert(), py::arg("W0").noconvert(), py::arg("b0").noconvert(), py::arg("P0").noconvert(),
      py::arg("rr0").noconvert(), py::arg("rs0").noconvert(), py::arg("Wt").noconvert(), py::arg("b").noconvert(),
      py::arg("gWt").noconvert(), py::arg("gb").noconvert(), py::arg("n_threads"),
      "Squared loss of tasks sharing X from the Gram statistics; moves the reference (W0, ...) in place.");
}

}  // namespace

// The solver's fused vector steps: 1-D arrays of one length n (the flat parameter vector).
template <class Real>
void bind_fista_ops(py::module_& m) {
  auto same_length = [](std::initializer_list<const py::array*> arrays) {
    const py::ssize_t n = (*arrays.begin())->size();
    for (const py::array* a : arrays) {
      if (a->ndim() != 1 || a->size() != n) throw std::invalid_argument("fista vectors must be 1-D of one length");
    }
    return static_cast<std::int64_t>(n);
  };
  m.def(
      "gradient_step",
      [same_length](const carray<Real>& y, const carray<Real>& g, double step, carray<Real> out) {
        const std::int64_t n = same_length({&y, &g, &out});
        expect_writable(out, "out");
        Real* o = out.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::gradient_step(y.data(), g.data(), step, o, n);
      },
      py::arg("y").noconvert(), py::arg("g").noconvert(), py::arg("step"), py::arg("out").noconvert(),
      "out = y - step * g.");
  m.def(
      "trial_sums",
      [same_length](const carray<Real>& x_new, const carray<Real>& y, const carray<Real>& x, const carray<Real>& g,
                    carray<Real> move) {
        const std::int64_t n = same_length({&x_new, &y, &x, &g, &move});
        expect_writable(move, "move");
        Real* mv = move.mutable_data();
        mtlx::TrialSums s{};
        {
          py::gil_scoped_release release;
          s = mtlx::cpu::trial_sums(x_new.data(), y.data(), x.data(), g.data(), mv, n);
        }
        return py::make_tuple(s.step_sq, s.linear, s.trial_sq, s.extrap_sq, s.momentum);
      },
      py::arg("x_new").noconvert(), py::arg("y").noconvert(), py::arg("x").noconvert(), py::arg("g").noconvert(),
      py::arg("move").noconvert(),
      "(||x+ - y||^2, <g, x+ - y>, ||x+||^2, ||y||^2, <x+ - y, x+ - x>); writes move = x+ - x.");
  m.def(
      "extrapolate",
      [same_length](const carray<Real>& x_new, const carray<Real>& move, double beta, carray<Real> y) {
        const std::int64_t n = same_length({&x_new, &move, &y});
        expect_writable(y, "y");
        Real* out = y.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::extrapolate(x_new.data(), move.data(), beta, out, n);
      },
      py::arg("x_new").noconvert(), py::arg("move").noconvert(), py::arg("beta"), py::arg("y").noconvert(),
      "y = x+ + beta * move.");
  m.def(
      "extrapolate_gradient",
      [same_length](const carray<Real>& g_new, const carray<Real>& g_x, const carray<Real>& move, double beta,
                    carray<Real> g_y) {
        const std::int64_t n = same_length({&g_new, &g_x, &move, &g_y});
        expect_writable(g_y, "g_y");
        Real* out = g_y.mutable_data();
        py::gil_scoped_release release;
        return mtlx::cpu::extrapolate_gradient(g_new.data(), g_x.data(), move.data(), beta, out, n);
      },
      py::arg("g_new").noconvert(), py::arg("g_x").noconvert(), py::arg("move").noconvert(), py::arg("beta"),
      py::arg("g_y").noconvert(), "g_y = (1 + beta) g_new - beta g_x; returns <g_new + g_y, move>.");
}

void bind_coordinate_descent(py::module_& m) {
  m.def(
      "gather_block",
      [](const carray<double>& H, const carray<std::int64_t>& rows, const carray<std::int64_t>& cols,
         carray<double> out) {
        if (H.ndim() != 3) throw std::invalid_argument("H must be 3-D, got shape " + shape_of(H));
        const py::ssize_t g = H.shape(0), n_rows = H.shape(1), n_cols = H.shape(2);
        const py::ssize_t kr = rows.size(), kc = cols.size();
        expect_shape(out, "out", {g, kr, kc});
        expect_writable(out, "out");
        for (py::ssize_t i = 0; i < kr; ++i) {
          if (rows.data()[i] < 0 || rows.data()[i] >= n_rows) throw std::invalid_argument("rows out of range");
        }
        for (py::ssize_t j = 0; j < kc; ++j) {
          if (cols.data()[j] < 0 || cols.data()[j] >= n_cols) throw std::invalid_argument("cols out of range");
        }
        const double* h = H.data();
        const std::int64_t* r = rows.data();
        const std::int64_t* c = cols.data();
        double* o = out.mutable_data();
        py::gil_scoped_release release;
        for (py::ssize_t t = 0; t < g; ++t) {
          for (py::ssize_t i = 0; i < kr; ++i) {
            const double* src = h + (t * n_rows + r[i]) * n_cols;
            double* dst = o + (t * kr + i) * kc;
            for (py::ssize_t j = 0; j < kc; ++j) dst[j] = src[c[j]];
          }
        }
      },
      py::arg("H").noconvert(), py::arg("rows").noconvert(), py::arg("cols").noconvert(), py::arg("out").noconvert(),
      "out[t] = H[t][rows][:, cols] (the working set's block of the Gram-row cache).");
  m.def(
      "cd_epochs",
      [](const carray<double>& H, const carray<double>& B, const carray<double>& c, double alpha, double l2,
         std::uint8_t penalty, carray<double> W, carray<double> Q, std::int64_t max_epochs, double tol) {
        if (B.ndim() != 2) throw std::invalid_argument("B must be 2-D (k, T), got shape " + shape_of(B));
        const py::ssize_t k = B.shape(0), T = B.shape(1);
        if (H.ndim() != 3 || (H.shape(0) != 1 && H.shape(0) != T) || H.shape(1) != k || H.shape(2) != k) {
          throw std::invalid_argument("H has shape " + shape_of(H) + ", expected (1, " + std::to_string(k) + ", " +
                                      std::to_string(k) + ") or (" + std::to_string(T) + ", " + std::to_string(k) +
                                      ", " + std::to_string(k) + ")");
        }
        expect_shape(c, "c", {T});
        expect_shape(W, "W", {k, T});
        expect_shape(Q, "Q", {k, T});
        expect_writable(W, "W");
        expect_writable(Q, "Q");
        const auto kind = cd_penalty(penalty, alpha, l2);
        const mtlx::cpu::CdProblem problem{H.data(), H.shape(0), B.data(), c.data(), k, T, alpha, l2, kind};
        double* w = W.mutable_data();
        double* q = Q.mutable_data();
        mtlx::cpu::CdResult r{};
        {
          py::gil_scoped_release release;
          r = mtlx::cpu::cd_epochs(problem, w, q, max_epochs, tol);
        }
        return py::make_tuple(r.epochs, r.max_change, r.max_abs);
      },
      py::arg("H").noconvert(), py::arg("B").noconvert(), py::arg("c").noconvert(), py::arg("alpha"), py::arg("l2"),
      py::arg("penalty"), py::arg("W").noconvert(), py::arg("Q").noconvert(), py::arg("max_epochs"), py::arg("tol"),
      "Block coordinate descent epochs on Gram statistics (l1 / l21 least squares); returns "
      "(epochs, max_change, max_abs). Q must hold [H_t w_t]_t and is kept consistent with W.");

  m.def(
      "cd_epochs_residual",
      [](const carray<double>& X, const carray<double>& sq_norms, const carray<double>& c, double alpha, double l2,
         std::uint8_t penalty, carray<double> W, carray<double> R, std::int64_t max_epochs, double tol,
         const std::optional<carray<std::uint8_t>>& active) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D (k, n), got shape " + shape_of(X));
        if (W.ndim() != 2) throw std::invalid_argument("W must be 2-D (k, T), got shape " + shape_of(W));
        const py::ssize_t k = X.shape(0), n = X.shape(1), T = W.shape(1);
        expect_shape(sq_norms, "sq_norms", {k});
        expect_shape(c, "c", {T});
        expect_shape(W, "W", {k, T});
        expect_shape(R, "R", {T, n});
        expect_writable(W, "W");
        expect_writable(R, "R");
        const auto kind = cd_penalty(penalty, alpha, l2);
        if (active) {
          expect_shape(*active, "active", {k, T});
          if (kind != mtlx::PenaltyKind::l1)
            throw std::invalid_argument("active (per-task working sets) is for l1 only");
        }
        const mtlx::cpu::ResidualCdProblem problem{
            X.data(), sq_norms.data(), c.data(), k, n, T, alpha, l2, kind, active ? active->data() : nullptr};
        double* w = W.mutable_data();
        double* r = R.mutable_data();
        mtlx::cpu::CdResult result{};
        {
          py::gil_scoped_release release;
          result = mtlx::cpu::cd_epochs_residual(problem, w, r, max_epochs, tol);
        }
        return py::make_tuple(result.epochs, result.max_change, result.max_abs);
      },
      py::arg("X").noconvert(), py::arg("sq_norms").noconvert(), py::arg("c").noconvert(), py::arg("alpha"),
      py::arg("l2"), py::arg("penalty"), py::arg("W").noconvert(), py::arg("R").noconvert(), py::arg("max_epochs"),
      py::arg("tol"), py::arg("active").noconvert() = py::none(),
      "Block coordinate descent epochs from the data (l1 / l21 least squares, shared X): X holds the working "
      "set's columns as rows (k, n), R = Y - X_S W (T, n) is kept consistent with W; with l1, active (k, T) "
      "limits the epochs to those entries; returns (epochs, max_change, max_abs).");
}

void bind_newton_coordinate_descent(py::module_& m) {
  m.def(
      "cd_epochs_newton",
      [](const carray<double>& X, const carray<double>& G, const carray<double>& H, const carray<double>& curv,
         const std::optional<carray<double>>& g_b, const std::optional<carray<double>>& h_b, double alpha, double l2,
         std::uint8_t penalty, carray<double> W, carray<double> Q, carray<double> db, std::int64_t max_epochs,
         double tol, const std::optional<carray<std::int64_t>>& offsets,
         const std::optional<carray<std::uint8_t>>& active) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D (k, n), got shape " + shape_of(X));
        if (W.ndim() != 2) throw std::invalid_argument("W must be 2-D (k, T), got shape " + shape_of(W));
        const py::ssize_t k = X.shape(0), n = X.shape(1), T = W.shape(1);
        expect_shape(G, "G", {k, T});
        if (offsets) {  // stacked tasks: one entry of H and Q per row, the offsets checked to index within n
          expect_shape(*offsets, "offsets", {T + 1});
          const std::int64_t* o = offsets->data();
          if (o[0] != 0 || o[T] != n) throw std::invalid_argument("offsets must run from 0 to n");
          for (py::ssize_t t = 0; t < T; ++t) {
            if (o[t + 1] < o[t]) throw std::invalid_argument("offsets must be non-decreasing");
          }
          expect_shape(H, "H", {n});
          expect_shape(Q, "Q", {n});
        } else {
          expect_shape(H, "H", {T, n});
          expect_shape(Q, "Q", {T, n});
        }
        expect_shape(curv, "curv", {k, T});
        expect_shape(W, "W", {k, T});
        expect_shape(db, "db", {T});
        if (active) expect_shape(*active, "active", {k, T});
        if (g_b.has_value() != h_b.has_value()) throw std::invalid_argument("g_b and h_b go together");
        if (g_b) {
          expect_shape(*g_b, "g_b", {T});
          expect_shape(*h_b, "h_b", {T});
        }
        expect_writable(W, "W");
        expect_writable(Q, "Q");
        expect_writable(db, "db");
        const auto kind = cd_penalty(penalty, alpha, l2);
        if (active && kind != mtlx::PenaltyKind::l1)
          throw std::invalid_argument("active (per-task working sets) is for l1 only");
        const mtlx::cpu::NewtonCdProblem problem{X.data(),
                                                 G.data(),
                                                 H.data(),
                                                 curv.data(),
                                                 g_b ? g_b->data() : nullptr,
                                                 h_b ? h_b->data() : nullptr,
                                                 k,
                                                 n,
                                                 T,
                                                 alpha,
                                                 l2,
                                                 kind,
                                                 offsets ? offsets->data() : nullptr,
                                                 active ? active->data() : nullptr};
        double* w = W.mutable_data();
        double* q = Q.mutable_data();
        double* d = db.mutable_data();
        mtlx::cpu::CdResult result{};
        {
          py::gil_scoped_release release;
          result = mtlx::cpu::cd_epochs_newton(problem, w, q, d, max_epochs, tol);
        }
        return py::make_tuple(result.epochs, result.max_change, result.max_abs);
      },
      py::arg("X").noconvert(), py::arg("G").noconvert(), py::arg("H").noconvert(), py::arg("curv").noconvert(),
      py::arg("g_b").noconvert(), py::arg("h_b").noconvert(), py::arg("alpha"), py::arg("l2"), py::arg("penalty"),
      py::arg("W").noconvert(), py::arg("Q").noconvert(), py::arg("db").noconvert(), py::arg("max_epochs"),
      py::arg("tol"), py::arg("offsets").noconvert() = py::none(), py::arg("active").noconvert() = py::none(),
      "Coordinate-descent epochs on the quadratic model of a proximal Newton step (mtlx/coordinate_descent.hpp: "
      "NewtonCdProblem): W (k, T), Q = X_S (W - W0) + db ((T, n), or (n,) with stacked offsets) and db (T) updated in "
      "place; returns (epochs, "
      "max_change, max_abs).");
}

// For the gathered columns of a sparse X, in its index type (int32 or int64).
template <class Index>
void bind_sparse_coordinate_descent(py::module_& m) {
  m.def(
      "cd_epochs_residual_sparse",
      [](const carray<double>& data, const carray<Index>& indices, const carray<Index>& indptr,
         const std::optional<carray<double>>& xbar, const carray<double>& col_sums, const carray<double>& sq_norms,
         const carray<double>& c, double alpha, double l2, std::uint8_t penalty, carray<double> W, carray<double> R,
         std::int64_t max_epochs, double tol) {
        if (W.ndim() != 2) throw std::invalid_argument("W must be 2-D (k, T), got shape " + shape_of(W));
        if (R.ndim() != 2) throw std::invalid_argument("R must be 2-D (n, T), got shape " + shape_of(R));
        const py::ssize_t k = W.shape(0), T = W.shape(1), n = R.shape(0);
        expect_shape(indptr, "indptr", {k + 1});
        expect_shape(indices, "indices", {data.shape(0)});
        expect_shape(col_sums, "col_sums", {k});
        expect_shape(sq_norms, "sq_norms", {k});
        expect_shape(c, "c", {T});
        expect_shape(R, "R", {n, T});
        if (xbar) expect_shape(*xbar, "xbar", {k});
        expect_writable(W, "W");
        expect_writable(R, "R");
        const Index* ip = indptr.data();
        if (ip[0] != 0 || ip[k] != data.shape(0)) throw std::invalid_argument("indptr must run from 0 to nnz");
        for (py::ssize_t j = 0; j < k; ++j) {
          if (ip[j + 1] < ip[j]) throw std::invalid_argument("indptr must be non-decreasing");
        }
        for (py::ssize_t q = 0; q < data.shape(0); ++q) {
          if (indices.data()[q] < 0 || indices.data()[q] >= n)
            throw std::invalid_argument("a row index is out of range");
        }
        const auto kind = cd_penalty(penalty, alpha, l2);
        const mtlx::cpu::SparseResidualCdProblem<Index> problem{data.data(),
                                                                indices.data(),
                                                                ip,
                                                                xbar ? xbar->data() : nullptr,
                                                                col_sums.data(),
                                                                sq_norms.data(),
                                                                c.data(),
                                                                k,
                                                                n,
                                                                T,
                                                                alpha,
                                                                l2,
                                                                kind};
        double* w = W.mutable_data();
        double* r = R.mutable_data();
        mtlx::cpu::CdResult result{};
        {
          py::gil_scoped_release release;
          result = mtlx::cpu::cd_epochs_residual_sparse(problem, w, r, max_epochs, tol);
        }
        return py::make_tuple(result.epochs, result.max_change, result.max_abs);
      },
      py::arg("data").noconvert(), py::arg("indices").noconvert(), py::arg("indptr").noconvert(),
      py::arg("xbar").noconvert(), py::arg("col_sums").noconvert(), py::arg("sq_norms").noconvert(),
      py::arg("c").noconvert(), py::arg("alpha"), py::arg("l2"), py::arg("penalty"), py::arg("W").noconvert(),
      py::arg("R").noconvert(), py::arg("max_epochs"), py::arg("tol"),
      "Coordinate-descent epochs on the residuals R (n x T, row-major) of a sparse working set (its columns as "
      "CSR rows, centered implicitly by xbar); returns (epochs, max_change, max_abs).");
}

// The dense passes of the working-set engine (mtlx/dense_columns.hpp) for X of one dtype.
template <class Real>
void bind_dense_columns(py::module_& m) {
  m.def(
      "dense_transpose_times",
      [](const carray<Real>& X, const carray<double>& R, carray<double> out, int n_threads) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        if (R.ndim() != 2 || R.shape(1) != X.shape(0))
          throw std::invalid_argument("R must be (m, " + std::to_string(X.shape(0)) + "), got shape " + shape_of(R));
        expect_shape(out, "out", {R.shape(0), X.shape(1)});
        expect_writable(out, "out");
        const Real* x = X.data();
        const double* r = R.data();
        double* o = out.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::dense_transpose_times(x, X.shape(0), X.shape(1), r, R.shape(0), o, n_threads);
      },
      py::arg("X").noconvert(), py::arg("R").noconvert(), py::arg("out").noconvert(), py::arg("n_threads") = 1,
      "out (m x d) = R X for a row-major X (n x d) and R (m x n), float64 out: one pass over X.");
  m.def(
      "dense_gather_columns",
      [](const carray<Real>& X, const carray<std::int64_t>& features, std::optional<carray<double>> xbar,
         carray<double> out, int n_threads) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        const std::int64_t k = features.size(), d = X.shape(1);
        const std::int64_t* f = features.data();
        for (std::int64_t p = 0; p < k; ++p) {
          if (f[p] < 0 || f[p] >= d)
            throw std::invalid_argument("features out of range [0, " + std::to_string(d) + ")");
        }
        if (xbar && xbar->size() != k) throw std::invalid_argument("xbar must hold one mean per feature");
        expect_shape(out, "out", {k, X.shape(0)});
        expect_writable(out, "out");
        const Real* x = X.data();
        const double* mean = xbar ? xbar->data() : nullptr;
        double* o = out.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::dense_gather_columns(x, X.shape(0), d, f, k, mean, o, n_threads);
      },
      py::arg("X").noconvert(), py::arg("features").noconvert(), py::arg("xbar").noconvert(),
      py::arg("out").noconvert(), py::arg("n_threads") = 1,
      "out (k x n) = (X[:, features] - xbar)' in float64 (xbar None: not centered), each column contiguous.");
}

// The CSR kernels for one (dtype, index dtype) pair. The Python layer checked the matrix once
// (scipy's format check: sorted-or-not indices within [0, n_cols), indptr non-decreasing);
// here only what a call can change: the shapes.
template <class Real, class Index>
void bind_csr(py::module_& m) {
  auto csr_of = [](const carray<Real>& data, const carray<Index>& indices, const carray<Index>& indptr,
                   std::int64_t n_cols) {
    if (data.ndim() != 1 || indices.ndim() != 1 || indptr.ndim() != 1 || indptr.shape(0) < 1)
      throw std::invalid_argument("data, indices and indptr must be 1-D (indptr non-empty)");
    const std::int64_t n = indptr.shape(0) - 1;
    if (indices.shape(0) != data.shape(0) || indptr.data()[0] != 0 ||
        static_cast<std::int64_t>(indptr.data()[n]) != data.shape(0))
      throw std::invalid_argument("indptr must start at 0 and end at the number of stored entries");
    if (n_cols < 0) throw std::invalid_argument("n_cols must be >= 0");
    return mtlx::CsrMatrix<Real, Index>{data.data(), indices.data(), indptr.data(), n, n_cols};
  };
  m.def(
      "csr_transpose_times",
      [csr_of](const carray<Real>& data, const carray<Index>& indices, const carray<Index>& indptr, std::int64_t n_cols,
               const carray<double>& R, carray<double> out, bool accumulate, int n_threads) {
        const auto X = csr_of(data, indices, indptr, n_cols);
        if (R.ndim() != 2 || R.shape(0) != X.n_rows)
          throw std::invalid_argument("R must be (n_rows, T), got shape " + shape_of(R));
        expect_shape(out, "out", {n_cols, R.shape(1)});
        expect_writable(out, "out");
        const double* r = R.data();
        double* o = out.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::csr_transpose_times(X, r, R.shape(1), o, accumulate, n_threads);
      },
      py::arg("data").noconvert(), py::arg("indices").noconvert(), py::arg("indptr").noconvert(), py::arg("n_cols"),
      py::arg("R").noconvert(), py::arg("out").noconvert(), py::arg("accumulate") = false, py::arg("n_threads") = 1,
      "out = X' R (out += X' R with accumulate) for a CSR X (n x d), R (n x T) and out (d x T), float64.");
  m.def(
      "csr_times",
      [csr_of](const carray<Real>& data, const carray<Index>& indices, const carray<Index>& indptr, std::int64_t n_cols,
               const carray<double>& V, carray<double> out, bool accumulate, int n_threads) {
        const auto X = csr_of(data, indices, indptr, n_cols);
        if (V.ndim() != 2 || V.shape(0) != n_cols)
          throw std::invalid_argument("V must be (n_cols, T), got shape " + shape_of(V));
        expect_shape(out, "out", {X.n_rows, V.shape(1)});
        expect_writable(out, "out");
        const double* v = V.data();
        double* o = out.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::csr_times(X, v, V.shape(1), o, accumulate, n_threads);
      },
      py::arg("data").noconvert(), py::arg("indices").noconvert(), py::arg("indptr").noconvert(), py::arg("n_cols"),
      py::arg("V").noconvert(), py::arg("out").noconvert(), py::arg("accumulate") = false, py::arg("n_threads") = 1,
      "out = X V (out += X V with accumulate) for a CSR X (n x d), V (d x T) and out (n x T), float64.");
  m.def(
      "csr_gram_rows",
      [csr_of](const carray<double>& c_data, const carray<Index>& c_indices, const carray<Index>& c_indptr,
               const carray<Real>& data, const carray<Index>& indices, const carray<Index>& indptr, std::int64_t n_cols,
               carray<double> out, int n_threads) {
        const auto X = csr_of(data, indices, indptr, n_cols);
        if (c_data.ndim() != 1 || c_indices.ndim() != 1 || c_indptr.ndim() != 1 || c_indptr.shape(0) < 1 ||
            c_indices.shape(0) != c_data.shape(0) || c_indptr.data()[0] != 0 ||
            c_indptr.data()[c_indptr.shape(0) - 1] != c_data.shape(0))
          throw std::invalid_argument("c_data, c_indices and c_indptr must form a CSR matrix");
        const std::int64_t k = c_indptr.shape(0) - 1;
        const Index* ci = c_indices.data();
        for (std::int64_t q = 0; q < c_indices.shape(0); ++q) {
          if (ci[q] < 0 || ci[q] >= X.n_rows) throw std::invalid_argument("c_indices holds a row outside X");
        }
        expect_shape(out, "out", {k, n_cols});
        expect_writable(out, "out");
        const mtlx::CsrMatrix<double, Index> C{c_data.data(), ci, c_indptr.data(), k, X.n_rows};
        double* o = out.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::csr_gram_rows(C, X, o, n_threads);
      },
      py::arg("c_data").noconvert(), py::arg("c_indices").noconvert(), py::arg("c_indptr").noconvert(),
      py::arg("data").noconvert(), py::arg("indices").noconvert(), py::arg("indptr").noconvert(), py::arg("n_cols"),
      py::arg("out").noconvert(), py::arg("n_threads") = 1,
      "out (k x n_cols) = C X for C (k x n) in CSR (float64 entries, X's index type) and a CSR X (n x n_cols): with C "
      "the gathered columns X_S', the Gram rows X_S' X.");
  m.def(
      "csr_select_columns",
      [csr_of](const carray<Real>& data, const carray<Index>& indices, const carray<Index>& indptr, std::int64_t n_cols,
               const carray<std::int64_t>& position, std::int64_t k, const std::optional<carray<Index>>& starts) {
        const auto X = csr_of(data, indices, indptr, n_cols);
        expect_shape(position, "position", {n_cols});
        if (k < 0) throw std::invalid_argument("k must be >= 0");
        const std::int64_t* pos = position.data();
        for (std::int64_t j = 0; j < n_cols; ++j) {
          if (pos[j] >= k) throw std::invalid_argument("position holds an entry >= k");
        }
        // The gathered columns keep X's index type: their rows must fit it (X's entries do).
        if (X.n_rows > static_cast<std::int64_t>(std::numeric_limits<Index>::max()))
          throw std::invalid_argument("X has more rows than its index type can number");
        py::array_t<Index> out_indptr(k + 1);
        Index* ip = out_indptr.mutable_data();
        if (starts) {  // counted by the caller (X's column counts: one pass over X saved per gather)
          expect_shape(*starts, "starts", {k + 1});
          const Index* given = starts->data();
          if (given[0] != 0) throw std::invalid_argument("starts must begin at 0");
          for (std::int64_t j = 0; j < k; ++j) {
            if (given[j + 1] < given[j]) throw std::invalid_argument("starts must be non-decreasing");
          }
          std::copy(given, given + k + 1, ip);
        } else {
          py::gil_scoped_release release;
          mtlx::cpu::csr_selected_column_starts(X, pos, k, ip);
        }
        // Written in place by the gather: the columns' entries exist once (no vector copied out).
        py::array_t<double> out_data = own_pages_array<double>(ip[k]), sums(k), squares(k);
        py::array_t<Index> out_rows = own_pages_array<Index>(ip[k]);
        double* od = out_data.mutable_data();
        Index* orow = out_rows.mutable_data();
        double* os = sums.mutable_data();
        double* oq = squares.mutable_data();
        bool filled = false;
        {
          py::gil_scoped_release release;
          filled = mtlx::cpu::csr_gather_columns(X, pos, k, ip, od, orow, os, oq);
        }
        if (!filled) throw std::invalid_argument("starts do not match the selected columns' stored entries in X");
        return py::make_tuple(out_data, out_rows, out_indptr, sums, squares);
      },
      py::arg("data").noconvert(), py::arg("indices").noconvert(), py::arg("indptr").noconvert(), py::arg("n_cols"),
      py::arg("position").noconvert(), py::arg("k"), py::arg("starts").noconvert() = py::none(),
      "Columns j of a CSR X with position[j] >= 0 as rows position[j] of a k x n CSR (X's index type), with sums "
      "and squared norms; starts: that CSR's k + 1 row pointers when the caller counted them (X's column counts).");
  m.def(
      "loss_grad_csr_stacked",
      [csr_of](const carray<Real>& data, const carray<Index>& indices, const carray<Index>& indptr, std::int64_t n_cols,
               const carray<Real>& y, const carray<std::int64_t>& offsets, const carray<std::uint8_t>& losses,
               const carray<double>& loss_params, const carray<double>& weights, const carray<Real>& Wt,
               const std::optional<carray<Real>>& b, std::optional<carray<Real>> gWt, std::optional<carray<Real>> gb,
               int n_threads, const std::optional<carray<Real>>& sample_weight) {
        const auto X = csr_of(data, indices, indptr, n_cols);
        const py::ssize_t n = X.n_rows, d = n_cols;
        expect_shape(y, "y", {n});
        if (sample_weight) expect_shape(*sample_weight, "sample_weight", {n});
        check_offsets(offsets, n);
        const py::ssize_t T = offsets.shape(0) - 1;
        const std::int64_t* off = offsets.data();
        expect_task_vectors(losses, loss_params, weights, T);
        expect_shape(Wt, "Wt", {T, d});
        const mtlx::TaskLosses tasks{losses.data(), loss_params.data(), weights.data(), T};
        const Real* bp = intercepts(b, T);
        auto grad = gradient_out(gWt, gb, T, d);
        const Real* sw = sample_weight ? sample_weight->data() : nullptr;
        py::gil_scoped_release release;
        return mtlx::cpu::loss_grad_csr_stacked(X, y.data(), off, sw, tasks, Wt.data(), bp, grad, n_threads);
      },
      py::arg("data").noconvert(), py::arg("indices").noconvert(), py::arg("indptr").noconvert(), py::arg("n_cols"),
      py::arg("y").noconvert(), py::arg("offsets").noconvert(), py::arg("losses").noconvert(),
      py::arg("loss_params").noconvert(), py::arg("weights").noconvert(), py::arg("Wt").noconvert(),
      py::arg("b").noconvert(), py::arg("gWt").noconvert(), py::arg("gb").noconvert(), py::arg("n_threads"),
      py::arg("sample_weight").noconvert() = py::none(),
      "Loss of stacked tasks with a CSR X at (Wt, b); gradient into (gWt, gb) if given.");
  m.def(
      "loss_grad_csr_shared",
      [csr_of](const carray<Real>& data, const carray<Index>& indices, const carray<Index>& indptr, std::int64_t n_cols,
               const carray<Real>& Y, const carray<std::uint8_t>& losses, const carray<double>& loss_params,
               const carray<double>& weights, const carray<Real>& Wt, const std::optional<carray<Real>>& b,
               std::optional<carray<Real>> gWt, std::optional<carray<Real>> gb, int n_threads,
               const std::optional<carray<Real>>& sample_weight) {
        const auto X = csr_of(data, indices, indptr, n_cols);
        if (Y.ndim() != 2) throw std::invalid_argument("Y must be 2-D, got shape " + shape_of(Y));
        const py::ssize_t n = X.n_rows, d = n_cols, T = Y.shape(1);
        expect_shape(Y, "Y", {n, T});
        if (sample_weight) expect_shape(*sample_weight, "sample_weight", {n, T});
        expect_task_vectors(losses, loss_params, weights, T);
        expect_shape(Wt, "Wt", {T, d});
        const mtlx::TaskLosses tasks{losses.data(), loss_params.data(), weights.data(), T};
        const Real* bp = intercepts(b, T);
        auto grad = gradient_out(gWt, gb, T, d);
        const Real* sw = sample_weight ? sample_weight->data() : nullptr;
        py::gil_scoped_release release;
        return mtlx::cpu::loss_grad_csr_shared(X, Y.data(), sw, tasks, Wt.data(), bp, grad, n_threads);
      },
      py::arg("data").noconvert(), py::arg("indices").noconvert(), py::arg("indptr").noconvert(), py::arg("n_cols"),
      py::arg("Y").noconvert(), py::arg("losses").noconvert(), py::arg("loss_params").noconvert(),
      py::arg("weights").noconvert(), py::arg("Wt").noconvert(), py::arg("b").noconvert(), py::arg("gWt").noconvert(),
      py::arg("gb").noconvert(), py::arg("n_threads"), py::arg("sample_weight").noconvert() = py::none(),
      "Loss of tasks sharing one CSR X at (Wt, b); gradient into (gWt, gb) if given.");
}

// The widths of a shared-trunk network, checked: every width >= 1, the input's width d.
struct CheckedShape {
  carray<std::int64_t> trunk, task;
  mtlx::TrunkShape shape{};
  CheckedShape(const carray<std::int64_t>& trunk_sizes, const carray<std::int64_t>& task_sizes,
               mtlx::Activation activation, py::ssize_t d)
      : trunk(trunk_sizes), task(task_sizes) {
    if (trunk.ndim() != 1 || trunk.shape(0) < 2)
      throw std::invalid_argument("trunk_sizes must be 1-D: the input width, then at least one layer's width");
    if (task.ndim() != 1) throw std::invalid_argument("task_sizes must be 1-D");
    if (trunk.data()[0] != d)
      throw std::invalid_argument("X has " + std::to_string(d) + " features, the network's input width is " +
                                  std::to_string(trunk.data()[0]));
    for (py::ssize_t l = 0; l < trunk.shape(0); ++l) {
      if (trunk.data()[l] < 1) throw std::invalid_argument("every trunk width must be >= 1");
    }
    for (py::ssize_t l = 0; l < task.shape(0); ++l) {
      if (task.data()[l] < 1) throw std::invalid_argument("every task-layer width must be >= 1");
    }
    if (static_cast<int>(activation) >= mtlx::kNumActivations) throw std::invalid_argument("unknown activation");
    shape = {trunk.data(), static_cast<int>(trunk.shape(0) - 1), task.data(), static_cast<int>(task.shape(0)),
             activation};
  }
};

// The heads of one call, checked against the rows of X.
struct CheckedTasks {
  mtlx::TrunkTasks tasks{};
  CheckedTasks(const carray<std::int64_t>& row_begin, const carray<std::int64_t>& row_end,
               const carray<std::int64_t>& out_dims, const carray<std::uint8_t>& losses,
               const carray<double>& loss_params, py::ssize_t N, bool shared_rows = false) {
    if (out_dims.ndim() != 1) throw std::invalid_argument("out_dims must be 1-D");
    const py::ssize_t T = out_dims.shape(0);
    expect_shape(row_begin, "row_begin", {T});
    expect_shape(row_end, "row_end", {T});
    expect_shape(losses, "losses", {T});
    expect_shape(loss_params, "loss_params", {T});
    for (py::ssize_t t = 0; t < T; ++t) {
      const std::int64_t lo = row_begin.data()[t], hi = row_end.data()[t];
      if (lo < 0 || hi < lo || hi > N)
        throw std::invalid_argument("task " + std::to_string(t) + ": rows [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + ") are not within the " + std::to_string(N) + " rows of X");
      if (out_dims.data()[t] < 1) throw std::invalid_argument("task " + std::to_string(t) + ": out_dims must be >= 1");
      if (losses.data()[t] >= mtlx::kNumLossKinds)
        throw std::invalid_argument("task " + std::to_string(t) + ": unknown loss code");
      if (static_cast<mtlx::LossKind>(losses.data()[t]) == mtlx::LossKind::huber && !(loss_params.data()[t] > 0.0))
        throw std::invalid_argument("task " + std::to_string(t) + ": the Huber loss needs epsilon > 0");
    }
    if (shared_rows) {
      for (py::ssize_t t = 0; t < T; ++t) {
        if (row_begin.data()[t] != 0 || row_end.data()[t] != N)
          throw std::invalid_argument("shared_rows: every task must read every row of X");
      }
    }
    tasks = {T, row_begin.data(), row_end.data(), out_dims.data(), losses.data(), loss_params.data(), shared_rows};
  }
};

// The targets of a shared-trunk call: one column per task in range, and a softmax head's targets
// class indices 0..K-1 wherever the weight is not 0.
template <class Real>
void check_trunk_targets(const carray<Real>& targets, const carray<Real>& weights,
                         const carray<std::int64_t>& target_col, const mtlx::TrunkTasks& tasks) {
  const py::ssize_t C = targets.shape(1);
  for (py::ssize_t t = 0; t < tasks.T; ++t) {
    const std::int64_t c = target_col.data()[t];
    if (c < 0 || c >= C) throw std::invalid_argument("task " + std::to_string(t) + ": target_col out of range");
    const std::int64_t K = tasks.out_dims[t];
    if (K == 1) continue;
    for (std::int64_t i = tasks.row_begin[t]; i < tasks.row_end[t]; ++i) {
      const Real y = targets.data()[i * C + c];
      if (weights.data()[i * C + c] != Real(0) && !(y >= Real(0) && y < Real(K) && y == std::floor(y)))
        throw std::invalid_argument("task " + std::to_string(t) + ": row " + std::to_string(i) + " has target " +
                                    std::to_string(static_cast<double>(y)) + ", not a class index in [0, " +
                                    std::to_string(K) + ")");
    }
  }
}

template <class Real>
void bind_trunk(py::module_& m) {
  m.def(
      "trunk_loss_grad",
      [](const carray<Real>& X, const carray<Real>& params, std::optional<carray<Real>> grad, carray<double> task_loss,
         const carray<std::int64_t>& trunk_sizes, const carray<std::int64_t>& task_sizes, mtlx::Activation activation,
         const carray<std::int64_t>& row_begin, const carray<std::int64_t>& row_end,
         const carray<std::int64_t>& out_dims, const carray<std::uint8_t>& losses, const carray<double>& loss_params,
         const carray<Real>& targets, const carray<Real>& weights, const carray<std::int64_t>& target_col,
         const carray<double>& task_scale, int n_threads, std::optional<carray<Real>> task_trunk_grad,
         bool shared_rows) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        const py::ssize_t N = X.shape(0);
        const CheckedShape net(trunk_sizes, task_sizes, activation, X.shape(1));
        const CheckedTasks heads(row_begin, row_end, out_dims, losses, loss_params, N, shared_rows);
        if (shared_rows && task_trunk_grad)
          throw std::invalid_argument("task_trunk_grad needs tasks on rows of their own, not shared_rows");
        const py::ssize_t T = heads.tasks.T;
        Real* per_task = nullptr;
        if (task_trunk_grad) {
          const mtlx::TrunkTasks no_heads{};
          expect_shape(*task_trunk_grad, "task_trunk_grad", {T, mtlx::trunk_n_params(net.shape, no_heads)});
          expect_writable(*task_trunk_grad, "task_trunk_grad");
          for (py::ssize_t t = 1; t < T; ++t) {
            if (row_begin.data()[t] < row_end.data()[t - 1])
              throw std::invalid_argument("task_trunk_grad needs tasks on consecutive, non-overlapping rows");
          }
          per_task = task_trunk_grad->mutable_data();
        }
        expect_shape(params, "params", {mtlx::trunk_n_params(net.shape, heads.tasks)});
        if (grad) {
          expect_shape(*grad, "grad", {params.shape(0)});
          expect_writable(*grad, "grad");
        }
        expect_shape(task_loss, "task_loss", {T});
        expect_writable(task_loss, "task_loss");
        expect_shape(task_scale, "task_scale", {T});
        if (targets.ndim() != 2 || targets.shape(0) != N)
          throw std::invalid_argument("targets must be (n_rows, n_cols), got shape " + shape_of(targets));
        const py::ssize_t C = targets.shape(1);
        expect_shape(weights, "weights", {N, C});
        expect_shape(target_col, "target_col", {T});
        check_trunk_targets(targets, weights, target_col, heads.tasks);
        const mtlx::TrunkTargets<Real> tg{targets.data(), weights.data(), C, target_col.data()};
        Real* g = grad ? grad->mutable_data() : nullptr;
        double* tl = task_loss.mutable_data();
        py::gil_scoped_release release;
        return mtlx::cpu::trunk_loss_grad(X.data(), N, net.shape, heads.tasks, tg, task_scale.data(), params.data(), g,
                                          tl, std::max(1, n_threads), per_task);
      },
      py::arg("X").noconvert(), py::arg("params").noconvert(), py::arg("grad").noconvert(),
      py::arg("task_loss").noconvert(), py::arg("trunk_sizes").noconvert(), py::arg("task_sizes").noconvert(),
      py::arg("activation"), py::arg("row_begin").noconvert(), py::arg("row_end").noconvert(),
      py::arg("out_dims").noconvert(), py::arg("losses").noconvert(), py::arg("loss_params").noconvert(),
      py::arg("targets").noconvert(), py::arg("weights").noconvert(), py::arg("target_col").noconvert(),
      py::arg("task_scale").noconvert(), py::arg("n_threads") = 1, py::arg("task_trunk_grad").noconvert() = py::none(),
      py::arg("shared_rows") = false,
      "F = sum_t task_scale[t] task_loss[t] of a shared-trunk network and dF/dparams (into grad, unless None); "
      "task_loss[t] = sum_i w_it L_t. With task_trunk_grad (T x n_trunk), each task's share of the trunk's "
      "gradient goes to its row there instead. See mtlx/trunk.hpp for the parameter layout.");
  m.def(
      "trunk_predict",
      [](const carray<Real>& X, const carray<Real>& params, const carray<std::int64_t>& trunk_sizes,
         const carray<std::int64_t>& task_sizes, mtlx::Activation activation, const carray<std::int64_t>& row_begin,
         const carray<std::int64_t>& row_end, const carray<std::int64_t>& out_dims, const carray<std::uint8_t>& losses,
         const carray<double>& loss_params, carray<Real> out, int n_threads) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        const py::ssize_t N = X.shape(0);
        const CheckedShape net(trunk_sizes, task_sizes, activation, X.shape(1));
        const CheckedTasks heads(row_begin, row_end, out_dims, losses, loss_params, N);
        expect_shape(params, "params", {mtlx::trunk_n_params(net.shape, heads.tasks)});
        std::int64_t SK = 0;
        for (py::ssize_t t = 0; t < heads.tasks.T; ++t) SK += out_dims.data()[t];
        expect_shape(out, "out", {N, SK});
        expect_writable(out, "out");
        Real* o = out.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::trunk_predict(X.data(), N, net.shape, heads.tasks, params.data(), o, std::max(1, n_threads));
      },
      py::arg("X").noconvert(), py::arg("params").noconvert(), py::arg("trunk_sizes").noconvert(),
      py::arg("task_sizes").noconvert(), py::arg("activation"), py::arg("row_begin").noconvert(),
      py::arg("row_end").noconvert(), py::arg("out_dims").noconvert(), py::arg("losses").noconvert(),
      py::arg("loss_params").noconvert(), py::arg("out").noconvert(), py::arg("n_threads") = 1,
      "Head outputs of a shared-trunk network: out[rows of task t, its K_t columns].");
  m.def(
      "trunk_representation",
      [](const carray<Real>& X, const carray<Real>& params, const carray<std::int64_t>& trunk_sizes,
         mtlx::Activation activation, carray<Real> out, int n_threads) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        const carray<std::int64_t> no_task_layers(0);
        const CheckedShape net(trunk_sizes, no_task_layers, activation, X.shape(1));
        const mtlx::TrunkTasks no_heads{};
        if (params.ndim() != 1 || params.shape(0) < mtlx::trunk_n_params(net.shape, no_heads))
          throw std::invalid_argument("params is shorter than the trunk's parameters");
        const py::ssize_t N = X.shape(0);
        expect_shape(out, "out", {N, trunk_sizes.data()[trunk_sizes.shape(0) - 1]});
        expect_writable(out, "out");
        Real* o = out.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::trunk_representation(X.data(), N, net.shape, params.data(), o, std::max(1, n_threads));
      },
      py::arg("X").noconvert(), py::arg("params").noconvert(), py::arg("trunk_sizes").noconvert(),
      py::arg("activation"), py::arg("out").noconvert(), py::arg("n_threads") = 1,
      "The shared representation (last trunk layer's activations) of the rows of X.");
  m.def(
      "trunk_adam_epoch",
      [](const carray<Real>& X, const carray<Real>& targets, const carray<Real>& weights,
         const carray<std::int64_t>& trunk_sizes, const carray<std::int64_t>& task_sizes, mtlx::Activation activation,
         const carray<std::int64_t>& row_begin, const carray<std::int64_t>& row_end,
         const carray<std::int64_t>& out_dims, const carray<std::uint8_t>& losses, const carray<double>& loss_params,
         const carray<std::int64_t>& target_col, bool shared_rows, const carray<std::int64_t>& batch_rows,
         const carray<std::int64_t>& batch_sizes, carray<double> theta, carray<double> m1, carray<double> m2,
         std::int64_t step, const carray<std::uint8_t>& weight_mask, double lr, double beta1, double beta2, double eps,
         double l2, bool uncertainty, double inv_tasks, const carray<std::int64_t>& local_index,
         carray<double> task_loss_sum, carray<double> task_batches, const std::optional<py::function>& reduce,
         int n_threads) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D, got shape " + shape_of(X));
        const py::ssize_t N = X.shape(0);
        const CheckedShape net(trunk_sizes, task_sizes, activation, X.shape(1));
        const CheckedTasks heads(row_begin, row_end, out_dims, losses, loss_params, N, shared_rows);
        const py::ssize_t T = heads.tasks.T;
        if (targets.ndim() != 2 || targets.shape(0) != N)
          throw std::invalid_argument("targets must be (n_rows, n_cols), got shape " + shape_of(targets));
        expect_shape(weights, "weights", {N, targets.shape(1)});
        expect_shape(target_col, "target_col", {T});
        check_trunk_targets(targets, weights, target_col, heads.tasks);
        const std::int64_t P = mtlx::trunk_n_params(net.shape, heads.tasks);
        const py::ssize_t n_theta = P + (uncertainty ? T : 0);
        expect_shape(theta, "theta", {n_theta});
        expect_shape(m1, "m", {n_theta});
        expect_shape(m2, "v", {n_theta});
        expect_writable(theta, "theta");
        expect_writable(m1, "m");
        expect_writable(m2, "v");
        expect_shape(weight_mask, "weight_mask", {P});
        expect_shape(local_index, "local_index", {T});
        if (task_loss_sum.ndim() != 1) throw std::invalid_argument("task_loss_sum must be 1-D");
        const py::ssize_t n_global = task_loss_sum.shape(0);
        expect_writable(task_loss_sum, "task_loss_sum");
        expect_shape(task_batches, "task_batches", {n_global});
        expect_writable(task_batches, "task_batches");
        for (py::ssize_t t = 0; t < T; ++t) {
          if (local_index.data()[t] < 0 || local_index.data()[t] >= n_global)
            throw std::invalid_argument("local_index out of range");
        }
        const py::ssize_t groups = shared_rows ? 1 : T;
        if (batch_sizes.ndim() != 2 || batch_sizes.shape(1) != groups)
          throw std::invalid_argument("batch_sizes must be (n_batches, " + std::to_string(groups) + "), got shape " +
                                      shape_of(batch_sizes));
        if (batch_rows.ndim() != 1) throw std::invalid_argument("batch_rows must be 1-D");
        std::int64_t at = 0;
        for (py::ssize_t b = 0; b < batch_sizes.shape(0); ++b) {  // every row within its task's range
          for (py::ssize_t t = 0; t < groups; ++t) {
            const std::int64_t k = batch_sizes.data()[b * groups + t];
            if (k < 0 || at + k > batch_rows.shape(0)) throw std::invalid_argument("batch_sizes exceed batch_rows");
            const std::int64_t lo = shared_rows ? 0 : row_begin.data()[t], hi = shared_rows ? N : row_end.data()[t];
            for (std::int64_t i = at; i < at + k; ++i) {
              if (batch_rows.data()[i] < lo || batch_rows.data()[i] >= hi)
                throw std::invalid_argument("batch_rows: row " + std::to_string(batch_rows.data()[i]) +
                                            " is not a row of its task");
            }
            at += k;
          }
        }
        if (at != batch_rows.shape(0)) throw std::invalid_argument("batch_sizes do not add up to batch_rows");
        if (!(lr > 0.0) || !(l2 >= 0.0)) throw std::invalid_argument("lr must be > 0 and l2 >= 0");
        const mtlx::cpu::AdamSettings settings{lr, beta1, beta2, eps, l2, uncertainty, inv_tasks};
        mtlx::cpu::Reduce reduce_fn;
        if (reduce) {
          reduce_fn = [&reduce](double* buf, std::int64_t n) {
            py::gil_scoped_acquire acquire;
            // A view of buf (no copy): the callback sums it over the ranks in place.
            py::array_t<double> view({static_cast<py::ssize_t>(n)}, {static_cast<py::ssize_t>(sizeof(double))}, buf,
                                     py::capsule(buf, [](void*) {}));
            (*reduce)(view);
          };
        }
        double* th = theta.mutable_data();
        double* a = m1.mutable_data();
        double* b = m2.mutable_data();
        double* tl = task_loss_sum.mutable_data();
        double* tb = task_batches.mutable_data();
        mtlx::cpu::EpochOutcome out;
        {
          py::gil_scoped_release release;
          out = mtlx::cpu::adam_epoch(X.data(), X.shape(1), targets.data(), weights.data(), targets.shape(1), net.shape,
                                      heads.tasks, target_col.data(), batch_rows.data(), batch_sizes.data(),
                                      batch_sizes.shape(0), th, a, b, step, weight_mask.data(), settings,
                                      local_index.data(), n_global, tl, tb, reduce_fn, std::max(1, n_threads));
        }
        return py::make_tuple(out.objective_sum, out.batches, out.finite, step);
      },
      py::arg("X").noconvert(), py::arg("targets").noconvert(), py::arg("weights").noconvert(),
      py::arg("trunk_sizes").noconvert(), py::arg("task_sizes").noconvert(), py::arg("activation"),
      py::arg("row_begin").noconvert(), py::arg("row_end").noconvert(), py::arg("out_dims").noconvert(),
      py::arg("losses").noconvert(), py::arg("loss_params").noconvert(), py::arg("target_col").noconvert(),
      py::arg("shared_rows"), py::arg("batch_rows").noconvert(), py::arg("batch_sizes").noconvert(),
      py::arg("theta").noconvert(), py::arg("m").noconvert(), py::arg("v").noconvert(), py::arg("step"),
      py::arg("weight_mask").noconvert(), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
      py::arg("l2"), py::arg("uncertainty"), py::arg("inv_tasks"), py::arg("local_index").noconvert(),
      py::arg("task_loss_sum").noconvert(), py::arg("task_batches").noconvert(), py::arg("reduce"),
      py::arg("n_threads") = 1,
      "One epoch of minibatch Adam on a shared-trunk network (mtlx/trunk.hpp: adam_epoch). Returns "
      "(sum of the batches' F, batches done, finite, step).");
}

// A 2-D array's stride along axis `axis`, in elements (the kernel's strides are in elements); 0
// where the axis has at most one entry (its stride is never used).
std::int64_t element_stride(const py::array& a, int axis, const char* name) {
  if (a.shape(axis) <= 1) return 0;
  const py::ssize_t bytes = a.strides(axis), size = a.itemsize();
  if (bytes < 0 || bytes % size != 0)
    throw std::invalid_argument(std::string(name) + ": strides must be non-negative multiples of the item size");
  return bytes / size;
}

// The bytes a 2-D array with non-negative strides spans: [first, last) (empty for no entries).
std::pair<const char*, const char*> byte_span(const py::array& a) {
  const char* first = static_cast<const char*>(a.data());
  if (a.size() == 0) return {first, first};
  return {first, first + (a.shape(0) - 1) * a.strides(0) + (a.shape(1) - 1) * a.strides(1) + a.itemsize()};
}

bool spans_overlap(const py::array& a, const py::array& b) {
  const auto [a0, a1] = byte_span(a);
  const auto [b0, b1] = byte_span(b);
  return a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1;
}

template <class Real>
void bind_tile_gemm(py::module_& m) {
  m.def(
      "tile_gemm",
      [](const py::array_t<Real>& A, const py::array_t<Real>& B, py::array_t<Real> C, bool accumulate, int n_threads,
         std::optional<std::string> isa) {
        if (A.ndim() != 2 || B.ndim() != 2) throw std::invalid_argument("A and B must be 2-D");
        const py::ssize_t rows = A.shape(0), inner = A.shape(1), cols = B.shape(1);
        if (B.shape(0) != inner)
          throw std::invalid_argument("B has " + std::to_string(B.shape(0)) + " rows, A " + std::to_string(inner) +
                                      " columns");
        expect_shape(C, "C", {rows, cols});
        expect_writable(C, "C");
        if (n_threads < 1) throw std::invalid_argument("n_threads must be at least 1");
        for (const auto& [array, name] : {std::pair<const py::array*, const char*>{&A, "A"}, {&B, "B"}, {&C, "C"}}) {
          if (reinterpret_cast<std::uintptr_t>(array->data()) % sizeof(Real) != 0)
            throw std::invalid_argument(std::string(name) + " is not aligned to its item size");
        }
        const std::int64_t a_row = element_stride(A, 0, "A"), a_col = element_stride(A, 1, "A");
        const std::int64_t b_row = element_stride(B, 0, "B"), b_col = element_stride(B, 1, "B");
        const std::int64_t ldc = element_stride(C, 0, "C");
        if (rows > 0 && cols > 1 && element_stride(C, 1, "C") != 1)
          throw std::invalid_argument("C's rows must be contiguous");
        if (rows > 1 && cols > 0 && ldc < cols) throw std::invalid_argument("C's rows overlap each other");
        if (spans_overlap(C, A) || spans_overlap(C, B)) throw std::invalid_argument("C must not overlap A or B");
        const Real *a = A.data(), *b = B.data();
        Real* c = C.mutable_data();
        const char* name = isa ? isa->c_str() : nullptr;
        py::gil_scoped_release release;
        return mtlx::cpu::tile_gemm<Real>(rows, cols, inner, a, a_row, a_col, b, b_row, b_col, accumulate, c, ldc,
                                          n_threads, name);
      },
      py::arg("A").noconvert(), py::arg("B").noconvert(), py::arg("C").noconvert(), py::arg("accumulate"),
      py::arg("n_threads"), py::arg("isa") = py::none(),
      "C = (C if accumulate else 0) + A @ B by the register-tiled kernel of the shared trunk's layers "
      "(any strides for A and B: a transpose is a view); False, computing nothing, where this CPU has "
      "no such kernel. isa ('avx2', 'avx512') runs that build instead of the widest (False where the "
      "CPU lacks it).");
}

// The order-free sums' row passes (mtlx/exact_sum.hpp), for float64 and float32 rows: a float32
// fit's per-task gradients are summed as they come, without a float64 copy.
template <class Real>
void bind_exact_rows(py::module_& m) {
  m.def(
      "exact_column_exponents",
      [](const carray<Real>& rows, carray<std::int32_t> out) {
        if (rows.ndim() != 2) throw std::invalid_argument("rows must be 2-D, got shape " + shape_of(rows));
        expect_shape(out, "out", {rows.shape(1)});
        expect_writable(out, "out");
        std::int32_t* o = out.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::column_exponents(rows.data(), rows.shape(0), rows.shape(1), o);
      },
      py::arg("rows").noconvert(), py::arg("out").noconvert(),
      "out[j] = max(out[j], e) with |rows[i, j]| < 2^e (start from exact_no_exponent).");
  m.def(
      "exact_accumulate",
      [](const carray<Real>& rows, const carray<std::int32_t>& exponents, carray<std::int64_t> limbs) {
        if (rows.ndim() != 2) throw std::invalid_argument("rows must be 2-D, got shape " + shape_of(rows));
        expect_shape(exponents, "exponents", {rows.shape(1)});
        expect_shape(limbs, "limbs", {4, rows.shape(1)});
        expect_writable(limbs, "limbs");
        if (rows.shape(0) >= (py::ssize_t{1} << 23)) throw std::invalid_argument("at most 2^23 rows per call");
        std::int64_t* l = limbs.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::accumulate_limbs(rows.data(), rows.shape(0), rows.shape(1), exponents.data(), l);
      },
      py::arg("rows").noconvert(), py::arg("exponents").noconvert(), py::arg("limbs").noconvert(),
      "limbs (4 x n) += the 40-bit integer limbs of every row of rows at the columns' exponents (row 3: non-finite "
      "values).");
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "mtlx native core (private): batched per-task losses/gradients and proximal operators.";
  // The codes the Python layer passes (per-task loss arrays, penalty kinds) come from these
  // enums, so the numbering is written once, in the C++ headers.
  py::enum_<mtlx::LossKind>(m, "LossKind", "Per-sample losses the core evaluates (mtlx/losses.hpp).")
      .value("squared", mtlx::LossKind::squared)
      .value("logistic", mtlx::LossKind::logistic)
      .value("huber", mtlx::LossKind::huber)
      .value("squared_hinge", mtlx::LossKind::squared_hinge)
      .value("poisson", mtlx::LossKind::poisson);
  py::enum_<mtlx::PenaltyKind>(m, "PenaltyKind", "Penalties whose prox the core computes (mtlx/prox.hpp).")
      .value("none", mtlx::PenaltyKind::none)
      .value("l1", mtlx::PenaltyKind::l1)
      .value("l21", mtlx::PenaltyKind::l21)
      .value("trace", mtlx::PenaltyKind::trace)
      .value("mean", mtlx::PenaltyKind::mean);
  py::enum_<mtlx::Activation>(m, "Activation", "Hidden-layer activations of shared-trunk networks (mtlx/trunk.hpp).")
      .value("identity", mtlx::Activation::identity)
      .value("relu", mtlx::Activation::relu)
      .value("tanh", mtlx::Activation::tanh);
  bind_dtype<double>(m);
  bind_dtype<float>(m);
  bind_gram<double>(m);
  bind_gram<float>(m);
  bind_fista_ops<double>(m);
  bind_fista_ops<float>(m);
  bind_coordinate_descent(m);
  bind_sparse_coordinate_descent<std::int32_t>(m);
  bind_sparse_coordinate_descent<std::int64_t>(m);
  bind_newton_coordinate_descent(m);
  bind_dense_columns<double>(m);
  bind_dense_columns<float>(m);
  bind_csr<double, std::int32_t>(m);
  bind_csr<double, std::int64_t>(m);
  bind_csr<float, std::int32_t>(m);
  bind_csr<float, std::int64_t>(m);
  bind_trunk<double>(m);
  bind_exact_rows<double>(m);
  bind_exact_rows<float>(m);
  m.def(
      "exact_from_limbs",
      [](const carray<std::int64_t>& limbs, const carray<std::int32_t>& exponents, carray<double> out) {
        if (exponents.ndim() != 1) throw std::invalid_argument("exponents must be 1-D");
        const py::ssize_t n = exponents.shape(0);
        expect_shape(limbs, "limbs", {4, n});
        expect_shape(out, "out", {n});
        expect_writable(out, "out");
        double* o = out.mutable_data();
        py::gil_scoped_release release;
        mtlx::cpu::limbs_to_double(limbs.data(), n, exponents.data(), o);
      },
      py::arg("limbs").noconvert(), py::arg("exponents").noconvert(), py::arg("out").noconvert(),
      "The sums the limbs hold, as doubles.");
  m.attr("exact_no_exponent") = mtlx::cpu::kNoExponent;
  m.attr("trunk_block_rows") = mtlx::cpu::kTrunkBlockRows;
  bind_trunk<float>(m);
  bind_tile_gemm<double>(m);
  bind_tile_gemm<float>(m);

  m.def(
      "set_routine",
      [](const std::string& name, const py::capsule& capsule) {
        mtlx::lapack::set_routine(name, capsule.get_pointer());
      },
      py::arg("name"), py::arg("capsule"), "Registers a BLAS/LAPACK routine from a scipy cython_blas/lapack capsule.");
  m.def("lapack_ready", &mtlx::lapack::ready, "True once every BLAS/LAPACK routine the core uses is registered.");
  m.def("active_isa", &mtlx::cpu::active_isa, "Instruction set of the streaming kernels chosen for this CPU.");
  m.def(
      "pointwise_loss_terms",
      [](std::uint8_t kind, double param, const carray<double>& y, const carray<double>& z) {
        const mtlx::LossKind loss = checked_loss(kind, param);
        const py::ssize_t n = pointwise_length(y, z, "z");
        py::array_t<double> value(n), deriv(n), curvature(n);
        const double *yp = y.data(), *zp = z.data();
        double *v = value.mutable_data(), *g = deriv.mutable_data(), *h = curvature.mutable_data();
        {
          py::gil_scoped_release release;
          mtlx::visit_loss(loss, param, [&](auto L) {
            for (py::ssize_t i = 0; i < n; ++i) {
              v[i] = L.value(yp[i], zp[i]);
              g[i] = L.deriv(yp[i], zp[i]);
              h[i] = L.curvature(yp[i], zp[i]);
            }
          });
        }
        return py::make_tuple(value, deriv, curvature);
      },
      py::arg("kind"), py::arg("param"), py::arg("y").noconvert(), py::arg("z").noconvert(),
      "(L, dL/dz, d^2L/dz^2) of one loss (mtlx/losses.hpp) at targets y and margins z, float64.");
  m.def(
      "loss_conjugate",
      [](std::uint8_t kind, double param, const carray<double>& y, const carray<double>& u) {
        const mtlx::LossKind loss = checked_loss(kind, param);
        const py::ssize_t n = pointwise_length(y, u, "u");
        py::array_t<double> out(n);
        const double *yp = y.data(), *up = u.data();
        double* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          mtlx::visit_loss(loss, param, [&](auto L) {
            for (py::ssize_t i = 0; i < n; ++i) o[i] = L.conjugate(yp[i], up[i]);
          });
        }
        return out;
      },
      py::arg("kind"), py::arg("param"), py::arg("y").noconvert(), py::arg("u").noconvert(),
      "L*(y, u) = sup_z (u z - L(y, z)) of one loss (mtlx/losses.hpp), +inf outside its domain, float64.");
  m.def(
      "release_free_memory",
      []() {
#if defined(__GLIBC__)
        // glibc keeps freed blocks under its mmap threshold (which grows to 32 MiB as large blocks
        // are freed) in the heap, resident: malloc_trim hands their pages back.
        py::gil_scoped_release release;
        return malloc_trim(0) != 0;
#else
        return false;
#endif
      },
      "Return the allocator's free pages to the operating system (glibc's malloc_trim); True if any were.");
  m.def(
      "row_norms",
      [](const carray<double>& M) {
        if (M.ndim() != 2) throw std::invalid_argument("M must be 2-D, got shape " + shape_of(M));
        py::array_t<double> out(M.shape(0));
        const double* m = M.data();
        double* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          mtlx::cpu::row_norms(m, M.shape(0), M.shape(1), o);
        }
        return out;
      },
      py::arg("M").noconvert(),
      "Euclidean norms of the rows of M (C-contiguous float64), safe from overflow and underflow.");
  m.def(
      "max_threads",
      []() {
#ifdef _OPENMP
        return omp_get_max_threads();
#else
        return 1;
#endif
      },
      "Threads the core's OpenMP loops would use by default.");
#ifdef MTLX_HAVE_CUDA
  m.attr("HAS_CUDA") = true;
  register_cuda(m);
#else
  m.attr("HAS_CUDA") = false;
  m.attr("cuda") = py::none();
#endif
}
