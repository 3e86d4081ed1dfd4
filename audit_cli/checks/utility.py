"""Utility (gated): over-forgetting as lost accuracy, the test accuracy a model should keep
minus the model's.

Ascent-style methods with too large a step degrade forget, retain and test examples
together (the forget set is not pushed below the test set, so the leakage attack sees
nothing); this is where they fail.

What the model should keep comes from one of two references:

- ``--retrained``: that model's test accuracy. Both models answer the same test examples,
  so the interval is paired; and two retrains with different seeds differ too, so it is
  widened by the seed-to-seed spread of a retrained model's accuracy, measured on the
  shadows (twice its variance: two models).
- Without it, the bank: per test example, the share of the shadows that never trained on
  it that get it right, before any unlearning (``phi > 0``, true-class probability above
  one half); in class mode the retrained twins (trained without the class, so an exact
  unlearner's recipe) that never trained on it, by argmax. Their mean is what a model
  trained with the recipe keeps on average; the interval is paired over the examples and
  widened by the spread once (the model is one retrain, the reference an average:
  attacks.gap.expected_accuracy_difference). Sentences name this reference as the bank's,
  never as a retrained model, and details record which one was read (``reference``:
  retrained, shadows or twins). Skipped only when neither exists: no ``--retrained`` and
  fewer than MIN_EXAMPLES test examples that some shadow never trained on.

An influence estimate of the retrained model (``--estimate-retrained``) stands in for
``--retrained`` as information only: its row never gates.

With an exact method (retrain) the reference is the shadows after their own exact
unlearning, on the examples they never trained on: untrained ones and those that unlearned
the example (retrained without it). They are exact unlearners of the recipe at the right
training-set size (the original's less the forget set), so the size bias below is gone,
and about three times as many models answer each example as untrained shadows alone; at
8 shadows this decided the utility of every exact retrain of five mnist1d-10 draws where
the untrained shadows alone left three inconclusive. What remains is ``phi > 0``'s lean,
which makes an exact retrain read a drop slightly below 0 (-0.01 to -0.05 on those draws).

Known bias of the shadow reference otherwise (random forgetting): the shadows train on as many
examples as the original (the bank's ``train_size``), an exact unlearner on fewer (the
forget set left out), so the reference overstates what an exact unlearner keeps, the more
so the larger the forget set and the steeper the recipe's learning curve. ``phi > 0``
leans the other way: it counts a right answer below one half as wrong, while the model's
accuracy is argmax. Measured (shadows' expected accuracy against the mean argmax accuracy
of real retrains without the forget set, on the same test examples):

- digits, 30% forgotten (404 ids), 16 shadows, nine retrains: 0.971 against 0.964, so
  0.008 (0.014 from the training-set size, less 0.006 from ``phi > 0``): far below 0.05;
  an exact retrain reads drop 0.009 [-0.013, 0.031], a pass.
- mnist1d, 10% forgotten (400 of 4,000), 32 shadows, six retrains: 0.636 against 0.633
  (0.003: 0.015 less 0.012); an exact retrain reads 0.010 [-0.027, 0.046], a pass.
- mnist1d, 30% forgotten (1,200), six retrains: 0.636 against 0.595, so 0.041 (0.055 less
  0.014), close to the threshold: an exact retrain reads 0.036 [-0.001, 0.073],
  inconclusive (a fail needs the lower bound above 0.05: a retrain about three seed
  spreads, 0.015 each, below the recipe's average).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from attacks.gap import expected_accuracy_difference, paired_accuracy_difference, retrain_accuracy_sd
from attacks.signals import IN, OUT
from audit_cli.checks.base import Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.checks.gate import MIN_EXAMPLES, closing_clause, decide
from audit_cli.report import CheckResult

# How sentences name the bank's reference (details' "reference" holds the key).
REFERENCES = {
    "shadows": "the bank's shadows (trained with the recipe, never on these examples)",
    "retrained shadows": "the bank's shadows retrained without their forget sets (exact unlearning, never on these "
    "examples)",
    "twins": "the bank's retrained twins (trained with the recipe without the class, never on these examples)",
}


def applies(ctx: AuditContext) -> str | None:
    if ctx.retrained is not None:
        return None
    observed = int(shadow_reference(ctx)[1].any(axis=0).sum())
    if observed < MIN_EXAMPLES:
        return (
            f"no --retrained model given, and only {observed} of {len(ctx.u_rows)} test examples were left unseen by "
            f"a shadow of the bank (at least {MIN_EXAMPLES} are needed to compare with the shadows); use more shadows"
        )
    return None


def shadow_reference(ctx: AuditContext) -> tuple[np.ndarray, np.ndarray, str]:
    """The bank as the reference on the test examples the model should still get right:
    (shadows, examples) booleans, whether each model gets each example right and whether
    it never trained on it (and has a signal for it), and which models they are (a key of
    REFERENCES). Models trained with the recipe and never unlearned: the twins in class
    mode (retrained models), otherwise the shadows before unlearning, ``phi > 0`` counting
    as right (a method's own damage is the audited model's question, not the reference's)."""
    signals, rows = ctx.signals, ctx.u_rows
    y = ctx.dataset.y[rows]
    out = signals.states[:, rows] == OUT
    if ctx.forget_class is not None and signals.logits_reference is not None:
        logits = signals.logits_reference[:, rows]
        return logits.argmax(-1) == y, out & np.isfinite(logits).all(-1), "twins"
    if ctx.exact_method:
        return (*_retrained_shadows(ctx, rows), "retrained shadows")
    phi = signals.phi_before[:, rows]
    # A shadow without a signal for an example has not scored it: no observation, not a miss.
    return phi > 0, out & ~np.isnan(phi), "shadows"


def _retrained_shadows(ctx: AuditContext, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """With an exact method: whether each shadow, after its own exact unlearning, gets each
    example right (``phi > 0``), and whether it never trained on it. Retrained shadows are
    what an exact unlearner is, the recipe at its training-set size (the original's less
    the forget set), and every one that unlearned an example never saw it either: three
    times the models of the untrained ones alone."""
    phi = ctx.signals.phi_after[:, rows]
    return phi > 0, (ctx.signals.states[:, rows] != IN) & ~np.isnan(phi)


def model_accuracy_sd(ctx: AuditContext, rows: np.ndarray) -> float:
    """Seed-to-seed spread of a retrained model's accuracy on these examples
    (attacks.gap.retrain_accuracy_sd), measured on models trained with the recipe and never
    unlearned by an inexact method (a method's own spread, e.g. ascent wrecking shadows to
    varying degrees, is not a retrain's): the twins in class mode (retrained models), the
    shadows after an exact method's retraining, otherwise the shadows before unlearning,
    counting ``phi > 0`` (true-class probability above one half) as correct, a close proxy
    of argmax-correct for confident models."""
    signals, y = ctx.signals, ctx.dataset.y
    if ctx.forget_class is not None and signals.logits_reference is not None:
        correct = signals.logits_reference[:, rows].argmax(-1) == y[rows]
    elif ctx.exact_method:  # retrained shadows are retrains
        return retrain_accuracy_sd(*_retrained_shadows(ctx, rows), min_examples=MIN_EXAMPLES)
    else:
        correct = signals.phi_before[:, rows] > 0
    return retrain_accuracy_sd(correct, signals.states[:, rows] == OUT, min_examples=MIN_EXAMPLES)


def run(ctx: AuditContext) -> list[CheckResult]:
    if ctx.retrained is None:
        return [against_shadows(ctx)]
    rows, config = ctx.u_rows, ctx.config
    y = ctx.dataset.y[rows]
    ours, theirs = ctx.logits[rows].argmax(-1) == y, ctx.retrained.logits[rows].argmax(-1) == y
    model_sd = model_accuracy_sd(ctx, rows)
    unsized = not np.isfinite(model_sd)
    drop = paired_accuracy_difference(theirs, ours, model_sd=0.0 if unsized else model_sd)
    threshold = config.utility_drop_above
    n = len(rows)
    # Without the seed-to-seed spread the interval is too narrow to claim anything.
    decidable = n >= MIN_EXAMPLES and not unsized
    verdict = decide(drop.low, drop.high, threshold, config.gate) if decidable else "inconclusive"
    sentence = (
        f"test accuracy {ours.mean():.3f} against {theirs.mean():.3f} for the {ctx.retrained_label} model: drop "
        f"{drop.value:.3f} in [{drop.low:.3f}, {drop.high:.3f}]"
    )
    details = {"accuracy": float(ours.mean()), "retrained_accuracy": float(theirs.mean()), "n_test": n,
               "model_sd": None if unsized else model_sd, "reference": "retrained"}  # fmt: skip
    if ctx.retrained.estimated:
        # An estimate informs; only a real retrained model may fail a CI job.
        sentence += f" (information only: an estimate does not gate; the utility threshold is {threshold})"
        details["retrained_estimate"] = dict(ctx.retrained.estimated)
        return [CheckResult(CheckName.UTILITY.value, "info", sentence, score=drop.value, low=drop.low, high=drop.high,
                            details=details)]  # fmt: skip
    if unsized and verdict != "fail":
        sentence += (
            "; fewer than 3 shadows left enough of these test examples unseen to size how much two "
            "retrains differ by their seeds; use more shadows"
        )
    elif verdict != "inconclusive" or n >= MIN_EXAMPLES:
        # Two retrains differ by their seeds alone: more test examples do not narrow that.
        floor = float(norm.ppf(0.975) * np.sqrt(2) * model_sd)
        sentence += closing_clause(verdict, drop.value, drop.low, drop.high, threshold, floor=floor,
                                   failed=" (over-forgetting: the model lost what it should keep)")  # fmt: skip
    return [CheckResult(CheckName.UTILITY.value, verdict, sentence, score=drop.value, low=drop.low, high=drop.high,
                        threshold=threshold, gated=True, details=details)]  # fmt: skip


def against_shadows(ctx: AuditContext) -> CheckResult:
    """No retrained model: the drop from what the bank's models trained with the recipe keep
    on average, on the test examples at least one of them never trained on."""
    correct, unseen, reference = shadow_reference(ctx)
    seen_by_some = unseen.any(axis=0)
    rows, correct, unseen = ctx.u_rows[seen_by_some], correct[:, seen_by_some], unseen[:, seen_by_some]
    config, threshold = ctx.config, ctx.config.utility_drop_above
    ours = ctx.logits[rows].argmax(-1) == ctx.dataset.y[rows]
    # The seed spread as model_accuracy_sd measures it, from the same observations.
    model_sd = retrain_accuracy_sd(correct, unseen, min_examples=MIN_EXAMPLES)
    unsized = not np.isfinite(model_sd)
    # Biased up: the shadows trained on the original's train_size examples, an exact unlearner
    # on fewer (0.008 on digits with 30% forgotten, 0.041 on mnist1d: module docstring), so a
    # large forget set on a data-hungry recipe can leave an exact retrain inconclusive (rarely
    # failed at 0.05). The twins (class mode) trained without the class, as an exact unlearner does.
    drop = expected_accuracy_difference(correct, unseen, ours, model_sd=0.0 if unsized else model_sd)
    expected, n = float(ours.mean()) + drop.value, len(rows)
    # Without the seed-to-seed spread the interval is too narrow to claim anything.
    verdict = "inconclusive" if unsized else decide(drop.low, drop.high, threshold, config.gate)
    sentence = (
        f"test accuracy {ours.mean():.3f} against {expected:.3f} expected from {REFERENCES[reference]}, no "
        f"--retrained model given: drop {drop.value:.3f} in [{drop.low:.3f}, {drop.high:.3f}]"
    )
    if unsized:
        # Inconclusive (a verdict needs the seed spread): say why.
        sentence += (
            "; fewer than 3 shadows left enough of these test examples unseen to size how much a model's "
            "accuracy varies with its seed; use more shadows"
        )
    else:
        # The model is one draw of its seed against the recipe's average: more examples do not narrow that.
        floor = float(norm.ppf(0.975) * model_sd)
        sentence += closing_clause(verdict, drop.value, drop.low, drop.high, threshold, floor=floor,
                                   failed=" (over-forgetting: the model lost accuracy a model trained with the "
                                   "recipe keeps)")  # fmt: skip
    if n < len(ctx.u_rows):
        sentence += (
            f"; {len(ctx.u_rows) - n} of {len(ctx.u_rows)} test examples left out (every shadow trained on them)"
        )
    details = {"accuracy": float(ours.mean()), "reference": reference,
               "reference_accuracy": expected, "n_test": n, "n_shadows": int(unseen.any(axis=1).sum()),
               "model_sd": None if unsized else model_sd}  # fmt: skip
    return CheckResult(CheckName.UTILITY.value, verdict, sentence, score=drop.value, low=drop.low, high=drop.high,
                       threshold=threshold, gated=True, details=details)  # fmt: skip


CHECK = Check(CheckName.UTILITY, run, applies, threshold="utility_drop_above")
