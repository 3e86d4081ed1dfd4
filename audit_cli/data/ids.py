"""Id files: the forget lists users hand to the tool, one integer id per line.

Format: UTF-8 text, one non-negative integer per line in ASCII digits (at most 18);
``#`` starts a comment; blank lines are skipped; a byte-order mark and CRLF line ends are
accepted. Anything else
(a non-integer, a negative number, a duplicate, no ids at all) is refused with the line
number, because a silently mis-read forget list would audit the wrong examples.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from audit_cli.atomic import atomic_write_text
from audit_cli.errors import IdFileError
from audit_cli.files import quotable, read_user_bytes

# A forget list longer than any dataset we load is a wrong file, not a request.
MAX_ID_FILE_BYTES = 64 * 1024 * 1024
ASCII_ID = re.compile(r"[0-9]+")
# Ids fit in int64: at most 18 digits.
MAX_ID_DIGITS = 18


def read_id_file(path: str | Path) -> np.ndarray:
    """Parse an id file into a sorted int64 array of unique ids."""
    path = Path(path)
    raw = read_user_bytes(path, "id file", MAX_ID_FILE_BYTES, error=IdFileError)
    try:
        text = raw.decode("utf-8-sig")  # strips a byte-order mark
    except UnicodeDecodeError as exc:
        raise IdFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    quote = quotable(path)
    ids: list[int] = []
    first_line: dict[int, int] = {}
    # Lines end at \n only (CRLF allowed): str.splitlines() would also split at \x1c or
    # U+2028, and int() would read "+5", "1_0" or non-ASCII digits as ids.
    for lineno, line in enumerate(text.split("\n"), start=1):
        content = line.split("#", 1)[0].strip(" \t\r")
        if not content:
            continue
        if not ASCII_ID.fullmatch(content):
            if content.startswith("-") and ASCII_ID.fullmatch(content[1:]):
                raise IdFileError(f"{path}:{lineno}: id {content[:24]} is negative")
            token = f"{content[:40]!r} is" if quote else "the line is"
            raise IdFileError(f"{path}:{lineno}: {token} not an integer id (ASCII digits only)")
        if len(content) > MAX_ID_DIGITS:
            raise IdFileError(f"{path}:{lineno}: id with {len(content)} digits is too large")
        value = int(content)
        if value in first_line:
            raise IdFileError(f"{path}:{lineno}: id {value} repeats line {first_line[value]}")
        first_line[value] = lineno
        ids.append(value)
    if not ids:
        raise IdFileError(f"{path}: no ids (the file is empty or only comments)")
    return np.array(sorted(ids), dtype=np.int64)


def as_ids(values: object, label: str = "forget ids") -> np.ndarray:
    """Ids given in memory (a list, a numpy or torch array) as a sorted int64 array of unique
    ids, with the id file's rules: whole numbers, none negative, none repeated, at least one."""
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise IdFileError(f"{label}: expected a flat sequence of ids, got shape {arr.shape}")
    if len(arr) == 0:
        raise IdFileError(f"{label}: no ids")
    if arr.dtype.kind not in "iu":
        whole = arr.dtype.kind == "f" and bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
        if not whole:
            raise IdFileError(f"{label}: ids must be integers, got {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) >= 2**63:
        raise IdFileError(f"{label}: id {int(arr.max())} is too large")
    if arr.dtype.kind == "f" and arr.size and float(np.abs(arr).max()) >= 2**63:
        raise IdFileError(f"{label}: an id is too large")
    ids = arr.astype(np.int64)
    if (ids < 0).any():
        raise IdFileError(f"{label}: id {int(ids[ids < 0][0])} is negative")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise IdFileError(f"{label}: id {int(unique[counts > 1][0])} is given {int(counts.max())} times")
    return unique


def write_id_file(path: str | Path, ids: np.ndarray, header: str | None = None) -> None:
    """Write ids one per line, atomically."""
    atomic_write_text(path, id_file_text(ids, header))


def id_file_text(ids: np.ndarray, header: str | None = None) -> str:
    """An id file's text: the header as ``#`` comment lines, then the ids sorted, one per line."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    lines += [str(int(i)) for i in np.sort(np.asarray(ids, dtype=np.int64))]
    return "\n".join(lines) + "\n"


def fingerprint_ids(ids: np.ndarray) -> str:
    """sha256 of a set of ids, independent of their order."""
    arr = np.unique(np.asarray(ids, dtype=np.int64)).astype("<i8")
    return hashlib.sha256(b"unlearning-audit/ids/v1" + arr.tobytes()).hexdigest()
