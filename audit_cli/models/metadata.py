"""The checkpoint metadata document: what a model is, what it saw, how it was made.

Stored as JSON in the safetensors header (key ``unlearning_audit``) or beside the
state_dict in a ``.pt`` dict. The audit reads it to rebuild the model, to check the
dataset is the one the model was trained on, and to train shadow models with the same
recipe (and, for unlearned models, the same method and parameters).

``format_version`` is bumped on incompatible changes; a reader refuses documents newer
than it understands instead of guessing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from audit_cli.data import Dataset, DatasetSpec
from audit_cli.errors import CheckpointError, UsageError
from audit_cli.models.architectures import ARCHITECTURES, is_plugin, resolve_arch_args
from audit_cli.models.recipe import Recipe
from audit_cli.version import __version__

FORMAT_VERSION = 1
METADATA_KEY = "unlearning_audit"
# Key of an output filter's document (MPRU, ``audit_cli.unlearn.mpru``) in its safetensors
# header; defined here so checkpoint loading can name a filter passed as a model.
FILTER_METADATA_KEY = "unlearning_audit_filter"
KINDS = ("original", "retrained", "unlearned", "imported")


@dataclass(frozen=True)
class Exclusion:
    """What a retrained model was trained without."""

    n_ids: int
    """How many training ids were left out."""
    ids_fingerprint: str
    """Fingerprint of the left-out ids (see ``fingerprint_ids``)."""
    forget_class: int | None = None
    """The class left out, for class forgetting; None for a set of examples."""


@dataclass(frozen=True)
class Unlearning:
    """How an unlearned model was derived from its parent."""

    method: str
    """Unlearning method registry name."""
    params: Mapping[str, Any]
    """The method's parameters, as used."""
    forget_fingerprint: str
    """Fingerprint of the forgotten ids."""
    n_forget: int
    """How many ids were forgotten."""
    parent_sha256: str
    """sha256 of the parent checkpoint file."""
    forget_class: int | None = None
    """The forgotten class, for class forgetting."""


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything the audit needs to know about a checkpoint besides its weights."""

    kind: str
    """original, retrained, unlearned or imported (weights from elsewhere)."""
    arch: str
    """Architecture registry name, plug-in ``package.module:factory``, or a scikit-learn
    model name (``hist-gradient-boosting``...; the file is then a .skops)."""
    arch_args: Mapping[str, Any]
    """Architecture arguments; for a scikit-learn model, the estimator parameters set."""
    num_classes: int
    """Width of the output layer."""
    input_shape: tuple[int, ...]
    """Shape of one input example."""
    dataset: DatasetSpec
    """How to load the dataset the model was trained on."""
    dataset_fingerprint: str
    """Content fingerprint of that dataset."""
    recipe: Recipe | None
    """How the network was trained; None when unknown (imported weights) and for
    scikit-learn models (their arch_args say everything, random_state included)."""
    trained_ids_fingerprint: str | None
    """Fingerprint of the ids the model was trained on."""
    n_trained: int | None
    """How many examples the model was trained on."""
    excluded: Exclusion | None = None
    """For retrained models: what was left out."""
    unlearning: Unlearning | None = None
    """For unlearned models: the method and its provenance."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Accuracies measured when the checkpoint was written."""
    tool_version: str = __version__
    """unlearning-audit version that wrote the checkpoint."""
    created: str = ""
    """UTC timestamp, ISO 8601."""
    format_version: int = FORMAT_VERSION
    """Version of this document's schema."""

    @classmethod
    def of(
        cls,
        kind: str,
        dataset: Dataset,
        *,
        arch: str,
        arch_args: Mapping[str, Any],
        recipe: Recipe | None,
        trained_ids_fingerprint: str | None,
        n_trained: int | None,
        **rest: Any,
    ) -> CheckpointMeta:
        """Metadata of a model of ``dataset``, which gives its classes, input shape, spec and
        fingerprint: the one place every writer (train, unlearn, the federated drivers, an
        imported model) builds metadata."""
        return cls(kind=kind, arch=arch, arch_args=arch_args, num_classes=dataset.num_classes,
                   input_shape=dataset.input_shape, dataset=dataset.spec, dataset_fingerprint=dataset.fingerprint,
                   recipe=recipe, trained_ids_fingerprint=trained_ids_fingerprint, n_trained=n_trained,
                   **rest)  # fmt: skip

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CheckpointError(f"checkpoint metadata: unknown kind {self.kind[:40]!r}")
        # Numbers the tool allocates or compares by: whole, positive, in range.
        if not _whole(self.num_classes, 2, 100_000):
            raise CheckpointError(f"checkpoint metadata: num_classes {self.num_classes!r} is not in 2..100000")
        if not self.input_shape or not all(_whole(d, 1, 1_000_000) for d in self.input_shape):
            raise CheckpointError(f"checkpoint metadata: input_shape {self.input_shape!r} is not a shape")
        if self.n_trained is not None and not _whole(self.n_trained, 1, 10**9):
            raise CheckpointError(f"checkpoint metadata: n_trained {str(self.n_trained)[:20]!r} is not a count")
        if not isinstance(self.dataset.options, Mapping):
            raise CheckpointError("checkpoint metadata: dataset options are not a table")
        # The audit builds shadows from the recipe: a recipe naming another architecture
        # than the weights (a plug-in, say) would smuggle in an import.
        if self.recipe is not None and self.recipe.arch != self.arch:
            raise CheckpointError(
                f"checkpoint metadata is inconsistent: weights are {self.arch!r}, recipe trains {self.recipe.arch!r}"
            )
        # Same types as the writer's (tuples, not JSON lists), so a loaded document
        # compares equal to the one that was saved.
        object.__setattr__(self, "arch_args", _resolve_args(self.arch, self.arch_args))
        if not self.created:
            object.__setattr__(self, "created", _now())

    def to_dict(self) -> dict:
        return {
            "format": "unlearning-audit/checkpoint",
            "format_version": self.format_version,
            "kind": self.kind,
            "arch": self.arch,
            "arch_args": {k: list(v) if isinstance(v, tuple) else v for k, v in self.arch_args.items()},
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "dataset": self.dataset.to_dict(),
            "dataset_fingerprint": self.dataset_fingerprint,
            "recipe": self.recipe.to_dict() if self.recipe else None,
            "trained_ids_fingerprint": self.trained_ids_fingerprint,
            "n_trained": self.n_trained,
            "excluded": _plain(self.excluded),
            "unlearning": _plain(self.unlearning),
            "metrics": dict(self.metrics),
            "tool_version": self.tool_version,
            "created": self.created,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckpointMeta:
        if not isinstance(data, Mapping):
            raise CheckpointError("checkpoint metadata is not a JSON object")
        longest = _longest_string(data)
        if longest > MAX_STRING:
            # Nothing the tool writes is this long; rendering it (audit inspect) took minutes.
            raise CheckpointError(f"checkpoint metadata holds a {longest}-character string (limit {MAX_STRING})")
        version = data.get("format_version")
        if not isinstance(version, int):
            raise CheckpointError("checkpoint metadata has no integer format_version")
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint metadata format {version} is newer than this tool understands ({FORMAT_VERSION})",
                hint="upgrade unlearning-audit",
            )
        try:
            return cls(
                kind=str(data["kind"]),
                arch=str(data["arch"]),
                arch_args=dict(data.get("arch_args") or {}),
                num_classes=int(data["num_classes"]),
                input_shape=tuple(int(d) for d in data["input_shape"]),
                dataset=DatasetSpec.from_dict(data["dataset"]),
                dataset_fingerprint=str(data["dataset_fingerprint"]),
                recipe=Recipe.from_dict(data["recipe"]) if data.get("recipe") else None,
                trained_ids_fingerprint=data.get("trained_ids_fingerprint"),
                n_trained=data.get("n_trained"),
                excluded=Exclusion(**data["excluded"]) if data.get("excluded") else None,
                unlearning=Unlearning(**data["unlearning"]) if data.get("unlearning") else None,
                metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
                tool_version=str(data.get("tool_version", "unknown")),
                created=str(data.get("created", "")),
                format_version=version,
            )
        except KeyError as exc:
            raise CheckpointError(f"checkpoint metadata lacks field {exc.args[0]!r}") from None
        except UsageError as exc:
            # A recipe or architecture argument this version does not know.
            raise CheckpointError(f"checkpoint metadata: {exc.message}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"checkpoint metadata is malformed: {str(exc)[:200]}") from None

    @classmethod
    def from_json(cls, text: str) -> CheckpointMeta:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise CheckpointError(f"checkpoint metadata is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _resolve_args(arch: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """Typed arguments of a network architecture or of a scikit-learn model (``arch_args``
    holds the estimator's parameters then; no recipe, which describes network training)."""
    if not is_plugin(arch) and arch not in ARCHITECTURES:
        # Imported here: scikit-learn's ensembles load only when a model is one of them.
        from audit_cli.models.sklearn_params import is_sklearn_arch, resolve_sklearn_params

        if is_sklearn_arch(arch):
            return resolve_sklearn_params(arch, args)
    return resolve_arch_args(arch, args)


MAX_STRING = 4096


def _longest_string(value: object, depth: int = 0) -> int:
    if isinstance(value, str):
        return len(value)
    if depth > 32:
        return 0
    if isinstance(value, Mapping):
        return max([_longest_string(k, depth + 1) for k in value] + [_longest_string(v, depth + 1)
                   for v in value.values()] + [0])  # fmt: skip
    if isinstance(value, (list, tuple)):
        return max([_longest_string(v, depth + 1) for v in value] + [0])
    return 0


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _now() -> str:
    """Current UTC time; SOURCE_DATE_EPOCH (reproducible builds) pins it, so a rebuilt
    checkpoint is byte-identical to the committed one."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and not (epoch.isascii() and epoch.isdigit() and len(epoch) <= 12):
        raise UsageError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, got {epoch[:20]!r}")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return when.isoformat(timespec="seconds")


def _plain(obj: Any) -> dict | None:
    if obj is None:
        return None
    out = dict(obj.__dict__)
    if "params" in out:
        out["params"] = dict(out["params"])
    return out
