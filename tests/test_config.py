"""Settings precedence: flags > AUDIT_* environment > audit.toml / pyproject.toml > defaults."""

import pytest

from audit_cli.config import find_config_file, resolve_settings
from audit_cli.errors import UsageError


def test_precedence_and_sources(tmp_path):
    (tmp_path / "audit.toml").write_text("fail-above = 0.3\nshadows = 32\nseed = 5\n")
    env = {"AUDIT_SHADOWS": "16", "AUDIT_SEED": "7"}
    s = resolve_settings({"seed": 9}, env=env, cwd=tmp_path)
    assert (s["seed"].value, s["seed"].source) == (9, "flag")
    assert (s["shadows"].value, s["shadows"].source) == (16, "env AUDIT_SHADOWS")
    assert s["fail_above"].value == 0.3 and s["fail_above"].source.endswith("audit.toml")
    assert (s["variance"].value, s["variance"].source) == ("auto", "default")


def test_pyproject_table_and_audit_toml_wins(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.unlearning-audit]\nfail_above = 0.25\n')
    assert find_config_file(tmp_path).name == "pyproject.toml"
    assert resolve_settings({}, env={}, cwd=tmp_path)["fail_above"].value == 0.25
    (tmp_path / "audit.toml").write_text("fail_above = 0.05\n")
    assert resolve_settings({}, env={}, cwd=tmp_path)["fail_above"].value == 0.05


def test_a_pyproject_without_our_table_is_not_a_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_config_file(tmp_path) is None


@pytest.mark.parametrize(
    "text,message",
    [
        ("fail_above = [", "malformed TOML"),
        ("fail_abov = 0.2\n", "unknown setting 'fail_abov'"),
        ('shadows = "many"\n', "setting shadows='many': expected int"),
        ("exit_zero = 1\n", "setting exit_zero=1: expected bool"),
    ],
)
def test_bad_config_files_are_usage_errors(tmp_path, text, message):
    (tmp_path / "audit.toml").write_text(text)
    with pytest.raises(UsageError, match=message):
        resolve_settings({}, env={}, cwd=tmp_path)


def test_bad_environment_value_names_the_setting(tmp_path):
    with pytest.raises(UsageError, match="setting fail_above='high'"):
        resolve_settings({}, env={"AUDIT_FAIL_ABOVE": "high"}, cwd=tmp_path)


def test_per_check_thresholds_table(tmp_path):
    (tmp_path / "audit.toml").write_text("[thresholds]\nleakage = 0.2\n")
    s = resolve_settings({}, env={}, cwd=tmp_path)
    assert s["fail_above"].value == 0.2 and s["fail_above"].source.endswith("audit.toml")
    (tmp_path / "audit.toml").write_text("[thresholds]\nmia_nn = 0.3\nforget-class-accuracy = 0.05\n")
    s = resolve_settings({}, env={}, cwd=tmp_path)
    assert s["mia_nn_above"].value == 0.3 and s["forget_class_accuracy_above"].value == 0.05
    assert s["fail_above"].value == 0.1 and s["fail_above"].source == "default"
    (tmp_path / "audit.toml").write_text("[thresholds]\nloss = 0.2\n")
    with pytest.raises(UsageError, match="no gated check 'loss'"):
        resolve_settings({}, env={}, cwd=tmp_path)
    (tmp_path / "audit.toml").write_text("mia-nn-above = 0.1\n[thresholds]\nmia-nn = 0.2\n")
    with pytest.raises(UsageError, match="give the mia-nn threshold once"):
        resolve_settings({}, env={}, cwd=tmp_path)
    (tmp_path / "audit.toml").write_text("fail-above = 0.1\n[thresholds]\nleakage = 0.2\n")
    with pytest.raises(UsageError, match="give the leakage threshold once"):
        resolve_settings({}, env={}, cwd=tmp_path)


def test_thresholds_come_from_the_checks_registry():
    from audit_cli.checks.registry import CHECKS
    from audit_cli.config import DEFAULTS, GATED_CHECKS

    gated = {c.name.value: c.threshold for c in CHECKS if c.gated}
    assert GATED_CHECKS == gated and set(gated) == {
        "leakage", "residual-memorisation", "mia-nn", "forget-class-accuracy", "utility", "unlearning-effect"
    }  # fmt: skip
    assert all(setting in DEFAULTS for setting in gated.values())


def test_settings_and_saved_reports_must_be_regular_files(tmp_path, runner):
    import pytest

    from audit_cli.app import app
    from audit_cli.config import resolve_settings
    from audit_cli.errors import UsageError

    link = tmp_path / "audit.toml"
    link.symlink_to("/dev/zero")
    with pytest.raises(UsageError, match="not a regular file"):
        resolve_settings({}, config_file=link)
    result = runner.invoke(app, ["report", "/dev/zero"])
    assert result.exit_code == 2 and "not a regular file" in result.stderr
