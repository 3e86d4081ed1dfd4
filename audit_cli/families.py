"""Model families behind one interface: torch networks and scikit-learn estimators.

The shadow bank, and anything else that trains many models like the audited one, asks a
family to fit K models on K id sets, to query their logits on every example, and to
unlearn them with a registered method. Which family a model belongs to follows from its
recipe (a network ``Recipe`` or a ``SklearnRecipe``); that is the one place it is decided.

A family also says which methods it can replay: networks run every weight update; an
estimator has no weights to update, so it is unlearned exactly (fitting again on the
retain set) or through an output filter, which works on any family's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from audit_cli.data import Dataset
from audit_cli.errors import UsageError
from audit_cli.models.sklearn_model import SklearnRecipe, fit_sklearn, sklearn_logits
from audit_cli.training import Recipe, query_logits, train_models
from audit_cli.unlearn import MethodEntry, UnlearnTask, unlearn_models


class ModelFamily(Protocol):
    name: str

    def fit(self, dataset: Dataset, recipe: Any, train_ids: Sequence[np.ndarray], seeds: Sequence[int],
            device: str | torch.device) -> Any:  # fmt: skip
        """K models, model k fitted on ``train_ids[k]`` with seed ``seeds[k]``."""

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

    def fit(self, dataset, recipe: Recipe, train_ids, seeds, device):
        return train_models(dataset, recipe, train_ids, seeds, device=device)

    def logits(self, models, dataset, recipe: Recipe) -> np.ndarray:
        return query_logits(models, dataset, recipe).numpy()

    def check_method(self, entry: MethodEntry, recipe: Recipe) -> None:
        return None  # every registered method updates network weights or filters outputs

    def unlearn(self, models, task, entry, params, device):
        return unlearn_models(models, task, entry.name, params)


@dataclass(frozen=True)
class Estimators:
    """scikit-learn estimators, fitted one by one on flat features (one view)."""

    name: str = "sklearn"

    def fit(self, dataset, recipe: SklearnRecipe, train_ids, seeds, device):
        x = dataset.x.reshape(len(dataset.x), -1)
        return [
            fit_sklearn(recipe.arch, recipe.params, x[dataset.rows(ids)], dataset.y[dataset.rows(ids)], seed)
            for ids, seed in zip(train_ids, seeds, strict=True)
        ]

    def logits(self, models, dataset, recipe: SklearnRecipe) -> np.ndarray:
        x = dataset.x.reshape(len(dataset.x), -1)
        return np.stack([sklearn_logits(est, x, dataset.num_classes) for est in models])[None]

    def check_method(self, entry: MethodEntry, recipe: SklearnRecipe) -> None:
        if entry.produces == "weights" and not entry.exact:
            raise UsageError(
                f"{entry.name} updates network weights; a {recipe.arch} model is unlearned by retrain "
                "or by an output filter (mpru)"
            )

    def unlearn(self, models, task, entry, params, device):
        self.check_method(entry, task.recipe)
        # Exact unlearning of an estimator: fit it again on the retain set, same seed.
        return self.fit(task.dataset, task.recipe, task.retain_ids, task.seeds, device)


NETWORKS, ESTIMATORS = Networks(), Estimators()


def family_of(recipe: Recipe | SklearnRecipe) -> ModelFamily:
    """The family a recipe trains."""
    return ESTIMATORS if isinstance(recipe, SklearnRecipe) else NETWORKS
