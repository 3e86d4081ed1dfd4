"""`audit report`: re-render a saved JSON report without recomputing anything."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from audit_cli.cli.common import FLAG, cli_errors
from audit_cli.cli.outputs import parse_formats, prepare_targets, write_report
from audit_cli.errors import ExitCode, InputError
from audit_cli.files import read_user_bytes
from audit_cli.report import AuditReport


def load_report(saved: Path) -> AuditReport:
    """A report saved with ``-f json=PATH``; anything else is an input error."""
    raw = read_user_bytes(saved, "report")
    try:
        # NaN, Infinity and 1e400 parse in Python but are no JSON numbers (the writer turns
        # them into null): refused here, before a plot meets one.
        data = json.loads(raw.decode("utf-8"), parse_constant=_not_json, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"{saved}: not a JSON report ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{saved}: not an audit report")
    try:
        return AuditReport.from_dict(data)
    except InputError as exc:
        raise InputError(f"{saved}: {exc.message}", hint=exc.hint) from None


def _not_json(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is beyond a double's range")
    return value


@cli_errors
def report_cmd(
    saved: Path = typer.Argument(..., metavar="REPORT", help="A report saved with -f json=PATH."),
    formats: list[str] | None = typer.Option(
        None, "--format", "-f", metavar="FORMAT[=PATH]",
        help="json, markdown, junit, html, sarif, csv or parquet (repeatable).",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", metavar="PATH", help="Where a -f FORMAT without =PATH goes."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", metavar=FLAG, help="Every check's details in the terminal report."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", metavar=FLAG, help="Replace report files that exist."),
) -> None:
    """Re-render a saved report without recomputing anything; exits as its run did (its exit
    code, 0 for a crossed threshold when the run had --exit-zero)."""
    targets = parse_formats(formats, output)
    report = load_report(saved)
    prepare_targets(targets, output, overwrite=overwrite, inputs=[saved])
    write_report(report, targets, verbose=verbose)
    code = report.exit_code
    exit_zero = report.config.get("exit_zero") if isinstance(report.config, dict) else None
    if isinstance(exit_zero, dict) and exit_zero.get("value") is True and code == ExitCode.FAIL:
        raise typer.Exit(0)  # a report-only run: the saved verdict stays in the files
    raise typer.Exit(int(code))
