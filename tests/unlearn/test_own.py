"""Your own model, your own code: models the tool did not train (bare state dicts, objects
in memory), their shadows trained by the user's trainer and unlearned by the user's
unlearner (method ``own``), recipe files, and the refusals that replace invented recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from audit_cli.data import write_id_file
from audit_cli.errors import IdFileError, UsageError
from audit_cli.families import family_of
from audit_cli.families.user_code import TrainerRecipe, UserCode
from audit_cli.models.recipe import Recipe
from audit_cli.shadows import BankSpec, ForgetRule
from audit_cli.unlearn import METHODS, UnlearnTask, get_method, parse_params, resolve_unlearning
from tests.helpers import assert_error

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MODEL = ROOT / "sample_models" / "digits_mlp_original.safetensors"
SAMPLE_FORGET = ROOT / "sample_models" / "forget_random10.txt"


def tiny(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_classes))


def tiny_train(dataset, train_ids, seeds):
    """A trainer in the protocol: least squares on one-hot labels (fast and deterministic)."""
    models = []
    for ids, seed in zip(train_ids, seeds, strict=True):
        torch.manual_seed(seed)
        rows = dataset.rows(ids)
        x = torch.from_numpy(dataset.x[rows].reshape(len(rows), -1))
        y = nn.functional.one_hot(torch.from_numpy(dataset.y[rows]), dataset.num_classes).float()
        model = tiny(dataset.input_shape, dataset.num_classes)
        solution = torch.linalg.lstsq(torch.cat([x, torch.ones(len(x), 1)], 1), 8 * y).solution
        with torch.no_grad():
            model[1].weight.copy_(solution[:-1].T)
            model[1].bias.copy_(solution[-1])
        models.append(model)
    return models


CALLS = []


def recording_unlearner(dataset, model, forget_ids, retain_ids, seed):
    CALLS.append((len(forget_ids), len(retain_ids), seed))
    return model


def test_the_user_family_trains_queries_and_unlearns_with_the_users_code(digits):
    family = family_of(TrainerRecipe(tiny_train, recording_unlearner))
    assert isinstance(family, UserCode)
    ids = [digits.train_ids[:300], digits.train_ids[200:500]]
    models = family.fit(digits, None, ids, [0, 1], "cpu")
    logits = family.logits(models, digits, None)
    assert logits.shape == (1, 2, len(digits.ids), 10)
    accuracy = (logits[0, 0].argmax(-1) == digits.y).mean()
    assert accuracy > 0.8  # the user's models are real models
    retrain = get_method("retrain")
    task = UnlearnTask(digits, [ids[0][:20], ids[1][:20]], [ids[0][20:], ids[1][20:]], None, [5, 6])
    refit = family.unlearn(models, task, retrain, parse_params(retrain, {}), "cpu")
    expected = family.logits(family.fit(digits, None, task.retain_ids, [5, 6], "cpu"), digits, None)
    np.testing.assert_allclose(family.logits(refit, digits, None), expected)  # exact: the trainer on retain
    CALLS.clear()
    own = METHODS["own"]
    family.unlearn(models, task, own, parse_params(own, {}), "cpu")
    assert CALLS == [(20, 280, 5), (20, 280, 6)]  # the user's unlearner, model by model, with its seed


def test_the_user_family_refuses_what_it_cannot_replay():
    family = family_of(TrainerRecipe(tiny_train))
    with pytest.raises(UsageError, match="updates the weights of the tool's own networks"):
        family.check_method(get_method("neggrad"), None)
    with pytest.raises(UsageError, match="no --unlearner was given"):
        family.check_method(METHODS["own"], None)
    family.check_method(get_method("retrain"), None)
    family.check_method(get_method("mpru"), None)  # a filter works on any model's outputs
    with pytest.raises(UsageError, match="shadows your own code trains"):
        family_of(Recipe()).check_method(METHODS["own"], None)


def test_the_bank_key_follows_the_users_code(digits):
    rule = ForgetRule(forget_ids=(1, 2, 3), negatives=tuple(int(i) for i in digits.test_ids[:12]))
    own = resolve_unlearning(METHODS["own"], {}, "none", digits)

    def key(recipe):
        return BankSpec(digits, recipe, own, rule).key()

    assert key(TrainerRecipe(tiny_train, recording_unlearner)) == key(TrainerRecipe(tiny_train, recording_unlearner))
    assert key(TrainerRecipe(tiny_train, recording_unlearner)) != key(TrainerRecipe(tiny_train, None))
    described = TrainerRecipe(tiny_train).key_dict()["trainer"]
    assert described["name"].endswith(":tiny_train") and len(described["source_sha256"]) == 64


@pytest.fixture(scope="module")
def bare(tmp_path_factory, digits):
    """A state dict saved by the user's own code: no metadata at all."""
    folder = tmp_path_factory.mktemp("bare")
    (model,) = tiny_train(digits, [digits.train_ids], [0])
    torch.save(model.state_dict(), folder / "bare.pt")
    forget = np.random.default_rng(0).choice(digits.train_ids, 135, replace=False)
    write_id_file(folder / "forget.txt", forget)
    return folder


