// GEMM by register tiles, for the shared trunk's layer products (trunk.cpp).
//
// The trunk multiplies blocks of a few hundred rows by layers of tens to hundreds of units: inner
// dimensions of 20-300, and one matrix of each pair reused by every block. Handed to BLAS, their
// speed was whatever kernels the BLAS picked for the CPU: OpenBLAS 0.3.30 runs its AVX2 kernels on
// AMD Zen 5, and the trunk's products took 1.5x as long as with its AVX-512 ones. This kernel
// holds an MR x (NV vectors) tile of C in registers and streams the inner dimension through it,
// one broadcast of A and NV loads of B per step (14 x 32 floats with AVX-512). On one Intel Xeon
// core (AVX-512) the synthetic trunk's five products ran at about 100 GFLOP/s in float32, on par
// with OpenBLAS's AVX-512 kernels (9% ahead in float64), and 1.5x faster than its AVX2 ones.
//
// Every element of C is one chain of fused multiply-adds (both builds have FMA; CMakeLists.txt
// compiles this file with -ffp-contract=fast, so that a * b + c contracts whatever the compiler's
// default) in the order of the inner index, starting from C itself when accumulating: the result
// depends neither on the tiling nor on the threads, and a product accumulated block by block (the
// weight gradients over row blocks) is the same chain as one product over all the rows.
//
// Compiled once per instruction set (MTLX_ISA, as grad_stacked.cpp); isa_dispatch.cpp calls it
// on AVX2 and AVX-512 CPUs and leaves the other targets to BLAS.
#include <algorithm>
#include <array>
#include <utility>

#include "isa_kernels.hpp"

#if defined(__AVX2__)  // (the portable build leaves these products to BLAS)

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mtlx::cpu::MTLX_ISA {
namespace {

using i64 = std::int64_t;

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;  // 32 zmm registers: a 14 x 2 tile, 2 of B, 1 broadcast
constexpr int kTileRows = 14;
#else
constexpr int kVectorBytes = 32;  // 16 ymm registers: a 6 x 2 tile, 2 of B, 1 broadcast
constexpr int kTileRows = 6;
#endif
constexpr int kTileVectors = 2;
// Inner indices per pass over C: a tile's panel of B (kInner x 2 vectors: 32 KiB with AVX-512,
// 16 with AVX2) stays in L1 while every row tile streams through it.
constexpr i64 kInner = 256;

// The calling thread's buffer for B's packed panels (reused from call to call). A type of this
// file's own: a std::vector here would emit its members, compiled for this instruction set, as
// weak symbols that the linker may then pick for the portable code's vectors too.
template <class Real>
struct PackingBuffer {
  Real* data = nullptr;
  i64 size = 0;
  PackingBuffer() = default;
  PackingBuffer(const PackingBuffer&) = delete;
  PackingBuffer& operator=(const PackingBuffer&) = delete;
  ~PackingBuffer() { delete[] data; }
};

template <class Real>
Real* packing_buffer(i64 n) {
  thread_local PackingBuffer<Real> buffer;
  if (buffer.size < n) {
    delete[] buffer.data;
    buffer.data = nullptr;  // (if new throws, the destructor must not delete it again)
    buffer.data = new Real[static_cast<std::size_t>(n)];
    buffer.size = n;
  }
  return buffer.data;
}

template <class Real>
struct Vec {
  static constexpr int kLanes = kVectorBytes / static_cast<int>(sizeof(Real));
  typedef Real type __attribute__((vector_size(kVectorBytes)));
  // The same vector at any address of a Real, loaded and stored in place. Copied through
  // std::memcpy, the tile went to C through a copy on the stack, 16 bytes at a time. Measured in
  // alternating rounds on an AMD EPYC (AVX2), the trunk's five products of a block: float32 5-8%
  // faster, float64 3-4%.
  typedef Real unaligned __attribute__((vector_size(kVectorBytes), aligned(alignof(Real)), may_alias));
};

// Where a tile reads B: NV vectors per inner index, at base[v] + p * stride.
template <class Real>
struct Panels {
  const Real* base[kTileVectors];
  i64 stride;
};

// C (MR rows x NV vectors, leading dimension ldc) = C (accumulate) or 0, plus the sum over
// p < K of A(i, p) B(p, :), A(i, p) at A[i * a_row + p * a_col].
template <class Real, int NV, int MR>
void tile(i64 K, const Real* __restrict A, i64 a_row, i64 a_col, const Panels<Real>& B, Real* __restrict C, i64 ldc,
          bool accumulate) {
  using V = typename Vec<Real>::type;
  using U = typename Vec<Real>::unaligned;
  constexpr int W = Vec<Real>::kLanes;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? V(*reinterpret_cast<const U*>(C + i * ldc + v * W)) : V{};
  }
  // (tile_gemm returns before an empty sum. A loop that might not run made GCC keep the tile in
  // memory around it.)
  if (K <= 0) __builtin_unreachable();
  for (i64 p = 0; p < K; ++p) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = *reinterpret_cast<const U*>(B.base[v] + p * B.stride);
    for (int i = 0; i < MR; ++i) {
      const Real a = A[i * a_row + p * a_col];
      for (int v = 0; v < NV; ++v) acc[i][v] += a * b[v];
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) *reinterpret_cast<U*>(C + i * ldc + v * W) = acc[i][v];
  }
}

