"""trw (Tilted ReWeighting, class forgetting; reconstructed from the paper's abstract).

A model retrained without class c sends class-c inputs to the classes most like c. TRW
fine-tunes towards that behaviour: for a forget input x the target over the retained
classes is the original model's distribution tilted towards classes similar to c,

    q_j(x) ∝ p_orig(j | x) * exp(beta * s_j),   j != c,   q_c = 0,

with ``s = softmax(cos(w_j, w_c) / tau)`` over the retained classes, ``w_j`` the rows of
the last linear layer (the class representations). Loss per step: KL(q || p_theta) on a
forget batch plus CE on a retain batch. ``beta`` and ``tau`` are free constants (the
paper uses beta = 10); the paper's optional PCA of the representations is not done.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from audit_cli.errors import UsageError
from audit_cli.training.loop import Ensemble
from audit_cli.unlearn.base import Loop, MethodEntry, UnlearnTask, check_positive
from audit_cli.unlearn.common import OptimParams, frozen_forward


@dataclass(frozen=True)
class TRWParams(OptimParams):
    lr: float = 0.01
    """Learning rate."""
    epochs: int = 5
    """Passes over the forget set (each forget batch paired with a retain batch)."""
    beta: float = 10.0
    """Tilt strength towards classes similar to the forgotten one."""
    tau: float = 1.0
    """Temperature of the softmax over class similarities."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(lr=self.lr, epochs=self.epochs, tau=self.tau)


def class_representations(ens: Ensemble) -> torch.Tensor:
    """Rows of the last linear layer, (K, C, d): the weight whose first axis is the classes."""
    candidates = [p for p in ens.params.values() if p.dim() == 3 and p.shape[1] == ens.num_classes]
    if not candidates:
        raise UsageError("trw needs a final linear layer to read class representations from")
    return candidates[-1].detach()


def class_similarity(ens: Ensemble, forget_class: int, tau: float) -> torch.Tensor:
    """s_j per model, (K, C): softmax over retained classes of cosine similarity to c; s_c = 0."""
    reps = F.normalize(class_representations(ens), dim=-1)
    cos = torch.einsum("kcd,kd->kc", reps, reps[:, forget_class])
    cos[:, forget_class] = float("-inf")
    return torch.softmax(cos / tau, dim=-1)


def tilted_target(orig_logits: torch.Tensor, similarity: torch.Tensor, forget_class: int, beta: float) -> torch.Tensor:
    """q over classes for each forget input: (K, b, C), zero on the forgotten class."""
    log_q = F.log_softmax(orig_logits, dim=-1) + beta * similarity[:, None, :]
    log_q[..., forget_class] = float("-inf")
    return torch.softmax(log_q, dim=-1)


def run(ens: Ensemble, task: UnlearnTask, params: TRWParams) -> Ensemble:
    c = task.forget_class
    if c is None:
        raise UsageError("trw forgets a class; pass --forget-class")
    original = frozen_forward(ens)
    similarity = class_similarity(ens, c, params.tau)
    loop = Loop(ens, task, lr=params.lr, **params.loop_kwargs())
    retain_batches = loop.cycle("retain")
    for _ in range(params.epochs):
        for idx in loop.epoch("forget"):
            xf, _ = loop.batch(idx)
            q = tilted_target(original(xf), similarity, c, params.beta)
            log_p = F.log_softmax(loop.logits(xf), dim=-1)
            kl = (q * (torch.log(q.clamp_min(1e-12)) - log_p)).sum(-1).mean(1)  # (K,)
            xr, yr = loop.batch(next(retain_batches))
            loop.step(kl + loop.cross_entropy(loop.logits(xr), yr))
    return loop.finish()


ENTRY = MethodEntry(
    name="trw",
    params=TRWParams,
    run=run,
    supports=frozenset({"class"}),
    description="fine-tune forget inputs towards the similarity-tilted distribution (TRW; class forgetting)",
)
