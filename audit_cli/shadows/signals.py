"""Reading a bank's signals: ``SignalBank`` (per shadow and example: state, confidence
before and after unlearning, logits; the twins' in class mode), ``read_bank`` from a bank
folder's complete chunks, and ``export_long`` for other tools."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audit_cli.atomic import atomic_path
from audit_cli.errors import InputError, UsageError

# 2: class-mode banks carry reference (retrained without the class) signals.
# 3: shadows train on as many examples as the audited model and forget scored candidates
#    (forget and test ids) at one rate; augmentation is replayed.
# 4: every chunk's sha256 in the manifest and its bank's key in the chunk; verified on reading.
BANK_FORMAT = 4

MANIFEST = "manifest.json"
# The Parquet schema metadata key under which an exported table names its dataset.
FINGERPRINT_KEY = "unlearning_audit_dataset_fingerprint"
# The key under which a bank's chunk names the bank it belongs to.
BANK_KEY = "unlearning_audit_bank"
CHUNK_NAME = re.compile(r"chunk-\d{5}-\d{5}\.parquet")
# Index = state code (OUT, IN, UNLEARNED), for exports other tools read.
STATE_NAMES = np.array(["out", "in", "unlearned"])


@dataclass(frozen=True)
class SignalBank:
    """Signals of all shadows: rows are shadows, columns pool examples (sorted ids)."""

    example_ids: np.ndarray
    states: np.ndarray
    """OUT / IN / UNLEARNED per shadow and example (int8)."""
    phi_before: np.ndarray
    """Logit-scaled confidence before unlearning (float64)."""
    phi_after: np.ndarray
    """Logit-scaled confidence after unlearning (float64)."""
    logits_after: np.ndarray | None
    """(shadows, examples, classes) float32 logits after unlearning (None for a bank
    imported from a long table, which carries signals only)."""
    phi_reference: np.ndarray | None = None
    """Class mode: each shadow's twin retrained without the class (float64); else None."""
    logits_reference: np.ndarray | None = None
    """Class mode: the twins' logits, (shadows, examples, classes) float32; else None."""

    @property
    def n_shadows(self) -> int:
        return self.states.shape[0]