// The tiles of 1..kTileRows rows: the last rows of C run in a tile of their own height (no row of
// A is copied or padded, and none computed for nothing).
template <class Real>
using TileFn = void (*)(i64, const Real*, i64, i64, const Panels<Real>&, Real*, i64, bool);

template <class Real, int NV, int... R>
constexpr std::array<TileFn<Real>, sizeof...(R)> tiles_of_height(std::integer_sequence<int, R...>) {
  return {&tile<Real, NV, R + 1>...};
}

template <class Real, int NV>
constexpr auto kTiles = tiles_of_height<Real, NV>(std::make_integer_sequence<int, kTileRows>{});

// One tile of C: rows [i0, i0 + rows) and columns [j0, j0 + NV * W) clipped to n. Columns past n
// (the last panel's padding) go to a copy of C's entries, so that the same code, and the same
// chains, compute every element.
template <class Real, int NV>
void run_tile(i64 i0, i64 rows, i64 j0, i64 n, i64 p0, i64 K, const Real* A, i64 a_row, i64 a_col,
              const Panels<Real>& B, Real* C, i64 ldc, bool accumulate) {
  constexpr int W = Vec<Real>::kLanes;
  const i64 cols = std::min<i64>(NV * W, n - j0);
  const Real* a = A + i0 * a_row + p0 * a_col;
  const TileFn<Real> fn = kTiles<Real, NV>[rows - 1];
  if (cols == NV * W) {
    fn(K, a, a_row, a_col, B, C + i0 * ldc + j0, ldc, accumulate);
    return;
  }
  Real c_pad[kTileRows * NV * W] = {};
  if (accumulate) {
    for (i64 i = 0; i < rows; ++i)
      std::copy(C + (i0 + i) * ldc + j0, C + (i0 + i) * ldc + j0 + cols, c_pad + i * NV * W);
  }
  fn(K, a, a_row, a_col, B, c_pad, NV * W, accumulate);
  for (i64 i = 0; i < rows; ++i) std::copy(c_pad + i * NV * W, c_pad + i * NV * W + cols, C + (i0 + i) * ldc + j0);
}

}  // namespace

