"""Shadow banks through the CLI: `audit shadows` builds the bank `audit run` then uses (same
settings resolution), and every bank-taking command takes the parent folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from audit_cli.data import load_dataset, write_id_file
from audit_cli.models.recipe import Recipe
from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint
from tests.helpers import assert_error, invoke

DATA, OPTIONS = "synthetic", {"n_samples": "200", "n_features": "6", "n_classes": "3", "flip_y": "0.2"}
# A recipe small enough that the 16 shadows of one chunk train in seconds on one core.
RECIPE = Recipe(arch="mlp", arch_args={"hidden": (16,)}, epochs=5, lr=0.01, batch_size=32)
SHADOWS = 16


@pytest.fixture(scope="module")
def built(runner, tmp_path_factory):
    """A model, its forget list, and a project folder whose audit.toml names the bank and
    shadow count; `audit shadows` run there once, as a CI cache step would."""
    root = tmp_path_factory.mktemp("ci")
    data = load_dataset(DATA, OPTIONS)
    write_id_file(root / "forget.txt", np.sort(np.random.default_rng(0).choice(data.train_ids, 30, replace=False)))
    train_checkpoint(TrainRequest(out=root / "model.safetensors", data=DATA, data_options=OPTIONS, recipe=RECIPE,
                                  device="cpu"))  # fmt: skip
    (root / "audit.toml").write_text(
        f'shadows = {SHADOWS}\nbank = "ci-bank"\nallow-underpowered = true\ndevice = "cpu"\n'
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        data_args = ["--data", DATA, *(a for k, v in OPTIONS.items() for a in ("--data-opt", f"{k}={v}"))]
        result = invoke(runner, "shadows", "--model", "model.safetensors", "--forget", "forget.txt", "-q", *data_args,
                        env={"AUDIT_SEED": "3"})  # fmt: skip
    assert result.exit_code == 0, result.output
    return root, result


def test_shadows_resolves_settings_like_run_so_run_finds_the_bank(runner, built, monkeypatch):
    root, result = built
    banks = list((root / "ci-bank").iterdir())
    assert len(banks) == 1 and f"{SHADOWS} shadows ({SHADOWS} trained now)" in result.stdout
    assert str(Path("ci-bank") / banks[0].name) in result.stdout
    monkeypatch.chdir(root)
    run = invoke(runner, "run", "--model", "model.safetensors", "--forget", "forget.txt", "-q", "-f", "json",
                 env={"AUDIT_SEED": "3"})  # fmt: skip
    assert run.exit_code in (0, 1, 3), run.output
    doc = json.loads(run.stdout)
    assert doc["shadows"]["trained_now"] == 0, "the bank audit shadows built ahead of time"
    assert doc["shadows"]["n"] == SHADOWS and Path(doc["shadows"]["bank"]).parent.name == "ci-bank"
    assert doc["config"]["shadows"]["source"].endswith("audit.toml")
    assert doc["config"]["seed"] == {"value": 3, "source": "env AUDIT_SEED"}


def test_bank_ls_lists_the_banks_of_a_parent(runner, built):
    root, _ = built
    parent = root / "ci-bank"
    leaf = next(parent.iterdir())
    table = invoke(runner, "bank", "ls", parent)
    assert table.exit_code == 0 and leaf.name in table.stdout and "none (LiRA only)" in table.stdout
    doc = json.loads(invoke(runner, "bank", "ls", parent, "--format", "json").stdout)
    assert [b["name"] for b in doc] == [leaf.name]
    assert doc[0]["shadows"] == SHADOWS and doc[0]["method"] is None and doc[0]["forget"] == "any forget list"  # plain LiRA
    assert set(doc[0]) == {"path", "name", "method", "shadows", "dataset_fingerprint", "model", "forget", "seed",
                           "bank_format"} and doc[0]["bank_format"] == 4
    assert json.loads(invoke(runner, "bank", "ls", leaf, "--format", "json").stdout) == doc  # a leaf lists itself
    empty = root / "empty"
    empty.mkdir(exist_ok=True)
    assert json.loads(invoke(runner, "bank", "ls", empty, "--format", "json").stdout) == []
    missing = invoke(runner, "bank", "ls", root / "nope")
    assert missing.exit_code == 2 and "bank folder not found" in missing.stderr


def test_evaluate_attack_and_export_take_the_parent(runner, built, tmp_path):
    root, _ = built
    parent = root / "ci-bank"
    leaf = next(parent.iterdir())
    for bank in (parent, leaf):
        result = invoke(runner, "evaluate-attack", "--bank", bank, "--targets", "2", "--format", "json")
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert set(doc) == {"bank", "shadows", "mean_auc", "targets", "rmia"} and doc["bank"] == str(leaf)
        assert doc["rmia"]["mode"] == "offline" and len(doc["rmia"]["targets"]) == 2
        assert 0.0 <= doc["rmia"]["mean_auc"] <= 1.0
        assert doc["shadows"] == SHADOWS and len(doc["targets"]) == 2
        assert set(doc["targets"][0]) == {"target", "auc", "balanced_accuracy", "tpr_at_fpr"}
        assert 0.0 <= doc["mean_auc"] <= 1.0
    text = invoke(runner, "evaluate-attack", "--bank", parent, "--targets", "2")
    assert text.exit_code == 0 and "mean AUC over 2 targets: LiRA" in " ".join(text.stdout.split())
    assert "RMIA offline" in " ".join(text.stdout.split())
    for flags, message in ((("--variance", "foo"), "--variance must be"), (("--targets", "0"), "--targets must lie in"),
                           (("--targets", str(SHADOWS + 1)), "--targets must lie in")):  # fmt: skip
        assert_error(invoke(runner, "evaluate-attack", "--bank", parent, *flags), message)
    out = tmp_path / "bank.csv"
    export = invoke(runner, "bank", "export", parent, "-o", out)
    assert export.exit_code == 0 and out.is_file() and f"to {out}" in export.stdout
    assert invoke(runner, "bank", "export", leaf, "--out", tmp_path / "b.parquet").exit_code == 0  # the older name
    piped = invoke(runner, "bank", "export", parent, "-o", "-")  # -o -: the CSV on stdout, the note on stderr
    assert piped.exit_code == 0 and piped.stdout == out.read_text() and "rows to -" in piped.stderr


def test_bank_commands_look_where_run_builds(runner, built, monkeypatch, tmp_path):
    """Without a folder typed, the bank commands read the bank setting as audit run does
    (AUDIT_BANK, then audit.toml): here audit.toml's ci-bank, not .audit-bank."""
    root, _ = built
    leaf = next((root / "ci-bank").iterdir())
    monkeypatch.chdir(root)
    listed = json.loads(invoke(runner, "bank", "ls", "--format", "json").stdout)
    assert [b["name"] for b in listed] == [leaf.name]
    verified = invoke(runner, "bank", "verify", "--format", "json")
    assert verified.exit_code == 0 and json.loads(verified.stdout)["shadows"] == SHADOWS
    attack = invoke(runner, "evaluate-attack", "--targets", "2", "--format", "json")
    assert attack.exit_code == 0 and json.loads(attack.stdout)["bank"] == str(Path("ci-bank") / leaf.name)
    assert invoke(runner, "bank", "export", "-o", tmp_path / "e.csv").exit_code == 0
    # The environment outranks the file, the command line both.
    # A setting the command does not read, however wrong, does not stop it.
    assert invoke(runner, "bank", "ls", "--format", "json", env={"AUDIT_SHADOWS": "many"}).exit_code == 0
    elsewhere = invoke(runner, "bank", "ls", "--format", "json", env={"AUDIT_BANK": str(tmp_path / "none")})
    assert elsewhere.exit_code == 2 and "bank folder not found" in elsewhere.stderr
    typed = json.loads(invoke(runner, "bank", "ls", root / "ci-bank", "--format", "json",
                              env={"AUDIT_BANK": str(tmp_path / "none")}).stdout)  # fmt: skip
    assert [b["name"] for b in typed] == [leaf.name]


