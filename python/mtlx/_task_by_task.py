"""Independent lassos on one shared X, solved one task at a time.

l1 couples no tasks: ``sum_t c_t f_t(w_t) + alpha sum_t ||w_t||_1`` is T separate problems, and
the sum of their duality gaps is the whole problem's gap (so ``gap_t <= tol F_t`` for every t
certifies ``gap <= tol F``). Where d > n, each task's support is a small part of the union of
supports (a thirtieth on bench_highdim's shape), so one working set of whole rows for all tasks,
even with per-task entries, carried the union's columns, Anderson products and gap terms: on
n = 500, d = 20,000, five tasks at alpha_max / 100, 13.6 s against 3.8 s task by task. Each task
here gets its own :class:`mtlx.working_set.WorkingSetSolver` on a view of X (never copied), its
own working sets, screening and extrapolation (skglm and celer fit independent lassos this way).
"""

from __future__ import annotations

import numpy as np

from .data import TaskData
from .results import SolverState


def applies(data: TaskData, penalty) -> bool:
    """Whether ``penalty`` decouples the tasks of ``data`` into lassos worth solving one by one:
    l1 alone on one dense, unweighted X shared by several tasks with more features than rows
    (where the residual epochs run; in the Gram form one shared Gram cache serves every task)."""
    from . import _core

    return (getattr(penalty, "cd_kind", None) == _core.PenaltyKind.l1 and data.layout == "shared"
            and not data.sparse and not data.weighted and data.n_tasks > 1 and data.n_features > data.X.shape[0])


class TaskByTaskSolver:
    """The working-set engine's interface (``solve``, ``intercepts_of``) over one solver per task.

    Parameters
    ----------
    data : TaskData
        Shared layout (see :func:`applies`).
    penalty : L1
    l2, fit_intercept, task_weights, n_threads :
        As for :class:`mtlx.working_set.WorkingSetSolver`; ``task_weights`` is resolved on the whole
        problem and handed to each task as its number.
    """

    def __init__(self, data: TaskData, penalty, *, l2=0.0, fit_intercept=False, task_weights="mean",
                 n_threads: int | None = None):
        from .working_set import WorkingSetSolver

        # One solver computes every task's statistics (means, norms, X' Y: a pass over X each),
        # then hands each task its share (WorkingSetSolver.task_view): no pass over X per task.
        union = WorkingSetSolver(data, penalty, l2=l2, fit_intercept=fit_intercept, task_weights=task_weights,
                                 n_threads=n_threads)
        self.n_tasks, self.n_features = data.n_tasks, data.n_features
        self.solvers = [union.task_view(t) for t in range(data.n_tasks)]

    def intercepts_of(self, support: np.ndarray, WS: np.ndarray) -> np.ndarray:
        """b_t = ybar_t - xbar . w_t for every task."""
        return np.concatenate([solver.intercepts_of(support, WS[:, t:t + 1])
                               for t, solver in enumerate(self.solvers)])

    def solve(self, alpha: float, W0=None, *, tol=1e-6, screening=True, working_set=True, max_outer=100,
              max_epochs=100_000, callback=None):
        """As :meth:`mtlx.working_set.WorkingSetSolver.solve`, task after task: ``max_outer`` and
        ``max_epochs`` cap each task's solve; ``callback`` sees the whole problem after every gap
        check of every task (the tasks not reached yet at their start, W0)."""
        d, T = self.n_features, self.n_tasks
        W = np.zeros((d, T)) if W0 is None else np.array(W0, dtype=np.float64, copy=True).reshape(d, T)
        infos, stopped = [], False
        # F of the tasks not solved yet, for the callback's running total: at W = 0, known from set-up.
        pending = [s.value_at_zero if not np.any(W[:, t]) else np.nan for t, s in enumerate(self.solvers)]
        done = 0.0
        for t, solver in enumerate(self.solvers):
            task_callback = None
            if callback is not None:
                def task_callback(state, t=t, done=done):
                    W[:, t] = state.W[:, 0]
                    total = done + state.objective + sum(pending[t + 1:])
                    support = np.flatnonzero(np.any(W != 0, axis=1))
                    callback(SolverState(state.n_iter, W, self.intercepts_of(support, W[support]), total, np.nan,
                                         state.optimality, np.nan))
            W_t, info = solver.solve(alpha, W[:, t:t + 1], tol=tol, screening=screening, working_set=working_set,
                                     max_outer=max_outer, max_epochs=max_epochs, callback=task_callback)
            W[:, t] = W_t[:, 0]
            solver.release_buffers()  # (a task's last working set and residuals are not needed by the next)
            infos.append(info)
            done += float(info["primal"])
            if info["stopped"]:
                stopped = True
                break
        # F at every gap check of the whole problem: each task's checks, the others at their end
        # (those before) or start (those after).
        firsts = [float(i["history"][0]) if len(i["history"]) else np.nan for i in infos]
        finals = [float(i["primal"]) for i in infos]
        history = [h + sum(finals[:t]) + sum(firsts[t + 1:]) for t, i in enumerate(infos) for h in i["history"]]
        primal = sum(finals) + sum(pending[len(infos):])
        gap = sum(float(i["gap"]) for i in infos) + (np.inf if len(infos) < T else 0.0)
        return W, dict(primal=primal, gap=gap, converged=len(infos) == T and all(i["converged"] for i in infos),
                       epochs=sum(int(i["epochs"]) for i in infos), history=np.asarray(history),
                       n_screened=min(int(i["n_screened"]) for i in infos), outer=len(history), stopped=stopped)
