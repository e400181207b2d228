"""Checkpoint and resume of a shared-trunk fit, keyed by task id (any number of ranks resumes).

One file, ``DIR/checkpoint.npz``, written atomically by rank 0 (``mtlx._files.write_atomically``):
every vector of the optimizer's state (weights; L-BFGS's gradient and curvature pairs; Adam's
moments and best weights) is stored as its trunk block, whole, and one row per task in the
global task order (the task's layers and head, then its log-variance), so a run on another
number of ranks takes its own tasks' rows back. Scalars and curves are stored as they are. A
fingerprint (architecture, losses, settings, task ids, rows and a hash of each task's data) is
checked on resume: a checkpoint of another fit is refused, naming what differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._checkpoint import _task_hashes, read_everywhere
from .._files import write_atomically
from .adam import AdamState
from .lbfgs import LbfgsState

__all__ = ["TrunkCheckpoint"]

FILE_NAME = "checkpoint.npz"
_FORMAT = 1


class TrunkCheckpoint:
    """The checkpoint of one shared-trunk fit in a folder (collective under MPI: every rank builds it).

    Parameters
    ----------
    directory : path
    network : TrunkNetwork
        This rank's network (its tasks' heads).
    uncertainty : bool
        Whether theta ends with one log-variance per task.
    reduction : LocalReduction or MPIReduction
    data : TaskData
    settings : dict
        What else defines the fit (hidden, activation, l2, solver, ...), JSON-serializable, the same
        on every rank.
    losses : ndarray of shape (T_local, 2)
        Each local task's loss code (-1: softmax) and parameter.
    """

    def __init__(self, directory, network, uncertainty: bool, reduction, data, settings: dict, losses,
                 seed_drawn: bool = False):
        self.net, self.uncertainty, self.reduction = network, bool(uncertainty), reduction
        # A seed drawn for random_state=None is the checkpoint's on resume (each run draws anew:
        # its fits could never be resumed); ``seed`` is the one the fit goes on with.
        self.settings, self.seed_drawn = dict(settings), bool(seed_drawn)
        self.path = Path(directory) / FILE_NAME
        with reduction.agreed_errors():
            if reduction.rank == 0:
                Path(directory).mkdir(parents=True, exist_ok=True)
        sizes = np.diff(network.task_starts) + int(self.uncertainty)
        self.width = int(reduction.max(float(sizes.max(initial=0))))
        self.fingerprint = dict(
            settings=np.array(json.dumps(settings, sort_keys=True)), task_ids=np.asarray(reduction.global_ids),
            n_samples=reduction.allgather_tasks(data.n_samples.astype(np.int64)),
            data_hash=reduction.allgather_tasks(_task_hashes(data)),
            out_dims=reduction.allgather_tasks(network.out_dims.astype(np.int64)),
            losses=reduction.allgather_tasks(np.asarray(losses, dtype=np.float64)))

    @property
    def seed(self):
        """The seed the fit goes on with: its own, or on resume a drawn seed's checkpoint's."""
        return self.settings.get("seed")

    # ------------------------------------------------------------------ layout
    def _rows(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(trunk block, one padded row per local task) of a theta-layout vector."""
        return theta[: self.net.n_trunk], self.net.task_rows(theta, int(self.uncertainty), self.width)

    def _theta(self, trunk: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The theta-layout vector of a trunk block and this rank's rows."""
        return self.net.theta_from_rows(trunk, rows, int(self.uncertainty))

    # ------------------------------------------------------------------ save / load
    def save(self, state) -> None:
        """Write an :class:`LbfgsState` or :class:`AdamState` atomically (collective)."""
        if isinstance(state, LbfgsState):
            vectors = {"x": state.x, "g": state.g}
            for i, (s, y, _) in enumerate(state.pairs):
                vectors[f"s{i}"], vectors[f"y{i}"] = s, y
            scalars = dict(kind=np.array("lbfgs"), k=np.int64(state.k), F=np.float64(state.F),
                           rho=np.array([r for _, _, r in state.pairs], dtype=np.float64),
                           memory=np.int64(state.pairs.maxlen), curve=np.asarray(state.curve, dtype=np.float64))
        else:
            vectors = {"theta": state.theta, "m": state.m, "v": state.v, "best_theta": state.best_theta}
            curve = np.asarray(state.curve, dtype=np.float64).reshape(len(state.curve), -1)
            scalars = dict(kind=np.array("adam"), epoch=np.int64(state.epoch), step=np.int64(state.step),
                           best=np.float64(state.best), stale=np.int64(state.stale), curve=curve)
        # (every task's curve is global, the same on every rank: stored whole)
        scalars["task_curve"] = np.asarray(state.task_curve, dtype=np.float64).reshape(len(state.task_curve), -1)
        names = sorted(vectors)
        parts = [self._rows(vectors[n]) for n in names]
        local = np.concatenate([rows for _, rows in parts], axis=1) if parts else np.zeros((self.net.n_tasks, 0))
        gathered = self.reduction.gather_tasks(local)
        with self.reduction.agreed_errors():
            if gathered is None:
                return
            arrays = dict(format=np.int64(_FORMAT), names=np.array(names), **scalars,
                          **{f"fp_{k}": v for k, v in self.fingerprint.items()})
            for i, (n, (trunk, _)) in enumerate(zip(names, parts)):
                arrays[f"trunk_{n}"] = trunk
                arrays[f"rows_{n}"] = gathered[:, i * self.width: (i + 1) * self.width]
            write_atomically(self.path, arrays)

    def load(self, kind: str):
        """The saved state of this rank's tasks (an LbfgsState or AdamState), or None when there is
        no checkpoint yet (collective). ``ValueError`` on every rank when it belongs to another fit."""
        with self.reduction.agreed_errors():
            saved = read_everywhere(self.path, self.reduction)
            if saved is None:
                return None
            self._check(saved, kind)
            idx = np.asarray(self.reduction.local_index, dtype=np.int64)
            vec = {str(n): self._theta(saved[f"trunk_{n}"], saved[f"rows_{n}"][idx]) for n in saved["names"]}
            if kind == "lbfgs":
                n_pairs = len(saved["rho"])
                pairs = [(vec[f"s{i}"], vec[f"y{i}"], float(saved["rho"][i])) for i in range(n_pairs)]
                state = LbfgsState(vec["x"], float(saved["F"]), vec["g"], int(saved["memory"]), int(saved["k"]),
                                   pairs)
                state.curve = saved["curve"].tolist()
            else:
                curve = saved["curve"]
                curve_list = [tuple(r) if curve.shape[1] == 2 else float(r[0]) for r in curve]
                state = AdamState(vec["theta"], int(saved["epoch"]), int(saved["step"]), vec["m"], vec["v"],
                                  float(saved["best"]), vec["best_theta"], int(saved["stale"]), curve_list)
            state.task_curve = list(saved["task_curve"])
            return state

    def _check(self, saved: dict, kind: str) -> None:
        if "format" not in saved or int(saved["format"]) != _FORMAT:
            raise ValueError(f"{self.path} is not an mtlx shared-trunk checkpoint of format {_FORMAT}")
        if str(saved["kind"]) != kind:
            raise ValueError(f"checkpoint {self.path} is of a {saved['kind']} fit, this fit uses {kind}")
        if self.seed_drawn and saved.get("fp_settings") is not None:
            theirs = json.loads(str(saved["fp_settings"]))
            ours = json.loads(json.dumps(self.settings))  # (as saved: tuples as lists)
            if {k: v for k, v in theirs.items() if k != "seed"} == {k: v for k, v in ours.items() if k != "seed"}:
                self.settings["seed"] = theirs.get("seed")
                self.fingerprint["settings"] = np.array(json.dumps(self.settings, sort_keys=True))
        for key, here in self.fingerprint.items():
            there = saved.get(f"fp_{key}")
            if there is None or there.shape != np.shape(here) or not np.array_equal(there, here):
                what = {"settings": "settings (architecture, losses, l2, solver, weighting)", "task_ids": "task ids",
                        "n_samples": "rows per task", "data_hash": "data (hash of each task's rows)",
                        "out_dims": "head widths", "losses": "losses"}[key]
                raise ValueError(f"checkpoint {self.path} belongs to a different fit: its {what} differ; remove it "
                                 "or choose another checkpoint folder")
