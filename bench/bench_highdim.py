"""The high-dimensional regime (d >> n): mtlx's default estimator against scikit-learn, celer and skglm.

What it measures
----------------
Issue 15: shared-input least squares with far more features than rows, 10% of the rows of the
true W active (so the support outgrows n), noise at a third of the signal's scale (SNR 3), and
the objective of scikit-learn's estimators::

    F(W) = (1/2n) ||Y - X W||_F^2 + alpha g(W),    g = l21 (MultiTaskLasso) or l1 (independent lassos)

Cases: ``iid n x d x T`` (Gaussian X) and ``toeplitz`` (rows with correlation rho^|i - j| between
features i and j, rho = 0.9), at alpha = alpha_max / 10 and / 100. Every solver is timed to the
same accuracy ``(F - F*) / F* <= --target`` (1e-8) by the tol ladder of bench_sklearn.py
(:func:`bench_sklearn.time_to_target`), F recomputed in numpy from the returned W; the time to
1e-6 is read off the same ladder (the first rung that reached it). F*: the lowest F of tight
solves by mtlx (``--ref-tol``) and the fastest peer, its duality gap computed in numpy
(``ref_gap``: a bound of how far F* is from the optimum).

Solvers, every one from the raw arrays, one thread (``--threads``):

* ``mtlx``: ``mtlx.MultiTaskRegressor(penalty=..., fit_intercept=False, tol=tol)``, its default
  engine (working sets; in this regime coordinate descent on the residuals, see
  :mod:`mtlx._residual_cd`);
* ``sklearn``: ``MultiTaskLasso`` (l21) or ``Lasso`` on the T columns of Y (l1);
* ``celer``: ``celer.homotopy.mtl_path`` (l21) or ``celer_path(..., "lasso")`` per task (l1);
* ``skglm``: ``skglm.MultiTaskLasso`` (l21) or ``skglm.Lasso`` per task (l1).

**Logistic cases** (labels sign(X W + noise), noise of the signal's scale): F = sum_t (1/n)
sum_i log(1 + exp(-y_it x_i . w_t)) + alpha g(W), mtlx's default ``MultiTaskClassifier`` (proximal
Newton with working sets, :mod:`mtlx.prox_newton`) against, for l1, the per-task peers
(scikit-learn's ``LogisticRegression(penalty="l1", solver="liblinear", C = 1 / (n alpha))``,
``celer.LogisticRegression``, ``skglm.SparseLogisticRegression``). No peer fits the multi-task
logistic l21 problem: there mtlx's FISTA (``fista``) stands in, to show what the engine gains.

**Whole paths** (``--path``): ``--path-alphas`` (100) log-spaced alphas from alpha_max down to
alpha_max / 1000, each solver warm-starting every alpha from the previous one through its own
path function (``mtlx.path``; scikit-learn's ``lasso_path``, multi-task for l21, per task for l1;
``celer.homotopy.mtl_path`` / ``celer_path``; skglm's ``MultiTaskLasso.path`` / ``Lasso.path``),
timed by the same tol ladder to the point where *every* alpha's solution is within ``--target`` of
its own F* (the lowest F of tight solves), the path's worst alpha deciding. Shape: ``--path-shape``
(default 150 x 4,000 x 15, 10% of its rows active: a path on the bars-sized 300 x 8,000 x 30
shape takes mtlx 5 minutes and celer more at each rung of the ladder).

Cases measured while the load exceeded ``--threads + --max-excess-load`` are rerun (see
bench_sklearn.py). JSON to ``bench/results/bench_highdim.json``.

How to run
----------
::

    python bench/bench_highdim.py            # the issue's shape and the bars-sized one, l21, alpha_max / 10
    python bench/bench_highdim.py --full     # + n = 200, d = 50,000; Toeplitz; alpha_max / 100; l1
    python bench/bench_highdim.py --only-full   # only what --full adds
    python bench/bench_highdim.py --loss logistic   # the logistic cases only
    python bench/bench_highdim.py --only-full --penalty l1 --ratio 0.1   # one alpha / alpha_max
    python bench/bench_highdim.py --path            # whole l21 paths instead (--penalty l1: lassos)
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import sklearn
from bench_grad import blas_limit, machine_info
from bench_sklearn import DUAL_NORM, PENALTY, add_timing_args, measured, time_guard, time_to_target
from sklearn.linear_model import Lasso, MultiTaskLasso

import mtlx

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_highdim.json"
#: (design, n, d, T, alpha / alpha_max, penalty, loss): the default run, then what --full adds.
CASES = [("iid", 500, 20_000, 50, 0.1, "l21", "squared"), ("iid", 300, 8_000, 30, 0.1, "l21", "squared"),
         ("iid", 500, 20_000, 10, 0.1, "l1", "logistic"), ("iid", 500, 20_000, 10, 0.1, "l21", "logistic")]
FULL = [("iid", 500, 20_000, 50, 0.01, "l21", "squared"), ("iid", 200, 50_000, 20, 0.1, "l21", "squared"),
        ("toeplitz", 500, 20_000, 50, 0.1, "l21", "squared"), ("iid", 500, 20_000, 50, 0.1, "l1", "squared"),
        ("iid", 500, 20_000, 50, 0.01, "l1", "squared"), ("iid", 500, 20_000, 50, 0.1, "l1", "logistic"),
        ("iid", 500, 20_000, 50, 0.01, "l1", "logistic"), ("toeplitz", 500, 20_000, 10, 0.1, "l21", "logistic")]


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_args(p)
    p.add_argument("--full", action="store_true", help="every case of issue 15 (an hour or more)")
    p.add_argument("--only-full", action="store_true", help="only the cases --full adds")
    p.add_argument("--shape", default=None, help="only the cases of this n,d,T (and --design)")
    p.add_argument("--design", choices=("iid", "toeplitz"), default=None, help="only the cases of this design")
    p.add_argument("--loss", choices=("squared", "logistic"), default=None, help="only the cases of this loss")
    p.add_argument("--penalty", choices=("l1", "l21"), default=None, help="only the cases of this penalty")
    p.add_argument("--ratio", type=float, default=None, help="only the cases of this alpha / alpha_max (0.1, 0.01)")
    p.add_argument("--solvers", default=None,
                   help="only these solvers, comma-separated (a peer's uncapped runs can take many minutes at a rung)")
    p.add_argument("--path", action="store_true", help="whole paths (see above) instead of the cases")
    p.add_argument("--path-shape", default="150,4000,15", help="n,d,T of the path problem")
    p.add_argument("--path-alphas", type=int, default=100)
    p.add_argument("--path-eps", type=float, default=1e-3, help="the last alpha over alpha_max")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help=f"JSON (default {DEFAULT_OUT}, or bench_highdim_path.json)")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = DEFAULT_OUT.with_name("bench_highdim_path.json") if args.path else DEFAULT_OUT
    return args


def make_problem(design, n, d, T, seed, loss="squared"):
    """X (Gaussian, or AR(1) across features for "toeplitz"), W with 10% active rows, SNR 3 (labels
    sign(signal + noise of the signal's scale) for the logistic loss)."""
    rng = np.random.default_rng((seed, n, d, T))
    X = rng.standard_normal((n, d))
    if design == "toeplitz":  # x_j = rho x_{j-1} + sqrt(1 - rho^2) z_j: corr(x_i, x_j) = rho^|i - j|
        rho = 0.9
        for j in range(1, d):
            X[:, j] = rho * X[:, j - 1] + np.sqrt(1 - rho**2) * X[:, j]
    W = np.zeros((d, T))
    active = rng.choice(d, size=max(1, d // 10), replace=False)
    W[active] = rng.standard_normal((len(active), T))
    signal = X @ W
    if loss == "logistic":
        return X, np.where(signal + signal.std() * rng.standard_normal((n, T)) > 0, 1.0, -1.0)
    return X, signal + signal.std() / 3 * rng.standard_normal((n, T))


def objective(X, Y, W, alpha, penalty, loss="squared") -> float:
    """(1/2n) ||Y - XW||^2 + alpha g(W), or sum_t (1/n) sum_i log(1 + exp(-y z)) + alpha g(W), in numpy."""
    if loss == "logistic":
        return float(np.sum(np.logaddexp(0.0, -Y * (X @ W)))) / len(X) + alpha * PENALTY[penalty](W)
    return 0.5 * float(np.sum((Y - X @ W) ** 2)) / len(X) + alpha * PENALTY[penalty](W)


def alpha_max(X, Y, penalty, loss="squared") -> float:
    """The smallest alpha with W = 0 optimal (no intercepts): the dual norm of the gradient at 0."""
    G = X.T @ (-0.5 * Y if loss == "logistic" else Y)  # the logistic loss's derivative at 0 is -y / 2
    return DUAL_NORM[penalty](G) / len(X)


def duality_gap(X, Y, W, alpha, penalty, loss="squared") -> float:
    """F(W) - D(theta) at the rescaled residual (see bench_sklearn.duality_gap); for the logistic
    loss, theta = -R / s with R the loss's derivative and D its conjugate (mtlx.prox_newton)."""
    n = len(X)
    if loss == "logistic":
        from scipy.special import expit, xlogy

        p = expit(-Y * (X @ W))
        s = max(1.0, DUAL_NORM[penalty](X.T @ (-Y * p)) / n / alpha)
        q = p / s
        return objective(X, Y, W, alpha, penalty, loss) + float(np.sum(xlogy(q, q) + xlogy(1 - q, 1 - q))) / n
    R = Y - X @ W
    scale = min(1.0, alpha / max(DUAL_NORM[penalty](X.T @ R) / n, 1e-300))
    U = scale * R
    return objective(X, Y, W, alpha, penalty) - (float(np.sum(U * Y)) - 0.5 * float(np.sum(U * U))) / n


def solvers(penalty, threads, max_time, loss="squared") -> tuple[dict, dict]:
    """({name: fit(X, Y, alpha, tol) -> W (d x T)}, {name: version or why skipped})."""
    if loss == "logistic":
        return logistic_solvers(penalty, threads, max_time)

    def mtlx_fit(X, Y, alpha, tol):
        return mtlx.MultiTaskRegressor(penalty=penalty, alpha=alpha, fit_intercept=False, tol=tol, max_iter=100_000,
                                       n_threads=threads, callback=time_guard(max_time)).fit(X, Y).coef_.T

    def sklearn_fit(X, Y, alpha, tol):
        if penalty == "l21":
            return MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=100_000).fit(X, Y).coef_.T
        return Lasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=100_000).fit(X, Y).coef_.T

    fits = {"mtlx": mtlx_fit, "sklearn": sklearn_fit}
    versions = {"mtlx": mtlx.__version__, "sklearn": sklearn.__version__}
    try:
        import celer
        from celer.homotopy import celer_path, mtl_path

        def celer_fit(X, Y, alpha, tol):
            if penalty == "l21":
                return mtl_path(X, Y, alphas=[alpha], tol=tol, max_iter=1000, max_epochs=100_000)[1][:, :, 0].T
            Xf = np.asfortranarray(X)
            return np.column_stack([celer_path(Xf, Y[:, t], "lasso", alphas=[alpha], tol=tol, max_iter=1000,
                                               max_epochs=100_000)[1][:, 0] for t in range(Y.shape[1])])

        fits["celer"] = celer_fit
        versions["celer"] = celer.__version__
    except Exception as exc:  # an import error, or one from its compiled extension
        versions["celer"] = f"skipped: {exc!r}"
    try:
        import numba
        import skglm

        def skglm_fit(X, Y, alpha, tol):
            if penalty == "l21":
                return skglm.MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=1000).fit(X, Y).coef_.T
            return np.column_stack([skglm.Lasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=1000)
                                    .fit(X, Y[:, t]).coef_ for t in range(Y.shape[1])])

        fits["skglm"] = skglm_fit
        versions["skglm"] = skglm.__version__
        versions["numba"] = numba.__version__
    except Exception as exc:
        versions["skglm"] = f"skipped: {exc!r}"
    return fits, versions


