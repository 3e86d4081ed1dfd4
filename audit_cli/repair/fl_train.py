"""``audit fl train`` as a plain function: simulate a federation with FedAvg and save its
global model as a checkpoint.

The training split is partitioned among the clients (audit_cli/federated/partition.py);
every round, every client trains the global model for the recipe's local epochs and the
server averages (audit_cli/federated/fedavg.py; all clients of a round are one vectorized
ensemble). The checkpoint's recipe records the federation (clients, partition rule and
seed, rounds) beside each client's local recipe, so ``audit ids --client``, ``audit
unlearn --forget-client`` and the audit's shadow federations rebuild the same clients.
``exclude_clients`` trains the federation without some clients: the gold standard a
client-level unlearning is compared with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from audit_cli.atomic import check_output_path
from audit_cli.data import fingerprint_ids, load_dataset
from audit_cli.errors import UsageError
from audit_cli.federated.fedavg import simulate
from audit_cli.federated.partition import federation_clients
from audit_cli.models.metadata import Exclusion
from audit_cli.repair.train_checkpoint import TrainRequest, TrainResult, save_trained
from audit_cli.training.loop import Progress, resolve_device


@dataclass(frozen=True)
class FederatedTrainRequest:
    """A federation to simulate (the recipe carries it) and where to write its model."""

    train: TrainRequest
    """Output, data and recipe (``recipe.federation`` set), as for ``audit train``."""
    exclude_clients: tuple[int, ...] = field(default_factory=tuple)
    """Clients left out of every round (a federation retrained without them)."""


def fl_train_checkpoint(request: FederatedTrainRequest, progress: Progress | None = None) -> TrainResult:
    """Partition, run the rounds, evaluate the global model and save it."""
    base = request.train
    recipe = base.recipe
    if getattr(recipe, "federation", None) is None:
        raise UsageError("a federated model needs a network recipe with a federation")
    out = check_output_path(base.out, overwrite=base.overwrite)
    device = resolve_device(base.device)
    fed = recipe.federation
    excluded = tuple(sorted(set(request.exclude_clients)))
    for c in excluded:
        if not 0 <= c < fed.clients:
            raise UsageError(f"client {c} does not exist: the federation has clients 0..{fed.clients - 1}")
    fed = replace(fed, excluded=excluded, forgotten=())
    recipe = recipe.replace(federation=fed)
    dataset = load_dataset(base.data, base.data_options, data_root=base.data_root, download=base.download)
    parts = federation_clients(dataset, fed)
    clients = {c: ids for c, ids in enumerate(parts) if c not in excluded}
    train_ids = np.sort(np.concatenate(list(clients.values())))
    exclusion = None
    if excluded:
        left_out = np.sort(np.concatenate([parts[c] for c in excluded]))
        exclusion = Exclusion(n_ids=len(left_out), ids_fingerprint=fingerprint_ids(left_out))
    start = time.perf_counter()
    ensemble = simulate(dataset, recipe, [clients], [fed.seed], device=device, progress=progress,
                        allow_plugin=True)  # fmt: skip
    return save_trained(out, ensemble, dataset, recipe, train_ids, exclusion, time.perf_counter() - start,
                        overwrite=base.overwrite)  # fmt: skip
