"""Where a report goes: ``-f FORMAT[=PATH]`` targets, parsed before the audit and written after it.

`audit run` and `audit report` share this. Targets are parsed before any work so that a
typo does not cost a run; files are written only once the report is complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from audit_cli.atomic import atomic_write_text
from audit_cli.errors import UsageError
from audit_cli.report import AuditReport
from audit_cli.report.formats import FORMATS, render_markdown
from audit_cli.report.terminal import render

Target = tuple[str, Path | None]
"""A report format and its file; None: stdout."""


def parse_formats(formats: list[str] | None, output: Path | None) -> list[Target]:
    """``-f markdown=summary.md -f json`` -> [(format, path or None for --output/stdout)]."""
    targets: list[Target] = []
    for item in formats or []:
        name, sep, path = item.partition("=")
        if name not in FORMATS:
            raise UsageError(f"unknown report format {name!r}", hint=f"formats: {', '.join(FORMATS)}")
        targets.append((name, Path(path) if sep else output))
    if sum(path is None for _, path in targets) > 1:
        raise UsageError("only one -f FORMAT may go to stdout; give the others =PATH")
    return targets


def prepare_targets(targets: list[Target], output: Path | None = None) -> list[Target]:
    """Check every report file before any shadow trains, and create its missing folders.

    A path that is a folder, a parent that cannot be created or written, or an ``--output``
    that no ``-f FORMAT`` goes to is a usage error now, not after an hour of shadows.
    """
    if output is not None and not any(path == output for _, path in targets):
        raise UsageError(f"--output {output} receives nothing", hint="name the format too: -f json -o PATH")
    for name, path in targets:
        if path is not None:
            _check_writable(path, f"-f {name}")
    return targets


def _check_writable(path: Path, flag: str) -> None:
    if path.is_dir():
        raise UsageError(f"{flag}: {path} is a folder; give a file name")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{flag}: cannot create folder {parent}: a file has that name") from None
    except OSError as exc:
        raise UsageError(f"{flag}: cannot create folder {parent} ({exc.strerror or exc})") from None
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag}: cannot write {path} (permission denied)")


def write_report(report: AuditReport, targets: list[Target], *, verbose: bool = False) -> None:
    """Terminal report (unless a format claims stdout), the requested files, and the
    GitHub step summary. Files are written only now, when the report is complete."""
    if not any(path is None for _, path in targets):
        # Wrapping on: the verdict panel would crop long sentences at 80 columns otherwise.
        render(report, Console(highlight=False), verbose=verbose)
    for name, path in targets:
        text = FORMATS[name](report)
        if path is None:
            typer.echo(text, nl=False)
        else:
            atomic_write_text(path, text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(render_markdown(report))
