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
from audit_cli.options import check_seed

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
PARTITIONS = ("dirichlet", "iid")
# Bounds of a federation (metadata is input: a million clients would allocate a million models).
MAX_CLIENTS = 1_000
MAX_ROUNDS = 10_000


@dataclass(frozen=True)
class Federation:
    """How a federated model was trained (``audit fl train``): the clients, how the
    training split was partitioned among them, and the rounds of FedAvg. The recipe around
    it is each client's local training in one round (``epochs`` local epochs)."""

    clients: int = 10
    """Number of clients; client i holds partition i of the training split."""
    partition: str = "dirichlet"
    """dirichlet (label proportions per client drawn from Dir(alpha)) or iid (equal shares)."""
    alpha: float = 0.3
    """Dirichlet concentration: small values give clients few labels each."""
    rounds: int = 30
    """FedAvg rounds, every client in every round."""
    seed: int = 0
    """Seed of the partition and of the initial global model."""
    excluded: tuple[int, ...] = ()
    """Clients left out of training (a federation retrained without them)."""
    forgotten: tuple[int, ...] = ()
    """Clients unlearned since training (``audit unlearn --forget-client``), in request order."""

    def __post_init__(self) -> None:
        if self.partition not in PARTITIONS:
            raise UsageError(f"unknown partition {self.partition!r}", hint=f"choose from {', '.join(PARTITIONS)}")
        if not (_whole(self.clients) and 2 <= self.clients <= MAX_CLIENTS):
            raise UsageError(f"a federation has 2..{MAX_CLIENTS} clients, got {self.clients!r}")
        if not (_whole(self.rounds) and 1 <= self.rounds <= MAX_ROUNDS):
            raise UsageError(f"rounds must lie in 1..{MAX_ROUNDS}, got {self.rounds!r}")
        check_seed(self.seed, "the federation's seed")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not (
            self.alpha > 0 and math.isfinite(self.alpha)
        ):
            raise UsageError(f"alpha must be a positive number, got {self.alpha!r}")
        # 1 and 1.0 are one federation (and one bank key).
        object.__setattr__(self, "alpha", float(self.alpha))
        for name in ("excluded", "forgotten"):
            ids = tuple(getattr(self, name))
            if any(not _whole(i) or not 0 <= i < self.clients for i in ids):
                raise UsageError(f"{name} clients must be client numbers in 0..{self.clients - 1}, got {list(ids)}")
            if len(set(ids)) != len(ids):
                raise UsageError(f"{name} clients repeat: {list(ids)}")
            object.__setattr__(self, name, ids)
        if len(set(self.excluded) | set(self.forgotten)) >= self.clients:
            raise UsageError("no client would be left in the federation")

    @property
    def gone(self) -> tuple[int, ...]:
        """Clients not in the federation now: left out of training or forgotten since."""
        return self.excluded + self.forgotten

    def to_dict(self) -> dict:
        return {**asdict(self), "excluded": list(self.excluded), "forgotten": list(self.forgotten)}

    @classmethod
    def from_dict(cls, data: Mapping) -> Federation:
        if not isinstance(data, Mapping):
            raise UsageError("federation is not a table")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"federation has unknown field {unknown[0]!r}")
        data = dict(data)
        for name in ("excluded", "forgotten"):
            data[name] = tuple(data.get(name) or ())
        return cls(**data)

    def key_dict(self) -> dict:
        """What shapes shadow federations: the rule, not this federation's draw (seed) or
        which of its clients left (the audit says which examples were forgotten). A request
        of several clients splits each shadow's forget set among as many (their count keys
        the bank; one is the shape every single-client request had before)."""
        key = {"clients": self.clients, "partition": self.partition, "alpha": self.alpha, "rounds": self.rounds}
        if len(self.forgotten) > 1:
            key["forgotten"] = len(self.forgotten)
        return key

    def rule(self) -> Federation:
        """This federation before any client left: its clients, partition, rounds and seed."""
        return replace(self, excluded=(), forgotten=())


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
    """SGD momentum; adam and adamw take none (the command line and recipe files refuse it)."""
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
    federation: Federation | None = None
    """A federated model (``audit fl train``): the federation; the fields above are each
    client's local training in one round. None: trained centrally."""

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
        check_seed(self.seed, "the recipe's seed")
        if not 0 <= self.momentum < 1:
            # Momentum of 1 or more makes SGD's steps grow without bound (a NaN model).
            raise UsageError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise UsageError(f"weight decay must be non-negative, got {self.weight_decay}")
        if self.federation is not None and self.schedule != "constant":
            # Clients of one round take different numbers of steps; one schedule cannot serve them.
            raise UsageError("federated local training uses a constant learning rate, not a schedule")
        # Normalise so that equal recipes compare and serialise equally.
        object.__setattr__(self, "arch_args", resolve_arch_args(self.arch, self.arch_args))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["arch_args"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.arch_args.items()}
        # Centrally trained models keep the recipe they always had (and their banks' keys).
        del out["federation"]
        if self.federation is not None:
            out["federation"] = self.federation.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> Recipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"recipe has unknown field {unknown[0]!r}")
        data = dict(data)
        if data.get("federation") is not None:
            data["federation"] = Federation.from_dict(data["federation"])
        return cls(**data)

    def replace(self, **changes: object) -> Recipe:
        return replace(self, **changes)

    def key_dict(self) -> dict:
        """What of the recipe shapes shadows (the bank key): all of it but the audited
        model's own seed (each shadow has its own)."""
        out = self.replace(seed=0, federation=None).to_dict()
        if self.federation is not None:
            out["federation"] = self.federation.key_dict()
        return out


def check_augmentation_name(name: str, applied: tuple[str, ...], what: str) -> None:
    """Refuse a policy ``what`` cannot apply, naming the ones it can (one line)."""
    if name in applied:
        return
    problem = "cannot apply augmentation" if name in AUGMENTATIONS else "unknown augmentation"
    prefix = f"{what} " if name in AUGMENTATIONS else ""
    raise UsageError(f"{prefix}{problem} {name!r}: {what} accepts {', '.join(applied)}")


RECIPE_FILE_FORMAT = 1


def _whole(value: object) -> bool:
    """An integer that is not a boolean (metadata is JSON: true is not a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_momentum(optimizer: object, momentum: object, flags: tuple[str, str] = ("momentum", "optimizer")) -> None:
    """Momentum is sgd's: another value than the default with adam or adamw would be
    recorded and do nothing. The default is let through (a recipe copied from a
    checkpoint carries adam's unused 0.9)."""
    if optimizer != "sgd" and momentum != Recipe.momentum:
        raise UsageError(f"{flags[0]} is sgd's; {flags[1]} {optimizer} takes none",
                         hint=f"drop {flags[0]}, or use {flags[1]} sgd")


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
        check_momentum(data.get("optimizer", Recipe.optimizer), data.get("momentum", Recipe.momentum))
    except UsageError as exc:
        raise UsageError(f"{path}: {exc.message}", hint=exc.hint) from None
    try:
        return Recipe.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    except UsageError as exc:
        raise UsageError(f"{path}: {exc.message}", hint=exc.hint) from None
