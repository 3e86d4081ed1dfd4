"""Shadow banks on disk, as the commands that read them see them: list, resolve, score.

Every bank-taking command takes the parent folder (``--bank``, ``.audit-bank`` by default),
the folder `audit run` and `audit shadows` write banks into, one subfolder per bank key.
``resolve_bank`` turns it into one bank: the only one inside, or an error listing them
when there are several; a bank's own folder (holding ``manifest.json``) is accepted too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attacks.lira import IN, UNLEARNED, VARIANCES, leave_one_out
from attacks.metrics import SeparationReport
from attacks.rmia import leave_one_out as rmia_leave_one_out
from audit_cli.errors import InputError, UsageError
from audit_cli.shadows import BANK_FORMAT, MANIFEST, SignalBank


@dataclass(frozen=True)
class BankInfo:
    """One bank folder, from its manifest alone (no chunk is read)."""

    path: Path
    name: str
    """The folder's name: the bank key."""
    method: str | None
    """The unlearning method its shadows replay; None: not unlearned (LiRA only)."""
    shadows: int
    """Complete shadows (chunks recorded and present, from shadow 0 on)."""
    dataset_fingerprint: str
    model: str
    """The audited model's architecture (or scikit-learn estimator)."""
    forget: str
    """``class C`` or ``N ids``."""
    seed: int
    bank_format: int | None = BANK_FORMAT
    """The bank format its manifest records (None: an imported bank); only the current one is read."""

    @property
    def current(self) -> bool:
        return self.bank_format in (None, BANK_FORMAT)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "name": self.name, "method": self.method, "shadows": self.shadows,
                "dataset_fingerprint": self.dataset_fingerprint, "model": self.model, "forget": self.forget,
                "seed": self.seed, "bank_format": self.bank_format}  # fmt: skip

    def summary(self) -> str:
        return (f"{self.name} (method {self.method or 'none'}, {self.shadows} shadows, "
                f"dataset {self.dataset_fingerprint[:12]})")  # fmt: skip


def read_bank_info(folder: Path) -> BankInfo:
    """What a bank folder's manifest says about it."""
    file = folder / MANIFEST
    try:
        manifest = json.loads(file.read_text())
        spec = manifest["spec"]
        done = {int(c["first"]): int(c["last"]) for c in manifest["chunks"] if (folder / c["file"]).exists()}
        recipe, rule = dict(spec["recipe"]), dict(spec["forget_rule"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{file}: unreadable bank manifest ({exc})") from None
    n = 0
    while n in done:
        n = done[n] + 1
    kind = rule.get("kind")
    forget = (
        f"class {rule.get('class')}"
        if kind == "class"
        else "imported"
        if kind == "imported"
        else "any forget list"
        if kind == "none"
        else f"{rule.get('n', '?')} ids"
    )
    trainer = recipe.get("trainer") or {}
    model = str(recipe.get("arch") or recipe.get("sklearn") or (trainer.get("name") if trainer else None) or "?")
    return BankInfo(folder, folder.name, spec.get("method"), n, str(spec.get("dataset_fingerprint", "")), model,
                    forget, int(spec.get("seed", 0)), spec.get("bank_format"))  # fmt: skip


def list_banks(parent: str | Path) -> list[BankInfo]:
    """The banks in a parent folder, by name; a bank's own folder lists itself."""
    parent = Path(parent)
    if not parent.is_dir():
        raise InputError(f"bank folder not found: {parent}" if not parent.exists() else f"{parent} is not a folder")
    if (parent / MANIFEST).is_file():
        return [read_bank_info(parent)]
    return [read_bank_info(child) for child in sorted(parent.iterdir()) if (child / MANIFEST).is_file()]


def resolve_bank(path: str | Path) -> Path:
    """The one bank a command reads: ``path`` itself when it holds a manifest, else the only
    bank inside it. None or several inside is a usage error that lists what is there."""
    path = Path(path)
    banks = list_banks(path)
    if len(banks) == 1:
        return banks[0].path
    if not banks:
        raise InputError(f"{path} holds no shadow bank", hint="audit shadows or audit run builds one there")
    listing = "; ".join(b.summary() for b in banks)
    raise UsageError(
        f"{path} holds {len(banks)} banks: {listing}",
        hint=f"name one, such as {path / banks[0].name} (audit bank ls {path} describes them)",
    )


@dataclass(frozen=True)
class AttackStrength:
    """Leave-one-shadow-out LiRA on a bank: how strong the membership attack is on this recipe."""

    reports: tuple[SeparationReport, ...]
    """One per target shadow."""
    n_shadows: int
    rmia: tuple[SeparationReport, ...] = ()
    """RMIA offline (attacks/rmia.py) on the same turns, beside LiRA."""

    @property
    def mean_auc(self) -> float:
        return float(np.mean([r.auc.value for r in self.reports]))

    @property
    def mean_rmia_auc(self) -> float:
        return float(np.mean([r.auc.value for r in self.rmia])) if self.rmia else float("nan")


def evaluate_attack(signals: SignalBank, *, targets: int = 8, variance: str = "auto") -> AttackStrength:
    """Each of ``targets`` shadows in turn is the target, the others its reference; scored
    on the signals before unlearning, when every trained-on example is a member."""
    if variance not in VARIANCES:
        raise UsageError(f"--variance must be auto, global or per-example, got {variance!r}")
    if not 1 <= targets <= signals.n_shadows:
        raise UsageError(f"--targets must lie in 1..{signals.n_shadows} (the bank's shadows), got {targets}")
    states = np.where(signals.states == UNLEARNED, IN, signals.states)
    reports = leave_one_out(signals.phi_before, states, targets=targets, variance=variance)
    rmia = rmia_leave_one_out(signals.phi_before, states, targets=targets)
    return AttackStrength(tuple(reports), signals.n_shadows, tuple(rmia))
