"""`audit ids`: a dataset split's ids, the ids id files and forget lists use."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from audit_cli.cli.common import (
    OutputFormat,
    cli_errors,
    data_opt_option,
    data_option,
    data_root_option,
    download_option,
    parse_pairs,
    stderr_console,
    stdout_console,
)
from audit_cli.data import load_dataset
from audit_cli.data.forget_list import split_ids
from audit_cli.errors import UsageError
from audit_cli.federated.partition import client_ids, client_table


@cli_errors
def ids_cmd(
    data: str | None = data_option(None, "Dataset registry name or a .parquet / .npz file (default: digits)."),
    data_opt: list[str] | None = data_opt_option(),
    data_root: Path | None = data_root_option(),
    download: bool = download_option(),
    split: str | None = typer.Option(None, "--split", metavar="train|test|all", help="Which split (default: train)."),
    forget_class: int | None = typer.Option(None, "--class", metavar="CLASS", help="Only this class's ids."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.text, "--format", "-f", help="text (one id per line: an id file) or json."
    ),
    model: Path | None = typer.Option(
        None, "--model", "-m", metavar="FILE", help="A federated model (audit fl train): its clients' ids."
    ),
    client: list[int] | None = typer.Option(
        None, "--client", metavar="CLIENT", help="With --model: this client's training ids (repeatable)."
    ),
    partition: bool = typer.Option(False, "--partition", help="With --model: the partition, one row per client."),
    clients: bool = typer.Option(False, "--clients", hidden=True, help="The old name of --partition."),
) -> None:
    """Print a dataset split's ids (the ids id files and forget lists use), or a federated model's clients'."""
    if clients:
        # Renamed: `audit fl train --clients N` is a number; here it was a switch.
        stderr_console().print("warning: --clients is now --partition; the old name will be removed in the next "
                               "release", markup=False)  # fmt: skip
        partition = True
    if model is not None:
        # The model records its dataset, and its clients hold training examples of every class.
        given = [name for name, value in (("--data", data), ("--data-opt", data_opt), ("--split", split),
                                          ("--class", forget_class)) if value not in (None, [])]  # fmt: skip
        if given:
            raise UsageError(f"with --model, {given[0]} does not apply: a federated model's ids are its clients' "
                             "training ids, of the dataset it records")  # fmt: skip
        federated_ids(model, data_root, client or [], partition, output_format)
        return
    if client or partition:
        raise UsageError("--client and --partition read a federated model's partition: pass --model FILE")
    dataset = load_dataset("digits" if data is None else data, parse_pairs(data_opt, "--data-opt"), data_root=data_root,
                           download=download)  # fmt: skip
    ids = split_ids(dataset, "train" if split is None else split, forget_class)
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps([int(i) for i in ids]) + "\n")
    else:
        sys.stdout.write("".join(f"{int(i)}\n" for i in ids))


def federated_ids(model: Path, data_root: Path | None, client: list[int], table: bool, output_format) -> None:
    """A federated model's clients: the ids of some (an id file), or the whole partition."""
    # Here, not at the top: reading a checkpoint needs torch, and `audit ids --data` does not.
    from audit_cli.federated.model import load_federated

    if bool(client) == table:
        raise UsageError("with --model, pass --client N (repeatable) or --partition")
    _, dataset, federation = load_federated(model, data_root)
    if table:
        rows = client_table(dataset, federation)
        if output_format is OutputFormat.json:
            sys.stdout.write(json.dumps(rows) + "\n")
            return
        out = Table("client", "n", "status", *[str(c) for c in range(dataset.num_classes)], title="examples per class")
        for row in rows:
            out.add_row(str(row["client"]), str(row["n"]), row["status"], *map(str, row["per_class"]))
        stdout_console().print(out)
        return
    ids = client_ids(dataset, federation, client)
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps([int(i) for i in ids]) + "\n")
    else:
        sys.stdout.write("".join(f"{int(i)}\n" for i in ids))
