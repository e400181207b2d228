"""Products over the rows of a tall X, in bounded memory and bitwise independent of the thread count.

The working-set engine's statistics are sums over the rows of X (``X' Y``, the Gram rows
``X_S' X``, residual norms). Done as one BLAS call, they copied whole columns of X (the
selected features, centered: 0.3x the data for a large working set) and gave results that
depended on the BLAS's thread count (it splits the sums differently). Here:

* the rows are taken in blocks of a fixed size (a few MB), so a copy is one block's;
* each output entry is summed by one thread over the blocks in order, threads splitting the
  *output's columns* (or, for a small output, each block writes its own partial sum, added in
  block order), so the summation order depends on neither the thread count nor the schedule;
* BLAS runs single-threaded inside (the threads are ours: numpy releases the GIL in its
  products).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._config import blas_threads

__all__ = ["block_ranges", "column_chunks", "column_products", "row_sums"]

#: Bytes of X one block of rows holds (its copies are of this size).
BLOCK_BYTES = 4 << 20


def block_ranges(n_rows: int, row_bytes: int) -> list:
    """Fixed (start, stop) row blocks of about :data:`BLOCK_BYTES` (at least 64 rows each)."""
    step = max(64, BLOCK_BYTES // max(row_bytes, 1))
    return [(lo, min(lo + step, n_rows)) for lo in range(0, n_rows, step)]


#: Output columns per chunk. Fixed, not derived from the thread count: BLAS computes an entry of
#: a product differently at the edge of a matrix than inside, so a partition that moved with the
#: thread count would move those entries' rounding too.
CHUNK_COLUMNS = 256


def column_chunks(n_cols: int) -> list:
    """Fixed (start, stop) column ranges of :data:`CHUNK_COLUMNS`."""
    return [(a, min(a + CHUNK_COLUMNS, n_cols)) for a in range(0, n_cols, CHUNK_COLUMNS)]


def column_products(left_of_block, X: np.ndarray, out: np.ndarray, n_threads: int) -> np.ndarray:
    """``out = sum_blocks left(lo, hi) @ X[lo:hi]`` over X's fixed row blocks, ``out`` (k x d).

    ``left_of_block(lo, hi)`` gives the (k x rows) left factor of a block (a copy of that block's
    selected, centered columns, transposed). Threads take the fixed column chunks of ``out``;
    each entry is computed over every block in order (bitwise the same for any n_threads).
    The left factors are computed once per block and shared by the threads.
    """
    out[...] = 0.0
    blocks = block_ranges(X.shape[0], X.shape[1] * X.itemsize)
    chunks = column_chunks(out.shape[1])
    with blas_threads(1):
        if len(chunks) == 1 or n_threads == 1:
            if len(chunks) > 1:  # the same partition as the threads use, in one thread
                for lo, hi in blocks:
                    left, part = left_of_block(lo, hi), X[lo:hi]
                    for a, b in chunks:
                        out[:, a:b] += left @ part[:, a:b]
                return out
            for lo, hi in blocks:
                out += left_of_block(lo, hi) @ X[lo:hi]
            return out
        with ThreadPoolExecutor(min(n_threads, len(chunks))) as pool:
            for lo, hi in blocks:
                left = left_of_block(lo, hi)
                part = X[lo:hi]

                def add(chunk, left=left, part=part):
                    a, b = chunk
                    out[:, a:b] += left @ part[:, a:b]

                list(pool.map(add, chunks))
    return out


#: Blocks per task of row_sums's thread pool.
_RUN_BLOCKS = 64


def row_sums(term_of_block, n_rows: int, row_bytes: int, width: int, n_threads: int) -> np.ndarray:
    """``sum_blocks term(lo, hi)`` of a small (width,) term per block of rows, added in block order.

    Each block's term is computed by one thread (any of them), stored, and the terms summed in
    block order afterwards: bitwise the same for any n_threads.
    """
    blocks = block_ranges(n_rows, row_bytes)
    parts = np.zeros((len(blocks), width))
    with blas_threads(1):
        if n_threads == 1 or len(blocks) == 1:
            for i, (lo, hi) in enumerate(blocks):
                parts[i] = term_of_block(lo, hi)
        else:
            # Threads take runs of consecutive blocks: one future per block held every block's
            # future and result at once (15,625 blocks of a 10^6-row sparse fit: 31 MB).
            runs = [range(a, min(a + _RUN_BLOCKS, len(blocks))) for a in range(0, len(blocks), _RUN_BLOCKS)]

            def run(indices):
                for i in indices:
                    parts[i] = term_of_block(*blocks[i])

            with ThreadPoolExecutor(min(n_threads, len(runs))) as pool:
                list(pool.map(run, runs))
    total = np.zeros(width)
    for part in parts:
        total += part
    return total
