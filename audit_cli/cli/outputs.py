"""Where a report goes: ``-f FORMAT[=PATH]`` targets, parsed before the audit and written after it.

`audit run` and `audit report` share this. Targets are parsed before any work so that a
typo does not cost a run; files are written only once the report is complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import typer
from rich.console import Console

from audit_cli.atomic import STDOUT, atomic_path, check_output_path
from audit_cli.errors import UsageError
from audit_cli.report import AuditReport
from audit_cli.report.formats import BINARY, FORMATS, render_markdown
from audit_cli.report.terminal import render

Target = tuple[str, Path | None]
"""A report format and its file; None: stdout."""


def parse_formats(formats: list[str] | None, output: Path | None) -> list[Target]:
    """``-f markdown=summary.md -f json`` -> [(format, path or None for --output/stdout)];
    ``-`` as a path is standard output."""
    targets: list[Target] = []
    for item in formats or []:
        name, sep, path = item.partition("=")
        if name not in FORMATS:
            raise UsageError(f"unknown report format {name!r}", hint=f"formats: {', '.join(FORMATS)}")
        dest = Path(path) if sep else output
        targets.append((name, None if dest is None or str(dest) == STDOUT else dest))
    if sum(path is None for _, path in targets) > 1:
        raise UsageError("only one -f FORMAT may go to stdout; give the others =PATH")
    for name, path in targets:
        if path is None and name in BINARY:
            raise UsageError(f"-f {name} is binary and goes to a file", hint=f"-f {name}=PATH")
    return targets


def prepare_targets(targets: list[Target], output: Path | None = None, *, overwrite: bool = False,
                    inputs: Sequence[Path | None] = ()) -> list[Target]:  # fmt: skip
    """Check every report file before any shadow trains; its missing folders are created
    only when the report is written (a refused audit leaves nothing behind).

    A path that is a folder, a device or FIFO, an existing file without ``--overwrite``, a
    parent that cannot be created or written, two formats to one file, an ``--output``
    that no ``-f FORMAT`` goes to, or one of the run's ``inputs`` (the model, the forget
    list: ``--overwrite`` would replace them) is a usage error now, not after an hour of
    shadows.
    """
    if output is not None and str(output) != STDOUT and not any(path == output for _, path in targets):
        raise UsageError(f"--output {output} receives nothing", hint="name the format too: -f json -o PATH")
    files = [path for _, path in targets if path is not None]
    if len({p.resolve() for p in files}) != len(files):
        raise UsageError("two report formats go to the same file")
    check_step_summary()
    read = {Path(p).resolve() for p in inputs if isinstance(p, (str, Path))}
    for name, path in targets:
        if path is not None and path.resolve() in read:
            raise UsageError(f"-f {name}: {path} is an input of this audit; the report would replace it")
    for name, path in targets:
        if path is not None:
            _check_writable(path, f"-f {name}", overwrite)
    return targets


def _check_writable(path: Path, flag: str, overwrite: bool) -> None:
    """The checks every output passes (atomic.check_output_path: a regular file, not
    replaced without --overwrite), and for missing folders, that they can be created: the
    nearest existing one is a writable folder. Nothing is created yet."""
    if path.is_dir():
        raise UsageError(f"{flag}: {path} is a folder; give a file name")
    parent = path.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists() or p.is_symlink()), None)
    if existing is None or not existing.is_dir():
        where = "a file has that name" if existing == parent else f"{existing} is a file" if existing else "no folder"
        raise UsageError(f"{flag}: cannot create folder {parent}: {where}")
    if existing != parent:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UsageError(f"{flag}: cannot create folder {parent} (permission denied in {existing})")
        return  # the file is new: nothing there to overwrite
    try:
        check_output_path(path, overwrite=overwrite, suffix=None)
    except UsageError as exc:
        raise UsageError(f"{flag}: {exc.message}", hint=exc.hint) from None
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag}: cannot write {path} (permission denied)")


def write_report(report: AuditReport, targets: list[Target], *, verbose: bool = False) -> None:
    """Terminal report (unless a format claims stdout), the requested files, and the
    GitHub step summary. Files are written only now, when the report is complete."""
    if not any(path is None for _, path in targets):
        # Wrapping on: the verdict panel would crop long sentences at 80 columns otherwise.
        render(report, Console(highlight=False), verbose=verbose)
    # Every format is rendered before any file is written, then all files are written
    # together: a renderer that fails leaves none of them behind.
    texts = [(path, FORMATS[name](report)) for name, path in targets]
    for path, _ in texts:
        if path is not None:  # checked by prepare_targets, created only now
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create folder {path.parent} ({exc.strerror or exc})") from None
    with ExitStack() as stack:
        staged = [(stack.enter_context(atomic_path(path)), text) for path, text in texts if path is not None]
        for tmp, text in staged:
            if isinstance(text, bytes):
                tmp.write_bytes(text)
            else:
                tmp.write_text(text, encoding="utf-8", newline="\n")
    for path, text in texts:
        if path is None:
            typer.echo(text, nl=False)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        # A side channel: the verdict and its exit code stand whatever happens to it (the
        # path was checked before the audit started).
        try:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(render_markdown(report))
        except OSError as exc:
            Console(stderr=True, highlight=False).print(
                f"warning: GITHUB_STEP_SUMMARY {summary}: {exc.strerror or exc}; the step summary was not written",
                markup=False)  # fmt: skip


def check_step_summary() -> None:
    """GITHUB_STEP_SUMMARY, when set, must be a file the report can be appended to: said
    before the audit, not after it."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return
    path = Path(summary)
    appendable = os.access(path, os.W_OK) if path.exists() else (
        path.parent.is_dir() and os.access(path.parent, os.W_OK | os.X_OK))  # fmt: skip
    if path.is_dir() or not appendable:
        raise UsageError(f"GITHUB_STEP_SUMMARY={summary} is not a file the Markdown report can be appended to",
                         hint="unset it, or point it at a writable file")  # fmt: skip
