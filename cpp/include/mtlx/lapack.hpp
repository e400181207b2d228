/// \file lapack.hpp
/// BLAS/LAPACK entry points used by the core, resolved at run time.
///
/// Why run time: a pip build must not need a system LAPACK. SciPy already ships an optimized
/// BLAS/LAPACK and exports its Fortran-ABI entry points as capsules
/// (scipy.linalg.cython_blas / cython_lapack); the Python package hands those pointers to the
/// core once at import, through `set_routine`.
#pragma once

#include <string>

namespace mtlx::lapack {

/// Registers the address of a Fortran routine ("dgemm", "sgesdd", ...); throws for unknown names.
void set_routine(const std::string& name, void* address);

/// True once every routine the core uses is registered.
bool ready();

/// C = alpha op(A) op(B) + beta C, column-major (Fortran) conventions.
template <class Real>
void gemm(char trans_a, char trans_b, int m, int n, int k, Real alpha, const Real* A, int lda, const Real* B, int ldb,
          Real beta, Real* C, int ldc);

/// C = alpha A A' + beta C (trans 'N') on the `uplo` triangle of the n x n column-major C; A is n x k.
template <class Real>
void syrk(char uplo, char trans, int n, int k, Real alpha, const Real* A, int lda, Real beta, Real* C, int ldc);

/// Thin SVD A = U diag(s) VT of the m x n column-major A (destroyed). With compute_uv false,
/// U and VT are not referenced. Throws std::runtime_error when LAPACK reports a failure.
template <class Real>
void gesdd(bool compute_uv, int m, int n, Real* A, int lda, Real* s, Real* U, int ldu, Real* VT, int ldvt);

}  // namespace mtlx::lapack
