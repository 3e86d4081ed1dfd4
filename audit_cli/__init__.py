"""unlearning-audit: a privacy audit for machine unlearning (torch side).

The Python API (docs/api.md): ``audit`` a model held in memory, ``load_dataset`` a built-in
dataset or a file, ``dataset_from_arrays`` and ``dataset_from_torch`` for data in memory. Imported lazily, so that
``import audit_cli`` (and the command line's start) stays cheap.
"""

from __future__ import annotations

from typing import Any

from audit_cli.version import __version__

__all__ = ["__version__", "audit", "dataset_from_arrays", "dataset_from_torch", "load_dataset"]


def __dir__() -> list[str]:
    """The lazy names too: ``dir(audit_cli)`` and tab completion show ``audit``."""
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    if name in ("audit", "dataset_from_arrays", "dataset_from_torch"):
        from audit_cli import api

        return getattr(api, name)
    if name == "load_dataset":
        from audit_cli.data import load_dataset

        return load_dataset
    raise AttributeError(f"module 'audit_cli' has no attribute {name!r}")
