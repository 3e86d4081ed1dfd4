"""User code the tool imports, only ever because the user named it on the command line or
passed it in Python: ``package.module:function`` references for architectures, trainers
and unlearners. Nothing read from a file (a checkpoint, a bank, a config) is imported.

A plug-in's identity (its qualified name and a hash of its source) goes into the shadow
bank's key, so editing the training code yields a new bank instead of stale shadows.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from audit_cli.errors import UsageError


def is_reference(text: str) -> bool:
    """Whether ``text`` names user code (``package.module:function``)."""
    return ":" in text


def load_callable(reference: str, what: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (``what`` names it in errors: "trainer", ...)."""
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{what} {reference!r} is not package.module:function")
    # Like `python -m`, look in the working folder too: a user's training code usually
    # sits in their project, not in site-packages (the `audit` script would not see it).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {what} module {module_name!r}: {exc}") from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
    if not callable(fn):
        raise UsageError(f"{what} {reference!r}: {module_name} has no callable {attr!r}")
    return fn


def resolve_callable(value: str | Callable[..., Any] | None, what: str) -> Callable[..., Any] | None:
    """A callable as given from Python, or imported from a command-line reference."""
    if value is None or callable(value):
        return value
    return load_callable(str(value), what)


def identity(fn: Callable[..., Any]) -> dict[str, str | None]:
    """Who a plug-in is: its qualified name and the sha256 of its source (None when the
    source cannot be read, e.g. a builtin or a lambda typed into a REPL)."""
    name = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return {"name": name, "source_sha256": None}
    return {"name": name, "source_sha256": hashlib.sha256(source.encode()).hexdigest()}
