"""The console script's entry point (``audit_cli.app:main``); the commands live in ``audit_cli.cli``.

Threads are chosen here, before anything imports torch (audit_cli/threads.py).
"""

from audit_cli.threads import configure_threads

configure_threads()

from audit_cli.cli import app, main  # noqa: E402 (after the thread settings, before torch starts)

__all__ = ["app", "main"]
