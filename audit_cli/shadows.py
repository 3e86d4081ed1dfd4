"""The shadow bank: shadow models trained and unlearned like the audited model, kept as signals.

Shadow k trains on a random subset of the pool (every dataset example, train and test) as
large as the audited model's training set, so that its confidence matches the target's;
then it forgets as many examples as the audited model did, drawn by the audited model's
rule, and is unlearned with the audited model's method and every declared parameter,
augmentation included.

The forget rule keeps U-LiRA fair under the null. The attack scores the audited forget
set (positives) against the test examples (negatives), and each scored example needs
UNLEARNED and OUT observations in comparable numbers. So for a random forget set a
shadow forgets, at one rate, the scored candidates (forget and test ids alike) it trained
on, topped up from its other training examples when too few; each candidate is then
UNLEARNED in about ``|F| / |F + T|`` of the shadows and OUT in ``1 - n_train / n_pool``,
whatever side of the game it is on. (Forgetting only the audited ids it trained on left
a test example UNLEARNED in 2 or 3 of 64 shadows, and failed exact retrains.) For a
class: every example of that class it trained on.

For every pool example the bank keeps the state (OUT, IN, UNLEARNED), the logit-scaled
confidence before unlearning (LiRA) and after (U-LiRA), and the logits after (class-level
checks). Without a method (the audited model declares none) shadows are not unlearned
and every trained-on example is IN.

For class forgetting each shadow has a reference twin: a model trained with the same
seed on the same subset minus the class, the "retrained without c" model the unlearned
shadow should be indistinguishable from. U-LiRA in class mode and MIA-NN compare against
these twins; the bank keeps their signals and logits too.

Storage: a directory named by a content hash of everything that determines the shadows
(dataset fingerprint, recipe, training-set size, method, parameters and augmentation,
forget rule with the scored candidates, seed, bank format). Shadows are built in fixed
chunks (0..c-1, c..2c-1, ...), each written as one Parquet file atomically and then
recorded in ``manifest.json`` (also written atomically). A rerun reuses complete chunks
and tops up to the requested count; a killed run loses at most the chunk in flight, which
is rebuilt with the same composition, so the bank equals one built without interruption.
Weights are not kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from attacks.signals import IN, OUT, UNLEARNED, augmented_confidence
from audit_cli import __version__
from audit_cli.atomic import atomic_path, atomic_write_text
from audit_cli.data import Dataset, fingerprint_ids
from audit_cli.errors import InputError, UsageError
from audit_cli.models.sklearn_model import SklearnRecipe, fit_sklearn, sklearn_logits
from audit_cli.training import Recipe, query_logits, train_models
from audit_cli.unlearn import UnlearnTask, get_method, params_dict, parse_params, unlearn_models

# 2: class-mode banks carry reference (retrained without the class) signals.
# 3: shadows train on as many examples as the audited model and forget scored candidates
#    (forget and test ids) at one rate; augmentation is replayed.
BANK_FORMAT = 3
MANIFEST = "manifest.json"
# Index = state code (OUT, IN, UNLEARNED), for exports other tools read.
STATE_NAMES = np.array(["out", "in", "unlearned"])


@dataclass(frozen=True)
class ForgetRule:
    """How each shadow's forget set is drawn, mirroring the audited model's."""

    forget_ids: tuple[int, ...] = ()
    """Random forgetting: the audited forget ids (shadows forget as many)."""
    negatives: tuple[int, ...] = ()
    """Random forgetting: the ids the forget set is scored against (the test ids); with the
    forget ids they are the candidates each shadow forgets from, at one rate."""
    forget_class: int | None = None
    """Class forgetting: the forgotten class."""

    def __post_init__(self) -> None:
        if (self.forget_class is None) == (len(self.forget_ids) == 0):
            raise UsageError("a forget rule needs either forget ids or a forget class")

    @property
    def candidates(self) -> np.ndarray:
        return np.union1d(np.array(self.forget_ids, dtype=np.int64), np.array(self.negatives, dtype=np.int64))

    def to_dict(self) -> dict:
        if self.forget_class is not None:
            return {"kind": "class", "class": self.forget_class}
        return {
            "kind": "random",
            "rule": "candidates at one rate",
            "n": len(self.forget_ids),
            "ids": fingerprint_ids(np.array(self.forget_ids)),
            "candidates": fingerprint_ids(self.candidates),
        }


@dataclass(frozen=True, eq=False)
class BankSpec:
    """Everything that determines the shadows; its hash names the bank."""

    dataset: Dataset
    recipe: Recipe | SklearnRecipe
    """How the audited model was trained: a network recipe, or a scikit-learn estimator."""
    method: str | None
    """The audited model's unlearning method; None: shadows are not unlearned (LiRA only)."""
    method_params: Mapping[str, object] = field(default_factory=dict)
    forget_rule: ForgetRule = field(default_factory=lambda: ForgetRule(forget_class=0))
    seed: int = 0
    train_size: int | None = None
    """Examples each shadow trains on: the audited model's training-set size (None: the
    dataset's training split)."""
    augmentation: str = "none"
    """The augmentation policy the audited model was unlearned with (replayed by shadows)."""

    def __post_init__(self) -> None:
        pool = len(self.dataset.ids)
        if not 2 <= self.n_train < pool:
            raise UsageError(
                f"shadows train on {self.n_train} of {pool} pool examples: leave some out so that every example "
                "has shadows that never saw it"
            )

    @property
    def n_train(self) -> int:
        return len(self.dataset.train_ids) if self.train_size is None else int(self.train_size)

    def state_rates(self) -> tuple[float, float]:
        """The share of shadows in which a scored example is UNLEARNED (random forgetting;
        every trained-on example of the class for class forgetting) and OUT."""
        out = 1 - self.n_train / len(self.dataset.ids)
        rule = self.forget_rule
        if rule.forget_class is not None:
            return 1 - out, out
        return min(1 - out, len(rule.forget_ids) / len(rule.candidates)), out

    def resolved_params(self) -> dict[str, object]:
        if self.method is None:
            return {}
        return params_dict(parse_params(get_method(self.method), self.method_params))

    def to_dict(self) -> dict:
        return {
            "bank_format": BANK_FORMAT,
            "tool_version": __version__,
            "dataset_fingerprint": self.dataset.fingerprint,
            # The audited model's own seed does not shape the shadows (each has its own).
            "recipe": self.recipe.replace(seed=0).to_dict()
            if isinstance(self.recipe, Recipe)
            else {"sklearn": self.recipe.arch, "params": dict(self.recipe.params)},
            "method": self.method,
            "method_params": self.resolved_params(),
            "augmentation": self.augmentation,
            "forget_rule": self.forget_rule.to_dict(),
            "seed": self.seed,
            "train_size": self.n_train,
        }

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class ShadowPlan:
    """What shadow k trains on and forgets; a function of (bank seed, k) alone."""

    index: int
    seed: int
    trained: np.ndarray
    forget: np.ndarray

    @property
    def retain(self) -> np.ndarray:
        return np.setdiff1d(self.trained, self.forget)


