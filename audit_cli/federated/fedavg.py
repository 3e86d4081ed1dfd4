"""Rounds of federated averaging, every client of every simulated federation at once.

A round starts from each federation's global model. Every participating client trains a
copy of its federation's global model for the recipe's local epochs on its own examples,
and reports its pseudo-gradient ``delta = w_local - w_global``; the federation's new
global model is ``w_global + sum_k c_k delta_k``. FedAvg weighs clients by their share of
the round's examples (``c_k = n_k / N``); PUF gives the forgotten clients a negative,
amplified weight (audit_cli/unlearn/puf.py). The round is the unit both share.

Speed: the local models of all federations in a round are one vectorized ensemble
(audit_cli/training.py), grouped by how many steps an epoch takes (clients of unequal
size: the last batch is padded to the batch size and the padding masked out of the loss,
so a client's gradient is its own mean loss). A client trained alone (K = 1, as a Flower
ClientApp does) takes the same steps on the same batches from the same seed, so the
simulation and a Flower deployment agree up to float rounding.

Seeds: client ``c`` of a federation seeded ``s`` draws its data order in round ``r`` from
``client_seed(s, r, c)``; the global model is initialised from ``s``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from audit_cli.data import Dataset
from audit_cli.errors import UsageError
from audit_cli.training import (
    Ensemble,
    Recipe,
    augment,
    chunk_models,
    dataset_tensors,
    ensemble_forward,
    init_ensemble,
    make_optimizer,
)

# Streams of client seeds: training rounds, and the rounds of an unlearning request.
TRAINING, UNLEARNING = 29, 31
# The most local models one vectorized group trains at once.
GROUP_SIZE = 256


def client_seed(seed: int, round_: int, client: int, stream: int = TRAINING) -> int:
    """The seed of client ``client``'s local training in round ``round_``."""
    return int(np.random.SeedSequence([seed, round_, client, stream]).generate_state(1)[0])


@dataclass(frozen=True, eq=False)
class Participant:
    """One client's part in one round of one federation."""

    federation: int
    """Which federation (model of the global ensemble) the client belongs to."""
    client: int
    """The client's number."""
    ids: np.ndarray
    """Its training examples."""
    weight: float
    """Coefficient of its pseudo-gradient in the federation's update."""
    seed: int
    """Seed of its local data order (and augmentation)."""


