"""``python -m audit_cli``: the command line, as the ``audit`` script runs it."""

from audit_cli.cli.startup import prepare_process

prepare_process()

from audit_cli.cli import main  # noqa: E402 (after the thread settings, before torch starts)

main()
