"""The single-process side of distributed solves: task assignment, split prox, checkpoints."""

import itertools

import numpy as np
import pytest

import mtlx

from conftest import chain_incidence


def _loads(parts, rows):
    return [int(rows[p].sum()) for p in parts]


@pytest.mark.parametrize("n_ranks", [1, 2, 3, 4])
def test_assign_tasks_balances_rows_near_the_optimum(n_ranks):
    rows = np.array([50, 7, 31, 31, 2, 90, 12, 44])
    parts = mtlx.distributed.assign_tasks(rows, n_ranks)
    assert len(parts) == n_ranks
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(rows)))
    assert all(np.all(np.diff(p) > 0) for p in parts)
    best = min(max(np.bincount(owner, weights=rows, minlength=n_ranks))
               for owner in itertools.product(range(n_ranks), repeat=len(rows)))
    assert max(_loads(parts, rows)) <= 4 / 3 * best


def test_assign_tasks_more_ranks_than_tasks():
    parts = mtlx.distributed.assign_tasks([5, 9], 4)
    assert [p.tolist() for p in parts] == [[1], [0], [], []]


def test_assign_tasks_rejects_bad_input():
    with pytest.raises(ValueError, match="non-negative integers"):
        mtlx.distributed.assign_tasks([1.5, 2.0], 2)
    with pytest.raises(ValueError, match="positive integer"):
        mtlx.distributed.assign_tasks([1, 2], 0)


def test_empty_taskdata_for_idle_ranks():
    data = mtlx.TaskData.from_tasks([], task_ids=[])
    assert data.n_tasks == 0 and data.n_samples.size == 0
    assert mtlx.TaskData.empty(4, np.float32).X.shape == (0, 4)
    with pytest.raises(ValueError, match="tasks is empty"):
        mtlx.TaskData.from_tasks([])


def _penalty(name, T):
    """The penalties whose prox needs every task under MPI."""
    from mtlx import penalties as P

    if name == "graph":
        return P.Graph(chain_incidence(T), 0.7)
    if name == "clustered":
        return P.Clustered(k=min(2, T), eta=0.3, w=0.8)
    return P.get_penalty(name)


@pytest.mark.parametrize("shape", [(28, 139), (10, 3), (5, 40)])
@pytest.mark.parametrize("name", ["l21", "trace", "mean", "linf1", "graph", "clustered"])
def test_prox_from_global_stats_matches_the_single_process_prox(rng, shape, name):
    # Three "ranks" each hold some columns: their statistics summed must give, on each rank's
    # columns, the prox and value a single process computes on the whole W.
    from mtlx.penalties import BlockContext

    d, T = shape
    W = rng.standard_normal(shape) * np.logspace(0, -2, T)
    pen = _penalty(name, T)
    whole = BlockContext.single(d, T)
    parts = np.array_split(np.arange(T), 3)
    ctxs = [BlockContext(d, T, cols, rank=r, distributed=True) for r, cols in enumerate(parts)]
    stats = np.zeros(pen.n_stats(ctxs[0]))
    for ctx in ctxs:
        part = np.zeros_like(stats)
        pen.local_stats(np.ascontiguousarray(W[:, ctx.local_index].T), None, None, part, ctx)
        stats += part
    value = sum(pen.value_from_stats(np.ascontiguousarray(W[:, c.local_index].T), stats, c) for c in ctxs)
    assert value == pytest.approx(pen.value(np.ascontiguousarray(W.T), whole), rel=1e-12)
    s_max = np.linalg.svd(W, compute_uv=False)[0]
    for tau in (0.01 * s_max, 0.3 * s_max, 2 * s_max):
        ref = np.empty((T, d))
        ref_value = pen.prox(np.ascontiguousarray(W.T), tau, ref, whole)
        total = 0.0
        for ctx in ctxs:
            local = np.ascontiguousarray(W[:, ctx.local_index].T)
            out = np.empty_like(local)
            total += pen.prox_from_stats(local, stats, tau, out, ctx)
            np.testing.assert_allclose(out, ref[ctx.local_index], rtol=0, atol=1e-12 * s_max)
        assert total == pytest.approx(ref_value, rel=1e-10, abs=1e-12)


KW = dict(penalty="trace", alpha=0.05, l2=0.1, fit_intercept=True, tol=1e-12, max_iter=5000, solver="fista")


@pytest.fixture
def school_like(rng):
    tasks = [(rng.standard_normal((m, 6)), rng.standard_normal(m)) for m in (30, 45, 22, 60, 38)]
    return mtlx.TaskData.from_tasks(tasks)


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("shared", [False, True])
def test_checkpoint_rows_restore_the_iterate_exactly(school_like, shared):
    """A checkpoint stores the iterate as iterated, with its scales: restored bit for bit (dividing
    by a scale and multiplying back was not exact), and converted where the scales differ."""
    from mtlx import penalties as P
    from mtlx.objective import SmoothLoss
    from mtlx.problem import Problem

    penalty = P.Superpose(P.Shared(1.0), P.L1(0.5)) if shared else P.Trace(1.0)
    smooth = SmoothLoss(school_like, "squared", np.ones(school_like.n_tasks), n_threads=1)
    problem = Problem(smooth, penalty, 0.05, 0.1, True)
    assert np.any(problem.intercepts.scale != 1.0) and (not shared or problem.shared_blocks[0].scale != 1.0)
    theta = np.random.default_rng(3).standard_normal(problem.size) * 1e3
    rows, shared, scales = problem.task_rows(theta)
    assert np.array_equal(problem.theta_from_rows(rows, shared, scales), theta)
    bp = problem.intercepts_prime(theta)
    rows[:, -1] *= 2.0  # saved at twice the scale: the same b' is half the number
    rows[:, -2] = bp * rows[:, -1]
    np.testing.assert_allclose(problem.intercepts_prime(problem.theta_from_rows(rows, shared, scales)), bp,
                               rtol=1e-15)


