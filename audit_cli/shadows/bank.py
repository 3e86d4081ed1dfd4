"""A shadow bank on disk: built in fixed chunks of shadows, each written atomically and
recorded in the manifest, resumed after an interruption, read back as signals.

Shadows are trained, queried and unlearned through their model family
(audit_cli/families/), so networks and scikit-learn estimators take one path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from attacks.signals import IN, OUT, UNLEARNED, augmented_confidence
from audit_cli.atomic import atomic_path, atomic_write_text
from audit_cli.config import DEFAULTS
from audit_cli.errors import InputError, UsageError
from audit_cli.families import family_of
from audit_cli.families.base import ModelFamily
from audit_cli.models.safetensors_file import file_sha256
from audit_cli.shadows.executors import run_local
from audit_cli.shadows.lock import bank_lock
from audit_cli.shadows.looks import check_shadow_count
from audit_cli.shadows.plan import BankSpec, ShadowPlan, plan_shadow
from audit_cli.shadows.reuse import fitted
from audit_cli.shadows.signals import BANK_KEY, MANIFEST, SignalBank, read_bank
from audit_cli.unlearn import UnlearnTask, get_method, parse_params

# The most shadows one chunk may hold (a manifest saying 100,000 would train them at once).
MAX_CHUNK = 1024


class ShadowBank:
    """A directory of shadow-model signals that can be built, resumed and read."""

    def __init__(self, root: str | Path, spec: BankSpec, *, chunk_size: int = 16) -> None:
        if chunk_size < 1:
            raise UsageError("chunk size must be at least 1")
        self.spec = spec
        self.key = spec.key()
        self.path = Path(root) / self.key
        self.chunk_size = chunk_size

    # -- manifest -------------------------------------------------------------------------

    def manifest(self) -> dict:
        file = self.path / MANIFEST
        if not file.exists():
            return {"key": self.key, "spec": self.spec.to_dict(), "chunk_size": self.chunk_size, "chunks": []}
        try:
            manifest = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{file}: unreadable bank manifest ({exc})") from None
        if not isinstance(manifest, dict):
            raise InputError(f"{file}: the manifest is not a JSON object")
        if manifest.get("key") != self.key:
            raise InputError(f"{file}: manifest belongs to bank {manifest.get('key')!r}, not {self.key!r}")
        size = manifest.get("chunk_size")
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_CHUNK:
            raise InputError(f"{file}: chunk_size {str(size)[:20]!r} is not a whole number in 1..{MAX_CHUNK}")
        if not isinstance(manifest.get("chunks"), list):
            raise InputError(f"{file}: chunks is not a list")
        if size != self.chunk_size:
            # Chunk composition decides float rounding; keep the bank's own.
            self.chunk_size = size
        return manifest

    def complete_shadows(self) -> int:
        """Shadows 0..n-1 whose chunks are recorded and present on disk."""
        done = {c["first"]: c for c in self.manifest()["chunks"] if (self.path / c["file"]).exists()}
        n = 0
        while n in done:
            n = done[n]["last"] + 1
        return n

    # -- building -------------------------------------------------------------------------

    def build(
        self,
        n_shadows: int,
        *,
        device: str | torch.device = "cpu",
        progress: Callable[[int, int], None] | None = None,
        run: Callable[..., Iterator] = run_local,
        lock_timeout: float = float(DEFAULTS["lock_timeout"]),
        waiting: Callable[[str], None] | None = None,
    ) -> int:
        """Make sure shadows 0..n_shadows-1 exist; return how many were trained now.
        ``run`` maps the chunk builder over the missing chunks (shadows/executors.py);
        ``lock_timeout``: seconds to wait for another run building this bank (lock.py);
        ``waiting(holder)`` is called once if this run has to wait for it."""
        check_shadow_count(n_shadows)
        created = [p for p in (self.path, *self.path.parents) if not p.exists()]  # deepest first
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            # Inside the lock the manifest is read again: what another run built is not rebuilt.
            with bank_lock(self.path, timeout=lock_timeout, waiting=waiting) as held:
                return self._build_locked(n_shadows, device, progress, run, held)
        except BaseException:
            # Refused before its first chunk (a plug-in architecture the user did not name,
            # exit 4) or interrupted: a refusal creates nothing, so the folders this call made
            # go again while they are empty. A folder holding chunks stays, to be resumed.
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break
            raise

    def _build_locked(self, n_shadows: int, device, progress, run, held: Callable[[], None]) -> int:
        manifest = self.manifest()
        present = {c["first"] for c in manifest["chunks"] if (self.path / c["file"]).exists()}
        # Whole chunks only: a top-up that ends mid-chunk still builds the chunk in full.
        target = -(-n_shadows // self.chunk_size) * self.chunk_size
        todo = [first for first in range(0, target, self.chunk_size) if first not in present]
        size, trained = self.chunk_size, 0

        def build_chunk(first: int) -> pa.Table:
            return self._build_chunk(range(first, first + size), device)

        for first, table in run(build_chunk, todo):
            last = first + size - 1
            name = f"chunk-{first:05d}-{last:05d}.parquet"
            # The chunk names its bank, and the manifest its checksum: a chunk edited or
            # copied from another bank is refused when read (signals.read_bank).
            table = table.replace_schema_metadata({BANK_KEY: self.key})
            held()  # a run that took the lock over owns the manifest now
            with atomic_path(self.path / name) as tmp:
                pq.write_table(table, tmp)
            manifest["chunks"] = [c for c in manifest["chunks"] if c["first"] != first]
            manifest["chunks"].append({"first": first, "last": last, "file": name,
                                       "sha256": file_sha256(self.path / name)})  # fmt: skip
            atomic_write_text(self.path / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
            trained += size
            if progress is not None:
                progress(target - len(todo) * size + trained, target)
        return trained

    def _build_chunk(self, shadows: range, device: str | torch.device) -> pa.Table:
        spec, ds, family = self.spec, self.spec.dataset, family_of(self.spec.recipe)
        plans = [plan_shadow(spec, k) for k in shadows]
        seeds = [p.seed for p in plans]
        c_forget = spec.forget_rule.forget_class
        trained = [p.trained for p in plans]
        # What each shadow will forget shapes its training only in a federation (a client of its own).
        forget = [p.forget for p in plans] if spec.unlearning is not None else None
        originals = fitted(lambda: family.fit(ds, spec.recipe, trained, seeds, device, forget=forget), ds,
                           spec.recipe, trained, seeds, device, forget=forget)  # fmt: skip
        before = family.logits(originals, ds, spec.recipe)
        after = before if spec.unlearning is None else self._unlearn(family, originals, before, plans, device)
        reference = None
        if c_forget is not None:
            # The twin sees the same subset minus the class, with the same seed: the pair
            # differs only in whether the class was learned and then unlearned.
            retained = [p.retain for p in plans]
            twins = fitted(lambda: family.fit(ds, spec.recipe, retained, seeds, device), ds, spec.recipe, retained,
                           seeds, device)  # fmt: skip
            reference = family.logits(twins, ds, spec.recipe)
        n, c = len(ds.ids), ds.num_classes
        columns: dict[str, list[np.ndarray]] = {
            k: [] for k in ("shadow", "example_id", "state", "phi_before", "phi_after")
        }
        if reference is not None:
            columns["phi_reference"] = []
        logits, ref_logits = [], []
        for j, plan in enumerate(plans):
            state = np.full(n, OUT, dtype=np.int8)
            state[ds.rows(plan.trained)] = IN
            if spec.unlearning is not None:
                state[ds.rows(plan.forget)] = UNLEARNED
            columns["shadow"].append(np.full(n, plan.index, dtype=np.int32))
            columns["example_id"].append(ds.ids)
            columns["state"].append(state)
            columns["phi_before"].append(augmented_confidence(before[:, j], ds.y))
            columns["phi_after"].append(augmented_confidence(after[:, j], ds.y))
            logits.append(after[0, j].reshape(-1))
            if reference is not None:
                columns["phi_reference"].append(augmented_confidence(reference[:, j], ds.y))
                ref_logits.append(reference[0, j].reshape(-1))
        arrays = {k: pa.array(np.concatenate(v)) for k, v in columns.items()}
        arrays["logits_after"] = pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate(logits)), c)
        if reference is not None:
            arrays["logits_reference"] = pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate(ref_logits)), c)
        return pa.table(arrays)

    def _unlearn(self, family: ModelFamily, originals, before: np.ndarray, plans: list[ShadowPlan],
                 device) -> np.ndarray:  # fmt: skip
        """The shadows' outputs after unlearning, (views, K, n, C)."""
        spec, ds, unlearning = self.spec, self.spec.dataset, self.spec.unlearning
        entry = get_method(unlearning.method)
        params = parse_params(entry, unlearning.params)
        c_forget = spec.forget_rule.forget_class
        if entry.filter_outputs is not None:
            # An output filter leaves the shadow's weights alone: fit it on a labelled sample
            # of the shadow's own retain set and apply it to the shadow's outputs.
            if c_forget is None:
                raise UsageError(f"{entry.name} forgets a class; pass --forget-class")
            filtered = [entry.filter_outputs(before[:, j], ds, p.retain, c_forget, params, p.seed)
                        for j, p in enumerate(plans)]  # fmt: skip
            return np.stack(filtered, axis=1)
        family.check_method(entry, spec.recipe)
        task = UnlearnTask(ds, [p.forget for p in plans], [p.retain for p in plans], spec.recipe,
                           [p.seed for p in plans], forget_class=c_forget,
                           augmentation=unlearning.augmentation)  # fmt: skip
        return family.logits(family.unlearn(originals, task, entry, params, device), ds, spec.recipe)

    # -- reading --------------------------------------------------------------------------

    def load(self, n_shadows: int | None = None, *, logits: bool = True) -> SignalBank:
        """The first ``n_shadows`` complete shadows (all complete ones by default);
        ``logits=False`` leaves their logits out (only class forgetting reads them)."""
        self.manifest()  # refuses a folder that belongs to another bank
        signals = read_bank(self.path, logits=logits, n_shadows=n_shadows)
        if n_shadows is not None and n_shadows > signals.n_shadows:
            raise InputError(f"bank {self.path} holds {signals.n_shadows} complete shadows, {n_shadows} requested")
        return signals
