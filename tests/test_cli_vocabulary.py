"""One vocabulary across commands: -h and -V, ``-o -`` for standard output, settings'
environment variables named in help and misspelt ones warned about."""

import json
from pathlib import Path

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
    assert "Environment: AUDIT_SHADOWS, AUDIT_BANK, AUDIT_FAIL_ABOVE, AUDIT_ALLOW_UNDERPOWERED, AUDIT_SEED, " in sweep
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


def test_shell_completion_is_on_and_completes_lazy_commands_and_their_options():
    import os
    import subprocess
    import sys
    from pathlib import Path

    audit = Path(sys.executable).parent / "audit"

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_AUDIT_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - 1)}  # fmt: skip
        return subprocess.run([str(audit)], env=env, capture_output=True, text=True).stdout.split()

    assert complete("audit ru") == ["run"]
    assert "--residual-above" in complete("audit run --resid")
    assert "--install-completion" in CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout


def test_listings_take_f_like_run_and_report():
    result = CliRunner().invoke(app, ["methods", "-f", "json"])
    assert result.exit_code == 0 and {m["name"] for m in json.loads(result.stdout)} >= {"retrain", "salun", "trw"}


def test_bank_commands_take_bank_as_an_option_as_run_does(tmp_path):
    for args in (["bank", "ls", "--bank", str(tmp_path)], ["bank", "ls", str(tmp_path)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0 and f"no shadow bank in {tmp_path}" in " ".join(result.stdout.split())
    both = CliRunner().invoke(app, ["bank", "ls", str(tmp_path), "--bank", str(tmp_path)])
    assert both.exit_code == 2 and "the bank is given twice" in both.stderr


def test_q_and_v_on_every_command():
    """Every command takes -q and -v: its own where it has them (run: no progress; report:
    every sentence), else -q silences notes (errors still print) and -v shows a bug's traceback."""
    from audit_cli.cli import BANK_COMMANDS, COMMANDS, FL_COMMANDS

    paths = [[n] for n in COMMANDS] + [["bank", n] for n in BANK_COMMANDS] + [["fl", n] for n in FL_COMMANDS]
    for path in paths:
        text = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).stdout
        assert "--quiet" in text and "-q" in text and "--verbose" in text and "-v" in text, path
    noisy = CliRunner().invoke(app, ["forget-list", "--count", "3", "-o", "-"])
    quiet = CliRunner().invoke(app, ["forget-list", "--count", "3", "-o", "-", "-q"])
    assert "drew 3" in noisy.stderr and quiet.stderr == "" and quiet.stdout == noisy.stdout
    error = CliRunner().invoke(app, ["forget-list", "--count", "0", "-o", "-", "-q"])
    assert error.exit_code == 2 and error.stderr.startswith("error:")  # -q never hides an error
    after = CliRunner().invoke(app, ["forget-list", "--count", "3", "-o", "-"])
    assert "drew 3" in after.stderr  # the next command starts from its own flags


def test_v_prints_an_internal_errors_traceback(monkeypatch):
    import audit_cli.repair.inspection as inspection

    def boom(*args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(inspection, "read_header", boom)
    plain = CliRunner().invoke(app, ["inspect", "sample_models/digits_mlp_original.safetensors"])
    verbose = CliRunner().invoke(app, ["inspect", "sample_models/digits_mlp_original.safetensors", "-v"])
    assert plain.exit_code == verbose.exit_code == 70
    assert "Traceback" not in plain.stderr and "pass -v" in plain.stderr and "Traceback" in verbose.stderr


def test_sweep_reads_settings_as_run_does(tmp_path, monkeypatch):
    """AUDIT_* and audit.toml reach sweep's settings (before, only its lock timeout): a bad
    one is refused as run refuses it, naming where it came from, before any point is unlearned."""
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "--model", str(Path("sample_models/digits_mlp_original.safetensors").resolve()), "--forget",
            str(Path("sample_models/forget_random10.txt").resolve()), "--method", "neggrad", "--param",
            "lr=1e-4,1e-3", "-o", "out"]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"AUDIT_SEED": "-3"})
    assert result.exit_code == 2 and "setting seed = -3 (env AUDIT_SEED) is outside" in result.stderr
    (tmp_path / "audit.toml").write_text("shadows = 1\n")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "setting shadows = 1" in result.stderr and "audit.toml" in result.stderr
    assert not (tmp_path / "out").exists()
