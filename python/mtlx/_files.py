"""Files written whole or not at all: a temporary file beside the target, flushed, then renamed.

A reader (another rank, a resumed run, ``mtlx predict``) never sees a half-written model,
dataset or checkpoint, even if the writer is killed mid-way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["write_atomically"]


def write_atomically(path, arrays: dict, single: bool = False) -> None:
    """Write ``arrays`` to ``path`` atomically: ``np.savez`` of all, or ``np.save`` of the one array.

    Parameters
    ----------
    path : str or os.PathLike
        The final name (used exactly as given: no suffix is appended).
    arrays : dict of name -> array
    single : bool
        Write the only array of ``arrays`` as a ``.npy`` file instead of an ``.npz`` archive.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        if single:
            (array,) = arrays.values()
            np.save(f, array)
        else:
            np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
