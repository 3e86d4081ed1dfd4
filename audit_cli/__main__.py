"""``python -m audit_cli``: the command line, as the ``audit`` script runs it."""

from audit_cli.cli import main

main()
