"""The console script's entry point (``audit_cli.app:main``); the commands live in ``audit_cli.cli``."""

from audit_cli.cli import app, main

__all__ = ["app", "main"]
