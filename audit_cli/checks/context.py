"""The audit's context: everything the checks read, computed once.

``AuditContext`` (built by the audit, auditing/pipeline.build_context) holds the audited
model's outputs, the shadow bank and the rows of the forget, retain and test examples, and
runs the headline attack (U-LiRA with a declared method, LiRA without; in class mode
against the retrained twins) when a check first reads it. Checks only read it.
``ReferenceModel`` is an --original or --retrained model as the checks see it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from attacks.lira import lira_online, resolve_variance, ulira, ulira_class
from attacks.metrics import SeparationReport, auc_score, separation
from attacks.mia_nn import neighbor_classes_from_reference
from attacks.population import threshold_scores
from attacks.residual import ResidualReport, residual_share
from attacks.signals import IN, OUT, UNLEARNED, augmented_confidence
from audit_cli.checks.gate import HALF_BANK_DRAWS
from audit_cli.errors import InconclusiveError, UsageError
from audit_cli.shadows.looks import Look, single_look
from audit_cli.unlearn import get_method

if TYPE_CHECKING:
    from audit_cli.auditing.request import AuditConfig
    from audit_cli.data import Dataset
    from audit_cli.models.metadata import CheckpointMeta
    from audit_cli.shadows import SignalBank

# Neighbor classes MIA-NN reads (the top classes a retrained model sends the class to).
NEIGHBORS = 3


@dataclass(frozen=True, eq=False)
class ReferenceModel:
    """An --original or --retrained model and its outputs on every dataset example."""

    model: object | None
    """The loaded model (auditing/audited.AuditedModel) the audit checks it by; None for an estimate."""
    view_logits: np.ndarray
    """(views, n, C): one slice per augmentation view the recipe scores."""
    estimated: Mapping[str, object] | None = None
    """For an estimated retrained model (--estimate-retrained): how, and its error bound."""

    @property
    def logits(self) -> np.ndarray:
        return self.view_logits[0]


@dataclass(frozen=True, eq=False)
class AuditContext:
    """The inputs of every check of one audit."""

    config: AuditConfig
    dataset: Dataset
    meta: CheckpointMeta
    method: str | None
    forget: np.ndarray
    """The forget ids."""
    signals: SignalBank
    view_logits: np.ndarray
    """The audited model's outputs (views, n, C), through its output filter if it has one."""
    unfiltered_view_logits: np.ndarray
    target_phi: np.ndarray
    f_rows: np.ndarray
    t_rows: np.ndarray
    """The attack's negatives: test examples (of the forgotten class, in class mode)."""
    r_rows: np.ndarray
    min_leakage: float
    """The smallest leakage threshold these counts decide (audit_cli/checks/gate.py)."""
    original: ReferenceModel | None = None
    retrained: ReferenceModel | None = None
    filtered: bool = False
    look: Look | None = None
    """The look of a sequential audit this context is (audit_cli/shadows/looks.py); None: one look
    at the whole bank, spending all the error."""

    def __post_init__(self) -> None:
        if self.look is None:
            object.__setattr__(self, "look", single_look(self.signals.n_shadows))

    @property
    def mode(self) -> str:
        return "u-lira" if self.method is not None else "lira"

    @property
    def forget_class(self) -> int | None:
        return self.config.forget_class

    @property
    def forgetting(self) -> str:
        return "class" if self.config.forget_class is not None else "random"

    @property
    def logits(self) -> np.ndarray:
        return self.view_logits[0]

    @property
    def retrained_label(self) -> str:
        """How checks name the retrained model: "estimated retrained" when it is an
        influence estimate (--estimate-retrained), never to be mistaken for a real one."""
        return "estimated retrained" if self.retrained is not None and self.retrained.estimated else "retrained"

    # The headline attack is scored only when a check reads it: a sequential audit reads
    # only the residual share at the looks that do not stop it (audit_cli/auditing/pipeline.py).
    @cached_property
    def _attack(self) -> tuple[np.ndarray, str]:
        scores, variance = attack_scores(self.signals, self.dataset, self.target_phi, self.method, self.config)
        check_scored(scores[self.f_rows], scores[self.t_rows], self.method)
        return scores, variance

    @property
    def scores(self) -> np.ndarray:
        """The headline attack's per-example score (higher: looks trained on / unlearned)."""
        return self._attack[0]

    @property
    def variance(self) -> str:
        """The Gaussian spread ``auto`` resolved to."""
        return self._attack[1]

    @cached_property
    def separation(self) -> SeparationReport:
        """The headline attack, forget against test."""
        return separation(np.r_[self.scores[self.f_rows], self.scores[self.t_rows]], self.labels,
                          seed=self.config.seed)  # fmt: skip

    @cached_property
    def labels(self) -> np.ndarray:
        """Forget (True) then test (False), the order of every forget-vs-test comparison."""
        return np.r_[np.ones(len(self.f_rows), bool), np.zeros(len(self.t_rows), bool)]

    @cached_property
    def population(self) -> dict[str, np.ndarray]:
        """Single-threshold attack scores of the audited model (attacks/population.py)."""
        return threshold_scores(self.logits, self.dataset.y)

    @cached_property
    def u_rows(self) -> np.ndarray:
        """Test examples the model should still get right: all of them, or for class
        forgetting those of the retained classes (the attack's negatives are class c)."""
        if self.forget_class is None:
            return self.t_rows
        test = self.dataset.test_ids
        return self.dataset.rows(test[self.dataset.y[self.dataset.rows(test)] != self.forget_class])

    @cached_property
    def original_phi(self) -> np.ndarray | None:
        """The model before unlearning: --original, or for an output filter the model itself
        unfiltered."""
        if self.original is not None:
            return augmented_confidence(self.original.view_logits, self.dataset.y)
        if self.filtered:
            return augmented_confidence(self.unfiltered_view_logits, self.dataset.y)
        return None

    @property
    def exact_method(self) -> bool:
        """Whether the shadows were unlearned exactly (retrain): then a shadow that unlearned an
        example sits where exact unlearning leaves it, as one that never saw it does."""
        return self.method is not None and get_method(self.method).exact

    @cached_property
    def residual(self) -> ResidualReport | str:
        """The forget set's residual memorisation share (attacks/residual.py), or why it
        cannot be measured on this bank. The gap is read before unlearning (what training
        put in, at the original's size); where exact unlearning leaves an example, after it
        (unlearned as the audited model was)."""
        signals = self.signals
        try:
            return residual_share(signals.phi_before, signals.phi_after, signals.states, self.target_phi,
                                  self.f_rows, self.t_rows, exact_method=self.exact_method,
                                  seed=self.config.seed)  # fmt: skip
        except ValueError as exc:
            return str(exc)

    @cached_property
    def half_bank_leakage(self) -> tuple[float, float] | None:
        """The headline attack's leakage on random halves of the bank (same variance mode):
        their mean (how much the attack still gains from more shadows) and standard
        deviation (how much the reading depends on which shadows the bank drew). None when
        a half is too small to fit."""
        k = self.signals.n_shadows // 2
        if k < 2:
            return None
        rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, 41]))
        config = replace(self.config, variance=self.variance)
        rows, labels, values = np.r_[self.f_rows, self.t_rows], self.labels, []
        for _ in range(HALF_BANK_DRAWS):
            half = np.sort(rng.choice(self.signals.n_shadows, k, replace=False))
            scores = attack_scores(shadow_subset(self.signals, half), self.dataset, self.target_phi, self.method,
                                   config)[0][rows]  # fmt: skip
            keep = ~np.isnan(scores)
            if labels[keep].all() or not labels[keep].any():
                return None
            values.append(2 * abs(auc_score(scores[keep], labels[keep]) - 0.5))
        return float(np.mean(values)), float(np.std(values, ddof=1))

    @cached_property
    def class_neighbors(self) -> tuple[np.ndarray, np.ndarray]:
        """Class mode: the classes retrained twins send the class to, and their shares."""
        rows = np.r_[self.f_rows, self.t_rows]
        return neighbor_classes_from_reference(self.signals.logits_reference[:, rows], self.forget_class, NEIGHBORS)


