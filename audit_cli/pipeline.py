"""``audit run`` as a plain function: run every check the inputs allow, return the report.

Data flow (DESIGN.md): load the audited checkpoint (and the optional original and
retrained ones) safely; resolve the forget set against the dataset the model was trained
on; build or reuse the shadow bank (shadows trained with the model's recipe and, when the
model declares an unlearning method, unlearned with it); score the model's own signals
against the shadows; add the checks that need no shadows; decide the gate. Nothing here
prints: the CLI renders the report.

The headline is the leakage score ``2 * |AUC - 0.5|`` of the per-example attack that tells
the forget set from test examples (never trained on), with a bootstrap interval. With a
declared method that attack is U-LiRA (UNLEARNED against OUT shadows); without one, it is
LiRA's membership test (IN against OUT), which asks whether the forget examples still
look trained on. Every gated check has three outcomes (audit_cli/gate.py): fail when its
interval lies above the threshold, pass only when it lies at or below it, inconclusive
otherwise; and before any shadow is trained the counts are checked to be able to decide
at all (``check_power``).
"""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from scipy.stats import norm

from attacks.effect import exact_unlearning_drops, unlearning_effect
from attacks.gap import gap_check, paired_accuracy_difference, retrain_accuracy_sd, shift_direction, wilson_interval
from attacks.klom import klom
from attacks.lira import IN, OUT, UNLEARNED, lira_online, resolve_variance, ulira, ulira_class
from attacks.metrics import Interval, SeparationReport, roc_curve, separation
from attacks.mia_nn import (
    excess_over_null,
    model_features,
    model_level,
    neighbor_classes_from_reference,
    neighbor_features,
    sample_level,
)
from attacks.population import mia_efficacy, threshold_scores
from attacks.reference import UnlearningMetrics, average_gap, detrimental_ratio, output_divergence
from audit_cli import __version__
from audit_cli.data import Dataset, fingerprint_ids, load_dataset
from audit_cli.errors import InconclusiveError, UsageError
from audit_cli.gate import GATES, decide, min_decidable_leakage, what_would_decide
from audit_cli.models.checkpoint import check_dataset, file_sha256
from audit_cli.models.metadata import CheckpointMeta
from audit_cli.models.model_file import ModelFile, load_model
from audit_cli.report import AuditReport, CheckResult, Exposed
from audit_cli.shadows import BankSpec, ForgetRule, ShadowBank, SignalBank, check_method_fits, phi_of
from audit_cli.training import resolve_device
from audit_cli.unlearn import check_augmentation, get_method
from audit_cli.unlearn.mpru import FilterSpec, apply_filter, check_filter_parent, load_filter
from audit_cli.unlearn_checkpoint import resolve_forget

DEFAULT_SHADOWS = 64
# Below this many forget or test examples no claim about separation is made.
MIN_EXAMPLES = 20
# An AUC interval wider than this says nothing useful.
MAX_AUC_WIDTH = 0.25
# More unscorable forget or test examples than this share make the leakage inconclusive:
# the scored ones may not represent the set.
MAX_UNSCORABLE = 0.1
# Random forgetting scores at most this many test examples per forget example (a seeded
# sample beyond it), so that each candidate is UNLEARNED in enough shadows.
NEGATIVES_PER_FORGET = 4
# Neighbor classes MIA-NN reads (the top classes a retrained model sends the class to).
NEIGHBORS = 3
# Retrained twins whose MIA-NN AUCs on the same examples give the attack's null
# distribution (its centre is the chance level, its spread the statistic's noise).
TWIN_BASELINE = 32


@dataclass(frozen=True)
class AuditConfig:
    """What to audit and how."""

    model: Path
    forget: Path | None = None
    filter: Path | None = None
    """An MPRU output filter (``audit unlearn --method mpru``) applied to the model's outputs."""
    forget_class: int | None = None
    original: Path | None = None
    retrained: Path | None = None
    data: str | None = None
    data_options: Mapping[str, object] = field(default_factory=dict)
    data_root: Path | None = None
    method: str | None = None
    """Override the unlearning method recorded in the checkpoint."""
    method_params: Mapping[str, object] | None = None
    shadows: int = DEFAULT_SHADOWS
    bank: Path = Path(".audit-bank")
    chunk_size: int = 16
    fail_above: float = 0.1
    mia_nn_above: float = 0.1
    """Class forgetting: fail when the MIA-NN score's lower bound exceeds this."""
    forget_class_accuracy_above: float = 0.1
    """Class forgetting: fail when forget-class accuracy beyond the retrained twins' exceeds this."""
    utility_drop_above: float = 0.05
    """With --retrained: fail when the test-accuracy drop below the retrained model exceeds this."""
    missing_effect_above: float = 0.9
    """With --original: fail when the share of exact unlearning's effect on the forget set that
    the model did not achieve exceeds this (1 = a no-op)."""
    gate: str = "decide"
    """decide: pass only when an interval shows the score below its threshold; evidence: pass
    unless it shows it above (the older reading)."""
    allow_underpowered: bool = False
    """Train shadows even when the forget and test counts cannot decide the leakage threshold."""
    variance: str = "auto"
    """Gaussian spread per example, pooled ("global"), or auto (by observations per state)."""
    spread: str = "shared"
    """One spread for both Gaussians of an example (shared), or one each (separate)."""
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    """Run torch with deterministic algorithms only (slower on GPU; recorded in the report)."""
    settings: Mapping[str, object] = field(default_factory=dict)
    """Where each setting came from ({name: {"value", "source"}}), recorded in the report."""
    config_file: Path | None = None


def leakage_interval(auc: Interval) -> Interval:
    """2 * |AUC - 0.5| with the interval mapped through the fold at 0.5."""
    value = 2 * abs(auc.value - 0.5)
    if auc.low > 0.5:
        low, high = 2 * (auc.low - 0.5), 2 * (auc.high - 0.5)
    elif auc.high < 0.5:
        low, high = 2 * (0.5 - auc.high), 2 * (0.5 - auc.low)
    else:
        low, high = 0.0, 2 * max(auc.high - 0.5, 0.5 - auc.low)
    return Interval(value, low, high, auc.level)


def _load_reference(path: Path | None, dataset: Dataset, device: torch.device) -> tuple[ModelFile, np.ndarray] | None:
    if path is None:
        return None
    model = load_model(path)
    if model.meta is None:
        raise UsageError(f"{path} carries no metadata; reference models must come from audit train / unlearn")
    check_dataset(model.meta, dataset, path=path)
    return model, model.view_logits(dataset, device)