def train_local(
    ens: Ensemble,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    rows: Sequence[np.ndarray],
    recipe: Recipe,
    seeds: Sequence[int],
    pixel_stats: tuple | None = None,
) -> None:
    """Train the models of ``ens`` in place, model k on dataset rows ``rows[k]``; every model
    takes the same number of steps per epoch (one batch of ``recipe.batch_size`` each)."""
    m, b = ens.size, recipe.batch_size
    sizes = [len(r) for r in rows]
    steps = math.ceil(max(sizes) / b)
    if any(math.ceil(n / b) != steps for n in sizes):
        raise ValueError("models of one group must take equally many steps per epoch")
    params = list(ens.params.values())
    for p in params:
        p.requires_grad_(True)
    opt = make_optimizer(recipe.optimizer, params, lr=recipe.lr, momentum=recipe.momentum,
                         weight_decay=recipe.weight_decay)  # fmt: skip
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    forward = ensemble_forward(ens.base, m)
    ens.base.train()
    device = x_all.device
    for _ in range(recipe.epochs):
        order = torch.zeros(m, steps * b, dtype=torch.long)
        valid = torch.zeros(m, steps * b, dtype=torch.bool)
        for k, (r, g) in enumerate(zip(rows, gens)):
            order[k, : len(r)] = torch.from_numpy(r)[torch.randperm(len(r), generator=g)]
            valid[k, : len(r)] = True
        order, valid = order.to(device), valid.to(device)
        for start in range(0, steps * b, b):
            idx, mask = order[:, start : start + b], valid[:, start : start + b]
            xb, yb = x_all[idx], y_all[idx]
            if recipe.augmentation != "none":
                xb = augment(xb, recipe.augmentation, pixel_stats, gens)
            logits = forward(ens.params, ens.buffers, xb)
            ce = F.cross_entropy(logits.reshape(-1, ens.num_classes), yb.reshape(-1), reduction="none").view(m, b)
            # Each model's mean over its real examples: the padding carries no gradient.
            loss = ((ce * mask).sum(1) / mask.sum(1).clamp(min=1)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    for p in params:
        p.grad = None
        p.requires_grad_(False)


def run_round(
    globals_: Ensemble,
    dataset: Dataset,
    recipe: Recipe,
    participants: Sequence[Participant],
    *,
    group_size: int = GROUP_SIZE,
    tensors: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Ensemble:
    """One round: the participants train locally and each federation moves by the
    weighted sum of its participants' pseudo-gradients. Federations with no participant
    keep their model. Float buffers (BatchNorm statistics) are averaged the same way."""
    device = next(iter(globals_.params.values())).device
    x_all, y_all = tensors if tensors is not None else dataset_tensors(dataset, device)
    update = {n: torch.zeros_like(t, dtype=torch.float64) for n, t in {**globals_.params, **globals_.buffers}.items()
              if t.is_floating_point()}  # fmt: skip
    steps = [math.ceil(len(p.ids) / recipe.batch_size) for p in participants]
    for group in chunk_models(steps, group_size):
        members = [participants[i] for i in group]
        fed = torch.tensor([p.federation for p in members], dtype=torch.long, device=device)
        local = globals_.select(fed.cpu().tolist())
        local = replace(local, params={n: t.to(device) for n, t in local.params.items()},
                        buffers={n: t.to(device) for n, t in local.buffers.items()})  # fmt: skip
        train_local(local, x_all, y_all, [dataset.rows(p.ids) for p in members], recipe,
                    [p.seed for p in members], dataset.pixel_stats)  # fmt: skip
        coef = torch.tensor([p.weight for p in members], dtype=torch.float64, device=device)
        for name, acc in update.items():
            now = local.params[name] if name in local.params else local.buffers[name]
            before = globals_.params[name] if name in globals_.params else globals_.buffers[name]
            delta = now.double() - before[fed].double()
            acc.index_add_(0, fed, delta * coef.view(-1, *[1] * (delta.dim() - 1)))

    def moved(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: (t.double() + update[n]).to(t.dtype) if n in update else t.clone() for n, t in tensors.items()}

    return replace(globals_, params=moved(globals_.params), buffers=moved(globals_.buffers))


def fedavg_participants(federation: int, clients: dict[int, np.ndarray], seed: int, round_: int,
                        stream: int = TRAINING) -> list[Participant]:  # fmt: skip
    """FedAvg's participants of one round: every given client, weighted by its share of examples."""
    total = sum(len(ids) for ids in clients.values())
    return [Participant(federation, c, ids, len(ids) / total, client_seed(seed, round_, c, stream))
            for c, ids in clients.items()]  # fmt: skip


def simulate(
    dataset: Dataset,
    recipe: Recipe,
    clients: Sequence[dict[int, np.ndarray]],
    seeds: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    allow_plugin: bool = False,
    group_size: int = GROUP_SIZE,
) -> Ensemble:
    """Train K federations with FedAvg for the recipe's rounds; federation k has the clients
    ``clients[k]`` (client number -> its ids) and seed ``seeds[k]``."""
    fed = recipe.federation
    if fed is None:
        raise UsageError("the recipe trains centrally; a federation needs --clients and --rounds")
    if len(clients) != len(seeds):
        raise UsageError(f"{len(clients)} federations but {len(seeds)} seeds")
    for k, members in enumerate(clients):
        if not members or any(len(ids) == 0 for ids in members.values()):
            raise UsageError(f"federation {k} has no clients or an empty client")
    globals_ = init_ensemble(recipe.arch, recipe.arch_args, dataset.input_shape, dataset.num_classes, seeds,
                             device=device, allow_plugin=allow_plugin)  # fmt: skip
    tensors = dataset_tensors(dataset, device)
    for r in range(1, fed.rounds + 1):
        participants = [p for k, members in enumerate(clients)
                        for p in fedavg_participants(k, members, seeds[k], r)]  # fmt: skip
        globals_ = run_round(globals_, dataset, recipe, participants, group_size=group_size, tensors=tensors)
        if progress is not None:
            progress(r, fed.rounds)
    return globals_
