"""The architecture of a shared-trunk network and its flat parameter vector.

The layout mirrors ``cpp/include/mtlx/trunk.hpp`` (row-major matrices):

* trunk layer l = 1..L: ``W_l`` (n_{l-1} x n_l) then ``b_l`` (n_l), n_0 = d;
* then per task t, in order: task layer m: ``V_m`` (g_{m-1} x g_m), ``c_m``; head ``A_t``
  (g_M x K_t), ``a_t`` (K_t), g_0 = n_L.

A head of K_t = 1 output carries the task's scalar loss; K_t > 1 outputs are a softmax over
K_t classes.
"""

from __future__ import annotations

import numpy as np

from .. import _core

__all__ = ["ACTIVATIONS", "TrunkNetwork"]

#: Hidden-layer activations by name (the core's codes).
ACTIVATIONS = {"identity": _core.Activation.identity, "relu": _core.Activation.relu, "tanh": _core.Activation.tanh}


class TrunkNetwork:
    """Widths of a shared-trunk network with given heads, and views into its parameter vector.

    Parameters
    ----------
    n_features : int
    hidden : tuple of int
        Widths of the shared layers (at least one).
    task_hidden : tuple of int
        Widths of each task's own hidden layers (may be empty).
    activation : {"relu", "tanh", "identity"}
    out_dims : sequence of int
        Outputs K_t of each task's head, in task order.
    """

    def __init__(self, n_features: int, hidden, task_hidden, activation: str, out_dims):
        self.n_features = int(n_features)
        self.hidden = tuple(int(h) for h in hidden)
        self.task_hidden = tuple(int(g) for g in task_hidden)
        self.activation = activation
        self.code = ACTIVATIONS[activation]
        self.out_dims = np.asarray(out_dims, dtype=np.int64).reshape(-1)
        self.trunk_sizes = np.array((self.n_features,) + self.hidden, dtype=np.int64)
        self.task_sizes = np.array(self.task_hidden, dtype=np.int64)
        widths = list(self.trunk_sizes)
        self.n_trunk = int(sum(a * b + b for a, b in zip(widths[:-1], widths[1:])))
        g = [self.hidden[-1], *self.task_hidden]
        self._task_layers_size = int(sum(a * b + b for a, b in zip(g[:-1], g[1:])))
        self.head_inputs = g[-1]
        sizes = self._task_layers_size + self.out_dims * (self.head_inputs + 1)
        self.task_starts = self.n_trunk + np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n_params = int(self.task_starts[-1])

    @property
    def n_tasks(self) -> int:
        return len(self.out_dims)

    def with_heads(self, out_dims) -> TrunkNetwork:
        """The same trunk and task layers with other heads (another set of tasks)."""
        return TrunkNetwork(self.n_features, self.hidden, self.task_hidden, self.activation, out_dims)

    # ------------------------------------------------------------------ views
    def trunk_layers(self, params: np.ndarray) -> list:
        """``[(W_1, b_1), ...]``: views of the shared layers in ``params``."""
        out, at = [], 0
        for n_in, n_out in zip(self.trunk_sizes[:-1], self.trunk_sizes[1:]):
            W = params[at: at + n_in * n_out].reshape(n_in, n_out)
            at += n_in * n_out
            out.append((W, params[at: at + n_out]))
            at += n_out
        return out

    def task_block(self, params: np.ndarray, t: int) -> np.ndarray:
        """Task ``t``'s parameters (its layers and head), a view."""
        return params[self.task_starts[t]: self.task_starts[t + 1]]

    def task_layers(self, params: np.ndarray, t: int) -> tuple[list, tuple]:
        """``([(V_1, c_1), ...], (A_t, a_t))``: views of task ``t``'s own layers and head."""
        block = self.task_block(params, t)
        layers, at = [], 0
        g = [self.hidden[-1], *self.task_hidden]
        for n_in, n_out in zip(g[:-1], g[1:]):
            V = block[at: at + n_in * n_out].reshape(n_in, n_out)
            at += n_in * n_out
            layers.append((V, block[at: at + n_out]))
            at += n_out
        K = int(self.out_dims[t])
        A = block[at: at + self.head_inputs * K].reshape(self.head_inputs, K)
        return layers, (A, block[at + self.head_inputs * K: at + self.head_inputs * K + K])

    def task_rows(self, theta: np.ndarray, n_extra: int, width: int) -> np.ndarray:
        """One row per task of a vector laid out as theta (the parameters, then ``n_extra`` scalars
        per task in task order): the task's block, then its scalars, zero-padded to ``width``
        (what a checkpoint stores and ranks exchange, keyed by task)."""
        rows = np.zeros((self.n_tasks, width))
        for t in range(self.n_tasks):
            block = self.task_block(theta, t)
            rows[t, : block.size] = block
            for k in range(n_extra):
                rows[t, block.size + k] = theta[self.n_params + k * self.n_tasks + t]
        return rows

    def theta_from_rows(self, trunk: np.ndarray, rows: np.ndarray, n_extra: int) -> np.ndarray:
        """The inverse of :meth:`task_rows`: the vector of a trunk block and one row per task."""
        theta = np.empty(self.n_params + n_extra * self.n_tasks)
        theta[: self.n_trunk] = trunk
        for t in range(self.n_tasks):
            size = self.task_starts[t + 1] - self.task_starts[t]
            theta[self.task_starts[t]: self.task_starts[t + 1]] = rows[t, :size]
            for k in range(n_extra):
                theta[self.n_params + k * self.n_tasks + t] = rows[t, size + k]
        return theta

    def weight_mask(self) -> np.ndarray:
        """True on the entries of weight matrices (the ridge term's), False on biases."""
        mask = np.zeros(self.n_params, dtype=bool)
        probe = np.arange(self.n_params)
        for W, _ in self.trunk_layers(probe):
            mask[W.ravel()] = True
        for t in range(self.n_tasks):
            layers, (A, _) = self.task_layers(probe, t)
            for V, _ in layers:
                mask[V.ravel()] = True
            mask[A.ravel()] = True
        return mask

    # ------------------------------------------------------------------ initialisation
    def initial_params(self, seed: int, positions, dtype) -> np.ndarray:
        """Glorot-uniform weights and biases (scikit-learn's MLP initialisation).

        The trunk is drawn from ``seed`` alone and task t's block from ``(seed, positions[t])``,
        its position in the global task order: the same network on any number of ranks.
        """
        params = np.empty(self.n_params, dtype=np.float64)
        rng = np.random.default_rng([int(seed), 0])
        for W, b in self.trunk_layers(params):
            _glorot(rng, W, b)
        for t, position in enumerate(positions):
            rng = np.random.default_rng([int(seed), 1, int(position)])
            layers, (A, a) = self.task_layers(params, t)
            for V, c in layers:
                _glorot(rng, V, c)
            _glorot(rng, A, a)
        return params.astype(dtype, copy=False)

    # ------------------------------------------------------------------ forward passes
    def predict(self, X: np.ndarray, params: np.ndarray, rows=None, n_threads: int = 1) -> np.ndarray:
        """Head outputs (n x sum_t K_t): task t's K_t columns, on its rows (``rows[t] = (lo, hi)``,
        all rows by default; entries outside a task's rows are 0)."""
        X = np.ascontiguousarray(X)
        n = X.shape[0]
        T = self.n_tasks
        lo = np.zeros(T, dtype=np.int64) if rows is None else np.array([r[0] for r in rows], dtype=np.int64)
        hi = np.full(T, n, dtype=np.int64) if rows is None else np.array([r[1] for r in rows], dtype=np.int64)
        out = np.zeros((n, int(self.out_dims.sum())), dtype=X.dtype)
        _core.trunk_predict(X, np.ascontiguousarray(params, dtype=X.dtype), self.trunk_sizes, self.task_sizes,
                            self.code, lo, hi, self.out_dims, np.zeros(T, dtype=np.uint8), np.zeros(T), out,
                            n_threads)
        return out

    def representation(self, X: np.ndarray, params: np.ndarray, n_threads: int = 1) -> np.ndarray:
        """The shared representation (n x hidden[-1]) of the rows of X."""
        X = np.ascontiguousarray(X)
        out = np.empty((X.shape[0], self.hidden[-1]), dtype=X.dtype)
        _core.trunk_representation(X, np.ascontiguousarray(params[: self.n_trunk], dtype=X.dtype), self.trunk_sizes,
                                   self.code, out, n_threads)
        return out

    def __repr__(self) -> str:
        return (f"TrunkNetwork(d={self.n_features}, hidden={self.hidden}, task_hidden={self.task_hidden}, "
                f"activation={self.activation!r}, out_dims={self.out_dims.tolist()})")


def _glorot(rng, W: np.ndarray, b: np.ndarray) -> None:
    bound = np.sqrt(6.0 / (W.shape[0] + W.shape[1]))
    W[...] = rng.uniform(-bound, bound, W.shape)
    b[...] = rng.uniform(-bound, bound, b.shape)
