"""`audit shadows`: build or extend, ahead of time, the shadow bank `audit run` will use.

It resolves settings and data options exactly like `audit run` (``audit_cli.cli.settings``),
so a bank a CI cache step builds is the bank the audit finds: same key, same folder.
"""

from __future__ import annotations

from pathlib import Path

import typer

from audit_cli.auditing.pipeline import build_shadows
from audit_cli.auditing.request import AuditRequest
from audit_cli.cli.common import (
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
    stdout_console,
    strip_prefix_option,
    trainer_option,
    unlearner_option,
)
from audit_cli.cli.settings import audit_config, bank_option, lock_timeout_option, setting_flags, shadows_option
from audit_cli.config import DEFAULTS


@cli_errors
@reads_settings()
def shadows_cmd(
    ctx: typer.Context,
    model: Path = typer.Option(..., "--model", "-m", metavar="FILE", help="The model the shadows must imitate."),
    forget: Path | None = typer.Option(
        None, "--forget", metavar="FILE", help="Id file of the forgotten training examples."
    ),
    forget_class: int | None = typer.Option(None, "--forget-class", metavar="CLASS", help="The forgotten class."),
    output_filter: Path | None = typer.Option(
        None, "--filter", metavar="FILE", help="The MPRU output filter audit run will use."
    ),
    method: str | None = typer.Option(
        None, "--method", metavar="NAME", help="Override the unlearning method in the checkpoint."
    ),
    param: list[str] | None = param_option("Method parameter name=value, overriding the declared one (repeatable)."),
    shadows: int = shadows_option("How many shadows the bank should hold."),
    bank: Path = bank_option(),
    seed: int = typer.Option(DEFAULTS["seed"], "--seed", metavar="INT", help="Seed of shadow splits."),
    data: str | None = data_option(None, "Dataset override (default: from the checkpoint)."),
    data_opt: list[str] | None = data_opt_option(),
    data_root: Path | None = data_root_option(),
    arch: str | None = arch_option(),
    strip_prefix: str | None = strip_prefix_option(),
    recipe: Path | None = recipe_option(),
    trainer: str | None = trainer_option(),
    unlearner: str | None = unlearner_option(),
    config_file: Path | None = config_option(),
    device: str = typer.Option(DEFAULTS["device"], "--device", metavar="DEVICE", help="cpu, cuda, cuda:N or auto."),
    executor: str = executor_option(None),
    ray_address: str | None = ray_address_option(None),
    lock_timeout: float = lock_timeout_option(),
    quiet: bool = quiet_option(),
    progress: str = progress_option(),
) -> None:
    """Build or extend the shadow bank an audit of this model will use (CI caches it).

    Settings come from flags, AUDIT_* variables and audit.toml exactly as for audit run."""
    request = AuditRequest(
        model=model,
        forget=forget,
        forget_class=forget_class,
        filter=output_filter,
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
    )
    flags = {"shadows": shadows, "bank": str(bank), "seed": seed, "device": device, "executor": executor,
             "ray_address": ray_address, "lock_timeout": lock_timeout}  # fmt: skip
    config, _ = audit_config(request, flags=setting_flags(ctx, flags), config_file=config_file)
    with progress_bar("shadow bank", quiet, unit="shadows", mode=progress) as update:
        built = build_shadows(config, progress=update, waiting=lock_notice(config.lock_timeout))
    stdout_console().print(
        f"bank {built.path}: {built.shadows} shadows ({built.trained_now} trained now), "
        f"method {built.method or 'none (LiRA only)'}"
    )
