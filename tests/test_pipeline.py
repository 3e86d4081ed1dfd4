"""audit run end to end on a tiny dataset where models memorise (strong membership signal)."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from typer.testing import CliRunner

from attacks.metrics import Interval
from audit_cli.app import app
from audit_cli.auditing.pipeline import run_audit
from audit_cli.auditing.request import AuditConfig
from audit_cli.checks.leakage import leakage_interval
from audit_cli.data import load_dataset, write_id_file
from audit_cli.models.recipe import Recipe
from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint
from audit_cli.repair.unlearn_checkpoint import unlearn_checkpoint
from audit_cli.repair.unlearn_request import UnlearnRequest

DATA, OPTIONS = "synthetic", {"n_samples": "400", "n_features": "8", "n_classes": "3", "flip_y": "0.2"}
RECIPE = Recipe(arch="mlp", arch_args={"hidden": (64,)}, epochs=60, lr=0.01, batch_size=32)
SHADOWS = 16
CLASS_OPTIONS = OPTIONS


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    data = load_dataset(DATA, OPTIONS)
    forget = np.sort(np.random.default_rng(0).choice(data.train_ids, 60, replace=False))
    write_id_file(root / "forget.txt", forget)
    write_id_file(root / "tiny.txt", forget[:10])
    common = dict(data=DATA, data_options=OPTIONS, recipe=RECIPE, device="cpu")
    train_checkpoint(TrainRequest(out=root / "original.safetensors", **common))
    train_checkpoint(TrainRequest(out=root / "retrained.safetensors", exclude_ids=root / "forget.txt", **common))
    unlearn_checkpoint(
        UnlearnRequest(
            model=root / "original.safetensors",
            out=root / "ascent.safetensors",
            method="neggrad",
            params={"lr": "0.05", "epochs": "5"},
            forget=root / "forget.txt",
            device="cpu",
        )
    )
    return root


def audit(models, name, **kw):
    config = AuditConfig(
        model=models / f"{name}.safetensors",
        forget=kw.pop("forget", models / "forget.txt"),
        shadows=kw.pop("shadows", SHADOWS),
        chunk_size=8,
        bank=kw.pop("bank", models / "bank"),
        device="cpu",
        # 60 forget and 100 test examples cannot decide 0.1 (power check); these tests
        # look at the numbers all the same.
        allow_underpowered=kw.pop("allow_underpowered", True),
        **kw,
    )
    return run_audit(config)


def leakage(report):
    return next(c for c in report.checks if c.name == "leakage")


def residual(report):
    return next(c for c in report.checks if c.name == "residual-memorisation")


def test_original_is_flagged_as_under_forgetting(models):
    # 16 shadows: looks at 8 and 16, and the original is failed on the first 8.
    report = audit(models, "original")
    check = leakage(report)
    assert report.mode == "lira"
    assert residual(report).verdict == "fail" and report.shadows.n == 8
    assert check.score > 0.1 and check.details["direction"] == "under-forgetting"
    assert int(report.exit_code) == 1
    assert len(report.exposed) == 10


def test_retrained_passes_where_the_counts_can_decide_and_the_bank_is_reused(models):
    # 60 forget and 100 test examples decide leakage thresholds from about 0.25 up, and 16
    # shadows widen a pass bound to 0.36 (measured: 0.28 and halves of the bank with sd
    # 0.05); retrains of this tiny noisy recipe differ by about 0.06 in accuracy.
    # 60 forget examples and 16 shadows measure this noisy recipe's residual share to about
    # +-0.35 (one look, one-sided 2.5% bounds at +-1.96 sd): the retrain reads 0.40 [-0.19,
    # 0.99], shown neither within 0.3 of exact unlearning nor beyond it.
    # The original's audit stops at 8 shadows; run here too (it reuses the bank when the test
    # above ran first), so that the test holds when run alone or in any order.
    assert audit(models, "original").shadows.n == 8
    report = audit(models, "retrained", retrained=models / "retrained.safetensors", residual_above=0.3,
                   utility_drop_above=0.25)  # fmt: skip
    utility = next(c for c in report.checks if c.name == "utility")
    assert 0.03 < utility.details["model_sd"] < 0.1 and utility.verdict == "pass"
    share = residual(report)
    assert share.verdict == "inconclusive" and share.low < 0 < share.high and share.high - share.low > 0.6
    assert report.shadows.n == 16 and share.details["look"] == 2 and share.details["looks"] == 2
    z = norm.ppf(1 - 0.025 / 2)  # two looks (8, 16), each spending half the one-sided 2.5%
    assert share.low == pytest.approx(share.score - z * share.details["sd"], abs=1e-12)
    # Never a silent pass: the sentence names the thresholds this precision could pass at.
    half = (z + norm.ppf(0.75)) * share.details["sd"]  # |estimate| <= 0.674 sd half the time
    assert f"half the time at a threshold of {half:.2f}" in share.sentence
    # Leakage keeps only its fail side: shown below nothing, it is information, not a pass.
    check = leakage(report)
    assert check.verdict == "info" and not check.gated and "can only fail" in check.sentence
    # Same recipe and forget rule as the original's audit above, which stopped at 8 shadows:
    # those 8 are reused, and only the second look's 8 are trained.
    assert report.shadows.trained_now == 8
    assert int(report.exit_code) == 3 and report.headline.name == "residual-memorisation"
    # A threshold the interval clears passes, and the report says on how many shadows.
    lenient = audit(models, "retrained", residual_above=0.999, utility_drop_above=0.35)
    assert residual(lenient).verdict == "pass" and int(lenient.exit_code) == 0
    assert lenient.shadows.n == 16 and lenient.shadows.schedule == (8, 16)  # 8 could not show it
    # The evidence reading passes an interval that reaches above the threshold, and says so.
    lenient = audit(models, "retrained", retrained=models / "retrained.safetensors", residual_above=0.999,
                    utility_drop_above=0.01, gate="evidence")  # fmt: skip
    utility = next(c for c in lenient.checks if c.name == "utility")
    assert utility.verdict == "pass" and utility.high > 0.01
    assert f"up to {utility.high:.3f} is not ruled out (--gate evidence" in utility.sentence
    gap = next(c for c in report.checks if c.name == "average gap")
    assert gap.score == pytest.approx(0.0, abs=1e-9)  # the model is its own reference


def test_param_overrides_the_declared_parameters_name_by_name(models):
    """--param changes the named parameters of the method the model declares and keeps the
    others; another --method starts from that method's defaults."""
    from audit_cli.auditing.inputs import prepare
    from audit_cli.errors import UsageError

    config = AuditConfig(model=models / "ascent.safetensors", forget=models / "forget.txt", bank=models / "bank",
                         original=models / "original.safetensors", device="cpu")  # fmt: skip
    declared = prepare(config).bank.spec.unlearning.params
    assert declared["lr"] == 0.05 and declared["epochs"] == 5
    for same in (None, "neggrad"):
        changed = prepare(replace(config, method=same, method_params={"epochs": "2"})).bank.spec.unlearning.params
        assert changed == declared | {"epochs": 2}
    other = prepare(replace(config, method="finetune", method_params={"epochs": "2"})).bank.spec.unlearning.params
    assert other["epochs"] == 2 and other["lr"] != 0.05
    with pytest.raises(UsageError, match="declares no method"):
        prepare(replace(config, model=models / "original.safetensors", method_params={"epochs": "2"}))