template <class Real>
void tile_gemm(i64 m, i64 n, i64 k, const Real* A, i64 a_row, i64 a_col, const Real* B, i64 b_row, i64 b_col,
               bool accumulate, Real* C, i64 ldc, int n_threads) {
  constexpr int W = Vec<Real>::kLanes;
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum
    if (!accumulate) {
      for (i64 i = 0; i < m; ++i) std::fill(C + i * ldc, C + i * ldc + n, Real(0));
    }
    return;
  }
  const i64 n_panels = (n + W - 1) / W, n_groups = (n_panels + kTileVectors - 1) / kTileVectors;
  const i64 n_row_tiles = (m + kTileRows - 1) / kTileRows;
  // B's panels of W columns: read in place where B's rows are contiguous and the panel whole;
  // otherwise copied (p-major, W wide, padded with zeros): a transposed B, and the last columns.
  // (Whole groups of panels: a group of a whole panel and the last, partial one runs as one tile.)
  // Rows a multiple of 1 KiB apart are copied too, where many row tiles read a long panel: read in
  // place, a panel's rows fall in at most 4 of L1's 64 sets (32 lines of a 32 KiB 8-way cache) and
  // each row tile fetched the panel again from L2. Measured on an AMD EPYC (AVX2) against reading
  // in place, 60 alternating rounds of two processes, copy included: float64 X W (256 x 100 times
  // 100 x 128) 14% faster (quartiles 8-17%), X' dH (100 x 256 times 256 x 128) 9% (2-14%); with 4
  // row tiles (20 x 256 times 256 x 128) the copy cost 7%, so not below 8.
  // (Not beyond a few passes over the inner index: a product over every row of a large pass would
  // copy all of B.)
  const bool conflicting =
      k >= 64 && k <= 4 * kInner && n_row_tiles >= 8 && (b_row * static_cast<i64>(sizeof(Real))) % 1024 == 0;
  const i64 first_packed = b_col == 1 && !conflicting ? n / W / kTileVectors * kTileVectors : 0;
  Real* packed = packing_buffer<Real>((n_panels - first_packed) * W * k);
  // Whole panels of contiguous rows: 16 rows at a time, panel by panel within them, so that both
  // sides stay in L1 (row by row, the panels' rows, W k apart, fell in one set of L1 and evicted
  // each other; panel by panel, B's rows 1 KiB apart did).
  const i64 whole_end = b_col == 1 ? std::max(first_packed, n / W) : first_packed;
  constexpr i64 kCopyRows = 16;
  for (i64 p0 = 0; p0 < k; p0 += kCopyRows) {
    const i64 p1 = std::min(k, p0 + kCopyRows);
    for (i64 q = first_packed; q < whole_end; ++q) {
      Real* dst = packed + (q - first_packed) * W * k;
      for (i64 p = p0; p < p1; ++p) std::copy(B + p * b_row + q * W, B + p * b_row + (q + 1) * W, dst + p * W);
    }
  }
  for (i64 q = whole_end; q < n_panels; ++q) {
    Real* dst = packed + (q - first_packed) * W * k;
    for (i64 p = 0; p < k; ++p) {
      for (i64 l = 0; l < W; ++l) {
        const i64 j = q * W + l;
        dst[p * W + l] = j < n ? B[p * b_row + j * b_col] : Real(0);
      }
    }
  }
  // Panels [q, q + count) from inner index p0 on (a group's are all in place or all packed).
  const auto panels = [&](i64 q, int count, i64 p0) {
    Panels<Real> out{};
    out.stride = q < first_packed ? b_row : W;
    for (int v = 0; v < count; ++v) {
      out.base[v] =
          q + v < first_packed ? B + p0 * b_row + (q + v) * W : packed + (q + v - first_packed) * W * k + p0 * W;
    }
    return out;
  };
  // A group of two panels runs as one tile; the last panel alone, as a tile of one.
  // Row tile r covers rows [r m / R, (r + 1) m / R) of the R = ceil(m / kTileRows) tiles: heights
  // differ by at most one, instead of full tiles and a short last one that runs below the
  // kernel's speed (a block of 100 rows: 8 tiles of 12-13 rows, not 7 of 14 and one of 2).
  const auto run_group = [&](i64 group, i64 row_tile, i64 p0, i64 K, bool acc) {
    const i64 q = group * kTileVectors;
    const i64 i0 = row_tile * m / n_row_tiles;
    const i64 rows = (row_tile + 1) * m / n_row_tiles - i0;
    if (q + 1 < n_panels)
      run_tile<Real, 2>(i0, rows, q * W, n, p0, K, A, a_row, a_col, panels(q, 2, p0), C, ldc, acc);
    else
      run_tile<Real, 1>(i0, rows, q * W, n, p0, K, A, a_row, a_col, panels(q, 1, p0), C, ldc, acc);
  };
  const i64 n_tiles = n_groups * n_row_tiles;
  n_threads = static_cast<int>(std::min<i64>(n_threads, n_tiles));
  const auto run_tiles = [&](i64 first, i64 last) {
    for (i64 p0 = 0; p0 < k; p0 += kInner) {
      const i64 K = std::min(kInner, k - p0);
      const bool acc = accumulate || p0 > 0;
      for (i64 t = first; t < last; ++t) run_group(t / n_row_tiles, t % n_row_tiles, p0, K, acc);
    }
  };
  if (n_threads > 1 && m * n * k >= (i64{1} << 20)) {
    // Threads take contiguous ranges of tiles; each element is computed by one thread, in the same
    // order whatever their number.
#pragma omp parallel num_threads(n_threads)
    {
#ifdef _OPENMP
      const i64 id = omp_get_thread_num(), count = omp_get_num_threads();
#else
      const i64 id = 0, count = 1;
#endif
      run_tiles(id * n_tiles / count, (id + 1) * n_tiles / count);
    }
  } else {
    run_tiles(0, n_tiles);
  }
}

template void tile_gemm<float>(i64, i64, i64, const float*, i64, i64, const float*, i64, i64, bool, float*, i64, int);
template void tile_gemm<double>(i64, i64, i64, const double*, i64, i64, const double*, i64, i64, bool, double*, i64,
                                int);

}  // namespace mtlx::cpu::MTLX_ISA

#endif  // __AVX2__
