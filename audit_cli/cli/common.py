"""What every command shares: the error boundary, consoles, the progress bar, ``name=value``
parsing, machine output, and the option definitions several commands take.

Domain errors are caught once, here (``cli_errors``), and become one line on stderr plus an
exit code (see ``audit_cli.errors.ExitCode``). Results go to stdout; messages and progress
to stderr. An option several commands take is defined once below, so its name, help and
default cannot drift between them.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import importlib
import inspect
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperCommand, TyperGroup
from typer.models import ArgumentInfo

from audit_cli.config import DEFAULTS
from audit_cli.errors import AuditError, ExitCode, UsageError
from audit_cli.files import check_printable

EXIT_CODES_HELP = (
    "Exit codes: 0 pass, 1 threshold crossed, 2 usage or input error, 3 inconclusive, "
    "4 unsafe artifact refused, 70 internal error, 130 interrupted."
)

F = TypeVar("F", bound=Callable[..., Any])


READS_SETTINGS = "audit_settings"


def reads_settings(*names: str) -> Callable[[F], F]:
    """Mark a command function as resolving these settings (flag > ``AUDIT_*`` > file >
    default; all of them when none is named): its help ends naming their variables."""

    def mark(fn: F) -> F:
        setattr(fn, READS_SETTINGS, frozenset(names or DEFAULTS))
        return fn

    return mark


def env_name(setting: str) -> str:
    """The environment variable a setting is read from: ``fail_above`` -> ``AUDIT_FAIL_ABOVE``."""
    return f"AUDIT_{setting.upper()}"


# Environment variables the tool reads besides the settings' (audit_cli/cli/threads.py, cli_errors).
OTHER_VARIABLES = ("AUDIT_DEBUG", "AUDIT_THREADS")


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A warning per ``AUDIT_*`` variable the tool does not read, naming the closest one it
    does: ``AUDIT_FAIL_ABOVEE=0.2`` would otherwise be ignored in silence, the gate run at
    the default threshold."""
    known = [env_name(k) for k in DEFAULTS] + list(OTHER_VARIABLES)
    out = []
    for name in sorted(env):
        if name.startswith("AUDIT_") and name not in known:
            # Compared without the shared prefix, which would make every name look close.
            close = difflib.get_close_matches(name[6:], [k[6:] for k in known], n=1, cutoff=0.6)
            hint = f"; did you mean AUDIT_{close[0]}?" if close else f" (the tool reads {', '.join(known)})"
            out.append(f"warning: {name} is not a variable this tool reads; it is ignored{hint}")
    return out


# -q and -v of a command that has no quiet or verbose of its own (AuditCommand): set by
# their callbacks on every invocation, so one process running several commands (tests,
# the Python API) starts each from its own flags.
QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("quiet", default=False)
VERBOSE: contextvars.ContextVar[bool] = contextvars.ContextVar("verbose", default=False)


def stderr_console() -> Console:
    """Notes, warnings and progress (silent under -q); errors use ``error_console``."""
    # Created per call so tests that capture stderr (CliRunner) see the output.
    return Console(stderr=True, highlight=False, soft_wrap=True, quiet=QUIET.get())


def error_console() -> Console:
    """Errors: printed whatever -q says."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def cli_errors(fn: F) -> F:
    """Turn domain errors into one stderr line and their exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        err = error_console()
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except AuditError as exc:
            # Messages quote user input (id file lines, paths): never read them as markup.
            err.print(f"[bold red]error:[/] {escape(exc.message)}")
            if exc.hint:
                err.print(f"[dim]hint:[/] {escape(exc.hint)}")
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            err.print("interrupted; nothing partial was written")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except OSError as exc:
            # The system refused a path the user named (no such folder, /proc, a full disk):
            # the user's to fix, not a bug. Writes are atomic, so nothing partial was left.
            where = f": {exc.filename}" if exc.filename else ""
            err.print(f"[bold red]error:[/] {escape((exc.strerror or str(exc)) + str(where))}")
            raise typer.Exit(int(ExitCode.USAGE)) from None
        except Exception as exc:  # a bug: say so plainly, details on request
            err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}")
            if os.environ.get("AUDIT_DEBUG") or VERBOSE.get():
                err.print(traceback.format_exc())
            else:
                err.print("[dim]hint:[/] pass -v (or set AUDIT_DEBUG=1) for the traceback, and please report it")
            raise typer.Exit(int(ExitCode.INTERNAL)) from None

    return wrapper  # type: ignore[return-value]


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; malformed pairs are usage errors."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects name=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


class ProgressMode(StrEnum):
    """How work in progress is shown on stderr."""

    auto = "auto"
    """A bar on a terminal, lines otherwise (a CI log)."""
    bar = "bar"
    lines = "lines"
    """One line per step: done of total, elapsed, estimated time left."""
    none = "none"


