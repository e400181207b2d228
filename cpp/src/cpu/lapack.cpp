// Run-time resolved BLAS/LAPACK (see lapack.hpp for why).
#include "mtlx/lapack.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace mtlx::lapack {
namespace {

// Fortran ABI as exported by scipy.linalg.cython_blas / cython_lapack (LP64: int indices).
template <class Real>
using gemm_fn = void(char*, char*, int*, int*, int*, Real*, Real*, int*, Real*, int*, Real*, Real*, int*);
template <class Real>
using syrk_fn = void(char*, char*, int*, int*, Real*, Real*, int*, Real*, Real*, int*);
template <class Real>
using gesdd_fn = void(char*, int*, int*, Real*, int*, Real*, Real*, int*, Real*, int*, Real*, int*, int*, int*);

struct Routines {
  gemm_fn<double>* dgemm = nullptr;
  gemm_fn<float>* sgemm = nullptr;
  syrk_fn<double>* dsyrk = nullptr;
  syrk_fn<float>* ssyrk = nullptr;
  gesdd_fn<double>* dgesdd = nullptr;
  gesdd_fn<float>* sgesdd = nullptr;
};

Routines& routines() {
  static Routines r;
  return r;
}

template <class F>
F* require(F* f, const char* name) {
  if (f == nullptr) {
    throw std::runtime_error(std::string("mtlx core: LAPACK routine '") + name +
                             "' is not registered (import mtlx, not mtlx._core, to initialise it)");
  }
  return f;
}

gemm_fn<double>* gemm_of(double*) { return require(routines().dgemm, "dgemm"); }
gemm_fn<float>* gemm_of(float*) { return require(routines().sgemm, "sgemm"); }
syrk_fn<double>* syrk_of(double*) { return require(routines().dsyrk, "dsyrk"); }
syrk_fn<float>* syrk_of(float*) { return require(routines().ssyrk, "ssyrk"); }
gesdd_fn<double>* gesdd_of(double*) { return require(routines().dgesdd, "dgesdd"); }
gesdd_fn<float>* gesdd_of(float*) { return require(routines().sgesdd, "sgesdd"); }

}  // namespace

void set_routine(const std::string& name, void* address) {
  Routines& r = routines();
  if (name == "dgemm") {
    r.dgemm = reinterpret_cast<gemm_fn<double>*>(address);
  } else if (name == "sgemm") {
    r.sgemm = reinterpret_cast<gemm_fn<float>*>(address);
  } else if (name == "dsyrk") {
    r.dsyrk = reinterpret_cast<syrk_fn<double>*>(address);
  } else if (name == "ssyrk") {
    r.ssyrk = reinterpret_cast<syrk_fn<float>*>(address);
  } else if (name == "dgesdd") {
    r.dgesdd = reinterpret_cast<gesdd_fn<double>*>(address);
  } else if (name == "sgesdd") {
    r.sgesdd = reinterpret_cast<gesdd_fn<float>*>(address);
  } else {
    throw std::invalid_argument("mtlx core: unknown LAPACK routine '" + name + "'");
  }
}

bool ready() {
  const Routines& r = routines();
  return r.dgemm && r.sgemm && r.dsyrk && r.ssyrk && r.dgesdd && r.sgesdd;
}

template <class Real>
void gemm(char trans_a, char trans_b, int m, int n, int k, Real alpha, const Real* A, int lda, const Real* B, int ldb,
          Real beta, Real* C, int ldc) {
  gemm_of(static_cast<Real*>(nullptr))(&trans_a, &trans_b, &m, &n, &k, &alpha, const_cast<Real*>(A), &lda,
                                       const_cast<Real*>(B), &ldb, &beta, C, &ldc);
}

template <class Real>
void syrk(char uplo, char trans, int n, int k, Real alpha, const Real* A, int lda, Real beta, Real* C, int ldc) {
  syrk_of(static_cast<Real*>(nullptr))(&uplo, &trans, &n, &k, &alpha, const_cast<Real*>(A), &lda, &beta, C, &ldc);
}

template <class Real>
void gesdd(bool compute_uv, int m, int n, Real* A, int lda, Real* s, Real* U, int ldu, Real* VT, int ldvt) {
  auto* fn = gesdd_of(static_cast<Real*>(nullptr));
  char jobz = compute_uv ? 'S' : 'N';
  const int k = std::min(m, n);
  std::vector<int> iwork(8 * static_cast<std::size_t>(std::max(k, 1)));
  // LAPACK requires valid leading dimensions even for arrays it does not touch.
  Real dummy = 0;
  int one = 1;
  if (!compute_uv) {
    U = VT = &dummy;
    ldu = ldvt = one;
  }
  int lwork = -1, info = 0;
  Real query = 0;
  fn(&jobz, &m, &n, A, &lda, s, U, &ldu, VT, &ldvt, &query, &lwork, iwork.data(), &info);
  if (info != 0)
    throw std::runtime_error("mtlx core: gesdd workspace query failed (info=" + std::to_string(info) + ")");
  // The float query result can round down below the true need; pad it.
  lwork = static_cast<int>(query * Real(1.01)) + 16;
  std::vector<Real> work(static_cast<std::size_t>(lwork));
  fn(&jobz, &m, &n, A, &lda, s, U, &ldu, VT, &ldvt, work.data(), &lwork, iwork.data(), &info);
  if (info < 0) throw std::runtime_error("mtlx core: gesdd argument " + std::to_string(-info) + " is invalid");
  if (info > 0)
    throw std::runtime_error("mtlx core: the SVD did not converge (gesdd info=" + std::to_string(info) + ")");
}

template void gemm<double>(char, char, int, int, int, double, const double*, int, const double*, int, double, double*,
                           int);
template void gemm<float>(char, char, int, int, int, float, const float*, int, const float*, int, float, float*, int);
template void syrk<double>(char, char, int, int, double, const double*, int, double, double*, int);
template void syrk<float>(char, char, int, int, float, const float*, int, float, float*, int);
template void gesdd<double>(bool, int, int, double*, int, double*, double*, int, double*, int);
template void gesdd<float>(bool, int, int, float*, int, float*, float*, int, float*, int);

}  // namespace mtlx::lapack
