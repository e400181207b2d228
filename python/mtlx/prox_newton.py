"""Proximal Newton with working sets: smooth per-task losses with an l1 or l2,1 penalty.

    F(W, b) = sum_t c_t sum_i s_it L_t(y_it, x_i . w_t + b_t) + alpha g(W)

with each task's L_t logistic, squared hinge, Huber, Poisson or squared (mixed freely; tasks all
squared go to the working-set CD engine of :mod:`mtlx.working_set`). Classification and robust
or count regression in high dimension (d >> n), where proximal-gradient steps crawl: the method
of skglm's ``ProxNewton`` (Bertrand, Klopfenstein et al. 2022), for several tasks, on one dense X
shared by the tasks or on tasks with rows of their own (``_SharedRows``, ``_StackedRows``: the
few operations that differ between the layouts). Each outer iteration

1. moves the intercepts to their optimum (one-dimensional Newton steps: the dual point below is
   feasible only there) and takes the gradient G = X' R, R_it = c_t s_it L'(z_it);
2. computes the duality gap (below): done when it is at most ``tol`` times F;
3. builds a working set: the support and the features whose rows of G violate the optimality
   condition most (the dual norm of the row over alpha), twice the support's size at least;
4. minimizes the quadratic model of the loss at (W, b) on the working set (its curvature
   h_it = c_t s_it L''(z_it), the generalized second derivative where L' has kinks, floored at
   :attr:`mtlx.losses.Loss.newton_floor` of its bound) by coordinate descent
   (``mtlx._core.cd_epochs_newton``: each row's model gradient from X_S (W - W0) + db, O(n T) a
   row, intercepts stepped exactly);
5. takes the step by a backtracking line search on the composite objective's directional
   derivative (skglm's rule, formed without cancellation: see :meth:`ProxNewtonSolver._newton_step`).

The losses' values, derivatives, curvatures and conjugates come from their functors in the core
(``cpp/include/mtlx/losses.hpp``: the math written once).

**Duality gap.** With the intercepts at their optimum (1' R_t = 0), theta = -R / s, s =
max(1, g*(G) / alpha), is dual feasible (g* the dual norm, 1' theta_t = 0), and

    D(theta) = -sum_it c_t s_it L_t*(y_it, L_t'(z_it) / s)

(L* the loss's conjugate; for the logistic loss, with p = sigma(-y z) / s, the familiar
``-sum c s [p log p + (1 - p) log(1 - p)]``), so ``F - D`` bounds F's distance to its minimum
whatever the conditioning.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._config import blas_threads
from ._per_task_sets import per_task_working_sets

__all__ = ["ProxNewtonSolver", "solve_prox_newton", "supports"]

#: Smallest working set.
FIRST_WORKING_SET = 10
#: Coordinate-descent epochs on one model at most, and the first tolerance of their moves
#: (relative to the largest coefficient), tightened with the gap (a thousandth of the relative gap:
#: the Newton steps then converge superlinearly).
MODEL_EPOCHS = 100
MODEL_TOL = 1e-4
#: How many halvings of the step the line search tries.
MAX_HALVINGS = 40
#: Newton steps without the gap halving after which the engine has stalled (and hands over).
NO_PROGRESS = 25
#: Iterates' differences the dual extrapolation combines (celer's K).
EXTRAPOLATION = 5


#: The losses this engine takes (tasks all "squared" go to the working-set CD engine instead).
NEWTON_LOSSES = ("logistic", "squared_hinge", "huber", "poisson", "squared")


def takes_losses(losses) -> bool:
    """Whether every task's loss is one this engine takes and at least one is not squared."""
    return bool(losses) and all(x.name in NEWTON_LOSSES for x in losses) and \
        any(x.name != "squared" for x in losses)


