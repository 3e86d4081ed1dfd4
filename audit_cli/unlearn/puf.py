"""puf (Federated Unlearning Made Practical, negated pseudo-gradients): forget whole
clients of a federated model in ordinary FedAvg rounds.

The clients to forget (U) train one local round like any other client; their
pseudo-gradients ``delta_u = w_u - w`` enter the aggregate negated and amplified by
``eta``:

- regular: one ordinary round of every client still in the federation, U included, with
  N their examples: ``w <- w + sum_{k not in U} n_k/N delta_k - eta sum_{u in U} n_u/N delta_u``
  (eta = 20 by default, as in the authors' scripts);
- special: a round of the forgotten clients alone:
  ``w <- w - eta sum_{u in U} n_u/(sum n_u') delta_u`` (eta = 2);
- natural: no unlearning round (the baseline "keep training without them").

Then recovery: FedAvg over the remaining clients for ``recovery_rounds`` rounds, or, with
``target_accuracy``, until test accuracy reaches it (``audit unlearn --retrained`` sets
it to the retrained federation's, and records the rounds it took, which the audit's
shadows replay). Several clients in one request are forgotten in one round; no state is
kept between rounds (no stored updates: the method's claim of no extra storage).

The forget set must be exactly the union of whole clients: PUF forgets clients, not
examples. Federations come from ``audit fl train`` (audit_cli/federated/).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audit_cli.errors import UsageError
from audit_cli.federated.fedavg import UNLEARNING, Participant, client_seed, fedavg_participants, run_round
from audit_cli.training.loop import Ensemble, accuracy, predict_logits
from audit_cli.unlearn.base import MethodEntry, UnlearnTask

VARIANTS = ("regular", "special", "natural")
DEFAULT_ETA = {"regular": 20.0, "special": 2.0, "natural": 0.0}
MAX_RECOVERY = 1_000


@dataclass(frozen=True)
class PUFParams:
    variant: str = "regular"
    """regular (folded into a round of every client), special (a round of the forgotten
    clients alone) or natural (no unlearning round: recovery only; with a target the
    model already meets, nothing at all)."""
    eta: float = 0.0
    """Amplification of the forgotten clients' negated pseudo-gradients; 0 = the paper's
    (20 regular, 2 special)."""
    recovery_rounds: int = 5
    """FedAvg rounds over the remaining clients afterwards (the most, with target_accuracy)."""
    target_accuracy: float = 0.0
    """Stop recovery once test accuracy reaches this; 0 = run every recovery round."""

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if not (0 <= self.eta < float("inf")):
            raise ValueError(f"eta must be a non-negative number, got {self.eta}")
        if not 0 <= self.recovery_rounds <= MAX_RECOVERY:
            raise ValueError(f"recovery_rounds must lie in 0..{MAX_RECOVERY}, got {self.recovery_rounds}")
        if not 0 <= self.target_accuracy <= 1:
            raise ValueError(f"target_accuracy must lie in [0, 1], got {self.target_accuracy}")

    def inert(self) -> dict[str, str]:
        return {"eta": "with variant natural (it has no unlearning round)"} if self.variant == "natural" else {}

    @property
    def amplification(self) -> float:
        return self.eta or DEFAULT_ETA[self.variant]


@dataclass(frozen=True)
class PUFOutcome:
    """The unlearned models and, per model, the recovery rounds it ran."""

    models: Ensemble
    recovery_rounds: list[int]
    test_accuracy: list[list[float]]
    """Per model, with a target: test accuracy after the unlearning round and after each
    recovery round (empty without one)."""


def split_clients(task: UnlearnTask) -> list[tuple[dict[int, np.ndarray], dict[int, np.ndarray]]]:
    """Per model: (clients to forget, clients that remain); refuses a forget set that is
    not a union of whole clients."""
    if task.clients is None or task.recipe.federation is None:
        raise UsageError("puf forgets clients of a federated model", hint="train one with audit fl train")
    out = []
    for forget, clients in zip(task.forget_ids, task.clients, strict=True):
        gone = {c: ids for c, ids in clients.items() if np.isin(ids, forget).all()}
        covered = np.concatenate(list(gone.values())) if gone else np.array([], dtype=np.int64)
        if not gone or len(np.setdiff1d(forget, covered)) or len(np.intersect1d(covered, forget)) != len(forget):
            raise UsageError("puf forgets whole clients: the forget set is not the union of some clients' examples",
                             hint="name the clients with --forget-client")  # fmt: skip
        if len(gone) == len(clients):
            raise UsageError("forgetting every client leaves no federation to recover")
        out.append((gone, {c: ids for c, ids in clients.items() if c not in gone}))
    return out


def unlearning_round(ens: Ensemble, task: UnlearnTask, params: PUFParams, split) -> Ensemble:
    """The round that forgets: negated, amplified pseudo-gradients of the forgotten clients."""
    eta, participants = params.amplification, []
    for k, (gone, kept) in enumerate(split):
        seed = task.seeds[k]
        if params.variant == "regular":
            total = sum(len(ids) for ids in gone.values()) + sum(len(ids) for ids in kept.values())
            participants += [Participant(k, c, ids, len(ids) / total, client_seed(seed, 0, c, UNLEARNING))
                             for c, ids in kept.items()]  # fmt: skip
            participants += [Participant(k, c, ids, -eta * len(ids) / total, client_seed(seed, 0, c, UNLEARNING))
                             for c, ids in gone.items()]  # fmt: skip
        else:
            total = sum(len(ids) for ids in gone.values())
            participants += [Participant(k, c, ids, -eta * len(ids) / total, client_seed(seed, 0, c, UNLEARNING))
                             for c, ids in gone.items()]  # fmt: skip
    return run_round(ens, task.dataset, task.recipe, participants)


def puf(ens: Ensemble, task: UnlearnTask, params: PUFParams) -> PUFOutcome:
    split = split_clients(task)
    if params.variant != "natural":
        ens = unlearning_round(ens, task, params, split)
    test = task.dataset.test_ids
    x_test, y_test = task.dataset.x[task.dataset.rows(test)], task.dataset.y[task.dataset.rows(test)]

    def test_accuracy(models: Ensemble) -> list[float]:
        return [float(a) for a in accuracy(predict_logits(models, torch.from_numpy(x_test)), y_test)]

    # Test accuracy decides when recovery stops; without a target (the shadows) it is not computed.
    aiming = params.target_accuracy > 0
    history = [[a] for a in test_accuracy(ens)] if aiming else [[] for _ in range(ens.size)]
    rounds = [0] * ens.size
    active = [not (aiming and history[k][-1] >= params.target_accuracy) for k in range(ens.size)]
    for r in range(1, params.recovery_rounds + 1):
        if not any(active):
            break
        participants = [p for k, (_, kept) in enumerate(split) if active[k]
                        for p in fedavg_participants(k, kept, task.seeds[k], r, UNLEARNING)]  # fmt: skip
        ens = run_round(ens, task.dataset, task.recipe, participants)
        now = test_accuracy(ens) if aiming else None
        for k in range(ens.size):
            if active[k]:
                rounds[k] = r
                if aiming:
                    history[k].append(now[k])
                    active[k] = now[k] < params.target_accuracy
    return PUFOutcome(ens, rounds, history)


def run(ens: Ensemble, task: UnlearnTask, params: PUFParams) -> Ensemble:
    return puf(ens, task, params).models


ENTRY = MethodEntry(
    name="puf",
    params=PUFParams,
    run=run,
    supports=frozenset({"random"}),
    description="forget federated clients: negated, amplified pseudo-gradients, then FedAvg recovery (PUF)",
)