def shadow_subset(signals: SignalBank, rows: np.ndarray) -> SignalBank:
    """The bank's signals of some of its shadows."""
    def pick(a):
        return None if a is None else a[rows]

    return replace(signals, states=signals.states[rows], phi_before=signals.phi_before[rows],
                   phi_after=signals.phi_after[rows], logits_after=pick(signals.logits_after),
                   phi_reference=pick(signals.phi_reference),
                   logits_reference=pick(signals.logits_reference))  # fmt: skip


def attack_scores(signals: SignalBank, dataset: Dataset, target_phi: np.ndarray, method: str | None,
                  config: AuditConfig) -> tuple[np.ndarray, str]:  # fmt: skip
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
        # Observations, as the fits count them: a shadow without phi for an example is none.
        positives = ((states == state) & ~np.isnan(phi))[:, in_class].sum(axis=0)
        twins = (~np.isnan(signals.phi_reference))[:, in_class].sum(axis=0)
        mode = resolve_variance(config.variance, positives, twins)
        scores = ulira_class(phi, states, signals.phi_reference, target_phi, in_class, state=state, variance=mode,
                             spread=spread)  # fmt: skip
        return scores, mode
    seen = ~np.isnan(phi)
    mode = resolve_variance(config.variance, ((states == state) & seen).sum(axis=0),
                            ((states == OUT) & seen).sum(axis=0))  # fmt: skip
    attack = ulira if method is not None else lira_online
    return attack(phi, states, target_phi, variance=mode, spread=spread), mode


def at_look(ctx: AuditContext, signals: SignalBank, look: Look) -> AuditContext:
    """The same audit read at another look: the audited model's outputs are kept; everything
    read from the bank (the headline attack, the residual share) is computed again, and only
    when a check reads it."""
    return replace(ctx, signals=signals, look=look)


def check_scored(forget_scores: np.ndarray, test_scores: np.ndarray, method: str | None) -> None:
    """Refuse an audit whose headline attack scores no forget or no test example."""
    if np.isnan(forget_scores).all() or np.isnan(test_scores).all():
        mode = "U-LIRA" if method is not None else "LIRA"
        raise InconclusiveError(
            f"{mode} could score no forget or no test example (non-finite shadow signals)",
            hint="the method may have wrecked the shadow models; check its parameters",
        )