def supports(data, penalty, l2: float) -> str | None:
    """Why this engine cannot solve a problem of (per :func:`takes_losses`) smooth tasks, or None
    when it can."""
    from .penalties.l1 import L1
    from .penalties.l21 import L21

    if data.sparse:
        return "a dense X"
    if data.dtype != np.float64:
        return "float64 data"
    if type(penalty) not in (L1, L21):
        return f"the penalty L1 or L21 (this fit: {penalty!r})"
    if l2 != 0.0:
        return "l2 = 0"
    return None


class _SharedRows:
    """One X (n x d) for every task: margins, targets and weights are (n, T) arrays."""

    def __init__(self, X, data):
        self.X, self.T = X, data.n_tasks
        self.targets = data.Y.astype(np.float64)
        self.entry_weights = np.ones_like(self.targets) if data.sample_weight is None else \
            data.sample_weight.astype(np.float64)

    def per_entry(self, c):
        return self.entry_weights * np.asarray(c, dtype=np.float64)[None, :]

    def margins(self, W, b):
        return self.X @ W + b[None, :]

    def gradient(self, R):
        return self.X.T @ R

    def task_sums(self, A):
        return A.sum(axis=0)

    def with_intercepts(self, Z, step):
        return Z + step[None, :]

    def kernel_H(self, H):
        return np.ascontiguousarray(H.T), None

    def curvatures(self, Xs, H):
        return np.ascontiguousarray((Xs * Xs) @ H)

    def moves(self, Xs, delta, db):
        """The margins' move (n, T) of a step (delta on the working set's rows of W, db)."""
        return Xs.T @ delta + db[None, :]

    def means(self, X):
        return X.mean(axis=0)[:, None] * np.ones(self.T)  # d x T: one mean for every task

    def task_entries(self, t):
        """Task t's entries of an (n, T) array."""
        return (slice(None), t)


class _StackedRows:
    """Each task its own rows (offsets): margins, targets and weights are one entry per row."""

    def __init__(self, X, data):
        self.X, self.T = X, data.n_tasks
        self.offsets = np.asarray(data.offsets, dtype=np.int64)
        self.targets = data.y.astype(np.float64)
        self.entry_weights = np.ones_like(self.targets) if data.sample_weight is None else \
            data.sample_weight.astype(np.float64)
        self.task = np.repeat(np.arange(self.T), np.diff(self.offsets))

    def rows(self, t):
        return slice(int(self.offsets[t]), int(self.offsets[t + 1]))

    def per_entry(self, c):
        return self.entry_weights * np.asarray(c, dtype=np.float64)[self.task]

    def margins(self, W, b):
        Z = np.empty(len(self.targets))
        for t in range(self.T):
            Z[self.rows(t)] = self.X[self.rows(t)] @ W[:, t] + b[t]
        return Z

    def gradient(self, R):
        return np.column_stack([self.X[self.rows(t)].T @ R[self.rows(t)] for t in range(self.T)])

    def task_sums(self, A):
        return np.add.reduceat(A, self.offsets[:-1]) if len(A) else np.zeros(self.T)

    def with_intercepts(self, Z, step):
        return Z + step[self.task]

    def kernel_H(self, H):
        return np.ascontiguousarray(H), self.offsets

    def curvatures(self, Xs, H):
        return np.ascontiguousarray(np.column_stack([(Xs[:, self.rows(t)] ** 2) @ H[self.rows(t)]
                                                     for t in range(self.T)]))

    def moves(self, Xs, delta, db):
        Q = np.empty(len(self.targets))
        for t in range(self.T):
            Q[self.rows(t)] = Xs[:, self.rows(t)].T @ delta[:, t] + db[t]
        return Q

    def means(self, X):
        return np.column_stack([X[self.rows(t)].mean(axis=0) for t in range(self.T)])  # d x T

    def task_entries(self, t):
        """Task t's entries of a one-per-row array."""
        return self.rows(t)