@dataclass(frozen=True, eq=False)
class AuditInputs:
    """The resolved inputs of one audit: what `audit run` and `audit shadows` share."""

    config: AuditConfig
    """The configuration as resolved: with --filter, the class comes from the filter."""
    model: ModelFile
    dataset: Dataset
    forget: np.ndarray
    retain: np.ndarray
    test: np.ndarray
    """Negatives of the attack: test ids (of the forgotten class, for class forgetting)."""
    method: str | None
    params: dict
    bank: ShadowBank
    device: torch.device
    output_filter: FilterSpec | None = None
    """An MPRU output filter the audited outputs pass through (``--filter``)."""


def prepare(config: AuditConfig) -> AuditInputs:
    """Load and check everything an audit needs; nothing is trained yet."""
    device = resolve_device(config.device)
    for name in ("fail_above", "mia_nn_above", "forget_class_accuracy_above", "utility_drop_above",
                 "missing_effect_above"):  # fmt: skip
        if not 0 <= getattr(config, name) <= 1:
            raise UsageError(f"{name.replace('_', '-')} is a score in [0, 1], got {getattr(config, name)}")
    if config.variance not in ("auto", "global", "per-example"):
        raise UsageError(f"--variance must be auto, global or per-example, got {config.variance!r}")
    if config.gate not in GATES:
        raise UsageError(f"--gate must be {' or '.join(GATES)}, got {config.gate!r}")
    if config.spread not in ("shared", "separate"):
        raise UsageError(f"spread must be shared or separate, got {config.spread!r}")
    if config.shadows < 2:
        raise UsageError(f"--shadows must be at least 2, got {config.shadows}")
    audited = load_model(config.model)
    meta = audited.meta
    if meta is None or audited.recipe is None:
        raise UsageError(
            f"{config.model} carries no training recipe; shadows must be trained like the audited model",
            hint="audit models written by audit train / audit unlearn",
        )
    dataset = (
        load_dataset(config.data, config.data_options, data_root=config.data_root)
        if config.data
        else load_dataset(meta.dataset, data_root=config.data_root)
    )
    check_dataset(meta, dataset, path=config.model)
    output_filter = None
    if config.filter is not None:
        output_filter = load_filter(config.filter)
        check_filter_parent(output_filter, audited.sha256, config.filter)
        if meta.unlearning is not None:
            raise UsageError(f"--filter wraps the original model; {config.model} is already unlearned")
        if output_filter.dataset_fingerprint != dataset.fingerprint:
            raise UsageError(f"{config.filter} was fitted on another dataset than {dataset.name!r}")
        if config.forget is not None:
            raise UsageError("an MPRU filter forgets a class; pass --forget-class (or nothing), not --forget")
        if config.forget_class is not None and config.forget_class != output_filter.forget_class:
            raise UsageError(f"{config.filter} forgets class {output_filter.forget_class}, not {config.forget_class}")
        config = replace(config, forget_class=output_filter.forget_class, forget=None)
    forget, retain = resolve_forget(dataset, config.forget, config.forget_class)
    if meta.unlearning is not None and meta.unlearning.forget_fingerprint != fingerprint_ids(forget):
        raise UsageError(
            f"{config.model} was unlearned with another forget set than the one given",
            hint="pass the forget list the model was unlearned with",
        )
    declared = output_filter.method if output_filter else meta.unlearning.method if meta.unlearning else None
    declared_params = output_filter.params if output_filter else meta.unlearning.params if meta.unlearning else {}
    method = config.method or declared
    params = dict(config.method_params or (declared_params if not config.method else {}))
    params.pop("seed", None)
    # Shadows replay the augmentation too (it changes what unlearning does); it travels
    # beside the method's own parameters, as in the checkpoint.
    augmentation = str(params.pop("augmentation", "none"))
    if method is not None and augmentation != "none":
        # The shadows' unlearning would refuse it after minutes of training; refuse now.
        check_augmentation(augmentation, dataset)
    if method is not None and augmentation != "none" and not get_method(method).augmentable:
        raise UsageError(f"{method} takes no augmentation policy (finetune, random-label and salun do)")
    if method is not None:
        produces = get_method(method).produces
        if output_filter is not None and produces != "filter":
            raise UsageError(f"--filter audits an output filter; {method} changes weights (drop --method)")
        if output_filter is None and produces == "filter":
            raise UsageError(f"{method} is an output filter: pass the filter file with --filter")
        check_method_fits(audited.recipe, method)
    test = dataset.test_ids
    if config.forget_class is None and len(test) > NEGATIVES_PER_FORGET * len(forget):
        # Each shadow forgets |F| of the scored candidates it trained on; with many more test
        # ids than forget ids a candidate would be UNLEARNED in almost no shadow. A seeded
        # sample of 4 negatives per forget example keeps that share at a fifth or more, and
        # costs the AUC little precision (its variance goes as 1/n_forget + 1/n_test).
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 23]))
        test = np.sort(rng.choice(test, NEGATIVES_PER_FORGET * len(forget), replace=False))
    if config.forget_class is not None:
        # The class game: forgotten training examples against unseen examples of the class.
        test = test[dataset.y[dataset.rows(test)] == config.forget_class]
        if len(test) < 2:
            raise InconclusiveError(
                f"class {config.forget_class} has {len(test)} test example(s): nothing to compare the forgotten "
                "examples with",
                hint="use a test split that holds examples of the class",
            )
    spec = BankSpec(
        dataset=dataset,
        recipe=audited.recipe,
        method=method,
        method_params=params,
        forget_rule=ForgetRule(forget_class=config.forget_class)
        if config.forget_class is not None
        else ForgetRule(forget_ids=tuple(int(i) for i in forget), negatives=tuple(int(i) for i in test)),
        seed=config.seed,
        train_size=original_train_size(meta, dataset),
        augmentation=augmentation if method is not None else "none",
    )
    bank = ShadowBank(config.bank, spec, chunk_size=config.chunk_size)
    return AuditInputs(config, audited, dataset, forget, retain, test, method, params, bank, device, output_filter)


