"""The ``audit`` command line: one module per command, each a thin Typer wrapper over plain functions.

This module only assembles the app. Shared options, the error boundary and the consoles
are in ``common``; settings shared by `run` and `shadows` in ``settings``; report targets
in ``outputs``. Adding a command is one module plus one line below.
"""

from __future__ import annotations

import sys

import typer

from audit_cli.cli.archs import archs_cmd
from audit_cli.cli.bank import bank_app, bank_export_cmd, bank_import_cmd, bank_ls_cmd, bank_verify_cmd
from audit_cli.cli.common import EXIT_CODES_HELP, FLAG, AuditCommand, AuditGroup
from audit_cli.cli.datasets import datasets_cmd
from audit_cli.cli.evaluate_attack import evaluate_attack_cmd
from audit_cli.cli.fl import fl_app, fl_train_cmd
from audit_cli.cli.forget_list import forget_list_cmd
from audit_cli.cli.ids import ids_cmd
from audit_cli.cli.inspect import inspect_cmd
from audit_cli.cli.methods import methods_cmd
from audit_cli.cli.report import report_cmd
from audit_cli.cli.run import run_cmd
from audit_cli.cli.shadows import shadows_cmd
from audit_cli.cli.sweep import sweep_cmd
from audit_cli.cli.train import train_cmd
from audit_cli.cli.unlearn import unlearn_cmd
from audit_cli.errors import ExitCode
from audit_cli.version import __version__

app = typer.Typer(
    name="audit",
    help="Privacy audit for machine unlearning. " + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=AuditGroup,
)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"unlearning-audit {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(
        False, "--version", metavar=FLAG, callback=version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Privacy audit for machine unlearning."""


COMMANDS = {
    "train": train_cmd,
    "unlearn": unlearn_cmd,
    "run": run_cmd,
    "report": report_cmd,
    "shadows": shadows_cmd,
    "sweep": sweep_cmd,
    "evaluate-attack": evaluate_attack_cmd,
    "methods": methods_cmd,
    "inspect": inspect_cmd,
    "datasets": datasets_cmd,
    "archs": archs_cmd,
    "ids": ids_cmd,
    "forget-list": forget_list_cmd,
}
HELP = {"run": "Audit an unlearned model: shadow attacks, gap checks, reference metrics. " + EXIT_CODES_HELP}

for name, command in COMMANDS.items():
    app.command(name, help=HELP.get(name), cls=AuditCommand)(command)
bank_app.command("ls", cls=AuditCommand)(bank_ls_cmd)
bank_app.command("export", cls=AuditCommand)(bank_export_cmd)
bank_app.command("import", cls=AuditCommand)(bank_import_cmd)
bank_app.command("verify", cls=AuditCommand)(bank_verify_cmd)
app.add_typer(bank_app, name="bank")
fl_app.command("train", cls=AuditCommand)(fl_train_cmd)
app.add_typer(fl_app, name="fl")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # outside a command (while importing, say)
        sys.exit(int(ExitCode.INTERRUPTED))
