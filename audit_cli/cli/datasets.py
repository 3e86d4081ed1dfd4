"""`audit datasets`: the built-in datasets and their options."""

from __future__ import annotations

from rich.table import Table

from audit_cli.cli.common import OutputFormat, cli_errors, format_option, print_json, stdout_console
from audit_cli.data import DATASETS


def list_datasets() -> list[dict]:
    """One entry per registered dataset; ``path`` is how file datasets are named, not an option."""
    return [
        {
            "name": entry.name,
            "description": entry.description,
            "options": {k: v for k, v in entry.options.items() if k != "path"},
            "needs_root": entry.needs_root,
        }
        for entry in DATASETS.values()
    ]


@cli_errors
def datasets_cmd(output_format: OutputFormat = format_option()) -> None:
    """List the built-in datasets and their options."""
    datasets = list_datasets()
    if output_format is OutputFormat.json:
        print_json(datasets)
        return
    table = Table("name", "description", "options (defaults)")
    for d in datasets:
        table.add_row(d["name"], d["description"], ", ".join(f"{k}={v}" for k, v in d["options"].items()))
    stdout_console().print(table)
