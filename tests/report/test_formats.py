"""Report formats: golden files for a fixed report, round trips, and the CLI options."""

import json
import os
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from audit_cli.app import app
from audit_cli.report import (
    AuditReport,
    CheckResult,
    DatasetSection,
    Exposed,
    ForgetSection,
    ModelSection,
    ShadowSection,
)
from audit_cli.report.formats import FORMATS

GOLDEN = Path(__file__).parent / "golden"


def fixed_report(verdict="fail", low=0.31):
    return AuditReport(
        model=ModelSection(path="models/u.safetensors", sha256="ab" * 32, kind="unlearned", method="salun",
                           method_params={"lr": 0.01}),  # fmt: skip
        dataset=DatasetSection(name="digits", fingerprint="cd" * 32),
        forget=ForgetSection(path="forget.txt", n=135, fingerprint="ef" * 32, n_test=450),
        shadows=ShadowSection(n=64, bank=".audit-bank/0123", trained_now=0, seconds=1.5, variance="auto"),
        mode="u-lira",
        checks=(
            CheckResult(
                "leakage",
                verdict,
                "U-LIRA tells the forget set | test apart",
                0.42,
                low,
                0.53,
                0.1,
                True,
                {"direction": "under-forgetting"},
            ),  # fmt: skip
            CheckResult("u-lira attack", "info", "AUC 0.710", 0.71, 0.655, 0.765),
            CheckResult("average gap", "info", "gap 3.20 points", 3.2),
        ),
        exposed=(Exposed(17, 9.5), Exposed(3, 7.25)),
        skipped=(("KLoM", "needs several models"),),
        seconds=12.5,
    )


@pytest.mark.parametrize("name,suffix", [("json", "json"), ("markdown", "md"), ("junit", "xml"), ("sarif", "sarif")])
def test_golden_files(name, suffix):
    text = FORMATS[name](fixed_report())
    golden = GOLDEN / f"report.{suffix}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_every_format_is_tested():
    # csv and parquet: tests/report/test_example_table.py.
    assert set(FORMATS) == {"json", "markdown", "junit", "html", "sarif", "csv", "parquet"}


def test_html_golden_with_images_masked():
    import re

    # The embedded PNGs vary with the matplotlib build; everything around them is golden.
    page = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,PNG", FORMATS["html"](with_curves(fixed_report())))
    golden = GOLDEN / "report.html"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(page)
    assert page == golden.read_text()


def with_curves(report):
    return AuditReport(**{**report.__dict__, "curves": {
        "roc": {"fpr": [0.0, 0.001, 0.01, 0.1, 1.0], "tpr": [0.0, 0.05, 0.2, 0.5, 1.0]},
        "scores": {"forget": [1.0, 2.0, 2.5, 3.0], "test": [-1.0, 0.0, 0.5, 1.0]},
    }})  # fmt: skip


def test_html_is_self_contained_with_two_plots():
    import base64
    import re

    report = with_curves(fixed_report())
    page = FORMATS["html"](report)
    assert page.startswith("<!doctype html>") and "FAIL" in page
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 2
    assert all(base64.b64decode(img).startswith(b"\x89PNG") for img in images)
    assert "forget set | test apart" in page  # escaped, not interpreted
    assert "http" not in page.replace("https://", "").split("<body>")[1]  # no external assets
    assert page.count("<tr>") == 1 + len(report.checks)


def test_json_round_trips_and_keeps_the_exit_code():
    report = fixed_report()
    doc = json.loads(FORMATS["json"](report))
    assert doc["schema_version"] == 1 and doc["exit_code"] == 1
    assert AuditReport.from_dict(doc) == report


def test_junit_parses_back_with_one_testcase_per_gated_check():
    for verdict, failures, errors in (("fail", 1, 0), ("pass", 0, 0), ("inconclusive", 0, 1)):
        suite = ET.fromstring(FORMATS["junit"](fixed_report(verdict)))
        assert suite.tag == "testsuite" and suite.get("tests") == "1"
        assert int(suite.get("failures")) == failures and int(suite.get("errors")) == errors
        assert suite.get("skipped") is None  # an inconclusive check is not a skipped test
        case = suite.find("testcase")
        assert case.get("name") == "leakage"
        assert (case.find("failure") is not None) == (verdict == "fail")
        error = case.find("error")
        assert (error is not None) == (verdict == "inconclusive")
        if error is not None:
            assert error.get("type") == "inconclusive" and error.text == case.find("system-out").text


