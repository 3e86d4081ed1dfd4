"""What every unlearning method shares: the task, the registry entry, the vectorized loop.

A method takes a stack of K trained models (an :class:`Ensemble`) and a task saying, per
model, which ids to forget and which to retain, and returns the K unlearned models. The
audit's U-LiRA shadows need exactly this (each shadow forgets its own set); a user's
single model is K = 1. All K models step together, like training: per step each model
gets its own minibatch, the loss is the sum of the K per-model losses, and one optimizer
updates the stacked parameters, so model k follows the same path it would alone.

Methods whose output is not new weights (an output filter such as MPRU) register a
``filter_outputs`` instead of a ``run``; the registry and the CLI dispatch on which one
an entry has.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from audit_cli.data import Dataset
from audit_cli.errors import UsageError
from audit_cli.models.recipe import AUGMENTATIONS, Recipe, check_augmentation_name
from audit_cli.options import coerce
from audit_cli.training.loop import Ensemble, augment, dataset_tensors, ensemble_forward, make_optimizer

ForgetKind = Literal["random", "class"]
Produces = Literal["weights", "filter", "external"]
# Unlearning applies every policy of the one vocabulary (training.AUGMENTATIONS).
UNLEARNING_AUGMENTATIONS = AUGMENTATIONS


def check_augmentation(augmentation: str, dataset: Dataset) -> None:
    """Refuse an unknown policy, or any policy on data that is not images."""
    check_augmentation_name(augmentation, UNLEARNING_AUGMENTATIONS, "unlearning")
    if augmentation != "none" and dataset.modality != "image":
        raise UsageError(f"augmentation {augmentation!r} needs image data; {dataset.name!r} is {dataset.modality}")


@dataclass(frozen=True, eq=False)
class UnlearnTask:
    """Which examples each of K models must forget and keep, and how they were trained."""

    dataset: Dataset
    """The dataset the models were trained on."""
    forget_ids: Sequence[np.ndarray]
    """Per model: the ids to forget."""
    retain_ids: Sequence[np.ndarray]
    """Per model: the ids it was trained on and keeps."""
    recipe: Recipe
    """The recipe the models were trained with (retrain reuses it; batch size default)."""
    seeds: Sequence[int]
    """Per model: seed of its data order and random labels."""
    forget_class: int | None = None
    """The forgotten class, for class forgetting; None for a set of examples."""
    augmentation: str = "none"
    """Augmentation policy for methods that accept one (images only)."""
    allow_plugin: bool = False
    """Whether retraining may import a plug-in architecture (only when the user named it)."""
    clients: Sequence[Mapping[int, np.ndarray]] | None = None
    """Federated models only: per model, the clients still in its federation (client number
    -> its ids), the ones to forget among them. None: trained centrally."""

    def __post_init__(self) -> None:
        k = len(self.seeds)
        if len(self.forget_ids) != k or len(self.retain_ids) != k:
            raise UsageError(f"{k} seeds but {len(self.forget_ids)} forget and {len(self.retain_ids)} retain sets")
        check_augmentation(self.augmentation, self.dataset)
        for f in self.forget_ids:
            if len(f) == 0:
                raise UsageError("a forget set is empty: nothing to unlearn")
        if self.clients is not None and len(self.clients) != k:
            raise UsageError(f"{k} seeds but {len(self.clients)} federations")

    @property
    def kind(self) -> ForgetKind:
        return "class" if self.forget_class is not None else "random"

    def select(self, models: Sequence[int]) -> UnlearnTask:
        return UnlearnTask(
            dataset=self.dataset,
            forget_ids=[self.forget_ids[k] for k in models],
            retain_ids=[self.retain_ids[k] for k in models],
            recipe=self.recipe,
            seeds=[self.seeds[k] for k in models],
            forget_class=self.forget_class,
            augmentation=self.augmentation,
            allow_plugin=self.allow_plugin,
            clients=None if self.clients is None else [self.clients[k] for k in models],
        )


@dataclass(frozen=True)
class MethodEntry:
    """One registered unlearning method: it updates weights (``run``), filters a model's
    outputs (``filter_outputs``), or is the user's own code (``external``); one of the three."""

    name: str
    params: type
    """Frozen dataclass of the method's parameters, defaults as in docs/methods.md."""
    supports: frozenset[str]
    """Kinds of forgetting: {"random", "class"}."""
    description: str
    run: Callable[[Ensemble, UnlearnTask, Any], Ensemble] | None = None
    """Weight updates: (originals, task, params) -> the unlearned ensemble."""
    filter_outputs: Callable[..., np.ndarray] | None = None
    """Output filters: (view_logits (views, n, C) of one model, dataset, its retain ids,
    forget class, params, seed) -> the filtered outputs, as the audit's shadows apply it."""
    augmentable: bool = False
    """Whether the method takes an augmentation policy (finetune, random-label, salun)."""
    exact: bool = False
    """Trains from scratch on the retain set (exact unlearning): every model family can do
    it by fitting again, scikit-learn estimators included."""
    external: bool = False
    """The unlearning is the user's code (``--unlearner``), which only the user's own model
    family (``--trainer``) can replay on its shadows."""

    def __post_init__(self) -> None:
        if sum((self.run is not None, self.filter_outputs is not None, self.external)) != 1:
            raise ValueError(f"method {self.name!r} must either update weights (run), filter outputs or be external")

    @property
    def produces(self) -> Produces:
        return "weights" if self.run is not None else "filter" if self.filter_outputs is not None else "external"

    def check_supports(self, kind: ForgetKind) -> None:
        """Refuse a kind of forgetting the method does not do, saying which flag it needs."""
        if kind not in self.supports:
            flag = "--forget-class" if "class" in self.supports else "--forget"
            raise UsageError(f"method {self.name!r} does not support {kind} forgetting",
                             hint=f"{self.name} forgets {' or '.join(sorted(self.supports))}: pass {flag}")  # fmt: skip


