"""finetune (FT): keep training on the retain set only, hoping the forget set fades.

Catastrophic forgetting as unlearning: cheap, and usually leaves the forget set more
familiar than a retrained model would (the audit's job to show).
"""

from __future__ import annotations

from dataclasses import dataclass

from audit_cli.training.loop import Ensemble
from audit_cli.unlearn.base import Loop, MethodEntry, UnlearnTask, check_positive
from audit_cli.unlearn.common import OptimParams


@dataclass(frozen=True)
class FinetuneParams(OptimParams):
    lr: float = 0.01
    """Learning rate."""
    epochs: int = 10
    """Passes over the retain set."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(lr=self.lr, epochs=self.epochs)


def run(ens: Ensemble, task: UnlearnTask, params: FinetuneParams) -> Ensemble:
    loop = Loop(ens, task, lr=params.lr, **params.loop_kwargs())
    for _ in range(params.epochs):
        for idx in loop.epoch("retain"):
            xb, yb = loop.batch(idx, augment=True)
            loop.step(loop.cross_entropy(loop.logits(xb), yb))
    return loop.finish()


ENTRY = MethodEntry(
    name="finetune",
    params=FinetuneParams,
    run=run,
    supports=frozenset({"random", "class"}),
    description="fine-tune on the retain set (FT)",
    augmentable=True,
)
