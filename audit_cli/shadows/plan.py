"""What determines a shadow bank (``BankSpec``, whose hash names it) and what each shadow
trains on and forgets (``plan_shadow``, a function of the bank's seed and the shadow's index
alone, so an interrupted bank is rebuilt identically)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from audit_cli.data import Dataset, fingerprint_ids
from audit_cli.errors import UsageError
from audit_cli.shadows.signals import BANK_FORMAT
from audit_cli.version import __version__

if TYPE_CHECKING:  # annotations only: reading a bank (audit bank ls) starts without torch
    from audit_cli.families.user_code import TrainerRecipe
    from audit_cli.models.recipe import Recipe
    from audit_cli.models.sklearn_model import SklearnRecipe
    from audit_cli.unlearn import UnlearningSpec

# What a bank of shadows that forget nothing (plain LiRA) records as its forget rule.
SHADOWS_FORGET_NOTHING = {"kind": "none", "rule": "shadows are not unlearned: any forget list"}
# How a bank of shadows that are not unlearned (LiRA only) records its unlearning.
NO_UNLEARNING = {"method": None, "method_params": {}, "augmentation": "none"}


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
    recipe: Recipe | SklearnRecipe | TrainerRecipe
    """How the audited model was trained: a network recipe, a scikit-learn estimator, or the
    user's own training code (audit_cli/families/)."""
    unlearning: UnlearningSpec | None
    """The audited model's unlearning, resolved (method, typed parameters, augmentation);
    None: shadows are not unlearned (LiRA only)."""
    forget_rule: ForgetRule = field(default_factory=lambda: ForgetRule(forget_class=0))
    seed: int = 0
    train_size: int | None = None
    """Examples each shadow trains on: the audited model's training-set size (None: the
    dataset's training split)."""

    def __post_init__(self) -> None:
        pool = len(self.dataset.ids)
        if not 2 <= self.n_train < pool:
            raise UsageError(
                f"shadows train on {self.n_train} of {pool} pool examples: leave some out so that every example "
                "has shadows that never saw it"
            )

    @property
    def shadows_forget(self) -> bool:
        """Whether the forget rule shapes the shadows: they are unlearned, or (a class) have
        twins without it. Plain LiRA shadows only train on random subsets, so one bank
        serves every forget list (a new deletion request trains nothing)."""
        return self.unlearning is not None or self.forget_rule.forget_class is not None

    @property
    def method(self) -> str | None:
        return self.unlearning.method if self.unlearning is not None else None

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

    def to_dict(self) -> dict:
        return {
            "bank_format": BANK_FORMAT,
            "tool_version": __version__,
            "dataset_fingerprint": self.dataset.fingerprint,
            # The audited model's own seed does not shape the shadows (each has its own).
            "recipe": self.recipe.key_dict(),
            **(self.unlearning.to_dict() if self.unlearning is not None else NO_UNLEARNING),
            "forget_rule": self.forget_rule.to_dict() if self.shadows_forget else SHADOWS_FORGET_NOTHING,
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