def test_a_bare_checkpoint_is_refused_with_the_flags_to_add(runner, bare):
    result = runner.invoke(__import__("audit_cli.app", fromlist=["app"]).app,
                           ["run", "--model", str(bare / "bare.pt"), "--forget", str(bare / "forget.txt")])  # fmt: skip
    assert_error(result, r"does not say how it was trained")
    assert "--data" in result.stderr and "--arch" in result.stderr and "--trainer" in result.stderr


def test_unlearning_a_bare_checkpoint_never_invents_a_recipe(runner, bare, tmp_path):
    from audit_cli.app import app

    out = tmp_path / "u.safetensors"
    args = ["unlearn", "--model", str(bare / "bare.pt"), "--arch", "mlp", "--data", "digits", "--method", "finetune",
            "--forget", str(bare / "forget.txt"), "-o", str(out)]  # fmt: skip
    assert_error(runner.invoke(app, args), r"does not say how it was trained")
    assert not out.exists()
    assert_error(runner.invoke(app, ["unlearn", *args[1:9], "--method", "own", "--forget", str(bare / "forget.txt"),
                                     "-o", str(out)]), "your own unlearning code")  # fmt: skip
    # A recipe given is recorded and trains the audit's shadows: checked against the data now.
    recipe = tmp_path / "r.toml"
    recipe.write_text('format = 1\narch = "mlp"\naugmentation = "flip"\n')
    assert_error(runner.invoke(app, [*args, "--recipe", str(recipe)]), r"augmentation 'flip' needs image data")
    assert not out.exists()


def test_a_recipe_file_is_versioned_and_checked(tmp_path):
    from audit_cli.models.recipe import read_recipe_file

    path = tmp_path / "r.toml"
    path.write_text('format = 1\narch = "mlp"\nlr = 0.01\nepochs = 3\n[arch_args]\nhidden = [32]\n')
    recipe = read_recipe_file(path)
    assert recipe.arch == "mlp" and recipe.arch_args["hidden"] == (32,) and recipe.epochs == 3
    path.write_text('arch = "mlp"\n')
    with pytest.raises(UsageError, match="format None is not 1"):
        read_recipe_file(path)
    path.write_text('format = 1\narch = "mlp"\nlearning_rate = 0.1\n')
    with pytest.raises(UsageError, match="unknown field 'learning_rate'"):
        read_recipe_file(path)
    path.write_text('format = 1\narch = "mlp"\nmomentum = 0.5\n')  # adam, the default optimizer, takes none
    with pytest.raises(UsageError, match="momentum is sgd's; optimizer adam takes none"):
        read_recipe_file(path)
    path.write_text('format = 1\narch = "mlp"\noptimizer = "sgd"\nmomentum = 0.5\n')
    assert read_recipe_file(path).momentum == 0.5
    path.write_text('format = 1\narch = "mlp"\nmomentum = 0.9\n')  # adam's unused default, as checkpoints record it
    assert read_recipe_file(path).momentum == 0.9