@contextmanager
def progress_bar(label: str, quiet: bool, unit: str = "model-epochs", mode: str = "auto",
                 every: float = 0.0) -> Iterator[Callable[[int, int], None] | None]:  # fmt: skip
    """Progress on stderr while the block runs; yields its update callback, or None when
    there is nothing to show (``quiet`` or ``mode`` none). ``auto``: a rich bar on a
    terminal; otherwise (a CI log, ``2>log``) one plain line per update (``lines``), at
    most one per ``every`` seconds but always the last, so a log shows the job moving."""
    console = stderr_console()
    mode = ProgressMode.none if quiet else ProgressMode(mode)
    if mode == ProgressMode.auto:
        mode = ProgressMode.bar if console.is_terminal else ProgressMode.lines
    if mode == ProgressMode.none:
        yield None
    elif mode == ProgressMode.lines:
        yield progress_lines(label, unit, every, lambda line: console.print(line, markup=False))
    else:
        columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(label, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)


def progress_lines(label: str, unit: str, every: float, emit: Callable[[str], None],
                   clock: Callable[[], float] = time.monotonic) -> Callable[[int, int], None]:  # fmt: skip
    """An update callback that emits ``label: done/total unit, Ns elapsed, about Ns left``.
    The time left is the pace since the first update applied to what remains: the first
    update's count may hold work reused rather than done (a bank's existing shadows), and
    its time the process's start, so neither enters the pace."""
    start = clock()
    first: list[tuple[float, int]] = []
    last = [-float("inf")]

    def update(done: int, total: int) -> None:
        now = clock()
        if not first:
            first.append((now, done))
        if done < total and now - last[0] < every:
            return
        last[0] = now
        line = f"{label}: {done}/{total} {unit}, {now - start:.0f}s elapsed"
        t0, d0 = first[0]
        if d0 < done < total:
            line += f", about {(now - t0) / (done - d0) * (total - done):.0f}s left"
        emit(line)

    return update


def lock_notice(timeout: float) -> Callable[[str], None]:
    """What a build prints on stderr when another run holds its bank's lock: without it a
    run (a CI job, with -q) could wait up to --lock-timeout in silence."""

    def notice(holder: str) -> None:
        stderr_console().print(f"waiting for the shadow bank's lock, held by {escape(holder)} (at most "
                               f"{timeout:g} s: --lock-timeout)")  # fmt: skip

    return notice


def stderr_notice(line: str) -> None:
    """A line the audit says before its work (e.g. a pass its counts cannot reach), on stderr
    so that it reaches a CI log beside -q and never mixes into a report on stdout."""
    stderr_console().print(f"note: {escape(line)}")


class OutputFormat(StrEnum):
    """How a listing, inspect or result is printed on stdout."""

    text = "text"
    json = "json"


def print_json(doc: object) -> None:
    """One JSON document on stdout (sorted keys: stable for diffs and golden files)."""
    # default=str: option defaults may be tuples or paths; JSON has lists and strings.
    typer.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))


def given_on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed this option (its default is then not a flag that outranks
    the environment and configuration files)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


# -- help rendering -----------------------------------------------------------------------------


