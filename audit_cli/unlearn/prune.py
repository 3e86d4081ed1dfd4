"""prune: one-shot global magnitude pruning to a sparsity, then fine-tune on retain.

The smallest-magnitude weights (ranked globally per model, weight matrices and kernels
only) are set to zero and kept there while fine-tuning. The Diluting-RBMs paper finds a
sharp sparsity above which quality collapses and that pruning after training recovers
worse than pruning before: sweep ``sparsity`` and watch retain accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from audit_cli.training.loop import Ensemble
from audit_cli.unlearn.base import Loop, MethodEntry, UnlearnTask, check_positive
from audit_cli.unlearn.common import OptimParams, weight_names


@dataclass(frozen=True)
class PruneParams(OptimParams):
    sparsity: float = 0.5
    """Fraction of weights set to zero."""
    lr: float = 0.01
    """Fine-tuning learning rate."""
    epochs: int = 10
    """Fine-tuning passes over the retain set."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(lr=self.lr, epochs=self.epochs)
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must lie in [0, 1), got {self.sparsity}")


def magnitude_mask(ens: Ensemble, sparsity: float) -> dict[str, torch.Tensor]:
    """Per model: 0 for the ``sparsity`` fraction of smallest |w| over all weight tensors."""
    names = weight_names(ens)
    flat = torch.cat([ens.params[n].detach().abs().reshape(ens.size, -1) for n in names], dim=1)
    n_pruned = int(sparsity * flat.shape[1])
    if n_pruned == 0:
        return {n: torch.ones_like(ens.params[n]) for n in names}
    threshold = flat.kthvalue(n_pruned, dim=1).values  # (K,)
    return {
        n: (ens.params[n].detach().abs() > threshold.view(-1, *[1] * (ens.params[n].dim() - 1))).float() for n in names
    }


def run(ens: Ensemble, task: UnlearnTask, params: PruneParams) -> Ensemble:
    mask = magnitude_mask(ens, params.sparsity)

    @torch.no_grad()
    def apply_mask() -> None:
        for n, m in mask.items():
            ens.params[n].mul_(m)

    apply_mask()
    loop = Loop(ens, task, lr=params.lr, **params.loop_kwargs())
    for _ in range(params.epochs):
        for idx in loop.epoch("retain"):
            xb, yb = loop.batch(idx)
            loop.step(loop.cross_entropy(loop.logits(xb), yb), grad_mask=mask)
            # Masked gradients already keep pruned weights at zero with sgd/adam/adamw (the
            # decay of a zero weight is zero); re-applying the mask keeps that an invariant.
            apply_mask()
    return loop.finish()


ENTRY = MethodEntry(
    name="prune",
    params=PruneParams,
    run=run,
    supports=frozenset({"random", "class"}),
    description="global magnitude pruning to a sparsity, then fine-tune on retain",
)
