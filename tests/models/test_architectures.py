"""The architecture registry: every arch builds and maps inputs to logits; args parse;
plug-ins are imported only when the caller allows it."""

from __future__ import annotations

import sys
import uuid

import pytest
import torch
from torch import nn

from audit_cli.errors import UnsafeArtifactError, UsageError
from audit_cli.models.architectures import ARCHITECTURES, resolve_arch_args
from audit_cli.models.networks import BUILDERS, build_model

# (arch, input shape) pairs: every registered architecture on the inputs it is meant for.
SHAPES = [
    ("logreg", (64,)),
    ("mlp", (64,)),
    ("cnn1d", (40,)),
    ("cnn", (1, 28, 28)),
    ("cnn", (3, 32, 32)),
    ("resnet18", (3, 32, 32)),
]


def test_every_registered_arch_is_covered():
    assert {arch for arch, _ in SHAPES} == set(ARCHITECTURES)


@pytest.mark.parametrize(("arch", "input_shape"), SHAPES, ids=[f"{a}-{'x'.join(map(str, s))}" for a, s in SHAPES])
def test_arch_maps_a_batch_to_logits(arch, input_shape):
    num_classes = 7
    torch.manual_seed(0)
    model = build_model(arch, input_shape, num_classes)
    assert isinstance(model, nn.Module)
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, *input_shape))
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()


def test_initial_weights_follow_the_global_seed():
    torch.manual_seed(123)
    a = build_model("mlp", (64,), 10).state_dict()
    torch.manual_seed(123)
    b = build_model("mlp", (64,), 10).state_dict()
    torch.manual_seed(124)
    c = build_model("mlp", (64,), 10).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["1.weight"], c["1.weight"])


def test_mlp_hidden_arg_string_gives_two_hidden_layers():
    args = resolve_arch_args("mlp", {"hidden": "128,64"})
    assert args == {"hidden": (128, 64)}
    model = build_model("mlp", (64,), 10, {"hidden": "128,64"})
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "1.weight": (128, 64),
        "1.bias": (128,),
        "3.weight": (64, 128),
        "3.bias": (64,),
        "5.weight": (10, 64),
        "5.bias": (10,),
    }


def test_arch_args_are_typed_and_defaulted():
    assert resolve_arch_args("mlp", None) == {"hidden": (256,)}
    assert resolve_arch_args("mlp", {"hidden": [32, 16]}) == {"hidden": (32, 16)}
    assert resolve_arch_args("cnn", {"channels": "8"}) == {"channels": 8, "hidden": 128}
    assert resolve_arch_args("logreg", {}) == {}
    model = build_model("cnn", (1, 28, 28), 10, {"channels": "8", "hidden": "16"})
    assert model.state_dict()["0.weight"].shape == (8, 1, 3, 3)
    assert model.state_dict()["9.weight"].shape == (10, 16)


def test_unknown_arch_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown architecture 'transformer'") as info:
        build_model("transformer", (64,), 10)
    assert "mlp" in info.value.hint


@pytest.mark.parametrize(
    ("arch", "args", "pattern"),
    [
        ("mlp", {"width": "3"}, "has no argument 'width'"),
        ("logreg", {"hidden": "3"}, "has no argument 'hidden'"),
        ("mlp", {"hidden": "12,abc"}, r"hidden='12,abc': expected tuple"),
        ("cnn", {"channels": "many"}, r"channels='many': expected int"),
    ],
)
def test_bad_arch_args_are_usage_errors(arch, args, pattern):
    with pytest.raises(UsageError, match=pattern):
        build_model(arch, (1, 28, 28) if arch == "cnn" else (64,), 10, args)


def test_arch_refusing_the_input_shape_is_a_usage_error():
    with pytest.raises(UsageError, match="cnn needs images"):
        build_model("cnn", (64,), 10)
    with pytest.raises(UsageError, match="cnn1d needs 1-D signals"):
        build_model("cnn1d", (3, 32, 32), 10)


# --- plug-in architectures -------------------------------------------------------------

