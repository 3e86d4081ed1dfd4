"""One coercion rule for dataset options, architecture arguments and method parameters."""

import pytest

from audit_cli.errors import UsageError
from audit_cli.options import coerce


@pytest.mark.parametrize(
    "value,default,expected",
    [
        ("3", 1, 3),
        ("0.5", 1.0, 0.5),
        (2, 1.0, 2.0),
        ("yes", False, True),
        ("off", True, False),
        ("256,128", (64,), (256, 128)),
        ([256], (64,), (256,)),
        ("relu", "tanh", "relu"),
    ],
)
def test_values_take_the_type_of_the_default(value, default, expected):
    out = coerce("x", value, default)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    "value,default",
    [("3.5", 1), (2.5, 1), (True, 1), ("maybe", False), (1, False), ("a,b", (1,)), ([1.5], (1,)), (3, "s")],
)
def test_wrong_types_are_usage_errors_naming_the_option(value, default):
    with pytest.raises(UsageError, match=r"parameter x=.*: expected"):
        coerce("x", value, default, what="parameter")
