"""neggrad+ (Kurmanji et al.): descent on retain batches, ascent on forget batches, mixed.

Per step: ``alpha * CE(retain batch) - (1 - alpha) * CE(forget batch)``; each retain
batch is paired with the next forget batch (the forget set is cycled).
"""

from __future__ import annotations

from dataclasses import dataclass

from audit_cli.training.loop import Ensemble
from audit_cli.unlearn.base import Loop, MethodEntry, UnlearnTask, check_positive
from audit_cli.unlearn.common import OptimParams


@dataclass(frozen=True)
class NegGradPlusParams(OptimParams):
    lr: float = 0.01
    """Learning rate."""
    epochs: int = 10
    """Passes over the retain set."""
    alpha: float = 0.95
    """Weight of the retain loss; 1 - alpha weighs the forget ascent."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(lr=self.lr, epochs=self.epochs)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")


def run(ens: Ensemble, task: UnlearnTask, params: NegGradPlusParams) -> Ensemble:
    loop = Loop(ens, task, lr=params.lr, **params.loop_kwargs())
    forget_batches = loop.cycle("forget")
    for _ in range(params.epochs):
        for idx in loop.epoch("retain"):
            xr, yr = loop.batch(idx)
            xf, yf = loop.batch(next(forget_batches))
            retain_loss = loop.cross_entropy(loop.logits(xr), yr)
            forget_loss = loop.cross_entropy(loop.logits(xf), yf)
            loop.step(params.alpha * retain_loss - (1 - params.alpha) * forget_loss)
    return loop.finish()


ENTRY = MethodEntry(
    name="neggrad+",
    params=NegGradPlusParams,
    run=run,
    supports=frozenset({"random", "class"}),
    description="alpha * CE(retain) - (1 - alpha) * CE(forget), per step",
)
