"""The one training loop: K models at once as a vectorized ensemble (the recipe is in
models/recipe.py).

The audit trains many shadow models exactly like the audited one, so speed matters and
so does sameness. Here K models of one architecture keep their parameters stacked along
a leading axis; one step runs all K forward passes as one batched computation
(``torch.func.vmap`` over ``functional_call``) on K different minibatches, sums the K
mean losses and steps one optimizer. Because the models share nothing, the gradient of
the sum with respect to model k's slice is model k's own gradient, and Adam/SGD act
elementwise, so model k of the ensemble follows the same trajectory as model k trained
alone (same seed, same subset) up to float rounding. A single model is K = 1.

Why it is fast: a small model's step is dominated by per-call overhead (Python,
autograd, optimizer bookkeeping); batching K models pays that overhead once per step
instead of K times and turns K tiny matmuls into one batched matmul.

Every model draws its initial weights, its data order and its augmentation from its own
seed, so results do not depend on how models are grouped into chunks.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from audit_cli.data import Dataset
from audit_cli.errors import UsageError
from audit_cli.models.networks import build_model
from audit_cli.models.recipe import OPTIMIZERS, Recipe
from audit_cli.training.batched_mlp import mlp_forward, mlp_plan

# Progress callback: (model-epochs done, model-epochs in total).
Progress = Callable[[int, int], None]


def model_seeds(seed: int, count: int) -> list[int]:
    """Independent per-model seeds derived from one seed (shadow k gets entry k)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count, dtype=np.uint32)]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    # torch knows devices that hold no data (meta) or that this tool does not drive.
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unknown device {device!r}", hint="use cpu, cuda, cuda:N, mps or auto")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("device cuda requested but no CUDA device is available")
    return dev


@dataclass(frozen=True, eq=False)
class Ensemble:
    """K models of one architecture whose parameters and buffers are stacked on axis 0."""

    arch: str
    arch_args: Mapping[str, object]
    input_shape: tuple[int, ...]
    num_classes: int
    params: dict[str, torch.Tensor]
    """Parameter name -> tensor of shape (K, *shape)."""
    buffers: dict[str, torch.Tensor]
    """Buffer name (BatchNorm statistics) -> tensor of shape (K, *shape)."""
    base: nn.Module
    """A stateless copy (meta device) of the architecture, for functional calls."""

    @property
    def size(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights as an ordinary state_dict (CPU, contiguous copies)."""
        out = {n: t[k].detach().to("cpu", copy=True).contiguous() for n, t in self.params.items()}
        out.update({n: t[k].detach().to("cpu", copy=True).contiguous() for n, t in self.buffers.items()})
        return out

    def finite(self) -> bool:
        """Whether every weight and floating-point statistic is finite (a diverged run's are not)."""
        state = [*self.params.values(), *(b for b in self.buffers.values() if b.is_floating_point())]
        return all(bool(torch.isfinite(t).all()) for t in state)

    def select(self, models: Sequence[int]) -> Ensemble:
        """A new ensemble of the given models (copies: training it leaves this one alone)."""
        idx = torch.as_tensor(list(models), dtype=torch.long)
        return replace(
            self,
            params={n: t.detach()[idx].clone() for n, t in self.params.items()},
            buffers={n: t.detach()[idx].clone() for n, t in self.buffers.items()},
        )

    @classmethod
    def from_modules(
        cls,
        models: Sequence[nn.Module],
        arch: str,
        arch_args: Mapping[str, object],
        input_shape: tuple[int, ...],
        num_classes: int,
        device: torch.device | str = "cpu",
    ) -> Ensemble:
        models = [m.to(device) for m in models]
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        return cls(arch, dict(arch_args), tuple(input_shape), num_classes, params, buffers, base)


def init_ensemble(
    arch: str,
    arch_args: Mapping[str, object],
    input_shape: tuple[int, ...],
    num_classes: int,
    seeds: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    allow_plugin: bool = False,
) -> Ensemble:
    """Fresh models, model k initialised from ``seeds[k]`` (global RNG state untouched)."""
    models = []
    for s in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_init_seed(s))
            models.append(build_model(arch, input_shape, num_classes, arch_args, allow_plugin=allow_plugin))
    return Ensemble.from_modules(models, arch, arch_args, input_shape, num_classes, device)


def _init_seed(seed: int) -> int:
    return int(np.random.SeedSequence([seed, 0]).generate_state(1)[0])


def _order_seed(seed: int) -> int:
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])


