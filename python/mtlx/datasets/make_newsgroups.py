"""Rebuild ``data/newsgroups.npz`` from MALSAR's four 20-Newsgroups task files.

Run once by maintainers (``python make_newsgroups.py NEWSGROUP_DIR``); never imported at run time.
NEWSGROUP_DIR holds ``comp_vs_sci_task{1,2}.mat`` and ``rec_vs_talk_task{1,2}.mat`` (MALSAR's
``data/Newsgroup/``): ``fea`` a sparse n x 2000 term-count matrix, ``gnd`` labels {1, 2}. Every
count is a small integer, so the CSR arrays are stored as uint8 (counts) and uint16 (columns), exactly.
"""

import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.io import loadmat

NAMES = ("comp_vs_sci_task1", "comp_vs_sci_task2", "rec_vs_talk_task1", "rec_vs_talk_task2")


def main(src: Path, dst: Path) -> None:
    Xs, ys = [], []
    for name in NAMES:
        mat = loadmat(src / f"{name}.mat")
        X = sp.csr_matrix(mat["fea"])
        X.sort_indices()
        assert X.shape[1] == 2000 and np.array_equal(X.data, np.round(X.data)) and X.data.max() < 256
        Xs.append(X)
        ys.append(mat["gnd"].ravel().astype(np.uint8))
    X = sp.vstack(Xs, format="csr")
    np.savez_compressed(dst, data=X.data.astype(np.uint8), indices=X.indices.astype(np.uint16),
                        indptr=X.indptr.astype(np.int64), n_features=np.int64(X.shape[1]),
                        y=np.concatenate(ys), task_sizes=np.array([x.shape[0] for x in Xs], dtype=np.int64),
                        names=np.array(NAMES))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).with_name("data") / "newsgroups.npz")
