"""unlearning-audit: a privacy audit for machine unlearning (torch side)."""

__version__ = "0.1.0"
