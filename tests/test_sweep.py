"""``audit sweep``: the grid, every point unlearned and audited, the chosen point audited
again on a fresh seed, the JSON and HTML it writes, and what it refuses before any work."""

from __future__ import annotations

import json

import pytest

from audit_cli.auditing.sweep import MAX_POINTS, grid_points, parse_grid
from audit_cli.data import load_dataset, write_id_file
from audit_cli.errors import UsageError
from tests.helpers import assert_error, assert_ok, invoke

pytestmark = pytest.mark.usefixtures("one_thread")
OPTIONS = ("--data-opt", "n_samples=300", "--data-opt", "n_features=6")


def test_the_grid_is_the_product_of_the_swept_values_with_the_fixed_ones():
    grid, fixed = parse_grid({"lr": "1e-3, 1e-2", "epochs": "1,2,3", "alpha": "0.9"})
    assert grid == {"lr": ["1e-3", "1e-2"], "epochs": ["1", "2", "3"]} and fixed == {"alpha": "0.9"}
    points = grid_points("neggrad+", grid, fixed)
    assert len(points) == 6 and points[0] == {"alpha": "0.9", "lr": "1e-3", "epochs": "1"}
    assert {(p["lr"], p["epochs"]) for p in points} == {(a, b) for a in ("1e-3", "1e-2") for b in ("1", "2", "3")}
    # A parameter inert at some points acts at the others: sgd takes the momentum adam ignores.
    assert len(grid_points("finetune", *parse_grid({"optimizer": "sgd,adam", "momentum": "0.5"}))) == 2


@pytest.mark.parametrize(
    "method, pairs, message",
    [
        ("neggrad", {"lr": "1e-3"}, "nothing to sweep"),
        ("neggrad", {"lr": "1e-3,,1e-2"}, "an empty value"),
        ("neggrad", {"lr": "1e-3,1e-3"}, "a value given twice"),
        ("neggrad", {"learning_rate": "1,2"}, "has no parameter 'learning_rate'"),
        ("neggrad", {"lr": "1e-3,-1"}, "lr must be a positive"),
        ("mpru", {"l2": "1,2"}, "does not"),
        ("finetune", {"optimizer": "adam,adamw", "momentum": "0.5"}, "momentum does nothing with optimizer adam"),
        ("neggrad", {"lr": ",".join(str(i + 1) for i in range(MAX_POINTS + 1))}, f"at most {MAX_POINTS}"),
    ],
)
def test_a_bad_grid_is_refused_before_any_work(method, pairs, message):
    with pytest.raises(UsageError, match=message):
        grid, fixed = parse_grid(pairs)
        grid_points(method, grid, fixed)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, runner):
    root = tmp_path_factory.mktemp("sweep")
    model = root / "original.safetensors"
    common = ("--data", "synthetic", *OPTIONS, "--arch-arg", "hidden=32", "--epochs", "20", "-q")
    assert_ok(invoke(runner, "train", *common, "--out", model))
    data = load_dataset("synthetic", {"n_samples": "300", "n_features": "6"})
    forget = root / "forget.txt"
    write_id_file(forget, data.train_ids[::5])
    retrained = root / "retrained.safetensors"
    assert_ok(invoke(runner, "train", *common, "--out", retrained, "--exclude", forget))
    return root, model, forget, retrained


