"""Rebuild ``data/school.npz`` from the MATLAB files of the school benchmark.

Run once by maintainers (``python make_school.py SCHOOL_DIR``); never imported at run time.
SCHOOL_DIR holds ``school.mat`` and ``school_{1..10}_indexes.mat`` (as distributed with
MALSAR). Every value is a small integer, so the arrays are stored as uint8/uint16, exactly.
"""

import sys
from pathlib import Path

import numpy as np
from scipy.io import loadmat


def main(src: Path, dst: Path) -> None:
    mat = loadmat(src / "school.mat")
    Xs, ys = mat["X"][0], mat["Y"][0]
    X = np.vstack(Xs)
    y = np.concatenate([v.ravel() for v in ys])
    assert X.dtype == np.uint8 and np.array_equal(y, y.astype(np.uint8))
    sizes = np.array([x.shape[0] for x in Xs], dtype=np.int64)
    train, test = [], []
    for k in range(1, 11):
        idx = loadmat(src / f"school_{k}_indexes.mat")
        train.append(idx["tr"].ravel().astype(np.int64) - 1)  # 1-based -> 0-based
        test.append(idx["tst"].ravel().astype(np.int64) - 1)
    n_train = {len(a) for a in train}
    n_test = {len(a) for a in test}
    assert len(n_train) == 1 and len(n_test) == 1
    np.savez_compressed(
        dst, X=X, y=y.astype(np.uint8), task_sizes=sizes,
        train=np.stack(train).astype(np.uint16), test=np.stack(test).astype(np.uint16))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).with_name("data") / "school.npz")
