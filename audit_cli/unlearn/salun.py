"""salun (Fan et al. 2024): random-label unlearning restricted to salient weights.

The saliency mask keeps the top fraction ``q`` of weights ranked globally (per model) by
``|d CE(forget set) / d w|`` at the original model. Random-label epochs then update only
those weights; the others are held at their original values (restored after each step,
since weight decay and momentum would otherwise move them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from audit_cli.training.loop import Ensemble
from audit_cli.unlearn.base import Loop, MethodEntry, UnlearnTask, check_positive
from audit_cli.unlearn.common import OptimParams
from audit_cli.unlearn.random_label import relabel_epoch


@dataclass(frozen=True)
class SalUnParams(OptimParams):
    lr: float = 0.01
    """Learning rate."""
    epochs: int = 10
    """Random-label epochs."""
    q: float = 0.5
    """Fraction of weights (by saliency) that may change."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(lr=self.lr, epochs=self.epochs)
        if not 0.0 < self.q <= 1.0:
            raise ValueError(f"q must lie in (0, 1], got {self.q}")


def saliency_mask(loop: Loop, q: float) -> dict[str, torch.Tensor]:
    """Per model: 1 for the top-q fraction of |grad of the forget-set CE|, else 0."""
    loop.opt.zero_grad(set_to_none=True)
    n_forget = loop.n("forget")
    for idx in loop.epoch("forget"):
        xb, yb = loop.batch(idx)
        # Weighted so the accumulated gradient is that of the mean CE over the whole set.
        (loop.cross_entropy(loop.logits(xb), yb) * (idx.shape[1] / n_forget)).sum().backward()
    grads = {n: p.grad.abs() for n, p in loop.ens.params.items()}
    flat = torch.cat([g.reshape(loop.k, -1) for g in grads.values()], dim=1)  # (K, P)
    keep = max(1, round(q * flat.shape[1]))
    threshold = flat.topk(keep, dim=1).values[:, -1]  # (K,)
    loop.opt.zero_grad(set_to_none=True)
    return {n: (g >= threshold.view(-1, *[1] * (g.dim() - 1))).to(g.dtype) for n, g in grads.items()}


def run(ens: Ensemble, task: UnlearnTask, params: SalUnParams) -> Ensemble:
    loop = Loop(ens, task, lr=params.lr, **params.loop_kwargs())
    mask = saliency_mask(loop, params.q)
    original = {n: p.detach().clone() for n, p in ens.params.items()}

    @torch.no_grad()
    def hold_unmasked() -> None:
        for n, p in ens.params.items():
            p.copy_(torch.where(mask[n].bool(), p, original[n]))

    for _ in range(params.epochs):
        relabel_epoch(loop, grad_mask=mask, after_step=hold_unmasked)
    return loop.finish()


ENTRY = MethodEntry(
    name="salun",
    params=SalUnParams,
    run=run,
    supports=frozenset({"random", "class"}),
    description="random-label updates on the top-q salient weights only (SalUn)",
    augmentable=True,
)
