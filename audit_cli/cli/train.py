"""`audit train`: train an original model, or a retrained one without a forget set or a class."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from pathlib import Path

import typer

from audit_cli.cli.common import (
    PAIR,
    OutputFormat,
    cli_errors,
    data_opt_option,
    data_option,
    data_root_option,
    device_option,
    download_option,
    format_option,
    output_option,
    overwrite_option,
    parse_pairs,
    print_json,
    progress_bar,
    progress_option,
    quiet_option,
    seed_option,
    stdout_console,
)
from audit_cli.errors import UsageError
from audit_cli.models.recipe import OPTIMIZERS, SCHEDULES, TRAINING_AUGMENTATIONS, Recipe, check_momentum
from audit_cli.models.sklearn_model import SklearnRecipe
from audit_cli.models.sklearn_params import is_sklearn_arch
from audit_cli.repair.train_checkpoint import TrainRequest, TrainResult, train_checkpoint

RECIPE_DEFAULTS: dict[str, object] = {f.name: f.default for f in fields(Recipe) if f.default is not MISSING}
"""The network recipe's defaults: the options' defaults, and what "not given" means."""

NETWORK_FLAGS = {"optimizer": "--optimizer", "lr": "--lr", "momentum": "--momentum", "weight_decay": "--weight-decay",
                 "schedule": "--schedule", "epochs": "--epochs", "batch_size": "--batch-size",
                 "augmentation": "--augment"}  # fmt: skip
"""Recipe fields a network takes and a scikit-learn model does not, with their flags."""


def training_recipe(
    arch: str, arch_args: Mapping[str, object], seed: int, network: Mapping[str, object]
) -> Recipe | SklearnRecipe:
    """A network's recipe, or a scikit-learn model's; a scikit-learn model refuses any
    network option set away from its default (it would silently do nothing)."""
    if is_sklearn_arch(arch):
        given = [NETWORK_FLAGS[k] for k in NETWORK_FLAGS if k in network and network[k] != RECIPE_DEFAULTS[k]]
        if given:
            raise UsageError(
                f"{given[0]} trains networks; a {arch} model takes no such option",
                hint="set its parameters with --arch-arg name=value",
            )
        return SklearnRecipe(arch=arch, params=dict(arch_args), seed=seed)
    check_momentum(network.get("optimizer", RECIPE_DEFAULTS["optimizer"]), network.get("momentum", Recipe.momentum),
                   ("--momentum", "--optimizer"))  # fmt: skip
    return Recipe(arch=arch, arch_args=dict(arch_args), seed=seed, **network)  # type: ignore[arg-type]


def train_summary(result: TrainResult) -> dict:
    """What ``--format json`` prints: the written file and how the model did."""
    meta = result.meta
    excluded = meta.excluded
    return {
        "path": str(result.path),
        "sha256": result.sha256,
        "kind": meta.kind,
        "arch": meta.arch,
        "dataset": meta.dataset.name,
        "n_trained": result.n_trained,
        "excluded": None
        if excluded is None
        else {"class": excluded.forget_class, "n_ids": excluded.n_ids, "ids_fingerprint": excluded.ids_fingerprint},
        "train_accuracy": result.train_accuracy,
        "test_accuracy": result.test_accuracy,
        "metrics": dict(meta.metrics),
        "seconds": result.seconds,
    }


def print_result(result: TrainResult) -> None:
    console = stdout_console()
    meta = result.meta
    what = meta.kind
    if meta.excluded is not None:
        ex = meta.excluded
        left_out = f"class {ex.forget_class}" if ex.forget_class is not None else "a forget set"
        what += f" without {left_out} ({ex.n_ids} examples)"
    where = f"{meta.arch} on {meta.dataset.name}, {result.n_trained} examples"
    console.print(f"trained {what}: {where}, {result.seconds:.1f}s")
    console.print(f"train accuracy {result.train_accuracy:.4f}   test accuracy {result.test_accuracy:.4f}")
    if "excluded_accuracy" in meta.metrics:
        console.print(f"accuracy on the left-out examples {meta.metrics['excluded_accuracy']:.4f}")
    console.print(f"wrote {result.path} (sha256 {result.sha256[:16]}...)")


D = RECIPE_DEFAULTS
AUGMENT_HELP = f"{', '.join(TRAINING_AUGMENTATIONS)} (images only: digits-images, torchvision datasets)."


@cli_errors
def train_cmd(
    output: Path = output_option("Checkpoint to write (.safetensors; .skops for a scikit-learn model)."),
    data: str = data_option("digits", "Dataset name or a .parquet/.npz file."),
    data_opt: list[str] | None = data_opt_option(),
    data_root: Path | None = data_root_option(),
    download: bool = download_option(),
    arch: str = typer.Option(
        D["arch"],
        "--arch",
        metavar="NAME",
        help="Architecture name, plug-in package.module:factory, or a scikit-learn model "
        "(hist-gradient-boosting, random-forest, extra-trees, decision-tree; tabular data).",
    ),
    arch_arg: list[str] | None = typer.Option(
        None,
        "--arch-arg",
        metavar=PAIR,
        help="Architecture argument name=value, e.g. hidden=256,256; for a scikit-learn model, "
        "an estimator parameter, e.g. max_iter=200.",
    ),
    optimizer: str = typer.Option(D["optimizer"], "--optimizer", metavar="|".join(OPTIMIZERS), help="Optimizer."),
    lr: float = typer.Option(D["lr"], "--lr", metavar="FLOAT", help="Learning rate."),
    momentum: float = typer.Option(D["momentum"], "--momentum", metavar="FLOAT", help="SGD momentum."),
    weight_decay: float = typer.Option(D["weight_decay"], "--weight-decay", metavar="FLOAT", help="Weight decay."),
    schedule: str = typer.Option(
        D["schedule"], "--schedule", metavar="|".join(SCHEDULES), help="Learning-rate schedule."
    ),
    epochs: int = typer.Option(D["epochs"], "--epochs", metavar="INT", help="Training epochs."),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", metavar="INT", help="Examples per step."),
    augmentation: str = typer.Option(D["augmentation"], "--augment", metavar="POLICY", help=AUGMENT_HELP),
    seed: int = seed_option(0, "Seed for initial weights and data order."),
    exclude: Path | None = typer.Option(
        None, "--exclude", metavar="FILE", help="Id file of training examples to leave out (retrained model)."
    ),
    exclude_class: int | None = typer.Option(
        None, "--exclude-class", metavar="CLASS", help="Leave out every training example of this class."
    ),
    overwrite: bool = overwrite_option(),
    device: str = device_option(),
    quiet: bool = quiet_option(),
    progress: str = progress_option(),
    output_format: OutputFormat = format_option(),
) -> None:
    """Train an original model, or a retrained one without a forget set or a class."""
    network = dict(optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay, schedule=schedule,
                   epochs=epochs, batch_size=batch_size, augmentation=augmentation)  # fmt: skip
    request = TrainRequest(
        out=output,
        data=data,
        data_options=parse_pairs(data_opt, "--data-opt"),
        data_root=data_root,
        download=download,
        recipe=training_recipe(arch, parse_pairs(arch_arg, "--arch-arg"), seed, network),
        exclude_ids=exclude,
        exclude_class=exclude_class,
        overwrite=overwrite,
        device=device,
    )
    with progress_bar("training", quiet, mode=progress, every=10) as update:
        result = train_checkpoint(request, progress=update)
    if output_format is OutputFormat.json:
        print_json(train_summary(result))
    else:
        print_result(result)