@dataclass(frozen=True)
class UnlearningSpec:
    """One resolved unlearning: the method, its typed parameters (defaults filled in) and the
    augmentation policy. What an unlearned checkpoint declares, what the shadows replay and
    what the bank's key hashes."""

    method: str
    params: Mapping[str, object]
    augmentation: str = "none"

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method, "method_params": dict(self.params), "augmentation": self.augmentation}


def resolve_unlearning(
    entry: MethodEntry, params: Mapping[str, object] | None, augmentation: str, dataset: Dataset
) -> UnlearningSpec:
    """Type the parameters against the method's and check the augmentation policy, before
    any model is trained (the shadows would refuse it after minutes of training)."""
    if augmentation != "none":
        check_augmentation(augmentation, dataset)
        if not entry.augmentable:
            raise UsageError(f"{entry.name} takes no augmentation policy (finetune, random-label and salun do)")
    return UnlearningSpec(entry.name, params_dict(parse_params(entry, params)), augmentation)


def parse_params(entry: MethodEntry, raw: Mapping[str, object] | None) -> Any:
    """``--param name=value`` strings -> the method's parameter dataclass, typed and checked."""
    raw = dict(raw or {})
    known = {f.name: f for f in fields(entry.params)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        valid = ", ".join(known) or "none"
        raise UsageError(f"method {entry.name!r} has no parameter {unknown[0]!r}", hint=f"its parameters: {valid}")
    defaults = entry.params()
    typed: dict[str, object] = {}
    for name, value in raw.items():
        default = getattr(defaults, name)
        typed[name] = coerce(name, value, default, what="parameter")
    try:
        return entry.params(**typed)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"method {entry.name!r}: {exc}") from None


def inert_params(params: Any) -> dict[str, str]:
    """The parameters the others make do nothing, each with why (none when the method's
    parameter dataclass defines no ``inert()``)."""
    return params.inert() if hasattr(params, "inert") else {}


def check_inert(entry: MethodEntry, params: Any, given: Iterable[str]) -> None:
    """Refuse a parameter the user set that the others make do nothing (momentum with
    adam, say): recorded, it would read as if it had acted. A parameter dataclass says
    which of its fields are inert, and why, with ``inert()``."""
    inert = inert_params(params)
    for name in given or ():
        if name in inert:
            raise UsageError(f"method {entry.name!r}: {name} does nothing {inert[name]}", hint=f"drop {name}")


