"""Typed ``name=value`` options, checked against the type of each option's default.

Dataset options (``--data-opt``), architecture arguments (``--arch-arg``) and method
parameters (``--param``) arrive as strings from the command line, or as typed values from
Python callers and checkpoint metadata. One function turns both into the default's type
or refuses them with a usage error naming the option, so the three stay consistent.
"""

from __future__ import annotations

from audit_cli.errors import UsageError

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
# numpy's seed sequences take 0..2**32-1.
MAX_SEED = 2**32 - 1
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def check_seed(seed: object, what: str = "--seed") -> int:
    """A seed numpy's seed sequences take (a negative one was an internal error)."""
    if not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED):
        raise UsageError(f"{what} must be a whole number in 0..{MAX_SEED}, got {seed!r}")
    return seed


def check_data_options(data: object, data_options: object) -> None:
    """``--data-opt`` refines ``--data``: alone it would be ignored (the checkpoint records
    its dataset, options included), so it is refused."""
    if (data is None or data == "") and data_options:
        raise UsageError("--data-opt refines --data; without --data the dataset is the one the checkpoint records, "
                         "options included", hint="pass --data NAME with it, or drop --data-opt")  # fmt: skip


def coerce(name: str, value: object, default: object, *, what: str = "option") -> object:
    """``value`` as the type of ``default`` (bool, int, float, tuple of ints, str)."""
    try:
        return _parse(value, default) if isinstance(value, str) else _check(value, default)
    except (ValueError, TypeError):
        raise UsageError(f"{what} {name}={value!r}: expected {type(default).__name__}") from None


def _parse(text: str, default: object) -> object:
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ValueError(text)
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, tuple):
        return tuple(int(v) for v in text.split(",") if v.strip())
    return text


def _check(value: object, default: object) -> object:
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(value, bool) and isinstance(default, bool):
            return value
        raise TypeError(value)
    if isinstance(default, int):
        if isinstance(value, int):
            return value
        raise TypeError(value)
    if isinstance(default, float):
        if isinstance(value, (int, float)):
            return float(value)
        raise TypeError(value)
    if isinstance(default, tuple):
        # JSON (checkpoint metadata) turns tuples into lists.
        if isinstance(value, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
        raise TypeError(value)
    if isinstance(value, type(default)):
        return value
    raise TypeError(value)
