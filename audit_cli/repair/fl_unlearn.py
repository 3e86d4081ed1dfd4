"""``audit unlearn`` on a federated model: forget whole clients (``--forget-client``).

PUF (audit_cli/unlearn/puf.py) runs one unlearning round and FedAvg recovery over the
remaining clients; with ``--retrained`` (the federation trained without the clients,
``audit fl train --exclude-client``) recovery stops once test accuracy reaches the
retrained model's, at most ``recovery_rounds`` rounds, and the rounds it took are what the
checkpoint records (the audit's shadows replay exactly that many). ``retrain`` trains the
federation again from its seed without the clients (the same model ``audit fl train
--exclude-client`` writes).

Besides accuracy, the result carries what the PUF paper reports: unlearning accuracy
(UA = 1 - accuracy on the clients' data), the recovery rounds, and two membership attacks
on the clients' data before and after (attacks/client_mia.py). The checkpoint's federation
lists the forgotten clients, so a later request forgets from the clients that remain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from attacks.client_mia import ClientMIA, client_mia
from audit_cli.data import Dataset, fingerprint_ids
from audit_cli.errors import UsageError
from audit_cli.families.federations import FEDERATIONS
from audit_cli.federated.model import federation_of
from audit_cli.federated.partition import federation_clients
from audit_cli.models.checkpoint import (
    Checkpoint,
    build_model_from_checkpoint,
    check_dataset,
    load_checkpoint,
    save_checkpoint,
)
from audit_cli.models.metadata import CheckpointMeta, Unlearning
from audit_cli.models.recipe import Recipe
from audit_cli.repair.unlearn_request import UnlearnRequest, UnlearnResult, split_accuracy_from_logits
from audit_cli.training.loop import Ensemble, accuracy, predict_logits
from audit_cli.unlearn import DivergedError, MethodEntry, UnlearnTask, params_dict
from audit_cli.unlearn.puf import puf


@dataclass(frozen=True)
class ClientForgetting:
    """What forgetting the clients did, as the PUF paper reports it."""

    clients: tuple[int, ...]
    recovery_rounds: int | None
    """Recovery rounds run (PUF); None for retraining."""
    target_accuracy: float | None
    """The retrained federation's test accuracy recovery aimed at (with --retrained)."""
    mia_before: ClientMIA
    mia_after: ClientMIA


@dataclass(frozen=True)
class ClientSplit:
    """A federation's examples around a request to forget some of its clients."""

    members: dict[int, np.ndarray]
    """The clients still in the federation (neither left out of training nor forgotten)."""
    forget: np.ndarray
    """The forgotten clients' ids."""
    retain: np.ndarray
    """The remaining members' ids."""
    trained: np.ndarray
    """What the federation was trained on: every client but those left out of training (a
    client forgotten by an earlier request was trained on, and its parent's fingerprint
    counts it)."""


def forget_clients(dataset: Dataset, recipe: Recipe, clients: tuple[int, ...]) -> ClientSplit:
    """Split the federation's clients for a request to forget ``clients``."""
    fed = recipe.federation
    if not clients:
        raise UsageError("a federated model forgets whole clients: pass --forget-client N (repeatable)")
    for c in clients:
        if not 0 <= c < fed.clients:
            raise UsageError(f"client {c} does not exist: the federation has clients 0..{fed.clients - 1}")
        if c in fed.gone:
            what = "was left out of training" if c in fed.excluded else "was forgotten already"
            raise UsageError(f"client {c} {what}: nothing of it is in the model")
    parts = federation_clients(dataset, fed)
    members = {c: ids for c, ids in enumerate(parts) if c not in fed.gone}
    forget = np.sort(np.concatenate([members[c] for c in clients]))
    retain = np.sort(np.concatenate([ids for c, ids in members.items() if c not in clients]))
    trained = np.sort(np.concatenate([ids for c, ids in enumerate(parts) if c not in fed.excluded]))
    return ClientSplit(members, forget, retain, trained)


def retrained_accuracy(request: UnlearnRequest, dataset: Dataset, recipe: Recipe) -> float:
    """Test accuracy of the federation retrained without the clients (``--retrained``)."""
    checkpoint = load_checkpoint(request.retrained)
    meta = checkpoint.meta
    fed = federation_of(meta, request.retrained)
    check_dataset(meta, dataset, path=request.retrained)
    gone = set(fed.excluded)
    wanted = set(recipe.federation.gone) | set(request.forget_clients)
    if fed.rule() != recipe.federation.rule() or gone != wanted:
        raise UsageError(f"{request.retrained} is not this federation retrained without client(s) "
                         f"{sorted(wanted)} (it leaves out {sorted(gone)})",
                         hint="train it with audit fl train and the same options plus --exclude-client")  # fmt: skip
    model = build_model_from_checkpoint(checkpoint, arch=request.arch, dataset=dataset)
    ens = Ensemble.from_modules([model], meta.arch, meta.arch_args, dataset.input_shape, dataset.num_classes)
    rows = dataset.rows(dataset.test_ids)
    return float(accuracy(predict_logits(ens, dataset.x[rows]), dataset.y[rows])[0])