def test_a_retrained_model_without_another_set_is_refused_as_the_reference(models):
    """Utility and the reference metrics compare with --retrained: a model retrained without
    other ids than the forget set would answer another question. Refused before any shadow."""
    from audit_cli.errors import UsageError

    with pytest.raises(UsageError, match="was retrained without another set, not without the 10 forget ids"):
        audit(models, "original", forget=models / "tiny.txt", retrained=models / "retrained.safetensors",
              bank=models / "no-bank")  # fmt: skip
    with pytest.raises(UsageError, match="is an original that left out nothing"):
        audit(models, "original", retrained=models / "original.safetensors", bank=models / "no-bank")
    assert not (models / "no-bank").exists()
    # audit unlearn --method retrain records its forget set: a valid reference.
    from audit_cli.auditing.inputs import load_references, prepare

    retrain = models / "no-bank-retrain.safetensors"
    unlearn_checkpoint(UnlearnRequest(model=models / "original.safetensors", out=retrain, method="retrain",
                                      forget=models / "forget.txt", device="cpu"))  # fmt: skip
    config = AuditConfig(model=models / "ascent.safetensors", forget=models / "forget.txt", retrained=retrain,
                         original=models / "original.safetensors", bank=models / "no-bank", device="cpu")  # fmt: skip
    assert load_references(prepare(config))[1] is not None
    retrain.unlink()


def test_gradient_ascent_is_audited_with_its_own_method_and_found_detrimental(models):
    report = audit(
        models, "ascent", original=models / "original.safetensors", retrained=models / "retrained.safetensors"
    )
    assert report.mode == "u-lira" and report.model.method == "neggrad"
    assert report.model.method_params["lr"] == 0.05  # shadows unlearned exactly like the model
    # Ascent at this rate wrecks the model (retain accuracy about 0.37) without pushing the
    # forget set below the test set: the attack cannot show leakage either way.
    assert leakage(report).verdict != "pass"
    ratio = next(c for c in report.checks if c.name == "detrimental-unlearning ratio")
    assert ratio.score > 1  # further from the retrained model than the original was
    # The utility gate catches the damage itself: test accuracy far below the retrained model's.
    utility = next(c for c in report.checks if c.name == "utility")
    assert utility.verdict == "fail" and utility.low > 0.05
    assert utility.score == pytest.approx(utility.details["retrained_accuracy"] - utility.details["accuracy"])


def test_without_a_retrained_model_the_shadows_see_the_ascent_damage(models):
    """No --retrained: utility compares with what the bank's shadows (trained with the
    recipe, never on the test examples) keep, and fails the wrecked model all the same."""
    report = audit(models, "ascent", original=models / "original.safetensors")
    utility = next(c for c in report.checks if c.name == "utility")
    assert utility.details["reference"] == "shadows" and utility.gated
    assert utility.verdict == "fail" and utility.low > 0.05 and int(report.exit_code) == 1
    assert utility.score == pytest.approx(utility.details["reference_accuracy"] - utility.details["accuracy"])
    assert "the bank's shadows (trained with the recipe, never on these examples)" in utility.sentence
    assert "utility" not in dict(report.skipped)


