"""Shadows spent only until the verdict is decided: the looks a sequential audit takes at its
growing bank, and the error each look may spend.

A fresh audit does not train all ``--shadows`` at once. It trains the first chunk (8), lets
the gate decide, and trains more only when the verdict is still open: 8, 16, 32, 64, ...
doubling up to ``--shadows``. A no-op is failed on the first chunk; an exact unlearner
passes as soon as the bank is large enough to show it.

Looking several times at growing data and stopping at the first decided verdict raises
the chance of a wrong one unless each look spends only part of the error. Each look
spends an equal share (Bonferroni over the looks): with ``m`` looks, every one-sided
bound is taken at ``alpha / m``, so the chance that any look shows a wrong verdict is at
most ``alpha`` whatever the looks' correlation. Equal shares, rather than spending little
early (O'Brien-Fleming), because the looks that matter for cost are the early ones: a
first look with almost no error to spend would never stop a clear case early.

The schedule depends only on ``--shadows``, never on the data, and a bank that already
holds shadows is read at the same looks over its first 8, 16, 32, ... shadows, so a reused bank
gives the verdict a fresh one would (and nothing is trained for it).
"""

from __future__ import annotations

from dataclasses import dataclass

from audit_cli.errors import UsageError

# Shadows at the first look, and the chunk a fresh bank is trained in. A look spends its
# share of the error whether or not it decides, so an early look costs the later ones a
# little power (z 2.39 -> 2.50 at 64 shadows) and buys a verdict at half the bank: on real
# banks (digits-30, mnist1d-10) every model that forgot nothing, and on mnist1d every exact
# retrain, is decided at 8 shadows (docs/validity.md).
FIRST_LOOK = 8
# One-sided error of each side of the gate (a wrong pass, a wrong fail), over all looks.
ALPHA = 0.025


@dataclass(frozen=True)
class Look:
    """One look at the bank: read its first ``shadows`` shadows at one-sided error ``alpha``."""

    index: int
    """0 for the first look."""
    count: int
    """How many looks the schedule has."""
    shadows: int
    alpha: float

    @property
    def last(self) -> bool:
        return self.index == self.count - 1


# A per-example interval needs a spread across shadows: fewer than two have none.
MIN_SHADOWS = 2


def check_shadow_count(shadows: int) -> None:
    """The one check of a shadow count, for the audit, ``audit shadows`` and the bank."""
    if shadows < MIN_SHADOWS:
        raise UsageError(f"--shadows must be at least {MIN_SHADOWS}, got {shadows}")


def plan_looks(shadows: int, *, first: int = FIRST_LOOK, alpha: float = ALPHA) -> tuple[Look, ...]:
    """The looks of an audit with up to ``shadows`` shadows: ``first``, doubling, then
    ``shadows`` itself; each spends ``alpha`` over the number of looks."""
    check_shadow_count(shadows)
    counts = []
    n = first
    while n < shadows:
        counts.append(n)
        n *= 2
    counts.append(shadows)
    return tuple(Look(i, len(counts), n, alpha / len(counts)) for i, n in enumerate(counts))


def single_look(shadows: int, *, alpha: float = ALPHA) -> Look:
    """One look at the whole bank, spending all the error (checks with no sequential rule)."""
    return Look(0, 1, shadows, alpha)
