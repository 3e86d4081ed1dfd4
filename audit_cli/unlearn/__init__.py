"""Unlearning methods: one module per method behind one signature, and the registry.

``unlearn_models(originals, task, method, params)`` runs a weight-producing method on a
stack of K models (grouped into chunks of models whose forget and retain sets have the
same sizes, so they step together) and checks the result is finite. Output filters
(MPRU) register ``filter_outputs`` instead; ``unlearn_models`` refuses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from audit_cli.errors import UsageError
from audit_cli.models.recipe import AUGMENTATIONS
from audit_cli.training.loop import Ensemble, chunk_models, restack
from audit_cli.unlearn import (
    finetune,
    influence,
    l1_sparse,
    mpru,
    neggrad,
    neggrad_plus,
    own,
    prune,
    puf,
    random_label,
    retrain,
    salun,
    scrub,
    trw,
)
from audit_cli.unlearn.base import (
    MethodEntry,
    UnlearningSpec,
    UnlearnTask,
    check_augmentation,
    check_inert,
    inert_params,
    params_dict,
    parse_params,
    resolve_unlearning,
)

METHODS: dict[str, MethodEntry] = {}
# What a method that updates no weights is, in the refusals of the weight-update paths.
KIND = {"filter": "an output filter: audit run --filter", "external": "your own code: audit run --unlearner"}


def register(entry: MethodEntry) -> MethodEntry:
    if entry.name in METHODS:
        raise ValueError(f"unlearning method {entry.name!r} is registered twice")
    METHODS[entry.name] = entry
    return entry


for _module in (retrain, finetune, neggrad, neggrad_plus, random_label, salun, l1_sparse, scrub, prune, trw, mpru,
                influence, puf, own):  # fmt: skip
    register(_module.ENTRY)


def get_method(name: str) -> MethodEntry:
    entry = METHODS.get(name)
    if entry is None:
        raise UsageError(f"unknown unlearning method {name!r}", hint=f"methods: {', '.join(METHODS)}")
    return entry


class DivergedError(UsageError):
    """The method produced NaN or infinite weights (usually: learning rate too large)."""


def unlearn_models(
    originals: Ensemble,
    task: UnlearnTask,
    method: str,
    params: Any | Mapping[str, object] | None = None,
    *,
    chunk_size: int = 64,
) -> Ensemble:
    """Unlearn ``task`` from each of the K ``originals`` (left unchanged) with ``method``."""
    entry = get_method(method)
    if entry.produces != "weights":
        raise UsageError(f"method {method!r} does not update weights here (it is {KIND[entry.produces]})")
    entry.check_supports(task.kind)
    if task.augmentation != "none" and not entry.augmentable:
        raise UsageError(f"method {method!r} takes no augmentation policy (finetune, random-label and salun do)")
    if params is None or isinstance(params, Mapping):
        params = parse_params(entry, params)
    if originals.size != len(task.seeds):
        raise UsageError(f"{originals.size} models but {len(task.seeds)} forget/retain sets")
    chunks = chunk_models([(len(f), len(r)) for f, r in zip(task.forget_ids, task.retain_ids)], chunk_size)
    parts = [(chunk, entry.run(originals.select(chunk), task.select(chunk), params)) for chunk in chunks]
    result = restack(parts)
    bad = sorted(
        {k for t in result.params.values() for k in range(result.size) if not bool(torch.isfinite(t[k]).all())}
    )
    if bad:
        raise DivergedError(
            f"{method} diverged: model(s) {bad[:5]} have NaN or infinite weights",
            hint="lower the learning rate (--param lr=...)",
        )
    return result


__all__ = [
    "AUGMENTATIONS",
    "METHODS",
    "DivergedError",
    "MethodEntry",
    "UnlearnTask",
    "UnlearningSpec",
    "check_augmentation",
    "check_inert",
    "get_method",
    "inert_params",
    "params_dict",
    "parse_params",
    "register",
    "resolve_unlearning",
    "unlearn_models",
]
