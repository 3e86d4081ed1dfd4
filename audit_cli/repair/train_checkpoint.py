"""``audit train`` as a plain function: train one model and save it as a checkpoint.

Trains an original model on the whole training split, or a retrained model without a
forget set (``exclude_ids``) or a whole class (``exclude_class``): the gold standard the
audit compares unlearned models with. The checkpoint records the recipe, the dataset and
the fingerprint of the ids trained on, so later commands can rebuild shadows the same way.

A :class:`SklearnRecipe` fits a scikit-learn model instead (trees for tabular data) and
writes a .skops file with the same metadata (no network recipe; the estimator's
parameters, random_state included, are its arch_args).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audit_cli.atomic import check_output_path
from audit_cli.data import Dataset, fingerprint_ids, load_dataset, read_id_file
from audit_cli.errors import IdFileError, UsageError
from audit_cli.models.checkpoint import save_checkpoint
from audit_cli.models.metadata import CheckpointMeta, Exclusion
from audit_cli.models.recipe import Recipe
from audit_cli.models.sklearn_model import SklearnRecipe, fit_sklearn, save_sklearn, sklearn_logits
from audit_cli.training.loop import Ensemble, Progress, predict_logits, resolve_device, train_models


@dataclass(frozen=True)
class TrainRequest:
    """What to train and where to put it."""

    out: Path
    """Output checkpoint (.safetensors; .skops for a scikit-learn model)."""
    data: str = "digits"
    """Dataset registry name or a .parquet / .npz path."""
    data_options: Mapping[str, object] = field(default_factory=dict)
    """Dataset options (``--data-opt``)."""
    data_root: Path | None = None
    """Root of torchvision datasets."""
    download: bool = False
    """Allow downloading a torchvision dataset into ``data_root``."""
    recipe: Recipe | SklearnRecipe = field(default_factory=Recipe)
    """How to train: a network's recipe, or a scikit-learn model and its parameters."""
    exclude_ids: Path | None = None
    """Id file of training examples to leave out (a retrained model)."""
    exclude_class: int | None = None
    """A class whose training examples are all left out."""
    overwrite: bool = False
    """Replace ``out`` if it exists."""
    device: str = "auto"
    """cpu, cuda, cuda:N or auto."""


@dataclass(frozen=True)
class TrainResult:
    """What was trained, how well, and where it was written."""

    path: Path
    sha256: str
    meta: CheckpointMeta
    n_trained: int
    n_excluded: int
    train_accuracy: float
    test_accuracy: float
    seconds: float


def excluded_training_ids(
    dataset: Dataset, exclude_ids: Path | None, exclude_class: int | None
) -> tuple[np.ndarray, Exclusion | None]:
    """Training ids to use, and a description of what was left out (None: nothing)."""
    if exclude_ids is not None and exclude_class is not None:
        raise UsageError("give either --exclude or --exclude-class, not both")
    train_ids = dataset.train_ids
    if exclude_ids is not None:
        excluded = read_id_file(exclude_ids)
        dataset.rows(excluded)  # every id must exist
        in_test = np.setdiff1d(excluded, train_ids)
        if len(in_test):
            raise IdFileError(
                f"{exclude_ids}: {len(in_test)} id(s) are in the test split, first {int(in_test[0])}; "
                "only training examples can be left out"
            )
        forget_class = None
    elif exclude_class is not None:
        excluded = dataset.ids_of_class(exclude_class, split="train")
        forget_class = exclude_class
    else:
        return train_ids, None
    kept = np.setdiff1d(train_ids, excluded)
    if len(kept) == 0:
        raise UsageError("leaving those ids out leaves no training examples")
    return kept, Exclusion(n_ids=len(excluded), ids_fingerprint=fingerprint_ids(excluded), forget_class=forget_class)


def train_checkpoint(request: TrainRequest, progress: Progress | None = None) -> TrainResult:
    """Load the data, train one model with the recipe, evaluate it and save it."""
    # A device name is checked for every model (a scikit-learn one trains on the CPU).
    device = resolve_device(request.device)
    if isinstance(request.recipe, SklearnRecipe):
        return _train_sklearn(request, request.recipe)
    # Fail on the output path before spending minutes on the work.
    out = check_output_path(request.out, overwrite=request.overwrite)
    dataset = load_dataset(request.data, request.data_options, data_root=request.data_root, download=request.download)
    train_ids, exclusion = excluded_training_ids(dataset, request.exclude_ids, request.exclude_class)
    recipe = request.recipe
    start = time.perf_counter()
    # The recipe comes from the user's own flags here, so a plug-in it names may be imported.
    ensemble = train_models(
        dataset, recipe, [train_ids], [recipe.seed], device=device, progress=progress, allow_plugin=True
    )
    return save_trained(out, ensemble, dataset, recipe, train_ids, exclusion, time.perf_counter() - start,
                        overwrite=request.overwrite)  # fmt: skip


