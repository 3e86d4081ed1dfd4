"""`audit inspect`: what a checkpoint, scikit-learn model or output filter holds, without running it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from audit_cli.cli.common import FLAG, OutputFormat, cli_errors, format_option, print_json, stdout_console
from audit_cli.repair.inspection import inspect_file


@cli_errors
def inspect_cmd(
    path: Path = typer.Argument(
        ..., metavar="FILE", help="A checkpoint (.safetensors, .pt), a scikit-learn model (.skops) or an MPRU filter."
    ),
    output_format: OutputFormat = format_option(),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, hidden=True, help="Same as --format json."),
) -> None:
    """Print a model or filter file's metadata, contents summary and sha256; loads nothing unsafe."""
    inspection = inspect_file(path)
    if as_json or output_format is OutputFormat.json:
        print_json(inspection.doc)
        return
    table = Table(title=str(path), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in inspection.rows:
        table.add_row(name, value)
    stdout_console().print(table)
