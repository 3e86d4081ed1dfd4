"""Inputs a red team found that ended as internal errors (exit 70), folders named by control
characters, or folders left behind by a refusal.

Each case runs the CLI in an empty working folder and asserts the error contract
(tests/helpers.py: exit 2, or 4 for an untrusted plug-in, one ``error:`` line) and that
the folder holds exactly what it held before: a refusal creates nothing, not even an
empty bank or report folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit_cli.app import app
from audit_cli.report.formats import FORMATS
from tests.helpers import assert_error, assert_ok
from tests.report.test_formats import fixed_report, with_curves

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_models"
ORIGINAL = SAMPLES / "digits_mlp_original.safetensors"
FORGET = SAMPLES / "forget_random10.txt"
RUN = ["run", "--model", ORIGINAL, "--forget", FORGET, "-q"]


def invoke_in(folder: Path, monkeypatch, args: list[object], env: dict[str, str] | None = None):
    """Run the CLI with ``folder`` as the working folder; returns the result and what the
    run created there (an empty set when it created nothing)."""
    monkeypatch.chdir(folder)
    before = set(folder.rglob("*"))
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    return result, set(folder.rglob("*")) - before


# -- 1. settings tables of the wrong type ------------------------------------------------------

TABLES = {
    "tool-table-is-a-string": ("pyproject.toml", '[tool]\nunlearning-audit = "oops"\n',
                               r"pyproject\.toml: tool\.unlearning-audit is a string, not a table"),
    "tool-table-is-a-number": ("pyproject.toml", "[tool]\nunlearning-audit = 3\n",
                               r"tool\.unlearning-audit is an integer, not a table"),
    "tool-table-is-an-array": ("pyproject.toml", "[tool]\nunlearning-audit = [1]\n",
                               r"tool\.unlearning-audit is an array, not a table"),
    "tool-is-a-string": ("pyproject.toml", 'tool = "unlearning-audit"\n', r"pyproject\.toml: tool is a string, not a table"),
    "thresholds-is-a-number": ("audit.toml", "thresholds = 0.1\n", r"thresholds is a float; it must be a table"),
    "thresholds-in-pyproject-is-an-array": ("pyproject.toml", "[tool.unlearning-audit]\nthresholds = [0.1]\n",
                                            r"thresholds is an array; it must be a table"),
}  # fmt: skip


@pytest.mark.parametrize("case", TABLES)
def test_a_settings_table_of_the_wrong_type_is_a_usage_error(tmp_path, monkeypatch, case):
    name, text, pattern = TABLES[case]
    (tmp_path / name).write_text(text)
    result, created = invoke_in(tmp_path, monkeypatch, [*RUN, "-f", "json=out/r.json"])
    assert_error(result, pattern, hint="tool.unlearning-audit" if "tool" in case else None)
    assert created == set()


def test_a_wrong_table_named_with_config_is_a_usage_error_too(tmp_path, monkeypatch):
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "pyproject.toml").write_text('[tool]\nunlearning-audit = "oops"\n')
    result, created = invoke_in(tmp_path, monkeypatch, [*RUN, "--config", "settings/pyproject.toml"])
    assert_error(result, r"tool\.unlearning-audit is a string, not a table", hint="tool.unlearning-audit")
    assert created == set()


# -- 2. saved reports that do not follow the schema --------------------------------------------


def saved_report() -> dict:
    """A report as `audit run -f json=PATH` writes it, with curves and a class-confusion check."""
    from dataclasses import replace

    from audit_cli.report import CheckResult

    confusion = CheckResult("where the class goes", "info", "sent to b", details={
        "confusion_row": {"model": [0.5, 0.5], "retrained twins": [0.0, 1.0]}, "classes": ["a", "b"],
        "neighbors": [1], "neighbor_share": [1.0]})  # fmt: skip
    report = with_curves(fixed_report())
    return json.loads(FORMATS["json"](replace(report, checks=(*report.checks, confusion))))


def put(*path: object, value: object):
    def change(doc: dict) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def drop(*path: object):
    def change(doc: dict) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target.pop(path[-1])

    return change


REPORTS = {
    # The red team's case: a string in a curve crashed the HTML plot (exit 70).
    "curve-holds-a-string": (put("curves", "roc", "fpr", 2, value="0.01"),
                             r"\$\.curves\.roc\.fpr\[2\] is a string, not a number"),
    "scores-hold-a-string": (put("curves", "scores", "test", 0, value="x"),
                             r"\$\.curves\.scores\.test\[0\] is a string, not a number"),
    "curve-is-not-an-array": (put("curves", "roc", "tpr", value="0,1"), r"\$\.curves\.roc\.tpr is a string, not an array"),
    "curve-holds-null": (put("curves", "roc", "tpr", 1, value=None), r"\$\.curves\.roc\.tpr\[1\] is null, not a number"),
    "rate-above-one": (put("curves", "roc", "fpr", 1, value=7), r"\$\.curves\.roc\.fpr\[1\] is above 1"),
    "roc-without-tpr": (drop("curves", "roc", "tpr"), r"\$\.curves\.roc has no 'tpr'"),
    "roc-lengths-differ": (lambda doc: doc["curves"]["roc"]["tpr"].pop(), r"fpr and tpr are not as long as each other"),
    # JSON's true is not 1 (Python's True == 1 let these through).
    "schema-version-true": (put("schema_version", value=True), r"report schema_version True is not 1"),
    "forget-n-true": (put("forget", "n", value=True), r"\$\.forget\.n is a boolean, not an integer"),
    "shadows-n-true": (put("shadows", "n", value=True), r"\$\.shadows\.n is a boolean, not an integer"),
    "class-true": (put("forget", "class", value=True), r"\$\.forget\.class is a boolean, not an integer or null"),
    "example-id-float": (put("exposed", 0, "example_id", value=17.0), r"\$\.exposed\[0\]\.example_id is a number, not an integer"),
    "exit-code-true": (put("exit_code", value=True), r"\$\.exit_code is a boolean, not an integer"),
    "score-true": (put("checks", 0, "score", value=True), r"\$\.checks\[0\]\.score is a boolean, not a number or null"),
    "seconds-string": (put("seconds", value="12.5"), r"\$\.seconds is a string, not a number"),
    "confusion-row-holds-a-string": (put("checks", 3, "details", "confusion_row", "model", 0, value="half"),
                                     r"\$\.checks\[3\]\.details\.confusion_row\.model\[0\] is a string, not a number"),
    "confusion-without-classes": (drop("checks", 3, "details", "classes"),
                                  r"\$\.checks\[3\]\.details has no 'classes', which goes with 'confusion_row'"),
    "path-with-escape-codes": (put("model", "path", value="\x1b[2Jm.pt"), r"\$\.model\.path holds a control character"),
    "unknown-key-in-a-section": (put("shadows", "bank\nx", value=1), r"\$\.shadows has an unknown key 'bank\\nx'"),
    # Free text the terminal renders: a sentence or a detail with escape codes (rich passes ESC through).
    "sentence-with-escape-codes": (put("checks", 0, "sentence", value="leakage \x1b[2J0.01"),
                                   r"\$\.checks\[0\]\.sentence holds a control character"),
    "detail-with-escape-codes": (put("checks", 0, "details", "direction", value="\x9b31m"),
                                 r"\$\.checks\[0\]\.details\.direction holds a control character"),
    "config-key-with-escape-codes": (put("config", "seed\x1b[2J", value=0),
                                     r"\$\.config\['seed\\x1b\[2J'\] is an integer, not an object"),
}  # fmt: skip


@pytest.mark.parametrize("case", REPORTS)
def test_a_saved_report_off_the_schema_is_refused_naming_the_place(tmp_path, monkeypatch, case):
    change, pattern = REPORTS[case]
    doc = saved_report()
    change(doc)
    (tmp_path / "r.json").write_text(json.dumps(doc))
    result, created = invoke_in(tmp_path, monkeypatch, ["report", "r.json", "-f", "html=out/out.html"])
    line = assert_error(result, r"^error: r\.json: ")
    assert_error(result, pattern, hint="re-run" if case == "schema-version-true" else None)
    assert "not an audit report" in line or "schema_version" in line
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in line), "a control character reached the terminal"
    assert created == set()


@pytest.mark.parametrize("raw,pattern", [
    ('"seconds": NaN', r"NaN is not a JSON number"),
    ('"seconds": Infinity', r"Infinity is not a JSON number"),
    ('"seconds": 1e400', r"1e400 is beyond a double's range"),
])  # fmt: skip
def test_numbers_json_does_not_have_are_refused(tmp_path, monkeypatch, raw, pattern):
    text = json.dumps(saved_report()).replace('"seconds": 12.5', raw)
    assert raw in text
    (tmp_path / "r.json").write_text(text)
    result, created = invoke_in(tmp_path, monkeypatch, ["report", "r.json", "-f", "html=out/out.html"])
    assert_error(result, pattern)
    assert created == set()


def test_a_report_on_the_schema_still_renders_and_its_folders_are_made_when_written(tmp_path, monkeypatch):
    (tmp_path / "r.json").write_text(json.dumps(saved_report()))
    result, created = invoke_in(tmp_path, monkeypatch, ["report", "r.json", "-f", "html=out/out.html"])
    assert result.exit_code == 1, result.output  # the fixed report's verdict: fail
    assert (tmp_path / "out" / "out.html").read_text().startswith("<!doctype html>")
    assert created == {tmp_path / "out", tmp_path / "out" / "out.html"}


def test_the_packaged_schema_is_the_published_one_and_the_validator_is_strict():
    """audit report reads audit_cli/report/report-schema.json; docs/ publishes the same file."""
    from audit_cli.errors import InputError
    from audit_cli.report.schema import SCHEMA_FILE, validate_report

    packaged = (ROOT / "audit_cli" / "report" / SCHEMA_FILE).read_bytes()
    assert packaged == (ROOT / "docs" / "report-schema.json").read_bytes()
    validate_report(saved_report())
    for field in ("n", "n_test"):
        doc = saved_report()
        doc["forget"][field] = True
        with pytest.raises(InputError, match=rf"\$\.forget\.{field} is a boolean"):
            validate_report(doc)
    doc = saved_report()
    doc["shadows"]["trained_now"] = 0.0
    with pytest.raises(InputError, match=r"\$\.shadows\.trained_now is a number, not an integer"):
        validate_report(doc)


# -- 3. control characters in paths and names ----------------------------------------------------

CONTROL = {
    # The red team's case: this made a folder named by control characters.
    "env-bank": ([], {"AUDIT_BANK": "\x01\n"}, r"setting bank \(env AUDIT_BANK\) '\\x01\\n' holds a control character"),
    "flag-bank": (["--bank", "b\x1b[2J"], None, r"--bank 'b\\x1b\[2J' holds a control character"),
    "model": (["--model", "m\x7f.safetensors"], None, r"--model 'm\\x7f\.safetensors' holds a control character"),
    "forget": (["--forget", "f\x85.txt"], None, r"--forget 'f\\x85\.txt' holds a control character"),
    "format-target": (["-f", "json=r\n.json"], None, r"--format 'json=r\\n\.json' holds a control character"),
    "output": (["-f", "json", "-o", "r\t.json"], None, r"--output 'r\\t\.json' holds a control character"),
    "config": (["--config", "a\x1f.toml"], None, r"--config 'a\\x1f\.toml' holds a control character"),
    "data-root": (["--data-root", "d\x9f"], None, r"--data-root 'd\\x9f' holds a control character"),
    "original": (["--original", "o\r.safetensors"], None, r"--original 'o\\r\.safetensors' holds a control character"),
    "method-name": (["--method", "retrain\n"], None, r"--method 'retrain\\n' holds a control character"),
    "env-device": ([], {"AUDIT_DEVICE": "cpu\x1b"}, r"setting device \(env AUDIT_DEVICE\) 'cpu\\x1b' holds"),
}  # fmt: skip


@pytest.mark.parametrize("case", CONTROL)
def test_a_control_character_in_a_path_or_name_is_refused(tmp_path, monkeypatch, case):
    extra, env, pattern = CONTROL[case]
    args = list(RUN)
    if extra[:1] in (["--model"], ["--forget"]):  # in place of the sample's path
        args[args.index(extra[0]) + 1] = extra[1]
    else:
        args += extra
    result, created = invoke_in(tmp_path, monkeypatch, args, env=env)
    line = assert_error(result, pattern)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in line), "the value was not escaped"
    assert created == set()


def test_a_control_character_in_a_settings_file_or_another_command_is_refused(tmp_path, monkeypatch):
    (tmp_path / "audit.toml").write_text('bank = "bank\\u0001"\n')
    result, created = invoke_in(tmp_path, monkeypatch, RUN)
    assert_error(result, r"setting bank \(.*audit\.toml\) 'bank\\x01' holds a control character")
    assert created == set()
    (tmp_path / "audit.toml").unlink()
    for args, pattern in (
        (["report", "r\x1b.json"], r"REPORT 'r\\x1b\.json' holds a control character"),
        (["train", "--out", "m\n.safetensors", "--epochs", "1"], r"--out(put)? 'm\\n\.safetensors' holds"),
        (["ids", "--data", "digits\x07"], r"--data 'digits\\x07' holds a control character"),
        (["bank", "ls", "\x01"], r"BANK '\\x01' holds a control character"),
    ):
        result, created = invoke_in(tmp_path, monkeypatch, args)
        assert_error(result, pattern)
        assert created == set()


def test_printable_names_are_not_refused(tmp_path, monkeypatch):
    """Spaces and letters beyond ASCII are ordinary names."""
    (tmp_path / "bänk für Prüfung").mkdir()
    result, _ = invoke_in(tmp_path, monkeypatch, ["bank", "ls"], env={"AUDIT_BANK": "bänk für Prüfung"})
    assert_ok(result)
    assert "no shadow bank in bänk für Prüfung" in result.stdout


# -- 4. a refusal creates nothing ----------------------------------------------------------------


def plugin_checkpoint(folder: Path) -> Path:
    """The digits sample, its metadata naming a plug-in architecture (some.module:factory)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(ORIGINAL), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        metadata = dict(fh.metadata())
    doc = json.loads(metadata["unlearning_audit"])
    doc["arch"] = doc["recipe"]["arch"] = "some.module:factory"
    metadata["unlearning_audit"] = json.dumps(doc)
    save_file(tensors, str(folder / "plug.safetensors"), metadata=metadata)
    return folder / "plug.safetensors"