def test_markdown_escapes_table_pipes():
    text = FORMATS["markdown"](fixed_report())
    assert "forget set \\| test apart" in text
    assert text.startswith("## Unlearning audit: **FAIL**")


def test_audit_report_rerenders_a_saved_report(tmp_path, monkeypatch):
    saved = tmp_path / "saved.json"
    saved.write_text(FORMATS["json"](fixed_report()))
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(saved), "-f", f"junit={tmp_path / 'j.xml'}", "-f", "markdown"])
    assert result.exit_code == 1  # the saved report's verdict
    assert result.stdout == FORMATS["markdown"](fixed_report())  # markdown claimed stdout
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "1"
    assert summary.read_text() == FORMATS["markdown"](fixed_report())
    passing = tmp_path / "pass.json"
    passing.write_text(FORMATS["json"](fixed_report("pass", 0.0)))
    assert runner.invoke(app, ["report", str(passing)]).exit_code == 0
    # A step summary that cannot be written is said before the work; the saved report is
    # never a report file either.
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))
    refused = runner.invoke(app, ["report", str(passing), "-f", f"json={tmp_path / 'x.json'}"])
    assert refused.exit_code == 2 and "GITHUB_STEP_SUMMARY" in refused.stderr and not (tmp_path / "x.json").exists()
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    same = runner.invoke(app, ["report", str(passing), "-f", f"markdown={passing}", "--overwrite"])
    assert same.exit_code == 2 and "is an input of this audit" in same.stderr
    assert passing.read_text() == FORMATS["json"](fixed_report("pass", 0.0))


def test_a_step_summary_that_fails_late_keeps_the_verdict(tmp_path, monkeypatch):
    """Removed between the check and the write: a warning, and the report's exit code."""
    from audit_cli.cli import outputs

    summary = tmp_path / "gone" / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    outputs.write_report(fixed_report("pass", 0.0), [("json", tmp_path / "r.json")])
    assert (tmp_path / "r.json").is_file() and not summary.exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["-f", "pdf"], "unknown report format 'pdf'"),
        (["-f", "json", "-f", "markdown"], "only one -f FORMAT may go to stdout"),
    ],
)
def test_bad_format_options(tmp_path, args, message):
    saved = tmp_path / "saved.json"
    saved.write_text(FORMATS["json"](fixed_report()))
    result = CliRunner().invoke(app, ["report", str(saved), *args])
    assert result.exit_code == 2 and message in result.stderr


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"schema_version": 99}', '{"schema_version": 1}'])
def test_bad_saved_reports_are_input_errors(tmp_path, content):
    saved = tmp_path / "saved.json"
    saved.write_text(content)
    result = CliRunner().invoke(app, ["report", str(saved)])
    assert result.exit_code == 2 and result.stderr.startswith("error:") and "Traceback" not in result.output


