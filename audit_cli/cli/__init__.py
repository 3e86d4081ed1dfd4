"""The ``audit`` command line: one module per command, each a thin Typer wrapper over plain functions.

This module only assembles the app. Shared options, the error boundary and the consoles
are in ``common``; settings shared by `run` and `shadows` in ``settings``; report targets
in ``outputs``. Adding a command is one module plus one line below.

Commands are named here by ``module:function`` and imported only when one runs (or its
own ``--help`` is asked for): most of them need torch, and ``audit --version``, ``audit
--help`` and the commands that only read files start without it.
"""

from __future__ import annotations

import sys

import typer

from audit_cli.cli.common import EXIT_CODES_HELP, FLAG, LazyCommand, lazy_group
from audit_cli.errors import ExitCode
from audit_cli.version import __version__

RUN_SUMMARY = "Audit an unlearned model: shadow attacks, gap checks, reference metrics."

COMMANDS = {
    "train": LazyCommand(
        "audit_cli.cli.train:train_cmd",
        "Train an original model, or a retrained one without a forget set or a class.",
    ),
    "unlearn": LazyCommand(
        "audit_cli.cli.unlearn:unlearn_cmd",
        "Repair a model: unlearn a forget set or a class with one of the methods (mpru: fit an "
        "output filter).",
    ),
    "run": LazyCommand("audit_cli.cli.run:run_cmd", RUN_SUMMARY, help=RUN_SUMMARY + " " + EXIT_CODES_HELP),
    "report": LazyCommand(
        "audit_cli.cli.report:report_cmd",
        "Re-render a saved report without recomputing anything; exits as its run did (its exit "
        "code, 0 for a crossed threshold when the run had --exit-zero).",
    ),
    "shadows": LazyCommand(
        "audit_cli.cli.shadows:shadows_cmd",
        "Build or extend the shadow bank an audit of this model will use (CI caches it).",
    ),
    "sweep": LazyCommand(
        "audit_cli.cli.sweep:sweep_cmd",
        "Sweep a method's parameters: every point unlearned and audited; the chosen one "
        "re-audited on a fresh seed.",
    ),
    "evaluate-attack": LazyCommand(
        "audit_cli.cli.evaluate_attack:evaluate_attack_cmd",
        "Leave-one-shadow-out LiRA, and RMIA beside it: how strong the membership attack is on this recipe.",
    ),
    "methods": LazyCommand(
        "audit_cli.cli.methods:methods_cmd",
        "List the unlearning methods, their parameters with defaults, and what they forget.",
    ),
    "inspect": LazyCommand(
        "audit_cli.cli.inspect:inspect_cmd",
        "Print a model or filter file's metadata, contents summary and sha256; loads nothing "
        "unsafe.",
    ),
    "datasets": LazyCommand(
        "audit_cli.cli.datasets:datasets_cmd",
        "List the built-in datasets and their options.",
    ),
    "archs": LazyCommand(
        "audit_cli.cli.archs:archs_cmd",
        "List the registered architectures and their arguments.",
    ),
    "ids": LazyCommand(
        "audit_cli.cli.ids:ids_cmd",
        "Print a dataset split's ids (the ids id files and forget lists use), or a federated "
        "model's clients'.",
    ),
    "schema": LazyCommand(
        "audit_cli.cli.schema:schema_cmd",
        "Print the JSON Schema of the report -f json writes (schema_version 1).",
    ),
    "forget-list": LazyCommand(
        "audit_cli.cli.forget_list:forget_list_cmd",
        "Draw a random forget list from a dataset's training ids and write it as an id file.",
    ),
}
BANK_COMMANDS = {
    "ls": LazyCommand(
        "audit_cli.cli.bank:bank_ls_cmd",
        "List the shadow banks in a folder: name, method, shadows, dataset.",
    ),
    "export": LazyCommand(
        "audit_cli.cli.bank:bank_export_cmd",
        "Write a bank as a long table (shadow, example_id, state, phi_before, phi_after).",
    ),
    "import": LazyCommand(
        "audit_cli.cli.bank_import:bank_import_cmd",
        "Validate shadows trained elsewhere and store them as a bank audit run --shadows-from "
        "scores.",
    ),
    "verify": LazyCommand(
        "audit_cli.cli.bank:bank_verify_cmd",
        "Check every complete chunk of a bank against its manifest: checksum, owner, shadows, ids "
        "and states (exit 2 naming the first chunk that does not match).",
    ),
}
FL_COMMANDS = {
    "train": LazyCommand(
        "audit_cli.cli.fl:fl_train_cmd",
        "Simulate a federation with FedAvg and write its global model; every client of a round "
        "trains in one vectorized ensemble.",
    ),
}

app = typer.Typer(
    name="audit",
    help="Privacy audit for machine unlearning. " + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=lazy_group(COMMANDS),
    # -h as well as --help, on every command (subcommands inherit the names).
    context_settings={"help_option_names": ["-h", "--help"]},
)
bank_app = typer.Typer(help="List, export and import shadow banks.", no_args_is_help=True,
                       cls=lazy_group(BANK_COMMANDS))  # fmt: skip
fl_app = typer.Typer(help="Federated learning: simulate a federation (FedAvg).", no_args_is_help=True,
                     cls=lazy_group(FL_COMMANDS))  # fmt: skip
app.add_typer(bank_app, name="bank")
app.add_typer(fl_app, name="fl")


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"unlearning-audit {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(
        False, "--version", "-V", metavar=FLAG, callback=version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Privacy audit for machine unlearning."""


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # outside a command (while importing, say)
        sys.exit(int(ExitCode.INTERRUPTED))
