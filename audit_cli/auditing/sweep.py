"""``audit sweep`` as a plain function: one method over a grid of parameters, every point
unlearned and audited, then the chosen point audited again on a fresh seed.

Each point is ``audit unlearn`` (the model given is the original) followed by ``audit run``
with that original and the optional retrained model, so each point's shadows are unlearned
with the point's own parameters; all points share one bank folder, and the shadows, which
the points train alike, are trained once and kept in memory for the others
(audit_cli/shadows/reuse.py). Per point the sweep
keeps forget, retain and test accuracy, the Average Gap and KL to the retrained model,
the detrimental-unlearning ratio, the leakage with its interval, and the audit's verdict.

Picking the best of many noisy points after the fact overstates how well the method
works (the "illusion" of the ascent paper, "Ascent Fails to Forget"): the best of n
draws is biased in its favour. So the sweep chooses a point by a declared criterion
(the Average Gap to the retrained model when one is given, else the leakage), then
unlearns and audits it again with a fresh seed (another data order for the method,
other shadows) and reports that figure as the honest one. Its exit code is the re-audit's.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from audit_cli.atomic import atomic_write_text
from audit_cli.auditing.inputs import load_references, power_notes, prepare
from audit_cli.auditing.pipeline import run_audit
from audit_cli.auditing.request import AuditConfig
from audit_cli.checks.gate import min_decidable_leakage
from audit_cli.config import DEFAULTS, LIMITS
from audit_cli.errors import UsageError
from audit_cli.options import MAX_SEED, check_seed
from audit_cli.repair.unlearn_checkpoint import unlearn_checkpoint
from audit_cli.repair.unlearn_request import UnlearnRequest
from audit_cli.report import AuditReport
from audit_cli.report.sweep_html import render_sweep_html
from audit_cli.shadows.reuse import reuse_fitted_shadows
from audit_cli.unlearn import check_inert, get_method, inert_params, parse_params

MAX_POINTS = 64
"""A grid larger than this is refused: each point trains a bank of shadows."""
# The fresh seed of the re-audit: far from any seed a user is likely to sweep over.
FRESH_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class SweepRequest:
    """A model, what to forget, a method and a grid of its parameters."""

    model: Path
    """The original model (.safetensors) every point unlearns from."""
    method: str
    grid: Mapping[str, Sequence[str]]
    """Parameter name -> the values to try (``--param lr=1e-4,1e-3``); the grid is their product."""
    out: Path
    """Folder for the points' checkpoints and reports (created; refused if not empty)."""
    forget: Path | None = None
    forget_class: int | None = None
    retrained: Path | None = None
    fixed: Mapping[str, str] = field(default_factory=dict)
    """Parameters with one value."""
    shadows: int = 32
    bank: Path = Path(str(DEFAULTS["bank"]))
    fail_above: float = DEFAULTS["fail_above"]
    allow_underpowered: bool = False
    seed: int = 0
    device: str = "auto"
    overwrite: bool = False
    lock_timeout: float = DEFAULTS["lock_timeout"]
    """Seconds to wait for another run building the points' bank (audit_cli/shadows/lock.py)."""
    audit_settings: Mapping[str, object] = field(default_factory=dict)
    """The other settings of every point's audit (``residual_above``, ``gate``, ``variance``,
    ``executor``...), as ``audit run`` resolves them: each point gets audit run's verdict."""


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: its parameters, where its model went, and what its audit found."""

    params: Mapping[str, object]
    checkpoint: str
    forget_accuracy: float
    retain_accuracy: float
    test_accuracy: float
    leakage: float
    leakage_low: float
    leakage_high: float
    verdict: str
    """The audit's verdict at this point (pass, fail or inconclusive): its headline gated
    check's, the residual share where it gates (the leakage check then only fails)."""
    exit_code: int
    average_gap: float | None
    kl_forget: float | None
    """Mean KL(retrained || model) on the forget set."""
    detrimental_ratio: float | None
    klom: float | None
    """KLoM of the method on this recipe (the shadows' margins, unlearned against never seen)."""
    seed: int


@dataclass(frozen=True)
class SweepResult:
    method: str
    criterion: str
    points: tuple[SweepPoint, ...]
    chosen: int
    """Index of the point the criterion picked."""
    fresh: SweepPoint
    """The chosen parameters unlearned and audited again on a fresh seed."""
    out: str

    @property
    def exit_code(self) -> int:
        return self.fresh.exit_code

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "criterion": self.criterion,
            "chosen": self.chosen,
            "out": self.out,
            "exit_code": self.exit_code,
            "points": [asdict(p) for p in self.points],
            "fresh": asdict(self.fresh),
        }


def grid_points(method: str, grid: Mapping[str, Sequence[str]], fixed: Mapping[str, str]) -> list[dict[str, str]]:
    """Every combination of the grid's values, each checked against the method's parameters
    before anything is trained."""
    entry = get_method(method)
    if entry.produces != "weights":
        raise UsageError(f"audit sweep runs methods that update weights; {method!r} does not")
    if not grid:
        raise UsageError("nothing to sweep", hint="give a parameter several values: --param lr=1e-4,1e-3,1e-2")
    overlap = sorted(set(grid) & set(fixed))
    if overlap:
        raise UsageError(f"parameter {overlap[0]!r} given twice")
    names = list(grid)
    count = math.prod(len(grid[n]) for n in names)
    if count > MAX_POINTS:
        raise UsageError(f"the grid has {count} points; at most {MAX_POINTS} (each trains a bank of shadows)")
    points = [dict(fixed) | dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]
    parsed = [parse_params(entry, point) for point in points]
    # A parameter inert at some points (momentum where the grid tries adam) still acts at
    # the others; only one that acts at none is refused.
    acting = {name for point, params in zip(points, parsed, strict=True) for name in point
              if name not in inert_params(params)}  # fmt: skip
    check_inert(entry, parsed[0], [name for name in points[0] if name not in acting])
    return points


