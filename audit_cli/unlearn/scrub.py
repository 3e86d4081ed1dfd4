"""scrub (Kurmanji et al. 2023): a student moves away from its teacher on the forget set.

Teacher = the original model (frozen); student starts as the original. Each epoch: if
the epoch is below ``msteps``, a max-step pass over the forget set (maximise
KL(teacher || student) at temperature T), then a min-step pass over the retain set
(``gamma * CE + alpha * KL``).
"""

from __future__ import annotations

from dataclasses import dataclass

from audit_cli.training.loop import Ensemble
from audit_cli.unlearn.base import Loop, MethodEntry, UnlearnTask, check_positive
from audit_cli.unlearn.common import OptimParams, distill_kl, frozen_forward


@dataclass(frozen=True)
class ScrubParams(OptimParams):
    lr: float = 5e-4
    """Learning rate."""
    epochs: int = 3
    """Epochs (each a max pass while below msteps, then a min pass)."""
    msteps: int = 2
    """Epochs that include a max-step pass over the forget set."""
    temperature: float = 4.0
    """Distillation temperature T."""
    alpha: float = 0.001
    """Weight of the KL term in min-steps."""
    gamma: float = 0.99
    """Weight of the CE term in min-steps."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(lr=self.lr, epochs=self.epochs, temperature=self.temperature)
        if self.msteps < 0:
            raise ValueError("msteps must be non-negative")


def run(ens: Ensemble, task: UnlearnTask, params: ScrubParams) -> Ensemble:
    teacher = frozen_forward(ens)
    loop = Loop(ens, task, lr=params.lr, **params.loop_kwargs())
    for epoch in range(params.epochs):
        if epoch < params.msteps:
            for idx in loop.epoch("forget"):
                xb, _ = loop.batch(idx)
                loop.step(-distill_kl(loop.logits(xb), teacher(xb), params.temperature))
        for idx in loop.epoch("retain"):
            xb, yb = loop.batch(idx)
            logits = loop.logits(xb)
            kl = distill_kl(logits, teacher(xb), params.temperature)
            loop.step(params.gamma * loop.cross_entropy(logits, yb) + params.alpha * kl)
    return loop.finish()


ENTRY = MethodEntry(
    name="scrub",
    params=ScrubParams,
    run=run,
    supports=frozenset({"random", "class"}),
    description="teacher-student: maximise KL on forget, CE + KL on retain (SCRUB)",
)