def logistic_solvers(penalty, threads, max_time) -> tuple[dict, dict]:
    """The logistic cases' solvers (see the module docstring), as :func:`solvers`."""
    from sklearn.linear_model import LogisticRegression

    def mtlx_fit(X, Y, alpha, tol):
        return mtlx.MultiTaskClassifier(penalty=penalty, alpha=alpha, fit_intercept=False, tol=tol, max_iter=100_000,
                                        n_threads=threads, callback=time_guard(max_time)).fit(X, Y).coef_.T

    fits = {"mtlx": mtlx_fit}
    versions = {"mtlx": mtlx.__version__, "sklearn": sklearn.__version__}
    if penalty == "l21":
        def fista_fit(X, Y, alpha, tol):
            return mtlx.MultiTaskClassifier(penalty=penalty, alpha=alpha, fit_intercept=False, tol=tol, solver="fista",
                                            max_iter=100_000, n_threads=threads,
                                            callback=time_guard(max_time)).fit(X, Y).coef_.T

        fits["fista"] = fista_fit
        return fits, versions

    def per_task(make):
        return lambda X, Y, alpha, tol: np.column_stack([make(alpha, tol, len(X)).fit(X, Y[:, t]).coef_.ravel()
                                                         for t in range(Y.shape[1])])

    fits["sklearn"] = per_task(lambda alpha, tol, n: LogisticRegression(
        penalty="l1", C=1.0 / (n * alpha), solver="liblinear", fit_intercept=False, tol=tol, max_iter=100_000))
    try:
        import celer

        fits["celer"] = per_task(lambda alpha, tol, n: celer.LogisticRegression(
            C=1.0 / (n * alpha), fit_intercept=False, tol=tol, max_iter=1000, max_epochs=100_000))
        versions["celer"] = celer.__version__
    except Exception as exc:
        versions["celer"] = f"skipped: {exc!r}"
    try:
        import skglm

        fits["skglm"] = per_task(lambda alpha, tol, n: skglm.SparseLogisticRegression(
            alpha=alpha, fit_intercept=False, tol=tol, max_iter=1000))
        versions["skglm"] = skglm.__version__
    except Exception as exc:
        versions["skglm"] = f"skipped: {exc!r}"
    return fits, versions


