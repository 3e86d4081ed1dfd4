"""torch networks trained centrally, K at a time: every registered method replays on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit_cli.errors import UsageError
from audit_cli.models.recipe import Recipe
from audit_cli.training.loop import query_logits, train_models
from audit_cli.unlearn import MethodEntry, unlearn_models


@dataclass(frozen=True)
class Networks:
    """torch networks trained K at a time (audit_cli/training/loop.py)."""

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


NETWORKS = Networks()


def claims(recipe: object) -> bool:
    return isinstance(recipe, Recipe) and recipe.federation is None
