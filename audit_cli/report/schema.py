"""A saved report checked against the published schema before anything renders it.

``audit report`` re-renders a JSON file the user hands over, which may have been edited:
strings where the curves hold numbers crashed the HTML plots, and ``true`` passed for
``schema_version`` 1. The report is validated against ``report-schema.json`` (shipped in
this package; docs/report-schema.json is the same file, published) with strict JSON types:
a boolean is neither an integer nor a number, and ``1.0`` is not an integer; and no string
anywhere in it may hold a control character (the schema says so for paths and names; the
sentences and details that a terminal renders are checked here). The first invalid place
is named as a JSON path in one line.

jsonschema is imported only when a report is read: commands that never read one do not
pay for it, and nothing here imports torch.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

from audit_cli.errors import InputError
from audit_cli.files import CONTROL_CHARACTERS

SCHEMA_FILE = "report-schema.json"
# How much of a key the message quotes (keys come from the file).
KEY_CHARS = 40


def schema() -> dict:
    """The published report schema (docs/report-schema.json)."""
    return json.loads(schema_text())


def schema_text() -> str:
    """The schema file as shipped in this package (`audit schema` prints it)."""
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@functools.cache
def _validator() -> Any:
    import jsonschema
    from jsonschema.validators import extend

    def integer(_checker: object, value: object) -> bool:
        # JSON parses 1 as int and 1.0 as float; the writer never writes a count as 1.0.
        return isinstance(value, int) and not isinstance(value, bool)

    def number(_checker: object, value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine_many({"integer": integer, "number": number})
    strict = extend(base, type_checker=checker)
    doc = schema()
    base.check_schema(doc)
    return strict(doc)


def validate_report(data: object) -> None:
    """Refuse a document that is not a report as docs/report-schema.json describes it,
    naming the first invalid place (the outermost one)."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(data))
    if error is not None:
        raise InputError(f"not an audit report: {json_path(error.absolute_path)} {_problem(error)}")
    place = _control_character(data, [])
    if place is not None:
        # No string the tool writes holds one (sentences, names, details included): an
        # edited report's escape codes would reach the terminal that renders it.
        raise InputError(f"not an audit report: {json_path(place)} holds a control character")


def _control_character(value: object, path: list[object]) -> list[object] | None:
    """Where the first string (or key) holding a control character is, or None."""
    if isinstance(value, str):
        return path if CONTROL_CHARACTERS.search(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and CONTROL_CHARACTERS.search(key):
            return [*path, key]
        found = _control_character(item, [*path, key])
        if found is not None:
            return found
    return None


def json_path(parts: Iterable[object]) -> str:
    """``$.curves.roc.fpr[3]``; a key that is not a plain name is quoted escaped (it came
    from the file, and may hold anything)."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier() and part.isascii():
            out += f".{part}"
        else:
            out += f"[{_key(part)}]"
    return out


ARTICLES = {"null": "null", "boolean": "a boolean", "integer": "an integer", "number": "a number",
            "string": "a string", "array": "an array", "object": "an object"}  # fmt: skip


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _key(key: object) -> str:
    text = str(key)
    return f"{text[:KEY_CHARS]!r}{'...' if len(text) > KEY_CHARS else ''}"


def _problem(error: Any) -> str:
    """What is wrong at that place, in words that quote no value from the file."""
    rule, wanted, value = error.validator, error.validator_value, error.instance
    if rule == "type":
        wanted = wanted if isinstance(wanted, list) else [wanted]
        return f"is {_kind(value)}, not {' or '.join(ARTICLES.get(w, w) for w in wanted)}"
    if rule in ("const", "enum"):
        options = [wanted] if rule == "const" else wanted
        return f"is not {' or '.join(json.dumps(o) for o in options)}"
    if rule == "required":
        missing = next((k for k in wanted if k not in value), wanted[0])
        return f"has no {missing!r}"
    if rule == "dependentRequired":
        missing = next((k for keys in wanted.values() for k in keys if k not in value), "")
        return f"has no {missing!r}, which goes with {', '.join(repr(k) for k in wanted if k in value)}"
    if rule == "additionalProperties":
        extra = sorted(k for k in value if k not in error.schema.get("properties", {}))
        return f"has an unknown key {_key(extra[0])}" if extra else "has an unknown key"
    if rule in ("minimum", "maximum"):
        return f"is {'below' if rule == 'minimum' else 'above'} {wanted}"
    if rule in ("minItems", "maxItems"):
        return f"holds {len(value)} item(s), not {'at least' if rule == 'minItems' else 'at most'} {wanted}"
    if rule == "pattern":
        return "holds a control character" if "\\u0000" in wanted else f"does not match {wanted}"
    if rule == "items" and wanted is False:
        return "holds more items than it may"
    return f"fails the schema's {rule!r} rule"
