/// \file tile_gemm.hpp
/// A GEMM by register tiles for the shared trunk's layer products (src/cpu/tile_gemm.cpp).
#pragma once

#include <cstdint>

namespace mtlx::cpu {

/// Whether tile_gemm runs on this CPU (a kernel is built for its instruction set): where it does
/// not, every product goes to BLAS, threaded by the caller's BLAS settings.
bool has_tile_gemm();

/// Row-major C (m x n, leading dimension ldc) = (C if accumulate, else 0) + op(A) op(B), where
/// op(A)(i, p) = A[i * a_row + p * a_col] and op(B)(p, j) = B[p * b_row + j * b_col] (strides in
/// elements: a transposed operand is its strides swapped).
///
/// Runs the kernel built for the widest instruction set of this CPU (AVX2, AVX-512) on up to
/// n_threads threads. Every element of C is one chain of fused multiply-adds in the order of p,
/// starting from C when accumulating: the result depends neither on the tiling nor on the
/// threads, and products accumulated block by block over p equal one product over all of p.
/// Returns false, touching nothing, where no such kernel is built for this CPU (the caller then
/// calls BLAS). `isa` ("avx2", "avx512") asks for one build instead of the widest (tests run the
/// AVX2 kernel on AVX-512 machines): false where this CPU cannot run it.
template <class Real>
bool tile_gemm(std::int64_t m, std::int64_t n, std::int64_t k, const Real* A, std::int64_t a_row, std::int64_t a_col,
               const Real* B, std::int64_t b_row, std::int64_t b_col, bool accumulate, Real* C, std::int64_t ldc,
               int n_threads, const char* isa = nullptr);

}  // namespace mtlx::cpu