def unlearn_federated(request: UnlearnRequest, entry: MethodEntry, params, parent: Checkpoint, dataset: Dataset,
                      recipe: Recipe, originals: Ensemble) -> UnlearnResult:  # fmt: skip
    """Forget ``request.forget_clients`` from a federated model and write the result."""
    if request.forget is not None or request.forget_class is not None:
        given = "--forget" if request.forget is not None else "--forget-class"
        raise UsageError(f"a federated model forgets whole clients: pass --forget-client N, not {given}")
    FEDERATIONS.check_method(entry, recipe)
    meta: CheckpointMeta = parent.meta
    clients = tuple(dict.fromkeys(request.forget_clients))  # a client named twice is forgotten once
    split = forget_clients(dataset, recipe, clients)
    members, forget, retain = split.members, split.forget, split.retain
    if meta.trained_ids_fingerprint not in (None, fingerprint_ids(split.trained)):
        raise UsageError(f"{request.model} was not trained on its federation's clients (it is {meta.kind})")
    target = retrained_accuracy(request, dataset, recipe) if request.retrained is not None else None
    test_rows = dataset.rows(dataset.test_ids)
    rows_f, rows_r = dataset.rows(forget), dataset.rows(retain)
    before_logits = predict_logits(originals, dataset.x)[0].numpy()
    start = time.perf_counter()
    rounds = None
    if entry.exact:
        # The federation again from its own seed, without the clients: audit fl train --exclude-client.
        task = UnlearnTask(dataset, [forget], [retain], recipe, [recipe.federation.seed], clients=[members],
                           allow_plugin=request.arch is not None)  # fmt: skip
        device = next(iter(originals.params.values())).device
        unlearned = FEDERATIONS.unlearn(originals, task, entry, params, device)
        used = params_dict(params)
    else:
        task = UnlearnTask(dataset, [forget], [retain], recipe, [request.seed], clients=[members])
        if target is not None and params.target_accuracy == 0:
            params = replace(params, target_accuracy=target)
        outcome = puf(originals, task, params)
        unlearned, rounds = outcome.models, outcome.recovery_rounds[0]
        # What the audit's shadows replay: the rounds this request ran, no target of their own.
        used = params_dict(replace(params, recovery_rounds=rounds, target_accuracy=0.0))
    seconds = time.perf_counter() - start
    if not unlearned.finite():
        # A large eta can push the negated round past what float32 holds.
        hint = "lower eta (--param eta=...) or use --param variant=special" if not entry.exact else \
            "lower the local learning rate of the federation's recipe"
        raise DivergedError(f"{entry.name} diverged: the unlearned model has NaN or infinite weights", hint=hint)
    after_logits = predict_logits(unlearned, dataset.x)[0].numpy()
    before = split_accuracy_from_logits(before_logits, dataset, forget, retain, None)
    after = split_accuracy_from_logits(after_logits, dataset, forget, retain, None)
    mia_before = client_mia(before_logits, dataset.y, rows_f, rows_r, test_rows, seed=request.seed)
    mia_after = client_mia(after_logits, dataset.y, rows_f, rows_r, test_rows, seed=request.seed)
    fed = replace(recipe.federation, forgotten=recipe.federation.forgotten + clients)
    new_meta = CheckpointMeta.of(
        "unlearned",
        dataset,
        arch=meta.arch,
        arch_args=meta.arch_args,
        recipe=recipe.replace(federation=fed),
        trained_ids_fingerprint=meta.trained_ids_fingerprint,
        n_trained=meta.n_trained,
        unlearning=Unlearning(method=entry.name, params=used | {"seed": request.seed},
                              forget_fingerprint=fingerprint_ids(forget), n_forget=len(forget),
                              parent_sha256=parent.sha256),  # fmt: skip
        metrics={"forget_accuracy": after.forget, "retain_accuracy": after.retain, "test_accuracy": after.test,
                 "seconds": seconds, "mia_svc": mia_after.svc, "mia_loss": mia_after.loss}
        | ({"recovery_rounds": float(rounds)} if rounds is not None else {}),  # fmt: skip
    )
    sha = save_checkpoint(request.out, unlearned.state_dict(0), new_meta, overwrite=request.overwrite)
    report = ClientForgetting(clients, rounds, target, mia_before, mia_after)
    return UnlearnResult(request.out, sha, new_meta, used, len(forget), before, after, seconds, clients=report)