def test_a_bare_checkpoint_with_a_recipe_file_is_audited_and_the_report_says_who_said_so(runner, bare, tmp_path):
    from audit_cli.app import app

    recipe = tmp_path / "r.toml"
    recipe.write_text('format = 1\narch = "mlp"\nepochs = 2\nbatch_size = 128\n[arch_args]\nhidden = [16]\n')
    torch.save(__import__("audit_cli.models.networks", fromlist=["build_model"]).build_model(
        "mlp", (64,), 10, {"hidden": (16,)}).state_dict(), tmp_path / "mlp.pt")  # fmt: skip
    result = runner.invoke(app, ["run", "--model", str(tmp_path / "mlp.pt"), "--data", "digits", "--recipe",
                                 str(recipe), "--forget", str(bare / "forget.txt"), "--shadows", "4",
                                 "--allow-underpowered", "--bank", str(tmp_path / "bank"), "-q",
                                 "-f", f"json={tmp_path / 'r.json'}"])  # fmt: skip
    assert result.exit_code in (0, 1, 3), result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["model"]["kind"] == "imported" and report["model"]["recipe_source"] == f"recipe file {recipe}"
    assert report["model"]["recipe"]["arch_args"] == {"hidden": [16]} and report["mode"] == "lira"


def test_the_api_audits_objects_in_memory_like_the_command_line(digits, tmp_path):
    from audit_cli import audit

    (model,) = tiny_train(digits, [digits.train_ids], [0])
    forget = np.random.default_rng(0).choice(digits.train_ids, 135, replace=False)
    report = audit(model, data=digits, forget=forget, trainer=tiny_train, shadows=8, allow_underpowered=True,
                   bank=str(tmp_path / "bank"), fail_above=0.2)  # fmt: skip
    assert report.model.kind == "imported" and report.model.recipe_source.startswith("trainer ")
    assert report.mode == "lira" and report.forget.n == 135 and report.forget.path is None
    assert report.config["shadows"] == {"value": 8, "source": "argument"}
    assert json.loads(report.to_json())["forget"]["n"] == 135
    assert report._repr_html_().startswith("<p><b>") and "leakage" in report._repr_html_()
    again = audit(model, data=digits, forget=list(forget), trainer=tiny_train, shadows=8, allow_underpowered=True,
                  bank=str(tmp_path / "bank"), fail_above=0.2)  # fmt: skip
    assert again.shadows.trained_now == 0 and again.checks == report.checks  # the same bank, the same result
    with pytest.raises(IdFileError, match="must be integers"):
        audit(model, data=digits, forget=[1.5, 2.0], trainer=tiny_train, bank=str(tmp_path / "bank"))
    with pytest.raises(UsageError, match="unknown setting 'fail_abov'"):
        audit(model, data=digits, forget=forget, trainer=tiny_train, fail_abov=0.2)


@pytest.mark.slow
def test_the_example_own_loop_is_audited_with_shadows_from_that_loop(tmp_path):
    """examples/own_loop.py end to end at small sizes: its exact retrain does not fail and
    its no-ops do not pass, through the command line and through the API."""
    import sys

    sys.path.insert(0, str(ROOT))
    from examples.own_loop import run_example

    codes = run_example(tmp_path, shadows=16, forget_size=60, threshold=0.3)
    assert codes["exact retrain (CLI)"] != 1 and codes["exact retrain (API)"] != 1
    assert all(codes[k] != 0 for k in codes if "passed off" in k or "no-op" in k), codes


def test_weights_saved_through_a_wrapper_name_the_prefix_to_strip(runner, bare, tmp_path):
    from audit_cli.app import app
    from audit_cli.models.networks import build_model

    recipe = tmp_path / "r.toml"
    recipe.write_text('format = 1\narch = "mlp"\nepochs = 2\nbatch_size = 128\n[arch_args]\nhidden = [16]\n')
    weights = build_model("mlp", (64,), 10, {"hidden": (16,)}).state_dict()
    torch.save({f"module.{k}": v for k, v in weights.items()}, tmp_path / "ddp.pt")  # as DataParallel saves
    args = ["run", "--model", str(tmp_path / "ddp.pt"), "--data", "digits", "--recipe", str(recipe), "--forget",
            str(bare / "forget.txt"), "--shadows", "4", "--allow-underpowered", "--bank", str(tmp_path / "bank"),
            "-q"]  # fmt: skip
    assert_error(runner.invoke(app, args), r"weights do not fit .* missing 1.weight", hint=r"--strip-prefix module\.")
    result = runner.invoke(app, [*args, "--strip-prefix", "module."])
    assert result.exit_code in (0, 1, 3), result.output
    assert_error(runner.invoke(app, [*args, "--strip-prefix", "model."]), r"does not start with it")