def save_trained(out: Path, ensemble: Ensemble, dataset: Dataset, recipe: Recipe, train_ids: np.ndarray,
                 exclusion: Exclusion | None, seconds: float, *, overwrite: bool) -> TrainResult:  # fmt: skip
    """A freshly trained network (``audit train``, ``audit fl train``): refused if it diverged,
    else saved with its metadata and accuracies."""
    check_finite(ensemble)
    logits = predict_logits(ensemble, dataset.x)[0].numpy()
    meta = trained_meta(dataset, recipe.arch, recipe.arch_args, recipe, train_ids, exclusion, logits)
    sha = save_checkpoint(out, ensemble.state_dict(0), meta, overwrite=overwrite)
    return train_result(out, sha, meta, exclusion, seconds)


def check_finite(ensemble: Ensemble) -> None:
    """Refuse to save a model whose training diverged (NaN or infinite weights or statistics)."""
    if not ensemble.finite():
        raise UsageError("training diverged: the model has NaN or infinite weights; nothing was written",
                         hint="lower --lr (or --momentum)")  # fmt: skip


def _train_sklearn(request: TrainRequest, recipe: SklearnRecipe) -> TrainResult:
    """Fit a scikit-learn model on the training split (minus exclusions) and save it as .skops."""
    out = check_output_path(request.out, overwrite=request.overwrite, suffix=".skops")
    dataset = load_dataset(request.data, request.data_options, data_root=request.data_root, download=request.download)
    if dataset.modality == "image":
        raise UsageError(
            f"{recipe.arch} takes flat features; {dataset.name!r} is images",
            hint="train a network (--arch cnn, resnet18, ...) on images",
        )
    train_ids, exclusion = excluded_training_ids(dataset, request.exclude_ids, request.exclude_class)
    rows_train = dataset.rows(train_ids)
    start = time.perf_counter()
    est = fit_sklearn(recipe.arch, recipe.params, dataset.x[rows_train], dataset.y[rows_train], recipe.seed)
    seconds = time.perf_counter() - start
    logits = sklearn_logits(est, dataset.x, dataset.num_classes)
    meta = trained_meta(dataset, recipe.arch, recipe.arch_args, None, train_ids, exclusion, logits)
    sha = save_sklearn(est, meta, out, overwrite=request.overwrite)
    return train_result(out, sha, meta, exclusion, seconds)


def trained_meta(
    dataset: Dataset,
    arch: str,
    arch_args: Mapping[str, object],
    recipe: Recipe | None,
    train_ids: np.ndarray,
    exclusion: Exclusion | None,
    logits: np.ndarray,
) -> CheckpointMeta:
    """Metadata of a freshly trained model, with train, test and left-out accuracy from its logits."""
    correct = np.asarray(logits).argmax(-1) == dataset.y

    def acc(ids: np.ndarray) -> float:
        return float(correct[dataset.rows(ids)].mean()) if len(ids) else float("nan")

    metrics = {"train_accuracy": acc(train_ids), "test_accuracy": acc(dataset.test_ids)}
    if exclusion is not None:
        metrics["excluded_accuracy"] = acc(np.setdiff1d(dataset.train_ids, train_ids))
    return CheckpointMeta.of(
        "retrained" if exclusion else "original",
        dataset,
        arch=arch,
        arch_args=arch_args,
        recipe=recipe,
        trained_ids_fingerprint=fingerprint_ids(train_ids),
        n_trained=len(train_ids),
        excluded=exclusion,
        metrics=metrics,
    )


def train_result(
    out: Path, sha: str, meta: CheckpointMeta, exclusion: Exclusion | None, seconds: float
) -> TrainResult:
    return TrainResult(
        path=out,
        sha256=sha,
        meta=meta,
        n_trained=int(meta.n_trained),
        n_excluded=exclusion.n_ids if exclusion else 0,
        train_accuracy=meta.metrics["train_accuracy"],
        test_accuracy=meta.metrics["test_accuracy"],
        seconds=seconds,
    )
