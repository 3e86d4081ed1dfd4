"""Audit settings resolved into an ``AuditConfig``: the one path `audit run` and `audit shadows` share.

A bank built ahead of time (``audit shadows`` in a CI cache step) is only the bank
``audit run`` uses when both resolved the same shadows, seed, bank folder and data; so
both commands build their configuration here, from flags > ``AUDIT_*`` > audit.toml or
pyproject.toml > ``config.DEFAULTS`` (``config.resolve_settings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import typer

from audit_cli.auditing.request import AuditConfig, AuditRequest, config_from_settings
from audit_cli.cli.common import given_on_command_line
from audit_cli.config import DEFAULTS, Setting, find_config_file, resolve_settings
from audit_cli.errors import UsageError


def audit_config(
    request: AuditRequest,
    *,
    flags: Mapping[str, object | None],
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[AuditConfig, dict[str, Setting]]:
    """The audit configuration (``request`` with the resolved settings) and every setting
    with its source; ``flags`` holds the settings given on the command line (None: not given)."""
    cwd = cwd or Path.cwd()
    settings = resolve_settings(flags, config_file=config_file, env=env, cwd=cwd)
    config = config_from_settings(request, settings, config_file=config_file or find_config_file(cwd))
    if flags.get("ray_address") is not None and config.executor != "ray":
        raise UsageError(f"--ray-address is where --executor ray sends its tasks; the executor is {config.executor}",
                         hint="add --executor ray, or drop --ray-address")  # fmt: skip
    return config, settings


SETTINGS = tuple(DEFAULTS)
"""Options that are settings: resolved with the environment and configuration files."""


def setting_flags(ctx: typer.Context, values: dict[str, object]) -> dict[str, object | None]:
    """The settings typed on the command line; the rest (None) come from elsewhere."""
    return {k: (v if given_on_command_line(ctx, k) else None) for k, v in values.items() if k in SETTINGS}


def resolved(ctx: typer.Context, values: dict[str, object]) -> dict[str, object]:
    """These settings as `audit run` resolves them: typed on the command line, else from
    ``AUDIT_*``, audit.toml or pyproject.toml, else the default. Commands that only read
    banks use it, so that they look where `audit run` builds."""
    settings = resolve_settings(setting_flags(ctx, values), only=set(values))
    return {k: settings[k].value for k in values}


def shadows_option(help: str, panel: str | None = None) -> object:
    return typer.Option(DEFAULTS["shadows"], "--shadows", metavar="N", help=help, rich_help_panel=panel)


def bank_option(
    panel: str | None = None, help: str = "Parent folder of shadow banks (each bank is a subfolder named by its key)."
) -> object:
    return typer.Option(Path(str(DEFAULTS["bank"])), "--bank", metavar="DIR", help=help, rich_help_panel=panel)


def lock_timeout_option(panel: str | None = None) -> object:
    return typer.Option(
        DEFAULTS["lock_timeout"],
        "--lock-timeout",
        metavar="SECONDS",
        help="How long to wait for another run building the same bank, then exit 2 naming it (0: do not wait).",
        rich_help_panel=panel,
    )