def test_an_estimated_retrained_model_stands_in_for_a_missing_one_and_is_labelled(models):
    """Ascent at this rate wrecks the model; the influence estimate of the retrained model
    keeps the original's accuracy, so the reference checks see the damage as they do with
    a real retrained model, but the utility row only informs."""
    report = audit(models, "ascent", original=models / "original.safetensors", estimate_retrained="influence")
    rows = {c.name: c for c in report.checks}
    utility = rows["utility"]
    assert utility.verdict == "info" and not utility.gated and utility.score > 0.2
    real = audit(models, "ascent", original=models / "original.safetensors", retrained=models / "retrained.safetensors")
    real_utility = next(c for c in real.checks if c.name == "utility")
    # Measured: the estimate's test accuracy 0.60 against 0.69 for the retrained model (two
    # retrains of this noisy recipe differ by about 0.06): an estimate, not a retrain.
    assert abs(utility.details["retrained_accuracy"] - real_utility.details["retrained_accuracy"]) < 0.15
    assert rows["detrimental-unlearning ratio"].score > 1
    assert "estimated retrained" in rows["average gap"].sentence
    assert report.provenance["retrained_estimate"] == "influence" and real.provenance["retrained_estimate"] is None
    assert real.shadows.trained_now == 0  # the reference does not enter the bank's key


def test_an_influence_unlearned_model_is_audited_with_influence_unlearned_shadows(models, tmp_path):
    out = tmp_path / "influence.safetensors"
    unlearn_checkpoint(UnlearnRequest(model=models / "original.safetensors", out=out, method="influence",
                                      forget=models / "forget.txt", device="cpu"))  # fmt: skip
    report = audit(models, "original", bank=tmp_path / "bank")  # the same bank folder, another key below
    config = AuditConfig(model=out, forget=models / "forget.txt", original=models / "original.safetensors",
                         shadows=SHADOWS, chunk_size=8, bank=tmp_path / "bank", device="cpu",
                         allow_underpowered=True)  # fmt: skip
    unlearned = run_audit(config)
    assert unlearned.mode == "u-lira" and unlearned.model.method == "influence"
    assert unlearned.model.method_params["form"] == "auto" and unlearned.shadows.trained_now == SHADOWS
    # One Newton step moves the forget set most of the way: its leakage is below the
    # original's, and the effect check sees a move from the original.
    assert leakage(unlearned).score < leakage(report).score
    effect = next(c for c in unlearned.checks if c.name == "unlearning-effect")
    assert effect.score < 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"estimate_retrained": "influence"}, "pass --original"),
        ({"estimate_retrained": "magic", "original": "original"}, "unknown retrained-model estimator"),
        ({"estimate_retrained": "influence", "original": "original", "retrained": "retrained"}, "pass one of them"),
    ],
)
def test_a_retrained_estimate_that_cannot_be_made_is_refused_before_training(models, tmp_path, kwargs, message):
    from audit_cli.errors import UsageError

    kwargs = {k: models / f"{v}.safetensors" if k in ("original", "retrained") else v for k, v in kwargs.items()}
    with pytest.raises(UsageError) as info:
        audit(models, "ascent", bank=tmp_path / "bank", **kwargs)
    assert message in str(info.value) + str(info.value.hint or "")
    assert not (tmp_path / "bank").exists()


def test_gradient_ascent_on_correlated_blocks_is_reported_detrimental(tmp_path):
    """The ascent paper's logistic-regression example through the tool: ascent on the
    forget block moves the model further from the retrained one than the original was."""
    data = {"data": "blocks", "data_options": {"correlation": "1.0"}, "device": "cpu"}
    recipe = Recipe(arch="logreg", epochs=100, lr=0.01, weight_decay=0.01)
    write_id_file(tmp_path / "forget.txt", np.arange(100))  # the block-A training examples
    train_checkpoint(TrainRequest(out=tmp_path / "o.safetensors", recipe=recipe, **data))
    train_checkpoint(TrainRequest(out=tmp_path / "r.safetensors", recipe=recipe, exclude_ids=tmp_path / "forget.txt",
                                  **data))  # fmt: skip
    reports = {}
    for lr in ("0.01", "0.1"):
        unlearn_checkpoint(UnlearnRequest(model=tmp_path / "o.safetensors", out=tmp_path / f"ga{lr}.safetensors",
                                          method="neggrad", params={"lr": lr, "epochs": "20"},
                                          forget=tmp_path / "forget.txt", device="cpu"))  # fmt: skip
        reports[lr] = run_audit(AuditConfig(model=tmp_path / f"ga{lr}.safetensors", forget=tmp_path / "forget.txt",
                                            original=tmp_path / "o.safetensors", retrained=tmp_path / "r.safetensors",
                                            shadows=8, bank=tmp_path / "bank", device="cpu",
                                            allow_underpowered=True))  # fmt: skip
    ratio = {
        lr: next(c.score for c in r.checks if c.name == "detrimental-unlearning ratio") for lr, r in reports.items()
    }
    # Measured: 0.78 at lr 0.01 (closer than the original), 56 at lr 0.1 (docs/reproductions.md).
    assert ratio["0.01"] < 1 < 10 < ratio["0.1"]