def read_bank(path: str | Path, *, logits: bool = True, n_shadows: int | None = None) -> SignalBank:
    """Signals of the complete shadows in a bank folder (the first ``n_shadows``, default
    all), without the dataset or spec objects; ``logits=False`` leaves the logits out (only
    class forgetting reads them, and they are most of a bank's size).

    The manifest says which chunk files are complete; chunks are read one at a time into
    the signal matrices, so the peak memory is the matrices plus one chunk, not a copy of
    the whole bank as a table.
    """
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        raise InputError(f"{path} is not a shadow bank (no {MANIFEST})")
    try:
        manifest = json.loads(file.read_text())
        chunks = sorted(manifest["chunks"], key=lambda c: c["first"])
        version = manifest["spec"].get("bank_format")  # imported banks record none
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{file}: unreadable bank manifest ({exc})") from None
    if version not in (None, BANK_FORMAT):
        # Older formats record no checksums: read as this one, every chunk would look altered.
        raise InputError(f"{path}: a format-{version} bank, built by another version of the tool; this one reads "
                         f"format {BANK_FORMAT}", hint="delete the folder: audit run or audit shadows builds a "
                         "current bank")  # fmt: skip
    complete, expected = [], 0
    for c in chunks:
        if not isinstance(c.get("file"), str) or not CHUNK_NAME.fullmatch(c["file"]):
            raise InputError(f"{file}: chunk entry {str(c.get('file'))[:60]!r} is not a chunk of this folder")
        if c["first"] != expected or not (path / c["file"]).exists():
            break
        complete.append(c)
        expected = c["last"] + 1
    if not complete:
        raise InputError(f"bank {path} holds no complete shadows")
    total = expected if n_shadows is None else min(n_shadows, expected)
    complete = [c for c in complete if c["first"] < total]

    def read(c: dict, columns: list[str] | None = None) -> pa.Table:
        chunk = path / c["file"]
        try:
            data = chunk.read_bytes()
        except OSError as exc:
            raise InputError(f"{chunk}: unreadable bank chunk ({exc.strerror})") from None
        # The manifest's checksum, over the very bytes parsed next: a chunk edited, forged
        # or copied in is refused, not scored.
        if c.get("sha256") != hashlib.sha256(data).hexdigest():
            raise InputError(
                f"{chunk}: does not match the checksum in the bank's manifest (altered, or not built for this bank)",
                hint="audit bank verify; delete the bank folder to rebuild it",
            )
        try:
            table = pq.read_table(pa.BufferReader(data), columns=columns)
        except (pa.ArrowException, OSError, KeyError) as exc:
            raise InputError(f"{chunk}: unreadable bank chunk ({exc})") from None
        owner = (table.schema.metadata or {}).get(BANK_KEY.encode(), b"").decode()
        if owner != manifest.get("key"):
            raise InputError(f"{chunk}: belongs to bank {owner[:20]!r}, not {str(manifest.get('key'))[:20]!r}")
        return table

    first = read(complete[0])
    example_ids = np.unique(first["example_id"].to_numpy())
    n_ex, names = len(example_ids), set(first.column_names)
    missing = [c for c in ("shadow", "example_id", "state", "phi_before", "phi_after") if c not in names]
    if missing:
        raise InputError(f"bank {path} is inconsistent: {complete[0]['file']} has no column {missing[0]!r}")
    has_reference = "phi_reference" in names
    phis = ["phi_before", "phi_after"] + (["phi_reference"] if has_reference else [])
    tensors = [n for n in ("logits_after", "logits_reference") if logits and n in names]
    out: dict[str, np.ndarray] = {"state": np.empty((total, n_ex), np.int8)}
    out |= {name: np.empty((total, n_ex), np.float64) for name in phis}
    for name in tensors:
        out[name] = np.empty((total, n_ex, first[name].type.list_size), np.float32)
    for c in complete:
        table = first if c is complete[0] else read(c, ["shadow", "example_id", "state", *phis, *tensors])
        shadow = table["shadow"].to_numpy()
        ids = table["example_id"].to_numpy()
        k = c["last"] - c["first"] + 1
        if len(table) != k * n_ex or shadow.min() != c["first"] or shadow.max() != c["last"]:
            raise InputError(f"bank {path} is inconsistent: {c['file']} holds {len(table)} rows for {k} x {n_ex}")
        col = np.searchsorted(example_ids, ids).clip(0, n_ex - 1)
        seen = np.zeros((k, n_ex), np.int32)
        np.add.at(seen, (shadow - c["first"], col), 1)
        if (seen != 1).any() or not np.array_equal(example_ids[col], ids):
            raise InputError(f"bank {path} is inconsistent: {c['file']} does not hold each shadow's examples once")
        if not np.isin(table["state"].to_numpy(), (0, 1, 2)).all():
            raise InputError(f"bank {path} is inconsistent: {c['file']} holds an unknown state code")
        keep = shadow < total
        row, col = shadow[keep], col[keep]
        for name in ("state", *phis):
            out[name][row, col] = table[name].to_numpy()[keep]
        for name in tensors:
            flat = table[name].combine_chunks().flatten().to_numpy()
            out[name][row, col] = flat.reshape(len(table), -1)[keep]
        del table
    return SignalBank(
        example_ids=example_ids,
        states=out["state"],
        phi_before=out["phi_before"],
        phi_after=out["phi_after"],
        logits_after=out.get("logits_after"),
        phi_reference=out.get("phi_reference"),
        logits_reference=out.get("logits_reference"),
    )


def export_long(bank: SignalBank, out: str | Path | BinaryIO, dataset_fingerprint: str | None = None) -> int:
    """Write (shadow, example_id, state, phi_before, phi_after[, phi_reference]) rows as Parquet or
    CSV; rows written. ``phi_reference`` (class mode) is the shadow's twin retrained without the class.
    ``out``: a .parquet or .csv path, or a binary stream (standard output), which gets CSV."""
    k, n = bank.states.shape
    table = pa.table(
        {
            "shadow": np.repeat(np.arange(k, dtype=np.int32), n),
            "example_id": np.tile(bank.example_ids, k),
            "state": STATE_NAMES[bank.states.reshape(-1)],
            "phi_before": bank.phi_before.reshape(-1),
            "phi_after": bank.phi_after.reshape(-1),
        }
    )
    if bank.phi_reference is not None:
        table = table.append_column("phi_reference", pa.array(bank.phi_reference.reshape(-1)))
    if dataset_fingerprint is not None:  # Parquet keeps it; `audit bank import` checks it
        table = table.replace_schema_metadata({FINGERPRINT_KEY: dataset_fingerprint})
    if not isinstance(out, (str, Path)):
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, out)
        return len(table)
    out = Path(out)
    with atomic_path(out) as tmp:
        if out.suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, tmp)
        elif out.suffix == ".parquet":
            pq.write_table(table, tmp)
        else:
            raise UsageError(f"export to .parquet or .csv, not {out.suffix or 'no extension'!r}")
    return len(table)