class ProxNewtonSolver:
    """The problem of one dataset, solved for any alpha (warm starts along a path).

    Parameters
    ----------
    data : TaskData
        Dense float64 (targets checked for their losses); one X shared by the tasks or stacked tasks.
    penalty : L1 or L21
    fit_intercept : bool
    task_weights : {"mean", "sum"} or array_like
    loss : str, Loss or sequence of them, default "logistic"
        One loss for every task or one per task (see :func:`takes_losses`).
    """

    def __init__(self, data, penalty, fit_intercept: bool, task_weights="mean", loss="logistic"):
        from ._validate import resolve_task_weights
        from .losses import resolve_losses

        self.losses = resolve_losses(loss, data.n_tasks)
        self.fit_intercept = bool(fit_intercept)
        X = np.asarray(data.X, dtype=np.float64)
        self.rows = (_SharedRows if data.layout == "shared" else _StackedRows)(X, data)
        # With intercepts, the columns are centered, per task for stacked tasks (one copy of X;
        # b' = b + xbar_t . w_t is the intercept of the centered features, the margins unchanged):
        # a feature of mean 500 and spread 1000 made the intercept and its coefficient a valley
        # coordinate descent crawled along (50,000 epochs short of 1e-9).
        self.xbar = self.rows.means(X) if self.fit_intercept else None  # d x T
        if self.fit_intercept:
            X = X - (self.xbar[:, 0] if data.layout == "shared" else self.xbar[:, self.rows.task].T)
        self.X = self.rows.X = np.ascontiguousarray(X)
        self.Y = self.rows.targets
        self.weights = self.rows.per_entry(resolve_task_weights(task_weights, data.weight_totals))  # c_t s_i
        self.penalty = penalty
        self.code = int(penalty.cd_kind)
        self.w = float(penalty.w)  # the penalty's relative weight (alpha multiplies w g)
        self.n, self.d = self.X.shape
        self.T = data.n_tasks
        self._entries = np.maximum(self.rows.task_sums(np.ones_like(self.weights)), 1.0)  # m_t (at least 1)

    # ------------------------------------------------------------------ the objective
    def _per_task(self, Z: np.ndarray, compute) -> np.ndarray:
        """An array like Z whose task-t entries are ``compute(loss_t, y_t, z_t)`` (the core's functors)."""
        out = np.empty_like(Z)
        for t, loss in enumerate(self.losses):
            at = self.rows.task_entries(t)
            out[at] = compute(loss, self.Y[at], Z[at])
        return out

    def _weigh(self, A: np.ndarray) -> np.ndarray:
        """weights * A, 0 at the entries of weight 0 (an unlabelled entry's term may be anything,
        even infinite: a conjugate outside its domain, exp past 709 at a trial point)."""
        return np.multiply(self.weights, A, out=np.zeros_like(A), where=self.weights > 0)

    def _weighted_sum(self, A: np.ndarray) -> float:
        return float(np.sum(self._weigh(A)))

    def loss(self, Z: np.ndarray) -> float:
        return self._weighted_sum(self._per_task(Z, lambda loss, y, z: loss.terms(y, z)[0]))

    def penalty_value(self, W: np.ndarray) -> float:
        """w g(W) for W (d x T) or a block of its rows."""
        if self.code == int(_core.PenaltyKind.l21):
            return self.w * float(np.sqrt(np.einsum("jt,jt->j", W, W)).sum())
        return self.w * float(np.abs(W).sum())

    def penalty_change(self, W: np.ndarray, D: np.ndarray) -> float:
        """w (g(W + D) - g(W)), formed per entry (l1) or row (l21) as ``(2 a.b + |b|^2) / (|a + b| + |a|)``
        rather than as a difference of two sums (which loses the change in the sums' rounding)."""
        if self.code == int(_core.PenaltyKind.l21):
            a = np.sqrt(np.einsum("jt,jt->j", W, W))
            new = np.sqrt(np.einsum("jt,jt->j", W + D, W + D))
            top = 2.0 * np.einsum("jt,jt->j", W, D) + np.einsum("jt,jt->j", D, D)
        else:
            a, new = np.abs(W), np.abs(W + D)
            top = D * (2.0 * W + D)
        denominator = new + a
        change = np.where(denominator > 0, top / np.where(denominator > 0, denominator, 1.0), 0.0)
        return self.w * float(change.sum())

    def row_dual_norms(self, G: np.ndarray) -> np.ndarray:
        """Per feature, the dual norm of its row of G under w g (l21: its l2 norm / w, l1: max |.| / w)."""
        norms = np.sqrt(np.einsum("jt,jt->j", G, G)) if self.code == int(_core.PenaltyKind.l21) else \
            np.abs(G).max(axis=1)
        return norms / self.w if self.w > 0 else np.where(norms > 0, np.inf, 0.0)

    def _derivatives(self, Z: np.ndarray):
        """(R, H): the losses' first and (floored) second derivatives in z, weighted (like Z)."""
        R, H = np.empty_like(Z), np.empty_like(Z)
        for t, loss in enumerate(self.losses):
            at = self.rows.task_entries(t)
            _, R[at], curvature = loss.terms(self.Y[at], Z[at])
            H[at] = np.maximum(curvature, loss.newton_floor * loss.curvature) if loss.newton_floor else curvature
        return self._weigh(R), self._weigh(H)

    def _intercepts_to_optimum(self, Z: np.ndarray, b: np.ndarray) -> None:
        """Each intercept to its optimum with W fixed (in place): damped Newton steps on the task's
        one-dimensional convex loss, halved until the loss does not rise. Plain Newton steps from a
        warm start far off (margins saturated, curvature near 0) overshot without end."""
        if not self.fit_intercept:
            return
        scale = np.maximum(self.rows.task_sums(self.weights), np.finfo(float).tiny)
        values = self._task_losses(Z)
        unit = np.ones(self.T)  # the downhill step where the margins saturate, doubled while they stay so
        done = np.zeros(self.T, dtype=bool)
        noise = np.finfo(np.float64).eps * self._entries
        for _ in range(200):
            R, H = self._derivatives(Z)
            g, h = self.rows.task_sums(R), self.rows.task_sums(H)
            moving = (np.abs(g) > 1e-15 * scale) & ~done
            if not moving.any():
                return
            # Newton where the curvature is there; a growing step downhill where the margins saturate
            # (a warm start's intercept 1e6 off comes back in tens of steps, not a million).
            saturated = h <= 1e-12 * scale
            step = np.where(saturated, -np.sign(g) * unit, -g / np.maximum(h, 1e-300))
            unit = np.where(saturated, 2.0 * unit, 1.0)
            step[~moving] = 0.0
            # A Newton step whose decrease g^2 / 2h is below the rounding of the task's loss (a sum
            # of m terms: m eps relative) is the last, taken whole: the line search cannot see it.
            # (Tested against a rise of the loss, such steps were halved until rounding let them
            # through, 200 times over: 99% of a logistic fit's time at n = 5000.)
            last = moving & ~saturated & (g * g <= 2.0 * noise * np.abs(values) * h)
            searched = moving & ~last
            halvings = np.zeros(self.T)
            for _ in range(60):
                trial = self._task_losses(self.rows.with_intercepts(Z, step))
                worse = searched & (trial > values + 1e-15 * np.abs(values))
                if not worse.any():
                    break
                step[worse] *= 0.5
                halvings[worse] += 1
            else:  # no decrease the loss can show on a step halved 60 times: at its optimum to rounding
                step[worse] = 0.0
            # (a step let through only once halved 30 times is one of rounding too)
            done |= last | (halvings >= 30)
            if not np.any(step):
                return
            b += step
            Z[...] = self.rows.with_intercepts(Z, step)
            values = self._task_losses(Z)

    def _task_losses(self, Z: np.ndarray) -> np.ndarray:
        """Each task's weighted loss (T,)."""
        return self.rows.task_sums(self._weigh(self._per_task(Z, lambda loss, y, z: loss.terms(y, z)[0])))

    def dual(self, Z: np.ndarray, G: np.ndarray, alpha: float) -> float:
        """D at theta = -R / s (see the module docstring)."""
        return self._dual_of(self._per_task(Z, lambda loss, y, z: loss.terms(y, z)[1]), G, alpha)

    def _dual_of(self, derivatives: np.ndarray, G: np.ndarray, alpha: float) -> float:
        """D at the dual point ``u = derivatives / s`` (unweighted, like Z; R = weights * derivatives
        summing to 0 over each task's entries where there are intercepts), G = X' R its gradient,
        s = max(1, g*(G) / alpha); -inf where u leaves a conjugate's domain."""
        s = max(1.0, float(self.row_dual_norms(G).max(initial=0.0)) / alpha) if alpha > 0 else 1.0
        return -self._weighted_sum(self._per_task(derivatives / s, lambda loss, y, u: loss.conjugate(y, u)))

    def _extrapolated_dual(self, R: np.ndarray, alpha: float, past: list) -> float:
        """D at a dual point extrapolated from the last :data:`EXTRAPOLATION` + 1 iterates' R
        (weighted derivatives, intercepts at their optimum): celer's dual extrapolation (Massias,
        Vaiter, Gramfort, Salmon, JMLR 2020). Near the optimum R_k converges linearly, and the
        affine combination ``sum_k c_k R_k`` with c the minimizer of ``||sum_k c_k (R_k - R_{k-1})||``
        over ``sum c = 1`` lands far closer to its limit than R_k itself. The plain point's gap
        shrinks only like the square root of F's (s - 1 is first order in the distance to the
        optimum): squared hinge + l21 sat 7e-12 above its optimum with a relative gap of 2e-6
        after 10,000 epochs. Any point is a valid bound (rescaled by its own s, each task's sum
        put back to 0); -inf until there are enough iterates or where the system is singular."""
        past.append(R.copy())
        del past[: -(EXTRAPOLATION + 1)]
        if len(past) <= EXTRAPOLATION:
            return -np.inf
        U = np.stack([(past[k + 1] - past[k]).ravel() for k in range(EXTRAPOLATION)], axis=1)
        with np.errstate(all="ignore"):
            try:
                z = np.linalg.solve(U.T @ U, np.ones(EXTRAPOLATION))
            except np.linalg.LinAlgError:
                return -np.inf
            if not (np.all(np.isfinite(z)) and z.sum() != 0):
                return -np.inf
            c = z / z.sum()
        R_acc = sum(c[k] * past[k + 1] for k in range(EXTRAPOLATION))
        if self.fit_intercept:
            # The combination keeps each task's sum at 0 but for rounding, put back on the entries
            # off zero: a zero (the squared hinge past its margin) lies on its conjugate's boundary,
            # and any shift would leave the domain on one side.
            spread = np.where(R_acc != 0, self.weights, 0.0)
            totals = self.rows.task_sums(spread)
            shift = np.divide(self.rows.task_sums(R_acc), totals, out=np.zeros_like(totals), where=totals > 0)
            R_acc = R_acc - spread * self.rows.with_intercepts(np.zeros_like(R_acc), shift)
        derivatives = np.divide(R_acc, self.weights, out=np.zeros_like(R_acc), where=self.weights > 0)
        return self._dual_of(derivatives, self.rows.gradient(R_acc), alpha)

    # ------------------------------------------------------------------ the solve
    def _measure(self, W, b, Z, alpha: float) -> tuple:
        """The intercepts ``b`` (and margins ``Z``) moved to their optimum for W, in place, then
        ``(R, H, G, F, duality gap)`` there: how :meth:`solve` measures each iterate, and
        :meth:`certify` another engine's point."""
        self._intercepts_to_optimum(Z, b)
        R, H = self._derivatives(Z)
        G = self.rows.gradient(R)
        primal = self.loss(Z) + alpha * self.penalty_value(W)
        return R, H, G, primal, max(primal - self.dual(Z, G, alpha), 0.0)

    def certify(self, W_user, b_user, alpha: float):
        """``(F, duality gap, intercepts)`` at another engine's point ``(W_user, b_user)`` (user
        coordinates), its intercepts first moved to their optimum for that W (F only falls), as
        :meth:`solve` measures its own iterates: what the hand-over to FISTA is certified by."""
        W = np.array(W_user, dtype=np.float64)
        b = np.zeros(self.T)
        if self.fit_intercept:
            b = np.array(b_user, dtype=np.float64) + np.einsum("jt,jt->t", self.xbar, W)
        _, _, _, primal, gap = self._measure(W, b, self.rows.margins(W, b), alpha)
        return primal, gap, (b - np.einsum("jt,jt->t", self.xbar, W) if self.fit_intercept else b)

    def solve(self, alpha: float, W0=None, b0=None, *, tol=1e-6, max_outer=1000, max_epochs=10_000, callback=None):
        """(W (d x T), b (T), info) at the optimum for ``alpha`` (relative gap at most tol).

        ``info["stuck"]``: the line search found no descent along a Newton step, or the gap did
        not fall for :data:`NO_PROGRESS` steps (badly scaled features far from centered, margins
        saturated by a warm start): the caller hands over to another engine (see
        :func:`solve_prox_newton`). ``primal`` and ``gap`` are those of the returned point.
        """
        from .results import SolverState

        d, T = self.d, self.T
        W = np.zeros((d, T)) if W0 is None else np.array(W0, dtype=np.float64)
        b = np.zeros(T) if b0 is None else np.array(b0, dtype=np.float64)
        if not self.fit_intercept:
            b[:] = 0.0
        else:
            b += np.einsum("jt,jt->t", self.xbar, W)  # the intercepts of the centered features
        Z = self.rows.margins(W, b)
        history, epochs, gap, primal, converged, stopped, stuck = [], 0, np.inf, np.inf, False, False, False
        model_tol = MODEL_TOL
        outer = 0
        best_gap, best_at = np.inf, 0
        past, best_dual = [], -np.inf  # (the dual problem does not change: its best point so far holds)
        while True:
            outer += 1
            R, H, G, primal, gap = self._measure(W, b, Z, alpha)
            best_dual = max(best_dual, primal - gap, self._extrapolated_dual(R, alpha, past))
            gap = max(primal - best_dual, 0.0)
            history.append(primal)
            if callback is not None:
                try:
                    b_user = b - np.einsum("jt,jt->t", self.xbar, W) if self.fit_intercept else b.copy()
                    callback(SolverState(outer, W.copy(), b_user, primal, np.nan, gap / max(primal, 1e-300), np.nan))
                except StopIteration:
                    stopped = True
                    break
            if gap <= tol * primal or epochs >= max_epochs or outer > max_outer or stuck:
                converged = gap <= tol * primal
                break
            if gap < 0.5 * best_gap:
                best_gap, best_at = gap, outer
            elif outer - best_at >= NO_PROGRESS:
                stuck = True
                break
            ws, active = self._working_set(W, G, alpha)
            n_epochs, moved = self._newton_step(alpha, ws, W, b, Z, G, R, H, model_tol,
                                                min(MODEL_EPOCHS, max_epochs - epochs), active)
            epochs += n_epochs
            stuck = not moved  # (the loop evaluates the point once more, then stops)
            model_tol = max(min(model_tol, 1e-3 * gap / max(primal, 1e-300)), 1e-14)
        info = dict(converged=converged, stopped=stopped, stuck=stuck and not converged, gap=gap, primal=primal,
                    outer=outer, epochs=epochs, history=np.asarray(history))
        if self.fit_intercept:
            b -= np.einsum("jt,jt->t", self.xbar, W)  # back to the user's features
        return W, b, info

    def _working_set(self, W, G, alpha) -> tuple:
        """(rows, active): the rows of the next Newton step's model, and for l1 the entries of each
        task among them (None: every entry of the rows).

        l21: the support, then the rows of G that violate optimality most, twice the support in
        all. l1 couples no tasks, so each task gets its own working set by the same rule
        (:mod:`mtlx._per_task_sets`), and the model's epochs visit only those entries.
        """
        d = self.d
        if self.code == int(_core.PenaltyKind.l21):
            support = np.flatnonzero(np.any(W != 0, axis=1))
            score = self.row_dual_norms(G) / alpha
            score[support] = np.inf
            size = min(d, max(FIRST_WORKING_SET, 2 * support.size))
            return (np.sort(np.argpartition(-score, size - 1)[:size]) if size < d else np.arange(d)), None
        return per_task_working_sets(W, G, np.arange(d), 2.0, FIRST_WORKING_SET)

    def _newton_step(self, alpha, ws, W, b, Z, G, R, H, model_tol, max_epochs, active=None) -> tuple:
        """Minimize the model on ``ws`` (on its ``active`` entries, k x T, when given), then
        line-search along the step; W, b, Z updated in place. Returns (epochs, whether the point moved)."""
        T = self.T
        Xs = np.ascontiguousarray(self.X[:, ws].T)  # k x n: each column contiguous
        H_kernel, offsets = self.rows.kernel_H(H)
        curv = self.rows.curvatures(Xs, H)  # k x T
        Gs = np.ascontiguousarray(G[ws])
        W_old = W[ws].copy()
        W_new = W_old.copy()
        Q = np.zeros_like(H_kernel)
        db = np.zeros(T)
        g_b = h_b = None
        if self.fit_intercept:
            g_b = np.ascontiguousarray(self.rows.task_sums(R))
            h_b = np.ascontiguousarray(self.rows.task_sums(H))
        n_epochs, _, _ = _core.cd_epochs_newton(Xs, Gs, H_kernel, curv, g_b, h_b, alpha * self.w, 0.0, self.code,
                                                W_new, Q, db, max(int(max_epochs), 1), model_tol, offsets, active)
        delta = W_new - W_old
        # The margins' move from the step as W will hold it (W_old + s delta, delta rounded to W's
        # scale), not the kernel's running Q: with Q, the line search's loss term and penalty term
        # described two different steps, 1e-7 apart relative near the optimum, and it stalled there.
        Q = self.rows.moves(Xs, delta, db)
        # Backtracking on the directional derivative (skglm's rule): the step is taken when
        # g(W + s D) - g(W) + s <grad f(W + s D), D> < 0. Both terms are formed without
        # differences of large numbers (the penalty's change entry by entry or row by row, the
        # loss's derivative from the residuals at the trial point), so the test stays meaningful
        # where F itself no longer changes in its last digit: near the optimum the steps keep
        # converging (quadratically) instead of stalling at the precision of F.
        step = 1.0
        for _ in range(MAX_HALVINGS):
            Z_try = Z + step * Q
            R_try, _ = self._derivatives(Z_try)
            slope = float(np.vdot(R_try, Q))
            if alpha * self.penalty_change(W_old, step * delta) + step * slope < 0.0:
                break
            step *= 0.5
        else:
            return int(n_epochs), False  # no descent along the step: keep the point
        W_try = W_old + step * delta
        W[ws] = W_try
        b += step * db
        Z[...] = Z_try
        return int(n_epochs), True


