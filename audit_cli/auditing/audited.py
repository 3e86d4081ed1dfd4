"""The audited model, whoever trained it, and how its shadows must be trained.

A checkpoint written by ``audit train`` or ``audit unlearn`` says everything itself. A model
the tool did not train (a bare state dict, a file from another tool, an object handed over
in Python) says nothing, and the tool never invents what it does not know: its caller
names the dataset (``--data``), the architecture when weights must be built (``--arch``),
and how it was trained, either as a recipe file the tool's trainer follows (``--recipe``)
or as the user's own training code (``--trainer``, with ``--unlearner`` for the user's
unlearning). The report records which, and that the user supplied it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from audit_cli.data import Dataset, load_dataset
from audit_cli.errors import UsageError
from audit_cli.families.model_file import InMemoryModel, ModelFile, load_model
from audit_cli.families.user_code import TrainerRecipe
from audit_cli.models.checkpoint import check_dataset, strip_prefix
from audit_cli.models.metadata import CheckpointMeta
from audit_cli.models.plugins import identity, resolve_callable
from audit_cli.models.recipe import Recipe, read_recipe_file
from audit_cli.models.sklearn_model import SklearnRecipe
from audit_cli.options import check_data_options

if TYPE_CHECKING:
    from audit_cli.auditing.request import AuditConfig


@dataclass(frozen=True, eq=False)
class AuditedModel:
    """A model to audit or compare with, and what its shadows are trained with."""

    model: ModelFile | InMemoryModel
    meta: CheckpointMeta
    """The checkpoint's own metadata, or for an imported model a document saying only what
    its caller said (kind ``imported``)."""
    recipe: Recipe | SklearnRecipe | TrainerRecipe
    recipe_source: str
    """checkpoint, the recipe file's path, or trainer MODULE:FUNCTION."""
    arch: str | None = None
    """The architecture the weights are built with, when the file does not say."""

    @property
    def sha256(self) -> str:
        return self.model.sha256

    def view_logits(self, dataset: Dataset, device: torch.device | str) -> np.ndarray:
        return np.asarray(self.model.view_logits(dataset, device, arch=self.arch, recipe=self.recipe))


def _open(model: Any, prefix: str | None = None) -> ModelFile | InMemoryModel:
    """A model file (its weights' keys without ``prefix``, --strip-prefix) or an object."""
    if not isinstance(model, (str, Path)):
        return InMemoryModel(model)
    opened = load_model(model)
    if prefix and opened.checkpoint is not None:
        checkpoint = replace(opened.checkpoint, state_dict=strip_prefix(opened.checkpoint.state_dict, prefix))
        opened = replace(opened, checkpoint=checkpoint)
    return opened


def load_audited(config: AuditConfig) -> tuple[AuditedModel, Dataset]:
    """The audited model and the dataset it was trained on; refuses, with the flags to add,
    a model that does not say how it was trained."""
    opened = _open(config.model, config.strip_prefix)
    train = resolve_callable(config.trainer, "trainer")
    unlearn = resolve_callable(config.unlearner, "unlearner")
    if unlearn is not None and train is None:
        raise UsageError("--unlearner replays your unlearning on shadows your own code trains",
                         hint="pass --trainer MODULE:FUNCTION too (see docs/api.md)")  # fmt: skip
    if train is not None and config.recipe is not None:
        raise UsageError("give --recipe (the tool trains the shadows) or --trainer (your code does), not both")
    file_recipe = read_recipe_file(config.recipe) if config.recipe is not None else None
    meta = opened.meta
    missing = []
    if meta is None and config.data is None:
        missing.append("--data NAME|FILE (the dataset it was trained on)")
    building = isinstance(opened, ModelFile) and opened.sklearn is None and (meta is None or meta.kind == "imported")
    if building and meta is None and config.arch is None and file_recipe is None:
        missing.append("--arch NAME|MODULE:FACTORY (its architecture)")
    if train is None and file_recipe is None and opened.recipe is None:
        missing.append(
            "--recipe recipe.toml (the tool trains its shadows) or --trainer MODULE:FUNCTION (your code does)"
        )
    if missing:
        raise UsageError(
            f"{opened.path} does not say how it was trained, and shadows must be trained like it",
            hint="pass " + "; ".join(missing) + " (docs/api.md)",
        )
    check_data_options(config.data, config.data_options)
    if isinstance(config.data, Dataset):  # from Python
        dataset = config.data
    elif config.data:
        dataset = load_dataset(config.data, config.data_options, data_root=config.data_root)
    else:
        dataset = load_dataset(meta.dataset, data_root=config.data_root)
    check_dataset(meta, dataset, path=opened.path)
    if train is not None:
        recipe, source = TrainerRecipe(train, unlearn), f"trainer {identity(train)['name']}"
    elif file_recipe is not None:
        recipe, source = file_recipe, f"recipe file {config.recipe}"
    else:
        recipe, source = opened.recipe, "checkpoint"
    if config.arch is not None and meta is not None and meta.kind != "imported" and config.arch != meta.arch:
        # Before anything trains: the weights would be built as another architecture
        # (and a plug-in imported) only after the whole bank.
        raise UsageError(f"--arch {config.arch} but {opened.path} is a {meta.arch} model (its metadata says so)",
                         hint="drop --arch: a checkpoint the tool wrote names its own architecture")  # fmt: skip
    if file_recipe is not None and config.arch is not None and config.arch != file_recipe.arch:
        raise UsageError(f"--arch {config.arch} but {config.recipe} trains {file_recipe.arch}: the shadows would "
                         "not be the audited model's architecture")  # fmt: skip
    arch = config.arch or (file_recipe.arch if file_recipe is not None and meta is None else None)
    if meta is None:
        # An object from Python is described by its class (module:qualname), like a plug-in.
        label = arch or identity(type(opened.model) if isinstance(opened, InMemoryModel) else train)["name"]
        meta = imported_meta(dataset, label, recipe)
    return AuditedModel(opened, meta, recipe, source, arch), dataset


def imported_meta(dataset: Dataset, arch: str, recipe: object) -> CheckpointMeta:
    """What the tool knows of a model it did not train: the dataset its caller named, its
    architecture, the recipe file if one was given, and nothing about which ids it trained
    on (its shadows train on as many examples as the training split holds)."""
    file_recipe = recipe if isinstance(recipe, Recipe) else None
    return CheckpointMeta.of(
        "imported",
        dataset,
        arch=arch,
        arch_args=dict(file_recipe.arch_args) if file_recipe is not None else {},
        recipe=file_recipe,
        trained_ids_fingerprint=None,
        n_trained=None,
    )


def load_reference(
    path: Any, audited: AuditedModel, dataset: Dataset, prefix: str | None = None
) -> AuditedModel | None:
    """An --original or --retrained model: a checkpoint the tool wrote, or a model like the
    audited one (built with the same architecture, trained the same way)."""
    if path is None:
        return None
    opened = _open(path, prefix)
    meta = opened.meta
    if meta is None:
        if audited.meta.kind != "imported":
            raise UsageError(f"{opened.path} carries no metadata; reference models must come from audit train / "
                             "unlearn, or be imported like the audited model")  # fmt: skip
        meta = audited.meta
    check_dataset(meta, dataset, path=opened.path)
    return AuditedModel(opened, meta, audited.recipe, audited.recipe_source, audited.arch if opened.meta is None
                        else None)  # fmt: skip
