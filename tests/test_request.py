"""The audit request (audit_cli/audit/request.py): every field a front end sets reaches
prepare, and a wrong type from Python is refused with the argument's name."""

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from audit_cli.auditing.request import AuditConfig, AuditRequest, config_from_settings
from audit_cli.config import resolve_settings
from audit_cli.errors import UsageError


def test_every_request_field_reaches_the_config(tmp_path):
    # A value for each field that differs from its default: nothing between a front end and
    # prepare may drop or rename one (a new input is one field, not a relay of keywords).
    request = AuditRequest(
        model=Path("m.pt"), forget=Path("f.txt"), filter=Path("filter.json"), forget_class=3, forget_clients=(1, 2),
        original=Path("o.pt"), retrained=Path("r.pt"), estimate_retrained="influence", data="digits",
        data_options={"k": 1}, data_root=Path("root"), method="trw", method_params={"lr": "0.1"}, arch="mlp",
        strip_prefix="module.", recipe=Path("recipe.json"), trainer="pkg:train", unlearner="pkg:unlearn",
        shadows_from=Path("bank"),
    )  # fmt: skip
    defaults = AuditRequest(model=Path("m.pt"))
    changed = [f.name for f in fields(AuditRequest) if getattr(request, f.name) != getattr(defaults, f.name)]
    assert len(changed) == len(fields(AuditRequest)) - 1  # every field but the model
    config = config_from_settings(request, resolve_settings({"shadows": 12}, env={}, cwd=tmp_path))
    assert isinstance(config, AuditConfig) and config.shadows == 12
    assert {f.name: getattr(config, f.name) for f in fields(AuditRequest)} == {
        f.name: getattr(request, f.name) for f in fields(AuditRequest)
    }
    assert config.settings["shadows"] == {"value": 12, "source": "flag"}


def test_python_values_are_normalised():
    request = AuditRequest(model="m.pt", forget="f.txt", forget_class=np.int64(3), forget_clients=np.array([1, 2]),
                           data=Path("d.csv"), data_options=None, recipe="r.json", shadows_from="bank")  # fmt: skip
    assert request.model == Path("m.pt") and request.forget == Path("f.txt")
    assert request.forget_class == 3 and type(request.forget_class) is int
    assert request.forget_clients == (1, 2) and all(type(c) is int for c in request.forget_clients)
    assert request.data == "d.csv" and request.data_options == {}
    assert request.recipe == Path("r.json") and request.shadows_from == Path("bank")


@pytest.mark.parametrize("kwargs,message", [
    ({"forget_class": True}, "forget_class: expected a whole number, got True"),
    ({"forget_class": 2.0}, "forget_class: expected a whole number, got 2.0"),
    ({"forget_clients": "12"}, "forget_clients must be a sequence of client numbers"),
    ({"forget_clients": [1, 1.5]}, "forget_clients: expected a whole number, got 1.5"),
    ({"method_params": [("lr", 1)]}, "params must be a mapping of name to value, got list"),
    ({"data_options": "k=1"}, "data_options must be a mapping of name to value, got str"),
    ({"recipe": 3}, "recipe must be a path, got int"),
    ({"data": 5}, "data must be a dataset name, a file or a Dataset, got int"),
])  # fmt: skip
def test_wrong_types_are_refused_with_the_arguments_name(kwargs, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(".", r"\.")):
        AuditRequest(model=Path("m.pt"), **kwargs)