def warm_up(fits, loss="squared") -> None:
    """One fit of each solver on a small problem: imports, numba's compilation, first-call costs."""
    X, Y = make_problem("iid", 40, 200, 3, 1, loss)
    for fit in fits.values():
        fit(X, Y, 0.1 * alpha_max(X, Y, "l21", loss), 1e-4)


def first_reaching(summary, level):
    """The time of the first rung of the ladder (loosest tol first) that reached ``level``, or NaN."""
    rungs = sorted(summary["tried"], key=lambda r: -r["tol"])
    return next((r["time"] for r in rungs if r["subopt"] <= level), float("nan"))


def run_case(case, fits, args) -> dict:
    design, n, d, T, ratio, penalty, loss = case
    X, Y = make_problem(design, n, d, T, args.seed, loss)
    alpha = ratio * alpha_max(X, Y, penalty, loss)
    # (its own cap: a tight reference may need longer than the rungs' --max-time, which stopped it before)
    reference = solvers(penalty, args.threads, 10 * args.max_time, loss)[0]["mtlx"]
    refs = {"mtlx": reference(X, Y, alpha, args.ref_tol)}
    F_refs = {k: objective(X, Y, W, alpha, penalty, loss) for k, W in refs.items()}
    best = min(F_refs, key=F_refs.get)
    F_star = F_refs[best]
    row = dict(design=design, n=n, d=d, T=T, alpha_ratio=ratio, penalty=penalty, loss=loss, alpha=alpha,
               F_star=F_star, ref_gap=duality_gap(X, Y, refs[best], alpha, penalty, loss) / F_star, solvers={})
    for name, fit in fits.items():
        summary, W = time_to_target(lambda tol, fit=fit: fit(X, Y, alpha, tol),
                                    lambda W: (objective(X, Y, W, alpha, penalty, loss) - F_star) / F_star,
                                    args.target, args.max_time, args.repeats, args.repeat_below)
        summary["time_1e-6"] = first_reaching(summary, 1e-6)
        if W is not None:
            summary["active_rows"] = int(np.count_nonzero(np.linalg.norm(W, axis=1)))
        row["solvers"][name] = summary
    peers = [s["time"] for k, s in row["solvers"].items() if k not in ("mtlx", "fista") and s["reached"]]
    fastest = min(peers) if peers else float("nan")
    row["fastest_peer_time"] = fastest
    row["speedup_vs_fastest_peer"] = fastest / row["solvers"]["mtlx"]["time"]
    return row