def params_dict(params: Any) -> dict[str, object]:
    return {f.name: getattr(params, f.name) for f in fields(params)}


def check_positive(**values: float) -> None:
    """Raise ValueError (turned into a usage error) for non-positive or non-finite values."""
    for name, value in values.items():
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number, got {value}")


def _order_seed(seed: int) -> int:
    # A stream of its own: unlearning order must not replay the training order.
    return int(np.random.SeedSequence([seed, 2]).generate_state(1)[0])


class Loop:
    """The vectorized optimisation state one method run needs over K models.

    Gives per-model minibatches of the forget or retain sets, per-model losses, and one
    optimizer step over the stacked parameters. Methods write their epochs with it.
    """

    def __init__(
        self,
        ens: Ensemble,
        task: UnlearnTask,
        *,
        optimizer: str,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        batch_size: int | None = None,
    ) -> None:
        self.ens = ens
        self.task = task
        self.k = ens.size
        self.num_classes = ens.num_classes
        self.batch_size = batch_size or task.recipe.batch_size
        device = next(iter(ens.params.values())).device
        self.x_all, self.y_all = dataset_tensors(task.dataset, device)
        self.rows = {
            "forget": torch.from_numpy(np.stack([task.dataset.rows(f) for f in task.forget_ids])),
            "retain": torch.from_numpy(np.stack([task.dataset.rows(r) for r in task.retain_ids])),
        }
        self.gens = [torch.Generator().manual_seed(_order_seed(s)) for s in task.seeds]
        self.forward = ensemble_forward(ens.base, self.k)
        self.params = list(ens.params.values())
        for p in self.params:
            p.requires_grad_(True)
        self.opt = make_optimizer(optimizer, self.params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        ens.base.train()

    def n(self, which: str) -> int:
        return self.rows[which].shape[1]

    def steps_per_epoch(self, which: str) -> int:
        return math.ceil(self.n(which) / self.batch_size)

    def epoch(self, which: Literal["forget", "retain"]) -> Iterator[torch.Tensor]:
        """One pass over each model's forget or retain set: row indices (K, b) per step."""
        n = self.n(which)
        order = torch.stack([torch.randperm(n, generator=g) for g in self.gens])
        order = torch.gather(self.rows[which], 1, order).to(self.x_all.device)
        for start in range(0, n, self.batch_size):
            yield order[:, start : start + self.batch_size]

    def cycle(self, which: Literal["forget", "retain"]) -> Iterator[torch.Tensor]:
        """Endless batches of one set (for methods pairing every retain batch with a forget batch)."""
        while True:
            yield from self.epoch(which)

    def batch(self, idx: torch.Tensor, *, augment: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        xb, yb = self.x_all[idx], self.y_all[idx]
        if augment and self.task.augmentation != "none":
            xb = augment_images(xb, self.task, self.gens)
        return xb, yb

    def logits(self, xb: torch.Tensor) -> torch.Tensor:
        return self.forward(self.ens.params, self.ens.buffers, xb)

    def cross_entropy(self, logits: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Per-model mean cross-entropy, shape (K,)."""
        k, b = yb.shape
        return F.cross_entropy(logits.reshape(k * b, -1), yb.reshape(-1), reduction="none").view(k, b).mean(1)

    def step(self, per_model_loss: torch.Tensor, grad_mask: dict[str, torch.Tensor] | None = None) -> None:
        """One optimizer step on the sum of the K per-model losses."""
        self.opt.zero_grad(set_to_none=True)
        per_model_loss.sum().backward()
        if grad_mask is not None:
            for name, p in self.ens.params.items():
                if p.grad is not None and name in grad_mask:
                    p.grad.mul_(grad_mask[name])
        self.opt.step()

    def finish(self) -> Ensemble:
        for p in self.params:
            p.grad = None
            p.requires_grad_(False)
        return self.ens


def augment_images(xb: torch.Tensor, task: UnlearnTask, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """Apply the task's augmentation to image batches (K, b, C, H, W), per model from its
    generator: the same code, and so the same meaning, as training's."""
    return augment(xb, task.augmentation, task.dataset.pixel_stats, gens)
