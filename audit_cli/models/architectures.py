"""Architecture registry: the names, arguments and descriptions of the ``nn.Module``
classifiers the tool builds, and plug-in architectures.

Every builder has the signature ``factory(input_shape, num_classes, **arch_args)`` and
returns a module mapping ``(batch, *input_shape)`` to logits ``(batch, num_classes)``. The
builders themselves (``BUILDERS``) and ``build_model`` are in ``audit_cli.models.networks``: this module
imports no torch, so checkpoint metadata, recipes and the listings are read without it.

A plug-in architecture is named ``package.module:factory``. Importing it runs code, so
it is only ever imported when the user names it on the command line, never because a
checkpoint's metadata says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from audit_cli.errors import UnsafeArtifactError, UsageError
from audit_cli.models.plugins import is_reference, load_callable
from audit_cli.options import coerce

Factory = Callable[..., Any]
"""``factory(input_shape, num_classes, **arch_args)`` -> an ``nn.Module``."""


@dataclass(frozen=True)
class ArchEntry:
    """One registered architecture."""

    name: str
    description: str
    defaults: Mapping[str, object]
    """Architecture arguments and their defaults; the default's type is the argument's type."""


ARCHITECTURES: dict[str, ArchEntry] = {
    e.name: e
    for e in (
        ArchEntry("logreg", "multinomial logistic regression (one linear layer)", {}),
        ArchEntry("mlp", "fully connected ReLU network", {"hidden": (256,)}),
        ArchEntry("cnn1d", "three-layer 1-D CNN for signals such as mnist1d", {"channels": 32}),
        ArchEntry(
            "cnn",
            "two conv-pool blocks + hidden layer, for 28/32 px images",
            {"channels": 32, "hidden": 128},
        ),
        ArchEntry("resnet18", "torchvision ResNet-18 with a CIFAR stem (BatchNorm); width: first stage's channels",
                  {"width": 64}),
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