def check_power(inputs: AuditInputs, min_leakage: float) -> None:
    """Refuse (exit 3) before any shadow is trained when the counts alone cannot decide:
    too few forget or test examples, a threshold below what they decide, or shadows too
    few for every scored example to be observed UNLEARNED and OUT."""
    config, n_forget, n_test = inputs.config, len(inputs.forget), len(inputs.test)
    hint = "pass --allow-underpowered to run anyway"
    if min(n_forget, n_test) < MIN_EXAMPLES:
        raise InconclusiveError(
            f"{n_forget} forget and {n_test} test examples are too few for any claim (at least {MIN_EXAMPLES} "
            "each); no shadow was trained",
            hint=hint,
        )
    if config.gate == "decide" and config.fail_above < min_leakage:
        raise InconclusiveError(
            f"{n_forget} forget and {n_test} test examples cannot decide a leakage threshold of "
            f"{config.fail_above}: an exact unlearner passes at most half the time below {min_leakage:.3f}; "
            "no shadow was trained",
            hint=f"raise --fail-above to at least {min_leakage:.3f}, audit a larger forget set, or " + hint,
        )
    if inputs.method is None:
        return
    # With one observation per state an example is scorable; below that share it is not.
    rates = inputs.bank.spec.state_rates()
    if config.forget_class is not None:
        rates = rates[:1]  # the negatives are the twins, every one of them
    never = max((1 - rate) ** config.shadows for rate in rates)
    if never > MAX_UNSCORABLE:
        raise InconclusiveError(
            f"with {config.shadows} shadows {never:.0%} of the scored examples would have no shadow that "
            f"unlearned them or none that never saw them (more than {MAX_UNSCORABLE:.0%}); no shadow was trained",
            hint="use more shadows, or " + hint,
        )


def original_train_size(meta: CheckpointMeta, dataset: Dataset) -> int:
    """How many examples the audited model (or, for an unlearned or retrained one, the model
    it stands for) was first trained on: what each shadow trains on."""
    if meta.kind == "retrained" and meta.excluded is not None and meta.n_trained is not None:
        return int(meta.n_trained) + int(meta.excluded.n_ids)
    if meta.n_trained is not None:
        return int(meta.n_trained)
    return len(dataset.train_ids)


def git_commit(cwd: Path | None = None) -> str | None:
    """HEAD of the git repository the audit runs in, if any (provenance only)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance(config: AuditConfig, inputs: AuditInputs, started: str) -> dict:
    def sha(path: Path | None) -> str | None:
        return file_sha256(path) if path is not None else None

    return {
        "tool_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "seed": config.seed,
        "deterministic": config.deterministic,
        "sha256": {
            "model": inputs.model.sha256,
            "filter": sha(config.filter),
            "original": sha(config.original),
            "retrained": sha(config.retrained),
            "forget_list": sha(config.forget),
            "config": sha(config.config_file),
        },
        "dataset_fingerprint": inputs.dataset.fingerprint,
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@contextmanager
def deterministic_torch(enabled: bool) -> Iterator[None]:
    """torch.use_deterministic_algorithms for the block, then the caller's setting again."""
    before = torch.are_deterministic_algorithms_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def run_audit(config: AuditConfig, progress: Callable[[int, int], None] | None = None) -> AuditReport:
    with deterministic_torch(config.deterministic):
        return _run_audit(config, progress)


