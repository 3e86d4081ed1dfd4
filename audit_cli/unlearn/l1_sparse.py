"""l1-sparse (Jia et al. 2023): fine-tune on retain with a decaying L1 penalty on the weights.

Loss per step t of T: ``CE(retain batch) + gamma * (1 - t / T) * ||theta||_1``. Sparsity
pushes the model towards a simpler solution that carries less of the forget set.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit_cli.training.loop import Ensemble
from audit_cli.unlearn.base import Loop, MethodEntry, UnlearnTask, check_positive
from audit_cli.unlearn.common import OptimParams


@dataclass(frozen=True)
class L1SparseParams(OptimParams):
    lr: float = 0.01
    """Learning rate."""
    epochs: int = 10
    """Passes over the retain set."""
    gamma: float = 1e-4
    """Initial L1 weight, decayed linearly to 0 (the paper tunes it in 1e-5..5e-4)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(lr=self.lr, epochs=self.epochs)
        if self.gamma < 0:
            raise ValueError(f"gamma must be non-negative, got {self.gamma}")


def run(ens: Ensemble, task: UnlearnTask, params: L1SparseParams) -> Ensemble:
    loop = Loop(ens, task, lr=params.lr, **params.loop_kwargs())
    total = params.epochs * loop.steps_per_epoch("retain")
    t = 0
    for _ in range(params.epochs):
        for idx in loop.epoch("retain"):
            xb, yb = loop.batch(idx)
            gamma_t = params.gamma * (1 - t / total)
            l1 = sum(p.abs().reshape(loop.k, -1).sum(1) for p in ens.params.values())
            loop.step(loop.cross_entropy(loop.logits(xb), yb) + gamma_t * l1)
            t += 1
    return loop.finish()


ENTRY = MethodEntry(
    name="l1-sparse",
    params=L1SparseParams,
    run=run,
    supports=frozenset({"random", "class"}),
    description="fine-tune on retain with a linearly decaying L1 penalty",
)
