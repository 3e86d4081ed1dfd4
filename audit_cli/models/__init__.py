"""Models: the architecture registry (``architectures``), the checkpoint metadata schema
(``metadata``) and checkpoint io (``checkpoint``). Import the submodules directly: the
metadata schema depends on ``audit_cli.training`` (the Recipe), which depends on the
architecture registry, so this package re-exports nothing to keep imports acyclic.
"""
