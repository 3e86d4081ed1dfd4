"""The shadow bank: plans, states, signals, resume, top-up, and crash recovery."""

import json
from dataclasses import replace

import numpy as np
import pytest

from attacks.lira import IN, OUT, UNLEARNED, leave_one_out
from audit_cli.data import load_dataset
from audit_cli.errors import InputError, UsageError
from audit_cli.models.recipe import Recipe
from audit_cli.shadows import BankSpec, ForgetRule, ShadowBank, plan_shadow
from audit_cli.unlearn import get_method, resolve_unlearning

RECIPE = Recipe(arch="mlp", arch_args={"hidden": (64,)}, epochs=60, lr=0.01, batch_size=32)


@pytest.fixture(scope="module")
def data():
    # Noisy labels so the small MLP memorises: membership signal to see.
    return load_dataset("synthetic", {"n_samples": "240", "n_features": "8", "n_classes": "3", "flip_y": "0.2"})


@pytest.fixture(scope="module")
def forget(data):
    return tuple(int(i) for i in np.random.default_rng(0).choice(data.train_ids, 20, replace=False))


def finetune(data, epochs="1"):
    """The resolved unlearning shadows replay: finetune for ``epochs`` (None: its default)."""
    return resolve_unlearning(get_method("finetune"), {} if epochs is None else {"epochs": epochs}, "none", data)


def spec_for(data, forget, **kw):
    rule = ForgetRule(forget_ids=forget, negatives=tuple(int(i) for i in data.test_ids))
    return BankSpec(data, RECIPE, finetune(data), rule, **kw)


def test_plans_follow_the_audited_forget_rule(data, forget):
    spec = spec_for(data, forget)
    candidates = np.union1d(forget, data.test_ids)
    for k in range(4):
        plan = plan_shadow(spec, k)
        # As many training examples as the audited model (the training split by default).
        assert len(plan.trained) == len(data.train_ids)
        assert len(plan.forget) == len(forget) and np.isin(plan.forget, plan.trained).all()
        # Forgotten at one rate among the scored candidates it trained on, test ids too.
        assert np.isin(plan.forget, candidates).all()
        assert np.isin(plan.forget, data.test_ids).any()
        assert np.array_equal(plan.trained, plan_shadow(spec, k).trained)  # a function of (seed, k)
    assert not np.array_equal(plan_shadow(spec, 0).trained, plan_shadow(spec, 1).trained)
    assert len(plan_shadow(spec_for(data, forget, train_size=100), 0).trained) == 100
    with pytest.raises(UsageError, match="leave some out"):
        plan_shadow(spec_for(data, forget, train_size=len(data.ids)), 0)
    class_spec = BankSpec(data, RECIPE, finetune(data, None), ForgetRule(forget_class=1))
    plan = plan_shadow(class_spec, 0)
    assert (data.y[data.rows(plan.forget)] == 1).all()
    assert len(plan.forget) == (data.y[data.rows(plan.trained)] == 1).sum()


def test_forget_and_test_examples_are_unlearned_equally_often(data, forget):
    """The fairness U-LiRA needs under the null: a scored example's states do not depend on
    which side of the game it is on (the old rule left test examples UNLEARNED ~2 in 64)."""
    spec = spec_for(data, forget)
    states = np.zeros((64, len(data.ids)), dtype=np.int8)
    for k in range(64):
        plan = plan_shadow(spec, k)
        states[k, data.rows(plan.trained)] = IN
        states[k, data.rows(plan.forget)] = UNLEARNED
    f, t = data.rows(np.array(forget)), data.rows(data.test_ids)
    for state in (UNLEARNED, OUT):
        per_f, per_t = (states[:, f] == state).sum(0).mean(), (states[:, t] == state).sum(0).mean()
        assert abs(per_f - per_t) < 0.15 * per_t, (state, per_f, per_t)
    # |F| / |F + T| of the shadows unlearn each candidate; 1 - n_train / n_pool never saw it.
    rate = len(forget) / len(np.union1d(forget, data.test_ids))
    assert abs((states[:, t] == UNLEARNED).mean() - rate) < 0.03
    assert abs((states[:, t] == OUT).mean() - (1 - len(data.train_ids) / len(data.ids))) < 0.03


