"""Model families behind one interface: torch networks and scikit-learn estimators.

The shadow bank, and anything else that trains many models like the audited one, asks a
family to fit K models on K id sets, to query their logits on every example, and to
unlearn them with a registered method. Which family a model belongs to follows from its
recipe (a network ``Recipe`` or a ``SklearnRecipe``); that is the one place it is decided.

A family also says which methods it can replay: networks run every weight update; an
estimator has no weights to update, so it is unlearned exactly (fitting again on the
retain set) or through an output filter, which works on any family's outputs. The user's
own training code (``--trainer``) is a family too: it trains the shadows as it trained the
audited model, and the user's unlearning code (``--unlearner``) unlearns them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch

from audit_cli.data import Dataset
from audit_cli.errors import UsageError
from audit_cli.federated.fedavg import simulate
from audit_cli.federated.partition import shadow_clients
from audit_cli.models.model_file import model_logits
from audit_cli.models.sklearn_model import SklearnRecipe, fit_sklearn, sklearn_logits
from audit_cli.plugins import identity
from audit_cli.training import Recipe, query_logits, train_models
from audit_cli.unlearn import MethodEntry, UnlearnTask, unlearn_models


class ModelFamily(Protocol):
    name: str

    def fit(self, dataset: Dataset, recipe: Any, train_ids: Sequence[np.ndarray], seeds: Sequence[int],
            device: str | torch.device, forget: Sequence[np.ndarray] | None = None) -> Any:  # fmt: skip
        """K models, model k fitted on ``train_ids[k]`` with seed ``seeds[k]``; ``forget[k]``
        is what model k will later be asked to forget (a federation holds it as a client)."""

    def logits(self, models: Any, dataset: Dataset, recipe: Any) -> np.ndarray:
        """Their logits on every example, (views, K, n, C) float32."""

    def check_method(self, entry: MethodEntry, recipe: Any) -> None:
        """Refuse a method this family cannot replay (a usage error saying what can)."""

    def unlearn(self, models: Any, task: UnlearnTask, entry: MethodEntry, params: Any,
                device: str | torch.device) -> Any:  # fmt: skip
        """The K models unlearned with a weight-producing ``entry``."""


@dataclass(frozen=True)
class Networks:
    """torch networks trained K at a time (audit_cli/training.py)."""

    name: str = "network"

    def fit(self, dataset, recipe: Recipe, train_ids, seeds, device, forget=None):
        return train_models(dataset, recipe, train_ids, seeds, device=device)

    def logits(self, models, dataset, recipe: Recipe) -> np.ndarray:
        return query_logits(models, dataset, recipe).numpy()

    def check_method(self, entry: MethodEntry, recipe: Recipe) -> None:
        if entry.external:
            raise UsageError(
                "--unlearner replays your unlearning on shadows your own code trains",
                hint="pass --trainer MODULE:FUNCTION too (see docs/api.md)",
            )

    def unlearn(self, models, task, entry, params, device):
        return unlearn_models(models, task, entry.name, params)


@dataclass(frozen=True)
class Estimators:
    """scikit-learn estimators, fitted one by one on flat features (one view)."""

    name: str = "sklearn"

    def fit(self, dataset, recipe: SklearnRecipe, train_ids, seeds, device, forget=None):
        x = dataset.x.reshape(len(dataset.x), -1)
        return [
            fit_sklearn(recipe.arch, recipe.params, x[dataset.rows(ids)], dataset.y[dataset.rows(ids)], seed)
            for ids, seed in zip(train_ids, seeds, strict=True)
        ]

    def logits(self, models, dataset, recipe: SklearnRecipe) -> np.ndarray:
        x = dataset.x.reshape(len(dataset.x), -1)
        return np.stack([sklearn_logits(est, x, dataset.num_classes) for est in models])[None]

    def check_method(self, entry: MethodEntry, recipe: SklearnRecipe) -> None:
        if entry.produces in ("weights", "external") and not entry.exact:
            raise UsageError(
                f"{entry.name} updates network weights; a {recipe.arch} model is unlearned by retrain "
                "or by an output filter (mpru)"
            )

    def unlearn(self, models, task, entry, params, device):
        self.check_method(entry, task.recipe)
        # Exact unlearning of an estimator: fit it again on the retain set, same seed.
        return self.fit(task.dataset, task.recipe, task.retain_ids, task.seeds, device)


@dataclass(frozen=True, eq=False)
class TrainerRecipe:
    """Shadows trained by the user's own code (``--trainer``), unlearned by the user's own
    code (``--unlearner``) when the audited model declares its unlearning that way.

    ``train(dataset, train_ids, seeds)`` returns one trained model per id set; a model is a
    ``torch.nn.Module`` (or any callable) mapping a float32 batch of ``dataset.x`` to logits.
    ``unlearn(dataset, model, forget_ids, retain_ids, seed)`` returns the unlearned model.
    """

    train: Callable[..., Sequence[Any]]
    unlearn: Callable[..., Any] | None = None
    arch: str = "own"
    """For reports and bank listings: what the user's code trains."""
    augmentation: str = "none"
    """The tool queries the user's models on the identity view only."""

    def key_dict(self) -> dict:
        """The bank key: who the code is, with a hash of its source, so edited training
        code trains a new bank."""
        return {"trainer": identity(self.train), "unlearner": identity(self.unlearn) if self.unlearn else None}

    def to_dict(self) -> dict:
        return self.key_dict()


