"""``audit run`` as a plain function: prepare, bank, checks, report. Nothing here prints:
the CLI renders the report.

Data flow (docs/architecture.md): load the audited checkpoint (and the optional original and
retrained ones) safely and resolve the forget set against the dataset the model was
trained on (audit_cli/auditing/inputs.py); say, before any shadow trains, what the counts cannot
show (and refuse only counts too small for any claim); build or reuse the shadow bank
(shadows trained with the model's recipe and, when the model declares an unlearning
method, unlearned with it), in looks of 8, 16, 32, 64 ... shadows until the verdict is
decided (audit_cli/shadows/looks.py); score the model's own signals against the shadows
(audit_cli/checks/context.py); run every check that applies (audit_cli/checks/); assemble
the report.

The headline of random forgetting is the forget set's residual memorisation share (0:
exact unlearning, 1: nothing forgotten; audit_cli/checks/residual.py), whose gate decides
when the bank stops growing. Beside it, the leakage score ``2 * |AUC - 0.5|`` of the
per-example attack that tells the forget set from test examples: U-LiRA (UNLEARNED
against OUT shadows) with a declared method, LiRA's membership test (IN against OUT)
without one; it can only fail where the share gates, and is the headline of class
forgetting. Every gated check has three outcomes (audit_cli/checks/gate.py): fail, pass only
when shown, inconclusive otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from attacks.signals import IN, OUT, UNLEARNED, augmented_confidence
from audit_cli.auditing.inputs import AuditInputs, check_original_given, load_references, power_notes, prepare
from audit_cli.auditing.provenance import deterministic_torch, provenance
from audit_cli.auditing.request import AuditConfig
from audit_cli.checks import residual
from audit_cli.checks.context import AuditContext, ReferenceModel, at_look, shadow_subset
from audit_cli.checks.gate import min_decidable_leakage
from audit_cli.checks.leakage import curves
from audit_cli.checks.registry import run_checks
from audit_cli.data import fingerprint_ids
from audit_cli.errors import InconclusiveError, UsageError
from audit_cli.report import (
    EXAMPLE_COLUMNS,
    AuditReport,
    CheckResult,
    DatasetSection,
    Exposed,
    ForgetSection,
    ModelSection,
    ShadowSection,
)
from audit_cli.shadows import SignalBank
from audit_cli.shadows.imported import check_forget_rule, load_imported
from audit_cli.shadows.looks import Look, plan_looks, single_look
from audit_cli.unlearn.mpru import apply_filter


def run_audit(
    config: AuditConfig,
    progress: Callable[[int, int], None] | None = None,
    waiting: Callable[[str], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> AuditReport:
    """Audit one model; ``progress(done, total)`` is called as shadows are trained,
    ``waiting(holder)`` once if another run holds the bank's lock, and ``notice(line)`` for
    what the audit says before training (a pass the counts cannot reach)."""
    with deterministic_torch(config.deterministic):
        return _run_audit(config, progress, waiting, notice)


def _run_audit(config: AuditConfig, progress: Callable[[int, int], None] | None,
               waiting: Callable[[str], None] | None, notice: Callable[[str], None] | None) -> AuditReport:  # fmt: skip
    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
    inputs = prepare(config)
    check_original_given(inputs)
    original, retrained = load_references(inputs)
    # Power before cost: what the counts alone cannot show is said now, but never stops the
    # audit (a fail needs no such power).
    min_leakage = min_decidable_leakage(len(inputs.forget), len(inputs.test))  # class mode: the class's examples
    try:
        notes = power_notes(inputs, min_leakage)
    except InconclusiveError as exc:
        # A refusal is a verdict too: CI's upload steps still find the report it asked for.
        return _refused(inputs, exc, min_leakage, started, started_at)
    for note in notes:
        if notice is not None:
            notice(note)
    t_bank = time.perf_counter()
    imported = None
    if inputs.config.shadows_from is not None:
        imported, source, bank_path = _imported_signals(inputs)
        trained_now, most = 0, imported.n_shadows
    else:
        trained_now, most = 0, inputs.config.shadows
        source, bank_path = "built by this tool", inputs.bank.path
    # Random forgetting is decided sequentially, on a growing bank (audit_cli/shadows/looks.py);
    # class forgetting has no sequential rule and reads the whole bank once.
    looks = plan_looks(most) if inputs.config.forget_class is None else (single_look(most),)
    ctx = None
    for look in looks:
        if imported is not None:
            signals = shadow_subset(imported, np.arange(look.shadows))
        else:
            trained_now += inputs.build_bank(progress, waiting, shadows=look.shadows)
            # Random forgetting reads no shadow logits: leaving them on disk is most of the memory.
            signals = inputs.bank.load(look.shadows, logits=inputs.config.forget_class is not None)
        if ctx is None:
            try:
                ctx = build_context(inputs, signals, original, retrained, min_leakage, look)
            except InconclusiveError as exc:
                return _refused(inputs, exc, min_leakage, started, started_at,
                                shadows=(signals.n_shadows, trained_now, str(bank_path), source))  # fmt: skip
        else:
            ctx = at_look(ctx, signals, look)
        if look.last or residual.decided(ctx):
            break
    bank_seconds = time.perf_counter() - t_bank
    checks, skipped = run_checks(ctx)
    return AuditReport(
        model=_model_section(inputs),
        dataset=DatasetSection(name=inputs.dataset.name, fingerprint=inputs.dataset.fingerprint),
        forget=_forget_section(inputs, min_leakage),
        shadows=ShadowSection(
            n=signals.n_shadows,
            bank=str(bank_path),
            source=source,
            trained_now=trained_now,
            seconds=bank_seconds,
            variance=ctx.variance,
            variance_setting=inputs.config.variance,
            spread=inputs.config.spread,
            train_size=inputs.bank.spec.n_train,
            schedule=tuple(look.shadows for look in looks),
        ),
        mode=ctx.mode,
        checks=tuple(checks),
        exposed=most_exposed(ctx),
        skipped=tuple(skipped),
        seconds=time.perf_counter() - started,
        config=dict(inputs.config.settings),
        provenance=provenance(inputs.config, inputs, started_at),
        curves=curves(ctx),
        examples=example_table(ctx),
    )


# The one row of a refused audit's report (not a check: none ran).
REFUSED = "power"


def _refused(inputs: AuditInputs, exc: InconclusiveError, min_leakage: float, started: float, started_at: str,
             shadows: tuple[int, int, str, str] | None = None) -> AuditReport:  # fmt: skip
    """The report of an audit refused as inconclusive (too few examples or shadows for any
    claim, or an attack that scored nothing): one gated ``power`` row saying why and what to
    change, so that every requested report is written and exits 3 as the refusal does.
    ``shadows``: (in the bank, trained now, bank, source) when the refusal came after the
    first look."""
    n, trained_now, bank, source = shadows or (0, 0, str(inputs.bank.path), "built by this tool")
    sentence = exc.message + (f" ({exc.hint})" if exc.hint else "")
    check = CheckResult(REFUSED, "inconclusive", sentence, gated=True,
                        details={"refused": exc.message, "hint": exc.hint})  # fmt: skip
    return AuditReport(
        model=_model_section(inputs),
        dataset=DatasetSection(name=inputs.dataset.name, fingerprint=inputs.dataset.fingerprint),
        forget=_forget_section(inputs, min_leakage),
        shadows=ShadowSection(n=n, bank=bank, trained_now=trained_now, seconds=0.0, source=source,
                              train_size=inputs.bank.spec.n_train),  # fmt: skip
        mode="u-lira" if inputs.method is not None else "lira",
        checks=(check,),
        exposed=(),
        skipped=(),
        seconds=time.perf_counter() - started,
        config=dict(inputs.config.settings),
        provenance=provenance(inputs.config, inputs, started_at),
        examples={name: [] for name in EXAMPLE_COLUMNS},  # no example was scored: -f csv writes the header
    )


def _imported_signals(inputs: AuditInputs) -> tuple[SignalBank, str, Path]:
    """The signals of a bank imported with audit bank import, checked against this audit."""
    if inputs.config.forget_class is not None:
        raise UsageError("an imported bank carries signals only; class forgetting reads the shadows' logits",
                         hint="drop --shadows-from and let the tool build the bank")  # fmt: skip
    signals, source = load_imported(inputs.config.shadows_from, inputs.dataset, unlearned=inputs.method is not None)
    rows = inputs.dataset.rows
    check_forget_rule(signals, rows(inputs.forget), rows(inputs.test), UNLEARNED if inputs.method else IN)
    return signals, source, inputs.config.shadows_from


def _model_section(inputs: AuditInputs) -> ModelSection:
    config = inputs.config
    audited = inputs.model
    return ModelSection(
        path=str(audited.model.path),
        sha256=audited.sha256,
        filter=str(config.filter) if config.filter is not None else None,
        kind=audited.meta.kind,
        method=inputs.method,
        method_params=inputs.params,
        # The shadows' recipe (a federated request's is the federation it was served on).
        recipe=inputs.bank.spec.recipe.key_dict(),
        recipe_source=audited.recipe_source,
    )


def _forget_section(inputs: AuditInputs, min_leakage: float) -> ForgetSection:
    config = inputs.config
    return ForgetSection(
        path=str(config.forget) if isinstance(config.forget, (str, Path)) else None,
        n=len(inputs.forget),
        fingerprint=fingerprint_ids(inputs.forget),
        forget_class=config.forget_class,
        n_test=len(inputs.test),
        min_decidable_leakage=min_leakage,
        clients=tuple(config.forget_clients),
    )


def example_table(ctx: AuditContext) -> dict:
    """Every scored forget and test example (report.EXAMPLE_COLUMNS): its id, split, the
    headline attack's score, the audited model's phi, and how many shadows of the bank that
    decided saw it in each state."""
    rows = np.r_[ctx.f_rows, ctx.t_rows]
    states = ctx.signals.states[:, rows]

    def numbers(values: np.ndarray) -> list[float | None]:
        return [float(v) if np.isfinite(v) else None for v in values]

    return {
        "example_id": [int(i) for i in ctx.dataset.ids[rows]],
        "split": ["forget"] * len(ctx.f_rows) + ["test"] * len(ctx.t_rows),
        "score": numbers(ctx.scores[rows]),
        "phi": numbers(ctx.target_phi[rows]),
        "shadows_in": [int(n) for n in (states == IN).sum(axis=0)],
        "shadows_unlearned": [int(n) for n in (states == UNLEARNED).sum(axis=0)],
        "shadows_out": [int(n) for n in (states == OUT).sum(axis=0)],
    }


def most_exposed(ctx: AuditContext, k: int = 10) -> tuple[Exposed, ...]:
    """The ``k`` forget examples the headline attack singles out most."""
    scores = ctx.scores[ctx.f_rows]
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf))[:k]
    return tuple(Exposed(int(ctx.forget[i]), float(scores[i])) for i in order)


@dataclass(frozen=True)
class BuiltBank:
    """A bank after ``build_shadows``."""

    path: Path
    """The bank's own folder (the parent joined with its key)."""
    shadows: int
    """Complete shadows it holds."""
    trained_now: int
    method: str | None
    """The unlearning method its shadows replay; None: not unlearned (LiRA only)."""


