"""Hand-batched forward and backward for ensembles of MLPs: the shadow-training hot path.

``vmap(functional_call)`` trains any architecture, but for stacks of Linear layers it
picks matmul layouts that are slow on the CPU for narrow layers (the 10-class output
layer): per step it transposes every weight gradient into place and runs the output
layer's matmuls at a fraction of the speed of a better-shaped batched matmul. Here each
Linear layer of K models is one autograd function with layouts chosen for speed:

- forward: ``x @ W^T + b`` as one ``baddbmm``; a layer narrower than its batch computes
  the transposed product ``W @ x^T`` instead, which MKL runs several times faster;
- backward: ``dW = g^T @ x`` lands directly in the ``(K, out, in)`` layout of the stacked
  ``nn.Linear`` weights, so no transposed copy is made.

Only ``nn.Sequential`` models built from Flatten, Linear and ReLU (the ``logreg`` and
``mlp`` architectures, or plug-ins of that shape) take this path; everything else uses
vmap. Numerically it is the same computation (tests compare it with single models).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class BatchedLinear(torch.autograd.Function):
    """K independent Linear layers: x (K, B, in), weight (K, out, in), bias (K, out)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        out_features, batch = weight.shape[1], x.shape[1]
        if out_features < batch:
            # Narrow layer: (W @ x^T)^T is the fast shape; the copy back is small.
            if bias is None:
                out = torch.bmm(weight, x.transpose(1, 2))
            else:
                out = torch.baddbmm(bias.unsqueeze(-1), weight, x.transpose(1, 2))
            return out.transpose(1, 2).contiguous()
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def mlp_plan(base: nn.Module) -> list[tuple[str, str]] | None:
    """The layer sequence of a Flatten/Linear/ReLU ``nn.Sequential``, or None if it is not one."""
    if not isinstance(base, nn.Sequential):
        return None
    plan: list[tuple[str, str]] = []
    for name, layer in base.named_children():
        if isinstance(layer, nn.Linear):
            plan.append(("linear", name))
        elif isinstance(layer, nn.ReLU):
            plan.append(("relu", name))
        elif isinstance(layer, nn.Flatten) and layer.start_dim == 1 and layer.end_dim == -1:
            plan.append(("flatten", name))
        elif isinstance(layer, nn.Identity):
            continue
        else:
            return None
    return plan if any(kind == "linear" for kind, _ in plan) else None


def mlp_forward(plan: list[tuple[str, str]]) -> Callable:
    """f(params, buffers, x) for x of shape (K, B, ...) -> logits (K, B, C)."""

    def forward(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        for kind, name in plan:
            if kind == "flatten":
                x = x.reshape(x.shape[0], x.shape[1], -1)
            elif kind == "relu":
                x = torch.relu(x)
            else:
                x = BatchedLinear.apply(x, params[f"{name}.weight"], params.get(f"{name}.bias"))
        return x

    return forward
