"""Rounds of federated averaging, every client of every simulated federation at once.

A round starts from each federation's global model. Every participating client trains a
copy of its federation's global model for the recipe's local epochs on its own examples,
and reports its pseudo-gradient ``delta = w_local - w_global``; the federation's new
global model is ``w_global + sum_k c_k delta_k``. FedAvg weighs clients by their share of
the round's examples (``c_k = n_k / N``); PUF gives the forgotten clients a negative,
amplified weight (audit_cli/unlearn/puf.py). The round is the unit both share.

Speed: the local models of all federations in a round are one vectorized ensemble
(audit_cli/training/loop.py). Clients differ in size: a client's last batch is padded to the
batch size and the padding masked out of its loss (its gradient is its own mean loss),
and a client whose epoch is over stands still, weights and optimizer state, while the
larger ones finish (``PrefixOptimizer``). A client trained alone (K = 1, as a Flower
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
from audit_cli.models.recipe import Recipe
from audit_cli.training.loop import Ensemble, augment, dataset_tensors, ensemble_forward, init_ensemble

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


class PrefixOptimizer:
    """SGD (momentum, L2), Adam or AdamW over stacked parameters, stepping only the first
    ``n`` models (torch's update rules, per-model step counts).

    Clients of a round hold different numbers of examples. ``train_local`` orders them by
    steps per epoch, most first, so the clients still in their epoch at any step are a
    prefix of the stack: they step on views of it, and the ones that have finished stand
    still, weights and optimizer state, while the larger ones finish. torch's optimizers
    would move them anyway (momentum, weight decay, one step count for the whole stack).
    So model k follows the path it follows alone (a Flower client, K = 1) whatever it is
    stacked with.
    """

    BETAS, EPS = (0.9, 0.999), 1e-8

    def __init__(self, recipe: Recipe, params: Sequence[torch.Tensor]) -> None:
        self.recipe, self.params = recipe, list(params)
        self.t = torch.zeros(self.params[0].shape[0], dtype=torch.float64, device=self.params[0].device)
        self.state = [[torch.zeros_like(p) for _ in range(1 if recipe.optimizer == "sgd" else 2)] for p in params]

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], n: int) -> None:
        """One step of models ``0..n-1``, ``grads[i]`` the gradient of ``params[i][:n]``."""
        r = self.recipe
        self.t[:n] += 1
        b1, b2 = self.BETAS
        if r.optimizer != "sgd":
            # Bias corrections in float64, as torch computes them (Python floats).
            step_size = r.lr / (1 - b1 ** self.t[:n])
            bc2_sqrt = (1 - b2 ** self.t[:n]).sqrt()
        for p, g, state in zip(self.params, grads, self.state, strict=True):
            pv = p[:n]
            shape = (n, *[1] * (p.dim() - 1))
            if r.optimizer == "sgd":
                g = g.add(pv, alpha=r.weight_decay) if r.weight_decay else g
                buf = state[0][:n]
                if not r.momentum:
                    pv.add_(g, alpha=-r.lr)
                    continue
                # torch starts the buffer at the first gradient: 0 * momentum + g is exactly g.
                buf.mul_(r.momentum).add_(g)
                pv.add_(buf, alpha=-r.lr)
                continue
            if r.optimizer == "adamw":
                pv.mul_(1 - r.lr * r.weight_decay)
            elif r.weight_decay:
                g = g.add(pv, alpha=r.weight_decay)
            m, v = state[0][:n], state[1][:n]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / bc2_sqrt.to(p.dtype).view(shape)).add_(self.EPS)
            pv.sub_(m / denom * step_size.to(p.dtype).view(shape))


def train_local(
    ens: Ensemble,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    rows: Sequence[np.ndarray],
    recipe: Recipe,
    seeds: Sequence[int],
    pixel_stats: tuple | None = None,
) -> None:
    """Train the models of ``ens`` in place, model k for the recipe's epochs on dataset rows
    ``rows[k]`` in batches of ``recipe.batch_size`` (its last one padded, the padding
    masked out of its loss). At every step only the clients still in their epoch compute
    and step (``PrefixOptimizer``); the others stand still."""
    b = recipe.batch_size
    steps = [math.ceil(len(r) / b) for r in rows]
    # Most steps first: the clients still in their epoch are always a prefix.
    order = sorted(range(ens.size), key=lambda k: -steps[k])
    work = ens.select(order)
    rows, seeds, steps = [rows[k] for k in order], [seeds[k] for k in order], [steps[k] for k in order]
    m, width = work.size, steps[0] * b
    params = list(work.params.values())
    opt = PrefixOptimizer(recipe, params)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    forwards: dict[int, Callable] = {}
    device = x_all.device
    for _ in range(recipe.epochs):
        batches = torch.zeros(m, width, dtype=torch.long)
        valid = torch.zeros(m, width, dtype=torch.bool)
        for k, (r, g) in enumerate(zip(rows, gens)):
            batches[k, : len(r)] = torch.from_numpy(r)[torch.randperm(len(r), generator=g)]
            valid[k, : len(r)] = True
        batches, valid = batches.to(device), valid.to(device)
        for step, start in enumerate(range(0, width, b)):
            n = sum(1 for s in steps if s > step)
            idx, mask = batches[:n, start : start + b], valid[:n, start : start + b]
            xb, yb = x_all[idx], y_all[idx]
            if recipe.augmentation != "none":
                xb = augment(xb, recipe.augmentation, pixel_stats, gens[:n])
            views = {name: p[:n].detach().requires_grad_(True) for name, p in work.params.items()}
            forward = forwards.setdefault(n, ensemble_forward(work.base, n))
            logits = forward(views, {name: t[:n] for name, t in work.buffers.items()}, xb)
            ce = F.cross_entropy(logits.reshape(-1, work.num_classes), yb.reshape(-1), reduction="none").view(n, b)
            # Each model's mean over its real examples: the padding carries no gradient.
            loss = ((ce * mask).sum(1) / mask.sum(1).clamp(min=1)).sum()
            opt.step(torch.autograd.grad(loss, list(views.values())), n)
    with torch.no_grad():
        back = torch.as_tensor(order)
        for name, t in ens.params.items():
            t[back] = work.params[name]
        for name, t in ens.buffers.items():
            t[back] = work.buffers[name]


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
    for first in range(0, len(participants), group_size):
        members = participants[first : first + group_size]
        fed = torch.tensor([p.federation for p in members], dtype=torch.long, device=device)
        local = globals_.select(fed.tolist())
        train_local(local, x_all, y_all, [dataset.rows(p.ids) for p in members], recipe,
                    [p.seed for p in members], dataset.pixel_stats)  # fmt: skip
        coef = torch.tensor([p.weight for p in members], dtype=torch.float64, device=device)
        accumulate(update, local, globals_, fed, coef)
    return replace(globals_, params=moved(globals_.params, update), buffers=moved(globals_.buffers, update))


@torch.no_grad()
def moved(tensors: dict[str, torch.Tensor], update: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``w + update`` in float64, cast back (tensors with no update are copied as they are).
    No graph: a global model carries no history of the rounds that made it."""
    return {n: (t.double() + update[n]).to(t.dtype) if n in update else t.detach().clone() for n, t in tensors.items()}


@torch.no_grad()
def accumulate(update: dict[str, torch.Tensor], local: Ensemble, globals_: Ensemble, fed: torch.Tensor,
               coef: torch.Tensor) -> None:  # fmt: skip
    """Add each local model's weighted pseudo-gradient to its federation's update (float64)."""
    for name, acc in update.items():
        now = local.params[name] if name in local.params else local.buffers[name]
        before = globals_.params[name] if name in globals_.params else globals_.buffers[name]
        delta = now.double() - before[fed].double()
        acc.index_add_(0, fed, delta * coef.view(-1, *[1] * (delta.dim() - 1)))


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
