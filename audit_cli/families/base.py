"""The interface every model family implements (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from audit_cli.data import Dataset
from audit_cli.unlearn import MethodEntry, UnlearnTask


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
