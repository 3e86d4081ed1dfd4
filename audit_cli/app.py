"""The console script's entry point (``audit_cli.app:main``); the commands live in ``audit_cli.cli``.

Threads are chosen and the environment checked here, before anything imports torch
(audit_cli/cli/startup.py).
"""

from audit_cli.cli.startup import prepare_process

prepare_process()

from audit_cli.cli import app, main  # noqa: E402 (after the thread settings, before torch starts)

__all__ = ["app", "main"]