def _run_audit(config: AuditConfig, progress: Callable[[int, int], None] | None) -> AuditReport:
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    inputs = prepare(config)
    config = inputs.config
    audited, dataset, forget, retain, test = inputs.model, inputs.dataset, inputs.forget, inputs.retain, inputs.test
    meta, method, params, bank, device = audited.meta, inputs.method, inputs.params, inputs.bank, inputs.device
    # Reference models are checked before minutes of shadow training, not after.
    retrained = _load_reference(config.retrained, dataset, device)
    original = _load_reference(config.original, dataset, device)
    if original is not None and meta.unlearning is not None and original[0].sha256 != meta.unlearning.parent_sha256:
        # The unlearning-effect check measures the move from this very model.
        raise UsageError(
            f"{config.original} is not the model {config.model} was unlearned from (parent sha256 "
            f"{meta.unlearning.parent_sha256[:12]}...)",
            hint="pass the checkpoint audit unlearn started from as --original",
        )
    # Power before cost: the counts alone say which thresholds the leakage gate can decide.
    min_leakage = min_decidable_leakage(len(forget), len(test))  # class mode: the class's examples
    if not config.allow_underpowered:
        check_power(inputs, min_leakage)
    t_bank = time.perf_counter()
    trained_now = bank.build(config.shadows, device=device, progress=progress)
    bank_seconds = time.perf_counter() - t_bank
    signals = bank.load(config.shadows)

    # -- the audited model's own signals ---------------------------------------------------
    raw_view_logits = view_logits = audited.view_logits(dataset, device)
    if inputs.output_filter is not None:
        f = inputs.output_filter
        view_logits = apply_filter(raw_view_logits, f.forget_class, f.bias)
    target_phi = phi_of(view_logits, dataset.y)
    logits = view_logits[0]
    mode = "u-lira" if method is not None else "lira"
    scores, variance_mode = _attack_scores(signals, dataset, target_phi, method, config)
    f_rows, t_rows, r_rows = dataset.rows(forget), dataset.rows(test), dataset.rows(retain)
    pop = threshold_scores(logits, dataset.y)
    loss = -pop["loss"]  # the threshold attacks' loss score is -cross-entropy

    checks: list[CheckResult] = []
    skipped: list[tuple[str, str]] = []

    # -- headline: leakage ----------------------------------------------------------------
    labels = np.r_[np.ones(len(f_rows), bool), np.zeros(len(t_rows), bool)]
    attack_scores = np.r_[scores[f_rows], scores[t_rows]]
    if np.isnan(attack_scores[labels]).all() or np.isnan(attack_scores[~labels]).all():
        raise InconclusiveError(
            f"{mode.upper()} could score no forget or no test example (non-finite shadow signals)",
            hint="the method may have wrecked the shadow models; check its parameters",
        )
    sep = separation(attack_scores, labels, seed=config.seed)
    gap = gap_check(
        "forget-vs-test",
        logits[f_rows].argmax(-1) == dataset.y[f_rows],
        loss[f_rows],
        target_phi[f_rows],
        logits[t_rows].argmax(-1) == dataset.y[t_rows],
        loss[t_rows],
        target_phi[t_rows],
    )
    direction, _ = shift_direction(target_phi[f_rows], target_phi[t_rows], seed=config.seed)
    unscorable = (np.isnan(scores[f_rows]).mean(), np.isnan(scores[t_rows]).mean())
    checks.append(_leakage_check(sep, direction, unscorable, mode, config, min_leakage))
    checks.append(_auc_info(sep, mode))
    curves = _curves(attack_scores, labels)

    # -- checks without shadows --------------------------------------------------------------
    if config.forget_class is None:
        checks.append(_gap_result(gap))
        baseline = gap_check(
            "retain-vs-test",
            logits[r_rows].argmax(-1) == dataset.y[r_rows],
            loss[r_rows],
            target_phi[r_rows],
            logits[t_rows].argmax(-1) == dataset.y[t_rows],
            loss[t_rows],
            target_phi[t_rows],
        )
        checks.append(
            CheckResult(
                "retain-vs-test gap",
                "info",
                f"baseline generalization gap: retain accuracy {baseline.accuracy_a:.3f}, "
                f"test {baseline.accuracy_b:.3f}",
                score=baseline.accuracy_diff.value,
                low=baseline.accuracy_diff.low,
                high=baseline.accuracy_diff.high,
            )
        )
    else:
        checks.extend(_class_checks(config, dataset, signals, logits, f_rows, t_rows, retrained, method, skipped))
        skipped.append(
            ("forget-vs-test gap", "class forgetting: forget-class accuracy and MIA-NN read where the class goes")
        )
    for name, values in pop.items():
        s = separation(np.r_[values[f_rows], values[t_rows]], labels, n_bootstrap=200, seed=config.seed)
        checks.append(
            CheckResult(
                f"population: {name}",
                "info",
                f"a single-threshold {name} attack (weaker than {mode.upper()}) separates forget from test "
                f"with AUC {s.auc.value:.3f}",
                score=s.auc.value,
                low=s.auc.low,
                high=s.auc.high,
            )
        )

    # -- did unlearning change anything? ----------------------------------------------------
    # An output filter's original is the model itself, unfiltered.
    original_phi = phi_of(original[1], dataset.y) if original is not None else None
    if original_phi is None and inputs.output_filter is not None:
        original_phi = phi_of(raw_view_logits, dataset.y)
    if original_phi is None:
        missing = _missing_original(meta, method, forget, config)
        if missing is None:
            skipped.append(("unlearning-effect", "no --original model given"))
        else:
            checks.append(missing)
    else:
        # Against examples that exact unlearning leaves in place: the test set, or for a
        # class the retained classes' test examples (the class's own move with the twin).
        ref_rows = t_rows if config.forget_class is None else _retained_test_rows(dataset, config.forget_class)
        checks.append(_effect_check(signals, config, target_phi, original_phi, f_rows, ref_rows))

    # -- reference metrics -----------------------------------------------------------------
    if retrained is None:
        skipped.append(("reference metrics", "no --retrained model given"))
    else:
        ref_logits = retrained[1][0]
        # The same attack on the retrained model: the score a perfect unlearner would get.
        ref_scores, _ = _attack_scores(signals, dataset, phi_of(retrained[1], dataset.y), method, config)
        ref_sep = separation(np.r_[ref_scores[f_rows], ref_scores[t_rows]], labels, n_bootstrap=200, seed=config.seed)
        checks.append(
            CheckResult(
                f"{mode} gap to retrained",
                "info",
                f"|AUC(model) - AUC(retrained)| = {abs(sep.auc.value - ref_sep.auc.value):.3f} "
                f"(model {sep.auc.value:.3f}, retrained {ref_sep.auc.value:.3f})",
                score=abs(sep.auc.value - ref_sep.auc.value),
                details={"auc_model": sep.auc.value, "auc_retrained": ref_sep.auc.value,
                         "auc_retrained_interval": [ref_sep.auc.low, ref_sep.auc.high]},
            )
        )  # fmt: skip
        # Utility is measured on the test examples the model should still get right: for
        # class forgetting, those of the retained classes (the attack's negatives are class c).
        u_rows = t_rows if config.forget_class is None else _retained_test_rows(dataset, config.forget_class)
        checks.append(_utility_check(logits, ref_logits, dataset, u_rows, signals, config))
        model_m = _unlearning_metrics(logits, dataset, f_rows, r_rows, u_rows)
        ref_m = _unlearning_metrics(ref_logits, dataset, f_rows, r_rows, u_rows)
        checks.append(
            CheckResult(
                "average gap",
                "info",
                f"mean |difference| to the retrained model over UA, MIA-efficacy, RA and TA: "
                f"{average_gap(model_m, ref_m):.2f} points",
                score=average_gap(model_m, ref_m),
                details={"model": model_m.__dict__, "retrained": ref_m.__dict__},
            )
        )
        for split, rows in (("forget", f_rows), ("retain", r_rows), ("test", u_rows)):
            d = output_divergence(logits[rows], ref_logits[rows])
            checks.append(
                CheckResult(
                    f"divergence to retrained ({split})",
                    "info",
                    f"mean KL(retrained || model) {d.kl:.4f} nats, total variation {d.total_variation:.4f}",
                    score=d.kl,
                    details={"total_variation": d.total_variation},
                )
            )
        if original is None:
            skipped.append(("detrimental-unlearning ratio", "no --original model given"))
        else:
            rows = np.r_[f_rows, u_rows]
            ratio = detrimental_ratio(
                output_divergence(logits[rows], ref_logits[rows]).kl,
                output_divergence(original[1][0][rows], ref_logits[rows]).kl,
            )
            checks.append(
                CheckResult(
                    "detrimental-unlearning ratio",
                    "info",
                    "the unlearned model is "
                    + ("further from" if ratio > 1 else "closer to")
                    + f" the retrained model than the original was (ratio {ratio:.2f}, output space)",
                    score=ratio,
                )
            )
    if method is None:
        skipped.append(("KLoM", "the model declares no unlearning method: its shadows unlearned nothing"))
    else:
        result = _klom_check(signals, dataset, f_rows, config, method)
        (checks if isinstance(result, CheckResult) else skipped).append(result)

    order = np.argsort(-np.nan_to_num(scores[f_rows], nan=-np.inf))[:10]
    exposed = tuple(Exposed(int(forget[i]), float(scores[f_rows][i])) for i in order)
    return AuditReport(
        model={
            "path": str(config.model),
            "sha256": audited.sha256,
            "filter": str(config.filter) if config.filter is not None else None,
            "kind": meta.kind,
            "method": method,
            "method_params": params,
        },
        dataset={"name": dataset.name, "fingerprint": dataset.fingerprint},
        forget={
            "path": str(config.forget) if config.forget is not None else None,
            "n": len(forget),
            "fingerprint": fingerprint_ids(forget),
            "class": config.forget_class,
            "n_test": len(test),
            "min_decidable_leakage": min_leakage,
        },
        shadows={
            "n": signals.n_shadows,
            "bank": str(bank.path),
            "trained_now": trained_now,
            "seconds": bank_seconds,
            "variance": variance_mode,
            "variance_setting": config.variance,
            "spread": config.spread,
            "train_size": bank.spec.n_train,
        },
        mode=mode,
        checks=tuple(checks),
        exposed=exposed,
        skipped=tuple(skipped),
        seconds=time.perf_counter() - started,
        config=dict(config.settings),
        provenance=provenance(config, inputs, started_at),
        curves=curves,
    )


