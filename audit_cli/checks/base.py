"""What a check is: a name, where it applies, how it runs, and (for a gated check) the
setting that holds its threshold.

A check is a plain function from the audit's context to report rows, registered once in
``audit_cli/checks/registry.py``; gating, thresholds and the settings that hold them are
derived from that registry, so a new check is one module and one line there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from audit_cli.report import CheckResult

if TYPE_CHECKING:
    from audit_cli.checks.context import AuditContext


class CheckName(StrEnum):
    """Every check, by the name the report and the settings use for it."""

    LEAKAGE = "leakage"
    ATTACK = "attack"
    RMIA = "rmia attack"
    FORGET_GAP = "forget-vs-test gap"
    RETAIN_GAP = "retain-vs-test gap"
    FORGET_CLASS_ACCURACY = "forget-class-accuracy"
    CLASS_CONFUSION = "where the class goes"
    MIA_NN = "mia-nn"
    MIA_NN_MODEL = "mia-nn (model level)"
    POPULATION = "population"
    UNLEARNING_EFFECT = "unlearning-effect"
    RESIDUAL = "residual-memorisation"
    REFERENCE = "reference metrics"
    UTILITY = "utility"
    KLOM = "klom"


Forgetting = frozenset[str]
RANDOM: Forgetting = frozenset({"random"})
CLASS: Forgetting = frozenset({"class"})
ANY: Forgetting = RANDOM | CLASS


@dataclass(frozen=True)
class Skip:
    """A check (or part of one) that could not run, and why: listed in the report."""

    name: str
    reason: str


Outcome = CheckResult | Skip


def always(ctx: AuditContext) -> str | None:
    return None


@dataclass(frozen=True)
class Check:
    """One check of the audit."""

    name: CheckName
    run: Callable[[AuditContext], Sequence[Outcome]]
    """The report rows (and skips) of this check; called only when ``applies`` said yes."""
    applies: Callable[[AuditContext], str | None] = always
    """None when the check can run on this audit, else why not (listed as skipped)."""
    forgetting: Forgetting = ANY
    """The kinds of forgetting (random, class) the check belongs to; outside them it is
    absent from the report, not skipped."""
    threshold: str | None = None
    """For a gated check, the setting (AuditConfig field) holding its threshold."""

    @property
    def gated(self) -> bool:
        return self.threshold is not None
