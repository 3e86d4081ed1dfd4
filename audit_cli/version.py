"""The tool's version (pyproject.toml says the same); kept apart so that modules can read it
without importing the package's Python API."""

__version__ = "0.1.0"
