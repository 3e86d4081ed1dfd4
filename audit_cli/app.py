"""The ``audit`` command line: thin Typer commands that parse options and call plain functions.

Domain errors are caught once, here, and become one line on stderr plus an exit code
(see ``audit_cli.errors.ExitCode``). Results go to stdout; messages and progress to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from audit_cli import __version__
from audit_cli.errors import AuditError, ExitCode, UsageError

EXIT_CODES_HELP = (
    "Exit codes: 0 pass, 1 threshold crossed, 2 usage or input error, 3 inconclusive, "
    "4 unsafe artifact refused, 70 internal error, 130 interrupted."
)

app = typer.Typer(
    name="audit",
    help="Privacy audit for machine unlearning. " + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def stderr_console() -> Console:
    # Created per call so tests that capture stderr (CliRunner) see the output.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def cli_errors(fn: F) -> F:
    """Turn domain errors into one stderr line and their exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        err = stderr_console()
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except AuditError as exc:
            # Messages quote user input (id file lines, paths): never read them as markup.
            err.print(f"[bold red]error:[/] {escape(exc.message)}")
            if exc.hint:
                err.print(f"[dim]hint:[/] {escape(exc.hint)}")
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            err.print("interrupted; nothing partial was written")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:  # a bug: say so plainly, details on request
            err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}")
            if os.environ.get("AUDIT_DEBUG"):
                err.print(traceback.format_exc())
            else:
                err.print("[dim]hint:[/] set AUDIT_DEBUG=1 for the traceback, and please report it")
            raise typer.Exit(int(ExitCode.INTERNAL)) from None

    return wrapper  # type: ignore[return-value]


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; malformed pairs are usage errors."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects name=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


@contextmanager
def progress_bar(label: str, quiet: bool, unit: str = "model-epochs") -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr while the block runs; yields its update callback, or
    None when quiet or stderr is not a terminal (CI logs stay clean)."""
    console = stderr_console()
    if quiet or not console.is_terminal:
        yield None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"unlearning-audit {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Privacy audit for machine unlearning."""


DataOpt = typer.Option(None, "--data-opt", help="Dataset option name=value (repeatable), e.g. num_samples=2000.")