@pytest.mark.parametrize("bank", [None, "deep/er/bank"])
@pytest.mark.parametrize("command", ["run", "shadows"])
def test_an_untrusted_plugin_refused_while_building_the_bank_leaves_no_folder(tmp_path, monkeypatch, command, bank):
    model = plugin_checkpoint(tmp_path)
    args = [command, "--model", model, "--forget", FORGET, "--shadows", "2", "--device", "cpu", "-q"]
    args += ["--bank", bank] if bank else []
    args += ["--allow-underpowered", "-f", "json=out/r.json"] if command == "run" else []
    result, created = invoke_in(tmp_path, monkeypatch, args)
    assert_error(result, r"names plug-in architecture 'some\.module:factory'", code=4, hint="--arch")
    assert created == set(), "no bank folder, no report folder"


def truncated_checkpoint(folder: Path) -> Path:
    (folder / "m.safetensors").write_bytes(ORIGINAL.read_bytes()[:5000])
    return folder / "m.safetensors"


def bad_forget_file(folder: Path) -> Path:
    (folder / "forget.txt").write_text("5\nseventeen\n")
    return folder / "forget.txt"


@pytest.mark.parametrize("case,pattern", [("checkpoint", "truncated"), ("forget", "seventeen|not an integer")])
def test_refused_inputs_leave_no_bank_or_report_folder(tmp_path, monkeypatch, case, pattern):
    model = truncated_checkpoint(tmp_path) if case == "checkpoint" else ORIGINAL
    forget = bad_forget_file(tmp_path) if case == "forget" else FORGET
    args = ["run", "--model", model, "--forget", forget, "--shadows", "2", "--device", "cpu", "-q",
            "--allow-underpowered", "--bank", "banks/b", "-f", "json=out/r.json", "-f", "html=out/html/r.html"]  # fmt: skip
    result, created = invoke_in(tmp_path, monkeypatch, args)
    assert_error(result, pattern)
    assert created == set()


def test_a_bank_named_with_control_characters_from_python_is_refused_before_anything(tmp_path):
    from audit_cli.auditing.pipeline import run_audit
    from audit_cli.auditing.request import AuditConfig
    from audit_cli.errors import UsageError

    with pytest.raises(UsageError, match=r"--bank '.*b\\x01\\n' holds a control character"):
        run_audit(AuditConfig(model=ORIGINAL, forget=FORGET, bank=tmp_path / "b\x01\n", shadows=2, device="cpu"))
    assert list(tmp_path.iterdir()) == []
