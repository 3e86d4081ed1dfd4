"""What ``audit unlearn`` is asked and what it answers, shared by the two ways a model is
repaired (new weights: audit_cli/repair/unlearn_checkpoint.py; an output filter:
audit_cli/repair/filter_checkpoint.py): the request, the before/after accuracy table, the forget
set resolved against the dataset, and the checks both make before any work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audit_cli.data import Dataset, as_ids, fingerprint_ids, load_dataset, read_id_file
from audit_cli.errors import IdFileError, UsageError
from audit_cli.models.metadata import CheckpointMeta
from audit_cli.options import check_data_options
from audit_cli.training.loop import Ensemble, accuracy, predict_logits
from audit_cli.unlearn.mpru import FilterSpec


@dataclass(frozen=True)
class UnlearnRequest:
    """What to unlearn from which model, and where to write the result."""

    model: Path
    """The checkpoint to repair (.safetensors, .pt; a .skops model for filter methods)."""
    out: Path
    """Output checkpoint (.safetensors); for a filter method, the filter file (.safetensors)."""
    method: str
    """Unlearning method registry name."""
    params: Mapping[str, object] = field(default_factory=dict)
    """Method parameters (``--param``), defaults from the method."""
    forget: Path | None = None
    """Id file of training examples to forget."""
    forget_class: int | None = None
    """A class to forget entirely."""
    data: str | None = None
    """Dataset override; default: the one recorded in the checkpoint."""
    data_options: Mapping[str, object] = field(default_factory=dict)
    data_root: Path | None = None
    download: bool = False
    arch: str | None = None
    """Architecture, for checkpoints without metadata."""
    strip_prefix: str | None = None
    """A prefix a wrapper added to every weight's key (``module.``), removed on loading."""
    recipe: Path | None = None
    """For a checkpoint without a training recipe: a recipe file saying how it was trained
    (methods such as retrain replay it, and the unlearned checkpoint records it)."""
    augmentation: str = "none"
    """Augmentation policy for finetune, random-label and salun (images only)."""
    seed: int = 0
    """Seed of the method's data order and random labels."""
    overwrite: bool = False
    device: str = "auto"
    forget_clients: tuple[int, ...] = ()
    """A federated model: the clients to forget (their examples are the forget set)."""
    retrained: Path | None = None
    """A federated model: the federation retrained without the clients; PUF's recovery
    stops at its test accuracy."""


@dataclass(frozen=True)
class SplitAccuracy:
    forget: float
    retain: float
    test: float
    """Test accuracy; for class forgetting, on the retained classes only."""
    forget_class_test: float | None = None
    """For class forgetting: accuracy on test examples of the forgotten class."""


@dataclass(frozen=True)
class UnlearnResult:
    path: Path
    sha256: str
    meta: CheckpointMeta | FilterSpec
    """The written checkpoint's metadata; for a filter method, the filter."""
    params: dict[str, Any]
    n_forget: int
    before: SplitAccuracy
    after: SplitAccuracy
    seconds: float
    clients: Any = None
    """A federated model: what forgetting the clients did (fl_unlearn.ClientForgetting)."""


def resolve_forget(
    dataset: Dataset, forget: Path | np.ndarray | None, forget_class: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(forget ids, retain ids) within the training split; ``forget`` is an id file, or ids
    in memory (from Python)."""
    if (forget is None) == (forget_class is None):
        raise UsageError("give exactly one of --forget ids.txt or --forget-class C")
    train_ids = dataset.train_ids
    if forget is not None:
        ids = read_id_file(forget) if isinstance(forget, (str, Path)) else as_ids(forget)
        forget = forget if isinstance(forget, (str, Path)) else "forget ids"
        dataset.rows(ids)
        outside = np.setdiff1d(ids, train_ids)
        if len(outside):
            raise IdFileError(
                f"{forget}: {len(outside)} id(s) are not training examples, first {int(outside[0])}; "
                "a model can only forget what it was trained on"
            )
    else:
        ids = dataset.ids_of_class(int(forget_class), split="train")
        if len(ids) == 0:
            raise UsageError(f"class {forget_class} has no training examples")
    retain = np.setdiff1d(train_ids, ids)
    if len(retain) == 0:
        raise UsageError("forgetting those ids leaves no retain set")
    return ids, retain


def split_accuracy(
    ens: Ensemble, dataset: Dataset, forget: np.ndarray, retain: np.ndarray, forget_class: int | None
) -> SplitAccuracy:
    return split_accuracy_from_logits(predict_logits(ens, dataset.x)[0], dataset, forget, retain, forget_class)


def split_accuracy_from_logits(
    logits: torch.Tensor | np.ndarray,
    dataset: Dataset,
    forget: np.ndarray,
    retain: np.ndarray,
    forget_class: int | None,
) -> SplitAccuracy:
    """Accuracies from one model's outputs (n, C) on every example (any monotone scores)."""
    logits = torch.as_tensor(logits)

    def acc(ids: np.ndarray) -> float:
        rows = dataset.rows(ids)
        return float(accuracy(logits[rows][None], dataset.y[rows])[0]) if len(rows) else float("nan")

    test = dataset.test_ids
    if forget_class is None:
        return SplitAccuracy(acc(forget), acc(retain), acc(test))
    test_labels = dataset.y[dataset.rows(test)]
    return SplitAccuracy(
        acc(forget), acc(retain), acc(test[test_labels != forget_class]), acc(test[test_labels == forget_class])
    )


def request_dataset(request: UnlearnRequest, meta: CheckpointMeta | None) -> Dataset:
    """The dataset of the request (--data), else the one the model's metadata records."""
    if request.data is None and meta is None:
        raise UsageError(f"{request.model} carries no metadata", hint="pass --data (and --arch) to say what it is")
    check_data_options(request.data, request.data_options)
    if request.data is not None:
        return load_dataset(request.data, request.data_options, data_root=request.data_root, download=request.download)
    return load_dataset(meta.dataset, data_root=request.data_root, download=request.download)


def check_trained_on_all(path: Path, meta: CheckpointMeta | None, dataset: Dataset) -> None:
    if meta is not None and meta.trained_ids_fingerprint not in (None, fingerprint_ids(dataset.train_ids)):
        raise UsageError(
            f"{path} was not trained on the whole training split (it is {meta.kind}); "
            "unlearning assumes the model saw every training id",
        )