def test_key_changes_with_anything_that_changes_the_shadows(data, forget):
    base = spec_for(data, forget).key()
    assert spec_for(data, forget).key() == base
    assert spec_for(data, forget, seed=1).key() != base
    assert spec_for(data, forget, train_size=100).key() != base
    augmented = replace(finetune(data), augmentation="crop+flip")
    rule = ForgetRule(forget_ids=forget, negatives=tuple(int(i) for i in data.test_ids))
    assert BankSpec(data, RECIPE, augmented, rule).key() != base
    # The resolved unlearning is hashed under the keys banks of format 3 always had.
    assert {k: spec_for(data, forget).to_dict()[k] for k in ("method", "augmentation")} == {
        "method": "finetune", "augmentation": "none"
    }  # fmt: skip
    assert spec_for(data, forget).to_dict()["method_params"]["epochs"] == 1
    rule = ForgetRule(forget_ids=forget, negatives=tuple(int(i) for i in data.test_ids[:-1]))
    assert BankSpec(data, RECIPE, finetune(data), rule).key() != base
    rule = ForgetRule(forget_ids=forget, negatives=tuple(int(i) for i in data.test_ids))
    assert BankSpec(data, RECIPE, finetune(data, "2"), rule).key() != base
    assert BankSpec(data, RECIPE.replace(epochs=61), finetune(data), rule).key() != base
    # The audited model's own seed does not shape the shadows.
    assert BankSpec(data, RECIPE.replace(seed=7), finetune(data), rule).key() == base
    assert spec_for(data, forget[:-1]).key() != base


def test_build_reuse_top_up_and_signals(tmp_path, data, forget):
    bank = ShadowBank(tmp_path, spec_for(data, forget), chunk_size=2)
    assert bank.build(4) == 4
    assert bank.build(4) == 0, "a rerun trains no shadow"
    signals = bank.load()
    n = len(data.ids)
    assert signals.states.shape == signals.phi_before.shape == signals.phi_after.shape == (4, n)
    assert signals.logits_after.shape == (4, n, 3)
    for k in range(4):
        plan = plan_shadow(bank.spec, k)
        states = signals.states[k]
        assert (states[data.rows(plan.forget)] == UNLEARNED).all()
        assert (states == IN).sum() == len(plan.trained) - len(plan.forget)
        assert (states == OUT).sum() == n - len(plan.trained)
    # Trained-on examples are more confident than unseen ones before unlearning.
    assert signals.phi_before[signals.states == IN].mean() > signals.phi_before[signals.states == OUT].mean() + 1
    # Unlearning changed the forgotten examples' signals.
    moved = signals.phi_after[signals.states == UNLEARNED] - signals.phi_before[signals.states == UNLEARNED]
    assert np.abs(moved).mean() > 1e-3
    assert bank.build(5) == 2, "top-up builds whole chunks"
    assert bank.load().n_shadows == 6 and bank.load(3).n_shadows == 3
    with pytest.raises(InputError, match="holds 6 complete shadows"):
        bank.load(7)


