"""Per-example signals computed from logits: the inputs every attack scores.

The central signal is LiRA's logit-scaled confidence of the true class,

    phi = z_y - logsumexp_{j != y} z_j  =  log(p_y / (1 - p_y)),

computed from logits in float64 so that it stays finite and exact where ``p_y`` rounds
to 1 (a confident, memorised training example is exactly the case that matters).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def true_class_logits(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``z_y`` for each example; ``logits`` is (..., n, C), ``labels`` is (n,)."""
    logits = np.asarray(logits)
    labels = np.asarray(labels, dtype=np.int64)
    return np.take_along_axis(logits, np.broadcast_to(labels[:, None], logits.shape[:-1] + (1,)), axis=-1)[..., 0]


def logit_scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phi = z_y - logsumexp over the other classes, float64, shape ``logits.shape[:-1]``."""
    z = np.asarray(logits, dtype=np.float64)
    if z.shape[-1] < 2:
        raise ValueError("logit-scaled confidence needs at least two classes")
    labels = np.asarray(labels, dtype=np.int64)
    zy = true_class_logits(z, labels)
    others = z.copy()
    np.put_along_axis(others, np.broadcast_to(labels[:, None], z.shape[:-1] + (1,)), -np.inf, axis=-1)
    return zy - logsumexp(others, axis=-1)


def augmented_confidence(logits_per_view: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phi averaged over augmentation views; ``logits_per_view`` is (views, ..., n, C)."""
    return logit_scaled_confidence(logits_per_view, labels).mean(axis=0)