@app.command("train")
@cli_errors
def train_cmd(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Checkpoint to write (.safetensors; .skops for a scikit-learn model)."
    ),
    data: str = typer.Option("digits", "--data", help="Dataset name or a .parquet/.npz file."),
    data_opt: list[str] | None = DataOpt,
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder of torchvision datasets."),
    download: bool = typer.Option(
        False, "--download", help="Allow downloading a torchvision dataset into --data-root."
    ),
    arch: str = typer.Option(
        "mlp",
        "--arch",
        help="Architecture name, plug-in package.module:factory, or a scikit-learn model "
        "(hist-gradient-boosting, random-forest, extra-trees, decision-tree; tabular data).",
    ),
    arch_arg: list[str] | None = typer.Option(
        None,
        "--arch-arg",
        help="Architecture argument name=value, e.g. hidden=256,256; for a scikit-learn model, "
        "an estimator parameter, e.g. max_iter=200.",
    ),
    optimizer: str = typer.Option("adam", help="adam, adamw or sgd."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate."),
    momentum: float = typer.Option(0.9, help="SGD momentum."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", help="Weight decay."),
    schedule: str = typer.Option("constant", help="constant or cosine."),
    epochs: int = typer.Option(60, help="Training epochs."),
    batch_size: int = typer.Option(64, "--batch-size", help="Examples per step."),
    augmentation: str = typer.Option("none", "--augment", help="none, flip or crop+flip (images only)."),
    seed: int = typer.Option(0, help="Seed for initial weights and data order."),
    exclude: Path | None = typer.Option(
        None, "--exclude", help="Id file of training examples to leave out (retrained model)."
    ),
    exclude_class: int | None = typer.Option(
        None, "--exclude-class", help="Leave out every training example of this class."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train an original model, or a retrained one without a forget set or a class."""
    from audit_cli.models.sklearn_model import SklearnRecipe, is_sklearn_arch
    from audit_cli.train_checkpoint import TrainRequest, train_checkpoint
    from audit_cli.training import Recipe

    network_flags = {
        "--optimizer": (optimizer, "adam"),
        "--lr": (lr, 1e-3),
        "--momentum": (momentum, 0.9),
        "--weight-decay": (weight_decay, 0.0),
        "--schedule": (schedule, "constant"),
        "--epochs": (epochs, 60),
        "--batch-size": (batch_size, 64),
        "--augment": (augmentation, "none"),
    }
    recipe: Recipe | SklearnRecipe
    if is_sklearn_arch(arch):
        given = [flag for flag, (value, default) in network_flags.items() if value != default]
        if given:
            raise UsageError(
                f"{given[0]} trains networks; a {arch} model takes no such option",
                hint="set its parameters with --arch-arg name=value",
            )
        recipe = SklearnRecipe(arch=arch, params=parse_pairs(arch_arg, "--arch-arg"), seed=seed)
    else:
        recipe = Recipe(
            arch=arch,
            arch_args=parse_pairs(arch_arg, "--arch-arg"),
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            schedule=schedule,
            epochs=epochs,
            batch_size=batch_size,
            augmentation=augmentation,
            seed=seed,
        )
    request = TrainRequest(
        out=out,
        data=data,
        data_options=parse_pairs(data_opt, "--data-opt"),
        data_root=data_root,
        download=download,
        recipe=recipe,
        exclude_ids=exclude,
        exclude_class=exclude_class,
        overwrite=overwrite,
        device=device,
    )
    with progress_bar("training", quiet) as update:
        result = train_checkpoint(request, progress=update)
    console = stdout_console()
    what = result.meta.kind
    if result.meta.excluded is not None:
        ex = result.meta.excluded
        left_out = f"class {ex.forget_class}" if ex.forget_class is not None else "a forget set"
        what += f" without {left_out} ({ex.n_ids} examples)"
    where = f"{recipe.arch} on {result.meta.dataset.name}, {result.n_trained} examples"
    console.print(f"trained {what}: {where}, {result.seconds:.1f}s")
    console.print(f"train accuracy {result.train_accuracy:.4f}   test accuracy {result.test_accuracy:.4f}")
    if "excluded_accuracy" in result.meta.metrics:
        console.print(f"accuracy on the left-out examples {result.meta.metrics['excluded_accuracy']:.4f}")
    console.print(f"wrote {result.path} (sha256 {result.sha256[:16]}...)")


@app.command("run", help="Audit an unlearned model: shadow attacks, gap checks, reference metrics. " + EXIT_CODES_HELP)
@cli_errors
def run_cmd(
    model: Path = typer.Option(..., "--model", "-m", help="The model to audit (the unlearned one)."),
    forget: Path | None = typer.Option(None, "--forget", help="Id file of the forgotten training examples."),
    forget_class: int | None = typer.Option(None, "--forget-class", help="The forgotten class."),
    output_filter: Path | None = typer.Option(
        None, "--filter", help="An MPRU output filter (audit unlearn --method mpru) to audit --model through."
    ),
    original: Path | None = typer.Option(None, "--original", help="The model before unlearning (optional)."),
    retrained: Path | None = typer.Option(None, "--retrained", help="A model retrained without the forget set."),
    fail_above: float | None = typer.Option(
        None, "--fail-above", help="Leakage threshold: fail above it, pass only when shown below it [default: 0.1]."
    ),
    gate: str | None = typer.Option(
        None,
        "--gate",
        help="decide: pass only when every gated interval lies below its threshold, else inconclusive (exit 3); "
        "evidence: pass unless one lies above it [default: decide].",
    ),
    allow_underpowered: bool | None = typer.Option(
        None,
        "--allow-underpowered/--no-allow-underpowered",
        help="Train shadows even when the example counts cannot decide the leakage threshold (else exit 3 at once).",
    ),
    exit_zero: bool | None = typer.Option(
        None, "--exit-zero/--no-exit-zero", help="Report only: exit 0 when a threshold is crossed (errors still exit)."
    ),
    shadows: int | None = typer.Option(None, "--shadows", help="Shadow models [default: 64]."),
    bank: Path | None = typer.Option(None, "--bank", help="Shadow bank folder [default: .audit-bank]."),
    method: str | None = typer.Option(None, "--method", help="Override the unlearning method in the checkpoint."),
    param: list[str] | None = typer.Option(None, "--param", help="Method parameter name=value (with --method)."),
    data: str | None = typer.Option(None, "--data", help="Dataset override (default: from the checkpoint)."),
    data_opt: list[str] | None = DataOpt,
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder of torchvision datasets."),
    variance: str | None = typer.Option(None, help="Gaussian spread: auto, global or per-example [default: auto]."),
    formats: list[str] | None = typer.Option(
        None, "--format", "-f", help="Also render FORMAT[=PATH]: json, markdown, junit, html or sarif (repeatable)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where a -f FORMAT without =PATH goes."),
    config_file: Path | None = typer.Option(
        None, "--config", help="Settings file (default: ./audit.toml, or [tool.unlearning-audit] in ./pyproject.toml)."
    ),
    seed: int | None = typer.Option(None, help="Seed of shadow splits and bootstrap [default: 0]."),
    deterministic: bool | None = typer.Option(
        None, "--deterministic/--no-deterministic", help="Only deterministic torch algorithms (recorded)."
    ),
    device: str | None = typer.Option(None, help="cpu, cuda, cuda:N or auto [default: auto]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Audit an unlearned model."""
    from audit_cli.config import find_config_file, resolve_settings
    from audit_cli.pipeline import AuditConfig, run_audit

    flags = {"fail_above": fail_above, "shadows": shadows, "bank": str(bank) if bank else None, "variance": variance,
             "seed": seed, "device": device, "exit_zero": exit_zero, "deterministic": deterministic, "gate": gate,
             "allow_underpowered": allow_underpowered}  # fmt: skip
    settings = resolve_settings(flags, config_file=config_file)
    value = {k: s.value for k, s in settings.items()}
    config = AuditConfig(
        model=model,
        forget=forget,
        forget_class=forget_class,
        filter=output_filter,
        original=original,
        retrained=retrained,
        data=data,
        data_options=parse_pairs(data_opt, "--data-opt"),
        data_root=data_root,
        method=method,
        method_params=parse_pairs(param, "--param") if param else None,
        shadows=int(value["shadows"]),
        bank=Path(str(value["bank"])),
        fail_above=float(value["fail_above"]),
        mia_nn_above=float(value["mia_nn_above"]),
        forget_class_accuracy_above=float(value["forget_class_accuracy_above"]),
        utility_drop_above=float(value["utility_drop_above"]),
        missing_effect_above=float(value["missing_effect_above"]),
        gate=str(value["gate"]),
        allow_underpowered=bool(value["allow_underpowered"]),
        variance=str(value["variance"]),
        seed=int(value["seed"]),
        device=str(value["device"]),
        deterministic=bool(value["deterministic"]),
        settings={k: {"value": s.value, "source": s.source} for k, s in settings.items()},
        config_file=config_file or find_config_file(Path.cwd()),
    )
    targets = parse_formats(formats, output)  # before the audit: a typo must not cost the run
    with progress_bar("shadow bank", quiet, unit="shadows") as update:
        report = run_audit(config, progress=update)
    write_report(report, targets)
    code = report.exit_code
    raise typer.Exit(0 if value["exit_zero"] and code == ExitCode.FAIL else int(code))


def parse_formats(formats: list[str] | None, output: Path | None) -> list[tuple[str, Path | None]]:
    """``-f markdown=summary.md -f json`` -> [(format, path or None for --output/stdout)]."""
    from audit_cli.report.formats import FORMATS

    targets: list[tuple[str, Path | None]] = []
    for item in formats or []:
        name, sep, path = item.partition("=")
        if name not in FORMATS:
            raise UsageError(f"unknown report format {name!r}", hint=f"formats: {', '.join(FORMATS)}")
        targets.append((name, Path(path) if sep else output))
    if sum(path is None for _, path in targets) > 1:
        raise UsageError("only one -f FORMAT may go to stdout; give the others =PATH")
    return targets


def write_report(report, targets: list[tuple[str, Path | None]]) -> None:
    """Terminal report (unless a format claims stdout), the requested files, and the
    GitHub step summary. Files are written only now, when the report is complete."""
    from audit_cli.atomic import atomic_write_text
    from audit_cli.report.formats import FORMATS, render_markdown
    from audit_cli.report.terminal import render

    if not any(path is None for _, path in targets):
        # Wrapping on: the verdict panel would crop long sentences at 80 columns otherwise.
        render(report, Console(highlight=False))
    for name, path in targets:
        text = FORMATS[name](report)
        if path is None:
            typer.echo(text, nl=False)
        else:
            atomic_write_text(path, text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(render_markdown(report))


@app.command("report")
@cli_errors
def report_cmd(
    saved: Path = typer.Argument(..., help="A report saved with -f json=PATH."),
    formats: list[str] | None = typer.Option(
        None, "--format", "-f", help="FORMAT[=PATH]: json, markdown, junit, html, sarif."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where a -f FORMAT without =PATH goes."),
) -> None:
    """Re-render a saved report without recomputing anything; exits with its exit code."""
    from audit_cli.errors import InputError
    from audit_cli.report import AuditReport

    targets = parse_formats(formats, output)
    try:
        data = json.loads(saved.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"report not found: {saved}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{saved}: not a JSON report ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{saved}: not an audit report")
    report = AuditReport.from_dict(data)
    write_report(report, targets)
    raise typer.Exit(int(report.exit_code))


@app.command("shadows")
@cli_errors
def shadows_cmd(
    model: Path = typer.Option(..., "--model", "-m", help="The model the shadows must imitate."),
    forget: Path | None = typer.Option(None, "--forget", help="Id file of the forgotten training examples."),
    forget_class: int | None = typer.Option(None, "--forget-class", help="The forgotten class."),
    output_filter: Path | None = typer.Option(None, "--filter", help="The MPRU output filter audit run will use."),
    shadows: int = typer.Option(64, "--shadows", help="How many shadows the bank should hold."),
    bank: Path = typer.Option(Path(".audit-bank"), "--bank", help="Shadow bank folder."),
    method: str | None = typer.Option(None, "--method", help="Override the unlearning method in the checkpoint."),
    param: list[str] | None = typer.Option(None, "--param", help="Method parameter name=value (with --method)."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder of torchvision datasets."),
    seed: int = typer.Option(0, help="Seed of shadow splits."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Build or extend the shadow bank an audit of this model will use (CI caches it)."""
    from audit_cli.pipeline import AuditConfig, prepare

    inputs = prepare(
        AuditConfig(
            model=model,
            forget=forget,
            forget_class=forget_class,
            filter=output_filter,
            method=method,
            method_params=parse_pairs(param, "--param") if param else None,
            shadows=shadows,
            bank=bank,
            data_root=data_root,
            seed=seed,
            device=device,
        )
    )
    with progress_bar("shadow bank", quiet, unit="shadows") as update:
        trained = inputs.bank.build(shadows, device=inputs.device, progress=update)
    stdout_console().print(
        f"bank {inputs.bank.path}: {inputs.bank.complete_shadows()} shadows ({trained} trained now), "
        f"method {inputs.method or 'none (LiRA only)'}"
    )


bank_app = typer.Typer(help="Read shadow banks.", no_args_is_help=True)
app.add_typer(bank_app, name="bank")


@bank_app.command("export")
@cli_errors
def bank_export_cmd(
    bank: Path = typer.Argument(..., help="A bank folder (the one holding manifest.json)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output table, .parquet or .csv."),
) -> None:
    """Write the bank as a long table (shadow, example_id, state, phi_before, phi_after)."""
    from audit_cli.shadows import export_long, read_bank

    rows = export_long(read_bank(bank), out)
    stdout_console().print(f"wrote {rows} rows to {out}")


@app.command("evaluate-attack")
@cli_errors
def evaluate_attack_cmd(
    bank: Path = typer.Option(..., "--bank", help="A bank folder (the one holding manifest.json)."),
    targets: int = typer.Option(8, help="How many shadows take a turn as the target."),
    variance: str = typer.Option("auto", help="auto, global or per-example."),
) -> None:
    """Leave-one-shadow-out LiRA: how strong the membership attack is on this recipe."""
    import numpy as np

    from attacks.lira import IN, UNLEARNED, leave_one_out
    from audit_cli.shadows import read_bank

    signals = read_bank(bank)
    # Before unlearning every trained-on example is a member.
    states = np.where(signals.states == UNLEARNED, IN, signals.states)
    reports = leave_one_out(signals.phi_before, states, targets=targets, variance=variance)
    table = Table("target shadow", "AUC", "interval", "balanced acc.", "TPR @ 1% FPR", "TPR @ 0.1% FPR")
    for k, r in enumerate(reports):
        tprs = [f"{t.tpr.value:.3f}" if t.tpr else "inconclusive" for t in r.tpr_at_fpr]
        table.add_row(str(k), f"{r.auc.value:.3f}", f"[{r.auc.low:.3f}, {r.auc.high:.3f}]",
                      f"{r.balanced_accuracy.value:.3f}", *tprs)  # fmt: skip
    console = stdout_console()
    console.print(table)
    mean_auc = float(np.mean([r.auc.value for r in reports]))
    console.print(f"mean AUC over {len(reports)} targets: {mean_auc:.3f} ({signals.n_shadows} shadows)")


@app.command("unlearn")
@cli_errors
def unlearn_cmd(
    model: Path = typer.Option(
        ..., "--model", "-m", help="Checkpoint to repair (.safetensors, .pt; a .skops model for mpru)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Unlearned checkpoint to write (.safetensors); for mpru, the filter file."
    ),
    method: str = typer.Option(..., "--method", help="Unlearning method (see `audit methods`)."),
    param: list[str] | None = typer.Option(None, "--param", help="Method parameter name=value (repeatable)."),
    forget: Path | None = typer.Option(None, "--forget", help="Id file of training examples to forget."),
    forget_class: int | None = typer.Option(None, "--forget-class", help="Forget every example of this class."),
    data: str | None = typer.Option(None, "--data", help="Dataset override (default: from the checkpoint)."),
    data_opt: list[str] | None = DataOpt,
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder of torchvision datasets."),
    download: bool = typer.Option(False, "--download", help="Allow downloading a torchvision dataset."),
    arch: str | None = typer.Option(None, "--arch", help="Architecture, for checkpoints without metadata."),
    augmentation: str = typer.Option(
        "none", "--augment", help="none, crop+flip, trivialaugment, randaugment, autoaugment (images)."
    ),
    seed: int = typer.Option(0, help="Seed of the method's data order and random labels."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
) -> None:
    """Repair a model: unlearn a forget set or a class with one of the methods (mpru: fit an output filter)."""
    from audit_cli.unlearn.mpru import FilterSpec
    from audit_cli.unlearn_checkpoint import UnlearnRequest, unlearn_checkpoint

    result = unlearn_checkpoint(
        UnlearnRequest(
            model=model,
            out=out,
            method=method,
            params=parse_pairs(param, "--param"),
            forget=forget,
            forget_class=forget_class,
            data=data,
            data_options=parse_pairs(data_opt, "--data-opt"),
            data_root=data_root,
            download=download,
            arch=arch,
            augmentation=augmentation,
            seed=seed,
            overwrite=overwrite,
            device=device,
        )
    )
    console = stdout_console()
    what = f"class {forget_class}" if forget_class is not None else f"{result.n_forget} examples"
    console.print(f"unlearned {what} with {method} in {result.seconds:.2f}s")
    table = Table("accuracy", "before", "after")
    rows = [
        ("forget set", result.before.forget, result.after.forget),
        ("retain set", result.before.retain, result.after.retain),
    ]
    test_label = "test (retained classes)" if forget_class is not None else "test"
    rows.append((test_label, result.before.test, result.after.test))
    if result.after.forget_class_test is not None:
        rows.append((f"test, class {forget_class}", result.before.forget_class_test, result.after.forget_class_test))
    for name, before, after in rows:
        table.add_row(name, f"{before:.4f}", f"{after:.4f}")
    console.print(table)
    console.print("parameters: " + ", ".join(f"{k}={v}" for k, v in result.params.items()))
    if isinstance(result.meta, FilterSpec):
        console.print(f"wrote output filter {result.path} (sha256 {result.sha256[:16]}...); {model} is unchanged")
        console.print("apply it to the model's outputs with audit run --filter")
    else:
        console.print(f"wrote {result.path} (sha256 {result.sha256[:16]}...)")


@app.command("methods")
@cli_errors
def methods_cmd() -> None:
    """List the unlearning methods, their parameters with defaults, and what they forget."""
    from audit_cli.unlearn import METHODS, params_dict

    table = Table("method", "forgets", "parameters (defaults)", "description")
    for entry in METHODS.values():
        defaults = params_dict(entry.params())
        forgets = ", ".join(k for k in ("random", "class") if k in entry.supports)
        table.add_row(entry.name, forgets, ", ".join(f"{k}={v}" for k, v in defaults.items()), entry.description)
    stdout_console().print(table)


@app.command("inspect")
@cli_errors
def inspect_cmd(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file (.safetensors or .pt)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata document as JSON."),
) -> None:
    """Print a checkpoint's metadata, weights summary and sha256; loads nothing unsafe."""
    from audit_cli.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    n_params = sum(t.numel() for t in ckpt.state_dict.values())
    if as_json:
        doc = {
            "path": str(ckpt.path),
            "format": ckpt.format,
            "sha256": ckpt.sha256,
            "tensors": {k: list(v.shape) for k, v in ckpt.state_dict.items()},
            "parameters": n_params,
            "metadata": ckpt.meta.to_dict() if ckpt.meta else None,
        }
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    console = stdout_console()
    table = Table(title=str(ckpt.path), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("format", ckpt.format)
    table.add_row("sha256", ckpt.sha256)
    table.add_row("tensors", f"{len(ckpt.state_dict)} ({n_params:,} values)")
    meta = ckpt.meta
    if meta is None:
        table.add_row("metadata", "none (pass --arch and --data when using this file)")
    else:
        table.add_row("kind", meta.kind)
        table.add_row("architecture", f"{meta.arch} {json.dumps(meta.to_dict()['arch_args'])}")
        table.add_row("classes / input", f"{meta.num_classes} / {tuple(meta.input_shape)}")
        table.add_row("dataset", f"{meta.dataset.name} {json.dumps(dict(meta.dataset.options))}")
        table.add_row("dataset fingerprint", meta.dataset_fingerprint)
        if meta.n_trained is not None:
            table.add_row("trained on", f"{meta.n_trained} examples (ids {str(meta.trained_ids_fingerprint)[:16]}...)")
        if meta.excluded is not None:
            ex = meta.excluded
            what = f"class {ex.forget_class}" if ex.forget_class is not None else "a forget set"
            table.add_row("left out", f"{what}: {ex.n_ids} examples (ids {ex.ids_fingerprint[:16]}...)")
        if meta.unlearning is not None:
            u = meta.unlearning
            table.add_row("unlearning", f"{u.method} {json.dumps(dict(u.params))}")
            table.add_row("parent sha256", u.parent_sha256)
        if meta.recipe is not None:
            r = meta.recipe.to_dict()
            table.add_row("recipe", ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("arch", "arch_args")))
        for name, value in meta.metrics.items():
            table.add_row(name.replace("_", " "), f"{value:.4f}")
        table.add_row(
            "written by", f"unlearning-audit {meta.tool_version}, {meta.created}, format {meta.format_version}"
        )
    console.print(table)


@app.command("datasets")
@cli_errors
def datasets_cmd() -> None:
    """List the built-in datasets and their options."""
    from audit_cli.data import DATASETS

    table = Table("name", "description", "options (defaults)")
    for entry in DATASETS.values():
        opts = ", ".join(f"{k}={v}" for k, v in entry.options.items() if k != "path")
        table.add_row(entry.name, entry.description, opts)
    stdout_console().print(table)


@app.command("ids")
@cli_errors
def ids_cmd(
    data: str = typer.Option("digits", "--data", help="Dataset registry name or a .parquet / .npz file."),
    data_opt: list[str] | None = DataOpt,
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder of torchvision datasets."),
    split: str = typer.Option("train", "--split", help="train, test or all."),
    forget_class: int | None = typer.Option(None, "--class", help="Only this class's ids."),
    output_format: str = typer.Option("text", "--format", help="text (one id per line, an id file) or json."),
) -> None:
    """Print a dataset split's ids (the ids id files and forget lists use)."""
    from audit_cli.data import load_dataset
    from audit_cli.forget_list import split_ids

    if output_format not in ("text", "json"):
        raise UsageError(f"--format must be text or json, got {output_format!r}")
    ids = split_ids(load_dataset(data, parse_pairs(data_opt, "--data-opt"), data_root=data_root), split, forget_class)
    if output_format == "json":
        sys.stdout.write(json.dumps([int(i) for i in ids]) + "\n")
    else:
        sys.stdout.write("".join(f"{int(i)}\n" for i in ids))


@app.command("forget-list")
@cli_errors
def forget_list_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="The id file to write."),
    data: str = typer.Option("digits", "--data", help="Dataset registry name or a .parquet / .npz file."),
    data_opt: list[str] | None = DataOpt,
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder of torchvision datasets."),
    fraction: float | None = typer.Option(None, "--fraction", help="Share of the training ids to forget."),
    count: int | None = typer.Option(None, "--count", help="Number of training ids to forget."),
    forget_class: int | None = typer.Option(None, "--class", help="Draw from this class's training ids only."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draw."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Draw a random forget list from a dataset's training ids and write it as an id file."""
    from audit_cli.data import load_dataset
    from audit_cli.forget_list import draw_forget_list

    dataset = load_dataset(data, parse_pairs(data_opt, "--data-opt"), data_root=data_root)
    drawn = draw_forget_list(dataset, out, fraction=fraction, count=count, forget_class=forget_class, seed=seed,
                             overwrite=overwrite)  # fmt: skip
    stdout_console().print(f"wrote {len(drawn.ids)} of {drawn.pool} training ids to {drawn.path} (seed {seed})")


@app.command("archs")
@cli_errors
def archs_cmd() -> None:
    """List the registered architectures and their arguments."""
    from audit_cli.models.architectures import ARCHITECTURES
    from audit_cli.models.sklearn_model import SKLEARN_ARCHS

    table = Table("name", "description", "arguments (defaults)")
    for entry in ARCHITECTURES.values():
        table.add_row(entry.name, entry.description, ", ".join(f"{k}={v}" for k, v in entry.defaults.items()))
    for name, cls in SKLEARN_ARCHS.items():
        description = f"scikit-learn {cls.__name__} (flat data; saved as .skops)"
        table.add_row(name, description, "its parameters, e.g. max_depth")
    stdout_console().print(table)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # outside a command (while importing, say)
        sys.exit(int(ExitCode.INTERRUPTED))
