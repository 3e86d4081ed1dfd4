"""`audit methods`: the unlearning methods, their parameters with defaults, and what they forget."""

from __future__ import annotations

from rich.table import Table

from audit_cli.cli.common import OutputFormat, cli_errors, format_option, print_json, stdout_console
from audit_cli.unlearn import METHODS, params_dict


def list_methods() -> list[dict]:
    """One entry per registered method, in registry order."""
    return [
        {
            "name": entry.name,
            "forgets": [k for k in ("random", "class") if k in entry.supports],
            "params": params_dict(entry.params()),
            "produces": entry.produces,
            "augmentable": entry.augmentable,
            "description": entry.description,
        }
        for entry in METHODS.values()
    ]


@cli_errors
def methods_cmd(output_format: OutputFormat = format_option()) -> None:
    """List the unlearning methods, their parameters with defaults, and what they forget."""
    methods = list_methods()
    if output_format is OutputFormat.json:
        print_json(methods)
        return
    table = Table("method", "forgets", "parameters (defaults)", "description")
    for m in methods:
        params = ", ".join(f"{k}={v}" for k, v in m["params"].items())
        table.add_row(m["name"], ", ".join(m["forgets"]), params, m["description"])
    stdout_console().print(table)
