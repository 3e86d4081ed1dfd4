"""`audit bank ls`, `audit bank verify` and `audit bank export`: what the shadow banks in a folder are, whether
they are intact, and their signals as a table. Reading a bank needs no torch (`audit bank import` is in
``bank_import``)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from audit_cli.atomic import STDOUT, check_output_path
from audit_cli.cli.common import (
    FLAG,
    OutputFormat,
    cli_errors,
    format_option,
    given_on_command_line,
    output_option,
    print_json,
    reads_settings,
    stderr_console,
    stdout_console,
)
from audit_cli.cli.settings import bank_option, resolved
from audit_cli.errors import UsageError
from audit_cli.shadows import BANK_FORMAT, export_long, read_bank
from audit_cli.shadows.banks import list_banks, read_bank_info, resolve_bank


def bank_argument() -> object:
    return typer.Argument(None, metavar="BANK", show_default=False,
                          help="The same as --bank (either, not both).")  # fmt: skip


# The bank commands look where `audit run` builds, and take a bank's own folder too.
BANK_HELP = (
    "Parent folder of banks, as for audit run (not given: AUDIT_BANK or audit.toml's bank, as for audit run); "
    "a bank's own folder works too."
)


def bank_folder(ctx: typer.Context, bank: Path, folder_given: Path | None = None) -> Path:
    """The bank folder typed (``--bank DIR`` or the positional ``BANK``), else the one `audit
    run` would use (AUDIT_BANK, audit.toml)."""
    if folder_given is not None:
        if given_on_command_line(ctx, "bank"):
            raise UsageError(f"the bank is given twice ({folder_given} and --bank {bank})", hint="give --bank DIR only")
        return folder_given
    return Path(str(resolved(ctx, {"bank": str(bank)})["bank"]))


@cli_errors
@reads_settings("bank")
def bank_ls_cmd(
    ctx: typer.Context,
    folder_given: Path | None = bank_argument(),
    bank: Path = bank_option(help=BANK_HELP),
    output_format: OutputFormat = format_option(),
) -> None:
    """List the shadow banks in a folder: name, method, shadows, dataset."""
    bank = bank_folder(ctx, bank, folder_given)
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
@reads_settings("bank")
def bank_export_cmd(
    ctx: typer.Context,
    folder_given: Path | None = bank_argument(),
    bank: Path = bank_option(help=BANK_HELP),
    output: Path = output_option("Output table, .parquet or .csv (- for CSV on standard output)."),
    overwrite: bool = typer.Option(False, "--overwrite", metavar=FLAG, help="Replace the table if it exists."),
) -> None:
    """Write a bank as a long table (shadow, example_id, state, phi_before, phi_after)."""
    to_stdout = str(output) == STDOUT
    if not to_stdout:
        check_output_path(output, overwrite=overwrite, suffix=None)  # before reading the bank
    folder = resolve_bank(bank_folder(ctx, bank, folder_given))
    rows = export_long(read_bank(folder), sys.stdout.buffer if to_stdout else output,
                       read_bank_info(folder).dataset_fingerprint)  # fmt: skip
    (stderr_console() if to_stdout else stdout_console()).print(f"wrote {rows} rows to {output}")


@cli_errors
@reads_settings("bank")
def bank_verify_cmd(
    ctx: typer.Context,
    folder_given: Path | None = bank_argument(),
    bank: Path = bank_option(help=BANK_HELP),
    output_format: OutputFormat = format_option(),
) -> None:
    """Check every complete chunk of a bank against its manifest: checksum, owner, shadows,
    ids and states (exit 2 naming the first chunk that does not match)."""
    folder = resolve_bank(bank_folder(ctx, bank, folder_given))
    signals = read_bank(folder)
    info = read_bank_info(folder)
    if output_format is OutputFormat.json:
        print_json({"path": str(folder), "verified": True, "shadows": signals.n_shadows})
        return
    stdout_console().print(f"{folder}: {signals.n_shadows} shadows verified (checksums, owner, ids, states); "
                           f"method {info.method or 'none'}")  # fmt: skip