def load_text(load) -> str:
    """The 1-minute load before and after a case, flagged when it was high."""
    return f"load {load['before'][0]:.2f}->{load['after'][0]:.2f}{' (HIGH)' if load['high'] else ''}"


def print_solvers(solvers, subopt_label, extra=lambda s: "") -> None:
    """One line per solver: its times to 1e-6 and to the target, its tol and suboptimality."""
    width = len(subopt_label)
    print(f"  {'solver':8s} {'to 1e-6 s':>9s} {'to target s':>11s} {'tol':>8s} {subopt_label}{extra(None)}")
    for name, s in solvers.items():
        tol = f"{s['tol']:.1e}" if s["reached"] else "-"
        print(f"  {name:8s} {s['time_1e-6']:9.2f} {s['time']:11.2f} {tol:>8s} {s['subopt']:{width}.1e}{extra(s)}"
              + ("" if s["reached"] else "  (target not reached)"), flush=True)


def print_case(r) -> None:
    print(f"\n{r['design']} n={r['n']} d={r['d']} T={r['T']} {r['loss']} {r['penalty']} alpha = {r['alpha_ratio']:g} "
          f"alpha_max  F*={r['F_star']:.12g}  ref gap/F*={r['ref_gap']:.1e}  {load_text(r['load'])}")
    print_solvers(r["solvers"], "rel subopt",
                  lambda s: f" {'active':>7s}" if s is None else f" {s.get('active_rows', -1):7d}")
    if np.isfinite(r["speedup_vs_fastest_peer"]):
        print(f"  mtlx vs the fastest peer: {r['speedup_vs_fastest_peer']:.2f}x")
    elif r["solvers"].get("fista", {}).get("reached"):  # (no peer solves the case: FISTA stands in)
        print(f"  no peer solves this case; mtlx vs its own FISTA: "
              f"{r['solvers']['fista']['time'] / r['solvers']['mtlx']['time']:.2f}x")


