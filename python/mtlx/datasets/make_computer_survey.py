"""Rebuild ``data/computer_survey.npz`` from PyMTL's ``conjointAnalysisComputerBuyers.mat``.

Run once by maintainers (``python make_computer_survey.py FILE.mat``); never imported at run time.
Every value is a small integer, stored exactly: the design (20 x 14, -1/+1, column 0 the
constant 1) as int8, the ratings (190 people x 20 profiles, 0-10) and the person covariates
(190 x 7) as uint8. Nothing is rescaled, filtered or reordered.
"""

import sys
from pathlib import Path

import numpy as np
from scipy.io import loadmat


def main(src: Path, dst: Path) -> None:
    mat = loadmat(src)
    design, ratings, covariates = mat["designMarix"], mat["likeBuy"], mat["computerDataZ"]
    assert design.shape == (20, 14) and ratings.shape == (190, 20) and covariates.shape == (190, 7)
    assert set(np.unique(design[:, 1:])) == {-1, 1} and ratings.max() <= 10
    np.savez_compressed(dst, design=design.astype(np.int8), ratings=ratings.astype(np.uint8),
                        covariates=covariates.astype(np.uint8))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).with_name("data") / "computer_survey.npz")
