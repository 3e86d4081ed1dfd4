"""The audit's checks, one module each, behind one interface (``checks/base.py``) and
listed once in ``checks/registry.py``; ``checks/context.py`` holds what they read.

Import the registry (``audit_cli.checks.registry``) for the list of checks; this package
itself imports nothing, so that a check module can be loaded on its own.
"""