def parse_grid(pairs: Mapping[str, str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``name=v1,v2`` pairs -> (the swept parameters, the fixed ones)."""
    grid, fixed = {}, {}
    for name, text in pairs.items():
        values = [v.strip() for v in text.split(",")]
        if any(not v for v in values):
            raise UsageError(f"--param {name}={text}: an empty value")
        if len(set(values)) != len(values):
            raise UsageError(f"--param {name}={text}: a value given twice")
        if len(values) > 1:
            grid[name] = values
        else:
            fixed[name] = values[0]
    return grid, fixed


def check_out_folder(out: Path, overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is not a folder; the sweep writes a folder of checkpoints and reports")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out} is not empty; not overwriting it", hint="pass --overwrite, or another folder")
    if not out.parent.is_dir():
        raise UsageError(f"folder {out.parent} does not exist")
    return out


def _check(report: AuditReport, name: str) -> float | None:
    found = next((c for c in report.checks if c.name == name), None)
    return found.score if found is not None else None


def audit_config(request: SweepRequest, model: Path, seed: int) -> AuditConfig:
    """``audit run --model MODEL --original <the sweep's model> [--retrained ...]``."""
    return AuditConfig(model=model, forget=request.forget, forget_class=request.forget_class, original=request.model,
                       retrained=request.retrained, shadows=request.shadows, bank=request.bank,
                       fail_above=request.fail_above, seed=seed, device=request.device,
                       allow_underpowered=request.allow_underpowered, lock_timeout=request.lock_timeout,
                       **request.audit_settings)  # fmt: skip


def run_point(
    request: SweepRequest, params: Mapping[str, str], index: str, seed: int
) -> tuple[SweepPoint, AuditReport]:
    checkpoint = request.out / f"point-{index}.safetensors"
    result = unlearn_checkpoint(
        UnlearnRequest(
            model=request.model,
            out=checkpoint,
            method=request.method,
            params=params,
            forget=request.forget,
            forget_class=request.forget_class,
            seed=seed,
            overwrite=request.overwrite,
            device=request.device,
        )
    )
    report = run_audit(audit_config(request, checkpoint, seed))
    atomic_write_text(request.out / f"point-{index}.json", report.to_json())
    leak = next(c for c in report.checks if c.name == "leakage")
    point = SweepPoint(
        params=dict(result.params),
        checkpoint=str(checkpoint),
        forget_accuracy=result.after.forget,
        retain_accuracy=result.after.retain,
        test_accuracy=result.after.test,
        leakage=leak.score,
        leakage_low=leak.low,
        leakage_high=leak.high,
        verdict=report.headline.verdict,
        exit_code=int(report.exit_code),
        average_gap=_check(report, "average gap"),
        kl_forget=_check(report, "divergence to retrained (forget)"),
        detrimental_ratio=_check(report, "detrimental-unlearning ratio"),
        klom=_check(report, "klom"),
        seed=seed,
    )
    return point, report


def sweep(request: SweepRequest, progress=None, notice: Callable[[str], None] | None = None) -> SweepResult:
    check_seed(request.seed)
    low, high = LIMITS["shadows"]
    if not low <= request.shadows <= high:
        raise UsageError(f"--shadows {request.shadows} is outside {low}..{high}")
    points_params = grid_points(request.method, request.grid, request.fixed)
    out = check_out_folder(request.out, request.overwrite)
    # Every point's audit has the same settings, forget set and references: what would
    # stop one (a threshold, the bank folder, a retrained model, too few examples) stops the
    # sweep before its first checkpoint is written.
    # Checked as the points will be audited: with the sweep's method (the shadows it needs to
    # observe every example in both states are the points' shadows).
    inputs = prepare(replace(audit_config(request, request.model, request.seed), method=request.method))
    load_references(inputs)
    # A pass the counts cannot reach is said before the first point, as audit run says it.
    for note in power_notes(inputs, min_decidable_leakage(len(inputs.forget), len(inputs.test))):
        if notice is not None:
            notice(note)
    out.mkdir(exist_ok=True)
    criterion = "average gap" if request.retrained is not None else "leakage"
    points = []
    # The points' shadows are trained alike and unlearned differently: train them once.
    with reuse_fitted_shadows():
        for i, params in enumerate(points_params):
            point, _ = run_point(request, params, f"{i:02d}", request.seed)
            points.append(point)
            if progress is not None:
                progress(i + 1, len(points_params) + 1)
    scores = [(p.average_gap if criterion == "average gap" else p.leakage) for p in points]
    chosen = min(range(len(points)), key=lambda i: (math.isnan(scores[i]), scores[i]))
    chosen_params = points_params[chosen]
    fresh, _ = run_point(request, chosen_params, "fresh", (request.seed + FRESH_SEED_OFFSET) % (MAX_SEED + 1))
    if progress is not None:
        progress(len(points_params) + 1, len(points_params) + 1)
    result = SweepResult(request.method, criterion, tuple(points), chosen, fresh, str(out))
    doc = result.to_dict()
    atomic_write_text(out / "sweep.json", json.dumps(doc, indent=2, default=str))
    atomic_write_text(out / "sweep.html", render_sweep_html(doc))
    return result


__all__ = ["MAX_POINTS", "SweepPoint", "SweepRequest", "SweepResult", "parse_grid", "sweep"]
