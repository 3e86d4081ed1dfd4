"""Reading the small text files users hand the tool (id lists, settings, recipes, saved
reports): regular files only, their size capped by what is actually read.

A device or FIFO reports size 0 and never ends (a symlink to /dev/zero would be read
forever), so anything but a regular file is refused before reading, and reading stops one
byte past the limit. Errors name the file, never its content; a file reached through a
symlink is never quoted at all (it may be a secret the link points at).

The paths and names users give (options, settings) pass ``check_printable`` first: no
control characters, so no folder the tool creates is named by them.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from audit_cli.errors import AuditError, InputError, UsageError

# Settings, recipes and saved reports are a few kilobytes; a report with curves, a few MB.
MAX_TEXT_BYTES = 16 * 1024 * 1024

# C0 controls (newline and tab included), DEL and C1 controls, and the raw bytes 0x80-0x9f
# of a command line that is not UTF-8 (Python keeps them as surrogates; an 8-bit terminal
# reads them as C1). No one means them in a path or a name, and in one they rewrite the
# terminal that lists the folder, split the log line that quotes it, and forge lines in a
# CI annotation.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\udc80-\udc9f]")
# How much of a refused value the message quotes.
QUOTE_CHARS = 80


def check_printable(value: str | os.PathLike, what: str, error: type[AuditError] = UsageError) -> None:
    """Refuse a path or name the user gave (``what``: the option or setting it came from)
    when it holds a control character. The message quotes it escaped (repr), so it cannot
    do to the terminal what the folder name would have."""
    text = os.fspath(value)
    text = os.fsdecode(text) if isinstance(text, bytes) else text
    if CONTROL_CHARACTERS.search(text):
        shown = repr(text[:QUOTE_CHARS]) + ("..." if len(text) > QUOTE_CHARS else "")
        raise error(f"{what} {shown} holds a control character; paths and names may not")


def read_user_bytes(path: str | Path, what: str, limit: int = MAX_TEXT_BYTES, error=InputError) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or ``error`` saying why not."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{what} {path} is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {path} is not a regular file (a device, FIFO or socket)")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise error(f"{what} {path} is over the {limit} byte limit")
    return data


def quotable(path: str | Path) -> bool:
    """Whether an error may quote a token of this file: not when any part of the path is a
    symlink (the user did not write what it points at)."""
    path = Path(path)
    try:
        parts = [path, *path.parents]
        return not any(p.is_symlink() for p in parts if str(p) not in ("", "."))
    except OSError:
        return False
