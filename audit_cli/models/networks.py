"""The registered architectures' builders (``nn.Module`` classifiers) and ``build_model``.

Parameters are created by the module's own initialisers from torch's global generator,
so seeding before the call fixes the initial weights.

The models avoid dropout: shadow ensembles are trained under ``torch.func.vmap``, and
per-model randomness inside the forward pass would break "model k of the ensemble equals
model k trained alone". BatchNorm (resnet18) works: its buffers are stacked like weights.
Names, arguments and descriptions are registered in ``audit_cli.models.architectures``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from audit_cli.errors import UsageError
from audit_cli.models.architectures import MAX_WIDTH, Factory, is_plugin, load_plugin, resolve_arch_args


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


def build_resnet18(input_shape: tuple[int, ...], num_classes: int, width: int = 64) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem: 3x3 stride-1 first conv, no max-pool.
    ``width``: the first stage's channels (64, torchvision's; the stages double it), narrower
    for tests and benchmarks on CPU. The module names are torchvision's at any width."""
    from torchvision.models import resnet18
    from torchvision.models.resnet import BasicBlock

    if len(input_shape) != 3:
        raise UsageError(f"resnet18 needs images (channels, height, width), got input shape {input_shape}")
    if 8 * width > MAX_WIDTH:  # the last stage's channels, checked before anything is allocated
        raise UsageError(f"resnet18: width={width} makes a last stage of {8 * width} channels, over {MAX_WIDTH}")
    model = resnet18(weights=None, num_classes=num_classes)
    if width != 64:
        # The stages rebuilt at this width, initialised as torchvision initialises them. At 64
        # nothing is rebuilt, so a default resnet18 draws its weights as it always has.
        model.inplanes = width
        model.bn1 = nn.BatchNorm2d(width)
        model.layer1 = model._make_layer(BasicBlock, width, 2)
        model.layer2 = model._make_layer(BasicBlock, 2 * width, 2, stride=2)
        model.layer3 = model._make_layer(BasicBlock, 4 * width, 2, stride=2)
        model.layer4 = model._make_layer(BasicBlock, 8 * width, 2, stride=2)
        model.fc = nn.Linear(8 * width, num_classes)
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
    # Small images lose too much resolution to the ImageNet stem (7x7 stride 2 + pool).
    model.conv1 = nn.Conv2d(input_shape[0], width, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


# By registered name (audit_cli/models/architectures.py, which tests/models/test_architectures.py
# pins to these: the same names, and each builder's keyword defaults are the registered ones).
BUILDERS: dict[str, Factory] = {
    "logreg": build_logreg,
    "mlp": build_mlp,
    "cnn1d": build_cnn1d,
    "cnn": build_cnn,
    "resnet18": build_resnet18,
}


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
    factory = load_plugin(arch, allowed=allow_plugin) if is_plugin(arch) else BUILDERS[arch]
    try:
        model = factory(tuple(input_shape), int(num_classes), **args)
    except TypeError as exc:
        raise UsageError(f"architecture {arch!r} rejected its arguments: {exc}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"architecture {arch!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model
