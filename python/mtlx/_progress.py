"""The progress bar that ``verbose=1`` shows (tqdm), chained with a user callback.

Progress is measured in decades of the optimality measure, from its first value down to
``tol``: that is what a solve has left to do, so the bar's ETA follows the convergence rate
(the iteration cap says nothing about when a solve ends: as a total it made the first ETA
16 hours). Log records of the run are written above the bar rather than through it.
"""

from __future__ import annotations

import contextlib
import logging
import math

__all__ = ["IterationProgress", "is_root"]


def is_root(comm) -> bool:
    """True on the process that may print: always without MPI, rank 0 under MPI."""
    return comm is None or comm.Get_rank() == 0


class IterationProgress:
    """A solver callback that advances a tqdm bar by decades of the optimality measure.

    Parameters
    ----------
    tol : float
        The solver's tolerance: the bar is full when the optimality measure reaches it.
    enabled : bool
        False makes this a pass-through to ``callback`` that prints nothing.
    callback : callable, optional
        The user's callback, called after the bar update; its ``StopIteration`` propagates.
    desc : str
    """

    def __init__(self, tol: float, enabled: bool, callback=None, desc: str = "mtlx"):
        self.callback = callback
        self.tol = max(float(tol), 1e-300)
        self.enabled = enabled
        self.bar = None
        self.start = None
        self._stack = contextlib.ExitStack()
        self.desc = desc

    def _open(self, optimality: float) -> None:
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self.start = optimality
        total = max(round(math.log10(max(optimality, self.tol) / self.tol), 1), 0.1)
        self.bar = tqdm(total=total, desc=self.desc, unit="decade", dynamic_ncols=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} decades of optimality "
                                   "[{elapsed}<{remaining}{postfix}]")
        self._stack.enter_context(logging_redirect_tqdm([logging.getLogger(), logging.getLogger("mtlx")]))

    def __call__(self, state) -> None:
        if self.enabled:
            optimality = float(state.optimality) if math.isfinite(state.optimality) else float("inf")
            if self.bar is None and math.isfinite(optimality) and optimality > 0:
                self._open(optimality)
            if self.bar is not None:
                done = math.log10(self.start / max(optimality, self.tol)) if optimality > 0 else self.bar.total
                done = min(max(round(done, 1), self.bar.n), self.bar.total)
                if done > self.bar.n:
                    self.bar.update(done - self.bar.n)
                # set_postfix formats floats on every call; tqdm redraws only every mininterval.
                self.bar.set_postfix_str(f"it={state.n_iter} F={state.objective:.6g} opt={optimality:.1e}",
                                         refresh=False)
        if self.callback is not None:
            self.callback(state)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
