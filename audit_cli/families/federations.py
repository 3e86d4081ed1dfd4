"""Networks trained by federated averaging, K federations at once; PUF or retraining
forgets clients."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from audit_cli.errors import UsageError
from audit_cli.federated.fedavg import simulate
from audit_cli.federated.partition import shadow_clients
from audit_cli.models.recipe import Recipe
from audit_cli.training.loop import query_logits
from audit_cli.unlearn import MethodEntry, unlearn_models


@dataclass(frozen=True)
class Federations:
    """Networks trained by federated averaging (``audit fl train``), K federations at once
    (audit_cli/federated/fedavg.py). A shadow federation holds the examples it will forget
    as the request's clients (audit_cli/federated/partition.py), so PUF forgets clients
    there as it did in the audited federation; exact unlearning trains the federation again
    without them. The recipe's federation is the one the request was served on
    (``request_federation``, audit_cli/auditing/inputs.py)."""

    name: str = "federated"

    def clients(self, dataset, recipe: Recipe, trained, forget, seed) -> dict[int, np.ndarray]:
        parts = shadow_clients(dataset, recipe.federation, trained, forget, seed)
        return dict(enumerate(parts))

    def fit(self, dataset, recipe: Recipe, train_ids, seeds, device, forget=None):
        forget = forget if forget is not None else [None] * len(train_ids)
        clients = [self.clients(dataset, recipe, t, f, s) for t, f, s in zip(train_ids, forget, seeds, strict=True)]
        return simulate(dataset, recipe, clients, seeds, device=device)

    def logits(self, models, dataset, recipe: Recipe) -> np.ndarray:
        return query_logits(models, dataset, recipe).numpy()

    def check_method(self, entry: MethodEntry, recipe: Recipe) -> None:
        if entry.name != "puf" and not entry.exact and entry.filter_outputs is None:
            raise UsageError(f"{entry.name} unlearns a centrally trained network; a federated model is unlearned "
                             "by puf or retrain")  # fmt: skip

    def unlearn(self, models, task, entry, params, device):
        self.check_method(entry, task.recipe)
        if task.clients is None:
            # Shadows: the federation fit() built from the same (subset, forget set, seed).
            trained = [np.union1d(f, r) for f, r in zip(task.forget_ids, task.retain_ids, strict=True)]
            clients = [self.clients(task.dataset, task.recipe, t, f, s)
                       for t, f, s in zip(trained, task.forget_ids, task.seeds, strict=True)]  # fmt: skip
            task = replace(task, clients=clients)
        if entry.exact:
            # The federation trained again from its seed without the forgotten clients.
            kept = [{c: ids for c, ids in clients.items() if not np.isin(ids, f).all()}
                    for clients, f in zip(task.clients, task.forget_ids, strict=True)]  # fmt: skip
            return simulate(task.dataset, task.recipe, kept, task.seeds, device=device, allow_plugin=task.allow_plugin)
        return unlearn_models(models, task, entry.name, params)


FEDERATIONS = Federations()


def claims(recipe: object) -> bool:
    return isinstance(recipe, Recipe) and recipe.federation is not None
