"""`audit archs`: the registered architectures and scikit-learn models, with their arguments."""

from __future__ import annotations

from rich.table import Table

from audit_cli.cli.common import OutputFormat, cli_errors, format_option, print_json, stdout_console
from audit_cli.models.architectures import ARCHITECTURES
from audit_cli.models.sklearn_params import SKLEARN_ARCHS


def list_archs() -> list[dict]:
    """Networks (with their arguments' defaults), then scikit-learn models (their own parameters)."""
    networks = [
        {"name": e.name, "family": "network", "description": e.description, "arguments": dict(e.defaults)}
        for e in ARCHITECTURES.values()
    ]
    sklearn = [
        {
            "name": name,
            "family": "scikit-learn",
            "description": f"scikit-learn {cls.__name__} (flat data; saved as .skops)",
            "arguments": None,
        }
        for name, cls in SKLEARN_ARCHS.items()
    ]
    return networks + sklearn


@cli_errors
def archs_cmd(output_format: OutputFormat = format_option()) -> None:
    """List the registered architectures and their arguments."""
    archs = list_archs()
    if output_format is OutputFormat.json:
        print_json(archs)
        return
    table = Table("name", "description", "arguments (defaults)")
    for a in archs:
        args = a["arguments"]
        shown = ", ".join(f"{k}={v}" for k, v in args.items()) if args is not None else "its parameters, e.g. max_depth"
        table.add_row(a["name"], a["description"], shown)
    stdout_console().print(table)