def ensemble_forward(base: nn.Module, k: int) -> Callable:
    """f(params, buffers, x) with x of shape (K, batch, ...) -> logits (K, batch, C)."""
    plan = mlp_plan(base)
    if plan is not None:
        # MLPs: hand-batched layers, the same arithmetic for every K (see batched_mlp).
        return mlp_forward(plan)
    if k == 1:
        # One model needs no vmap: index the stacked leaves (gradients still flow to them).
        def single(params, buffers, x):
            p = {n: t[0] for n, t in params.items()}
            b = {n: t[0] for n, t in buffers.items()}
            return functional_call(base, (p, b), (x[0],)).unsqueeze(0)

        return single
    return vmap(lambda p, b, x: functional_call(base, (p, b), (x,)))


def make_optimizer(
    name: str, params: list[torch.Tensor], *, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD over stacked parameters (elementwise, so K independent optimizers)."""
    # The fused kernels update every element in one pass; on CPU they are several times
    # faster than the per-tensor loop for the large stacked tensors of an ensemble.
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in params)
    kw = {"fused": True} if fused else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **kw)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **kw)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **kw)
    raise UsageError(f"unknown optimizer {name!r}", hint=f"choose from {', '.join(OPTIMIZERS)}")


def augment_batch(xb: torch.Tensor, kind: str, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """Random flips / crops of image batches (K, b, C, H, W), each model from its generator."""
    k, b = xb.shape[:2]
    flip = torch.stack([torch.rand(b, generator=g) < 0.5 for g in gens]).to(xb.device)
    out = torch.where(flip[..., None, None, None], xb.flip(-1), xb)
    if kind == "crop+flip":
        pad = 4
        h, w = out.shape[-2:]
        shifts = torch.stack([torch.randint(0, 2 * pad + 1, (b, 2), generator=g) for g in gens]).to(xb.device)
        padded = F.pad(out, (pad, pad, pad, pad))
        rows = shifts[..., 0, None] + torch.arange(h, device=xb.device)  # (K, b, H)
        cols = shifts[..., 1, None] + torch.arange(w, device=xb.device)  # (K, b, W)
        c = out.shape[2]
        rows = rows[:, :, None, :, None].expand(k, b, c, h, w + 2 * pad)
        padded = torch.gather(padded, 3, rows)
        cols = cols[:, :, None, None, :].expand(k, b, c, h, w)
        out = torch.gather(padded, 4, cols)
    return out


POLICIES = ("trivialaugment", "randaugment", "autoaugment")
"""torchvision's augmentation policies (in pixel space, per image); the other words of the
vocabulary are batched tensor operations (``augment_batch``)."""


def augment_policy(
    xb: torch.Tensor, policy: str, pixel_stats: tuple | None, gens: Sequence[torch.Generator]
) -> torch.Tensor:
    """Apply a torchvision policy to image batches (K, b, C, H, W), per model from its
    generator: standardised inputs back to 8-bit pixels, the policy, and back."""
    from torchvision.transforms import v2

    transform = {"trivialaugment": v2.TrivialAugmentWide, "randaugment": v2.RandAugment,
                 "autoaugment": v2.AutoAugment}[policy]()  # fmt: skip
    if pixel_stats is None:
        raise UsageError(f"augmentation {policy!r} needs images with known pixel statistics")
    mean = torch.tensor(pixel_stats[0], device=xb.device)[:, None, None]
    std = torch.tensor(pixel_stats[1], device=xb.device)[:, None, None]
    out = torch.empty_like(xb)
    for k, gen in enumerate(gens):
        # The policies draw from torch's global generator; seed it from model k's own
        # generator so the result does not depend on which chunk the model runs in.
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            pixels = ((xb[k] * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
            augmented = torch.stack([transform(img) for img in pixels])
        out[k] = (augmented.float() / 255 - mean) / std
    return out


def augment(xb: torch.Tensor, kind: str, pixel_stats: tuple | None, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """Any word of the vocabulary but none, on image batches (K, b, C, H, W)."""
    if kind in POLICIES:
        return augment_policy(xb, kind, pixel_stats, gens)
    return augment_batch(xb, kind, gens)


def _train_chunk(
    ens: Ensemble,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    rows: torch.Tensor,
    recipe: Recipe,
    seeds: Sequence[int],
    progress: Callable[[int], None] | None,
    pixel_stats: tuple | None = None,
) -> None:
    """Train the models of ``ens`` in place; model k on dataset rows ``rows[k]``."""
    k, n = rows.shape
    params = list(ens.params.values())
    opt = make_optimizer(
        recipe.optimizer, params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs * steps_per_epoch)
        if recipe.schedule == "cosine"
        else None
    )
    gens = [torch.Generator().manual_seed(_order_seed(s)) for s in seeds]
    forward = ensemble_forward(ens.base, k)
    ens.base.train()
    num_classes = ens.num_classes
    for _ in range(recipe.epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in gens])
        order = torch.gather(rows, 1, order).to(x_all.device)
        for start in range(0, n, recipe.batch_size):
            idx = order[:, start : start + recipe.batch_size]
            xb, yb = x_all[idx], y_all[idx]
            if recipe.augmentation != "none":
                xb = augment(xb, recipe.augmentation, pixel_stats, gens)
            logits = forward(ens.params, ens.buffers, xb)
            # Sum over models of each model's mean loss: model k's gradient is its own.
            loss = F.cross_entropy(logits.reshape(-1, num_classes), yb.reshape(-1), reduction="sum") / idx.shape[1]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        if progress is not None:
            progress(k)
    for p in params:
        p.grad = None
        p.requires_grad_(False)


def dataset_tensors(dataset: Dataset, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset as tensors on ``device``; training indexes rows, never copies per sample."""
    return torch.from_numpy(dataset.x).to(device), torch.from_numpy(dataset.y).to(device)


def check_recipe_data(recipe: Recipe, dataset: Dataset) -> None:
    """The recipe's training augmentation can run on this dataset (images, and for the
    learned policies images with known pixel statistics)."""
    if recipe.augmentation != "none" and dataset.modality != "image":
        raise UsageError(
            f"augmentation {recipe.augmentation!r} needs image data; {dataset.name!r} is {dataset.modality}"
        )
    if recipe.augmentation in POLICIES and dataset.pixel_stats is None:
        raise UsageError(f"augmentation {recipe.augmentation!r} needs images with known pixel statistics",
                         hint="crop+flip and flip work on any images")  # fmt: skip


def train_models(
    dataset: Dataset,
    recipe: Recipe,
    train_ids: Sequence[np.ndarray],
    seeds: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    chunk_size: int = 64,
    progress: Progress | None = None,
    allow_plugin: bool = False,
) -> Ensemble:
    """Train len(train_ids) models; model k on ``train_ids[k]`` with seed ``seeds[k]``.

    Models with equally many training examples are trained together, ``chunk_size`` at a
    time; the result is one ensemble in the order given.
    """
    if len(train_ids) != len(seeds):
        raise UsageError(f"{len(train_ids)} training subsets but {len(seeds)} seeds")
    if len(train_ids) == 0:
        raise UsageError("no models to train")
    check_recipe_data(recipe, dataset)
    device = torch.device(device)
    rows = [dataset.rows(ids) for ids in train_ids]
    for k, r in enumerate(rows):
        if len(r) == 0:
            raise UsageError(f"model {k} has no training examples")
    x_all, y_all = dataset_tensors(dataset, device)
    total, done = len(rows) * recipe.epochs, 0

    def advance(models: int) -> None:
        nonlocal done
        done += models
        if progress is not None:
            progress(done, total)

    chunks = chunk_models([len(r) for r in rows], chunk_size)
    trained: list[tuple[list[int], Ensemble]] = []
    for chunk in chunks:
        chunk_seeds = [seeds[k] for k in chunk]
        ens = init_ensemble(
            recipe.arch,
            recipe.arch_args,
            dataset.input_shape,
            dataset.num_classes,
            chunk_seeds,
            device=device,
            allow_plugin=allow_plugin,
        )
        chunk_rows = torch.from_numpy(np.stack([rows[k] for k in chunk]))
        _train_chunk(ens, x_all, y_all, chunk_rows, recipe, chunk_seeds, advance, dataset.pixel_stats)
        trained.append((chunk, ens))
    return restack(trained)


def chunk_models(keys: Sequence[object], chunk_size: int) -> list[list[int]]:
    """Model indices grouped by ``keys[k]`` (e.g. subset size), at most ``chunk_size`` a group.

    Models in one chunk step together, so they need equally many batches per epoch.
    """
    if chunk_size < 1:
        raise UsageError("chunk size must be at least 1")
    groups: dict[object, list[int]] = defaultdict(list)
    for k, key in enumerate(keys):
        groups[key].append(k)
    return [members[i : i + chunk_size] for members in groups.values() for i in range(0, len(members), chunk_size)]


def restack(parts: list[tuple[list[int], Ensemble]]) -> Ensemble:
    """Merge chunk ensembles back into one, in model order (chunk j holds models parts[j][0])."""
    if len(parts) == 1 and parts[0][0] == list(range(parts[0][1].size)):
        return parts[0][1]
    where = {k: (ens, j) for chunk, ens in parts for j, k in enumerate(chunk)}
    order = [where[k] for k in sorted(where)]
    template = parts[0][1]
    params = {n: torch.stack([ens.params[n][j] for ens, j in order]) for n in template.params}
    buffers = {n: torch.stack([ens.buffers[n][j] for ens, j in order]) for n in template.buffers}
    return replace(template, params=params, buffers=buffers)


@torch.no_grad()
def predict_logits(ens: Ensemble, x: torch.Tensor | np.ndarray, *, batch_size: int = 2048) -> torch.Tensor:
    """Logits of every model on every input: shape (K, n, C), float32, on the CPU."""
    device = next(iter(ens.params.values())).device
    x = torch.as_tensor(x)
    ens.base.eval()
    k = ens.size
    if k == 1:
        p = {n: t[0] for n, t in ens.params.items()}
        b = {n: t[0] for n, t in ens.buffers.items()}
        f = lambda xb: functional_call(ens.base, (p, b), (xb,)).unsqueeze(0)  # noqa: E731
    else:
        vf = vmap(lambda p, b, xb: functional_call(ens.base, (p, b), (xb,)), in_dims=(0, 0, None))
        f = lambda xb: vf(ens.params, ens.buffers, xb)  # noqa: E731
    # Keep K * batch rows per call bounded so wide ensembles do not exhaust memory.
    step = max(1, batch_size // max(1, k // 8))
    out = [f(x[i : i + step].to(device)).float().cpu() for i in range(0, len(x), step)]
    return torch.cat(out, dim=1)


def accuracy(logits: torch.Tensor, y: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-model accuracy from logits (K, n, C) and labels (n,)."""
    y = torch.as_tensor(y)
    return (logits.argmax(-1) == y).double().mean(-1)


def query_logits(ens: Ensemble, dataset: Dataset, recipe: Recipe | None = None) -> torch.Tensor:
    """Logits on every pool example, (views, K, n, C): identity, plus a horizontal flip when
    the models were trained with flips (LiRA queries the augmentations used in training;
    phi is averaged over the views). A flipped input a model never saw in training, say
    a mirrored MNIST digit, is no evidence of membership, only noise in phi."""
    x = torch.from_numpy(dataset.x)
    views = [predict_logits(ens, x)]
    if recipe is not None and "flip" in recipe.augmentation and dataset.modality == "image":
        views.append(predict_logits(ens, x.flip(-1)))
    return torch.stack(views)
