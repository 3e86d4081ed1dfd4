"""random-label (RL): train the forget set towards random wrong labels, then repair on retain.

Each epoch: one pass over the forget set with labels drawn uniformly from the other
classes, then one pass over the retain set with the true labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from audit_cli.training.loop import Ensemble
from audit_cli.unlearn.base import Loop, MethodEntry, UnlearnTask, check_positive
from audit_cli.unlearn.common import OptimParams, random_other_labels


@dataclass(frozen=True)
class RandomLabelParams(OptimParams):
    lr: float = 0.01
    """Learning rate."""
    epochs: int = 10
    """Epochs, each a forget pass then a retain pass."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(lr=self.lr, epochs=self.epochs)


def relabel_epoch(loop: Loop, grad_mask: dict[str, torch.Tensor] | None = None, after_step=None) -> None:
    """One RL epoch (shared with SalUn, which masks the gradients)."""
    for which in ("forget", "retain"):
        for idx in loop.epoch(which):
            xb, yb = loop.batch(idx, augment=True)
            if which == "forget":
                yb = random_other_labels(yb, loop.num_classes, loop.gens)
            loop.step(loop.cross_entropy(loop.logits(xb), yb), grad_mask=grad_mask)
            if after_step is not None:
                after_step()


def run(ens: Ensemble, task: UnlearnTask, params: RandomLabelParams) -> Ensemble:
    loop = Loop(ens, task, lr=params.lr, **params.loop_kwargs())
    for _ in range(params.epochs):
        relabel_epoch(loop)
    return loop.finish()


ENTRY = MethodEntry(
    name="random-label",
    params=RandomLabelParams,
    run=run,
    supports=frozenset({"random", "class"}),
    description="forget set with random other labels, then retain set, each epoch (RL)",
    augmentable=True,
)