@dataclass(frozen=True)
class UserCode:
    """The user's own training (and unlearning) code as a model family."""

    recipe: TrainerRecipe
    name: str = "own"

    def fit(self, dataset, recipe, train_ids, seeds, device, forget=None):
        ids = [np.asarray(i, dtype=np.int64) for i in train_ids]
        models = list(self.recipe.train(dataset, ids, [int(s) for s in seeds]))
        if len(models) != len(ids):
            raise UsageError(f"the trainer returned {len(models)} models for {len(ids)} training sets")
        return models

    def logits(self, models, dataset, recipe) -> np.ndarray:
        return np.stack([model_logits(m, dataset) for m in models])[None]

    def check_method(self, entry: MethodEntry, recipe) -> None:
        if entry.external and self.recipe.unlearn is None:
            raise UsageError("the model's unlearning is your own code, but no --unlearner was given")
        if entry.produces == "weights" and not entry.exact:
            raise UsageError(
                f"{entry.name} updates the weights of the tool's own networks; shadows from --trainer are yours",
                hint="pass --unlearner MODULE:FUNCTION with the unlearning your model went through, or audit "
                "--method retrain",
            )

    def unlearn(self, models, task, entry, params, device):
        self.check_method(entry, task.recipe)
        if entry.exact:
            return self.fit(task.dataset, task.recipe, task.retain_ids, task.seeds, device)
        return [self.recipe.unlearn(task.dataset, m, np.asarray(f), np.asarray(r), int(s))
                for m, f, r, s in zip(models, task.forget_ids, task.retain_ids, task.seeds, strict=True)]  # fmt: skip


@dataclass(frozen=True)
class Federations:
    """Networks trained by federated averaging (``audit fl train``), K federations at once
    (audit_cli/federated/fedavg.py). A shadow federation holds the examples it will forget
    as the request's clients (audit_cli/federated/partition.py), so PUF forgets clients
    there as it did in the audited federation; exact unlearning trains the federation again
    without them. The recipe's federation is the one the request was served on
    (``request_federation``, audit_cli/inputs.py)."""

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


NETWORKS, ESTIMATORS, FEDERATIONS = Networks(), Estimators(), Federations()


def family_of(recipe: Recipe | SklearnRecipe | TrainerRecipe) -> ModelFamily:
    """The family a recipe trains."""
    if isinstance(recipe, TrainerRecipe):
        return UserCode(recipe)
    if isinstance(recipe, Recipe) and recipe.federation is not None:
        return FEDERATIONS
    return ESTIMATORS if isinstance(recipe, SklearnRecipe) else NETWORKS
