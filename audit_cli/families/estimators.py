"""scikit-learn estimators: unlearned exactly (fitted again on the retain set) or through an
output filter, since they have no weights to update."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit_cli.errors import UsageError
from audit_cli.models.sklearn_model import SklearnRecipe, fit_sklearn, sklearn_logits
from audit_cli.unlearn import MethodEntry


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


ESTIMATORS = Estimators()


def claims(recipe: object) -> bool:
    return isinstance(recipe, SklearnRecipe)