PLUGIN_SOURCE = """
import pathlib
from torch import nn

# Importing this module leaves a trace, so a test can tell whether it was imported.
pathlib.Path({marker!r}).write_text("imported")


def build(input_shape, num_classes, width=5):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], int(width)), nn.ReLU(), nn.Linear(int(width), num_classes))


NOT_CALLABLE = 3
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A fresh plug-in module on sys.path (unique name, so no import caching across tests)."""
    name = f"audit_test_plugin_{uuid.uuid4().hex}"
    marker = tmp_path / "imported.marker"
    pkg_dir = tmp_path / "plugins"
    pkg_dir.mkdir()
    (pkg_dir / f"{name}.py").write_text(PLUGIN_SOURCE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(pkg_dir))
    yield name, marker
    sys.modules.pop(name, None)


def test_plugin_builds_when_allowed(plugin):
    name, marker = plugin
    model = build_model(f"{name}:build", (64,), 10, {"width": 9}, allow_plugin=True)
    assert marker.exists()
    assert name in sys.modules
    assert model.state_dict()["1.weight"].shape == (9, 64)
    assert model(torch.randn(3, 64)).shape == (3, 10)


def test_plugin_is_refused_and_not_imported_when_not_allowed(plugin):
    name, marker = plugin
    with pytest.raises(UnsafeArtifactError, match="importing it would run code") as info:
        build_model(f"{name}:build", (64,), 10)
    assert f"--arch {name}:build" in info.value.hint
    assert name not in sys.modules
    assert not marker.exists()


def test_plugin_errors_are_usage_errors(plugin):
    name, _ = plugin
    with pytest.raises(UsageError, match="no callable 'missing'"):
        build_model(f"{name}:missing", (64,), 10, allow_plugin=True)
    with pytest.raises(UsageError, match="no callable 'NOT_CALLABLE'"):
        build_model(f"{name}:NOT_CALLABLE", (64,), 10, allow_plugin=True)
    with pytest.raises(UsageError, match="rejected its arguments"):
        build_model(f"{name}:build", (64,), 10, {"depth": 2}, allow_plugin=True)
    with pytest.raises(UsageError, match="cannot import plug-in architecture module"):
        build_model(f"no_such_module_{uuid.uuid4().hex}:build", (64,), 10, allow_plugin=True)


def test_every_registered_arch_has_a_builder_with_its_registered_defaults():
    # The registry is read without torch (metadata, recipes, `audit archs`); the builders
    # live beside torch. Neither may drift from the other.
    import inspect

    assert set(BUILDERS) == set(ARCHITECTURES)
    for name, entry in ARCHITECTURES.items():
        params = list(inspect.signature(BUILDERS[name]).parameters.values())[2:]  # after input_shape, num_classes
        assert {p.name: p.default for p in params} == dict(entry.defaults), name


def test_resnet18_width_narrows_every_stage_and_keeps_torchvisions_names():
    wide, narrow = build_model("resnet18", (3, 32, 32), 10), build_model("resnet18", (3, 32, 32), 10, {"width": 8})
    assert set(wide.state_dict()) == set(narrow.state_dict())  # same names: checkpoints load either way
    shapes = {k: tuple(v.shape) for k, v in narrow.state_dict().items()}
    assert shapes["conv1.weight"] == (8, 3, 3, 3) and shapes["layer4.1.conv2.weight"] == (64, 64, 3, 3)
    assert shapes["fc.weight"] == (10, 64) and shapes["layer2.0.downsample.0.weight"] == (16, 8, 1, 1)
    params = sum(v.numel() for v in narrow.parameters())
    assert params == 176_402  # 11.17 M at width 64: about (8/64)^2 of it
    assert sum(v.numel() for v in wide.parameters()) == 11_173_962
    # torchvision's initialisation at any width: BatchNorm scale 1, shift 0.
    assert torch.equal(narrow.layer3[0].bn1.weight, torch.ones(32))
    with pytest.raises(UsageError, match="last stage of 131072 channels"):
        build_model("resnet18", (3, 32, 32), 10, {"width": 16_384})
