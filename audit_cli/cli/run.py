"""`audit run`: audit an unlearned model and render its report.

Settings (thresholds, gate, shadows, bank, seed, ...) show their defaults from
``config.DEFAULTS`` in help, but only a flag the user typed outranks ``AUDIT_*`` and the
configuration files (``audit_cli.cli.settings``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from audit_cli.auditing.pipeline import run_audit
from audit_cli.auditing.request import AuditRequest
from audit_cli.cli.common import (
    FLAG,
    arch_option,
    cli_errors,
    config_option,
    data_opt_option,
    data_option,
    data_root_option,
    executor_option,
    lock_notice,
    param_option,
    parse_pairs,
    progress_bar,
    progress_option,
    quiet_option,
    ray_address_option,
    reads_settings,
    recipe_option,
    stderr_notice,
    strip_prefix_option,
    trainer_option,
    unlearner_option,
)
from audit_cli.cli.outputs import parse_formats, prepare_targets, write_report
from audit_cli.cli.settings import audit_config, bank_option, lock_timeout_option, setting_flags, shadows_option
from audit_cli.config import DEFAULTS
from audit_cli.errors import ExitCode, UsageError

INPUTS, GATE, SHADOWS, OUTPUT, DATA, EXECUTION = "Inputs", "Gate", "Shadows", "Output", "Data", "Execution"
# On/off switches get a panel of their own: beside metavars, rich crops their long names at 80 columns.
GATE_SWITCHES = "Gate switches"
OWN = "A model the tool did not train"


@cli_errors
@reads_settings()
def run_cmd(
    ctx: typer.Context,
    model: Path = typer.Option(
        ..., "--model", "-m", metavar="FILE", help="The model to audit (the unlearned one).", rich_help_panel=INPUTS
    ),
    forget: Path | None = typer.Option(
        None, "--forget", metavar="FILE", help="Id file of the forgotten training examples.", rich_help_panel=INPUTS
    ),
    forget_class: int | None = typer.Option(
        None, "--forget-class", metavar="CLASS", help="The forgotten class.", rich_help_panel=INPUTS
    ),
    forget_client: list[int] | None = typer.Option(
        None, "--forget-client", metavar="CLIENT", rich_help_panel=INPUTS,
        help="A federated model: the forgotten client (repeatable); its examples are the forget set.",
    ),
    output_filter: Path | None = typer.Option(
        None,
        "--filter",
        metavar="FILE",
        rich_help_panel=INPUTS,
        help="An MPRU output filter (audit unlearn --method mpru) to audit --model through.",
    ),
    original: Path | None = typer.Option(
        None, "--original", metavar="FILE", help="The model before unlearning (optional).", rich_help_panel=INPUTS
    ),
    retrained: Path | None = typer.Option(
        None, "--retrained", metavar="FILE", help="A model retrained without the forget set.", rich_help_panel=INPUTS
    ),
    estimate_retrained: str | None = typer.Option(
        None,
        "--estimate-retrained",
        metavar="METHOD",
        help="No retrained model: estimate one from --original (influence); labelled estimated, never gates.",
        rich_help_panel=INPUTS,
    ),
    method: str | None = typer.Option(
        None,
        "--method",
        metavar="NAME",
        help="Override the unlearning method in the checkpoint.",
        rich_help_panel=INPUTS,
    ),
    param: list[str] | None = param_option(
        "Method parameter name=value, overriding the declared one (repeatable).", INPUTS
    ),
    fail_above: float = typer.Option(
        DEFAULTS["fail_above"],
        "--fail-above",
        metavar="LEAKAGE",
        rich_help_panel=GATE,
        help="Leakage threshold: fail above it, pass only when shown below it.",
    ),
    residual_above: float = typer.Option(
        DEFAULTS["residual_above"],
        "--residual-above",
        metavar="SHARE",
        rich_help_panel=GATE,
        help="Random forgetting: pass when the forget set's residual memorisation share (0 exact unlearning, "
        "1 nothing forgotten) is shown within it; fail when exact unlearning is rejected and the share lies beyond.",
    ),
    gate: str = typer.Option(
        DEFAULTS["gate"],
        "--gate",
        metavar="decide|evidence",
        rich_help_panel=GATE,
        help="decide: pass only when every gated interval lies below its threshold, else inconclusive (exit 3); "
        "evidence: pass unless one lies above it.",
    ),
    allow_underpowered: bool = typer.Option(
        DEFAULTS["allow_underpowered"],
        "--allow-underpowered/--no-allow-underpowered",
        metavar=FLAG,
        rich_help_panel=GATE_SWITCHES,
        help="Train shadows even with fewer than 20 forget or test examples, or too few shadows to observe every "
        "example (else exit 3 at once).",
    ),
    exit_zero: bool = typer.Option(
        DEFAULTS["exit_zero"],
        "--exit-zero/--no-exit-zero",
        metavar=FLAG,
        rich_help_panel=GATE_SWITCHES,
        help="Report only: exit 0 when a threshold is crossed (errors still exit).",
    ),
    shadows: int = shadows_option("Shadow models.", SHADOWS),
    bank: Path = bank_option(SHADOWS),
    shadows_from: Path | None = typer.Option(
        None,
        "--shadows-from",
        metavar="DIR",
        rich_help_panel=SHADOWS,
        help="Score the shadows of a bank imported with audit bank import instead of training any.",
    ),
    variance: str = typer.Option(
        DEFAULTS["variance"],
        "--variance",
        metavar="auto|global|per-example",
        rich_help_panel=SHADOWS,
        help="Gaussian spread: by observations per state, pooled, or per example.",
    ),
    seed: int = typer.Option(
        DEFAULTS["seed"], "--seed", metavar="INT", help="Seed of shadow splits and bootstrap.", rich_help_panel=SHADOWS
    ),
    formats: list[str] | None = typer.Option(
        None,
        "--format",
        "-f",
        metavar="FORMAT[=PATH]",
        rich_help_panel=OUTPUT,
        help="Also render json, markdown, junit, html, sarif, or csv or parquet (a row per example); =PATH: to a file.",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", metavar="PATH", help="Where a -f FORMAT without =PATH goes.", rich_help_panel=OUTPUT
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        metavar=FLAG,
        help="Every check's details in the terminal report.",
        rich_help_panel=OUTPUT,
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", metavar=FLAG, help="Replace report files that exist.", rich_help_panel=OUTPUT
    ),
    arch: str | None = arch_option(OWN),
    strip_prefix: str | None = strip_prefix_option(OWN),
    recipe: Path | None = recipe_option(OWN),
    trainer: str | None = trainer_option(OWN),
    unlearner: str | None = unlearner_option(OWN),
    data: str | None = data_option(None, "Dataset override (default: from the checkpoint).", DATA),
    data_opt: list[str] | None = data_opt_option(DATA),
    data_root: Path | None = data_root_option(DATA),
    config_file: Path | None = config_option(EXECUTION),
    deterministic: bool = typer.Option(
        DEFAULTS["deterministic"],
        "--deterministic/--no-deterministic",
        metavar=FLAG,
        rich_help_panel=EXECUTION,
        help="Only deterministic torch algorithms (recorded).",
    ),
    device: str = typer.Option(
        DEFAULTS["device"], "--device", metavar="DEVICE", help="cpu, cuda, cuda:N or auto.", rich_help_panel=EXECUTION
    ),
    executor: str = executor_option(SHADOWS),
    ray_address: str | None = ray_address_option(SHADOWS),
    lock_timeout: float = lock_timeout_option(SHADOWS),
    quiet: bool = quiet_option(EXECUTION),
    progress: str = progress_option(EXECUTION),
) -> None:
    """Audit an unlearned model."""
    flags = setting_flags(ctx, {"fail_above": fail_above, "residual_above": residual_above, "gate": gate,
                                "allow_underpowered": allow_underpowered, "exit_zero": exit_zero, "shadows": shadows,
                                "bank": str(bank), "variance": variance,
                                "seed": seed, "deterministic": deterministic, "device": device, "executor": executor,
                                "ray_address": ray_address, "lock_timeout": lock_timeout})  # fmt: skip
    if shadows_from is not None:
        # An imported bank is scored whole, as it is: nothing trains.
        trains = [f"--{k.replace('_', '-')}" for k in ("shadows", "bank", "executor", "ray_address", "lock_timeout")
                  if flags.get(k) is not None]
        if trains:
            raise UsageError(f"--shadows-from scores an imported bank whole and trains nothing; {trains[0]} does "
                             "not apply", hint="drop it, or drop --shadows-from to build a bank")  # fmt: skip
    request = AuditRequest(
        model=model,
        forget=forget,
        forget_class=forget_class,
        forget_clients=tuple(forget_client or ()),
        filter=output_filter,
        original=original,
        retrained=retrained,
        estimate_retrained=estimate_retrained,
        data=data,
        data_options=parse_pairs(data_opt, "--data-opt"),
        data_root=data_root,
        method=method,
        method_params=parse_pairs(param, "--param") if param else None,
        arch=arch,
        strip_prefix=strip_prefix,
        recipe=recipe,
        trainer=trainer,
        unlearner=unlearner,
        shadows_from=shadows_from,
    )
    config, settings = audit_config(request, flags=flags, config_file=config_file)
    # Before the audit: a typo or an unwritable path must not cost the shadows.
    inputs = [model, forget, output_filter, original, retrained, recipe, config_file, config.config_file,
              Path(data) if data and Path(data).is_file() else None]
    targets = prepare_targets(parse_formats(formats, output), output, overwrite=overwrite, inputs=inputs)
    with progress_bar("shadow bank", quiet, unit="shadows", mode=progress) as update:
        report = run_audit(config, progress=update, waiting=lock_notice(config.lock_timeout), notice=stderr_notice)
    write_report(report, targets, verbose=verbose)
    code = report.exit_code
    raise typer.Exit(0 if settings["exit_zero"].value and code == ExitCode.FAIL else int(code))
