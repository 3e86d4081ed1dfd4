"""docs/ci.md's recipes run as written: every file the GitHub and GitLab jobs upload exists
after a pass, a fail, an inconclusive audit and the refusal before training, and says
the verdict (an upload step with ``if: always()`` must never miss its file)."""

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from audit_cli.app import app

DOC = Path(__file__).parents[1] / "docs" / "ci.md"
SAMPLES = Path(__file__).parents[1] / "sample_models"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def github_job() -> tuple[list[str], list[Path]]:
    """The audit step's arguments and the paths the job uploads (SARIF and the artifact)."""
    (workflow,) = [b for b in _blocks("yaml") if "runs-on" in b and "audit run" in b]
    steps = yaml.safe_load(workflow)["jobs"]["audit"]["steps"]
    (command,) = [s["run"] for s in steps if str(s.get("run", "")).startswith("audit run")]
    uploads = [Path(s["with"]["sarif_file"]) for s in steps if "sarif_file" in s.get("with", {})]
    uploads += [Path(s["with"]["path"]) for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    return shlex.split(command)[1:], uploads


def gitlab_job() -> tuple[list[str], list[Path]]:
    (job,) = [yaml.safe_load(b)["unlearning-audit"] for b in _blocks("yaml") if "unlearning-audit:" in b]
    (command,) = [line for line in job["script"] if line.startswith("audit run")]
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"
    return shlex.split(command)[1:], [Path(p) for p in [artifacts["reports"]["junit"], *artifacts["paths"]]]


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    """A repository laid out as the recipes expect: models/ and forget_ids.txt (10 ids, too
    few for any claim: the audit is refused before training), the retrained model left
    without them."""
    root = tmp_path_factory.mktemp("repo")
    (root / "models").mkdir()
    shutil.copy(SAMPLES / "digits_mlp_original.safetensors", root / "models" / "original.safetensors")
    ids = [line for line in (SAMPLES / "forget_random10.txt").read_text().splitlines() if not line.startswith("#")]
    (root / "forget_ids.txt").write_text("\n".join(ids[:10]) + "\n")
    retrained = root / "models" / "retrained.safetensors"
    result = CliRunner().invoke(app, ["train", "--exclude", str(root / "forget_ids.txt"), "--epochs", "1", "-q",
                                      "--device", "cpu", "-o", str(retrained)])  # fmt: skip
    assert result.exit_code == 0, result.output
    shutil.copy(retrained, root / "models" / "unlearned.safetensors")
    return root


def _report(verdict: str):
    from audit_cli.report import AuditReport, CheckResult, DatasetSection, ForgetSection, ModelSection, ShadowSection

    return AuditReport(
        model=ModelSection(path="models/unlearned.safetensors", sha256="0" * 64, kind="unlearned", method="retrain"),
        dataset=DatasetSection(name="digits", fingerprint="f"),
        forget=ForgetSection(n=135, fingerprint="g", n_test=450),
        shadows=ShadowSection(n=8, bank=".audit-bank/x", trained_now=8, seconds=1.0, schedule=(8, 16, 32, 64)),
        mode="u-lira",
        checks=(CheckResult("residual-memorisation", verdict, f"the share was shown {verdict}", 0.1, 0.0, 0.2,
                            0.3, True),),  # fmt: skip
        exposed=(),
        skipped=(),
        seconds=2.0,
    )


@pytest.mark.parametrize("job", [github_job, gitlab_job])
@pytest.mark.parametrize("verdict,code", [("pass", 0), ("fail", 1), ("inconclusive", 3), ("refused", 3)])
def test_every_uploaded_file_is_written_on_every_verdict(repository, tmp_path, monkeypatch, job, verdict, code):
    """The refusal runs the real pipeline (too few forget examples, refused before any
    shadow trains); pass, fail and inconclusive hand the CLI a report with that verdict,
    since the files are written by the same code whatever the verdict."""
    args, uploads = job()
    work = tmp_path / "checkout"
    shutil.copytree(repository, work)
    monkeypatch.chdir(work)
    summary = work / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    if verdict != "refused":
        import audit_cli.cli.run as run

        monkeypatch.setattr(run, "run_audit", lambda *a, **k: _report(verdict))
    result = CliRunner().invoke(app, [*args, "--bank", str(tmp_path / "bank"), "-q"])
    assert result.exit_code == code, result.output
    files = [p for u in uploads for p in ([u] if u.suffix else sorted(u.iterdir()))]
    assert files and all(p.is_file() and p.stat().st_size > 0 for p in files), uploads
    written = {p.suffix: p for p in files}
    report = json.loads(written[".json"].read_text())
    assert report["exit_code"] == code
    if verdict == "refused":
        (check,) = report["checks"]
        assert check["name"] == "power" and check["verdict"] == "inconclusive"
        assert "10 forget and 40 test examples are too few for any claim" in check["sentence"]
        assert report["shadows"]["n"] == 0 and not (tmp_path / "bank").exists()
    expected = {"pass": "failures=\"0\" errors=\"0\"", "fail": "failures=\"1\"", "inconclusive": "errors=\"1\"",
                "refused": "errors=\"1\""}[verdict]  # fmt: skip
    assert expected in written[".xml"].read_text()
    if ".sarif" in written:
        results = json.loads(written[".sarif"].read_text())["runs"][0]["results"]
        assert (verdict == "fail") == any(r["level"] == "error" for r in results)
    assert summary.read_text().startswith("## Unlearning audit: **")
