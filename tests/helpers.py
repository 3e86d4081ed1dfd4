"""Helpers the CLI tests share: invoking the app and checking the CLI's contract.

The contract of an error: its exit code, no traceback, nothing on stdout, one ``error:``
line on stderr and at most one ``hint:`` line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from audit_cli.app import app


def invoke(runner: CliRunner, *args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def assert_ok(result) -> None:
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"
    )
    assert "Traceback" not in result.output


def assert_error(result, pattern: str, *, code: int = 2, hint: str | None = None) -> str:
    """The error contract (see the module docstring); returns the error line."""
    detail = f"exit {result.exit_code}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}\n{result.exception!r}"
    assert result.exit_code == code, detail
    assert isinstance(result.exception, SystemExit), detail  # not an exception escaping the app
    assert "Traceback" not in result.output, detail
    assert result.stdout == "", detail  # messages go to stderr only
    lines = result.stderr.rstrip("\n").split("\n")
    assert lines[0].startswith("error: "), detail
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), detail
    assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"
    if hint is not None:
        assert len(lines) == 2 and re.search(hint, lines[1]), detail
    return lines[0]


def table_row(stdout: str, label: str) -> tuple[float, float]:
    """(before, after) from the accuracy table row called ``label``."""
    m = re.search(rf"│ {re.escape(label)}\s*│\s*([0-9.]+)\s*│\s*([0-9.]+)\s*│", stdout)
    assert m, f"no row {label!r} in:\n{stdout}"
    return float(m.group(1)), float(m.group(2))


def inspect_json(runner: CliRunner, path: Path) -> dict:
    result = invoke(runner, "inspect", path, "--format", "json")
    assert_ok(result)
    return json.loads(result.stdout)
