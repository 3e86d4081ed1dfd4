"""neggrad (GA): gradient ascent on the forget set, i.e. minimise -CE on it.

Unconstrained ascent drags test accuracy down with the forget set ("Ascent Fails to
Forget"); with a large learning rate it over-forgets, which the audit reports as a leak.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit_cli.training.loop import Ensemble
from audit_cli.unlearn.base import Loop, MethodEntry, UnlearnTask, check_positive
from audit_cli.unlearn.common import OptimParams


@dataclass(frozen=True)
class NegGradParams(OptimParams):
    lr: float = 1e-4
    """Learning rate."""
    epochs: int = 5
    """Passes over the forget set."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(lr=self.lr, epochs=self.epochs)


def run(ens: Ensemble, task: UnlearnTask, params: NegGradParams) -> Ensemble:
    loop = Loop(ens, task, lr=params.lr, **params.loop_kwargs())
    for _ in range(params.epochs):
        for idx in loop.epoch("forget"):
            xb, yb = loop.batch(idx)
            loop.step(-loop.cross_entropy(loop.logits(xb), yb))
    return loop.finish()


ENTRY = MethodEntry(
    name="neggrad",
    params=NegGradParams,
    run=run,
    supports=frozenset({"random", "class"}),
    description="gradient ascent on the forget set (GA)",
)