def test_sweep_audits_every_point_and_re_audits_the_chosen_one_on_a_fresh_seed(runner, trained):
    root, model, forget, retrained = trained
    out = root / "sweep"
    args = ("sweep", "--model", model, "--forget", forget, "--retrained", retrained, "--method", "neggrad",
            "--param", "lr=1e-4,0.5", "--param", "epochs=2", "--shadows", "8", "--bank", root / "bank",
            "--allow-underpowered", "-o", out, "--format", "json")  # fmt: skip
    result = invoke(runner, *args)
    doc = json.loads(result.stdout)
    assert result.exit_code == doc["exit_code"] == doc["fresh"]["exit_code"]
    assert [p["params"]["lr"] for p in doc["points"]] == [1e-4, 0.5]
    assert all(p["params"]["epochs"] == 2 for p in doc["points"])
    assert doc["criterion"] == "average gap"
    gaps = [p["average_gap"] for p in doc["points"]]
    assert doc["chosen"] == gaps.index(min(gaps))
    fresh = doc["fresh"]
    assert fresh["params"] == doc["points"][doc["chosen"]]["params"] and fresh["seed"] != doc["points"][0]["seed"]
    # Ascent at lr 0.5 wrecks the model: lower accuracy, further from the retrained model.
    small, large = doc["points"]
    assert large["retain_accuracy"] < small["retain_accuracy"] and large["detrimental_ratio"] > 1
    assert all(p["klom"] is not None and p["klom"] >= 0 for p in doc["points"])  # a declared method: KLoM applies
    for p in (*doc["points"], fresh):
        assert p["leakage_low"] <= p["leakage"] <= p["leakage_high"] and p["verdict"] in (
            "pass",
            "fail",
            "inconclusive",
        )
    assert json.loads((out / "sweep.json").read_text()) == doc
    names = sorted(f.name for f in out.iterdir())
    assert names == ["point-00.json", "point-00.safetensors", "point-01.json", "point-01.safetensors",
                     "point-fresh.json", "point-fresh.safetensors", "sweep.html", "sweep.json"]  # fmt: skip
    html = (out / "sweep.html").read_text()
    assert "data:image/png;base64," in html and "chosen, fresh seed" in html and "lr=0.5" in html
    # The folder now holds a sweep: another one is refused before any work.
    again = invoke(runner, *args)
    assert_error(again, "is not empty", hint="--overwrite")


def test_sweep_refuses_a_bad_grid_without_touching_the_output(runner, trained, tmp_path):
    root, model, forget, _ = trained
    out = tmp_path / "sweep"
    result = invoke(runner, "sweep", "--model", model, "--forget", forget, "--method", "neggrad", "--param",
                    "lr=1e-4,oops", "-o", out)  # fmt: skip
    assert_error(result, "lr")
    assert not out.exists()
    (tmp_path / "a-file").write_text("")
    for flags, message in ((("--seed", "-1"), r"setting seed = -1 \(flag\) is outside"), (("--shadows", "200000"), "2..100000"),
                           (("--fail-above", "2", "--allow-underpowered"), "must lie in \\[0, 1\\)"),
                           (("--bank", tmp_path / "a-file", "--allow-underpowered"), "a-file"),
                           (("--retrained", model, "--allow-underpowered"), "an original that left out nothing")):  # fmt: skip
        result = invoke(runner, "sweep", "--model", model, "--forget", forget, "--method", "neggrad", "--param",
                        "lr=1e-4,1e-3", "-o", out, *flags)  # fmt: skip
        assert_error(result, message)
        assert not out.exists()


def test_an_underpowered_sweep_is_refused_before_any_point_is_unlearned(runner, trained, tmp_path):
    root, model, forget, retrained = trained
    out = tmp_path / "sweep"
    result = invoke(runner, "sweep", "--model", model, "--forget", forget, "--method", "neggrad", "--param",
                    "lr=1e-4,1e-3", "--shadows", "8", "--bank", tmp_path / "bank", "-o", out)  # fmt: skip
    assert result.exit_code == 3 and "would have no shadow that unlearned them" in result.stderr, result.stderr
    assert not out.exists() and not (tmp_path / "bank").exists()