def _attack_scores(
    signals: SignalBank, dataset: Dataset, target_phi: np.ndarray, method: str | None, config: AuditConfig
) -> tuple[np.ndarray, str]:
    """Per-example score of the headline attack (higher = looks trained on / unlearned), and
    the variance mode ``auto`` resolved to from the bank's observations per state.

    Random forgetting: U-LiRA (UNLEARNED vs OUT shadows) with a method, LiRA (IN vs OUT)
    without. Class forgetting: the negatives are the twins retrained without the class.
    """
    states, spread = signals.states, config.spread
    state = UNLEARNED if method is not None else IN
    phi = signals.phi_after if method is not None else signals.phi_before
    if config.forget_class is not None:
        if signals.phi_reference is None:
            raise UsageError("this shadow bank has no retrained-without-the-class twins; rebuild it in class mode")
        in_class = dataset.y == config.forget_class
        positives = (states == state)[:, in_class].sum(axis=0)
        mode = resolve_variance(config.variance, positives, np.full_like(positives, signals.n_shadows))
        scores = ulira_class(phi, states, signals.phi_reference, target_phi, in_class, state=state, variance=mode,
                             spread=spread)  # fmt: skip
        return scores, mode
    mode = resolve_variance(config.variance, (states == state).sum(axis=0), (states == OUT).sum(axis=0))
    attack = ulira if method is not None else lira_online
    return attack(phi, states, target_phi, variance=mode, spread=spread), mode


def _class_checks(
    config: AuditConfig,
    dataset: Dataset,
    signals: SignalBank,
    logits: np.ndarray,
    f_rows: np.ndarray,
    t_rows: np.ndarray,
    retrained: tuple[ModelFile, np.ndarray] | None,
    method: str | None,
    skipped: list[tuple[str, str]],
) -> list[CheckResult]:
    """Class forgetting: forget-class accuracy, where the class goes, and MIA-NN."""
    c = int(config.forget_class)
    twins = signals.logits_reference  # present: _attack_scores refused a class bank without twins
    out: list[CheckResult] = []

    # Forget-class accuracy against what models that never saw the class reach (about 0).
    correct = logits[f_rows].argmax(-1) == c
    twin_acc = float((twins[:, f_rows].argmax(-1) == c).mean())
    low, high = wilson_interval(int(correct.sum()), len(correct))
    excess = Interval(float(correct.mean()) - twin_acc, low - twin_acc, high - twin_acc)
    threshold = config.forget_class_accuracy_above
    enough = len(correct) >= MIN_EXAMPLES
    verdict = decide(excess.low, excess.high, threshold, config.gate) if enough else "inconclusive"
    out.append(
        CheckResult(
            "forget-class-accuracy",
            verdict,
            f"the model classifies {correct.mean():.1%} of the forgotten class's training examples as class {c} "
            f"(retrained twins: {twin_acc:.1%}); excess {excess.value:.3f} in [{excess.low:.3f}, {excess.high:.3f}]"
            + (f" > {threshold}" if verdict == "fail" else "")
            + (
                "; " + what_would_decide(excess.value, excess.low, excess.high, threshold)
                if verdict == "inconclusive" and enough
                else ""
            ),  # fmt: skip
            score=excess.value,
            low=excess.low,
            high=excess.high,
            threshold=threshold,
            gated=True,
            details={"accuracy": float(correct.mean()), "twin_accuracy": twin_acc, "n": len(correct)},
        )
    )

    # Where the class goes: the forget-class row of the confusion matrix.
    class_rows = np.r_[f_rows, t_rows]
    neighbors, share = neighbor_classes_from_reference(twins[:, class_rows], c, NEIGHBORS)
    k = dataset.num_classes

    def row(z: np.ndarray) -> list[float]:
        return [round(float(v), 4) for v in np.bincount(z.argmax(-1).reshape(-1), minlength=k) / z[..., 0].size]

    rows = {"model": row(logits[f_rows]), "retrained twins": row(twins[:, f_rows])}
    if retrained is not None:
        rows["retrained"] = row(retrained[1][0][f_rows])
    names = dataset.class_names
    top = ", ".join(f"{names[j]} ({share[j]:.0%})" for j in neighbors)
    out.append(
        CheckResult(
            "where the class goes",
            "info",
            f"retrained models send class {names[c]} to {top}; the model sends its forgotten examples to "
            + ", ".join(f"{names[j]} ({rows['model'][j]:.0%})" for j in np.argsort(rows["model"])[::-1][:3]),
            details={
                "confusion_row": rows,
                "classes": list(names),
                "neighbors": [int(j) for j in neighbors],
                "neighbor_share": [round(float(share[j]), 4) for j in neighbors],
            },
        )
    )

    # MIA-NN, sample level: forgotten training examples of c against never-seen ones.
    member = np.r_[np.ones(len(f_rows), bool), np.zeros(len(t_rows), bool)]
    feats = neighbor_features(logits[class_rows], c, neighbors)
    if dataset.num_classes < 3:
        # One retained class: renormalized over it, every input reads probability 1.
        skipped.append(("mia-nn", "two classes: the neighbor-class spread MIA-NN reads does not exist"))
        return out
    sl = sample_level(feats, member, seed=config.seed)
    auc = sl.separation.auc
    # Chance is what models that never saw the class reach on these same examples: the
    # forgotten and the test examples of c can differ by the draw of the split alone.
    # A cross-validated AUC below that is no leakage (the attack is one-sided).
    twin_aucs = [
        sample_level(
            neighbor_features(twins[k, class_rows], c, neighbors), member, n_bootstrap=0, seed=config.seed
        ).separation.auc.value
        for k in range(min(TWIN_BASELINE, twins.shape[0]))
    ]
    chance = float(np.mean(twin_aucs))
    finite = np.array([a for a in twin_aucs if np.isfinite(a)])
    excess = excess_over_null(auc.value, finite) if len(finite) >= 3 and np.isfinite(auc.value) else None
    score = (
        Interval(*(max(0.0, v) for v in (excess.value, excess.low, excess.high)), excess.level)
        if excess is not None
        else Interval(max(0.0, 2 * (auc.value - chance)), float("nan"), float("nan"))
    )
    details = {
        "auc": [auc.value, auc.low, auc.high],
        "chance_auc": chance,
        "chance_auc_sd": float(np.std(twin_aucs, ddof=1)) if len(twin_aucs) > 1 else None,
        "n_twins": len(twin_aucs),
        "gate": config.gate,
        "accuracy": [sl.accuracy.value, sl.accuracy.low, sl.accuracy.high],
        "neighbors": [int(j) for j in neighbors],
        "n_forget": int(member.sum()),
        "n_test": int((~member).sum()),
    }
    common = dict(score=score.value, low=score.low, high=score.high, threshold=config.mia_nn_above, gated=True)
    auc_text = f"AUC {auc.value:.3f} [{auc.low:.3f}, {auc.high:.3f}] against {chance:.3f} for retrained twins"
    verdict = decide(score.low, score.high, config.mia_nn_above, config.gate)
    if min(member.sum(), (~member).sum()) < MIN_EXAMPLES or excess is None:
        out.append(CheckResult("mia-nn", "inconclusive", f"too few class examples or twins for a claim ({auc_text})",
                               details=details, **common))  # fmt: skip
    else:
        sentence = (
            f"the neighbor-class probabilities tell forgotten from never-seen class-{c} examples with {auc_text}; "
            f"score 2(AUC - chance) {score.value:.3f} in [{score.low:.3f}, {score.high:.3f}] (the interval is the "
            f"spread of {len(twin_aucs)} twins' AUCs, refits included)"
        )
        if verdict == "fail":
            sentence += f" > {config.mia_nn_above}"
        elif verdict == "inconclusive":
            sentence += "; " + what_would_decide(score.value, score.low, score.high, config.mia_nn_above)
        out.append(CheckResult("mia-nn", verdict, sentence, details=details, **common))
    if retrained is not None:
        ref = sample_level(neighbor_features(retrained[1][0][class_rows], c, neighbors), member, seed=config.seed)
        gap = abs(sl.separation.auc.value - ref.separation.auc.value)
        out.append(
            CheckResult(
                "mia-nn gap to retrained",
                "info",
                f"|AUC(model) - AUC(retrained)| = {gap:.3f} (retrained {ref.separation.auc.value:.3f})",
                score=gap,
                details={"auc_retrained": [ref.separation.auc.value, ref.separation.auc.low, ref.separation.auc.high]},
            )
        )

    # MIA-NN, model level: shadows unlearned with the method against their retrained twins.
    unlearned = model_features(signals.logits_after[:, class_rows], c, neighbors)
    reference = model_features(twins[:, class_rows], c, neighbors)
    ml = model_level(unlearned, reference, model_features(logits[class_rows][None], c, neighbors)[0], seed=config.seed)
    acc = ml.accuracy
    what = f"unlearned with {method}" if method is not None else "trained with the class"
    details = {"accuracy": [acc.value, acc.low, acc.high], "n_shadows": ml.n_unlearned}
    sentence = (
        f"a classifier that tells shadows {what} from their retrained twins (held-out accuracy "
        f"{acc.value:.2f} [{acc.low:.2f}, {acc.high:.2f}]) gives this model probability {ml.p_unlearned:.2f} "
        f"of being {what} rather than retrained"
    )
    if retrained is not None:
        ref_features = model_features(retrained[1][0][class_rows][None], c, neighbors)[0]
        p_ref = model_level(unlearned, reference, ref_features, seed=config.seed).p_unlearned
        details |= {"p_retrained": p_ref, "gap": abs(ml.p_unlearned - p_ref)}
        sentence += f" (the retrained model: {p_ref:.2f})"
    out.append(CheckResult("mia-nn (model level)", "info", sentence, score=ml.p_unlearned, details=details))
    return out


