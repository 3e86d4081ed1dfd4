"""One way in for every model file the tool reads: a network checkpoint or a scikit-learn model.

The bytes decide the kind, not the suffix: a skops archive goes through the trusted-type
loader, anything else through the safe checkpoint loader. Either way the caller gets the
file's sha256, its metadata, the recipe shadows must be trained with, and its logits on a
dataset (a scikit-learn model's log-probabilities serve as its logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audit_cli.data import Dataset
from audit_cli.models.checkpoint import Checkpoint, build_model_from_checkpoint, load_checkpoint
from audit_cli.models.metadata import CheckpointMeta
from audit_cli.models.sklearn_model import SklearnModel, SklearnRecipe, load_sklearn, looks_like_skops, sklearn_logits
from audit_cli.training import Ensemble, Recipe, query_logits


@dataclass(frozen=True, eq=False)
class ModelFile:
    """A loaded model file: exactly one of ``checkpoint`` and ``sklearn`` is set."""

    path: Path
    sha256: str
    meta: CheckpointMeta | None
    checkpoint: Checkpoint | None = None
    sklearn: SklearnModel | None = None

    @property
    def recipe(self) -> Recipe | SklearnRecipe | None:
        """How the model was trained, so shadows can be trained the same way (None: unknown)."""
        meta = self.meta
        if meta is None:
            return None
        if self.sklearn is not None:
            params = {k: v for k, v in meta.arch_args.items() if k != "random_state"}
            return SklearnRecipe(arch=meta.arch, params=params, seed=int(meta.arch_args.get("random_state") or 0))
        return meta.recipe

    def view_logits(
        self, dataset: Dataset, device: str | torch.device = "cpu", *, arch: str | None = None
    ) -> np.ndarray:
        """Logits on every example, (views, n, C) float32: the identity view, plus a flip for
        networks trained with flips (as the shadows are queried). ``arch`` builds a
        checkpoint that carries no metadata."""
        if self.sklearn is not None:
            return sklearn_logits(self.sklearn.estimator, dataset.x, dataset.num_classes)[None]
        ckpt = self.checkpoint
        net = build_model_from_checkpoint(ckpt, arch=arch, dataset=dataset)
        meta = ckpt.meta
        name = arch or meta.arch
        arch_args = meta.arch_args if meta is not None and name == meta.arch else {}
        ens = Ensemble.from_modules([net], name, arch_args, dataset.input_shape, dataset.num_classes, device)
        return query_logits(ens, dataset, meta.recipe if meta is not None else None)[:, 0].numpy()


def load_model(path: str | Path) -> ModelFile:
    """Load a network checkpoint or a scikit-learn model safely, whichever the file is."""
    path = Path(path)
    if looks_like_skops(path):
        sk = load_sklearn(path)
        return ModelFile(path, sk.sha256, sk.meta, sklearn=sk)
    ckpt = load_checkpoint(path)
    return ModelFile(path, ckpt.sha256, ckpt.meta, checkpoint=ckpt)
