"""One way in for every model file the tool reads: a network checkpoint or a scikit-learn model.

The bytes decide the kind, not the suffix: a skops archive goes through the trusted-type
loader, anything else through the safe checkpoint loader. Either way the caller gets the
file's sha256, its metadata, the recipe shadows must be trained with, and its logits on a
dataset (a scikit-learn model's log-probabilities serve as its logits).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audit_cli.data import Dataset
from audit_cli.errors import UsageError
from audit_cli.models.checkpoint import Checkpoint, build_model_from_checkpoint, load_checkpoint
from audit_cli.models.metadata import CheckpointMeta
from audit_cli.models.plugins import identity
from audit_cli.models.recipe import Recipe
from audit_cli.models.sklearn_model import SklearnModel, SklearnRecipe, load_sklearn, looks_like_skops, sklearn_logits
from audit_cli.training.loop import Ensemble, query_logits


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
        self, dataset: Dataset, device: str | torch.device = "cpu", *, arch: str | None = None, recipe=None
    ) -> np.ndarray:
        """Logits on every example, (views, n, C) float32: the identity view, plus a flip for
        networks trained with flips (as the shadows are queried). ``arch`` builds a
        checkpoint that carries no metadata; ``recipe`` (default: the checkpoint's) says
        which views the shadows are queried on."""
        if self.sklearn is not None:
            return sklearn_logits(self.sklearn.estimator, dataset.x, dataset.num_classes)[None]
        if recipe is None and self.checkpoint.meta is not None:
            recipe = self.checkpoint.meta.recipe
        return query_logits(self.ensemble(dataset, device, arch=arch, recipe=recipe), dataset, recipe)[:, 0].numpy()

    def ensemble(self, dataset: Dataset, device: str | torch.device = "cpu", *, arch: str | None = None,
                 recipe=None) -> Ensemble:  # fmt: skip
        """The network as an ensemble of one (what training and unlearning take)."""
        ckpt = self.checkpoint
        meta = ckpt.meta
        name = arch or meta.arch
        if meta is not None and name == meta.arch:
            arch_args = meta.arch_args
        else:  # weights without metadata: the architecture's arguments are the recipe's, if it names them
            arch_args = dict(recipe.arch_args) if getattr(recipe, "arch", None) == name else {}
        net = build_model_from_checkpoint(ckpt, arch=arch, arch_args=None if meta is not None else arch_args,
                                          dataset=dataset)  # fmt: skip
        return Ensemble.from_modules([net], name, arch_args, dataset.input_shape, dataset.num_classes, device)


# Logits are computed in batches of this many examples (a user's model may be large).
BATCH = 1024


def model_logits(model: Any, dataset: Dataset) -> np.ndarray:
    """A user's model's logits on every example, (n, C) float32, in batches, without
    gradients; a fitted scikit-learn classifier's log-probabilities serve as its logits."""
    if hasattr(model, "predict_proba"):
        return sklearn_logits(model, dataset.x.reshape(len(dataset.x), -1), dataset.num_classes)
    if isinstance(model, torch.nn.Module):
        model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu")) if isinstance(
        model, torch.nn.Module) else torch.device("cpu")  # fmt: skip
    x = torch.from_numpy(np.ascontiguousarray(dataset.x, dtype=np.float32))
    out = []
    with torch.no_grad():
        for start in range(0, len(x), BATCH):
            z = model(x[start : start + BATCH].to(device))
            out.append(torch.as_tensor(z).detach().float().cpu().numpy())
    logits = np.concatenate(out) if out else np.zeros((0, dataset.num_classes), np.float32)
    if logits.shape != (len(x), dataset.num_classes):
        raise UsageError(
            f"the model returned logits of shape {logits.shape}, expected ({len(x)}, {dataset.num_classes}): "
            "one row per example and one column per class"
        )
    return logits.astype(np.float32)


@dataclass(frozen=True, eq=False)
class InMemoryModel:
    """A model handed over in Python instead of a file: a ``torch.nn.Module``, a fitted
    scikit-learn classifier, or any callable from a float32 batch of ``dataset.x`` to
    logits. It carries no metadata: the caller says how it was trained."""

    model: Any
    label: str = "<in-memory model>"
    meta: CheckpointMeta | None = None
    sklearn: None = None

    @property
    def path(self) -> Path:
        return Path(self.label)

    @property
    def recipe(self) -> None:
        return None

    @cached_property
    def sha256(self) -> str:
        """Of the weights (a module), else of the object's identity: what the report records."""
        h = hashlib.sha256(b"unlearning-audit/in-memory/v1")
        if isinstance(self.model, torch.nn.Module):
            for name, tensor in sorted(self.model.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(repr(identity(self.model.__class__)).encode())
            h.update(repr(getattr(self.model, "get_params", lambda: {})()).encode())
        return h.hexdigest()

    def view_logits(self, dataset: Dataset, device: str | torch.device = "cpu", *, arch=None, recipe=None):
        return model_logits(self.model, dataset)[None]


def load_model(path: str | Path) -> ModelFile:
    """Load a network checkpoint or a scikit-learn model safely, whichever the file is."""
    path = Path(path)
    if looks_like_skops(path):
        sk = load_sklearn(path)
        return ModelFile(path, sk.sha256, sk.meta, sklearn=sk)
    ckpt = load_checkpoint(path)
    return ModelFile(path, ckpt.sha256, ckpt.meta, checkpoint=ckpt)