# ---------------------------------------------------------------------- whole paths
def path_solvers(penalty) -> tuple[dict, dict]:
    """({name: fit(X, Y, alphas, tol) -> coefs (n_alphas, d, T)}, {name: version or why skipped}):
    each solver's own warm-started path function."""
    from sklearn.linear_model import lasso_path

    def mtlx_fit(X, Y, alphas, tol):
        return mtlx.path(mtlx.TaskData.from_shared(X, Y), penalty, alphas=alphas, tol=tol).coefs

    def per_task(fit_task):  # l1: the T lassos one after another, each its own path
        return lambda X, Y, alphas, tol: np.stack([fit_task(X, Y[:, t], alphas, tol) for t in range(Y.shape[1])], -1)

    def sklearn_fit(X, Y, alphas, tol):  # lasso_path: the multi-task (l21) solver for a 2-D Y
        if penalty == "l21":
            return np.transpose(lasso_path(X, Y, alphas=alphas, tol=tol, max_iter=100_000)[1], (2, 1, 0))
        return per_task(lambda X, y, alphas, tol: lasso_path(X, y, alphas=alphas, tol=tol, max_iter=100_000)[1].T)(
            X, Y, alphas, tol)

    fits = {"mtlx": mtlx_fit, "sklearn": sklearn_fit}
    versions = {"mtlx": mtlx.__version__, "sklearn": sklearn.__version__}
    try:
        import celer
        from celer.homotopy import celer_path, mtl_path

        def celer_fit(X, Y, alphas, tol):
            if penalty == "l21":
                return np.transpose(mtl_path(X, Y, alphas=alphas, tol=tol, max_iter=1000, max_epochs=100_000)[1],
                                    (2, 1, 0))  # (T, d, n_alphas)
            Xf = np.asfortranarray(X)
            return per_task(lambda X, y, alphas, tol: celer_path(Xf, y, "lasso", alphas=alphas, tol=tol, max_iter=1000,
                                                                 max_epochs=100_000)[1].T)(X, Y, alphas, tol)

        fits["celer"] = celer_fit
        versions["celer"] = celer.__version__
    except Exception as exc:
        versions["celer"] = f"skipped: {exc!r}"
    try:
        import skglm

        def skglm_fit(X, Y, alphas, tol):
            if penalty == "l21":
                coefs = skglm.MultiTaskLasso(fit_intercept=False, tol=tol, max_iter=1000).path(X, Y, alphas)[1]
                return np.transpose(coefs, (2, 1, 0))  # (T, d, n_alphas), whatever its docstring says
            return per_task(lambda X, y, alphas, tol: skglm.Lasso(fit_intercept=False, tol=tol, max_iter=1000)
                            .path(X, y, alphas)[1].T)(X, Y, alphas, tol)

        fits["skglm"] = skglm_fit
        versions["skglm"] = skglm.__version__
    except Exception as exc:
        versions["skglm"] = f"skipped: {exc!r}"
    return fits, versions


