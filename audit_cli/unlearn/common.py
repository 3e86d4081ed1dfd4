"""Parameter blocks and loss pieces several unlearning methods share."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from audit_cli.models.recipe import OPTIMIZERS
from audit_cli.training.loop import Ensemble, ensemble_forward


@dataclass(frozen=True)
class OptimParams:
    """Optimizer settings every gradient-based method takes (defaults: SGD as in the papers)."""

    optimizer: str = "sgd"
    """sgd, adam or adamw."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 5e-4
    """L2 penalty (decoupled for adamw)."""
    batch_size: int = 0
    """Examples per step per model; 0 = the training recipe's batch size."""

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.batch_size < 0 or self.weight_decay < 0:
            raise ValueError("batch_size and weight_decay must be non-negative")

    def inert(self) -> dict[str, str]:
        return {"momentum": f"with optimizer {self.optimizer} (it is sgd's)"} if self.optimizer != "sgd" else {}

    def loop_kwargs(self) -> dict:
        return {
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size or None,
        }


def random_other_labels(yb: torch.Tensor, num_classes: int, gens: list[torch.Generator]) -> torch.Tensor:
    """Labels drawn uniformly from the classes other than each example's own, per model."""
    k, b = yb.shape
    shift = torch.stack([torch.randint(1, num_classes, (b,), generator=g) for g in gens]).to(yb.device)
    return (yb + shift) % num_classes


def frozen_forward(ens: Ensemble):
    """f(x) -> logits of a frozen copy of ``ens`` (teacher / original model), no gradients."""
    teacher = ens.select(range(ens.size))
    forward = ensemble_forward(teacher.base, teacher.size)

    @torch.no_grad()
    def f(xb: torch.Tensor) -> torch.Tensor:
        return forward(teacher.params, teacher.buffers, xb)

    return f


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-model KL(teacher || student) at a temperature, times T^2 (Hinton scaling), shape (K,)."""
    t = temperature
    log_s = F.log_softmax(student_logits / t, dim=-1)
    p_t = F.softmax(teacher_logits / t, dim=-1)
    kl = (p_t * (torch.log(p_t.clamp_min(1e-12)) - log_s)).sum(-1)  # (K, b)
    return kl.mean(1) * t * t


def weight_names(ens: Ensemble) -> list[str]:
    """Stacked parameters that are weight matrices or kernels (not biases or norms)."""
    return [n for n, p in ens.params.items() if p.dim() >= 3]  # (K, out, in, ...)