def test_a_bank_of_an_older_format_is_named_as_such_not_as_altered(runner, built, tmp_path):
    """Format 3 recorded no checksums: read as format 4, every chunk looked altered."""
    root, _ = built
    old = tmp_path / "banks" / "old"
    shutil.copytree(next((root / "ci-bank").iterdir()), old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["spec"]["bank_format"] = 3
    for chunk in manifest["chunks"]:
        del chunk["sha256"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    for args in (["bank", "verify", old], ["evaluate-attack", "--bank", old], ["bank", "export", old, "-o",
                                                                               tmp_path / "x.csv"]):  # fmt: skip
        assert_error(invoke(runner, *args), "a format-3 bank, built by another version of the tool; this one reads "
                     "format 4", hint="delete the folder")  # fmt: skip
    listed = invoke(runner, "bank", "ls", tmp_path / "banks")
    assert listed.exit_code == 0 and "old: format 3, built by another version" in listed.stdout
    assert json.loads(invoke(runner, "bank", "ls", old, "--format", "json").stdout)[0]["bank_format"] == 3


def test_a_parent_with_several_banks_is_an_error_listing_them(runner, built, tmp_path):
    root, _ = built
    parent = tmp_path / "banks"
    leaf = next((root / "ci-bank").iterdir())
    shutil.copytree(leaf, parent / "aaaa")
    shutil.copytree(leaf, parent / "bbbb")
    for args in (["evaluate-attack", "--bank", parent], ["bank", "export", parent, "-o", tmp_path / "x.csv"]):
        result = invoke(runner, *args)
        assert result.exit_code == 2 and result.stdout == "", result.output
        first, hint = result.stderr.strip().split("\n")
        assert first.startswith(f"error: {parent} holds 2 banks: aaaa (method none, {SHADOWS} shadows, dataset ")
        assert "; bbbb (" in first and hint.startswith(f"hint: name one, such as {parent / 'aaaa'}")
    assert not (tmp_path / "x.csv").exists()
    assert invoke(runner, "evaluate-attack", "--bank", parent / "bbbb", "--targets", "2").exit_code == 0
    nothing = invoke(runner, "evaluate-attack", "--bank", tmp_path)
    assert nothing.exit_code == 2 and "holds no shadow bank" in nothing.stderr


def test_report_folders_are_created_and_paths_checked_before_any_shadow(runner, built, tmp_path, monkeypatch):
    """docs/ci.md's recipe writes into audit/, which a fresh checkout does not have."""
    root, _ = built
    monkeypatch.chdir(tmp_path)
    base = ["run", "--model", root / "model.safetensors", "--forget", root / "forget.txt", "--config",
            root / "audit.toml", "-q"]  # fmt: skip
    result = invoke(runner, *base, "--bank", root / "ci-bank", "-f", "json=audit/report.json", "-f", "junit=audit/junit.xml",
                    env={"AUDIT_SEED": "3"})  # fmt: skip
    assert result.exit_code in (0, 1, 3), result.output
    assert json.loads((tmp_path / "audit" / "report.json").read_text())["shadows"]["trained_now"] == 0
    assert (tmp_path / "audit" / "junit.xml").read_text().startswith("<?xml")
    (tmp_path / "a-file").write_text("")
    fresh = tmp_path / "fresh-bank"
    for args, message in [
        (["-f", f"json={tmp_path / 'audit'}"], "is a folder; give a file name"),
        (["-f", "json=a-file/report.json"], "cannot create folder a-file"),
        (["-o", "report.json"], "--output report.json receives nothing"),
    ]:
        refused = invoke(runner, *base, "--bank", fresh, *args)
        assert refused.exit_code == 2 and refused.stderr.startswith("error: ") and message in refused.stderr, (
            refused.output
        )
        assert not fresh.exists(), "refused before any shadow trained"
    # An input of the audit is never a report file, --overwrite or not.
    for args, name in ([("-f", f"json={root / 'model.safetensors'}"), "model.safetensors"],
                       [("-f", f"markdown={root / 'forget.txt'}"), "forget.txt"]):  # fmt: skip
        before = (root / name).read_bytes()
        refused = invoke(runner, *base, "--bank", fresh, *args, "--overwrite")
        assert refused.exit_code == 2 and "is an input of this audit" in refused.stderr, refused.output
        assert (root / name).read_bytes() == before and not fresh.exists()
