"""`audit ids`: a dataset split's ids, the ids id files and forget lists use."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from audit_cli.cli.common import OutputFormat, cli_errors, data_opt_option, data_option, data_root_option, parse_pairs
from audit_cli.data import load_dataset
from audit_cli.forget_list import split_ids


@cli_errors
def ids_cmd(
    data: str = data_option("digits", "Dataset registry name or a .parquet / .npz file."),
    data_opt: list[str] | None = data_opt_option(),
    data_root: Path | None = data_root_option(),
    split: str = typer.Option("train", "--split", metavar="train|test|all", help="Which split."),
    forget_class: int | None = typer.Option(None, "--class", metavar="CLASS", help="Only this class's ids."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.text, "--format", help="text (one id per line: an id file) or json."
    ),
) -> None:
    """Print a dataset split's ids (the ids id files and forget lists use)."""
    ids = split_ids(load_dataset(data, parse_pairs(data_opt, "--data-opt"), data_root=data_root), split, forget_class)
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps([int(i) for i in ids]) + "\n")
    else:
        sys.stdout.write("".join(f"{int(i)}\n" for i in ids))