def test_reused_shadows_are_trained_once_and_give_the_audit_a_fresh_bank_gives(runner, trained, tmp_path):
    from audit_cli.auditing.pipeline import run_audit
    from audit_cli.auditing.request import AuditConfig

    root, model, forget, retrained = trained
    out = tmp_path / "sweep"
    result = invoke(runner, "sweep", "--model", model, "--forget", forget, "--retrained", retrained, "--method",
                    "neggrad+", "--param", "lr=1e-3,0.05", "--param", "epochs=2", "--shadows", "8", "--bank",
                    tmp_path / "bank", "--allow-underpowered", "-o", out, "--format", "json")  # fmt: skip
    doc = json.loads(result.stdout)
    # The second point's shadows came from memory; its audit must equal one on a fresh bank.
    alone = run_audit(AuditConfig(model=out / "point-01.safetensors", forget=forget, original=model,
                                  retrained=retrained, shadows=8, bank=tmp_path / "fresh-bank", device="cpu",
                                  allow_underpowered=True))  # fmt: skip
    leak = next(c for c in alone.checks if c.name == "leakage")
    assert doc["points"][1]["leakage"] == pytest.approx(leak.score, abs=1e-12)
    assert doc["points"][1]["average_gap"] == pytest.approx(
        next(c.score for c in alone.checks if c.name == "average gap"), abs=1e-12
    )


def test_fitted_trains_once_inside_the_block_and_always_outside():
    import numpy as np

    from audit_cli.models.recipe import Recipe
    from audit_cli.shadows.reuse import fitted, reuse_fitted_shadows
    from audit_cli.training.loop import train_models

    data = load_dataset("synthetic", {"n_samples": "120", "n_features": "4"})
    recipe = Recipe(arch="logreg", epochs=1)
    subsets = [data.train_ids[:40]]
    calls = []

    def fit(seeds=(1,)):
        calls.append(seeds)
        return train_models(data, recipe, subsets, list(seeds))

    fitted(fit, data, recipe, subsets, [1], "cpu")
    fitted(fit, data, recipe, subsets, [1], "cpu")
    assert len(calls) == 2  # outside the block: nothing kept
    with reuse_fitted_shadows():
        first = fitted(fit, data, recipe, subsets, [1], "cpu")
        again = fitted(fit, data, recipe, subsets, [1], "cpu")
        other = fitted(lambda: fit((2,)), data, recipe, subsets, [2], "cpu")
        assert again is first and other is not first and len(calls) == 4
        assert fitted(fit, data, recipe, [np.sort(data.train_ids[1:41])], [1], "cpu") is not first
    fitted(fit, data, recipe, subsets, [1], "cpu")
    assert len(calls) == 6  # freed at the end of the block


def test_every_point_is_audited_with_the_settings_audit_run_resolves(runner, tmp_path, monkeypatch):
    # The settings sweep has no flag for (residual_above, gate...) come from AUDIT_* and
    # audit.toml as for audit run, and reach every point's AuditConfig.
    import audit_cli.cli.sweep as cli_sweep
    from audit_cli.auditing.sweep import SweepRequest, audit_config

    seen: list[SweepRequest] = []

    def fake_sweep(request, progress=None, notice=None):
        seen.append(request)
        raise UsageError("stopped by the test")

    monkeypatch.setattr(cli_sweep, "sweep", fake_sweep)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "audit.toml").write_text('gate = "evidence"\nvariance = "global"\n')
    monkeypatch.setenv("AUDIT_RESIDUAL_ABOVE", "0.2")
    result = invoke(runner, "sweep", "--model", "m.safetensors", "--method", "neggrad", "--param", "lr=1e-4,1e-3",
                    "--forget", "f.txt", "-o", tmp_path / "out", "--fail-above", "0.25")  # fmt: skip
    assert_error(result, "stopped by the test")
    (request,) = seen
    assert request.fail_above == 0.25 and "fail_above" not in request.audit_settings
    assert request.audit_settings["residual_above"] == 0.2
    assert request.audit_settings["gate"] == "evidence" and request.audit_settings["variance"] == "global"
    config = audit_config(request, tmp_path / "point.safetensors", 7)
    assert (config.residual_above, config.gate, config.variance, config.fail_above, config.seed) == (
        0.2, "evidence", "global", 0.25, 7)  # fmt: skip
