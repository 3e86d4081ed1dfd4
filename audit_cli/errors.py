"""Domain errors, each carrying the exit code the CLI turns it into.

Library code raises these; only the command line's boundary (``cli/common.cli_errors``)
catches them and prints one line (plus an optional hint) to stderr. Exit codes: the table in docs/audit.md.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``audit`` command."""

    PASS = 0
    """Everything ran and no threshold was crossed."""
    FAIL = 1
    """A leakage threshold was crossed."""
    USAGE = 2
    """Bad flags or bad input files (ids, datasets, checkpoints)."""
    INCONCLUSIVE = 3
    """Nothing auditable, or too little data for the requested claim."""
    UNSAFE = 4
    """An artifact was refused because loading it would need code execution."""
    INTERRUPTED = 130
    """Stopped by SIGINT; partial output was not written."""
    INTERNAL = 70
    """A bug: an exception nobody anticipated."""


class AuditError(Exception):
    """Base class: a failure the user can act on, with a one-line message."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(AuditError):
    """Flags or options that do not make sense together, or unknown names."""

    exit_code = ExitCode.USAGE


class InputError(AuditError):
    """An input file or dataset that cannot be used as given."""

    exit_code = ExitCode.USAGE


class DatasetError(InputError):
    """A dataset that is missing, malformed or does not match what was expected."""


class IdFileError(InputError):
    """An id file that does not parse or names ids the dataset does not have."""


class CheckpointError(InputError):
    """A checkpoint that is corrupt, truncated, non-finite or does not fit its model."""


class UnsafeArtifactError(AuditError):
    """An artifact whose loading would execute code (pickle payloads, TorchScript)."""

    exit_code = ExitCode.UNSAFE


class InconclusiveError(AuditError):
    """Nothing could be concluded from the data given."""

    exit_code = ExitCode.INCONCLUSIVE
