"""The user's own training code (``--trainer``) and unlearning code (``--unlearner``) as a
model family."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audit_cli.errors import UsageError
from audit_cli.families.model_file import model_logits
from audit_cli.models.plugins import identity
from audit_cli.unlearn import MethodEntry


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


def claims(recipe: object) -> bool:
    return isinstance(recipe, TrainerRecipe)
