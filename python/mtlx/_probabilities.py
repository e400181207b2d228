"""Class probabilities from a head's scores, written once for both classifier families.

A binary task has one score per row, its margin z (positive: the second class); a task of K
classes has K scores, its softmax's inputs. Both in float64 whatever the model's dtype (float32
margins saturate sooner).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

__all__ = ["log_proba_from_scores", "proba_from_scores"]


def proba_from_scores(S) -> np.ndarray:
    """Rows of class probabilities (n, 2) for scores of shape (n, 1), else (n, K) by the softmax.

    Binary: ``expit(-z), expit(z)`` rather than ``1 - expit(z)``, which rounds to 0 for large margins.
    """
    S = np.asarray(S, dtype=np.float64)
    if S.shape[1] == 1:
        return np.column_stack([expit(-S[:, 0]), expit(S[:, 0])])
    E = np.exp(S - S.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def log_proba_from_scores(S) -> np.ndarray:
    """The logarithms of :func:`proba_from_scores`, without its underflow (log(0) at a margin of 800)."""
    S = np.asarray(S, dtype=np.float64)
    if S.shape[1] == 1:
        return np.column_stack([-np.logaddexp(0.0, S[:, 0]), -np.logaddexp(0.0, -S[:, 0])])
    top = S.max(axis=1, keepdims=True)
    return S - top - np.log(np.exp(S - top).sum(axis=1, keepdims=True))
