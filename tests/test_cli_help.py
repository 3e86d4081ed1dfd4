"""Every command's --help at 80 and 120 columns: defaults visible, no type placeholders."""

from __future__ import annotations

import re

import click
import pytest
import typer
from typer.testing import CliRunner

from audit_cli.app import app

CLICK_APP = typer.main.get_command(app)


def commands(group=CLICK_APP, prefix=()):
    # Through the group's own lookup: most commands are imported only when one is asked for.
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if hasattr(command, "commands"):
            yield from commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = dict(commands())


def flat(text: str) -> str:
    """Help text without its box drawing and line wrapping."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text))


def shown_default(param) -> str | None:
    """What help must show as this option's default (None: nothing to show)."""
    if param.hidden or param.required or param.default in (None, False, (), []):
        return None
    if getattr(param, "is_flag", False) and param.secondary_opts:
        on = param.opts[0].lstrip("-")
        return on if param.default else param.secondary_opts[0].lstrip("-")
    return str(getattr(param.default, "value", param.default))


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_help_shows_every_default_and_no_placeholder(path, columns):
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    text = flat(result.stdout)
    assert "<bool>" not in text and "<list[str]>" not in text and "<str>" not in text, text
    assert "…" not in text, text  # rich crops what does not fit: a flag name or a default lost
    for param in COMMANDS[path].params:
        default = shown_default(param)
        if default is not None:
            assert f"[default: {default}]" in text, (param.name, text)
        if not param.hidden:  # every option and positional argument says what it is
            assert param.help, (path, param.name)
            assert flat(param.help)[:30] in text, (param.name, text)


def test_run_help_groups_its_options_and_keeps_bracketed_text():
    text = flat(CliRunner(env={"COLUMNS": "120"}).invoke(app, ["run", "--help"]).stdout)
    for panel in ("Inputs", "Gate", "Shadows", "Output", "Data", "Execution"):
        assert f" {panel} " in text
    assert "[tool.unlearning-audit]" in text  # rich markup swallowed it once
    assert "[default: 0.1]" in text and "[default: 64]" in text and "[default: .audit-bank]" in text
