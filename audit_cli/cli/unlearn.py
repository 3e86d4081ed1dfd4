"""`audit unlearn`: repair a model with one of the methods (mpru: fit an output filter instead)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from audit_cli.cli.common import (
    FLAG,
    OutputFormat,
    cli_errors,
    data_opt_option,
    data_option,
    data_root_option,
    device_option,
    format_option,
    output_option,
    overwrite_option,
    param_option,
    parse_pairs,
    print_json,
    recipe_option,
    seed_option,
    stdout_console,
    strip_prefix_option,
)
from audit_cli.models.recipe import AUGMENTATIONS
from audit_cli.repair.unlearn_checkpoint import unlearn_checkpoint
from audit_cli.repair.unlearn_request import UnlearnRequest, UnlearnResult
from audit_cli.unlearn.mpru import FilterSpec


def accuracy_rows(result: UnlearnResult, forget_class: int | None) -> list[tuple[str, float, float]]:
    """(label, before, after) for the forget, retain and test sets (and the class's test examples)."""
    b, a = result.before, result.after
    rows = [("forget set", b.forget, a.forget), ("retain set", b.retain, a.retain)]
    rows.append(("test (retained classes)" if forget_class is not None else "test", b.test, a.test))
    if a.forget_class_test is not None:
        rows.append((f"test, class {forget_class}", b.forget_class_test, a.forget_class_test))
    return rows


def unlearn_summary(result: UnlearnResult, method: str, forget_class: int | None) -> dict:
    """What ``--format json`` prints: the written file, the parameters used, and accuracies."""
    b, a = result.before, result.after
    accuracy = {
        "forget": {"before": b.forget, "after": a.forget},
        "retain": {"before": b.retain, "after": a.retain},
        "test": {"before": b.test, "after": a.test},
    }
    if a.forget_class_test is not None:
        accuracy["forget_class_test"] = {"before": b.forget_class_test, "after": a.forget_class_test}
    clients = result.clients
    return {
        "path": str(result.path),
        "sha256": result.sha256,
        "kind": "filter" if isinstance(result.meta, FilterSpec) else "checkpoint",
        "clients": None if clients is None else {
            "forgotten": list(clients.clients),
            "unlearning_accuracy": {"before": 1 - b.forget, "after": 1 - a.forget},
            "recovery_rounds": clients.recovery_rounds,
            "target_accuracy": clients.target_accuracy,
            "mia": {"svc": {"before": clients.mia_before.svc, "after": clients.mia_after.svc},
                    "loss": {"before": clients.mia_before.loss, "after": clients.mia_after.loss}},
        },
        "method": method,
        "params": dict(result.params),
        "forget_class": forget_class,
        "n_forget": result.n_forget,
        "accuracy": accuracy,
        "seconds": result.seconds,
    }


@cli_errors
def unlearn_cmd(
    model: Path = typer.Option(
        ..., "--model", "-m", metavar="FILE", help="Checkpoint to repair (.safetensors, .pt; a .skops model for mpru)."
    ),
    output: Path = output_option("Unlearned checkpoint to write (.safetensors); for mpru, the filter file."),
    method: str = typer.Option(..., "--method", metavar="NAME", help="Unlearning method (see `audit methods`)."),
    param: list[str] | None = param_option("Method parameter name=value (repeatable)."),
    forget: Path | None = typer.Option(
        None, "--forget", metavar="FILE", help="Id file of training examples to forget."
    ),
    forget_class: int | None = typer.Option(
        None, "--forget-class", metavar="CLASS", help="Forget every example of this class."
    ),
    forget_client: list[int] | None = typer.Option(
        None, "--forget-client", metavar="CLIENT", help="A federated model: forget this client (repeatable; puf)."
    ),
    retrained: Path | None = typer.Option(
        None, "--retrained", metavar="FILE",
        help="A federated model: the federation retrained without the clients; PUF recovery stops at its test "
        "accuracy.",
    ),
    data: str | None = data_option(None, "Dataset override (default: from the checkpoint)."),
    data_opt: list[str] | None = data_opt_option(),
    data_root: Path | None = data_root_option(),
    download: bool = typer.Option(False, "--download", metavar=FLAG, help="Allow downloading a torchvision dataset."),
    arch: str | None = typer.Option(
        None, "--arch", metavar="NAME", help="Architecture, for checkpoints without metadata."
    ),
    recipe: Path | None = recipe_option(),
    strip_prefix: str | None = strip_prefix_option(),
    augmentation: str = typer.Option(
        "none",
        "--augment",
        metavar="POLICY",
        help=f"{', '.join(AUGMENTATIONS)} (finetune, random-label, salun; images only).",
    ),
    seed: int = seed_option(0, "Seed of the method's data order and random labels."),
    overwrite: bool = overwrite_option(),
    device: str = device_option(),
    output_format: OutputFormat = format_option(),
) -> None:
    """Repair a model: unlearn a forget set or a class with one of the methods (mpru: fit an output filter)."""
    result = unlearn_checkpoint(
        UnlearnRequest(
            model=model,
            out=output,
            method=method,
            params=parse_pairs(param, "--param"),
            forget=forget,
            forget_class=forget_class,
            data=data,
            data_options=parse_pairs(data_opt, "--data-opt"),
            data_root=data_root,
            download=download,
            arch=arch,
            recipe=recipe,
            strip_prefix=strip_prefix,
            augmentation=augmentation,
            seed=seed,
            overwrite=overwrite,
            device=device,
            forget_clients=tuple(forget_client or ()),
            retrained=retrained,
        )
    )
    if output_format is OutputFormat.json:
        print_json(unlearn_summary(result, method, forget_class))
        return
    console = stdout_console()
    what = f"class {forget_class}" if forget_class is not None else f"{result.n_forget} examples"
    if result.clients is not None:
        what = f"client(s) {', '.join(map(str, result.clients.clients))} ({result.n_forget} examples)"
    console.print(f"unlearned {what} with {method} in {result.seconds:.2f}s")
    table = Table("accuracy", "before", "after")
    for name, before, after in accuracy_rows(result, forget_class):
        table.add_row(name, f"{before:.4f}", f"{after:.4f}")
    console.print(table)
    if result.clients is not None:
        print_client_forgetting(console, result)
    console.print("parameters: " + ", ".join(f"{k}={v}" for k, v in result.params.items()))
    if isinstance(result.meta, FilterSpec):
        console.print(f"wrote output filter {result.path} (sha256 {result.sha256[:16]}...); {model} is unchanged")
        console.print("apply it to the model's outputs with audit run --filter")
    else:
        console.print(f"wrote {result.path} (sha256 {result.sha256[:16]}...)")


def print_client_forgetting(console, result: UnlearnResult) -> None:
    """What the PUF paper reports: UA, recovery rounds and the attacks' member rates."""
    c, b, a = result.clients, result.before, result.after
    console.print(f"unlearning accuracy (1 - accuracy on the clients' data): {1 - b.forget:.4f} -> {1 - a.forget:.4f}")
    if c.recovery_rounds is not None:
        aim = f" (until test accuracy {c.target_accuracy:.4f}, the retrained federation's)" if c.target_accuracy else ""
        console.print(f"recovery rounds: {c.recovery_rounds}{aim}")
    console.print(f"members by the SVC attack: {c.mia_before.svc:.3f} -> {c.mia_after.svc:.3f}; "
                  f"by the loss threshold: {c.mia_before.loss:.3f} -> {c.mia_after.loss:.3f} (share of the clients' "
                  "examples)")  # fmt: skip