class AuditCommand(TyperCommand):
    """A command whose ``--help`` flag shows no ``<bool>`` placeholder, and whose
    positional arguments show their help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # click 8.5's Parameter sets ``help`` itself, after typer (0.20) set an argument's:
        # it came out None and ``--help`` listed arguments bare. Put it back from the
        # command's signature (typer's callback wraps ours and keeps its signature).
        if self.callback is None:
            return
        declared = {name: p.default for name, p in inspect.signature(self.callback).parameters.items()}
        for param in self.params:
            info = declared.get(param.name)
            if isinstance(info, ArgumentInfo) and info.help and not getattr(param, "help", None):
                param.help = info.help
        # Settings: help ends naming the variables they are also read from (audit_cli/config.py
        # resolves flag > environment > file, so click itself does not read them). In one
        # paragraph, not beside each option: longer option help crops flag names at 80 columns.
        settings = getattr(self.callback, READS_SETTINGS, ())
        names = [env_name(p.name) for p in self.params if isinstance(p, click.Option) and p.name in settings]
        if names:
            self.epilog = (f"Environment: {', '.join(names)} (a flag outranks its variable, which outranks "
                           "audit.toml or pyproject.toml).")  # fmt: skip
        # -q and -v on every command: where a command has no quiet or verbose of its own,
        # these (not passed to it) silence notes and progress, or show an internal error's traceback.
        own = {p.name for p in self.params}
        self.own_flags = own & {"quiet", "verbose"}
        if "quiet" not in own:
            self.params.append(click.Option(["--quiet", "-q"], is_flag=True, default=False, expose_value=False,
                                            callback=lambda _c, _p, v: QUIET.set(bool(v)),
                                            help="No notes, warnings or progress on stderr (errors still print)."))
        if "verbose" not in own:
            self.params.append(click.Option(["--verbose", "-v"], is_flag=True, default=False, expose_value=False,
                                            callback=lambda _c, _p, v: VERBOSE.set(bool(v)),
                                            help="On an internal error, print its traceback (as AUDIT_DEBUG=1)."))

    def invoke(self, ctx: click.Context) -> Any:
        # A command's own -q or -v means what it says there; the shared switches stay off.
        for name, var in (("quiet", QUIET), ("verbose", VERBOSE)):
            if name in self.own_flags:
                var.set(False)
        for line in unknown_variables(os.environ):  # a misspelt AUDIT_* would be ignored in silence
            stderr_console().print(line, markup=False)
        # Every path and name typed on the command line (--model, --bank, -o, -f FORMAT=PATH,
        # --config, --data-root, ids...) is refused here, in one place, if it holds a control
        # character: before the command creates a folder or file named by it.
        for param in self.params:
            value = ctx.params.get(param.name)
            for item in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(item, (str, os.PathLike)):
                    name = param.opts[0] if isinstance(param, click.Option) else (param.metavar or param.name)
                    try:
                        check_printable(item, name)
                    except AuditError as exc:
                        # No context: one error line, without the "see --help" hint.
                        raise click.UsageError(exc.message) from None
        return super().invoke(ctx)

    def get_help_option(self, ctx):  # type: ignore[no-untyped-def]
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


@dataclass(frozen=True)
class LazyCommand:
    """A command whose module is imported only when it runs or its own ``--help`` is shown.

    Most commands need torch, which takes seconds and a gigabyte to import; ``audit
    --version``, ``audit --help`` and the commands that only read files (report, inspect,
    listings) must not pay for it, nor die with it where memory is capped."""

    target: str
    """``module:function`` of the Typer command function."""
    summary: str
    """The first paragraph of its help, shown in its group's listing without importing it
    (tests/test_startup.py pins it to the function's docstring)."""
    help: str | None = None
    """Its full help, where that is not the function's docstring."""

    def load(self, name: str) -> click.Command:
        module, _, attr = self.target.partition(":")
        function = getattr(importlib.import_module(module), attr)
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(name, help=self.help, cls=AuditCommand)(function)
        return typer.main.get_command(single)


class AuditGroup(TyperGroup):
    """A command group whose ``--help`` flag shows no ``<bool>`` placeholder, whose parse
    errors (a bad value, an unknown option or command, a missing option) are one line on
    stderr like every other usage error, not a boxed panel, and whose ``lazy`` commands
    are imported only when one of them is run (``lazy_group``)."""

    lazy: ClassVar[Mapping[str, LazyCommand]] = {}
    _listing = False
    _loaded: dict[str, click.Command] | None = None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(name for name in super().list_commands(ctx) if name not in self.lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # the group's help lists it: its summary is enough
            return click.Command(cmd_name, help=entry.summary, short_help=entry.summary)
        if self._loaded is None:
            self._loaded = {}
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = entry.load(cmd_name)
        return self._loaded[cmd_name]

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # Typer suggests from the commands it built, which leaves out the lazy ones.
            matches = difflib.get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if matches and "Did you mean" not in exc.message:
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
            raise

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_help_option(self, ctx):  # type: ignore[no-untyped-def]
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError:
            sys.exit(int(ExitCode.USAGE))  # the help is already printed
        except click.ClickException as exc:
            # click repeats its suggestion for a mistyped command ("Did you mean 'run'?" twice).
            message = re.sub(r"( Did you mean [^?]*\?)\1+", r"\1", exc.format_message())
            err = error_console()
            err.print(f"[bold red]error:[/] {escape(message)}")
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                err.print(f"[dim]hint:[/] see {escape(ctx.command_path)} --help")
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:  # end of input where input was read
            error_console().print("interrupted; nothing partial was written")
            sys.exit(int(ExitCode.INTERRUPTED))
        sys.exit(code if isinstance(code, int) else 0)


def lazy_group(commands: Mapping[str, LazyCommand]) -> type[AuditGroup]:
    """An ``AuditGroup`` class (Typer's ``cls=``) whose commands are ``commands``, imported on use."""
    return type("LazyAuditGroup", (AuditGroup,), {"lazy": dict(commands)})


def literal(text: str) -> str:
    """Help text shown as written: rich markup would swallow ``[tool.unlearning-audit]``."""
    return escape(text)


# -- options several commands take --------------------------------------------------------------
# Factories, not shared instances: a command may put an option in its own help panel.

FLAG = ""
"""Metavar of a boolean flag: it takes no value, so help shows none."""
PAIR = "NAME=VALUE"


def data_option(default: str | None, help: str, panel: str | None = None) -> Any:
    return typer.Option(default, "--data", metavar="NAME|FILE", help=help, rich_help_panel=panel)


def data_opt_option(panel: str | None = None) -> Any:
    return typer.Option(
        None,
        "--data-opt",
        metavar=PAIR,
        help="Dataset option name=value (repeatable), e.g. num_samples=2000.",
        rich_help_panel=panel,
    )


def data_root_option(panel: str | None = None) -> Any:
    return typer.Option(
        None, "--data-root", metavar="DIR", help="Folder of torchvision datasets.", rich_help_panel=panel
    )


def download_option(panel: str | None = None) -> Any:
    return typer.Option(False, "--download", metavar=FLAG, rich_help_panel=panel,
                        help="Allow downloading a torchvision dataset into --data-root.")  # fmt: skip


def arch_option(panel: str | None = None) -> Any:
    help = "The architecture of a checkpoint without metadata (a plug-in factory is imported)."
    return typer.Option(None, "--arch", metavar="NAME|MODULE:FACTORY", help=help, rich_help_panel=panel)


def strip_prefix_option(panel: str | None = None) -> Any:
    help = "Remove this prefix from every weight's key (a wrapper's, e.g. module.) before loading."
    return typer.Option(None, "--strip-prefix", metavar="PREFIX", help=help, rich_help_panel=panel)


def recipe_option(panel: str | None = None) -> Any:
    help = "How a model the tool did not train was trained: a TOML recipe (docs/api.md)."
    return typer.Option(None, "--recipe", metavar="FILE", help=help, rich_help_panel=panel)


def trainer_option(panel: str | None = None) -> Any:
    help = "Your training code: it trains the shadows as it trained the model (docs/api.md)."
    return typer.Option(None, "--trainer", metavar="MODULE:FUNCTION", help=help, rich_help_panel=panel)


def unlearner_option(panel: str | None = None) -> Any:
    help = "Your unlearning code, replayed on the shadows your --trainer trains."
    return typer.Option(None, "--unlearner", metavar="MODULE:FUNCTION", help=help, rich_help_panel=panel)


def executor_option(panel: str | None = None) -> Any:
    help = "Where shadow chunks are built: local, or ray (tasks on a Ray cluster; docs/scale.md)."
    return typer.Option(DEFAULTS["executor"], "--executor", metavar="local|ray", help=help, rich_help_panel=panel)


def ray_address_option(panel: str | None = None) -> Any:
    help = "The Ray cluster to use (default: RAY_ADDRESS, else a Ray started here)."
    return typer.Option(None, "--ray-address", metavar="ADDRESS", help=help, rich_help_panel=panel)


def device_option(default: str = "auto", panel: str | None = None) -> Any:
    return typer.Option(default, "--device", metavar="DEVICE", help="cpu, cuda, cuda:N or auto.", rich_help_panel=panel)


def seed_option(default: int, help: str, panel: str | None = None) -> Any:
    return typer.Option(default, "--seed", metavar="INT", help=help, rich_help_panel=panel)


def quiet_option(panel: str | None = None) -> Any:
    return typer.Option(False, "--quiet", "-q", metavar=FLAG, help="No progress (--progress none).",
                        rich_help_panel=panel)  # fmt: skip


def progress_option(panel: str | None = None) -> Any:
    return typer.Option(
        ProgressMode.auto.value,
        "--progress",
        metavar="MODE",
        click_type=click.Choice([m.value for m in ProgressMode]),
        help="Progress on stderr: auto (a bar on a terminal, one line per step in a log), bar, lines or none.",
        rich_help_panel=panel,
    )


def config_option(panel: str | None = None) -> Any:
    return typer.Option(
        None,
        "--config",
        metavar="FILE",
        help=literal("Settings file (default: ./audit.toml, or [tool.unlearning-audit] in ./pyproject.toml)."),
        rich_help_panel=panel,
    )


def format_option() -> Any:
    # -f as on run and report, where it names a report format (json among them).
    return typer.Option(OutputFormat.text, "--format", "-f", help="text for people, json for machines.")


def output_option(help: str, *, required: bool = True) -> Any:
    # -o is --output everywhere; --out stays as another name for it (older scripts).
    return typer.Option(... if required else None, "--output", "-o", "--out", metavar="PATH", help=help)


def overwrite_option() -> Any:
    return typer.Option(False, "--overwrite", metavar=FLAG, help="Replace --output if it exists.")


def param_option(help: str, panel: str | None = None) -> Any:
    return typer.Option(None, "--param", metavar=PAIR, help=help, rich_help_panel=panel)