def run_path(args, fits) -> dict:
    """Every solver's whole path timed to ``max_k (F_k - F*_k) / F*_k <= target`` (see the docstring)."""
    n, d, T = (int(v) for v in args.path_shape.split(","))
    penalty = args.penalty or "l21"
    X, Y = make_problem("iid", n, d, T, args.seed)
    alphas = alpha_max(X, Y, penalty) * np.geomspace(1.0, args.path_eps, args.path_alphas)

    def objectives(coefs):
        return np.array([objective(X, Y, W, a, penalty) for a, W in zip(alphas, coefs)])

    refs = {"mtlx": fits["mtlx"](X, Y, alphas, args.ref_tol)}
    F_star = np.min([objectives(c) for c in refs.values()], axis=0)
    gaps = [duality_gap(X, Y, W, a, penalty) / F for a, W, F in zip(alphas, refs["mtlx"], F_star)]
    row = dict(n=n, d=d, T=T, penalty=penalty, n_alphas=len(alphas), eps=args.path_eps,
               ref_gap_max=float(np.max(gaps)), active_rows_last=int(np.count_nonzero(np.linalg.norm(
                   refs["mtlx"][-1], axis=1))), solvers={})
    for name, fit in fits.items():
        summary, coefs = time_to_target(lambda tol, fit=fit: fit(X, Y, alphas, tol),
                                        lambda coefs: float(np.max((objectives(coefs) - F_star) / F_star)),
                                        args.target, args.max_time, args.repeats, args.repeat_below)
        summary["time_1e-6"] = first_reaching(summary, 1e-6)
        row["solvers"][name] = summary
    peers = [s["time"] for k, s in row["solvers"].items() if k != "mtlx" and s["reached"]]
    row["fastest_peer_time"] = min(peers) if peers else float("nan")
    row["speedup_vs_fastest_peer"] = row["fastest_peer_time"] / row["solvers"]["mtlx"]["time"]
    return row


def print_path(r) -> None:
    print(f"\npath n={r['n']} d={r['d']} T={r['T']} {r['penalty']}: {r['n_alphas']} alphas to {r['eps']:g} alpha_max "
          f"(last support {r['active_rows_last']} rows), ref gap/F* <= {r['ref_gap_max']:.1e}  {load_text(r['load'])}")
    print_solvers(r["solvers"], "worst subopt")
    print(f"  mtlx's path vs the fastest peer's: {r['speedup_vs_fastest_peer']:.2f}x")


def save(args, versions, **results) -> None:
    """The run's JSON: the machine, the versions, the settings and ``results``."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(machine=machine_info(), versions=versions, threads=args.threads,
                                        dtype="float64", target=args.target, ref_tol=args.ref_tol,
                                        max_time=args.max_time, **results), indent=2, default=float))
    print(f"wrote {args.out}")


def main_path(args) -> None:
    print(f"whole paths, d >> n, {args.threads} thread(s): time to max over alphas of (F - F*)/F* <= {args.target:g}")
    with blas_limit(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits, versions = path_solvers(args.penalty or "l21")
        warm_up({k: (lambda X, Y, a, tol, f=f: f(X, Y, a * np.array([1.0, 0.5]), tol)) for k, f in fits.items()})
        r = measured(lambda: run_path(args, fits), args.threads, args)
        print_path(r)
    save(args, versions, path=r)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.path:
        return main_path(args)
    chosen = FULL if args.only_full else CASES + (FULL if args.full else [])
    shape = None if args.shape is None else tuple(int(v) for v in args.shape.split(","))
    cases = [c for c in chosen if args.loss in (None, c[-1]) and shape in (None, c[1:4]) and args.design in (None, c[0])
             and args.penalty in (None, c[-2]) and args.ratio in (None, c[4])]
    rows, versions = [], {}
    print(f"d >> n, {args.threads} thread(s): time to (F - F*)/F* <= {args.target:g} (and 1e-6)")
    with blas_limit(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # runs at loose tols stop early by design; accuracy is checked
        for penalty, loss in dict.fromkeys(c[-2:] for c in cases):
            fits, versions[f"{loss} {penalty}"] = solvers(penalty, args.threads, args.max_time, loss)
            if args.solvers:
                fits = {k: f for k, f in fits.items() if k in args.solvers.split(",")}
            warm_up(fits, loss)
            for case in (c for c in cases if c[-2:] == (penalty, loss)):
                r = measured(lambda case=case, fits=fits: run_case(case, fits, args), args.threads, args)
                rows.append(r)
                print_case(r)
    save(args, versions, cases=rows)


if __name__ == "__main__":
    main()
