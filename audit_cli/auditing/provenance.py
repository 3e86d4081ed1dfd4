"""Provenance of an audit: tool and library versions, git commit, seeds, the sha256 of
every input, timestamps; and torch's deterministic mode for the run. The report records it
so that a result can be traced and rerun."""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from audit_cli.auditing.inputs import AuditInputs
from audit_cli.auditing.request import AuditConfig
from audit_cli.data import as_ids, fingerprint_ids
from audit_cli.families.model_file import InMemoryModel
from audit_cli.models.safetensors_file import file_sha256
from audit_cli.version import __version__


def git_commit(cwd: Path | None = None) -> str | None:
    """HEAD of the git repository the audit runs in, if any (provenance only)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance(config: AuditConfig, inputs: AuditInputs, started: str) -> dict:
    def sha(given: object) -> str | None:
        """Of a file; of an in-memory model, its weights' hash; of in-memory ids, their fingerprint."""
        if given is None:
            return None
        if isinstance(given, (str, Path)):
            return file_sha256(given)
        if hasattr(given, "shape") or isinstance(given, (list, tuple)):
            return fingerprint_ids(as_ids(given))
        return InMemoryModel(given).sha256

    return {
        "tool_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "seed": config.seed,
        "deterministic": config.deterministic,
        "sha256": {
            "model": inputs.model.sha256,
            "filter": sha(config.filter),
            "original": sha(config.original),
            "retrained": sha(config.retrained),
            "forget_list": sha(config.forget),
            "config": sha(config.config_file),
        },
        "retrained_estimate": config.estimate_retrained,
        "dataset_fingerprint": inputs.dataset.fingerprint,
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@contextmanager
def deterministic_torch(enabled: bool) -> Iterator[None]:
    """torch.use_deterministic_algorithms for the block, then the caller's setting again."""
    before = torch.are_deterministic_algorithms_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
