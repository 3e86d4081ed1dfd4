"""`audit bank import`: shadows trained elsewhere, validated and stored as a bank."""

from __future__ import annotations

from pathlib import Path

import typer

from audit_cli.auditing.inputs import check_bank_folder
from audit_cli.cli.bank import bank_folder
from audit_cli.cli.common import (
    OutputFormat,
    cli_errors,
    data_opt_option,
    data_option,
    data_root_option,
    format_option,
    parse_pairs,
    print_json,
    stdout_console,
)
from audit_cli.config import DEFAULTS
from audit_cli.data import load_dataset
from audit_cli.shadows.banks import read_bank_info
from audit_cli.shadows.imported import import_bank


def bank_argument_option() -> object:
    return typer.Option(Path(str(DEFAULTS["bank"])), "--bank", metavar="DIR",
                        help="Parent folder the imported bank goes into.")  # fmt: skip



@cli_errors
def bank_import_cmd(
    ctx: typer.Context,
    table: Path = typer.Argument(
        ..., metavar="TABLE", help="A long table (.parquet or .csv) as audit bank export writes."
    ),
    data: str = data_option(..., "The dataset the shadows were trained on (its ids must all be there)."),
    data_opt: list[str] | None = data_opt_option(),
    data_root: Path | None = data_root_option(),
    bank: Path = bank_argument_option(),
    output_format: OutputFormat = format_option(),
) -> None:
    """Validate shadows trained elsewhere and store them as a bank audit run --shadows-from scores."""
    bank = bank_folder(ctx, bank)
    check_bank_folder(bank)  # before reading the table: a file or /proc is no place for banks
    dataset = load_dataset(data, parse_pairs(data_opt, "--data-opt"), data_root=data_root)
    folder = import_bank(table, dataset, bank)
    info = read_bank_info(folder)
    if output_format is OutputFormat.json:
        print_json(info.to_dict())
        return
    stdout_console().print(
        f"imported {info.shadows} shadows into {folder}; audit with audit run --shadows-from {folder}"
    )