def test_a_bank_exported_and_imported_scores_the_same_and_says_where_it_came_from(runner, digits, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from audit_cli import audit
    from audit_cli.app import app

    (model,) = tiny_train(digits, [digits.train_ids], [0])
    forget = np.random.default_rng(1).choice(digits.train_ids, 135, replace=False)
    kwargs = dict(data=digits, forget=forget, shadows=16, allow_underpowered=True, fail_above=0.2)  # one chunk
    built = audit(model, trainer=tiny_train, bank=str(tmp_path / "bank"), **kwargs)
    long = tmp_path / "long.parquet"
    assert runner.invoke(app, ["bank", "export", str(tmp_path / "bank"), "-o", str(long)]).exit_code == 0
    result = runner.invoke(app, ["bank", "import", str(long), "--data", "digits", "--bank", str(tmp_path / "imp"),
                                 "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = Path(json.loads(result.stdout)["path"])
    scored = audit(model, trainer=tiny_train, shadows_from=folder, **kwargs)
    leak = [next(c for c in r.checks if c.name == "leakage") for r in (built, scored)]
    assert leak[0].score == leak[1].score and leak[0].low == leak[1].low  # the same signals, the same verdict
    assert scored.shadows.source.startswith(f"imported from {long}") and built.shadows.source == "built by this tool"
    assert scored.shadows.trained_now == 0 and scored.shadows.n == 16

    table = pq.read_table(long)

    def refused(changed: pa.Table, pattern: str, suffix=".parquet") -> None:
        path = tmp_path / f"bad{suffix}"
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(changed, path)
        else:
            pq.write_table(changed, path)
        assert_error(runner.invoke(app, ["bank", "import", str(path), "--data", "digits", "--bank",
                                         str(tmp_path / "imp")]), pattern)  # fmt: skip

    refused(table.slice(1), r"rows for 16 shadows")
    duplicated = pa.concat_tables([table.slice(1), table.slice(1, 1)])  # one row twice, another missing
    refused(duplicated.replace_schema_metadata(table.schema.metadata), r"holds example \d+ (0|2) times")
    reordered = pa.concat_tables([table.slice(1), table.slice(0, 1)])  # order does not matter
    assert runner.invoke(app, ["bank", "import", "-", "--data", "digits"]).exit_code == 2
    pq.write_table(reordered, tmp_path / "reordered.parquet")
    assert runner.invoke(app, ["bank", "import", str(tmp_path / "reordered.parquet"), "--data", "digits",
                               "--bank", str(tmp_path / "imp3")]).exit_code == 0  # fmt: skip
    twice = table.slice(0, len(table) - 1).append_column("x", pa.array(np.zeros(len(table) - 1)))
    refused(twice, r"rows for 16 shadows")
    states = table["state"].to_pylist()
    refused(table.set_column(table.column_names.index("state"), "state", pa.array(["maybe"] + states[1:])),
            r"unknown state 'maybe'")
    refused(table.replace_schema_metadata({b"unlearning_audit_dataset_fingerprint": b"0" * 64}), r"another dataset")
    halves = table["shadow"].to_numpy().astype(np.float64)
    halves[5] = 0.5  # truncated to shadow 0 once
    refused(table.set_column(table.column_names.index("shadow"), "shadow", pa.array(halves)),
            r"column 'shadow' holds values that are not whole numbers", suffix=".csv")
    refused(table.drop_columns(["phi_after"]), r"missing column 'phi_after'", suffix=".csv")
    phi = table["phi_before"].to_numpy().copy()
    phi[3] = np.inf
    refused(table.set_column(table.column_names.index("phi_before"), "phi_before", pa.array(phi)), "infinite")
    # Shadows that trained on the forget ids far more often than on the test ids: refused at run time.
    rows = set(digits.rows(forget).tolist())
    row_of = digits.rows(table["example_id"].to_numpy())
    biased = ["in" if r in rows else s for r, s in zip(row_of, states, strict=True)]
    path = tmp_path / "biased.parquet"
    pq.write_table(table.set_column(table.column_names.index("state"), "state", pa.array(biased)), path)
    folder = Path(json.loads(runner.invoke(app, ["bank", "import", str(path), "--data", "digits", "--bank",
                                                 str(tmp_path / "imp2"), "--format", "json"]).stdout)["path"])  # fmt: skip
    with pytest.raises(__import__("audit_cli.errors", fromlist=["InputError"]).InputError, match="treated alike"):
        audit(model, trainer=tiny_train, shadows_from=folder, **kwargs)


def test_data_and_models_from_torch_and_scikit_learn_objects(digits, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from torch.utils.data import TensorDataset

    from audit_cli import audit, dataset_from_arrays, dataset_from_torch

    train_rows, test_rows = digits.rows(digits.train_ids), digits.rows(digits.test_ids)
    as_torch = dataset_from_torch(
        TensorDataset(torch.from_numpy(digits.x[train_rows]), torch.from_numpy(digits.y[train_rows])),
        TensorDataset(torch.from_numpy(digits.x[test_rows]), torch.from_numpy(digits.y[test_rows])),
    )
    assert len(as_torch.train_ids) == 1347 and len(as_torch.test_ids) == 450
    arrays = dataset_from_arrays(torch.from_numpy(digits.x), digits.y, digits.is_train, ids=digits.ids)
    assert arrays.fingerprint == dataset_from_arrays(digits.x, digits.y, digits.is_train, ids=digits.ids).fingerprint

    def fit_logistic(dataset, train_ids, seeds):
        rows = [dataset.rows(ids) for ids in train_ids]
        return [LogisticRegression(max_iter=200, random_state=s).fit(dataset.x[r], dataset.y[r])
                for r, s in zip(rows, seeds, strict=True)]  # fmt: skip

    (model,) = fit_logistic(arrays, [arrays.train_ids], [0])
    forget = arrays.train_ids[:135]
    report = audit(model, data=arrays, forget=forget, trainer=fit_logistic, shadows=16, allow_underpowered=True,
                   bank=str(tmp_path / "bank"), fail_above=0.2)  # fmt: skip
    assert report.mode == "lira" and report.model.kind == "imported"
    assert report.dataset.fingerprint == arrays.fingerprint


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"forget_class": True}, "forget_class: expected a whole number"),
        ({"forget_class": "3"}, "forget_class: expected a whole number"),
        ({"forget_class": 3.5}, "forget_class: expected a whole number"),
        ({"forget_class": [3]}, "forget_class: expected a whole number"),
        ({"forget_clients": 5}, "forget_clients must be a sequence"),
        ({"forget_clients": [1.7]}, "forget_clients: expected a whole number"),
        ({"params": "lr=1"}, "params must be a mapping"),
        ({"data_options": [1, 2]}, "data_options must be a mapping"),
        ({"data": 123}, "data must be a dataset name"),
        ({"recipe": 123}, "recipe must be a path"),
        ({"shadows_from": 123}, "shadows_from must be a path"),
        ({"progress": "x"}, "progress must be a callable"),
    ],
)
def test_api_arguments_of_the_wrong_kind_are_usage_errors_before_any_work(tmp_path, kwargs, match):
    from audit_cli import audit

    with pytest.raises(UsageError, match=match):
        audit(SAMPLE_MODEL, forget=None if "forget_class" in kwargs else SAMPLE_FORGET, bank=tmp_path / "bank",
              **kwargs)  # fmt: skip
    assert not (tmp_path / "bank").exists()


def test_api_takes_numpy_integers_where_it_takes_ints(tmp_path):
    import audit_cli.api as api
    from audit_cli.auditing.inputs import prepare

    seen = {}
    real = api.run_audit
    api.run_audit = lambda config, progress=None: seen.setdefault("config", config)
    try:
        api.audit(SAMPLE_MODEL, forget_class=np.int64(3), bank=tmp_path / "bank", seed=np.int64(1),
                  fail_above=np.float64(0.2))  # fmt: skip
    finally:
        api.run_audit = real
    config = seen["config"]
    assert config.forget_class == 3 and type(config.forget_class) is int and config.seed == 1
    assert prepare(config).config.forget_class == 3


def test_dataset_from_arrays_refuses_labels_it_cannot_use():
    from audit_cli import dataset_from_arrays
    from audit_cli.errors import DatasetError

    x, train = np.zeros((4, 2)), np.array([True, True, False, False])
    for y in (np.zeros(0, dtype=int), np.array(["a", "b", "a", "b"])):
        with pytest.raises(DatasetError, match="labels must be a non-empty array of integers"):
            dataset_from_arrays(x[: len(y)], y, train[: len(y)])