def plan_shadow(spec: BankSpec, k: int) -> ShadowPlan:
    """Shadow k's training subset (as large as the audited model's) and forget set."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, k, 7]))
    pool = spec.dataset.ids
    trained = np.sort(rng.permutation(pool)[: spec.n_train])
    rule = spec.forget_rule
    if rule.forget_class is not None:
        forget = trained[spec.dataset.y[spec.dataset.rows(trained)] == rule.forget_class]
    else:
        n_forget = len(rule.forget_ids)
        if n_forget >= len(trained):
            raise UsageError(f"the forget set ({n_forget} ids) is not smaller than a shadow's training set")
        # One rate for every scored candidate, forget and test ids alike (module docstring).
        mine = np.intersect1d(rule.candidates, trained)
        if len(mine) >= n_forget:
            forget = rng.choice(mine, n_forget, replace=False)
        else:
            others = np.setdiff1d(trained, mine)
            forget = np.concatenate([mine, rng.choice(others, n_forget - len(mine), replace=False)])
        forget = np.sort(forget)
    seed = int(np.random.SeedSequence([spec.seed, k, 11]).generate_state(1)[0])
    return ShadowPlan(index=k, seed=seed, trained=trained, forget=forget)


def check_method_fits(recipe: Recipe | SklearnRecipe, method: str | None) -> None:
    """Refuse replaying a weight-updating method on a scikit-learn model (only retrain and
    output filters apply to trees)."""
    if method is None or not isinstance(recipe, SklearnRecipe):
        return
    if get_method(method).produces == "weights" and method != "retrain":
        raise UsageError(
            f"{method} updates network weights; a {recipe.arch} model is unlearned by retrain "
            "or by an output filter (mpru)"
        )


def train_and_query(spec: BankSpec, train_ids: list[np.ndarray], seeds: list[int], device) -> np.ndarray:
    """Train one model per id set with the bank's recipe; their logits on the pool, (views, K, n, C)."""
    ds = spec.dataset
    if isinstance(spec.recipe, SklearnRecipe):
        x = ds.x.reshape(len(ds.x), -1)
        logits = []
        for ids, seed in zip(train_ids, seeds):
            rows = ds.rows(ids)
            est = fit_sklearn(spec.recipe.arch, spec.recipe.params, x[rows], ds.y[rows], seed)
            logits.append(sklearn_logits(est, x, ds.num_classes))
        return np.stack(logits)[None]
    return query_logits(train_models(ds, spec.recipe, train_ids, seeds, device=device), ds, spec.recipe).numpy()