def test_the_leakage_gate_has_three_outcomes_and_says_what_would_decide():
    from dataclasses import replace

    from attacks.metrics import SeparationReport
    from audit_cli.checks.leakage import leakage_result

    config = AuditConfig(model=Path("m.safetensors"), fail_above=0.1)

    def check(auc, low, high, gate="decide", unscorable=(0.0, 0.0)):
        sep = SeparationReport(Interval(auc, low, high), Interval(0.6, 0.5, 0.7), (), 100, 100, 0)
        return leakage_result(sep, "under-forgetting", unscorable, "u-lira", replace(config, gate=gate), 0.05)

    assert check(0.8, 0.75, 0.85).verdict == "fail"  # leakage at least 0.5
    shown_small = check(0.51, 0.48, 0.54)  # leakage in [0, 0.08]: shown below 0.1
    assert shown_small.verdict == "pass" and shown_small.high == pytest.approx(0.08)
    assert shown_small.details["auc_minus_half"] == pytest.approx(0.01)
    assert shown_small.details["min_decidable"] == 0.05
    straddles = check(0.53, 0.47, 0.59)  # leakage 0.06 in [0, 0.18]
    assert straddles.verdict == "inconclusive"
    # (0.18 - 0.06) / (0.1 - 0.06) = 3: nine times the examples at this estimate
    assert "about 9.0x as many examples" in straddles.sentence
    # The older reading, only on request: no evidence of leakage passes.
    assert check(0.53, 0.47, 0.59, gate="evidence").verdict == "pass"
    assert check(0.6, 0.4, 0.8, gate="evidence").verdict == "inconclusive"  # too wide to say anything
    unscored = check(0.51, 0.48, 0.54, unscorable=(0.2, 0.0))
    assert unscored.verdict == "inconclusive" and "20%" in unscored.sentence


def test_a_pass_allows_for_the_shadows_the_bank_drew_and_for_more_of_them():
    from attacks.metrics import SeparationReport
    from audit_cli.checks.gate import GROWTH_FACTOR
    from audit_cli.checks.leakage import leakage_result

    config = AuditConfig(model=Path("m.safetensors"), fail_above=0.1)
    sep = SeparationReport(Interval(0.52, 0.49, 0.545), Interval(0.6, 0.5, 0.7), (), 100, 100, 0)  # 0.04 in [0, 0.09]

    def check(half):
        return leakage_result(sep, "under-forgetting", (0.0, 0.0), "u-lira", config, 0.05, half=half, shadows=64)

    # Halves that agree with the whole bank: the example interval's upper end decides.
    steady = check((0.04, 0.0))
    assert steady.verdict == "pass" and steady.details["pass_bound"] == pytest.approx(0.09)
    # Spread across halves widens the upper half-width (0.05) in quadrature: 0.04 + hypot(0.05, 1.96 * 0.02).
    spread = check((0.04, 0.02))
    assert spread.details["pass_bound"] == pytest.approx(0.04 + (0.05**2 + (1.96 * 0.02) ** 2) ** 0.5)
    assert spread.verdict == "inconclusive" and "--shadows 128" in spread.sentence
    # Halves reading less: the attack still gains from shadows, extrapolated.
    gaining = check((0.03, 0.0))
    assert gaining.details["pass_bound"] == pytest.approx(0.09 + GROWTH_FACTOR * 0.01)
    assert gaining.verdict == "inconclusive" and gaining.high == pytest.approx(0.09)  # the interval is unchanged
    # Halves reading more never lower the bound, and failing is untouched.
    assert check((0.2, 0.0)).details["pass_bound"] == pytest.approx(0.09) and check((0.2, 0.0)).verdict == "pass"
    unmeasured = check((math.nan, math.nan))  # halves too small to fit: no pass
    assert unmeasured.verdict == "inconclusive" and unmeasured.details["pass_bound"] is None
    assert "too few shadows" in unmeasured.sentence
    strong = SeparationReport(Interval(0.8, 0.75, 0.85), Interval(0.6, 0.5, 0.7), (), 100, 100, 0)
    assert leakage_result(strong, "under-forgetting", (0.0, 0.0), "u-lira", config, 0.05, half=(0.1, 0.1),
                          shadows=64).verdict == "fail"  # fmt: skip


def test_a_model_audited_as_unlearned_without_its_original_is_refused_before_training(models, tmp_path):
    # Without --original nothing shows that unlearning changed the model (a no-op passes
    # every attack where leakage is weak): refused at once, naming the flag, whatever the
    # checkpoint's metadata says, and nothing is trained or created.
    from audit_cli.errors import UsageError

    for name, kw in (("ascent", {}), ("original", {"method": "retrain"}), ("retrained", {"method": "retrain"})):
        with pytest.raises(UsageError, match="audited as unlearned .*add --original ORIGINAL"):
            audit(models, name, fail_above=0.9, bank=tmp_path / "bank", **kw)
    assert not (tmp_path / "bank").exists()
    # A model that claims no unlearning is a membership audit: no original needed.
    assert audit(models, "retrained", fail_above=0.9, bank=tmp_path / "bank").mode == "lira"


