"""Membership and unlearning attacks as pure statistics on signal matrices.

Everything here works on numpy arrays of per-example signals (one row per model) and
never imports torch, so a signal bank produced anywhere (a GPU cluster, another
framework) can be scored. ``audit_cli`` imports this package, never the reverse.
"""