def filter_shadow(spec: BankSpec, view_logits: np.ndarray, retain: np.ndarray, seed: int) -> np.ndarray:
    """One shadow's outputs (views, n, C) through an output filter fitted like the audited one."""
    from audit_cli.unlearn import mpru

    params = parse_params(get_method(spec.method), spec.method_params)
    c = spec.forget_rule.forget_class
    if c is None:
        raise UsageError(f"{spec.method} forgets a class; pass --forget-class")
    ds = spec.dataset
    sample = mpru.retain_sample(retain, params, seed)
    rows = ds.rows(retain if sample is None else sample)
    bias = mpru.fit_redistribution(view_logits[0][rows], ds.y[rows], c, params)
    return mpru.apply_filter(view_logits, c, bias)


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
    logits_after: np.ndarray
    """(shadows, examples, classes) float32 logits after unlearning."""
    phi_reference: np.ndarray | None = None
    """Class mode: each shadow's twin retrained without the class (float64); else None."""
    logits_reference: np.ndarray | None = None
    """Class mode: the twins' logits, (shadows, examples, classes) float32; else None."""

    @property
    def n_shadows(self) -> int:
        return self.states.shape[0]


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
        if manifest.get("key") != self.key:
            raise InputError(f"{file}: manifest belongs to bank {manifest.get('key')!r}, not {self.key!r}")
        if manifest.get("chunk_size") != self.chunk_size:
            # Chunk composition decides float rounding; keep the bank's own.
            self.chunk_size = int(manifest["chunk_size"])
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
        self, n_shadows: int, *, device: str | torch.device = "cpu", progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Make sure shadows 0..n_shadows-1 exist; return how many were trained now."""
        if n_shadows < 2:
            raise UsageError("a shadow bank needs at least 2 shadows")
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        start = self.complete_shadows()
        # Whole chunks only: a top-up that ends mid-chunk still builds the chunk in full.
        target = -(-n_shadows // self.chunk_size) * self.chunk_size
        trained = 0
        for first in range(start, target, self.chunk_size):
            last = first + self.chunk_size - 1
            table = self._build_chunk(range(first, last + 1), device)
            name = f"chunk-{first:05d}-{last:05d}.parquet"
            with atomic_path(self.path / name) as tmp:
                pq.write_table(table, tmp)
            manifest["chunks"] = [c for c in manifest["chunks"] if c["first"] != first]
            manifest["chunks"].append({"first": first, "last": last, "file": name})
            atomic_write_text(self.path / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
            trained += self.chunk_size
            if progress is not None:
                progress(last + 1, target)
        return trained

    def _build_chunk(self, shadows: range, device: str | torch.device) -> pa.Table:
        spec, ds = self.spec, self.spec.dataset
        plans = [plan_shadow(spec, k) for k in shadows]
        seeds = [p.seed for p in plans]
        c_forget = spec.forget_rule.forget_class
        originals = None
        if isinstance(spec.recipe, SklearnRecipe):
            before = train_and_query(spec, [p.trained for p in plans], seeds, device)
        else:
            originals = train_models(ds, spec.recipe, [p.trained for p in plans], seeds, device=device)
            before = query_logits(originals, ds, spec.recipe).numpy()
        if spec.method is None:
            after = before
        elif get_method(spec.method).produces == "filter":
            # An output filter leaves the shadow's weights alone: fit it on a labelled sample
            # of the shadow's own retain set and apply it to the shadow's outputs.
            after = np.stack(
                [filter_shadow(spec, before[:, j], plan.retain, plan.seed) for j, plan in enumerate(plans)], axis=1
            )
        elif isinstance(spec.recipe, SklearnRecipe):
            check_method_fits(spec.recipe, spec.method)
            after = train_and_query(spec, [p.retain for p in plans], seeds, device)
        else:
            task = UnlearnTask(ds, [p.forget for p in plans], [p.retain for p in plans], spec.recipe, seeds,
                               forget_class=c_forget, augmentation=spec.augmentation)  # fmt: skip
            unlearned = unlearn_models(originals, task, spec.method, spec.method_params)
            after = query_logits(unlearned, ds, spec.recipe).numpy()
        reference = None
        if c_forget is not None:
            # The twin sees the same subset minus the class, with the same seed: the pair
            # differs only in whether the class was learned and then unlearned.
            reference = train_and_query(spec, [p.retain for p in plans], seeds, device)
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
            if spec.method is not None:
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

    # -- reading --------------------------------------------------------------------------

    def load(self, n_shadows: int | None = None) -> SignalBank:
        """The first ``n_shadows`` complete shadows (all complete ones by default)."""
        self.manifest()  # refuses a folder that belongs to another bank
        signals = read_bank(self.path)
        n = signals.n_shadows if n_shadows is None else n_shadows
        if n > signals.n_shadows:
            raise InputError(f"bank {self.path} holds {signals.n_shadows} complete shadows, {n} requested")
        return SignalBank(
            example_ids=signals.example_ids,
            states=signals.states[:n],
            phi_before=signals.phi_before[:n],
            phi_after=signals.phi_after[:n],
            logits_after=signals.logits_after[:n],
            phi_reference=None if signals.phi_reference is None else signals.phi_reference[:n],
            logits_reference=None if signals.logits_reference is None else signals.logits_reference[:n],
        )


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
        logits_after=logit_tensor("logits_after"),
        phi_reference=matrix("phi_reference", np.float64) if has_reference else None,
        logits_reference=logit_tensor("logits_reference") if has_reference else None,
    )


def export_long(bank: SignalBank, out: str | Path) -> int:
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
    with atomic_path(out) as tmp:
        if out.suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, tmp)
        elif out.suffix == ".parquet":
            pq.write_table(table, tmp)
        else:
            raise UsageError(f"export to .parquet or .csv, not {out.suffix or 'no extension'!r}")
    return len(table)