def test_an_interrupted_build_resumes_to_the_same_bank(tmp_path, data, forget):
    whole = ShadowBank(tmp_path / "a", spec_for(data, forget), chunk_size=2)
    whole.build(4)
    resumed = ShadowBank(tmp_path / "b", spec_for(data, forget), chunk_size=2)
    resumed.build(2)
    # A run killed while writing chunk 2: a stray temporary file, no manifest entry.
    (resumed.path / ".chunk-00002-00003.parquet.123.tmp").write_bytes(b"partial")
    assert resumed.complete_shadows() == 2
    assert resumed.build(4) == 2
    a, b = whole.load(), resumed.load()
    for name in ("states", "phi_before", "phi_after", "logits_after"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_a_chunk_listed_but_missing_is_rebuilt_and_a_foreign_manifest_refused(tmp_path, data, forget):
    bank = ShadowBank(tmp_path, spec_for(data, forget), chunk_size=2)
    bank.build(4)
    (bank.path / "chunk-00002-00003.parquet").unlink()
    assert bank.complete_shadows() == 2 and bank.build(4) == 2
    manifest = json.loads((bank.path / "manifest.json").read_text())
    manifest["key"] = "someone-else"
    (bank.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="belongs to bank"):
        bank.build(4)


@pytest.mark.slow
def test_lira_on_the_bank_sees_membership(tmp_path, data, forget):
    bank = ShadowBank(tmp_path, spec_for(data, forget), chunk_size=8)
    bank.build(16)
    signals = bank.load()
    states = np.where(signals.states == UNLEARNED, IN, signals.states)  # before unlearning all were IN
    reports = leave_one_out(signals.phi_before, states, targets=3, n_bootstrap=50)
    assert np.mean([r.auc.value for r in reports]) > 0.6


BUILD_SCRIPT = """
import sys
import numpy as np
from audit_cli.data import load_dataset
from audit_cli.shadows import BankSpec, ForgetRule, ShadowBank
from audit_cli.training.loop import Recipe
from audit_cli.unlearn import get_method, resolve_unlearning
data = load_dataset("synthetic", {"n_samples": "240", "n_features": "8", "n_classes": "3", "flip_y": "0.2"})
forget = tuple(int(i) for i in np.random.default_rng(0).choice(data.train_ids, 20, replace=False))
recipe = Recipe(arch="mlp", arch_args={"hidden": (64,)}, epochs=60, lr=0.01, batch_size=32)
finetune = resolve_unlearning(get_method("finetune"), {"epochs": "1"}, "none", data)
spec = BankSpec(data, recipe, finetune, ForgetRule(forget_ids=forget, negatives=tuple(int(i) for i in data.test_ids)))
ShadowBank(sys.argv[1], spec, chunk_size=2).build(int(sys.argv[2]))
"""


@pytest.mark.slow
def test_sigkill_midway_then_rerun_equals_an_uninterrupted_bank(tmp_path, data, forget):
    import os
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT, str(root), "40"])
    bank = ShadowBank(root, spec_for(data, forget), chunk_size=2)
    deadline = time.monotonic() + 120
    while bank.path.joinpath("manifest.json").exists() is False or bank.complete_shadows() < 2:
        assert proc.poll() is None, "the build finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = bank.complete_shadows()
    assert 2 <= done < 40
    bank.build(6)
    whole = ShadowBank(tmp_path / "whole", spec_for(data, forget), chunk_size=2)
    whole.build(6)
    a, b = whole.load(6), bank.load(6)
    for name in ("states", "phi_before", "phi_after", "logits_after"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_read_bank_export_and_cli_commands(tmp_path, data, forget):
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from audit_cli.app import app
    from audit_cli.shadows import export_long, read_bank

    bank = ShadowBank(tmp_path, spec_for(data, forget), chunk_size=2)
    bank.build(4)
    direct, loaded = read_bank(bank.path), bank.load()
    # Read chunk by chunk: the first shadows, or no logits, are the same numbers.
    first3, lean = bank.load(3), bank.load(logits=False)
    assert np.array_equal(first3.phi_after, direct.phi_after[:3]) and np.array_equal(first3.states, direct.states[:3])
    assert lean.logits_after is None and np.array_equal(lean.phi_before, direct.phi_before)
    with pytest.raises(InputError, match="holds 4 complete shadows, 5 requested"):
        bank.load(5)
    for name in ("states", "phi_before", "phi_after", "logits_after"):
        assert np.array_equal(getattr(direct, name), getattr(loaded, name)), name
    assert export_long(direct, tmp_path / "long.parquet") == 4 * len(data.ids)
    table = pq.read_table(tmp_path / "long.parquet").to_pydict()
    k = 2
    row = k * len(data.ids) + 5
    assert table["shadow"][row] == k and table["example_id"][row] == data.ids[5]
    assert table["state"][row] == ["out", "in", "unlearned"][direct.states[k, 5]]
    assert table["phi_after"][row] == direct.phi_after[k, 5]

    runner = CliRunner()
    result = runner.invoke(app, ["evaluate-attack", "--bank", str(bank.path), "--targets", "3"])
    assert result.exit_code == 0 and "mean AUC over 3 targets" in result.stdout
    result = runner.invoke(app, ["bank", "export", str(bank.path), "--out", str(tmp_path / "long.csv")])
    assert result.exit_code == 0 and (tmp_path / "long.csv").read_text().startswith('"shadow","example_id"')
    again = runner.invoke(app, ["bank", "export", str(bank.path), "--out", str(tmp_path / "long.csv")])
    assert again.exit_code == 2 and "exists; not overwriting it" in again.stderr
    replaced = ["bank", "export", str(bank.path), "--out", str(tmp_path / "long.csv"), "--overwrite"]
    assert runner.invoke(app, replaced).exit_code == 0
    result = runner.invoke(app, ["bank", "export", str(bank.path), "--out", str(tmp_path / "long.txt")])
    assert result.exit_code == 2 and not (tmp_path / "long.txt").exists()
    # The parent folder holding this one bank names it too; an empty folder names none.
    parent = bank.path.parent
    result = runner.invoke(app, ["evaluate-attack", "--bank", str(parent), "--targets", "3"])
    assert result.exit_code == 0 and "mean AUC over 3 targets" in result.stdout
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["evaluate-attack", "--bank", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "holds no shadow bank" in result.stderr


def test_class_mode_bank_keeps_retrained_twins(tmp_path, data):
    spec = BankSpec(data, RECIPE, finetune(data), ForgetRule(forget_class=1))
    bank = ShadowBank(tmp_path, spec, chunk_size=2)
    bank.build(2)
    signals = bank.load()
    assert signals.phi_reference.shape == signals.phi_after.shape
    assert signals.logits_reference.shape == signals.logits_after.shape
    ones = data.rows(data.ids[data.y == 1])
    for k in range(2):
        plan = plan_shadow(spec, k)
        # The twin trained on the shadow's half minus class 1: it almost never predicts 1 ...
        assert (signals.logits_reference[k, ones].argmax(-1) == 1).mean() < 0.05
        # ... while the shadow itself learned the class before unlearning it.
        trained_ones = data.rows(plan.forget)
        assert signals.phi_before[k, trained_ones].mean() > signals.phi_reference[k, trained_ones].mean() + 3
    # A random-forget bank has no twins.
    random_bank = ShadowBank(tmp_path, BankSpec(data, RECIPE, None, ForgetRule(forget_ids=(1, 2))), chunk_size=2)
    random_bank.build(2)
    assert random_bank.load().phi_reference is None


@pytest.mark.numerics
def test_flip_queries_only_for_models_trained_with_flips():
    import torch

    from audit_cli.data.dataset import DatasetSpec, make_dataset
    from audit_cli.training.loop import query_logits, train_models

    rng = np.random.default_rng(0)
    y = np.arange(24) % 2
    x = rng.normal(size=(24, 1, 8, 8)).astype(np.float32)
    ds = make_dataset(DatasetSpec("tiny-images"), x, y, np.arange(24) < 16, ["a", "b"], "image")
    plain = Recipe(arch="mlp", arch_args={"hidden": (8,)}, epochs=1)
    ens = train_models(ds, plain, [ds.train_ids], [0])
    assert query_logits(ens, ds, plain).shape == (1, 1, 24, 2)
    flipped = query_logits(ens, ds, plain.replace(augmentation="flip"))
    assert flipped.shape == (2, 1, 24, 2)
    # The second view is the model on mirrored inputs.
    mirrored = make_dataset(DatasetSpec("mirror"), x[..., ::-1].copy(), y, ds.is_train, ["a", "b"], "image")
    torch.testing.assert_close(flipped[1], query_logits(ens, mirrored, plain)[0])


def test_a_plain_lira_bank_serves_every_forget_list(data, forget):
    """Shadows that are not unlearned train on random subsets whatever the forget list: a
    new deletion request reuses the bank. With a method, or a class, the list shapes them."""

    def spec(ids, unlearning=None, **rule):
        rule = rule or {"forget_ids": ids, "negatives": tuple(int(i) for i in data.test_ids)}
        return BankSpec(data, RECIPE, unlearning, ForgetRule(**rule))

    other = tuple(int(i) for i in np.setdiff1d(data.train_ids, forget)[:20])
    assert spec(forget).key() == spec(other).key()
    assert [plan_shadow(spec(forget), k).trained.tolist() for k in range(3)] == [
        plan_shadow(spec(other), k).trained.tolist() for k in range(3)
    ]  # fmt: skip
    assert spec(forget, finetune(data)).key() != spec(other, finetune(data)).key()
    assert spec(None, forget_class=1).key() != spec(None, forget_class=2).key()  # twins without the class


def test_a_tampered_bank_is_refused_never_scored(tmp_path, data, forget):
    """A chunk with forged signals (same schema), a chunk copied in from another bank, and a
    manifest entry pointing outside the folder are each refused, naming the chunk."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from audit_cli.app import app
    from audit_cli.shadows import read_bank

    bank = ShadowBank(tmp_path / "a", spec_for(data, forget), chunk_size=2)
    bank.build(4)
    runner = CliRunner()
    assert runner.invoke(app, ["bank", "verify", str(bank.path)]).exit_code == 0
    chunk = bank.path / "chunk-00002-00003.parquet"
    original = chunk.read_bytes()
    table = pq.read_table(chunk)
    forged = table.set_column(table.column_names.index("phi_after"), "phi_after",
                              pa.array(table["phi_after"].to_numpy() - 1.0))  # fmt: skip
    pq.write_table(forged, chunk)
    with pytest.raises(InputError, match="chunk-00002-00003.parquet: does not match the checksum"):
        bank.load()
    result = runner.invoke(app, ["bank", "verify", str(bank.path)])
    assert result.exit_code == 2 and "does not match the checksum" in result.stderr
    chunk.write_bytes(original)
    other = ShadowBank(tmp_path / "b", spec_for(data, forget, seed=1), chunk_size=2)
    other.build(2)
    shutil.copy(other.path / "chunk-00000-00001.parquet", bank.path / "chunk-00000-00001.parquet")
    with pytest.raises(InputError, match="does not match the checksum"):
        read_bank(bank.path)
    manifest = json.loads((bank.path / "manifest.json").read_text())
    manifest["chunks"][0]["file"] = "../b/chunk-00000-00001.parquet"
    (bank.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="is not a chunk of this folder"):
        read_bank(bank.path)


def test_two_builders_of_one_bank_train_each_chunk_once(tmp_path, data, forget):
    import threading

    counts = []
    bank_a = ShadowBank(tmp_path, spec_for(data, forget), chunk_size=2)
    bank_b = ShadowBank(tmp_path, spec_for(data, forget), chunk_size=2)
    workers = [threading.Thread(target=lambda b=b: counts.append(b.build(4))) for b in (bank_a, bank_b)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(counts) == [0, 4]  # the second waited, then found every chunk built
    assert not (bank_a.path / ".lock").exists() and bank_a.complete_shadows() == 4


# A lock left by a dead process, and the rest of the bank lock: tests/test_lock.py.
