"""Commands that need no model start without torch: ``--version``, ``--help``, ``report``,
``inspect`` of a safetensors file, ``ids``, the listings and ``bank ls``/``verify``.

Each command runs in a fresh interpreter (this test process imported torch long ago) and
reports which heavy libraries it imported; the assertion is on that set, not on a time.
Importing torch costs seconds and a gigabyte, and kills the command where memory is capped.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from audit_cli.cli import BANK_COMMANDS, COMMANDS, FL_COMMANDS
from tests.test_cli_banks import built  # noqa: F401 (a module fixture: the bank `bank ls` reads)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_models" / "digits_mlp_original.safetensors"
GOLDEN_REPORT = ROOT / "tests" / "report" / "golden" / "report.json"

# Runs the app as the console script does, then prints which of these it imported.
PROBE = """
import json, sys
from audit_cli.app import main
sys.argv = ["audit", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = ("torch", "torchvision", "ray", "flwr")
print(json.dumps({"code": code, "imported": [m for m in heavy if m in sys.modules]}), file=sys.stderr)
"""


def run_probe(args: list[str], cwd: Path = ROOT, limit_bytes: int | None = None) -> dict:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("AUDIT_BANK", None)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([str(a) for a in args])],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        preexec_fn=cap if limit_bytes else None,
    )  # fmt: skip
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    assert last.startswith("{"), f"no probe line: {result.stderr[-2000:]}"
    return {**json.loads(last), "stdout": result.stdout, "stderr": result.stderr}


def test_importing_the_app_imports_no_torch():
    code = "import audit_cli.app, sys; print(sorted(m for m in ('torch', 'numpy', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["bank", "--help"],
        ["fl", "--help"],
        ["report", "--help"],
        ["inspect", "--help"],
        ["datasets"],
        ["archs", "--format", "json"],
        ["ids", "--data", "digits", "--split", "test"],
        ["inspect", SAMPLE, "--format", "json"],
        ["report", GOLDEN_REPORT, "-f", "markdown"],
    ],
    ids=lambda a: " ".join(map(str, a))[:40],
)
def test_light_commands_import_no_torch(args):
    probe = run_probe(args)
    # 1: the golden report's run crossed its threshold, and `audit report` exits as it did.
    assert probe["code"] in ((1,) if args[0] == "report" and len(args) > 2 else (0, None)), probe["stderr"][-2000:]
    assert probe["imported"] == [], f"audit {' '.join(map(str, args))} imported {probe['imported']}"
    assert probe["stdout"].strip(), "the command printed nothing"


def test_bank_listing_and_verify_import_no_torch(built):  # noqa: F811
    root, _ = built
    parent = root / "ci-bank"
    listing = run_probe(["bank", "ls", parent, "--format", "json"])
    assert listing["code"] in (0, None) and listing["imported"] == [], listing["stderr"][-2000:]
    assert len(json.loads(listing["stdout"])) == 1
    verify = run_probe(["bank", "verify", next(parent.iterdir()), "--format", "json"])
    assert verify["code"] in (0, None) and verify["imported"] == [], verify["stderr"][-2000:]
    assert json.loads(verify["stdout"])["verified"] is True


def test_commands_that_train_still_import_torch_when_run():
    # The probe can see torch: `audit methods` (whose registry is the methods' torch code)
    # imports it, so an empty set above is a real observation.
    assert run_probe(["methods", "--format", "json"])["imported"] == ["torch"]


def test_version_runs_with_memory_capped_at_one_gigabyte():
    probe = run_probe(["--version"], limit_bytes=1_000_000_000)
    assert probe["code"] in (0, None) and probe["stdout"].startswith("unlearning-audit "), probe["stderr"][-2000:]


@pytest.mark.parametrize(
    ("name", "entry"),
    [(f"{group} {name}".strip(), entry) for group, commands in (("", COMMANDS), ("bank", BANK_COMMANDS),
                                                                ("fl", FL_COMMANDS)) for name, entry in commands.items()],
    ids=lambda x: x if isinstance(x, str) else "",
)  # fmt: skip
def test_each_listed_summary_is_its_commands_help(name, entry):
    # A group lists its commands from these summaries without importing them; each must be
    # the first paragraph of the help the command itself shows.
    module, _, function = entry.target.partition(":")
    doc = entry.help or inspect.getdoc(getattr(importlib.import_module(module), function))
    assert " ".join(doc.split("\n\n")[0].split()).startswith(entry.summary), name
    assert entry.load(name.split()[-1]).name == name.split()[-1]
