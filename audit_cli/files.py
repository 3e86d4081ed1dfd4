"""Reading the small text files users hand the tool (id lists, settings, recipes, saved
reports): regular files only, their size capped by what is actually read.

A device or FIFO reports size 0 and never ends (a symlink to /dev/zero would be read
forever), so anything but a regular file is refused before reading, and reading stops one
byte past the limit. Errors name the file, never its content; a file reached through a
symlink is never quoted at all (it may be a secret the link points at).
"""

from __future__ import annotations

import stat
from pathlib import Path

from audit_cli.errors import InputError

# Settings, recipes and saved reports are a few kilobytes; a report with curves, a few MB.
MAX_TEXT_BYTES = 16 * 1024 * 1024


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
