"""``audit unlearn`` for output-filter methods (MPRU) as a plain function.

The model (a torch checkpoint or a scikit-learn .skops file, both loaded safely) is only
read: its outputs on the dataset are computed once, the filter is fitted on a labelled
sample of the retain set (training ids not of the forgotten class, drawn with the seed),
and the filter is written as a file of its own, tied to the model by the model file's
sha256. The before/after accuracies are those of the model's outputs and of the
filtered outputs, on the same splits as for weight-producing methods.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from audit_cli.data import Dataset, fingerprint_ids
from audit_cli.errors import UsageError
from audit_cli.families.model_file import load_model
from audit_cli.models.checkpoint import check_dataset, strip_prefix
from audit_cli.models.metadata import CheckpointMeta
from audit_cli.models.recipe import read_recipe_file
from audit_cli.models.sklearn_model import class_columns
from audit_cli.repair.unlearn_request import (
    UnlearnRequest,
    UnlearnResult,
    check_trained_on_all,
    request_dataset,
    resolve_forget,
    split_accuracy_from_logits,
)
from audit_cli.training.loop import resolve_device
from audit_cli.unlearn import MethodEntry, params_dict
from audit_cli.unlearn.mpru import FilterSpec, MPRUParams, apply_filter, fit_redistribution, retain_sample, save_filter


def fit_filter_checkpoint(request: UnlearnRequest, entry: MethodEntry, params: MPRUParams) -> UnlearnResult:
    """Fit the output filter of ``entry`` for ``request.model`` and write it to ``request.out``."""
    if request.forget is not None:
        raise UsageError(f"{entry.name} forgets a class: pass --forget-class C instead of --forget")
    if request.forget_class is None:
        raise UsageError(f"{entry.name} forgets a class: pass --forget-class C")
    if request.augmentation != "none":
        raise UsageError(f"method {entry.name!r} takes no augmentation policy (finetune, random-label and salun do)")
    if request.forget_clients or request.retrained is not None:
        raise UsageError(f"{entry.name} forgets a class of a centrally trained model; --forget-client and "
                         "--retrained are for a federated model's puf")  # fmt: skip
    forget_class = int(request.forget_class)

    logits, meta, sha256, dataset = model_outputs(request)
    forget, retain = resolve_forget(dataset, None, forget_class)
    check_trained_on_all(request.model, meta, dataset)

    start = time.perf_counter()
    sample = retain_sample(retain, params, request.seed)
    rows = dataset.rows(retain if sample is None else sample)
    bias = fit_redistribution(logits[rows], dataset.y[rows], forget_class, params)
    filtered = apply_filter(logits, forget_class, bias)
    seconds = time.perf_counter() - start

    before = split_accuracy_from_logits(logits, dataset, forget, retain, forget_class)
    after = split_accuracy_from_logits(filtered, dataset, forget, retain, forget_class)
    used: dict[str, Any] = params_dict(params)
    spec = FilterSpec(
        forget_class=forget_class,
        num_classes=dataset.num_classes,
        bias=bias,
        params=used | {"seed": request.seed},
        parent_sha256=sha256,
        dataset=dataset.spec,
        dataset_fingerprint=dataset.fingerprint,
        retain_sample_fingerprint=fingerprint_ids(sample) if sample is not None else None,
        n_retain_sample=len(sample) if sample is not None else 0,
        metrics={
            "forget_accuracy": after.forget,
            "retain_accuracy": after.retain,
            "test_accuracy": after.test,
            "seconds": seconds,
        },
        method=entry.name,
    )
    sha = save_filter(request.out, spec, overwrite=request.overwrite)
    return UnlearnResult(request.out, sha, spec, used, len(forget), before, after, seconds)


def model_outputs(request: UnlearnRequest) -> tuple[np.ndarray, CheckpointMeta | None, str, Dataset]:
    """The model's logits on every example (n, C), its metadata, its file's sha256, and the dataset.

    The format is sniffed from the bytes (``load_model``): a skops zip is a scikit-learn
    model (its log-probabilities are its logits), anything else a checkpoint.
    """
    path = Path(request.model)
    model = load_model(path)
    if model.sklearn is not None:
        for given, name in ((request.arch, "--arch"), (request.strip_prefix, "--strip-prefix"),
                            (request.recipe, "--recipe")):  # fmt: skip
            if given is not None:
                raise UsageError(f"{path} is a scikit-learn model; {name} is for torch checkpoints")
    elif request.strip_prefix:
        ckpt = model.checkpoint
        model = replace(model, checkpoint=replace(ckpt, state_dict=strip_prefix(ckpt.state_dict, request.strip_prefix)))
    # A recipe file tells weights without metadata their architecture's arguments.
    recipe = read_recipe_file(request.recipe) if request.recipe is not None else None
    dataset = request_dataset(request, model.meta)
    check_dataset(model.meta, dataset, path=path)
    if model.sklearn is not None:
        # A user's own model has no metadata: its classes must be labels of the --data dataset.
        class_columns(model.sklearn.estimator, dataset.num_classes)
    logits = model.view_logits(dataset, resolve_device(request.device), arch=request.arch, recipe=recipe)[0]
    return logits, model.meta, model.sha256, dataset
