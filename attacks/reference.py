"""Metrics read against a retrained reference model.

The Average Gap (SalUn; the augmentation paper's metric): the mean, over unlearning
accuracy (UA = 100 - forget accuracy), MIA-efficacy, retain accuracy (RA) and test
accuracy (TA), all in percent, of the absolute difference between the unlearned model
and the model retrained without the forget set. 0 means indistinguishable from
retraining on these four numbers.

Output divergence (mean KL and total variation to the retrained model's predictions)
and the detrimental-unlearning ratio (distance from the unlearned to the retrained model
over the distance from the original to the retrained model) come with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UnlearningMetrics:
    """The four numbers the Average Gap compares, in percent."""

    forget_accuracy: float
    retain_accuracy: float
    test_accuracy: float
    mia_efficacy: float

    @property
    def unlearning_accuracy(self) -> float:
        return 100.0 - self.forget_accuracy


def average_gap(model: UnlearningMetrics, retrained: UnlearningMetrics) -> float:
    """Mean absolute difference of UA, MIA-efficacy, RA and TA, in percentage points."""
    pairs = [
        (model.unlearning_accuracy, retrained.unlearning_accuracy),
        (model.mia_efficacy, retrained.mia_efficacy),
        (model.retain_accuracy, retrained.retain_accuracy),
        (model.test_accuracy, retrained.test_accuracy),
    ]
    return sum(abs(a - b) for a, b in pairs) / len(pairs)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Divergence:
    """How far one model's predictive distributions are from another's, averaged over examples."""

    kl: float
    """Mean KL(reference || model), nats."""
    total_variation: float
    """Mean total variation distance, in [0, 1]."""


def output_divergence(model_logits: np.ndarray, reference_logits: np.ndarray) -> Divergence:
    """Mean KL(reference || model) and total variation over the rows given."""
    p = softmax(reference_logits)
    q = softmax(model_logits)
    kl = (p * (np.log(np.clip(p, 1e-12, None)) - np.log(np.clip(q, 1e-12, None)))).sum(-1)
    tv = 0.5 * np.abs(p - q).sum(-1)
    return Divergence(float(kl.mean()), float(tv.mean()))


def detrimental_ratio(unlearned_to_retrained: float, original_to_retrained: float) -> float:
    """Distance unlearned->retrained over original->retrained; above 1 the method moved the
    model further from the gold standard than doing nothing ("Ascent Fails to Forget")."""
    if original_to_retrained <= 0:
        return float("inf") if unlearned_to_retrained > 0 else 1.0
    return unlearned_to_retrained / original_to_retrained