def _utility_check(
    logits: np.ndarray,
    ref_logits: np.ndarray,
    dataset: Dataset,
    rows: np.ndarray,
    signals: SignalBank,
    config: AuditConfig,
) -> CheckResult:
    """Over-forgetting as lost utility: test accuracy of the retrained model minus the model's.

    Ascent-style methods with too large a step degrade forget, retain and test examples
    together (the forget set is not pushed below the test set, so the leakage attack sees
    nothing); this is where they fail. Both models answer the same test examples, so the
    interval is paired; and two retrains with different seeds differ too, so it is widened
    by the seed-to-seed spread of a retrained model's accuracy, measured on the shadows.
    """
    y = dataset.y[rows]
    ours, theirs = logits[rows].argmax(-1) == y, ref_logits[rows].argmax(-1) == y
    model_sd = _model_accuracy_sd(signals, dataset, rows, config.forget_class is not None)
    drop = paired_accuracy_difference(theirs, ours, model_sd=model_sd)
    threshold = config.utility_drop_above
    n = len(rows)
    verdict = decide(drop.low, drop.high, threshold, config.gate) if n >= MIN_EXAMPLES else "inconclusive"
    sentence = (
        f"test accuracy {ours.mean():.3f} against {theirs.mean():.3f} for the retrained model: drop {drop.value:.3f} "
        f"in [{drop.low:.3f}, {drop.high:.3f}]"
    )
    if verdict == "fail":
        sentence += f" > {threshold} (over-forgetting: the model lost what it should keep)"
    elif verdict == "inconclusive" and n >= MIN_EXAMPLES:
        # Two retrains differ by their seeds alone: more test examples do not narrow that.
        floor = float(norm.ppf(0.975) * np.sqrt(2) * model_sd)
        sentence += "; " + what_would_decide(drop.value, drop.low, drop.high, threshold, floor=floor)
    return CheckResult(
        "utility",
        verdict,
        sentence,
        score=drop.value,
        low=drop.low,
        high=drop.high,
        threshold=threshold,
        gated=True,
        details={
            "accuracy": float(ours.mean()),
            "retrained_accuracy": float(theirs.mean()),
            "n_test": n,
            "model_sd": model_sd,
        },  # fmt: skip
    )


def _retained_test_rows(dataset: Dataset, forget_class: int) -> np.ndarray:
    """Rows of the test examples of every class but the forgotten one."""
    test = dataset.test_ids
    return dataset.rows(test[dataset.y[dataset.rows(test)] != forget_class])


