"""`audit schema`: print the JSON Schema of the report `-f json` writes (the file shipped in
the package, so an installed tool and a CI job validating its reports agree)."""

from __future__ import annotations

from pathlib import Path

import typer

from audit_cli.atomic import STDOUT, atomic_write_text, check_output_path
from audit_cli.cli.common import cli_errors, output_option, overwrite_option, stderr_console
from audit_cli.report.schema import SCHEMA_FILE
from audit_cli.report.schema import schema_text as packaged_schema


@cli_errors
def schema_cmd(
    output: Path | None = output_option("Write it to this file (- or none: standard output).", required=False),
    overwrite: bool = overwrite_option(),
) -> None:
    """Print the JSON Schema of the report -f json writes (schema_version 1)."""
    text = packaged_schema()
    if output is None or str(output) == STDOUT:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    atomic_write_text(check_output_path(output, overwrite=overwrite, suffix=None), text)
    stderr_console().print(f"wrote {SCHEMA_FILE} to {output}", markup=False)