def test_json_output_validates_against_the_published_schema():
    import jsonschema

    schema = json.loads((Path(__file__).parents[2] / "docs" / "report-schema.json").read_text())
    for verdict in ("fail", "pass", "inconclusive"):
        jsonschema.validate(json.loads(FORMATS["json"](fixed_report(verdict))), schema)
    broken = json.loads(FORMATS["json"](fixed_report()))
    broken["checks"][0]["verdict"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_sarif_validates_against_the_official_schema_and_fingerprints_are_stable():
    """tests/report/sarif-schema-2.1.0.json is OASIS's SARIF 2.1.0 (errata 01) schema."""
    import jsonschema

    schema = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())
    for verdict in ("fail", "pass", "inconclusive"):
        doc = json.loads(FORMATS["sarif"](fixed_report(verdict)))
        jsonschema.validate(doc, schema)
        leak = doc["runs"][0]["results"][0]
        assert leak["kind"] == {"fail": "fail", "pass": "pass", "inconclusive": "review"}[verdict]
        assert leak["level"] == ("error" if verdict == "fail" else "none")
    a = json.loads(FORMATS["sarif"](fixed_report("fail")))["runs"][0]["results"]
    b = json.loads(FORMATS["sarif"](fixed_report("pass", 0.0)))["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in a] == [r["partialFingerprints"] for r in b]
    assert len({r["ruleId"] for r in a}) == len(a)
    uris = [loc["physicalLocation"]["artifactLocation"]["uri"] for loc in a[0]["locations"]]
    assert uris == ["models/u.safetensors", "forget.txt"]
    broken = json.loads(FORMATS["sarif"](fixed_report()))
    broken["runs"][0]["results"][0]["kind"] = "bad"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_terminal_golden():
    from rich.console import Console

    from audit_cli.report.terminal import render

    console = Console(width=100, record=True, color_system=None, force_terminal=False)
    render(fixed_report(), console)
    text = console.export_text()
    golden = GOLDEN / "report.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_format_without_path_goes_to_output(tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(FORMATS["json"](with_curves(fixed_report())))
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(saved), "-f", "html", "-o", str(out)])
    assert result.exit_code == 1 and out.read_text().startswith("<!doctype html>")
    assert result.stdout.startswith("FAIL leakage")  # the terminal report still goes to stdout


def test_terminal_report_puts_the_verdict_first_and_details_behind_verbose():
    from rich.console import Console

    from audit_cli.report.terminal import render

    def text(verbose):
        console = Console(width=80, record=True, color_system=None, force_terminal=False)
        render(fixed_report(), console, verbose=verbose)
        return console.export_text()

    short, long = text(False), text(True)
    assert short.splitlines()[0].startswith("FAIL leakage: U-LIRA tells the forget set")
    # One row per check, each sentence once, and only with -v.
    assert short.count("AUC 0.710") == 0 and long.count("AUC 0.710") == 1
    assert "skipped: KLoM" in short and "needs several models" not in short
    assert "skipped KLoM: needs several models" in long
    assert len(short.splitlines()) < 12


@pytest.mark.parametrize("field,value", [
    (("forget", "n"), "<script>alert(1)</script>"),
    (("shadows", "n"), "<img src=x onerror=alert(1)>"),
    (("exposed", 0, "example_id"), "<b>17</b>"),
    (("checks", 0, "verdict"), "<script>"),
    (("checks", 0, "score"), "0.4"),
    (("mode",), "<i>lira</i>"),
    (("checks",), []),
    (("model",), {}),
])  # fmt: skip
def test_a_saved_report_with_the_wrong_types_is_refused_before_rendering(tmp_path, field, value):
    doc = json.loads(FORMATS["json"](fixed_report()))
    target = doc
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps(doc))
    result = CliRunner().invoke(app, ["report", str(saved), "-f", f"html={tmp_path / 'r.html'}"])
    assert result.exit_code == 2 and "not an audit report" in result.stderr, result.output
    assert not (tmp_path / "r.html").exists()


