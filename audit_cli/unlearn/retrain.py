"""retrain: train from scratch on the retain set with the original recipe.

The exact-unlearning baseline every other method is measured against: the models never
see the forget set, so nothing about it can leak. Costs a full training run.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit_cli.training.loop import Ensemble, train_models
from audit_cli.unlearn.base import MethodEntry, UnlearnTask


@dataclass(frozen=True)
class RetrainParams:
    epochs: int = 0
    """Training epochs; 0 = the original recipe's."""

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError("epochs must be non-negative")


def run(ens: Ensemble, task: UnlearnTask, params: RetrainParams) -> Ensemble:
    recipe = task.recipe if params.epochs == 0 else task.recipe.replace(epochs=params.epochs)
    device = next(iter(ens.params.values())).device
    # The originals are not used: retraining starts from fresh weights on the retain ids.
    return train_models(
        task.dataset, recipe, task.retain_ids, task.seeds, device=device, allow_plugin=task.allow_plugin
    )


ENTRY = MethodEntry(
    name="retrain",
    params=RetrainParams,
    run=run,
    supports=frozenset({"random", "class"}),
    description="train from scratch on the retain set with the original recipe (exact baseline)",
    exact=True,
)
