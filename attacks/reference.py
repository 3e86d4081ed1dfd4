"""Metrics read against a retrained reference model.

The Average Gap (SalUn; the augmentation paper's metric): the mean, over unlearning
accuracy (UA = 100 - forget accuracy), MIA-efficacy, retain accuracy (RA) and test
accuracy (TA), all in percent, of the absolute difference between the unlearned model
and the model retrained without the forget set. 0 means indistinguishable from
retraining on these four numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


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
