"""An estimated retrained model, for audits without one: ``audit run --original o.safetensors
--estimate-retrained influence`` removes the forget set from the original by one
influence-function step (audit_cli/unlearn/influence.py) and compares the audited model
with that estimate in the reference metrics and the utility check, labelled "estimated"
in every check that reads it.

An estimate is not a retrained model: it never gates (the utility check reports its
figures as information), and its error is stated where it can be bounded. For a model
linear in its parameters (logreg) the retained objective
``(1/N) Σ_R ℓ + (λ/2) ‖θ‖²`` is λ-strongly convex, so the estimate lies within
``‖∇L_R(θ̂)‖ / λ`` of its exact minimiser, the model a retrain run to convergence would
reach; for networks no such bound holds, and docs/results.md gives measured errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from audit_cli.auditing.audited import AuditedModel
from audit_cli.data import Dataset
from audit_cli.errors import UsageError
from audit_cli.families.model_file import ModelFile
from audit_cli.models.recipe import Recipe
from audit_cli.training.loop import query_logits
from audit_cli.unlearn import UnlearnTask
from audit_cli.unlearn.influence import InfluenceParams, apply_step, damping_for, influence_step, problem
from audit_cli.unlearn.influence_solver import flatten, objective_gradient

ESTIMATORS = ("influence",)
# Architectures whose outputs are linear in their parameters: the bound above holds.
LINEAR_ARCHS = ("logreg",)


@dataclass(frozen=True)
class Estimate:
    """The estimated retrained model's outputs and what is known of its error."""

    view_logits: np.ndarray
    """(views, n, C), like a loaded model's."""
    details: Mapping[str, object]
    """method, form, damping, iterations, and the error bound where one holds (else None)."""


def check_estimator(name: str | None, original: object, retrained: object) -> None:
    """Refuse, before any work, an estimate that cannot be made or is not needed."""
    if name is None:
        return
    if name not in ESTIMATORS:
        raise UsageError(f"unknown retrained-model estimator {name!r}", hint=f"estimators: {', '.join(ESTIMATORS)}")
    if retrained is not None:
        raise UsageError("--estimate-retrained estimates the model --retrained already gives: pass one of them")
    if original is None:
        raise UsageError("--estimate-retrained influence removes the forget set from the original model",
                         hint="pass --original FILE (the model before unlearning)")  # fmt: skip


def estimate_retrained(original: AuditedModel, dataset: Dataset, forget: np.ndarray, retain: np.ndarray,
                       forget_class: int | None, device: torch.device | str, seed: int) -> Estimate:  # fmt: skip
    """The original with ``forget`` removed by one influence step (parameters at their defaults)."""
    opened, recipe = original.model, original.recipe
    if not (isinstance(opened, ModelFile) and opened.checkpoint is not None and isinstance(recipe, Recipe)):
        raise UsageError(
            "--estimate-retrained influence needs --original as a network checkpoint with its training recipe",
            hint="a scikit-learn model or your own trainer has no influence step here; pass --retrained instead",
        )
    ens = opened.ensemble(dataset, device, arch=original.arch, recipe=recipe)
    task = UnlearnTask(dataset, [forget], [retain], recipe, [seed], forget_class=forget_class)
    params = InfluenceParams()
    step = influence_step(ens, task, params)
    estimated = apply_step(ens, step)
    damping = damping_for(params, task)
    details: dict[str, object] = {
        "method": "influence",
        "form": step.form,
        "damping": damping,
        "iterations": int(step.solve.iterations[0]),
        "parameter_error_bound": None,
        "relative_error_bound": None,
    }
    if recipe.arch in LINEAR_ARCHS:
        details.update(error_bound(estimated, task, damping))
    return Estimate(query_logits(estimated, dataset, recipe)[:, 0].numpy(), details)


def error_bound(estimated, task: UnlearnTask, damping: float) -> dict[str, float]:
    """``‖θ̂ − θ_R‖ ≤ ‖∇L_R(θ̂)‖ / λ`` for the λ-strongly convex retained objective."""
    p = problem(estimated, task)
    zero = {n: torch.zeros_like(t) for n, t in p.params.items()}
    grad = objective_gradient(p.forward, p.params, p.buffers, p.retain, n_total=p.n_total, damping=damping,
                              center=zero)  # fmt: skip
    bound = float(grad.norm()) / damping
    return {
        "parameter_error_bound": bound,
        "relative_error_bound": bound / max(float(flatten(p.params).norm()), 1e-300),
    }
