"""One vocabulary across commands: -h and -V, ``-o -`` for standard output, settings'
environment variables named in help and misspelt ones warned about."""

import json

import pytest
from typer.testing import CliRunner

from audit_cli.app import app
from audit_cli.cli.common import unknown_variables


@pytest.mark.parametrize("args", [["-h"], ["run", "-h"], ["bank", "ls", "-h"], ["fl", "train", "-h"]])
def test_h_is_help_on_every_level(args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "Usage: audit" in result.stdout and "--help" in result.stdout


def test_capital_v_is_the_version():
    from audit_cli import __version__

    result = CliRunner().invoke(app, ["-V"])
    assert result.exit_code == 0 and result.stdout == f"unlearning-audit {__version__}\n"


def test_forget_list_to_standard_output_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["forget-list", "--count", "5", "--seed", "3", "-o", "-"])
    assert result.exit_code == 0, result.output
    ids = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert len(ids) == 5 and ids == sorted(ids, key=int) and result.stdout.startswith("# 5 of the 1347 training ids")
    assert "drew 5 of 1347 training ids" in result.stderr and list(tmp_path.iterdir()) == []
    # The same draw as a file holds the same text.
    CliRunner().invoke(app, ["forget-list", "--count", "5", "--seed", "3", "-o", "f.txt"])
    assert (tmp_path / "f.txt").read_text() == result.stdout


def test_a_checkpoint_to_standard_output_is_refused_not_written_to_a_file_named_dash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", "-o", "-", "--epochs", "1", "-q", "--device", "cpu"])
    assert result.exit_code == 2 and "-o - (standard output) is not available for this output" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_saved_report_to_standard_output_with_dash(tmp_path):
    from tests.test_ci_recipe import _report

    saved = tmp_path / "r.json"
    saved.write_text(_report("pass").to_json())
    result = CliRunner().invoke(app, ["report", str(saved), "-f", "json", "-o", "-"])
    assert result.exit_code == 0 and json.loads(result.stdout)["exit_code"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_settings_name_their_variable_in_help():
    text = " ".join(CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).stdout.split())
    names = text.split("Environment: ")[1].split(" (a flag outranks")[0].split(", ")
    assert {"AUDIT_FAIL_ABOVE", "AUDIT_RESIDUAL_ABOVE", "AUDIT_SHADOWS", "AUDIT_BANK", "AUDIT_SEED",
            "AUDIT_LOCK_TIMEOUT"} <= set(names)  # fmt: skip
    sweep = " ".join(CliRunner().invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"}).stdout.split())
    assert "Environment: AUDIT_LOCK_TIMEOUT (a flag" in sweep
    assert "Environment:" not in CliRunner().invoke(app, ["train", "--help"]).stdout  # train reads no setting


def test_a_misspelt_variable_is_warned_about_with_the_closest_name():
    warnings = unknown_variables({"AUDIT_FAIL_ABOVEE": "0.2", "AUDIT_SHADOWS": "8", "AUDIT_DEBUG": "1",
                                  "AUDIT_NOPE": "1", "HOME": "/root"})  # fmt: skip
    assert warnings[0] == ("warning: AUDIT_FAIL_ABOVEE is not a variable this tool reads; it is ignored; did you "
                           "mean AUDIT_FAIL_ABOVE?")  # fmt: skip
    assert len(warnings) == 2 and warnings[1].startswith("warning: AUDIT_NOPE is not a variable") and (
        "AUDIT_LOCK_TIMEOUT" in warnings[1])  # fmt: skip
    result = CliRunner().invoke(app, ["methods"], env={"AUDIT_FAIL_ABOVEE": "0.2"})
    assert result.exit_code == 0 and "did you mean AUDIT_FAIL_ABOVE?" in result.stderr


def test_ids_and_forget_list_take_download_as_their_error_suggests(tmp_path):
    """A missing torchvision dataset's error says "pass --download": every command that
    loads a dataset takes it (nothing is fetched here: the root is empty and unreachable
    downloads are not attempted without the flag)."""
    for command in (["ids"], ["forget-list", "--count", "3", "-o", "-"], ["train", "-o", str(tmp_path / "m.safetensors")]):
        result = CliRunner().invoke(app, [*command, "--data", "cifar10", "--data-root", str(tmp_path)])
        assert result.exit_code == 2 and "pass --download to fetch it" in result.stderr, result.output
        assert "--download" in CliRunner().invoke(app, [*command[:1], "--help"], env={"COLUMNS": "200"}).stdout


def test_dir_shows_the_lazy_api():
    import audit_cli

    assert {"audit", "load_dataset", "dataset_from_arrays", "__version__"} <= set(dir(audit_cli))