def _model_accuracy_sd(signals: SignalBank, dataset: Dataset, rows: np.ndarray, class_mode: bool) -> float:
    """Seed-to-seed spread of a retrained model's accuracy on these examples
    (attacks.gap.retrain_accuracy_sd), measured on models trained with the recipe and never
    unlearned (a method's own spread, e.g. ascent wrecking shadows to varying degrees, is
    not a retrain's): the twins in class mode (they are retrained models), otherwise the
    shadows before unlearning, counting ``phi > 0`` (true-class probability above one half)
    as correct, a close proxy of argmax-correct for confident models."""
    if class_mode and signals.logits_reference is not None:
        correct = signals.logits_reference[:, rows].argmax(-1) == dataset.y[rows]
    else:
        correct = signals.phi_before[:, rows] > 0
    return retrain_accuracy_sd(correct, signals.states[:, rows] == OUT, min_examples=MIN_EXAMPLES)


def _missing_original(
    meta: CheckpointMeta, method: str | None, forget: np.ndarray, config: AuditConfig
) -> CheckResult | None:
    """Without --original, a model audited as unlearned cannot be shown to have changed: a
    no-op passes every attack where the signal is weak. That is a gated inconclusive, not a
    skip, unless the checkpoint is a model retrained without exactly this forget set."""
    if method is None:
        return None  # a membership audit of a model that claims no unlearning
    excluded = meta.excluded
    if meta.kind == "retrained" and excluded is not None and excluded.ids_fingerprint == fingerprint_ids(forget):
        return None
    said = (
        "the checkpoint says it was trained on every training id and records no unlearning"
        if meta.kind == "original"
        else "nothing shows that unlearning changed the model"
    )
    return CheckResult(
        "unlearning-effect",
        "inconclusive",
        f"{said}; without the model it started from a no-op can pass every attack where membership "
        "leakage is weak; pass --original",
        threshold=config.missing_effect_above,
        gated=True,
        details={"reason": "no --original model given"},
    )


def _effect_check(
    signals: SignalBank,
    config: AuditConfig,
    target_phi: np.ndarray,
    original_phi: np.ndarray,
    f_rows: np.ndarray,
    t_rows: np.ndarray,
) -> CheckResult:
    """Did unlearning change anything: the forget set's confidence drop from the original,
    beyond that of examples exact unlearning leaves in place (``t_rows``), as a share of
    what exact unlearning does (attacks/effect.py)."""
    # Drops in units of each example's seed-to-seed spread: examples whose confidence
    # swings from model to model count less (digits sample: lower bound 0.07 -> 0.14).
    exact = exact_unlearning_drops(signals.phi_before, signals.states != OUT, signals.phi_reference
                                   if config.forget_class is not None else None)  # fmt: skip
    drop = (original_phi - target_phi) / exact.spread
    expected_f, expected_t = exact.trained[f_rows] / exact.spread[f_rows], exact.unseen[t_rows] / exact.spread[t_rows]
    try:
        report = unlearning_effect(drop[f_rows], drop[t_rows], expected_f, expected_t, seed=config.seed)
    except ValueError as exc:  # too few finite examples: no claim, not a crash
        threshold = config.missing_effect_above
        return CheckResult("unlearning-effect", "inconclusive", f"no claim: {exc}", threshold=threshold, gated=True)
    got, exp = report.achieved, report.expected
    threshold = config.missing_effect_above
    details = {
        "achieved": [got.value, got.low, got.high],
        "observed_excess_drop": [report.observed.value, report.observed.low, report.observed.high],
        "expected_excess_drop": [exp.value, exp.low, exp.high],
        "n_forget": report.n_forget,
        "n_test": report.n_test,
        "gate": config.gate,
    }
    if not np.isfinite(got.value):
        return CheckResult(
            "unlearning-effect",
            "inconclusive",
            f"exact unlearning would not move the forget set measurably on this recipe (expected excess drop "
            f"{exp.value:.3f} in [{exp.low:.3f}, {exp.high:.3f}]), so no claim on whether this model moved it",
            threshold=threshold,
            gated=True,
            details=details,
        )
    missing = Interval(1 - got.value, 1 - got.high, 1 - got.low)
    verdict = decide(missing.low, missing.high, threshold, config.gate)
    sentence = (
        f"from the original to this model the forget set's confidence dropped by {report.observed.value:.3f} "
        f"(per-example spreads) more than the test set's: {got.value:.0%} [{got.low:.0%}, {got.high:.0%}] of the "
        f"{exp.value:.3f} exact unlearning gives; missing share {missing.value:.3f}"
    )
    if verdict == "fail":
        sentence += f", at least {missing.low:.3f} > {threshold} (unlearning did not do what it claims)"
    elif verdict == "inconclusive":
        sentence += "; " + what_would_decide(missing.value, missing.low, missing.high, threshold)
    return CheckResult(
        "unlearning-effect",
        verdict,
        sentence,
        score=missing.value,
        low=missing.low,
        high=missing.high,
        threshold=threshold,
        gated=True,
        details=details,
    )


def _klom_check(
    signals: SignalBank, dataset: Dataset, f_rows: np.ndarray, config: AuditConfig, method: str
) -> CheckResult | tuple[str, str]:
    """KLoM of the method on this recipe, from the bank: per forget example, the margins
    (phi) of the shadows that unlearned it against those of models that never saw it:
    shadows that did not train on it, before any unlearning (class mode: the twins).
    Returns a skip reason when too few shadows observe each example."""
    unlearned = np.where(signals.states[:, f_rows] == UNLEARNED, signals.phi_after[:, f_rows], np.nan)
    if config.forget_class is not None:
        retrained = signals.phi_reference[:, f_rows]
    else:
        retrained = np.where(signals.states[:, f_rows] == OUT, signals.phi_before[:, f_rows], np.nan)
    try:
        report = klom(unlearned, retrained, seed=config.seed)
    except ValueError as exc:
        return ("KLoM", f"{exc}; use more shadows")
    p = report.p95
    return CheckResult(
        "klom",
        "info",
        f"95th percentile over {report.n_examples} forget examples of KL(unlearned || retrained) margin "
        f"histograms, shadows unlearned with {method}: {p.value:.3f} [{p.low:.3f}, {p.high:.3f}]; "
        f"at half sample sizes {report.matched:.3f} against {report.floor:.3f} for retrained vs retrained",
        score=p.value,
        low=p.low,
        high=p.high,
        details={
            "matched": _finite_or_none(report.matched),
            "floor": _finite_or_none(report.floor),
            "n_examples": report.n_examples,
        },
    )


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _unlearning_metrics(logits, dataset, f_rows, r_rows, t_rows) -> UnlearningMetrics:
    conf = threshold_scores(logits, dataset.y)["confidence"]
    correct = logits.argmax(-1) == dataset.y
    mia = mia_efficacy(conf[r_rows], conf[t_rows], conf[f_rows])
    return UnlearningMetrics(
        100 * correct[f_rows].mean(), 100 * correct[r_rows].mean(), 100 * correct[t_rows].mean(), 100 * mia
    )


