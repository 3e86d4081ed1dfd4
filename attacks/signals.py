"""Per-example signals computed from logits, and the shadow states: what every attack scores.

The central signal is LiRA's logit-scaled confidence of the true class,

    phi = z_y - logsumexp_{j != y} z_j  =  log(p_y / (1 - p_y)),

computed from logits in float64 so that it stays finite and exact where ``p_y`` rounds
to 1 (a confident, memorised training example is exactly the case that matters).

Logits that overflowed to infinity (a model wrecked by gradient ascent) would give an
infinite phi and break every Gaussian fit downstream; phi is clipped to
``[-PHI_LIMIT, PHI_LIMIT]`` instead, which keeps its sign and ordering. NaN (infinite
logits on both sides) stays NaN: the example is not scorable by that model.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

PHI_LIMIT = 1e4

# What a shadow did with an example: never trained on it, trained on it (and kept it), or
# trained on it and then unlearned it. Every attack and the shadow bank speak these.
OUT, IN, UNLEARNED = 0, 1, 2


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
    with np.errstate(invalid="ignore"):
        phi = zy - logsumexp(others, axis=-1)
    return np.clip(phi, -PHI_LIMIT, PHI_LIMIT)


def augmented_confidence(logits_per_view: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phi averaged over augmentation views; ``logits_per_view`` is (views, ..., n, C)."""
    return logit_scaled_confidence(logits_per_view, labels).mean(axis=0)