def solve_prox_newton(data, penalty, alpha: float, fit_intercept: bool, task_weights, tol: float, max_iter: int,
                      W0=None, b0=None, callback=None, start=None, loss="logistic"):
    """:func:`mtlx.solve` by this engine (``solver="cd"`` for the losses :func:`takes_losses`
    accepts): a SolveResult."""
    import time
    import warnings

    from .objective import SmoothLoss, as_parameters
    from .results import convergence_warning, gap_result

    start = time.perf_counter() if start is None else start
    # The targets checked for their losses (labels in {-1, +1}, counts >= 0) and the intercepts
    # bounded (two classes per logistic task), as every engine does, with the same messages.
    smooth = SmoothLoss(data, loss, task_weights)
    if fit_intercept:
        smooth.check_intercepts_bounded()
    solver = ProxNewtonSolver(data, penalty, fit_intercept, task_weights, loss)
    W_start = b_start = None
    if W0 is not None or b0 is not None:
        rows, b_start = as_parameters(data, np.zeros((data.n_features, data.n_tasks)) if W0 is None else W0, b0,
                                      "W0", "b0")
        W_start = rows.T.astype(np.float64)
    # The engine's products with X (margins, gradients) are numpy's, on one BLAS thread: with two,
    # OpenBLAS's matrix-vector kernels sum a long inner dimension in per-thread parts, and the
    # result moved with the thread count (by 4e-16 on 600 x 300 Huber); the core's epochs keep
    # their own threads.
    with blas_threads(1):
        W, b, info = solver.solve(alpha, W_start, b_start, tol=tol, max_epochs=max_iter, callback=callback)
    if info["stuck"]:
        # Newton's steps stopped helping (features of wildly different scales far from centered
        # without intercepts, or margins saturated by a warm start): FISTA goes on from the point
        # reached, so that the engine never ends worse than FISTA would.
        # FISTA's own stopping test (a relative step) is no certificate: on correlated features it
        # stopped 7e-4 above the optimum (squared hinge, L1). Its point is held to this engine's
        # duality gap, FISTA going on at a hundredth of its tolerance until the gap is within
        # tol * F or max_iter is spent.
        from .solver import solve

        n_iter, fista_tol, budget = int(info["epochs"]), tol, max_iter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", convergence_warning())
            while True:
                rest = solve(data, loss, penalty, alpha, 0.0, fit_intercept, task_weights, fista_tol, budget, W0=W,
                             b0=b if fit_intercept else None, callback=callback, solver="fista")
                n_iter += rest.n_iter
                budget -= rest.n_iter
                with blas_threads(1):
                    primal, gap, b_opt = solver.certify(rest.W, rest.b, alpha)
                certified = gap <= tol * primal
                if certified or rest.message == "stopped by callback" or budget <= 0 or fista_tol <= 1e-15:
                    break
                W, b, fista_tol = np.asarray(rest.W, dtype=np.float64), rest.b, fista_tol / 100
        rest.solver, rest.n_iter = "cd+fista", n_iter
        if fit_intercept and primal <= rest.objective:
            rest.b = np.asarray(b_opt, dtype=np.asarray(rest.b).dtype)
            rest.objective = primal
        rest.converged = bool(certified)
        rest.optimality = gap / max(primal, 1e-300)
        if certified:
            rest.message = f"duality gap {gap:.3g} <= tol * F (proximal Newton, then FISTA)"
        elif rest.message != "stopped by callback":
            rest.message = f"did not converge: gap {gap:.3g} > tol * F after proximal Newton and FISTA"
            warnings.warn(f"mtlx.solve (proximal Newton, then FISTA) {rest.message}; raise max_iter or tol",
                          convergence_warning(), stacklevel=4)
        rest.time = time.perf_counter() - start
        return rest
    if info["converged"]:
        message = f"duality gap {info['gap']:.3g} <= tol * F"
    elif info["stopped"]:
        message = "stopped by callback"
    else:
        message = f"did not converge: gap {info['gap']:.3g} > tol * F after {info['epochs']} epochs"
        warnings.warn(f"mtlx.solve (proximal Newton) {message}; raise max_iter or tol", convergence_warning(),
                      stacklevel=4)
    return gap_result(data, W, b, info, message, time.perf_counter() - start, "cd")
