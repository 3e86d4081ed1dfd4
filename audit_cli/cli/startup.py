"""What the command line does first, before torch, numpy or scipy are imported: choose the
threads (audit_cli/cli/threads.py) and refuse an environment those libraries would crash on
while importing (numpy reads SOURCE_DATE_EPOCH at import and raises on garbage)."""

from __future__ import annotations

import os
import sys

from audit_cli.cli.threads import configure_threads
from audit_cli.errors import ExitCode


def prepare_process() -> None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and not (epoch.isascii() and epoch.isdigit() and len(epoch) <= 12):
        print(f"error: SOURCE_DATE_EPOCH must be whole seconds since 1970, got {epoch[:20]!r}", file=sys.stderr)
        sys.exit(int(ExitCode.USAGE))
    configure_threads()
