"""Every exit code of docs/audit.md's table, reached through the CLI (CliRunner)."""

from dataclasses import replace

import pytest
from typer.testing import CliRunner

from audit_cli.app import app
from audit_cli.errors import ExitCode


def test_the_table_is_what_design_md_says():
    assert {c.name: int(c) for c in ExitCode} == {
        "PASS": 0, "FAIL": 1, "USAGE": 2, "INCONCLUSIVE": 3, "UNSAFE": 4, "INTERRUPTED": 130, "INTERNAL": 70,
    }  # fmt: skip


def test_internal_error_is_70_with_one_line_and_no_traceback(monkeypatch):
    import audit_cli.repair.inspection as inspection

    def boom(*args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(inspection, "read_header", boom)  # the safetensors reader inspect calls
    result = CliRunner().invoke(app, ["inspect", "sample_models/digits_mlp_original.safetensors"])
    assert result.exit_code == 70
    assert result.stderr.startswith("internal error: ZeroDivisionError: a bug")
    assert "Traceback" not in result.output
    monkeypatch.setenv("AUDIT_DEBUG", "1")
    result = CliRunner().invoke(app, ["inspect", "sample_models/digits_mlp_original.safetensors"])
    assert result.exit_code == 70 and "Traceback" in result.stderr


def test_a_path_the_system_refuses_is_a_one_line_usage_error(monkeypatch, tmp_path):
    """A write the system refuses (no such folder, /proc, a full disk) is the user's to fix:
    exit 2 and one line naming the path, not 'internal error'."""
    import audit_cli.repair.inspection as inspection

    def refused(*args):
        raise OSError(28, "No space left on device", str(tmp_path / "report.json"))

    monkeypatch.setattr(inspection, "read_header", refused)
    result = CliRunner().invoke(app, ["inspect", "sample_models/digits_mlp_original.safetensors"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr == f"error: No space left on device: {tmp_path / 'report.json'}\n"


def test_a_diverged_training_is_a_usage_error_and_writes_nothing(tmp_path):
    out = tmp_path / "nan.safetensors"
    result = CliRunner().invoke(app, ["train", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "1", "--out",
                                      str(out), "-q", "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 2 and result.stderr.startswith("error: training diverged"), result.output
    assert not out.exists()


def test_interrupt_is_130_and_writes_nothing(monkeypatch, tmp_path):
    import audit_cli.repair.train_checkpoint as train_checkpoint

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_checkpoint, "train_models", interrupted)
    out = tmp_path / "m.safetensors"
    result = CliRunner().invoke(app, ["train", "--out", str(out), "-q", "--device", "cpu"])
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("verdict,code", [("pass", 0), ("fail", 1), ("inconclusive", 3)])
def test_pass_fail_and_inconclusive_through_the_cli(tmp_path, verdict, code):
    from audit_cli.report import AuditReport, CheckResult, DatasetSection, ForgetSection, ModelSection, ShadowSection
    from audit_cli.report.formats import render_json

    report = AuditReport(
        model=ModelSection(path="m", sha256="0" * 64, kind="original", method=None),
        dataset=DatasetSection(name="digits", fingerprint="f"),
        forget=ForgetSection(n=30, fingerprint="g", n_test=40),
        shadows=ShadowSection(n=8, bank="b", trained_now=0, seconds=0.0),
        mode="lira",
        checks=(CheckResult("leakage", verdict, "s", 0.2, 0.15, 0.25, 0.1, True),),
        exposed=(),
        skipped=(),
        seconds=1.0,
    )
    saved = tmp_path / "r.json"
    saved.write_text(render_json(report))
    assert CliRunner().invoke(app, ["report", str(saved)]).exit_code == code


def test_a_pass_the_counts_cannot_reach_is_said_up_front_and_never_blocks_a_fail(tmp_path):
    """Where the counts cannot show a pass at the threshold the audit says so before it
    trains, and runs all the same (a fail needs no such power). Class forgetting: the
    leakage gate decides its pass; 180 class-3 examples against 60 test ones decide
    thresholds from about 0.24."""
    from audit_cli.auditing.inputs import power_notes, prepare
    from audit_cli.auditing.request import AuditConfig

    bank = tmp_path / "bank"
    config = AuditConfig(model="sample_models/digits_mlp_retrained_class3.safetensors", forget_class=3,
                         method="retrain", original="sample_models/digits_mlp_original.safetensors", bank=bank)
    inputs = prepare(config)
    from audit_cli.checks.gate import min_decidable_leakage

    floor = min_decidable_leakage(len(inputs.forget), len(inputs.test))
    assert 0.1 < floor < 0.5
    (note,) = power_notes(inputs, floor)
    assert f"cannot show leakage below 0.1: an exact unlearner passes at most half the time below {floor:.3f}" in note
    assert note.endswith("the audit can still fail the model")
    # Random forgetting: the residual share decides the pass; no note about leakage.
    random = prepare(AuditConfig(model="sample_models/digits_mlp_retrained_random10.safetensors", method="retrain",
                                 forget="sample_models/forget_random10.txt", bank=bank,
                                 original="sample_models/digits_mlp_original.safetensors"))  # fmt: skip
    assert power_notes(random, min_decidable_leakage(len(random.forget), len(random.test))) == []
    assert not bank.exists()
    result = CliRunner().invoke(app, ["run", "--model", "sample_models/digits_mlp_original.safetensors", "--forget",
                                      "sample_models/forget_random10.txt", "--gate", "lenient", "--bank", str(bank)])
    assert result.exit_code == 2 and "--gate must be decide or evidence" in result.stderr


def test_shadows_replay_the_declared_augmentation(tmp_path):
    """The unlearning augmentation is part of the method: kept in the bank spec (its key is
    tested in test_shadows.py), and refused on data it cannot apply to before any training."""
    from dataclasses import replace

    from audit_cli.auditing.inputs import prepare
    from audit_cli.auditing.request import AuditConfig
    from audit_cli.errors import UsageError

    config = AuditConfig(model="sample_models/digits_mlp_original.safetensors",
                         forget="sample_models/forget_random10.txt", method="finetune", bank=tmp_path,
                         original="sample_models/digits_mlp_original.safetensors")  # fmt: skip
    plain = prepare(config).bank.spec
    assert plain.unlearning.augmentation == "none" and plain.n_train == 1347
    with pytest.raises(UsageError, match="needs image data"):
        prepare(replace(config, method_params={"augmentation": "crop+flip", "epochs": "1"}))
    assert not any(tmp_path.iterdir())


def test_data_options_without_data_are_refused_not_ignored(tmp_path):
    """The checkpoint records its dataset with its options; --data-opt alone changed nothing."""
    from audit_cli.auditing.inputs import prepare
    from audit_cli.auditing.request import AuditConfig
    from audit_cli.errors import UsageError

    config = AuditConfig(model="sample_models/digits_mlp_original.safetensors",
                         forget="sample_models/forget_random10.txt", bank=tmp_path,
                         data_options={"test_fraction": "0.5"})  # fmt: skip
    with pytest.raises(UsageError, match="--data-opt refines --data"):
        prepare(config)
    assert prepare(replace(config, data="digits", data_options={})).bank.spec.n_train == 1347
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("flag", [["--shadows", "16"], ["--executor", "ray"], ["--bank", "elsewhere"],
                                  ["--ray-address", "auto"]])
def test_an_imported_bank_refuses_options_that_only_training_reads(tmp_path, flag):
    args = ["run", "--model", "sample_models/digits_mlp_original.safetensors", "--forget",
            "sample_models/forget_random10.txt", "--shadows-from", str(tmp_path), *flag]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and f"{flag[0]} does not apply" in result.stderr


@pytest.mark.parametrize("flag,env", [(["--fail-above", "1.0"], {}), (["--fail-above", "-0.1"], {}),
                                      ([], {"AUDIT_UTILITY_DROP_ABOVE": "1"}), ([], {"AUDIT_MIA_NN_ABOVE": "2"}),
                                      ([], {"AUDIT_MISSING_EFFECT_ABOVE": "1.5"})])
def test_a_threshold_no_score_can_cross_is_refused(flag, env):
    """Scores lie in [0, 1]: a gate at 1 would pass every model, so it is refused before any work."""
    args = ["run", "--model", "sample_models/digits_mlp_original.safetensors", "--forget",
            "sample_models/forget_random10.txt", *flag]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2 and "must lie in [0, 1" in result.stderr, result.output



def test_a_missing_effect_threshold_of_1_is_a_real_one(tmp_path):
    """The missing share exceeds 1 when unlearning raised the forget set's confidence."""
    from audit_cli.auditing.inputs import prepare
    from audit_cli.auditing.request import AuditConfig

    assert prepare(AuditConfig(model="sample_models/digits_mlp_original.safetensors", bank=tmp_path,
                               forget="sample_models/forget_random10.txt", missing_effect_above=1.0))  # fmt: skip


def test_options_the_run_would_ignore_are_refused(tmp_path):
    """--ray-address without the ray executor, and a device name a scikit-learn model would ignore."""
    run = ["run", "--model", "sample_models/digits_mlp_original.safetensors", "--forget",
           "sample_models/forget_random10.txt", "--bank", str(tmp_path / "bank"), "--ray-address", "auto"]  # fmt: skip
    result = CliRunner().invoke(app, run)
    assert result.exit_code == 2 and "--ray-address is where --executor ray sends" in result.stderr
    train = ["train", "--arch", "decision-tree", "--data", "synthetic", "--device", "bogus", "-o",
             str(tmp_path / "t.skops")]  # fmt: skip
    result = CliRunner().invoke(app, train)
    assert result.exit_code == 2 and "bogus" in result.stderr
    assert not any(tmp_path.iterdir())


def test_few_forget_ids_are_scored_against_a_sample_of_four_test_ids_each(tmp_path):
    """With 10,000 test ids and 100 forget ids a candidate would be unlearned in almost no
    shadow; the negatives are a seeded sample of 4 per forget example instead."""
    import numpy as np

    from audit_cli.auditing.inputs import prepare
    from audit_cli.auditing.request import AuditConfig
    from audit_cli.data import load_dataset, write_id_file

    forget = tmp_path / "f.txt"
    write_id_file(forget, load_dataset("digits").train_ids[:60])  # 60 training ids against 450 test ids
    config = AuditConfig(model="sample_models/digits_mlp_original.safetensors", forget=forget, method="finetune",
                         bank=tmp_path, original="sample_models/digits_mlp_original.safetensors")  # fmt: skip
    inputs = prepare(config)
    assert len(inputs.test) == 240 and np.isin(inputs.test, inputs.dataset.test_ids).all()
    assert np.array_equal(prepare(config).test, inputs.test)  # seeded
    unlearned, out = inputs.bank.spec.state_rates()
    assert unlearned == pytest.approx(60 / 300) and out == pytest.approx(450 / 1797)


def test_too_few_shadows_to_observe_every_example_exits_3_before_training(tmp_path):
    result = CliRunner().invoke(app, [
        "run", "--model", "sample_models/digits_mlp_original.safetensors", "--forget", "sample_models/forget_random10.txt",
        "--method", "finetune", "--shadows", "4", "--fail-above", "0.3", "--bank", str(tmp_path / "b"), "-q",
        "--original", "sample_models/digits_mlp_original.safetensors",
    ])  # fmt: skip
    assert result.exit_code == 3 and "would have no shadow that unlearned them" in " ".join(result.output.split())
    assert not (tmp_path / "b").exists()
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("\n".join(str(i) for i in range(10)))
    result = CliRunner().invoke(app, ["run", "--model", "sample_models/digits_mlp_original.safetensors", "--forget",
                                      str(tiny), "--fail-above", "0.9", "--bank", str(tmp_path / "b"), "-q"])  # fmt: skip
    assert result.exit_code == 3 and "too few for any claim" in result.output and "no shadow was trained" in result.output
