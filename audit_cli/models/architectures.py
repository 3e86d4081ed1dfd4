"""Architecture registry: names -> factories building ``nn.Module`` classifiers.

Every factory has the signature ``factory(input_shape, num_classes, **arch_args)`` and
returns a module mapping ``(batch, *input_shape)`` to logits ``(batch, num_classes)``.
Parameters are created by the module's own initialisers from torch's global generator,
so seeding before the call fixes the initial weights.

The models avoid dropout: shadow ensembles are trained under ``torch.func.vmap``, and
per-model randomness inside the forward pass would break "model k of the ensemble equals
model k trained alone". BatchNorm (resnet18) works: its buffers are stacked like weights.

A plug-in architecture is named ``package.module:factory``. Importing it runs code, so
it is only ever imported when the user names it on the command line, never because a
checkpoint's metadata says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from audit_cli.errors import UnsafeArtifactError, UsageError
from audit_cli.options import coerce
from audit_cli.plugins import is_reference, load_callable

Factory = Callable[..., nn.Module]


@dataclass(frozen=True)
class ArchEntry:
    """One registered architecture."""

    name: str
    factory: Factory
    description: str
    defaults: Mapping[str, object]
    """Architecture arguments and their defaults; the default's type is the argument's type."""


def _flat_features(input_shape: tuple[int, ...]) -> int:
    return int(math.prod(input_shape))


def build_logreg(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(_flat_features(input_shape), num_classes))


def build_mlp(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (256,)) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = _flat_features(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class Unsqueeze(nn.Module):
    """Adds a channel axis to 1-D signals: (B, L) -> (B, 1, L)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1) if x.dim() == 2 else x


def build_cnn1d(input_shape: tuple[int, ...], num_classes: int, channels: int = 32) -> nn.Module:
    """Three stride-2 1-D convolutions, the mnist1d paper's small CNN shape."""
    if len(input_shape) == 1:
        in_ch, length = 1, input_shape[0]
    elif len(input_shape) == 2:
        in_ch, length = input_shape
    else:
        raise UsageError(f"cnn1d needs 1-D signals, got input shape {input_shape}")
    c = int(channels)
    conv = nn.Sequential(
        Unsqueeze(),
        nn.Conv1d(in_ch, c, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv1d(c, c, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(c, c, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
    )
    out_len = length
    for _ in range(3):
        out_len = (out_len - 1) // 2 + 1
    return nn.Sequential(conv, nn.Linear(c * out_len, num_classes))


def build_cnn(input_shape: tuple[int, ...], num_classes: int, channels: int = 32, hidden: int = 128) -> nn.Module:
    """Two conv-pool blocks and a hidden layer: the usual small net for 28 or 32 px images."""
    if len(input_shape) != 3:
        raise UsageError(f"cnn needs images (channels, height, width), got input shape {input_shape}")
    in_ch, h, w = input_shape
    c = int(channels)
    return nn.Sequential(
        nn.Conv2d(in_ch, c, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c, 2 * c, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * c * (h // 4) * (w // 4), int(hidden)),
        nn.ReLU(),
        nn.Linear(int(hidden), num_classes),
    )


def build_resnet18(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem: 3x3 stride-1 first conv, no max-pool."""
    from torchvision.models import resnet18

    if len(input_shape) != 3:
        raise UsageError(f"resnet18 needs images (channels, height, width), got input shape {input_shape}")
    model = resnet18(weights=None, num_classes=num_classes)
    # Small images lose too much resolution to the ImageNet stem (7x7 stride 2 + pool).
    model.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


ARCHITECTURES: dict[str, ArchEntry] = {
    e.name: e
    for e in (
        ArchEntry("logreg", build_logreg, "multinomial logistic regression (one linear layer)", {}),
        ArchEntry("mlp", build_mlp, "fully connected ReLU network", {"hidden": (256,)}),
        ArchEntry("cnn1d", build_cnn1d, "three-layer 1-D CNN for signals such as mnist1d", {"channels": 32}),
        ArchEntry(
            "cnn",
            build_cnn,
            "two conv-pool blocks + hidden layer, for 28/32 px images",
            {"channels": 32, "hidden": 128},
        ),
        ArchEntry("resnet18", build_resnet18, "torchvision ResNet-18 with a CIFAR stem (BatchNorm)", {}),
    )
}


def is_plugin(arch: str) -> bool:
    return is_reference(arch)


# The widest layer (units or channels) a registered architecture may have.
MAX_WIDTH = 16_384


def resolve_arch_args(arch: str, args: Mapping[str, object] | None) -> dict[str, object]:
    """Fill defaults and type every argument; unknown names are an error for registered archs."""
    args = dict(args or {})
    if is_plugin(arch):
        return args
    entry = ARCHITECTURES.get(arch)
    if entry is None:
        raise UsageError(
            f"unknown architecture {arch!r}",
            hint=f"registered: {', '.join(ARCHITECTURES)}; or a plug-in package.module:factory",
        )
    unknown = sorted(set(args) - set(entry.defaults))
    if unknown:
        valid = ", ".join(entry.defaults) or "none"
        raise UsageError(f"architecture {arch!r} has no argument {unknown[0]!r}", hint=f"its arguments: {valid}")
    typed = {k: coerce(k, args.get(k, d), d, what="architecture argument") for k, d in entry.defaults.items()}
    for name, value in typed.items():
        # Widths and channel counts: positive and bounded, checked before any allocation (a
        # width of 1e7 in a checkpoint's metadata would allocate gigabytes first).
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, int) and not isinstance(v, bool) and not 1 <= v <= MAX_WIDTH:
                raise UsageError(f"architecture {arch!r}: {name}={v} is outside 1..{MAX_WIDTH}")
    return typed


def load_plugin(arch: str, *, allowed: bool) -> Factory:
    """Import ``package.module:factory``; only when the user named it (``allowed``)."""
    if not allowed:
        raise UnsafeArtifactError(
            f"the checkpoint names plug-in architecture {arch!r}; importing it would run code",
            hint=f"pass --arch {arch} to trust and import it",
        )
    return load_callable(arch, "plug-in architecture")


def build_model(
    arch: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    arch_args: Mapping[str, object] | None = None,
    *,
    allow_plugin: bool = False,
) -> nn.Module:
    """Instantiate an architecture; initial weights come from torch's global generator."""
    args = resolve_arch_args(arch, arch_args)
    factory = load_plugin(arch, allowed=allow_plugin) if is_plugin(arch) else ARCHITECTURES[arch].factory
    try:
        model = factory(tuple(input_shape), int(num_classes), **args)
    except TypeError as exc:
        raise UsageError(f"architecture {arch!r} rejected its arguments: {exc}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"architecture {arch!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model
