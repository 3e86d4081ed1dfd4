"""`audit forget-list`: draw a seeded random forget list from a dataset's training ids."""

from __future__ import annotations

from pathlib import Path

import typer

from audit_cli.atomic import STDOUT
from audit_cli.cli.common import (
    cli_errors,
    data_opt_option,
    data_option,
    data_root_option,
    download_option,
    output_option,
    overwrite_option,
    parse_pairs,
    seed_option,
    stderr_console,
    stdout_console,
)
from audit_cli.data import load_dataset
from audit_cli.data.forget_list import draw_forget_list


@cli_errors
def forget_list_cmd(
    output: Path = output_option("The id file to write (- for standard output)."),
    data: str = data_option("digits", "Dataset registry name or a .parquet / .npz file."),
    data_opt: list[str] | None = data_opt_option(),
    data_root: Path | None = data_root_option(),
    download: bool = download_option(),
    fraction: float | None = typer.Option(
        None, "--fraction", metavar="FLOAT", help="Share of the training ids to forget."
    ),
    count: int | None = typer.Option(None, "--count", metavar="N", help="Number of training ids to forget."),
    forget_class: int | None = typer.Option(
        None, "--class", metavar="CLASS", help="Draw from this class's training ids only."
    ),
    seed: int = seed_option(0, "Seed of the draw."),
    overwrite: bool = overwrite_option(),
) -> None:
    """Draw a random forget list from a dataset's training ids and write it as an id file."""
    dataset = load_dataset(data, parse_pairs(data_opt, "--data-opt"), data_root=data_root, download=download)
    drawn = draw_forget_list(dataset, output, fraction=fraction, count=count, forget_class=forget_class, seed=seed,
                             overwrite=overwrite)  # fmt: skip
    if str(output) == STDOUT:
        typer.echo(drawn.text, nl=False)
        stderr_console().print(f"drew {len(drawn.ids)} of {drawn.pool} training ids (seed {seed})")
        return
    stdout_console().print(f"wrote {len(drawn.ids)} of {drawn.pool} training ids to {drawn.path} (seed {seed})")