def build_shadows(config: AuditConfig, progress: Callable[[int, int], None] | None = None,
                  waiting: Callable[[str], None] | None = None) -> BuiltBank:  # fmt: skip
    """Top the bank an audit with ``config`` would use up to ``config.shadows`` shadows;
    ``waiting(holder)`` is called if another run holds the bank's lock."""
    inputs = prepare(config)
    trained = inputs.build_bank(progress, waiting)
    return BuiltBank(inputs.bank.path, inputs.bank.complete_shadows(), trained, inputs.method)


def build_context(
    inputs: AuditInputs,
    signals: SignalBank,
    original: ReferenceModel | None,
    retrained: ReferenceModel | None,
    min_leakage: float,
    look: Look | None = None,
) -> AuditContext:
    """Score the audited model against the bank; refuse when the attack scores nothing."""
    config, dataset = inputs.config, inputs.dataset
    raw = view = np.asarray(inputs.model.view_logits(dataset, inputs.device))
    if inputs.output_filter is not None:
        view = apply_filter(raw, inputs.output_filter.forget_class, inputs.output_filter.bias)
    ctx = AuditContext(
        config=config,
        dataset=dataset,
        meta=inputs.model.meta,
        method=inputs.method,
        forget=inputs.forget,
        signals=signals,
        view_logits=view,
        unfiltered_view_logits=raw,
        target_phi=augmented_confidence(view, dataset.y),
        f_rows=dataset.rows(inputs.forget),
        t_rows=dataset.rows(inputs.test),
        r_rows=dataset.rows(inputs.retain),
        min_leakage=min_leakage,
        original=original,
        retrained=retrained,
        filtered=inputs.output_filter is not None,
        look=look,
    )
    ctx.scores  # noqa: B018 -- an attack that scores nothing is refused at the first look, not after the last
    return ctx