def test_interrupted_run_resumes_to_the_same_bits(school_like, tmp_path):
    def interrupt(state):
        if state.n_iter == 13:
            raise _Interrupt

    def interrupted_then_resumed(data, folder, **kw):
        with pytest.raises(_Interrupt):
            mtlx.solve(data, callback=interrupt, checkpoint=folder, checkpoint_every=5, **kw)
        with np.load(folder / "checkpoint.npz") as z:
            assert int(z["n_iter"]) == 10
        return mtlx.solve(data, checkpoint=folder, checkpoint_every=5, resume=True, **kw)

    # Logistic tasks: every quantity the solver carries is in the checkpoint, so the resumed run
    # follows the uninterrupted one bit for bit.
    labels = mtlx.TaskData.from_tasks([(x, np.where(y > 0, 1.0, -1.0)) for x, y in
                                       (school_like.task(t) for t in range(school_like.n_tasks))])
    ref = mtlx.solve(labels, loss="logistic", **KW)
    res = interrupted_then_resumed(labels, tmp_path / "logistic", loss="logistic", **KW)
    assert np.array_equal(res.W, ref.W) and np.array_equal(res.b, ref.b)
    assert np.array_equal(res.history, ref.history) and res.n_iter == ref.n_iter
    # Without the ridge term a duality gap from the losses' conjugates decides convergence: where it
    # is asked for depends on the iteration count alone, so the resumed run stops where this one does.
    gap_kw = dict(KW, loss="logistic", l2=0.0, alpha=0.005, tol=1e-12)
    ref = mtlx.solve(labels, **gap_kw)
    res = interrupted_then_resumed(labels, tmp_path / "gap", **gap_kw)
    assert ref.converged and ref.n_iter > 40
    assert np.array_equal(res.W, ref.W) and res.n_iter == ref.n_iter
    # Least squares carries gradients from iteration to iteration (f is quadratic) and, in the
    # Gram form, reference residuals: a resumed run recomputes them, equal to rounding, so the
    # resumed W agrees to the 1e-10 rather than bitwise.
    for gram in (True, False):
        ref = mtlx.solve(school_like, gram=gram, **KW)
        res = interrupted_then_resumed(school_like, tmp_path / f"gram{gram}", gram=gram, **KW)
        scale = np.abs(ref.W).max()
        assert np.abs(res.W - ref.W).max() <= 1e-10 * scale and np.abs(res.b - ref.b).max() <= 1e-10 * scale


def test_resume_without_a_checkpoint_starts_from_scratch(school_like, tmp_path):
    ref = mtlx.solve(school_like, **KW)
    res = mtlx.solve(school_like, checkpoint=tmp_path / "new", resume=True, **KW)
    assert np.array_equal(res.W, ref.W)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint folder"):
        mtlx.solve(school_like, resume=True)


@pytest.mark.parametrize("change, message", [
    (dict(alpha=0.06), r"its alpha differs \(0.05 there, 0.06 here\)"),
    (dict(penalty="l21"), "its penalty differs"),
    (dict(fit_intercept=False), "its fit_intercept differs"),
    (dict(task_weights="sum"), "its task weights differ"),
    ("data", r"its data \(hash of each task's rows\) differ"),
])
def test_checkpoint_of_another_problem_is_refused(school_like, tmp_path, change, message):
    with pytest.warns(mtlx.ConvergenceWarning):
        mtlx.solve(school_like, checkpoint=tmp_path, checkpoint_every=2, **dict(KW, max_iter=4))
    data, kw = school_like, dict(KW)
    if change == "data":
        X, y = school_like.task(3)
        X = X.copy()
        X[0, 0] += 1e-9
        data = mtlx.TaskData.from_tasks([school_like.task(t) if t != 3 else (X, y) for t in range(5)])
    else:
        kw.update(change)
    with pytest.raises(ValueError, match="belongs to a different problem: " + message):
        mtlx.solve(data, checkpoint=tmp_path, resume=True, **kw)


def test_a_failing_rank_names_itself_and_its_error_before_aborting(monkeypatch, capsys):
    # The launcher forwards stderr asynchronously and MPI_Abort may cut it: the rank and the error
    # message come first, in one line, then the traceback, then a grace, then the abort.
    import mtlx.distributed as dist

    class FakeComm:
        aborted = None

        def Get_rank(self):
            return 2

        def Get_size(self):
            return 3

        def Abort(self, code):
            FakeComm.aborted = code

    slept, hooked = [], []
    monkeypatch.setattr(dist.time, "sleep", slept.append)
    try:
        raise ValueError("task 17: X contains NaN (row 4)")
    except ValueError as exc:
        dist._report_then_abort(FakeComm(), lambda *e: hooked.append(e[0]), type(exc), exc, exc.__traceback__)
    first = capsys.readouterr().err.splitlines()[0]
    assert first == ("mtlx: unhandled exception on rank 2 of 3, ending the job: "
                     "ValueError: task 17: X contains NaN (row 4)")
    assert hooked == [ValueError] and slept == [dist.ABORT_GRACE_S] and FakeComm.aborted == 1
