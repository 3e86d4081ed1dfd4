"""Audit settings from flags, environment, configuration files and defaults, with provenance.

Precedence: command-line flags > ``AUDIT_*`` environment variables > ``audit.toml`` (top-level
keys) or ``[tool.unlearning-audit]`` in ``pyproject.toml`` > defaults. Per-check thresholds
go in a ``thresholds`` table (``leakage = 0.1``; the same as ``fail-above``). ``audit.toml`` wins
over ``pyproject.toml`` when both exist; ``--config PATH`` names a file explicitly. Keys may
be written with dashes or underscores (``fail-above`` or ``fail_above``). The report records
where every value came from, so a CI log says why a threshold was what it was.

Resolved here rather than with Click's ``auto_envvar_prefix``: Click would read the
variables but knows no settings file to rank them against, records no source per value,
and leaves a misspelt variable unnoticed; the commands' help lists the variables they read
and an unknown ``AUDIT_*`` variable is warned about (audit_cli/cli/common.py).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from audit_cli.errors import UsageError
from audit_cli.files import check_printable, read_user_bytes
from audit_cli.options import MAX_SEED, coerce

DEFAULTS: dict[str, object] = {
    "fail_above": 0.1,
    "residual_above": 0.3,
    "mia_nn_above": 0.1,
    "forget_class_accuracy_above": 0.1,
    "utility_drop_above": 0.05,
    "missing_effect_above": 0.9,
    "gate": "decide",
    "allow_underpowered": False,
    "shadows": 64,
    "bank": ".audit-bank",
    "variance": "auto",
    "seed": 0,
    "device": "auto",
    "executor": "local",
    "ray_address": "",
    "exit_zero": False,
    "deterministic": False,
    # Seconds a build waits for another run building the same bank before it stops
    # (exit 2, naming that run). A dead holder's lock is taken over after 5 minutes
    # whatever this is (audit_cli/shadows/lock.py), so the wait only lasts while the
    # holder is alive, most likely building the very bank this run then reuses: an hour
    # lets it finish, and a hung holder still ends in an error that names it well before
    # a CI job's own time limit (6 h on GitHub Actions) kills the job without one.
    "lock_timeout": 3600.0,
}


# Checks that can fail a run, by report name, and the setting holding each one's threshold
# (MIA-NN and forget-class accuracy exist only when a class is forgotten; utility only with
# a retrained model or the bank's shadows; unlearning-effect only with the original). Written out rather than read
# from the checks' registry, which imports torch: settings are resolved by commands that
# must start without it (`audit report`, `audit bank ls`). tests/test_config.py pins this
# table to the registry, so a new gated check cannot be left out.
GATED_CHECKS: dict[str, str] = {
    "leakage": "fail_above",
    "residual-memorisation": "residual_above",
    "forget-class-accuracy": "forget_class_accuracy_above",
    "mia-nn": "mia_nn_above",
    "unlearning-effect": "missing_effect_above",
    "utility": "utility_drop_above",
}


# Documented ranges: a setting outside its range is a usage error, not hours of work or an
# allocation that kills the process (shadows = 1e12 in AUDIT_SHADOWS).
LIMITS: dict[str, tuple[int, int]] = {"shadows": (2, 100_000), "seed": (0, MAX_SEED),
                                      "lock_timeout": (0, 7 * 24 * 3600)}  # 0: do not wait


@dataclass(frozen=True)
class Setting:
    value: object
    source: str
    """flag, env AUDIT_X, a file path, or default."""


def _read_file(path: Path) -> dict[str, object]:
    raw = read_user_bytes(path, "config file", error=UsageError)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: malformed TOML ({exc})") from None
    if path.name == "pyproject.toml":
        # Every level is checked: `tool = "x"` or `unlearning-audit = "oops"` under [tool]
        # is a file the user must fix, not an attribute error.
        tool = data.get("tool", {})
        if not isinstance(tool, dict):
            raise UsageError(f"{path}: tool is {_toml_type(tool)}, not a table", hint=_TABLE_HINT)
        data = tool.get("unlearning-audit", {})
        if not isinstance(data, dict):
            raise UsageError(f"{path}: tool.unlearning-audit is {_toml_type(data)}, not a table", hint=_TABLE_HINT)
    settings: dict[str, object] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in settings:  # fail-above and fail_above: one would silently win
            raise UsageError(f"{path}: {key!r} is given twice (with dashes and with underscores)")
        settings[name] = value
    thresholds = settings.pop("thresholds", None)
    if thresholds is not None:
        # Per-check thresholds, by check name (dashes or underscores); each is another name
        # for one setting (thresholds.leakage is fail-above).
        if not isinstance(thresholds, dict):
            raise UsageError(f"{path}: thresholds is {_toml_type(thresholds)}; it must be a table of check = threshold")
        for check, value in thresholds.items():
            name = str(check).replace("_", "-")
            if name not in GATED_CHECKS:
                raise UsageError(f"{path}: no gated check {check!r}", hint=f"gated checks: {', '.join(GATED_CHECKS)}")
            setting = GATED_CHECKS[name]
            if setting in settings:
                raise UsageError(
                    f"{path}: give the {name} threshold once ({setting.replace('_', '-')} or thresholds.{check})"
                )
            settings[setting] = value
    return settings


_TABLE_HINT = "the settings go in a [tool.unlearning-audit] table of pyproject.toml, or at the top of audit.toml"


def _toml_type(value: object) -> str:
    """A TOML value's kind, as a message names it (never the value: it may be long)."""
    kinds = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array"}
    return next((word for kind, word in kinds.items() if isinstance(value, kind)), "a date or time")


