"""Reading a bank's signals: ``SignalBank`` (per shadow and example: state, confidence
before and after unlearning, logits; the twins' in class mode), ``read_bank`` from a bank
folder's complete chunks, and ``export_long`` for other tools."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audit_cli.atomic import atomic_path
from audit_cli.errors import InputError, UsageError

MANIFEST = "manifest.json"
# The Parquet schema metadata key under which an exported table names its dataset.
FINGERPRINT_KEY = "unlearning_audit_dataset_fingerprint"
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



def read_bank(path: str | Path) -> SignalBank:
    """Signals of every complete shadow in a bank folder, without the dataset or spec objects.

    For tools that only score a bank (``audit evaluate-attack``, ``audit bank export``):
    the manifest says which chunk files are complete; rows are pivoted by shadow and id.
    """
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        raise InputError(f"{path} is not a shadow bank (no {MANIFEST})")
    try:
        manifest = json.loads(file.read_text())
        chunks = sorted(manifest["chunks"], key=lambda c: c["first"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{file}: unreadable bank manifest ({exc})") from None
    tables, expected = [], 0
    for c in chunks:
        if c["first"] != expected or not (path / c["file"]).exists():
            break
        try:
            tables.append(pq.read_table(path / c["file"]))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path / c['file']}: unreadable bank chunk ({exc})") from None
        expected = c["last"] + 1
    if not tables:
        raise InputError(f"bank {path} holds no complete shadows")
    table = pa.concat_tables(tables)
    shadow = table["shadow"].to_numpy()
    ids = table["example_id"].to_numpy()
    example_ids = np.unique(ids)
    n_shadows, n_ex = int(shadow.max()) + 1, len(example_ids)
    if len(table) != n_shadows * n_ex:
        raise InputError(f"bank {path} is inconsistent: {len(table)} rows for {n_shadows} x {n_ex}")
    col = np.searchsorted(example_ids, ids)

    def matrix(name: str, dtype) -> np.ndarray:
        out = np.empty((n_shadows, n_ex), dtype=dtype)
        out[shadow, col] = table[name].to_numpy()
        return out

    def logit_tensor(name: str) -> np.ndarray:
        logits = table[name].combine_chunks()
        width = logits.type.list_size
        out = np.empty((n_shadows, n_ex, width), dtype=np.float32)
        out[shadow, col] = logits.flatten().to_numpy().reshape(-1, width)
        return out

    has_reference = "phi_reference" in table.column_names
    return SignalBank(
        example_ids=example_ids,
        states=matrix("state", np.int8),
        phi_before=matrix("phi_before", np.float64),
        phi_after=matrix("phi_after", np.float64),
        logits_after=logit_tensor("logits_after") if "logits_after" in table.column_names else None,
        phi_reference=matrix("phi_reference", np.float64) if has_reference else None,
        logits_reference=logit_tensor("logits_reference") if has_reference else None,
    )


def export_long(bank: SignalBank, out: str | Path, dataset_fingerprint: str | None = None) -> int:
    """Write (shadow, example_id, state, phi_before, phi_after[, phi_reference]) rows as Parquet or
    CSV; rows written. ``phi_reference`` (class mode) is the shadow's twin retrained without the class."""
    out = Path(out)
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
    with atomic_path(out) as tmp:
        if out.suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, tmp)
        elif out.suffix == ".parquet":
            pq.write_table(table, tmp)
        else:
            raise UsageError(f"export to .parquet or .csv, not {out.suffix or 'no extension'!r}")
    return len(table)