def _leakage_check(
    sep: SeparationReport,
    direction: str,
    unscorable: tuple[float, float],
    mode: str,
    config: AuditConfig,
    min_leakage: float,
) -> CheckResult:
    threshold = config.fail_above
    leak = leakage_interval(sep.auc)
    details = {
        "direction": direction,
        "auc": sep.auc.value,
        # 2|AUC - 0.5| is biased upward near 0.5 (its null mean is not 0); the signed
        # difference is not, and says which way the attack leans.
        "auc_minus_half": sep.auc.value - 0.5,
        "n_forget": sep.n_positive,
        "n_test": sep.n_negative,
        "unscorable": {"forget": float(unscorable[0]), "test": float(unscorable[1])},
        "min_decidable": min_leakage,
        "gate": config.gate,
    }
    common = dict(score=leak.value, low=leak.low, high=leak.high, threshold=threshold, gated=True, details=details)
    signed = f"AUC - 0.5 = {sep.auc.value - 0.5:+.3f}"
    if min(sep.n_positive, sep.n_negative) < MIN_EXAMPLES:
        return CheckResult(
            "leakage",
            "inconclusive",
            f"{sep.n_positive} forget and {sep.n_negative} test examples are too few for a claim "
            f"(at least {MIN_EXAMPLES} each)",
            **common,
        )
    if config.gate == "evidence" and sep.auc.high - sep.auc.low > MAX_AUC_WIDTH:
        return CheckResult(
            "leakage", "inconclusive", "the AUC interval is too wide to say anything; use more examples", **common
        )
    if max(unscorable) > MAX_UNSCORABLE:
        return CheckResult(
            "leakage",
            "inconclusive",
            f"{mode.upper()} could not score {unscorable[0]:.0%} of the forget and {unscorable[1]:.0%} of the test "
            f"examples (more than {MAX_UNSCORABLE:.0%}): the shadows observe too few of them; use more shadows",
            **common,
        )
    verdict = decide(leak.low, leak.high, threshold, config.gate)
    if verdict == "fail":
        which = f" ({direction})" if direction != "undetermined" else ""
        sentence = (
            f"{mode.upper()} tells the forget set from unseen examples{which}: leakage "
            f"{leak.value:.3f}, at least {leak.low:.3f} > {threshold} ({signed})"
        )
    elif verdict == "pass" and leak.high <= threshold:
        sentence = f"leakage {leak.value:.3f} is shown to be at most {leak.high:.3f} <= {threshold} ({signed})"
    elif verdict == "pass":
        sentence = (
            f"no leakage above {threshold} can be shown (--gate evidence): {leak.value:.3f} in "
            f"[{leak.low:.3f}, {leak.high:.3f}]; leakage up to {leak.high:.3f} is not ruled out ({signed})"
        )
    else:
        sentence = (
            f"leakage {leak.value:.3f} in [{leak.low:.3f}, {leak.high:.3f}] neither above nor below {threshold} "
            f"({signed}); " + what_would_decide(leak.value, leak.low, leak.high, threshold)
        )
    return CheckResult("leakage", verdict, sentence, **common)


def _curves(scores: np.ndarray, labels: np.ndarray, max_points: int = 400) -> dict:
    """ROC points (thinned to ``max_points``) and the scores of both sets, for plots."""
    keep = ~np.isnan(scores)
    fpr, tpr = roc_curve(scores[keep], labels[keep])
    if len(fpr) > max_points:
        idx = np.unique(np.r_[np.linspace(0, len(fpr) - 1, max_points).astype(int), len(fpr) - 1])
        fpr, tpr = fpr[idx], tpr[idx]
    finite = np.isfinite(scores)
    return {
        "roc": {"fpr": [round(float(v), 6) for v in fpr], "tpr": [round(float(v), 6) for v in tpr]},
        "scores": {
            "forget": [round(float(v), 4) for v in scores[labels & finite]],
            "test": [round(float(v), 4) for v in scores[~labels & finite]],
        },
    }


def _auc_info(sep: SeparationReport, mode: str) -> CheckResult:
    parts = []
    for t in sep.tpr_at_fpr:
        parts.append(f"TPR {t.tpr.value:.3f} at {t.fpr:.1%} FPR" if t.tpr else f"TPR at {t.fpr:.1%} FPR: inconclusive")
    return CheckResult(
        f"{mode} attack",
        "info",
        f"AUC {sep.auc.value:.3f}, balanced accuracy {sep.balanced_accuracy.value:.3f}; " + "; ".join(parts),
        score=sep.auc.value,
        low=sep.auc.low,
        high=sep.auc.high,
        details={
            "balanced_accuracy": [sep.balanced_accuracy.value, sep.balanced_accuracy.low, sep.balanced_accuracy.high],
            "tpr_at_fpr": {
                str(t.fpr): ([t.tpr.value, t.tpr.low, t.tpr.high] if t.tpr else None) for t in sep.tpr_at_fpr
            },
            "n_dropped": sep.n_dropped,
        },
    )


def _gap_result(gap) -> CheckResult:
    return CheckResult(
        "forget-vs-test gap",
        "inconclusive" if gap.verdict == "inconclusive" else "info",
        f"{gap.verdict}: {gap.reason} (forget accuracy {gap.accuracy_a:.3f}, test {gap.accuracy_b:.3f}; "
        f"phi Mann-Whitney p={gap.phi.mwu_pvalue:.3g})",
        score=gap.accuracy_diff.value,
        low=gap.accuracy_diff.low,
        high=gap.accuracy_diff.high,
        details={
            "verdict": gap.verdict,
            "ks_phi_p": gap.phi.ks_pvalue,
            "prob_forget_phi_higher": gap.phi.prob_a_greater,
        },
    )


__all__ = ["AuditConfig", "AuditInputs", "DEFAULT_SHADOWS", "leakage_interval", "prepare", "run_audit"]
