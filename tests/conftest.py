"""Fixtures shared across the test suite: the digits dataset, a CLI runner, one torch thread.

Plain helpers (invoking the app, the CLI's error contract, reading tables) are in
tests/helpers.py; fixtures live here so pytest finds them without imports.
"""

from __future__ import annotations

from audit_cli.cli.threads import configure_threads

# Before torch loads: beside other work the suite's threads sleep instead of spinning.
configure_threads()

import pytest  # noqa: E402
import torch  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from audit_cli.data import load_dataset  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits: 1,797 examples, 25% stratified test split (1,347 training ids)."""
    return load_dataset("digits")


@pytest.fixture(scope="session")
def runner() -> CliRunner:
    # Wide enough that rich does not wrap table rows or 64-character digests.
    return CliRunner(env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny models: on a shared 2-core machine torch's
    threads spin against other processes and make every step many times slower. Opt in
    with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