def test_too_few_forget_examples_is_inconclusive(models):
    # (run only with --allow-underpowered: without it the counts are refused before training)
    report = audit(models, "original", forget=models / "tiny.txt")
    assert "too few" in leakage(report).sentence and leakage(report).verdict == "info"
    share = residual(report)
    assert share.details["n_forget"] == 10 and share.verdict in ("fail", "inconclusive")
    assert int(report.exit_code) in (1, 3)


def test_leakage_interval_folds_at_one_half():
    assert leakage_interval(Interval(0.7, 0.6, 0.8)) == Interval(
        pytest.approx(0.4), pytest.approx(0.2), pytest.approx(0.6)
    )
    assert leakage_interval(Interval(0.3, 0.2, 0.4)) == Interval(
        pytest.approx(0.4), pytest.approx(0.2), pytest.approx(0.6)
    )
    fold = leakage_interval(Interval(0.52, 0.45, 0.6))
    assert fold.low == 0.0 and fold.high == pytest.approx(0.2)


def test_cli_exit_codes_and_json(models, tmp_path):
    runner = CliRunner()
    args = ["run", "--shadows", str(SHADOWS), "--bank", str(models / "bank"), "--device", "cpu", "-q",
            "--allow-underpowered"]  # fmt: skip
    out = tmp_path / "report.json"
    result = runner.invoke(
        app,
        [
            *args,
            "--model",
            str(models / "original.safetensors"),
            "--forget",
            str(models / "forget.txt"),
            "-f",
            f"json={out}",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.stdout and "leakage" in result.stdout
    doc = json.loads(out.read_text())
    assert doc["exit_code"] == 1 and doc["schema_version"] == 1
    result = runner.invoke(
        app, [*args, "--model", str(models / "retrained.safetensors"), "--forget", str(models / "forget.txt")]
    )
    assert result.exit_code == 3 and "INCONCLUSIVE" in result.stdout, result.output
    # Utility compares with the bank's shadows (no --retrained); this tiny noisy recipe's
    # models differ by about 0.06 in accuracy from seed to seed, so 0.05 is beyond it.
    result = runner.invoke(app, [*args, "--model", str(models / "retrained.safetensors"), "--forget",
                                 str(models / "forget.txt"), "--residual-above", "0.999"],
                           env={"AUDIT_UTILITY_DROP_ABOVE": "0.35"})  # fmt: skip
    assert result.exit_code == 0 and "PASS" in result.stdout, result.output
    result = runner.invoke(
        app,
        [
            *args,
            "--model",
            str(models / "original.safetensors"),
            "--forget",
            str(models / "forget.txt"),
            "--fail-above",
            "2",
        ],
    )
    assert result.exit_code == 2 and result.stderr.startswith("error:")


def test_a_bad_reference_model_fails_before_any_shadow_is_trained(models, tmp_path):
    from audit_cli.errors import CheckpointError

    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        run_audit(
            AuditConfig(
                model=models / "original.safetensors",
                forget=models / "forget.txt",
                retrained=tmp_path / "junk.safetensors",
                shadows=SHADOWS,
                bank=tmp_path / "bank",
                device="cpu",
            )
        )
    assert not (tmp_path / "bank").exists()


def test_two_runs_give_the_same_report_apart_from_timings(models):
    first, second = audit(models, "original"), audit(models, "original")
    assert first.checks == second.checks and first.exposed == second.exposed
    strip = lambda r: replace(r.shadows, seconds=0.0, trained_now=0)  # noqa: E731
    assert strip(first) == strip(second) and first.model == second.model


def test_a_real_report_validates_against_the_published_schema(models):
    import jsonschema

    from audit_cli.report.formats import render_json

    schema = json.loads((Path(__file__).parents[1] / "docs" / "report-schema.json").read_text())
    jsonschema.validate(json.loads(render_json(audit(models, "original"))), schema)


def test_exit_zero_config_precedence_and_provenance_in_the_report(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Utility (against the shadows: no --retrained) is decided from about 0.25 on this recipe.
    (tmp_path / "audit.toml").write_text("fail-above = 0.9\nexit-zero = true\nutility-drop-above = 0.35\n")
    runner = CliRunner()
    base = ["run", "--model", str(models / "original.safetensors"), "--forget", str(models / "forget.txt"),
            "--shadows", str(SHADOWS), "--bank", str(models / "bank"), "--device", "cpu", "-q",
            "--allow-underpowered"]  # fmt: skip
    # The file's threshold (0.9) is above the original's leakage: pass.
    out = tmp_path / "r.json"
    result = runner.invoke(app, [*base, "-f", f"json={out}"], env={"AUDIT_SEED": "0"})
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["config"]["fail_above"] == {"value": 0.9, "source": str(tmp_path / "audit.toml")}
    assert doc["config"]["seed"]["source"] == "env AUDIT_SEED"
    assert doc["config"]["shadows"]["source"] == "flag"
    prov = doc["provenance"]
    assert prov["sha256"]["config"] is not None and len(prov["sha256"]["forget_list"]) == 64
    assert prov["torch"] and prov["tool_version"] and prov["dataset_fingerprint"] == doc["dataset"]["fingerprint"]
    # A flag beats the file: the threshold is crossed, and exit-zero (from the file) turns 1 into 0 ...
    result = runner.invoke(app, [*base, "--fail-above", "0.1"])
    assert result.exit_code == 0 and "FAIL" in result.stdout
    # ... unless the flag turns it off again.
    assert runner.invoke(app, [*base, "--fail-above", "0.1", "--no-exit-zero"]).exit_code == 1
    # Errors still exit 2 under exit-zero.
    assert runner.invoke(app, [*base, "--fail-above", "7"]).exit_code == 2


def test_deterministic_mode_runs_is_recorded_and_restores_torch(models, tmp_path):
    import torch

    report = audit(models, "original", bank=tmp_path / "fresh", deterministic=True)
    assert report.provenance["deterministic"] is True
    assert not torch.are_deterministic_algorithms_enabled()
    # The same numbers as the default mode on CPU, where torch's kernels are deterministic anyway.
    assert report.checks == audit(models, "original").checks


@pytest.fixture(scope="module")
def class_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("class-audit")
    # On this draw class 1's train and test examples happen to differ: a retrained model's
    # MIA-NN AUC is 0.65, 2.5 sd off 0.5. The twins' AUC on the same examples is the chance
    # level the gate measures against, so the retrained model must still pass.
    common = dict(data=DATA, data_options=CLASS_OPTIONS, recipe=RECIPE, device="cpu")
    train_checkpoint(TrainRequest(out=root / "original.safetensors", **common))
    train_checkpoint(TrainRequest(out=root / "retrained.safetensors", exclude_class=1, **common))
    unlearn_checkpoint(
        UnlearnRequest(
            model=root / "original.safetensors",
            out=root / "trw.safetensors",
            method="trw",
            forget_class=1,
            device="cpu",
        )
    )
    unlearn_checkpoint(
        UnlearnRequest(
            model=root / "original.safetensors", out=root / "mpru.safetensors", method="mpru", forget_class=1
        )
    )
    return root


def class_audit(root, name, **kw):
    config = AuditConfig(
        model=root / f"{name}.safetensors",
        forget_class=1,
        shadows=SHADOWS,
        chunk_size=8,
        bank=root / "bank",
        device="cpu",
        allow_underpowered=kw.pop("allow_underpowered", True),
        **kw,
    )
    return run_audit(config)


def check(report, name):
    return next(c for c in report.checks if c.name == name)


def test_class_forgetting_original_is_flagged_retrained_passes(class_models):
    original = class_audit(class_models, "original", original=class_models / "original.safetensors")
    # Nothing moved between the original and itself: the effect check fails it too.
    effect = check(original, "unlearning-effect")
    assert effect.verdict == "fail" and effect.score == pytest.approx(1.0)
    acc = check(original, "forget-class-accuracy")
    assert acc.verdict == "fail" and acc.details["accuracy"] > 0.9 and acc.details["twin_accuracy"] < 0.05
    assert original.exit_code == 1 and original.headline.verdict == "fail"
    # 106 forgotten against 35 test examples of the class decide thresholds from about 0.3.
    # Retrains of this tiny noisy recipe differ by about 0.1 in accuracy from seed to seed,
    # so the utility interval is wide too.
    retrained = class_audit(class_models, "retrained", retrained=class_models / "retrained.safetensors",
                            fail_above=0.35, mia_nn_above=0.35, utility_drop_above=0.35)  # fmt: skip
    assert retrained.exit_code == 0
    assert check(retrained, "forget-class-accuracy").verdict == "pass"
    mia = check(retrained, "mia-nn")
    assert mia.verdict == "pass" and mia.low < mia.threshold
    # Raw AUC is off 0.5 on this split; the twins see the same, so the score is near 0.
    assert abs(mia.details["auc"][0] - mia.details["chance_auc"]) < 0.1
    assert mia.score == pytest.approx(max(0.0, 2 * (mia.details["auc"][0] - mia.details["chance_auc"])))
    # Compared with itself, the retrained model has no gap at all.
    assert check(retrained, "mia-nn gap to retrained").score == 0
    assert check(retrained, "lira gap to retrained").score == 0
    where = check(retrained, "where the class goes").details
    assert set(where["confusion_row"]) == {"model", "retrained twins", "retrained"}
    assert where["confusion_row"]["model"] == where["confusion_row"]["retrained"]
    assert where["confusion_row"]["model"][1] == 0 and sum(where["confusion_row"]["model"]) == pytest.approx(1, 1e-3)
    assert 1 not in where["neighbors"]
    # The model-level classifier, trained on shadows with and without the class, calls the
    # retrained model retrained and the original not.
    assert check(retrained, "mia-nn (model level)").score < 0.5 < check(original, "mia-nn (model level)").score


def test_class_forgetting_trw_is_audited_with_unlearned_shadows(class_models):
    report = class_audit(class_models, "trw", retrained=class_models / "retrained.safetensors",
                         original=class_models / "original.safetensors")  # fmt: skip
    # TRW moved the class at least as far as the twins do (measured against the retained
    # classes' test examples, which exact unlearning of the class leaves in place).
    effect = check(report, "unlearning-effect")
    assert effect.verdict == "pass" and effect.details["achieved"][0] > 0.5
    assert report.mode == "u-lira" and report.model.method == "trw"
    assert check(report, "forget-class-accuracy").details["accuracy"] < 0.1
    # Shadows unlearned with trw, same parameters; the class is gone and utility kept.
    assert report.model.method_params["beta"] == 10.0
    utility = check(report, "utility")
    assert utility.verdict != "fail" and utility.score < 0.05
    gap = check(report, "u-lira gap to retrained")
    assert gap.score == pytest.approx(abs(gap.details["auc_model"] - gap.details["auc_retrained"]))
    mia_gap = check(report, "mia-nn gap to retrained")
    assert mia_gap.score == pytest.approx(
        abs(check(report, "mia-nn").details["auc"][0] - mia_gap.details["auc_retrained"][0])
    )
    klom = check(report, "klom")
    assert klom.details["n_examples"] == report.forget.n and klom.low <= klom.score <= klom.high
    from audit_cli.report.formats import render_html, render_markdown

    md = render_markdown(report)
    assert "| retrained twins |" in md and "Where the forgotten class" in md
    page = render_html(report)
    assert "Where the forgotten class goes" in page and "<td>retrained twins</td>" in page


def test_an_mpru_filter_is_audited_with_filtered_shadows(class_models):
    report = class_audit(class_models, "original", filter=class_models / "mpru.safetensors",
                         retrained=class_models / "retrained.safetensors", mia_nn_above=0.45)  # fmt: skip
    assert report.model.method == "mpru" and report.model.filter.endswith("mpru.safetensors")
    assert report.mode == "u-lira" and report.forget.forget_class == 1
    assert check(report, "forget-class-accuracy").details["accuracy"] == 0
    assert report.provenance["sha256"]["filter"] is not None
    assert check(report, "mia-nn").verdict == "pass" and check(report, "mia-nn").high <= 0.45
    # A filter's original is the unfiltered model: the effect check runs without --original.
    assert check(report, "unlearning-effect").gated
    # The shadows were filtered too: their forget-class outputs sit at the filter's floor.
    assert check(report, "mia-nn (model level)").details["n_shadows"] == SHADOWS
    # The filter moves the forgotten class's mass to the other classes: nothing is called 1.
    assert check(report, "where the class goes").details["confusion_row"]["model"][1] == 0


def test_filter_misuse_is_refused_before_any_shadow_is_trained(class_models, tmp_path):
    from audit_cli.errors import UsageError

    with pytest.raises(UsageError, match="not --forget"):
        run_audit(AuditConfig(model=class_models / "original.safetensors", filter=class_models / "mpru.safetensors",
                              forget=class_models / "x.txt", bank=tmp_path))  # fmt: skip
    with pytest.raises(UsageError, match="forgets class 1, not 2"):
        run_audit(AuditConfig(model=class_models / "original.safetensors", filter=class_models / "mpru.safetensors",
                              forget_class=2, bank=tmp_path))  # fmt: skip
    with pytest.raises(UsageError, match="changes weights"):
        run_audit(AuditConfig(model=class_models / "original.safetensors", filter=class_models / "mpru.safetensors",
                              method="finetune", bank=tmp_path))  # fmt: skip
    with pytest.raises(UsageError, match="pass the filter file with --filter"):
        run_audit(AuditConfig(model=class_models / "original.safetensors", forget_class=1, method="mpru",
                              bank=tmp_path))  # fmt: skip
    with pytest.raises(UsageError, match="was fitted for the model with sha256"):
        run_audit(AuditConfig(model=class_models / "retrained.safetensors", filter=class_models / "mpru.safetensors",
                              bank=tmp_path))  # fmt: skip
    assert not any(tmp_path.iterdir())


def test_a_tree_model_is_audited_with_tree_shadows(tmp_path):
    from audit_cli.models.sklearn_model import SklearnRecipe

    common = dict(data=DATA, data_options=CLASS_OPTIONS, device="cpu")
    tree = SklearnRecipe(arch="hist-gradient-boosting", params={"max_iter": "20"})
    train_checkpoint(TrainRequest(out=tmp_path / "tree.skops", recipe=tree, **common))
    train_checkpoint(TrainRequest(out=tmp_path / "tree_r.skops", recipe=tree, exclude_class=1, **common))
    unlearn_checkpoint(UnlearnRequest(model=tmp_path / "tree.skops", out=tmp_path / "f.safetensors", method="mpru",
                                      forget_class=1))  # fmt: skip
    config = dict(shadows=8, chunk_size=8, bank=tmp_path / "bank", device="cpu", allow_underpowered=True)
    filtered = run_audit(AuditConfig(model=tmp_path / "tree.skops", filter=tmp_path / "f.safetensors",
                                     retrained=tmp_path / "tree_r.skops", **config))  # fmt: skip
    assert check(filtered, "forget-class-accuracy").verdict == "pass"
    bank = json.loads(next((tmp_path / "bank").glob("*/manifest.json")).read_text())
    assert bank["spec"]["recipe"] == {"sklearn": "hist-gradient-boosting", "params": {"max_iter": 20}}
    assert bank["spec"]["method"] == "mpru"
    # The unfiltered tree still knows the class: flagged.
    plain = run_audit(AuditConfig(model=tmp_path / "tree.skops", forget_class=1, **config))
    assert check(plain, "forget-class-accuracy").verdict == "fail" and plain.exit_code == 1
    # Weight-updating methods cannot be replayed on trees.
    from audit_cli.errors import UsageError

    with pytest.raises(UsageError, match="updates network weights"):
        run_audit(AuditConfig(model=tmp_path / "tree.skops", forget_class=1, method="finetune", **config))


def test_an_inconclusive_privacy_check_is_never_a_pass():
    from audit_cli.report import AuditReport, CheckResult

    def report(*verdicts):
        checks = tuple(CheckResult(name, v, name, gated=True) for name, v in verdicts)
        return AuditReport(None, None, None, None, "u-lira", checks, (), (), 0.0)  # only the checks matter here

    only_utility = report(("leakage", "inconclusive"), ("utility", "pass"), ("forget-class-accuracy", "pass"))
    assert only_utility.exit_code == 3 and only_utility.headline.name == "leakage"
    assert report(("leakage", "inconclusive"), ("utility", "fail")).exit_code == 1
    assert report(("leakage", "pass"), ("utility", "pass")).exit_code == 0
    assert report(("leakage", "pass"), ("utility", "pass")).headline.name == "leakage"
    assert report(("leakage", "pass"), ("mia-nn", "fail")).headline.name == "mia-nn"


def test_an_original_that_is_not_the_parent_is_refused_before_training(models, tmp_path):
    from audit_cli.errors import UsageError

    with pytest.raises(UsageError, match="is not the model .* was unlearned from"):
        audit(models, "ascent", original=models / "retrained.safetensors", bank=tmp_path / "bank")
    assert not (tmp_path / "bank").exists()


def test_shadows_are_trained_only_until_the_verdict_is_decided(models, tmp_path):
    """Looks at 8, 16 and 32 shadows: the original (a no-op) is failed on the first 8 and the
    rest are never trained; read again from the same bank, it gets the same verdict on the
    same 8 without training anything."""
    first = audit(models, "original", shadows=32, bank=tmp_path / "bank")
    share = residual(first)
    assert first.shadows.schedule == (8, 16, 32) and first.shadows.n == 8 and first.shadows.trained_now == 8
    assert share.verdict == "fail" and share.details["look"] == 1 and share.details["looks"] == 3
    assert share.details["alpha"] == pytest.approx(0.025 / 3)
    again = audit(models, "original", shadows=32, bank=tmp_path / "bank")
    assert again.shadows.trained_now == 0 and again.checks == first.checks
    # A bank that already holds all 32 shadows (built ahead, as `audit shadows` does) is read
    # at the same looks: the same verdict, from the same first 8 shadows.
    from audit_cli.auditing.inputs import prepare

    config = AuditConfig(model=models / "original.safetensors", forget=models / "forget.txt", shadows=32,
                         chunk_size=8, bank=tmp_path / "full", device="cpu", allow_underpowered=True)  # fmt: skip
    assert prepare(config).build_bank() == 32
    reused = audit(models, "original", shadows=32, bank=tmp_path / "full")
    assert reused.shadows.n == 8 and reused.shadows.trained_now == 0 and reused.checks == first.checks


def test_examples_a_small_bank_never_observed_in_a_state_are_left_out_of_the_effect_at_random(models, tmp_path):
    # At 4 shadows, about a third of the examples (0.75^4) have no shadow that never trained on
    # them: the effect is measured on the others, which the bank's plan picked at random,
    # rather than declared unmeasurable (they are not examples the model could not score).
    from attacks.signals import OUT

    report = audit(models, "ascent", original=models / "original.safetensors", shadows=4, bank=tmp_path / "bank")
    effect = next(c for c in report.checks if c.name == "unlearning-effect")
    assert 0 < effect.details["n_forget"] < 50, effect.details
    assert "could be measured on" not in effect.sentence and effect.score is not None, effect.sentence
    from audit_cli.auditing.inputs import prepare

    inputs = prepare(AuditConfig(model=models / "ascent.safetensors", forget=models / "forget.txt", shadows=4,
                                 original=models / "original.safetensors", bank=tmp_path / "bank", device="cpu",
                                 allow_underpowered=True))  # fmt: skip
    states = inputs.bank.load(4, logits=False).states[:, inputs.dataset.rows(inputs.forget)]
    observed = ((states != OUT).any(axis=0) & (states == OUT).any(axis=0)).sum()
    assert effect.details["n_forget"] == observed
