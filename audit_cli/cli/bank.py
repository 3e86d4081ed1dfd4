"""`audit bank ls` and `audit bank export`: what the shadow banks in a folder are, and their signals as a table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from audit_cli.atomic import check_output_path
from audit_cli.banks import list_banks, read_bank_info, resolve_bank
from audit_cli.cli.common import (
    FLAG,
    AuditGroup,
    OutputFormat,
    cli_errors,
    data_opt_option,
    data_option,
    data_root_option,
    format_option,
    output_option,
    parse_pairs,
    print_json,
    stdout_console,
)
from audit_cli.cli.settings import resolved
from audit_cli.config import DEFAULTS
from audit_cli.data import load_dataset
from audit_cli.inputs import check_bank_folder
from audit_cli.shadows import BANK_FORMAT, export_long, read_bank
from audit_cli.shadows.imported import import_bank

bank_app = typer.Typer(help="List, export and import shadow banks.", no_args_is_help=True, cls=AuditGroup)


def bank_argument() -> object:
    return typer.Argument(
        Path(str(DEFAULTS["bank"])),
        metavar="BANK",
        help="Parent folder of banks (as audit run --bank; not given: AUDIT_BANK or audit.toml's bank, as for "
        "audit run); a bank's own folder works too.",
    )


def bank_argument_option() -> object:
    return typer.Option(Path(str(DEFAULTS["bank"])), "--bank", metavar="DIR",
                        help="Parent folder the imported bank goes into.")  # fmt: skip


def bank_folder(ctx: typer.Context, bank: Path) -> Path:
    """The bank folder typed, else the one `audit run` would use (AUDIT_BANK, audit.toml)."""
    return Path(str(resolved(ctx, {"bank": str(bank)})["bank"]))


@cli_errors
def bank_ls_cmd(
    ctx: typer.Context, bank: Path = bank_argument(), output_format: OutputFormat = format_option()
) -> None:
    """List the shadow banks in a folder: name, method, shadows, dataset."""
    bank = bank_folder(ctx, bank)
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
    for b in banks:
        if not b.current:
            console.print(f"{b.name}: format {b.bank_format}, built by another version of the tool; this one reads "
                          f"format {BANK_FORMAT} only (delete the folder to rebuild it)")  # fmt: skip


@cli_errors
def bank_export_cmd(
    ctx: typer.Context,
    bank: Path = bank_argument(),
    output: Path = output_option("Output table, .parquet or .csv."),
    overwrite: bool = typer.Option(False, "--overwrite", metavar=FLAG, help="Replace the table if it exists."),
) -> None:
    """Write a bank as a long table (shadow, example_id, state, phi_before, phi_after)."""
    check_output_path(output, overwrite=overwrite, suffix=None)  # before reading the bank
    folder = resolve_bank(bank_folder(ctx, bank))
    rows = export_long(read_bank(folder), output, read_bank_info(folder).dataset_fingerprint)
    stdout_console().print(f"wrote {rows} rows to {output}")


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


@cli_errors
def bank_verify_cmd(
    ctx: typer.Context, bank: Path = bank_argument(), output_format: OutputFormat = format_option()
) -> None:
    """Check every complete chunk of a bank against its manifest: checksum, owner, shadows,
    ids and states (exit 2 naming the first chunk that does not match)."""
    folder = resolve_bank(bank_folder(ctx, bank))
    signals = read_bank(folder)
    info = read_bank_info(folder)
    if output_format is OutputFormat.json:
        print_json({"path": str(folder), "verified": True, "shadows": signals.n_shadows})
        return
    stdout_console().print(f"{folder}: {signals.n_shadows} shadows verified (checksums, owner, ids, states); "
                           f"method {info.method or 'none'}")  # fmt: skip
