"""The scikit-learn estimators the tool trains and loads, and their typed parameters.

Kept apart from the skops io in ``sklearn_model`` so that checkpoint metadata can type a
model's parameters without importing the loader (which itself reads metadata).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

from audit_cli.errors import UsageError
from audit_cli.options import FALSE_WORDS, TRUE_WORDS, coerce

SKLEARN_ARCHS: dict[str, type] = {
    "hist-gradient-boosting": HistGradientBoostingClassifier,
    "random-forest": RandomForestClassifier,
    "extra-trees": ExtraTreesClassifier,
    "decision-tree": DecisionTreeClassifier,
}


def is_sklearn_arch(name: str) -> bool:
    return name in SKLEARN_ARCHS


def estimator_defaults(arch: str) -> dict[str, object]:
    cls = SKLEARN_ARCHS.get(arch)
    if cls is None:
        raise UsageError(f"unknown scikit-learn model {arch!r}", hint=f"registered: {', '.join(SKLEARN_ARCHS)}")
    return cls().get_params(deep=False)


def resolve_sklearn_params(arch: str, params: Mapping[str, object] | None) -> dict[str, object]:
    """Type each parameter against the estimator's default; unknown names are usage errors.

    Only JSON scalars (None, bool, int, float, str) are accepted, so the parameters travel
    in checkpoint metadata and compare equal after a round trip. Many scikit-learn
    parameters take several types (``max_features``: "sqrt", 0.5 or 10), so a string is
    typed by its default where that is a number and read as a literal otherwise; the
    estimator's own validation has the last word when it is fitted.
    """
    defaults = estimator_defaults(arch)
    out: dict[str, object] = {}
    for name, value in (params or {}).items():
        if name not in defaults:
            raise UsageError(
                f"scikit-learn model {arch!r} has no parameter {name!r}", hint=f"its parameters: {', '.join(defaults)}"
            )
        out[name] = _coerce_param(arch, name, value, defaults[name])
    return out


def _coerce_param(arch: str, name: str, value: object, default: object) -> object:
    what = f"{arch} parameter"
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("none", "null"):
            return None
        if isinstance(default, bool):
            return coerce(name, text, default, what=what)
        if isinstance(default, (int, float)):
            try:
                parsed = coerce(name, text, default, what=what)
            except UsageError:
                if not isinstance(default, int):
                    raise
                # Integer parameters such as min_samples_leaf also take a fraction.
                parsed = coerce(name, text, 0.0, what=what)
            return _finite(what, name, parsed)
        return _finite(what, name, _literal(text))
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool):
        return value
    if not isinstance(value, (int, float)):
        raise UsageError(f"{what} {name}={value!r}: only numbers, strings, booleans and None can be set")
    if isinstance(default, float):
        value = float(value)
    return _finite(what, name, value)


def _literal(text: str) -> object:
    low = text.lower()
    if low in TRUE_WORDS - {"1"}:
        return True
    if low in FALSE_WORDS - {"0"}:
        return False
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def _finite(what: str, name: str, value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{what} {name}={value!r}: must be finite")
    return value
