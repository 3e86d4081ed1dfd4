"""Shadow banks built elsewhere: ``audit bank import`` reads a long table of signals (the
format ``audit bank export`` writes: shadow, example_id, state, phi_before, phi_after),
validates it against the dataset, and stores it as a bank folder that ``audit run
--shadows-from`` scores instead of training shadows.

Validation before anything is written: the columns and their types; states among out, in
and unlearned; shadows numbered 0..K-1, each holding every example id of the dataset
exactly once; no infinite signal (NaN is allowed: that shadow cannot score the example);
and, when the table carries one (Parquet written by ``audit bank export``), the dataset
fingerprint. The folder's manifest records the file and its sha256, which the report
repeats. Imported banks carry no logits, so they serve random forgetting only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from attacks.signals import IN, OUT, UNLEARNED
from audit_cli.atomic import atomic_path, atomic_write_text
from audit_cli.data import Dataset
from audit_cli.errors import InputError, UsageError
from audit_cli.models.safetensors_file import file_sha256
from audit_cli.shadows.signals import BANK_KEY, FINGERPRINT_KEY, MANIFEST, STATE_NAMES, SignalBank, read_bank

REQUIRED = ("shadow", "example_id", "state", "phi_before", "phi_after")
MAX_BYTES = 4 * 1024**3
# Forget and test examples held in a state by shares further apart than this are refused
# (shadows built by the tool: equal in expectation, within a few percent over 100 examples).
MAX_SHARE_RATIO = 1.5


def read_long_table(path: Path) -> pa.Table:
    if not path.is_file():
        raise InputError(f"bank table not found: {path}")
    if path.stat().st_size > MAX_BYTES:
        raise InputError(f"{path} is over {MAX_BYTES // 1024**3} GiB")
    try:
        if path.suffix == ".csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
        if path.suffix == ".parquet":
            return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: unreadable table ({exc})") from None
    raise UsageError(f"import a .parquet or .csv table, not {path.suffix or 'no extension'!r}")


def whole_numbers(table: pa.Table, column: str, path: Path) -> np.ndarray:
    """A column of shadow numbers or ids as int64; a CSV reads whole numbers written as
    floats (1.0) as floats, which are taken, but 0.5 is refused rather than truncated."""
    values = table[column].to_numpy(zero_copy_only=False)
    if values.dtype.kind == "f":
        if not (np.isfinite(values).all() and (values == np.round(values)).all()):
            raise InputError(f"{path}: column {column!r} holds values that are not whole numbers")
    elif values.dtype.kind not in "iu":
        raise TypeError(f"column {column!r} is {values.dtype}, not numbers")
    return values.astype(np.int64)


def validate(table: pa.Table, dataset: Dataset, path: Path) -> SignalBank:
    """The table's signals as a SignalBank, or an InputError naming what is wrong."""
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: missing column {missing[0]!r} (needs {', '.join(REQUIRED)})")
    declared = (table.schema.metadata or {}).get(FINGERPRINT_KEY.encode())
    if declared is not None and declared.decode() != dataset.fingerprint:
        raise InputError(f"{path} holds signals of another dataset (fingerprint {declared.decode()[:12]}, "
                         f"{dataset.name!r} is {dataset.fingerprint[:12]})")  # fmt: skip
    try:
        shadow, ids = (whole_numbers(table, c, path) for c in ("shadow", "example_id"))
        phi = {c: np.asarray(pc.cast(table[c], pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
               for c in ("phi_before", "phi_after")}  # fmt: skip
        state_text = np.asarray(pc.cast(table["state"], pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InputError(f"{path}: a column has the wrong type ({exc})") from None
    known = {name: code for code, name in enumerate(STATE_NAMES)}
    bad = sorted({str(s) for s in state_text} - set(known))
    if bad:
        raise InputError(f"{path}: unknown state {bad[0]!r} (states: out, in, unlearned)")
    k = int(shadow.max()) + 1 if len(shadow) else 0
    if k < 2 or shadow.min() != 0 or len(np.unique(shadow)) != k:
        raise InputError(f"{path}: shadows must be numbered 0..K-1 with K >= 2")
    n = len(dataset.ids)
    if len(table) != k * n:
        raise InputError(f"{path}: {len(table)} rows for {k} shadows of {n} examples of {dataset.name!r}")
    if not np.isin(ids, dataset.ids).all():
        raise InputError(f"{path}: example id {int(ids[~np.isin(ids, dataset.ids)][0])} is not in {dataset.name!r}")
    col = dataset.rows(ids)
    seen = np.zeros((k, n), dtype=np.int64)
    np.add.at(seen, (shadow, col), 1)
    if (seen != 1).any():
        s, r = map(int, np.argwhere(seen != 1)[0])
        raise InputError(f"{path}: shadow {s} holds example {int(dataset.ids[r])} {int(seen[s, r])} times, not once")
    for name, values in phi.items():
        if np.isinf(values).any():
            raise InputError(f"{path}: {name} holds infinite values (NaN marks an unscorable example)")

    def matrix(values: np.ndarray, dtype) -> np.ndarray:
        out = np.empty((k, n), dtype=dtype)
        out[shadow, col] = values
        return out

    states = matrix(np.array([known[str(s)] for s in state_text], dtype=np.int8), np.int8)
    return SignalBank(dataset.ids, states, matrix(phi["phi_before"], np.float64), matrix(phi["phi_after"], np.float64),
                      logits_after=None)  # fmt: skip


def import_bank(path: str | Path, dataset: Dataset, parent: str | Path) -> Path:
    """Validate a long table and store it as the bank folder ``parent/imported-<sha>``."""
    path = Path(path)
    signals = validate(read_long_table(path), dataset, path)
    sha = file_sha256(path)
    folder = Path(parent) / f"imported-{sha[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    k, n = signals.states.shape
    name = f"chunk-00000-{k - 1:05d}.parquet"
    table = pa.table({
        "shadow": np.repeat(np.arange(k, dtype=np.int32), n),
        "example_id": np.tile(signals.example_ids, k),
        "state": signals.states.reshape(-1),
        "phi_before": signals.phi_before.reshape(-1),
        "phi_after": signals.phi_after.reshape(-1),
    })  # fmt: skip
    with atomic_path(folder / name) as tmp:
        pq.write_table(table.replace_schema_metadata({BANK_KEY: folder.name}), tmp)
    manifest = {
        "key": folder.name,
        "spec": {
            "imported": {"file": str(path), "sha256": sha},
            "dataset_fingerprint": dataset.fingerprint,
            "method": "unknown" if (signals.states == UNLEARNED).any() else None,
            "seed": 0,
            "recipe": {"arch": "imported"},
            "forget_rule": {"kind": "imported"},
        },  # fmt: skip
        "chunk_size": k,
        "chunks": [{"first": 0, "last": k - 1, "file": name, "sha256": file_sha256(folder / name)}],
    }
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return folder


def load_imported(folder: str | Path, dataset: Dataset, unlearned: bool) -> tuple[SignalBank, str]:
    """An imported bank's signals for an audit, and where they came from (for the report).
    ``unlearned``: the audit scores U-LiRA (a method is declared), so the bank must hold
    UNLEARNED shadows; LiRA needs IN ones."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        spec = manifest["spec"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise InputError(f"{folder} is not a shadow bank (no readable {MANIFEST})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("imported"), dict):
        raise InputError(f"{folder} is not an imported bank (audit bank import writes one)",
                         hint="a bank this tool built is found by audit run --bank; drop --shadows-from")  # fmt: skip
    origin, fingerprint = spec["imported"], spec.get("dataset_fingerprint")
    if fingerprint != dataset.fingerprint:
        raise InputError(f"{folder} holds signals of another dataset than {dataset.name!r}")
    signals = read_bank(folder)
    needed = UNLEARNED if unlearned else IN
    if not (signals.states == needed).any() or not (signals.states == OUT).any():
        what = "unlearned" if unlearned else "trained-on (in)"
        raise InputError(f"{folder} has no {what} or no out shadows: nothing to score the model against")
    return signals, f"imported from {origin['file']} (sha256 {origin['sha256'][:16]}...)"


def check_forget_rule(signals: SignalBank, forget_rows: np.ndarray, test_rows: np.ndarray, state: int) -> None:
    """Refuse shadows whose rule favours one side of the game: each scored example must be
    in ``state`` (UNLEARNED, or IN for LiRA) and OUT in comparable shares of shadows, whether
    it is a forget or a test example, or the attack's null is off (docs/audit.md: a test
    example UNLEARNED in 2 of 64 shadows failed exact retrains)."""
    for code in (state, OUT):
        share = (signals.states == code).mean(axis=0)
        forget, test = float(share[forget_rows].mean()), float(share[test_rows].mean())
        low, high = sorted((forget, test))
        if low == 0 or high / low > MAX_SHARE_RATIO:
            raise InputError(
                f"the imported shadows hold the forget examples {STATE_NAMES[code]} in {forget:.0%} of shadows and "
                f"the test examples in {test:.0%}: they must be treated alike for the attack to be fair",
                hint="build the shadows so that forget and test ids are forgotten at one rate (docs/audit.md)",
            )
