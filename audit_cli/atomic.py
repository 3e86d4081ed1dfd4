"""Atomic file writes: a reader sees the old file or the complete new one, never half;
and the checks an output path passes before any work is spent on filling it.

Every output the tool writes (checkpoints, id files, reports, bank chunks) goes through
here: write to a temporary file in the same folder, fsync, then rename over the target.
An interrupted run leaves at most a stray ``.tmp`` file behind, never a torn output.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from audit_cli.errors import UsageError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it there."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


# ``-o -``: standard output, where an output is text (an id file, a CSV table, a report).
STDOUT = "-"


def check_output_path(path: str | Path, *, overwrite: bool, suffix: str | None = ".safetensors") -> Path:
    """Refuse an output path before any work is spent on filling it (``suffix=None``: any
    file name, e.g. an id file)."""
    path = Path(path)
    if str(path) == STDOUT:
        raise UsageError("-o - (standard output) is not available for this output: it is written as a file",
                         hint="give a file name")  # fmt: skip
    if suffix is not None and path.suffix != suffix:
        what = repr(path.suffix) if path.suffix else "no extension"
        kind = "scikit-learn models" if suffix == ".skops" else "checkpoints"
        hint = None
        if path.suffix == ".skops":
            hint = "only scikit-learn models (--arch hist-gradient-boosting, random-forest, ...) are written as .skops"
        message = f"--output must end in {suffix}: {kind} are written as {suffix}, not {what}: {path}"
        raise UsageError(message, hint=hint)
    if path.exists() and not path.is_file():
        raise UsageError(f"{path} is not a regular file (a folder, device or FIFO); outputs go to files")
    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists; not overwriting it", hint="pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise UsageError(f"folder {path.parent} does not exist")
    return path
