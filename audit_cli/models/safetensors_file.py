"""A safetensors checkpoint read without torch: its checked header, its metadata, and its
weights as numpy arrays.

``audit_cli.models.checkpoint`` loads checkpoints for the audit (torch tensors) and uses
the same header checks from here; `audit inspect` reads a safetensors file through this
module alone, so it starts without torch. numpy has no bfloat16 or float8: a file holding
those is left to the torch loader (``read_arrays`` returns None).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from audit_cli.errors import CheckpointError
from audit_cli.models.metadata import FILTER_METADATA_KEY, METADATA_KEY, CheckpointMeta

# The safetensors library refuses larger headers too; checking first gives a clear message
# and never allocates a buffer sized by an attacker-controlled length field.
MAX_HEADER_BYTES = 100_000_000
# Dtypes numpy holds as they are stored (safetensors' names).
NUMPY_DTYPES = frozenset({"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "F32", "F64"})


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def first_line(exc: BaseException) -> str:
    """An exception's first line, for a one-line error."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """Whether a file's first 9 bytes (of ``size``) open a safetensors header that fits it."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return header_len <= min(size - 8, MAX_HEADER_BYTES)


def read_header(path: Path, size: int) -> dict:
    """The JSON header, checked against the file's size before it is read."""
    with open(path, "rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        if header_len > MAX_HEADER_BYTES:
            raise CheckpointError(
                f"{path}: safetensors header claims {header_len} bytes, over the {MAX_HEADER_BYTES} limit"
            )
        if header_len > size - 8:
            raise CheckpointError(
                f"{path}: truncated safetensors file (header needs {header_len} bytes, file has {size - 8})"
            )
        header_bytes = fh.read(header_len)
    try:
        header = json.loads(header_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{path}: safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: safetensors header is not a JSON object")
    return header


def header_meta(path: Path, header: Mapping) -> CheckpointMeta | None:
    """The tool's metadata document in a checked header (None for a foreign file); an
    output filter is refused as a model checkpoint."""
    metadata = header.get("__metadata__") or {}
    if isinstance(metadata, dict) and FILTER_METADATA_KEY in metadata:
        raise CheckpointError(
            f"{path} is an output filter (MPRU), not a model checkpoint",
            hint="a filter is applied to the model it was fitted for: audit run --filter",
        )
    return CheckpointMeta.from_json(metadata[METADATA_KEY]) if METADATA_KEY in metadata else None


def read_arrays(path: Path, header: Mapping) -> dict[str, np.ndarray] | None:
    """Every tensor as a numpy array, validated by the safetensors library; None when one
    has a dtype numpy lacks (bfloat16, float8)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    dtypes = {v.get("dtype") for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    if not dtypes <= NUMPY_DTYPES:
        return None
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({first_line(exc)})") from None


def check_finite_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """NaN or infinite weights are refused, as the torch loader refuses them."""
    for name, a in arrays.items():
        if np.issubdtype(a.dtype, np.floating):
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            if bad:
                raise CheckpointError(f"{path}: tensor {name!r} has {bad} NaN or infinite value(s)")
