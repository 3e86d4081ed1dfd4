"""influence: one Newton step that removes the forget set (influence functions), in the
primal or the dual (kernel) form (audit_cli/unlearn/influence_solver.py has the mathematics).

The step is exact for L2-regularised least squares, very close for logistic regression,
and for networks it is the step of the network linearised at its trained weights; the
unlearned network is the real one evaluated at the new weights. It assumes the model
minimises its training objective with an L2 term of strength ``damping``; a model stopped
early or trained without weight decay is only approximately such a minimiser, which is
what docs/results.md measures. Batch-norm statistics are used as stored (eval mode) and
left unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.func import functional_call, vmap

from audit_cli.training.loop import Ensemble, dataset_tensors
from audit_cli.unlearn.base import MethodEntry, UnlearnTask, check_positive
from audit_cli.unlearn.influence_solver import FORMS, Examples, Problem, Step, removal_step

# The L2 strength when the recipe trained without weight decay: some damping is needed for
# a solvable system, and 0.01 is the seed paper's λ.
FALLBACK_DAMPING = 0.01


@dataclass(frozen=True)
class InfluenceParams:
    form: str = "auto"
    """primal (CG over Gauss-Newton-vector products), dual (CG through the N·C kernel) or
    auto (the primal, measured faster on CPU in every setting tried: docs/results.md)."""
    damping: float = 0.0
    """λ of the L2 term; 0 = the recipe's weight decay, or 0.01 when it has none."""
    tol: float = 1e-6
    """CG stops when the residual falls below tol times the right-hand side."""
    max_iter: int = 1000
    """CG iterations at most; a solve that has not converged by then is refused."""
    memory_gb: float = 1.0
    """Budget of the dual's kernel (GiB); the dual refuses beyond it."""

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}, got {self.form!r}")
        check_positive(tol=self.tol, max_iter=self.max_iter, memory_gb=self.memory_gb)
        if not (self.damping >= 0 and math.isfinite(self.damping)):
            raise ValueError(f"damping must be a non-negative number, got {self.damping}")


def damping_for(params: InfluenceParams, task: UnlearnTask) -> float:
    return params.damping or task.recipe.weight_decay or FALLBACK_DAMPING


def problem(ens: Ensemble, task: UnlearnTask) -> Problem:
    """The models of ``ens`` and their examples as the solver takes them (float64)."""
    ens.base.eval()
    device = next(iter(ens.params.values())).device
    x_pool, y_pool = dataset_tensors(task.dataset, device)

    def examples(ids: Sequence[np.ndarray]) -> Examples:
        return Examples(x_pool, y_pool, torch.from_numpy(np.stack([task.dataset.rows(i) for i in ids])).to(device))

    forget, retain = examples(task.forget_ids), examples(task.retain_ids)
    return Problem(
        forward=vmap(lambda p, b, x: functional_call(ens.base, (p, b), (x,))),
        params={n: t.detach().to(torch.float64) for n, t in ens.params.items()},
        buffers={n: t.to(torch.float64) if t.is_floating_point() else t for n, t in ens.buffers.items()},
        forget=forget,
        retain=retain,
        n_total=forget.n + retain.n,
    )


def influence_step(ens: Ensemble, task: UnlearnTask, params: InfluenceParams) -> Step:
    """The removal step of every model of ``ens``, computed in float64."""
    p = problem(ens, task)
    return removal_step(
        p.forward,
        p.params,
        p.buffers,
        p.forget,
        p.retain,
        n_total=p.n_total,
        damping=damping_for(params, task),
        form=params.form,
        tol=params.tol,
        max_iter=params.max_iter,
        memory_bytes=int(params.memory_gb * 2**30),
    )


def apply_step(ens: Ensemble, step: Step) -> Ensemble:
    """The models moved by the step, in their own dtype (buffers copied unchanged)."""
    moved = {n: (t.detach().to(torch.float64) + step.delta[n]).to(t.dtype) for n, t in ens.params.items()}
    return replace(ens, params=moved, buffers={n: t.clone() for n, t in ens.buffers.items()})


def run(ens: Ensemble, task: UnlearnTask, params: InfluenceParams) -> Ensemble:
    return apply_step(ens, influence_step(ens, task, params))


ENTRY = MethodEntry(
    name="influence",
    params=InfluenceParams,
    run=run,
    supports=frozenset({"random", "class"}),
    description="one Newton step removing the forget set (influence functions; primal or kernel dual form)",
)
