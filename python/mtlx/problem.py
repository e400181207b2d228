"""The regularized multi-task objective as parameter blocks: what the FISTA loop minimizes.

    F = sum_t c_t sum_i L_t(y_ti, x_ti . w_t + b_t) + (l2 / 2) ||W||_F^2 + alpha * sum_B g_B(U_B),
    W = sum of the blocks U_B (a shared block w0 contributes w0 1^T)

The parameters are one flat float64 vector ``theta`` made of blocks (:class:`Block`):

* **task blocks**: a d x T matrix, stored as rows (T_local, d), one per local task (under MPI
  each rank holds its own tasks' rows); one per :class:`~mtlx.penalties.Superpose` part (one
  in all for a plain penalty);
* **shared blocks**: a d-vector common to all tasks (a :class:`~mtlx.penalties.Shared` part),
  held whole by every rank; its gradient is the sum of the tasks' (an Allreduce under MPI);
* **intercepts** (``fit_intercept``): one per local task, unpenalized.

Each block's penalty is split (:meth:`~mtlx.penalties.Penalty.split`) into a prox part, applied
by :meth:`Problem.prox`, and smooth terms, which join the smooth part :meth:`Problem.f`.

Conditioning, done here so that the solver loop never sees it:

* intercepts are those of the task-centered features, ``b'_t = b_t + xbar_t . w_t`` (the
  margins ``(x - xbar_t) . w_t + b'_t`` are unchanged, but w and b' are decoupled; nothing is
  copied: each call forms ``b = b' - xbar . w`` and folds ``-g_b xbar_t`` into the W gradient);
* intercepts and shared blocks are rescaled so that their curvature matches the task blocks'
  (a fixed diagonal metric, from one pass over X): with X of scale 1e3, an intercept's
  curvature is 1e6 times smaller than the coefficients', and with one step size for both it
  stalled far from its optimum (the step limited by the coefficients);
* the iterate is float64 whatever the data's dtype, so that float32 data does not lose the
  small steps near the optimum to rounding.

Under MPI, every method returns this rank's share of a global sum, and collectives go through
the ``reduction`` object only (:mod:`mtlx._reduction`, :mod:`mtlx.distributed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._ops import HOST_OPS
from ._reduction import LocalReduction
from .objective import SmoothLoss, overflow_message
from .penalties.base import BlockContext, Penalty

__all__ = ["Block", "Problem"]


@dataclass
class Block:
    """One parameter block of theta.

    Attributes
    ----------
    kind : {"tasks", "shared", "intercepts"}
    slice : slice
        Its place in theta.
    shape : tuple
        (T_local, d), (d,) or (T_local,).
    penalty : Penalty or None
        The part of the penalty on this block (None for intercepts).
    prox_part : Penalty or None
        Applied by the prox (None: identity).
    smooth_terms : list of Penalty
        Joined to the smooth part.
    scale : float or ndarray
        theta holds ``scale * block`` (1 for task blocks).
    counted : bool
        Whether this rank adds the block's entries to global sums (a shared block is held by
        every rank and counted by rank 0 alone).
    """

    kind: str
    slice: slice
    shape: tuple
    penalty: Penalty | None
    prox_part: Penalty | None
    smooth_terms: list
    scale: object
    counted: bool


class _Stopped(Exception):
    """A callback on some rank raised StopIteration (seen at the next collective)."""


class Problem:
    """F(theta) = f(theta) + alpha g(theta) over the blocks of one problem (see the module docstring).

    Parameters
    ----------
    smooth : SmoothLoss
        The losses over the data (direct or Gram form).
    penalty : Penalty
    alpha : float
    l2 : float
    fit_intercept : bool
    reduction : LocalReduction or mtlx.distributed.MPIReduction, optional
    all_smooth : bool, default False
        Put every term of the penalty in the smooth part (each must be smooth), even one a prox
        would apply: for an engine that handles the non-smooth part itself (the factored trace
        norm).
    """

    #: Slots at the end of every reduced buffer: a callback asked to stop; local work failed.
    n_flags = 2
    dtype = np.dtype(np.float64)

    def __init__(self, smooth: SmoothLoss, penalty: Penalty, alpha: float, l2: float, fit_intercept: bool,
                 reduction=None, all_smooth: bool = False):
        data = smooth.data
        self.smooth = smooth
        self.penalty = penalty
        self.alpha = float(alpha)
        self.l2 = float(l2)
        self.fit_intercept = bool(fit_intercept)
        self.reduction = LocalReduction(data.task_ids) if reduction is None else reduction
        self.distributed = self.reduction.distributed
        self.data_dtype = data.dtype
        T, d = data.n_tasks, data.n_features
        self.n_tasks, self.n_features = T, d
        #: Where theta and the gradients live, and the vector arithmetic there (:mod:`mtlx._ops`): the
        #: host's, or a GPU's for a smooth part evaluated on a device.
        self.ops = getattr(smooth, "ops", HOST_OPS)
        #: Whether the statistics rounds hand MPI GPU memory (a device solve, a CUDA-aware MPI)
        #: rather than staging them through host buffers.
        self.mpi_on_device = bool(self.ops.on_device and self.distributed and self.reduction.cuda_aware)
        self.ctx = BlockContext(d, len(self.reduction.global_ids), np.asarray(self.reduction.local_index),
                                self.reduction.rank, self.distributed, smooth.n_threads, ops=self.ops)
        penalty.check(d, self.ctx.n_tasks)
        self.stop_requested = False
        self._failure = None

        active = self.alpha != 0.0
        self.blocks: list[Block] = []
        offset = 0
        for part in penalty.components():
            size, shape = ((d, (d,)) if part.block == "shared" else (T * d, (T, d)))
            prox_part, smooth_terms = part.split() if active else (None, [])
            if all_smooth and prox_part is not None:
                if not prox_part.smooth:
                    raise ValueError(f"{prox_part!r} is not smooth")
                prox_part, smooth_terms = None, [prox_part, *smooth_terms]
            if prox_part is not None and _is_identity(prox_part):
                prox_part = None
            self.blocks.append(Block(part.block, slice(offset, offset + size), shape, part, prox_part,
                                     [s for s in smooth_terms if not _is_identity(s)], 1.0,
                                     part.block != "shared" or self.reduction.rank == 0))
            offset += size
        if self.fit_intercept:
            self.blocks.append(Block("intercepts", slice(offset, offset + T), (T,), None, None, [], 1.0, True))
            offset += T
        self.size = offset
        self.task_blocks = [b for b in self.blocks if b.kind == "tasks"]
        self.shared_blocks = [b for b in self.blocks if b.kind == "shared"]
        self.intercepts = self.blocks[-1] if self.fit_intercept else None

        if self.ops.on_device:
            self._check_runs_on_device()
        self._xbar = data.feature_means() if self.fit_intercept and T else None
        self._set_scales()
        # Work arrays of one evaluation (the data's dtype for the core, float64 for the solver), and
        # the centering and intercept scales, where theta lives.
        empty, dtype = self.ops.empty, self.data_dtype
        self._W = empty((T, d), np.float64, "W")
        self._b = empty(T, dtype, "the intercepts")
        self._W_data = empty((T, d), dtype, "W in the data's dtype") if dtype != np.float64 else None
        self._gW = empty((T, d), dtype, "W's gradient") if self._W_data is not None else None
        self._gW64 = empty((T, d), np.float64, "W's gradient") if not self.task_blocks else None  # shared blocks only
        self._gb = empty(T, dtype, "the intercepts' gradient")
        self._xbar_here = None if self._xbar is None else self.ops.asarray(self._xbar)
        self._intercept_scale_here = None if self.intercepts is None else \
            self.ops.asarray(np.broadcast_to(np.asarray(self.intercepts.scale, dtype=np.float64), (T,)))
        self._stats_prox = [b for b in self.blocks if b.prox_part is not None and self.distributed
                            and b.kind == "tasks" and b.prox_part.n_stats(self.ctx) > 0]
        self._stats_smooth = [(b, s) for b in self.blocks for s in b.smooth_terms
                              if self.distributed and b.kind == "tasks" and s.n_stats(self.ctx) > 0]
        self._reduced = {id(s) for _, s in self._stats_smooth}
        self._has_smooth_terms = any(b.smooth_terms for b in self.blocks)

    # ------------------------------------------------------------------ structure
    def _check_runs_on_device(self) -> None:
        """Every part of the penalty has a prox (and value, gradient) that runs on device arrays."""
        for b in self.blocks:
            for part in ([b.prox_part] if b.prox_part is not None else []) + b.smooth_terms:
                if not part.runs_on_device:
                    raise ValueError(f"the penalty {part!r} does not run on a GPU (every penalty of mtlx does; "
                                     "a penalty of your own says so with runs_on_device = True once its prox "
                                     "and value take device arrays); solve on the host (device=None with host "
                                     "data)")
                if self.distributed and part.n_stats(self.ctx) > 0 and not part.stats_on_device:
                    raise ValueError(f"the penalty {part!r} does not run on GPUs under MPI (every penalty of "
                                     "mtlx does; a penalty of your own says so with stats_on_device = True once its "
                                     "statistics take device arrays); solve it on the hosts, or on one GPU without "
                                     "comm")

    def _set_scales(self) -> None:
        """The fixed metric: intercepts and shared blocks scaled to the task blocks' curvature; and
        the curvature the first line-search trial starts from.

        Curvatures from the diagonal of the data term's Hessian: ``kappa_t c_t ||x_tj - xbar_tj||^2``
        for coefficient j of task t (kappa the loss's bound on L''), ``kappa_t c_t m_t`` for its
        intercept, and the sum over tasks for a shared coefficient. The reference is the largest
        coefficient curvature of any task (+ l2): a lower bound of the Lipschitz constant within a
        factor d, so the first step is of the problem's scale whatever the data's (X of scale 1e-20
        has curvatures of 1e-40: from a first trial at 1, the line search needed thousands of
        iterations to come down).
        """
        data, smooth = self.smooth.data, self.smooth
        kappa_c = np.array([loss.typical_curvature(data.counted_targets(t))
                            for t, loss in enumerate(smooth.loss_objects)], dtype=np.float64) * smooth.weights
        diag = self._column_curvatures(centered=self.fit_intercept) * kappa_c[:, None] if data.n_tasks else \
            np.zeros((0, self.n_features))
        reference = self.reduction.max(float(diag.max()) if diag.size else 0.0) + self.l2
        self.initial_curvature = reference if np.isfinite(reference) and reference > 0 else 1.0
        if not (self.fit_intercept or self.shared_blocks) or not reference > 0:
            return
        if self.fit_intercept:
            curv = kappa_c * data.weight_totals
            self.intercepts.scale = np.where(curv > 0, np.sqrt(curv / reference), 1.0)
        if self.shared_blocks:
            column_sums = diag.sum(axis=0)
            if self.distributed:
                column_sums = self.reduce(np.concatenate([column_sums, np.zeros(self.n_flags)]))[: self.n_features]
            curv = (float(column_sums.max()) if column_sums.size else 0.0) + self.l2 * self.ctx.n_tasks
            for b in self.shared_blocks:
                b.scale = np.sqrt(curv / reference) if curv > 0 else 1.0

    def _column_curvatures(self, centered: bool) -> np.ndarray:
        """``||x_tj - xbar_tj||^2`` (T, d): from the Gram matrices' diagonals when the squared loss
        runs in the Gram form (no pass over the data), else one pass."""
        from .gram import GramSquaredLoss

        smooth, data = self.smooth, self.smooth.data
        if isinstance(smooth, GramSquaredLoss):
            G_diag = np.einsum("gjj->gj", smooth.G).astype(np.float64)
            sums = smooth.s.astype(np.float64)
            rows = data.n_samples.astype(np.float64)[: G_diag.shape[0]] if data.layout != "shared" else \
                np.full(1, float(data.X.shape[0]))
            out = G_diag - (sums * sums / np.maximum(rows, 1.0)[:, None] if centered else 0.0)
            out = np.maximum(out, 0.0)
            return np.repeat(out, data.n_tasks, axis=0) if data.layout == "shared" else out
        return data.column_sq_norms(centered=centered)

    def overflow_error(self) -> ValueError:
        """The error of a smooth part that is not finite at any point tried: values the data's dtype cannot carry."""
        return ValueError(overflow_message(self.smooth.data))

    def view(self, theta: np.ndarray, block: Block) -> np.ndarray:
        """The block's entries of theta, shaped (a view, in theta's scaled coordinates)."""
        return theta[block.slice].reshape(block.shape)

    def quadratic(self) -> bool:
        """True when f is quadratic in theta on every rank (collective under MPI)."""
        local = self.smooth.quadratic and all(s.quadratic for b in self.blocks for s in b.smooth_terms)
        return not self.reduction.any(not local)

    @property
    def speculative(self) -> bool:
        """Whether the prox statistics travel with the line-search scalars (see :func:`mtlx.fista.fista`)."""
        return bool(self._stats_prox) and all(b.prox_part.n_pieces(self.ctx) > 0 for b in self._stats_prox)

    # ------------------------------------------------------------------ coordinates
    def effective_W(self, theta: np.ndarray) -> np.ndarray:
        """W's local rows (T_local, d): the sum of the blocks (a view of theta for one task block)."""
        if len(self.task_blocks) == 1 and not self.shared_blocks:
            return self.view(theta, self.task_blocks[0])
        # (a host theta of a device problem: the certificate's and the results' copy)
        W = self._W if self.ops.resident(theta) else np.empty((self.n_tasks, self.n_features))
        W[...] = 0.0
        for b in self.task_blocks:
            W += self.view(theta, b)
        for b in self.shared_blocks:
            W += self.view(theta, b) / b.scale
        return W

    def intercepts_prime(self, theta: np.ndarray) -> np.ndarray | None:
        """b' (the intercepts of centered features), unscaled: a new array (None without intercepts)."""
        if self.intercepts is None:
            return None
        return self.view(theta, self.intercepts) / self.intercepts.scale

    def _xbar_dot(self, W: np.ndarray) -> np.ndarray:
        return np.einsum("td,td->t", self._xbar, W)

    def user_parameters(self, theta: np.ndarray):
        """(W rows (T_local, d), b (T_local,) or None, components) in the user's coordinates (new arrays).

        ``components``: one (T_local, d) array per block of W (a shared block repeated per task).
        """
        theta = self.ops.to_host(theta)
        W = np.array(self.effective_W(theta))
        b = self.intercepts_prime(theta)
        if b is not None and self._xbar is not None:
            b = b - self._xbar_dot(W)
        parts = []
        for blk in self.blocks:
            if blk.kind == "tasks":
                parts.append(np.array(self.view(theta, blk)))
            elif blk.kind == "shared":
                parts.append(np.tile(self.view(theta, blk) / blk.scale, (self.n_tasks, 1)))
        return W, b, parts

    def initial_theta(self, W_rows: np.ndarray | None, b: np.ndarray | None) -> np.ndarray:
        """theta for a warm start given as W's local rows and the user's intercepts.

        The first task block takes W (the other blocks start at zero).
        """
        theta = np.zeros(self.size)
        if W_rows is not None and self.task_blocks:
            self.view(theta, self.task_blocks[0])[...] = W_rows
        elif W_rows is not None and self.shared_blocks:
            blk = self.shared_blocks[0]
            self.view(theta, blk)[...] = self.reduction.task_mean(W_rows) * blk.scale
        if self.intercepts is not None:
            bp = np.zeros(self.n_tasks) if b is None else np.asarray(b, dtype=np.float64).copy()
            if self._xbar is not None:
                bp += self._xbar_dot(self.effective_W(theta))
            self.view(theta, self.intercepts)[...] = bp * self.intercepts.scale
        return theta

    def task_rows(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """theta as a checkpoint stores it: (one row per local task: [each task block's w_t, b'_t as
        iterated, the scale it was iterated at], the shared blocks as iterated, their scales).

        The iterate's own numbers beside their scales, not the unscaled values: dividing by a scale
        and multiplying back is not exact, and a resumed run must continue bit for bit. Under
        another number of ranks the shared blocks' scale (a sum over tasks) may differ in its last
        bits; :meth:`theta_from_rows` then converts.
        """
        theta = self.ops.to_host(theta)
        T = self.n_tasks
        cols = [self.view(theta, b) for b in self.task_blocks]
        if self.intercepts is not None:
            cols += [self.view(theta, self.intercepts)[:, None], self._intercept_scales()[:, None]]
        else:
            cols += [np.zeros((T, 1)), np.ones((T, 1))]
        shared = [self.view(theta, b) for b in self.shared_blocks]
        return (np.concatenate(cols, axis=1), np.concatenate(shared) if shared else np.zeros(0),
                np.array([b.scale for b in self.shared_blocks], dtype=np.float64))

    def _intercept_scales(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.intercepts.scale, dtype=np.float64), (self.n_tasks,)).copy()

    def theta_from_rows(self, rows: np.ndarray, shared: np.ndarray, shared_scales: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`task_rows`: exact where the scales are this problem's."""
        theta = np.zeros(self.size)
        d = self.n_features
        for k, b in enumerate(self.task_blocks):
            self.view(theta, b)[...] = rows[:, k * d : (k + 1) * d]
        for k, b in enumerate(self.shared_blocks):
            self.view(theta, b)[...] = _rescaled(shared[k * d : (k + 1) * d], shared_scales[k], b.scale)
        if self.intercepts is not None:
            self.view(theta, self.intercepts)[...] = _rescaled(rows[:, -2], rows[:, -1], self._intercept_scales())
        return theta

    # ------------------------------------------------------------------ failures and reductions
    def _failed(self, exc: BaseException) -> float:
        """Under MPI, keep a local failure for the next collective (which raises it on all ranks)."""
        if not self.distributed:
            raise exc
        if self._failure is None:
            self._failure = exc
        return float("nan")

    def reduce(self, buf: np.ndarray) -> np.ndarray:
        """Sum ``buf`` over ranks in place; its last :attr:`n_flags` slots are set here.

        Raises on every rank when local work failed on any; raises :class:`_Stopped` when a
        callback asked to stop on any rank.
        """
        buf[-2] = 1.0 if self.stop_requested else 0.0
        # MPI reads device memory outside the stream that wrote it: wait for the writes (the flags
        # included, which the reduction sets last) before it does.
        on_device = self.ops.on_device and self.ops.resident(buf)
        self.reduction.allreduce(buf, self._failure, self.ops.synchronize if on_device else None)
        if float(buf[-2]) > 0.0:
            raise _Stopped
        return buf

    def _statistics_buffer(self, n: int):
        """A zeroed buffer for one Allreduce of ``n`` statistics computed and used where the blocks
        live (plus the flags): GPU memory for a CUDA-aware MPI (:attr:`mpi_on_device`), else host
        memory, into which a device solve stages them (:meth:`_stage`, :meth:`_here`)."""
        if self.mpi_on_device:
            return self.ops.zeros((n + self.n_flags,), np.float64, "statistics for an Allreduce")
        return np.zeros(n + self.n_flags)

    def _stage(self, compute, out) -> None:
        """``compute(out)`` writes local statistics into ``out`` (a slice of a reduction buffer). A
        device solve whose buffer is host memory computes them into device scratch, then copies them
        to ``out`` (the copy synchronizes)."""
        if not self.ops.on_device or self.ops.resident(out):
            compute(out)
            return
        scratch = self.ops.zeros(out.shape, np.float64, "statistics for an Allreduce")
        compute(scratch)
        out[...] = self.ops.to_host(scratch)

    def _put(self, out, values) -> None:
        """``out[...] = values`` (a slice of a reduction buffer, from where the blocks live)."""
        if self.ops.on_device and self.ops.resident(out):
            self.ops.copyto(out, values)
        else:
            out[...] = self.ops.to_host(values)

    def _here(self, a):
        """Reduced statistics where the blocks live (no copy when they are already there)."""
        return self.ctx.here(a)

    # ------------------------------------------------------------------ the smooth part
    def f(self, theta: np.ndarray, grad: np.ndarray | None = None) -> float:
        """This rank's share of the smooth part at theta; fills ``grad`` when given.

        Under MPI, when shared blocks or smooth terms need sums over tasks, one Allreduce carries
        them all (every rank makes it, also a rank whose local work failed).
        """
        try:
            value = self._data_part(theta, grad)
            if self._has_smooth_terms:
                value += self._smooth_terms(theta, grad,
                                            lambda b, term: b.kind == "tasks" and id(term) not in self._reduced)
        except Exception as exc:
            value = self._failed(exc)
        if self.distributed and ((self.shared_blocks and grad is not None) or self._stats_smooth):
            value += self._reduced_part(theta, grad)
        if self._has_smooth_terms and self.shared_blocks:
            try:  # a shared block is whole on every rank once its gradient is summed
                value += self._smooth_terms(theta, grad, lambda b, term: b.kind == "shared")
            except Exception as exc:
                value = self._failed(exc)
        return value

    def _data_part(self, theta, grad) -> float:
        """The losses (and the ridge term) of the local tasks; their gradient into ``grad``.

        One task block of float64 data, the common case, costs no copy: the core reads W from
        theta and writes its gradient into grad's block.
        """
        W = self.effective_W(theta)
        value = 0.0
        gW = None if grad is None else self._gradient_target(grad)
        if self.n_tasks:
            b = None
            if self.intercepts is not None:
                b = np.subtract(self.view(theta, self.intercepts) / self._intercept_scale_here,
                                np.einsum("td,td->t", self._xbar_here, W), out=self._b, casting="unsafe")
            W_call = W
            if self._W_data is not None:
                np.copyto(self._W_data, W, casting="same_kind")
                W_call = self._W_data
            if grad is None:
                value = self.smooth(W_call, b)
            else:
                direct = self._W_data is None
                value = self.smooth(W_call, b, gW if direct else self._gW, self._gb)
                if not direct:
                    np.copyto(gW, self._gW, casting="same_kind")
        if self.l2:
            value += 0.5 * self.l2 * float(np.einsum("td,td->", W, W))
        if grad is None:
            return value
        if self.intercepts is not None:
            gb = self._gb.astype(np.float64)
            if self._xbar_here is not None:
                gW -= gb[:, None] * self._xbar_here
            np.divide(gb, self._intercept_scale_here, out=self.view(grad, self.intercepts))
        if self.l2:
            gW += self.l2 * W
        for b in self.task_blocks[1:]:
            self.view(grad, b)[...] = gW
        for b in self.shared_blocks:
            np.divide(gW.sum(axis=0), b.scale, out=self.view(grad, b))  # a local sum; reduced in f
        return value

    def _gradient_target(self, grad: np.ndarray) -> np.ndarray:
        """Where W's gradient (T_local, d) goes: the first task block of ``grad``, or a work array."""
        return self.view(grad, self.task_blocks[0]) if self.task_blocks else self._gW64

    def _smooth_terms(self, theta, grad, which) -> float:
        """The smooth penalty terms ``which(block, term)`` selects, computed locally (alpha included)."""
        value = 0.0
        for b in self.blocks:
            for term in b.smooth_terms:
                if not which(b, term):
                    continue
                V = self._unscaled(theta, b)
                g = None if grad is None else np.zeros_like(V)
                value += self.alpha * term.value_and_gradient(V, g, self.ctx)
                if g is not None:
                    self.view(grad, b)[...] += self.alpha * g / b.scale
        return value

    def _unscaled(self, theta, block) -> np.ndarray:
        V = self.view(theta, block)
        return V if block.kind == "tasks" else V / block.scale

    def _reduced_part(self, theta, grad) -> float:
        """Under MPI, one Allreduce: the shared blocks' gradient sums and the statistics of smooth
        terms that need every task (a task graph's W L, ...); then those terms' values and gradients."""
        d = self.n_features
        sizes = [d] * len(self.shared_blocks) if grad is not None else []
        sizes += [term.n_stats(self.ctx) for _, term in self._stats_smooth]
        buf = self._statistics_buffer(sum(sizes))
        try:
            pos = 0
            if grad is not None:
                for b in self.shared_blocks:
                    self._put(buf[pos : pos + d], self.view(grad, b))
                    pos += d
            for b, term in self._stats_smooth:
                k = term.n_stats(self.ctx)
                V = self.view(theta, b)
                self._stage(lambda out, term=term, V=V: term.local_stats(V, None, None, out, self.ctx),
                            buf[pos : pos + k])
                pos += k
        except Exception as exc:
            self._failed(exc)
        self.reduce(buf)
        value = 0.0
        try:
            pos = 0
            if grad is not None:
                for b in self.shared_blocks:
                    self.view(grad, b)[...] = self._here(buf[pos : pos + d])
                    pos += d
            for b, term in self._stats_smooth:
                k = term.n_stats(self.ctx)
                g = self.ops.zeros(b.shape, np.float64, "a gradient") if grad is not None else None
                value += self.alpha * term.value_from_stats(self.view(theta, b), self._here(buf[pos : pos + k]),
                                                            self.ctx, g)
                if g is not None:
                    self.view(grad, b)[...] += self.alpha * g
                pos += k
        except Exception as exc:
            value = self._failed(exc)
        return value

    # ------------------------------------------------------------------ the prox part
    def prox(self, theta: np.ndarray, step: float) -> float:
        """In place: every block <- its prox at step ``step`` (alpha included); returns this rank's
        share of alpha * g at the result. Statistics under MPI: one Allreduce for all blocks."""
        value = 0.0
        tau = step * self.alpha
        try:
            for b in self.blocks:
                if b.prox_part is not None and b not in self._stats_prox:
                    value += self.alpha * self._prox_local(theta, b, tau)
        except Exception as exc:
            value = self._failed(exc)
        if self._stats_prox:
            value += self._stats_round(theta, tau, prox=True)
        return value

    def _prox_local(self, theta, b, tau) -> float:
        V = self.view(theta, b)
        if b.kind == "tasks":  # unscaled
            return b.prox_part.prox(V, tau, V, self.ctx)
        # theta holds s u: prox of tau g(u) at theta is s prox_{tau / s^2 g}(theta / s)
        U = V / b.scale
        value = b.prox_part.prox(U, tau / b.scale**2, U, self.ctx)
        V[...] = U * b.scale
        return value

    def g(self, theta: np.ndarray) -> float:
        """This rank's share of alpha * (the prox parts' g) at theta."""
        value = 0.0
        try:
            for b in self.blocks:
                if b.prox_part is not None and b not in self._stats_prox:
                    value += self.alpha * b.prox_part.value(self._unscaled(theta, b), self.ctx)
        except Exception as exc:
            value = self._failed(exc)
        if self._stats_prox:
            value += self._stats_round(theta, None, prox=False)
        return value

    def _stats_round(self, theta, tau, prox: bool) -> float:
        """Local statistics of every block that needs them, one Allreduce, then each block's prox (or value)."""
        sizes = [b.prox_part.n_stats(self.ctx) for b in self._stats_prox]
        buf = self._statistics_buffer(sum(sizes))
        try:
            pos = 0
            for b, k in zip(self._stats_prox, sizes):
                V = self.view(theta, b)
                self._stage(lambda out, part=b.prox_part, V=V: part.local_stats(V, tau, V, out, self.ctx),
                            buf[pos : pos + k])
                pos += k
        except Exception as exc:
            self._failed(exc)
        self.reduce(buf)
        value = 0.0
        try:
            pos = 0
            for b, k in zip(self._stats_prox, sizes):
                V = self.view(theta, b)
                stats = self._here(buf[pos : pos + k])
                if prox:
                    value += self.alpha * b.prox_part.prox_from_stats(V, stats, tau, V, self.ctx)
                else:
                    value += self.alpha * b.prox_part.value_from_stats(V, stats, self.ctx)
                pos += k
        except Exception as exc:
            value = self._failed(exc)
        return value

    # ------------------------------------------------------------------ speculative pieces (MPI)
    def pieces_size(self) -> int:
        """Length of the step-free statistics pieces of every block that needs statistics."""
        return sum(b.prox_part.n_pieces(self.ctx) for b in self._stats_prox)

    def local_pieces(self, y: np.ndarray, g: np.ndarray, out: np.ndarray) -> None:
        """This rank's pieces of the prox statistics of y - s g, into ``out``."""
        try:
            pos = 0
            for b in self._stats_prox:
                k = b.prox_part.n_pieces(self.ctx)
                Y, G = self.view(y, b), self.view(g, b)
                self._stage(lambda buf, part=b.prox_part, Y=Y, G=G: part.local_pieces(Y, G, buf, self.ctx),
                            out[pos : pos + k])
                pos += k
        except Exception as exc:
            self._failed(exc)

    def prox_with_pieces(self, theta: np.ndarray, step: float, pieces: np.ndarray) -> float:
        """:meth:`prox` given the all-reduced pieces of the point before the gradient step (no Allreduce)."""
        tau = step * self.alpha
        value = 0.0
        try:
            pos = 0
            for b in self.blocks:
                if b.prox_part is None:
                    continue
                if b not in self._stats_prox:
                    value += self.alpha * self._prox_local(theta, b, tau)
                    continue
                k = b.prox_part.n_pieces(self.ctx)
                stats = self._here(b.prox_part.stats_from_pieces(pieces[pos : pos + k], step, self.ctx))
                V = self.view(theta, b)
                value += self.alpha * b.prox_part.prox_from_stats(V, stats, tau, V, self.ctx)
                pos += k
        except Exception as exc:
            value = self._failed(exc)
        return value


def _rescaled(values, saved_scale, scale):
    """``values`` taken at ``saved_scale``, at ``scale`` (themselves where the two are equal)."""
    return np.where(saved_scale == scale, values, values / saved_scale * scale)


def _is_identity(penalty) -> bool:
    from .penalties.none import NoPenalty

    return isinstance(penalty, NoPenalty)
