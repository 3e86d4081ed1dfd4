"""``audit unlearn`` as a plain function: repair one checkpoint with an unlearning method.

Loads the model safely, resolves the forget set (an id file or a class) against the
dataset the model was trained on, runs the method (the same code the audit runs on its
shadow models, with K = 1), measures forget, retain and test accuracy before and after,
and writes the unlearned checkpoint with the method, its parameters, the forget-set
fingerprint and the parent's sha256 in its metadata.

Methods that produce an output filter instead of weights (MPRU) go to
``audit_cli.repair.filter_checkpoint``: same request, same before/after table, a filter file out.
"""

from __future__ import annotations

import time
from dataclasses import replace

from audit_cli.atomic import check_output_path
from audit_cli.data import fingerprint_ids
from audit_cli.errors import UsageError
from audit_cli.models.architectures import is_plugin
from audit_cli.models.checkpoint import (
    build_model_from_checkpoint,
    check_dataset,
    load_checkpoint,
    save_checkpoint,
    strip_prefix,
)
from audit_cli.models.metadata import CheckpointMeta, Unlearning
from audit_cli.models.recipe import read_recipe_file
from audit_cli.options import check_seed
from audit_cli.repair.filter_checkpoint import fit_filter_checkpoint
from audit_cli.repair.fl_unlearn import unlearn_federated
from audit_cli.repair.unlearn_request import (
    SplitAccuracy,
    UnlearnRequest,
    UnlearnResult,
    check_trained_on_all,
    request_dataset,
    resolve_forget,
    split_accuracy,
)
from audit_cli.training.loop import Ensemble, check_recipe_data, resolve_device
from audit_cli.unlearn import UnlearnTask, check_inert, get_method, params_dict, parse_params, unlearn_models

# The request and result types are part of this module's interface (``audit unlearn``).
__all__ = ["SplitAccuracy", "UnlearnRequest", "UnlearnResult", "resolve_forget", "split_accuracy",
           "unlearn_checkpoint"]  # fmt: skip


def unlearn_checkpoint(request: UnlearnRequest) -> UnlearnResult:
    # Fail on the output path before spending minutes on the work.
    out = check_output_path(request.out, overwrite=request.overwrite)
    check_seed(request.seed)
    entry = get_method(request.method)
    params = parse_params(entry, request.params)
    check_inert(entry, params, request.params)
    if entry.produces == "filter":
        return fit_filter_checkpoint(request, entry, params)
    if entry.external:
        raise UsageError(
            f"method {request.method!r} is your own unlearning code: run it on your model yourself",
            hint="then audit the result with audit run --trainer MODULE:FUNCTION --unlearner MODULE:FUNCTION",
        )
    device = resolve_device(request.device)

    parent = load_checkpoint(request.model)
    if request.strip_prefix:
        parent = replace(parent, state_dict=strip_prefix(parent.state_dict, request.strip_prefix))
    meta = parent.meta
    dataset = request_dataset(request, meta)
    check_dataset(meta, dataset, path=request.model)
    recipe = meta.recipe if meta is not None and meta.recipe is not None else None
    if recipe is not None and recipe.federation is not None:
        # Before resolve_forget: a federated model names clients, not an id file.
        if request.arch is not None and request.arch != recipe.arch:
            raise UsageError(f"--arch {request.arch} but the recipe trains {recipe.arch}")
        model = build_model_from_checkpoint(parent, arch=request.arch, dataset=dataset)
        originals = Ensemble.from_modules([model], recipe.arch, meta.arch_args, dataset.input_shape,
                                          dataset.num_classes, device)  # fmt: skip
        return unlearn_federated(request, entry, params, parent, dataset, recipe, originals)
    if request.forget_clients or request.retrained is not None:
        raise UsageError(f"--forget-client and --retrained forget clients of a federated model; {request.model} "
                         "was trained centrally", hint="pass --forget ids.txt or --forget-class C")  # fmt: skip
    forget, retain = resolve_forget(dataset, request.forget, request.forget_class)
    check_trained_on_all(request.model, meta, dataset)
    if request.recipe is not None:
        recipe = read_recipe_file(request.recipe)
        # Recorded in the unlearned checkpoint, the recipe trains its audit's shadows.
        check_recipe_data(recipe, dataset)
    if recipe is None:
        # Never invent one: a default recipe would be written into the unlearned checkpoint
        # as if the model had been trained with it, and its audit would train shadows unlike it.
        raise UsageError(
            f"{request.model} does not say how it was trained",
            hint="pass --recipe recipe.toml with its training recipe (docs/api.md), or audit it as it is with "
            "audit run --trainer",
        )
    arch = request.arch or recipe.arch
    if request.arch is not None and request.arch != recipe.arch:
        raise UsageError(f"--arch {request.arch} but the recipe trains {recipe.arch}")
    arch_args = meta.arch_args if meta is not None and arch == meta.arch else dict(recipe.arch_args)
    if meta is None and request.arch is None and is_plugin(arch):
        raise UsageError(f"the recipe names plug-in architecture {arch!r}; importing it would run code",
                         hint=f"pass --arch {arch} to trust and import it")  # fmt: skip
    model = build_model_from_checkpoint(parent, arch=request.arch or (arch if meta is None else None),
                                        arch_args=arch_args if meta is None else None, dataset=dataset)  # fmt: skip
    originals = Ensemble.from_modules([model], arch, arch_args, dataset.input_shape, dataset.num_classes, device)
    task = UnlearnTask(
        dataset=dataset,
        forget_ids=[forget],
        retain_ids=[retain],
        recipe=recipe,
        seeds=[request.seed],
        forget_class=request.forget_class,
        augmentation=request.augmentation,
        # A plug-in is imported only when the user named it with --arch.
        allow_plugin=request.arch is not None and request.arch == recipe.arch,
    )
    before = split_accuracy(originals, dataset, forget, retain, request.forget_class)
    start = time.perf_counter()
    unlearned = unlearn_models(originals, task, request.method, params)
    seconds = time.perf_counter() - start
    after = split_accuracy(unlearned, dataset, forget, retain, request.forget_class)
    used = params_dict(params) | ({"augmentation": request.augmentation} if entry.augmentable else {})
    new_meta = CheckpointMeta.of(
        "unlearned",
        dataset,
        arch=arch,
        arch_args=arch_args,
        recipe=recipe,
        # What the parent says it trained on; nothing when it does not say.
        trained_ids_fingerprint=meta.trained_ids_fingerprint if meta is not None else None,
        n_trained=meta.n_trained if meta is not None else None,
        unlearning=Unlearning(
            method=request.method,
            params=used | {"seed": request.seed},
            forget_fingerprint=fingerprint_ids(forget),
            n_forget=len(forget),
            parent_sha256=parent.sha256,
            forget_class=request.forget_class,
        ),
        metrics={
            "forget_accuracy": after.forget,
            "retain_accuracy": after.retain,
            "test_accuracy": after.test,
            "seconds": seconds,
        },
    )
    sha = save_checkpoint(out, unlearned.state_dict(0), new_meta, overwrite=request.overwrite)
    return UnlearnResult(out, sha, new_meta, used, len(forget), before, after, seconds)
