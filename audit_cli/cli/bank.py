"""`audit bank ls` and `audit bank export`: what the shadow banks in a folder are, and their signals as a table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from audit_cli.banks import list_banks, resolve_bank
from audit_cli.cli.common import (
    AuditGroup,
    OutputFormat,
    cli_errors,
    format_option,
    output_option,
    print_json,
    stdout_console,
)
from audit_cli.config import DEFAULTS
from audit_cli.shadows import export_long, read_bank

bank_app = typer.Typer(help="List and export shadow banks.", no_args_is_help=True, cls=AuditGroup)


def bank_argument() -> object:
    return typer.Argument(
        Path(str(DEFAULTS["bank"])),
        metavar="BANK",
        help="Parent folder of banks (as audit run --bank); a bank's own folder works too.",
    )


@cli_errors
def bank_ls_cmd(bank: Path = bank_argument(), output_format: OutputFormat = format_option()) -> None:
    """List the shadow banks in a folder: name, method, shadows, dataset."""
    banks = list_banks(bank)
    if output_format is OutputFormat.json:
        print_json([b.to_dict() for b in banks])
        return
    table = Table("bank", "method", "shadows", "model", "forgets", "seed", "dataset fingerprint")
    for b in banks:
        table.add_row(b.name, b.method or "none (LiRA only)", str(b.shadows), b.model, b.forget, str(b.seed),
                      b.dataset_fingerprint[:16])  # fmt: skip
    console = stdout_console()
    console.print(table)
    if not banks:
        console.print(f"no shadow bank in {bank}")


@cli_errors
def bank_export_cmd(
    bank: Path = bank_argument(),
    output: Path = output_option("Output table, .parquet or .csv."),
) -> None:
    """Write a bank as a long table (shadow, example_id, state, phi_before, phi_after)."""
    rows = export_long(read_bank(resolve_bank(bank)), output)
    stdout_console().print(f"wrote {rows} rows to {output}")
