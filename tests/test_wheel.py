"""The package as it installs: a wheel built from the tree carries the report schema `audit
schema` prints and `audit report` validates against, and the `audit` console script."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit_cli.app import app

ROOT = Path(__file__).parents[1]


def test_audit_schema_prints_the_published_schema(tmp_path):
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0 and result.stdout == (ROOT / "docs" / "report-schema.json").read_text()
    assert json.loads(result.stdout)["title"] == "unlearning-audit report"
    out = tmp_path / "schema.json"
    assert CliRunner().invoke(app, ["schema", "-o", str(out)]).exit_code == 0 and out.read_text() == result.stdout
    again = CliRunner().invoke(app, ["schema", "-o", str(out)])
    assert again.exit_code == 2 and "exists; not overwriting it" in again.stderr


@pytest.mark.slow
def test_a_wheel_carries_the_schema_and_the_console_script(tmp_path):
    """Built as `pip wheel` (setuptools, what `python -m build` runs) from a copy of the tree,
    so the checkout gets no build/ folder."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("audit_cli", "attacks"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("unlearning_audit-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        schema = z.read("audit_cli/report/report-schema.json").decode()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = z.read(entry_points).decode()
    assert schema == (ROOT / "docs" / "report-schema.json").read_text()
    assert "audit = audit_cli.app:main" in scripts
    assert "attacks/residual.py" in names and not any(n.startswith("tests/") for n in names)