def find_config_file(cwd: Path) -> Path | None:
    for name in ("audit.toml", "pyproject.toml"):
        candidate = cwd / name
        if candidate.is_file():
            text = read_user_bytes(candidate, "config file", error=UsageError).decode("utf-8", "replace")
            if name == "pyproject.toml" and "unlearning-audit" not in text:
                continue
            return candidate
    return None


def resolve_settings(
    flags: Mapping[str, object | None],
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    only: Collection[str] | None = None,
) -> dict[str, Setting]:
    """Every setting with its value and source; flags given as None were not set. ``only``:
    just these settings (a command that reads a bank is not the place to refuse an
    unrelated one)."""
    env = os.environ if env is None else env
    if config_file is not None:
        check_printable(config_file, "--config")
    path = config_file if config_file is not None else find_config_file(cwd or Path.cwd())
    from_file = _read_file(path) if path is not None else {}
    unknown = sorted(set(from_file) - set(DEFAULTS))
    if unknown and only is None:
        raise UsageError(f"{path}: unknown setting {unknown[0]!r}", hint=f"settings: {', '.join(DEFAULTS)}")
    out: dict[str, Setting] = {}
    for key, default in DEFAULTS.items():
        if only is not None and key not in only:
            continue
        env_key = f"AUDIT_{key.upper()}"
        if flags.get(key) is not None:
            value, source = flags[key], "flag"
        elif env_key in env:
            value, source = env[env_key], f"env {env_key}"
        elif key in from_file:
            value, source = from_file[key], str(path)
        else:
            value, source = default, "default"
        if isinstance(value, str):
            # The bank is a folder this run creates (AUDIT_BANK=$'\x01\n' made one named by
            # control characters); no setting is text a terminal should interpret.
            check_printable(value, f"setting {key.replace('_', '-')} ({source})")
        typed = coerce(key, value, default, what="setting")
        if key in LIMITS and not LIMITS[key][0] <= typed <= LIMITS[key][1]:
            low, high = LIMITS[key]
            raise UsageError(f"setting {key.replace('_', '-')} = {typed} ({source}) is outside {low}..{high}")
        out[key] = Setting(typed, source)
    return out
