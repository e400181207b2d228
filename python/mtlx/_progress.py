"""The iteration progress bar that ``verbose=1`` shows (tqdm), chained with a user callback."""

from __future__ import annotations

from tqdm.auto import tqdm

__all__ = ["IterationProgress", "is_root"]


def is_root(comm) -> bool:
    """True on the process that may print: always without MPI, rank 0 under MPI."""
    return comm is None or comm.Get_rank() == 0


class IterationProgress:
    """A solver callback that advances a tqdm bar and shows F and the optimality measure.

    Parameters
    ----------
    total : int
        The iteration cap (``max_iter``); the bar closes early when the solver converges.
    enabled : bool
        False makes this a pass-through to ``callback`` that prints nothing.
    callback : callable, optional
        The user's callback, called after the bar update; its ``StopIteration`` propagates.
    desc : str
    """

    def __init__(self, total: int, enabled: bool, callback=None, desc: str = "mtlx"):
        self.callback = callback
        self.bar = tqdm(total=total, desc=desc, unit="it", disable=not enabled, dynamic_ncols=True)

    def __call__(self, state) -> None:
        if not self.bar.disable:
            self.bar.update(1)
            # set_postfix formats floats on every call; tqdm redraws only every mininterval.
            self.bar.set_postfix_str(f"F={state.objective:.6g} opt={state.optimality:.1e}", refresh=False)
        if self.callback is not None:
            self.callback(state)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
