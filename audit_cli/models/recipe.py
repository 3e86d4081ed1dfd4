"""The training recipe: everything that determines how a network is trained, as it
travels in checkpoint metadata and into the shadow bank's key; and the one vocabulary of
optimizers, schedules and augmentation policies the tool knows."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from audit_cli.errors import UsageError
from audit_cli.files import read_user_bytes
from audit_cli.models.architectures import resolve_arch_args

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
AUGMENTATIONS = ("none", "flip", "crop+flip", "trivialaugment", "randaugment", "autoaugment")
"""Every augmentation policy the tool knows, one meaning each (images only): flip is a
horizontal flip with probability 1/2, crop+flip adds a random crop of 4 px zero padding,
and the last three are torchvision's policies. `audit train` and `audit unlearn` validate
against this one tuple; each refuses, by name, a policy it cannot apply."""
# Bounds of a recipe (a recipe in a checkpoint is input: epochs = 1e9 would train forever).
MAX_EPOCHS = 10_000
MAX_BATCH = 1_000_000
TRAINING_AUGMENTATIONS = AUGMENTATIONS
"""What training applies: every word (``augment`` in the training loop)."""


@dataclass(frozen=True)
class Recipe:
    """Everything that determines how a model is trained; travels in checkpoint metadata."""

    arch: str = "mlp"
    """Architecture registry name, or a plug-in ``package.module:factory``."""
    arch_args: Mapping[str, object] = field(default_factory=dict)
    """Architecture arguments (e.g. ``hidden=(256,)`` for mlp)."""
    optimizer: str = "adam"
    """adam, adamw (decoupled weight decay) or sgd (with momentum)."""
    lr: float = 1e-3
    """Learning rate (peak rate under a schedule)."""
    momentum: float = 0.9
    """SGD momentum; ignored by adam."""
    weight_decay: float = 0.0
    """L2 penalty (adam, sgd) or decoupled decay (adamw)."""
    schedule: str = "constant"
    """constant, or cosine decay to zero over all steps."""
    epochs: int = 60
    """Passes over each model's training subset."""
    batch_size: int = 64
    """Examples per step, per model."""
    augmentation: str = "none"
    """none, flip (horizontal) or crop+flip (4 px zero padding); images only."""
    seed: int = 0
    """Seed of a single model; shadows derive theirs from it."""

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}", hint=f"choose from {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule {self.schedule!r}", hint=f"choose from {', '.join(SCHEDULES)}")
        check_augmentation_name(self.augmentation, TRAINING_AUGMENTATIONS, "training")
        if not (1 <= self.epochs <= MAX_EPOCHS and 1 <= self.batch_size <= MAX_BATCH):
            raise UsageError(f"epochs must lie in 1..{MAX_EPOCHS} and batch size in 1..{MAX_BATCH}, got "
                             f"{self.epochs} and {self.batch_size}")  # fmt: skip
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError(f"learning rate must be a positive number, got {self.lr}")
        if self.weight_decay < 0:
            raise UsageError(f"weight decay must be non-negative, got {self.weight_decay}")
        # Normalise so that equal recipes compare and serialise equally.
        object.__setattr__(self, "arch_args", resolve_arch_args(self.arch, self.arch_args))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["arch_args"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.arch_args.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> Recipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"recipe has unknown field {unknown[0]!r}")
        return cls(**dict(data))

    def replace(self, **changes: object) -> Recipe:
        return replace(self, **changes)

    def key_dict(self) -> dict:
        """What of the recipe shapes shadows (the bank key): all of it but the audited
        model's own seed (each shadow has its own)."""
        return self.replace(seed=0).to_dict()


def check_augmentation_name(name: str, applied: tuple[str, ...], what: str) -> None:
    """Refuse a policy ``what`` cannot apply, naming the ones it can (one line)."""
    if name in applied:
        return
    problem = "cannot apply augmentation" if name in AUGMENTATIONS else "unknown augmentation"
    prefix = f"{what} " if name in AUGMENTATIONS else ""
    raise UsageError(f"{prefix}{problem} {name!r}: {what} accepts {', '.join(applied)}")


RECIPE_FILE_FORMAT = 1


def read_recipe_file(path: str | Path) -> Recipe:
    """A recipe written by hand (TOML, docs/api.md): how a model the tool did not train was
    trained, so that its shadows are trained the same way. ``format = 1`` and the fields of
    ``Recipe``; ``arch_args`` is a table. Unknown fields are refused, never ignored."""
    path = Path(path)
    raw = read_user_bytes(path, "recipe file", error=UsageError)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: not a TOML recipe ({exc})") from None
    version = data.pop("format", None)
    if version != RECIPE_FILE_FORMAT:
        raise UsageError(f"{path}: recipe format {version!r} is not {RECIPE_FILE_FORMAT}",
                         hint=f"start the file with format = {RECIPE_FILE_FORMAT}")  # fmt: skip
    if "arch_args" in data and not isinstance(data["arch_args"], dict):
        raise UsageError(f"{path}: arch_args must be a table")
    data["arch_args"] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.get("arch_args", {}).items()}
    try:
        return Recipe.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    except UsageError as exc:
        raise UsageError(f"{path}: {exc.message}", hint=exc.hint) from None