def test_user_text_is_escaped_in_markdown_and_html():
    from dataclasses import replace

    hostile = "![x](https://evil/p.png) [link](https://evil) # heading <img src=x onerror=alert(1)> `code`"
    check = CheckResult("where the class goes", "info", f"class {hostile} goes elsewhere",
                        details={"confusion_row": {"model": [1.0, 0.0]}, "classes": [hostile, "b"], "neighbors": [1]})
    report = replace(fixed_report(), checks=(*fixed_report().checks, check),
                     model=replace(fixed_report().model, path=f"m`{hostile}.pt"))  # fmt: skip
    md = FORMATS["markdown"](report)
    import re

    assert "![x](" not in md and "[link](" not in md and "`code`" not in md
    assert not re.search(r"(?<!\\)<img", md) and not re.search(r"^#", md.split("\n", 3)[2])
    assert r"\!\[x\](https://evil/p.png)" in md  # shown, escaped
    page = FORMATS["html"](with_curves(report))
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_report_files_are_refused_when_they_exist_and_written_all_or_none(tmp_path, monkeypatch):
    import audit_cli.cli.outputs as outputs

    saved = tmp_path / "saved.json"
    saved.write_text(FORMATS["json"](fixed_report("pass", 0.0)))
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    runner = CliRunner()

    def report(*args):
        return runner.invoke(app, ["report", str(saved), *args])

    assert report("-f", f"json={out}").exit_code == 0 and out.exists()
    again = report("-f", f"json={out}")
    assert again.exit_code == 2 and "exists; not overwriting it" in again.stderr
    assert report("-f", f"json={out}", "--overwrite").exit_code == 0
    device = report("-f", "json=/dev/null", "--overwrite")
    assert device.exit_code == 2 and "not a regular file" in device.stderr
    same = report("-f", f"json={md}", "-f", f"markdown={md}")
    assert same.exit_code == 2 and "same file" in same.stderr

    def broken(report):
        raise RuntimeError("renderer failed")

    monkeypatch.setitem(outputs.FORMATS, "markdown", broken)
    out.unlink()
    failed = report("-f", f"json={out}", "-f", f"markdown={md}")
    assert failed.exit_code == 70 and not out.exists() and not md.exists()  # none written
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_saved_report_re_renders_byte_for_byte(tmp_path):
    """The config and provenance block and the class-confusion rows used to follow the run's
    dictionary order, the saved JSON's sorted one on re-rendering: another file."""
    from dataclasses import replace

    confusion = CheckResult("where the class goes", "info", "sent to 5", details={
        "confusion_row": {"model": [0.5, 0.5], "retrained twins": [0.0, 1.0], "retrained": [0.1, 0.9]},
        "classes": ["a", "b"], "neighbors": [1], "neighbor_share": [1.0]})  # fmt: skip
    report = replace(fixed_report(), checks=(*fixed_report().checks, confusion),
                     config={"shadows": {"value": 64, "source": "default"}, "bank": {"value": "b", "source": "flag"}})
    saved = AuditReport.from_dict(json.loads(FORMATS["json"](report)))
    for name in ("markdown", "junit", "sarif", "html"):
        assert FORMATS[name](saved) == FORMATS[name](report), name
    text = FORMATS["markdown"](report)
    assert text.index("| model |") < text.index("| retrained twins |") < text.index("| retrained |")


def test_a_report_that_exited_zero_by_request_re_renders_with_exit_zero(tmp_path):
    from dataclasses import replace

    saved = tmp_path / "z.json"
    saved.write_text(FORMATS["json"](replace(fixed_report(), config={"exit_zero": {"value": True, "source": "flag"}})))
    result = CliRunner().invoke(app, ["report", str(saved), "-f", f"sarif={tmp_path / 'z.sarif'}"])
    assert result.exit_code == 0 and json.loads(saved.read_text())["exit_code"] == 1  # the verdict stays


def test_edited_text_cannot_break_the_terminal_or_the_junit_xml(tmp_path):
    from dataclasses import replace

    # (A path: the kind is one of four words, and a saved report with another is refused.)
    odd = replace(fixed_report(), model=replace(fixed_report().model, path="m[/oops].pt"))
    saved = tmp_path / "odd.json"
    saved.write_text(FORMATS["json"](odd))
    result = CliRunner().invoke(app, ["report", str(saved)])
    assert result.exit_code == 1 and "[/oops]" in result.stdout
    control = replace(fixed_report(), checks=(replace(fixed_report().checks[0], sentence="page\x0cbreak"),))
    assert ET.fromstring(FORMATS["junit"](control)).find("testcase/system-out").text == "pagebreak"


def test_sarif_points_at_files_by_uri_and_at_nothing_for_an_in_memory_model():
    from dataclasses import replace

    spaced = replace(fixed_report(), model=replace(fixed_report().model, path="My Models/run #2/m 100%.safetensors"))
    uris = [loc["physicalLocation"]["artifactLocation"]["uri"]
            for loc in json.loads(FORMATS["sarif"](spaced))["runs"][0]["results"][0]["locations"]]  # fmt: skip
    assert uris == ["My%20Models/run%20%232/m%20100%25.safetensors", "forget.txt"]
    memory = replace(fixed_report(), model=replace(fixed_report().model, path="<in-memory model>"),
                     forget=replace(fixed_report().forget, path=None))  # fmt: skip
    assert json.loads(FORMATS["sarif"](memory))["runs"][0]["results"][0]["locations"] == []
