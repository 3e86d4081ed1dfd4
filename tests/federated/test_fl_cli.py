"""The federated commands end to end: audit fl train, audit ids --client, audit unlearn
--forget-client and audit run --forget-client, and their refusals."""

from __future__ import annotations

import json
import sys
import uuid

import numpy as np
import pytest
from safetensors.torch import save_file
from typer.testing import CliRunner

from audit_cli.data import load_dataset, read_id_file
from audit_cli.federated.partition import federation_clients
from audit_cli.models.checkpoint import load_checkpoint
from audit_cli.models.metadata import METADATA_KEY
from audit_cli.models.recipe import Federation
from tests.helpers import assert_error, assert_ok, invoke

FL = ("--data", "digits", "--arch-arg", "hidden=32", "--clients", "4", "--alpha", "0.5", "--rounds", "3", "--seed",
      "2", "--device", "cpu", "-q")  # fmt: skip


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    d = tmp_path_factory.mktemp("fl")
    runner = CliRunner()
    assert_ok(invoke(runner, "fl", "train", "--out", d / "fl.safetensors", *FL))
    assert_ok(invoke(runner, "fl", "train", "--out", d / "r1.safetensors", *FL, "--exclude-client", "1"))
    return d, runner


def test_fl_train_records_the_federation_and_the_retrained_one_leaves_the_client_out(federation):
    d, _ = federation
    meta = load_checkpoint(d / "fl.safetensors").meta
    fed = meta.recipe.federation
    assert (fed.clients, fed.alpha, fed.rounds, fed.seed, fed.excluded) == (4, 0.5, 3, 2, ())
    assert meta.kind == "original" and meta.recipe.epochs == 1 and meta.recipe.optimizer == "sgd"
    retrained = load_checkpoint(d / "r1.safetensors").meta
    parts = federation_clients(load_dataset("digits"), Federation(clients=4, alpha=0.5, seed=2))
    assert retrained.kind == "retrained" and retrained.recipe.federation.excluded == (1,)
    assert retrained.excluded.n_ids == len(parts[1]) and retrained.n_trained == 1347 - len(parts[1])


def test_ids_prints_a_client_and_the_partition(federation, tmp_path):
    d, runner = federation
    result = invoke(runner, "ids", "--model", d / "fl.safetensors", "--client", "1", "--client", "3")
    assert_ok(result)
    parts = federation_clients(load_dataset("digits"), Federation(clients=4, alpha=0.5, seed=2))
    (tmp_path / "ids.txt").write_text(result.stdout)
    assert np.array_equal(read_id_file(tmp_path / "ids.txt"), np.sort(np.concatenate([parts[1], parts[3]])))
    rows = json.loads(invoke(runner, "ids", "-m", d / "r1.safetensors", "--partition", "--format", "json").stdout)
    assert [r["status"] for r in rows] == ["member", "excluded", "member", "member"]
    assert [r["n"] for r in rows] == [len(p) for p in parts]
    old_name = invoke(runner, "ids", "-m", d / "r1.safetensors", "--clients", "--format", "json")  # kept one release
    assert json.loads(old_name.stdout) == rows and "--clients is now --partition" in old_name.stderr
    assert_error(invoke(runner, "ids", "--client", "1"), "pass --model")
    assert_error(invoke(runner, "ids", "-m", d / "fl.safetensors"), "--client N")
    for extra in (["--class", "0"], ["--split", "test"], ["--data", "digits"], ["--data-opt", "test_fraction=0.5"]):
        assert_error(invoke(runner, "ids", "-m", d / "fl.safetensors", "--client", "1", *extra),
                     f"with --model, {extra[0]} does not apply")  # fmt: skip
    assert_error(invoke(runner, "ids", "-m", d / "fl.safetensors", "--client", "9"), "client 9 does not exist")


@pytest.mark.slow
def test_puf_unlearns_a_client_recovers_to_the_retrained_accuracy_and_is_audited(federation):
    d, runner = federation
    out = d / "u1.safetensors"
    doc = json.loads(invoke(runner, "unlearn", "-m", d / "fl.safetensors", "--method", "puf", "--forget-client", "1",
                            "--retrained", d / "r1.safetensors", "--param", "recovery_rounds=20", "--out", out,
                            "--device", "cpu", "--format", "json").stdout)  # fmt: skip
    clients = doc["clients"]
    assert clients["forgotten"] == [1] and 0 <= clients["recovery_rounds"] <= 20
    retrained_test = load_checkpoint(d / "r1.safetensors").meta.metrics["test_accuracy"]
    assert clients["target_accuracy"] == pytest.approx(retrained_test)
    if clients["recovery_rounds"] < 20:
        assert doc["accuracy"]["test"]["after"] >= retrained_test - 1e-9
    assert set(clients["mia"]) == {"svc", "loss"}
    meta = load_checkpoint(out).meta
    # What the shadows replay: the rounds run, no target of their own.
    assert meta.unlearning.params["recovery_rounds"] == clients["recovery_rounds"]
    assert meta.unlearning.params["target_accuracy"] == 0.0 and meta.recipe.federation.forgotten == (1,)
    report = d / "audit.json"
    result = invoke(runner, "run", "-m", out, "--forget-client", "1", "--original", d / "fl.safetensors",
                    "--retrained", d / "r1.safetensors", "--shadows", "8", "--bank", d / "bank", "--device", "cpu",
                    "--allow-underpowered", "-f", "json", "-o", report, "-q")  # fmt: skip
    assert result.exit_code in (0, 1, 3), result.output
    audit = json.loads(report.read_text())
    assert audit["forget"]["n"] == meta.unlearning.n_forget and audit["forget"]["clients"] == [1]
    assert audit["model"]["method"] == "puf"
    # A second request, in a later round, forgets from the clients that remain.
    assert_ok(invoke(runner, "unlearn", "-m", out, "--method", "puf", "--forget-client", "3", "--param",
                     "variant=special", "--out", d / "u13.safetensors", "--device", "cpu"))  # fmt: skip
    assert load_checkpoint(d / "u13.safetensors").meta.recipe.federation.forgotten == (1, 3)
    # The reference of a request is the federation retrained without every client lost by then.
    base = ["run", "-m", d / "u13.safetensors", "--forget-client", "3", "--shadows", "4", "--bank", d / "no-bank",
            "--device", "cpu", "--allow-underpowered", "--original", out]  # fmt: skip
    assert_error(invoke(runner, *base, "--retrained", d / "r1.safetensors"),
                 r"left out clients \[1\]; the retrained federation leaves out clients \[1, 3\]")  # fmt: skip
    assert_error(invoke(runner, "run", "-m", out, "--forget-client", "1", "--retrained", d / "fl.safetensors",
                        "--bank", d / "no-bank", "--original", d / "fl.safetensors"), r"left out clients \[\]")  # fmt: skip
    assert not (d / "no-bank").exists()
    assert_ok(invoke(runner, "fl", "train", "--out", d / "r13.safetensors", *FL, "--exclude-client", "1",
                     "--exclude-client", "3"))  # fmt: skip
    assert invoke(runner, *base, "--retrained", d / "r13.safetensors", "-q").exit_code in (0, 1, 3)
    assert_error(invoke(runner, "unlearn", "-m", d / "u13.safetensors", "--method", "puf", "--forget-client", "1",
                        "--out", d / "x.safetensors"), "was forgotten already")  # fmt: skip


def test_retrain_through_unlearn_is_the_excluded_federation(federation, tmp_path):
    d, runner = federation
    assert_ok(invoke(runner, "unlearn", "-m", d / "fl.safetensors", "--method", "retrain", "--forget-client", "1",
                     "--out", tmp_path / "e1.safetensors", "--device", "cpu"))  # fmt: skip
    a = load_checkpoint(tmp_path / "e1.safetensors").state_dict
    b = load_checkpoint(d / "r1.safetensors").state_dict
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)


def test_refusals(federation, tmp_path):
    d, runner = federation
    fl = d / "fl.safetensors"
    assert_error(invoke(runner, "unlearn", "-m", fl, "--method", "finetune", "--forget-client", "1", "--out",
                        tmp_path / "x.safetensors"), "unlearned by puf or retrain")  # fmt: skip
    assert_error(invoke(runner, "unlearn", "-m", fl, "--method", "puf", "--out", tmp_path / "x.safetensors"),
                 "pass --forget-client")  # fmt: skip
    assert_error(invoke(runner, "unlearn", "-m", fl, "--method", "puf", "--forget-client", "1", "--retrained",
                        fl, "--out", tmp_path / "x.safetensors"), "not this federation retrained")  # fmt: skip
    assert_error(invoke(runner, "unlearn", "-m", d / "r1.safetensors", "--method", "puf", "--forget-client", "1",
                        "--out", tmp_path / "x.safetensors"), "left out of training")  # fmt: skip
    central = tmp_path / "central.safetensors"
    assert_ok(invoke(runner, "train", "--out", central, "--epochs", "1", "--device", "cpu", "-q"))
    assert_error(invoke(runner, "unlearn", "-m", central, "--method", "puf", "--forget-client", "1", "--out",
                        tmp_path / "x.safetensors"), "trained centrally")  # fmt: skip
    assert_error(invoke(runner, "run", "-m", central, "--forget-client", "1"), "trained centrally")
    assert_error(invoke(runner, "ids", "-m", central, "--client", "1"), "not a federated model")
    assert_error(invoke(runner, "fl", "train", "--out", tmp_path / "y.safetensors", *FL, "--exclude-client", "7"),
                 "client 7 does not exist")  # fmt: skip
    assert_error(invoke(runner, "fl", "train", "--out", tmp_path / "y.safetensors", "--clients", "1"), "2..1000")
    # Options the chosen partition or optimizer does not read are refused, not ignored.
    fl_train = ("fl", "train", "--out", tmp_path / "y.safetensors")
    assert_error(invoke(runner, *fl_train, "--partition", "iid", "--alpha", "5"), "--alpha is the Dirichlet",
                 hint="--partition dirichlet")  # fmt: skip
    for args in (fl_train, ("train", "--out", tmp_path / "y.safetensors")):
        assert_error(invoke(runner, *args, "--optimizer", "adam", "--momentum", "0.5"), "--momentum is sgd's",
                     hint="--optimizer sgd")  # fmt: skip
    assert not (tmp_path / "y.safetensors").exists()
    # numpy's seed sequences refuse a negative seed: a usage error, not an internal one.
    for args in (("fl", "train", "--out", tmp_path / "y.safetensors"), ("train", "--out", tmp_path / "y.safetensors"),
                 ("unlearn", "-m", d / "fl.safetensors", "--method", "puf", "--forget-client", "1", "-o",
                  tmp_path / "x.safetensors")):  # fmt: skip
        assert_error(invoke(runner, *args, "--seed", "-1"), r"seed.* must be a whole number in 0\.\.4294967295, got -1")


@pytest.mark.parametrize("edit,pattern", [
    ({"clients": 10**6}, "2..1000 clients"),
    ({"forgotten": [7]}, "client numbers in 0..3"),
    ({"alpha": -1}, "alpha must be a positive number"),
    ({"rounds": True}, "rounds must lie in"),
    ({"seed": -1}, "seed must be a whole number in 0..4294967295"),
    ({"shards": 3}, "unknown field 'shards'"),
])  # fmt: skip
def test_a_tampered_federation_is_refused_before_any_work(federation, tmp_path, edit, pattern):
    d, runner = federation
    checkpoint = load_checkpoint(d / "fl.safetensors")
    doc = checkpoint.meta.to_dict()
    doc["recipe"]["federation"].update(edit)
    bad = tmp_path / "bad.safetensors"
    save_file(dict(checkpoint.state_dict), str(bad), metadata={METADATA_KEY: json.dumps(doc)})
    for args in (("ids", "-m", bad, "--partition"), ("run", "-m", bad, "--forget-client", "1", "--bank", tmp_path),
                 ("unlearn", "-m", bad, "--method", "puf", "--forget-client", "1", "-o", tmp_path / "u.safetensors")):  # fmt: skip
        assert_error(invoke(runner, *args), pattern, code=2)
    assert not (tmp_path / "u.safetensors").exists()


def test_a_client_named_twice_is_one_client(federation, tmp_path):
    d, runner = federation
    once = invoke(runner, "ids", "-m", d / "fl.safetensors", "--client", "1").stdout
    assert invoke(runner, "ids", "-m", d / "fl.safetensors", "--client", "1", "--client", "1").stdout == once
    assert_ok(invoke(runner, "unlearn", "-m", d / "fl.safetensors", "--method", "puf", "--forget-client", "1",
                     "--forget-client", "1", "--out", tmp_path / "u.safetensors", "--device", "cpu"))  # fmt: skip
    assert load_checkpoint(tmp_path / "u.safetensors").meta.recipe.federation.forgotten == (1,)


def test_a_federation_trained_without_a_client_takes_two_requests(federation, tmp_path):
    """The parent's fingerprint counts the clients forgotten before (they were trained on)
    and not the one left out of training: a second request is served, not refused."""
    d, runner = federation
    first, second = tmp_path / "u2.safetensors", tmp_path / "u23.safetensors"
    for model, client, out in ((d / "r1.safetensors", "2", first), (first, "3", second)):
        assert_ok(invoke(runner, "unlearn", "-m", model, "--method", "puf", "--forget-client", client, "--param",
                         "variant=special", "--param", "recovery_rounds=1", "--out", out, "--device", "cpu"))  # fmt: skip
    fed = load_checkpoint(second).meta.recipe.federation
    assert fed.excluded == (1,) and fed.forgotten == (2, 3)


def test_a_diverged_puf_writes_nothing(federation, tmp_path):
    d, runner = federation
    out = tmp_path / "u.safetensors"
    result = invoke(runner, "unlearn", "-m", d / "fl.safetensors", "--method", "puf", "--forget-client", "1",
                    "--param", "eta=1e38", "--out", out, "--device", "cpu")  # fmt: skip
    assert_error(result, "puf diverged: the unlearned model has NaN or infinite weights", hint="lower eta")
    assert not out.exists()


def test_a_plugin_architecture_named_with_arch_is_unlearned(tmp_path, monkeypatch):
    name = f"audit_fl_plugin_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "from torch import nn\n"
        "def build(input_shape, num_classes, **kwargs):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    runner, arch = CliRunner(), f"{name}:build"
    fl = ("--data", "digits", "--clients", "3", "--rounds", "1", "--device", "cpu", "-q")
    try:
        assert_ok(invoke(runner, "fl", "train", "--arch", arch, "--out", tmp_path / "p.safetensors", *fl))
        assert_ok(invoke(runner, "fl", "train", "--arch", arch, "--out", tmp_path / "r.safetensors", *fl,
                         "--exclude-client", "0"))  # fmt: skip
        unlearn = ("unlearn", "-m", tmp_path / "p.safetensors", "--forget-client", "0", "--device", "cpu")
        # Named only in the checkpoint, the plug-in is not imported; named with --arch, it is.
        assert_error(invoke(runner, *unlearn, "--method", "puf", "--out", tmp_path / "u.safetensors"),
                     "plug-in architecture", code=4, hint="--arch")  # fmt: skip
        for method in ("puf", "retrain"):
            assert_ok(invoke(runner, *unlearn, "--arch", arch, "--method", method, "--retrained", tmp_path / "r.safetensors",
                             "--out", tmp_path / f"{method}.safetensors"))  # fmt: skip
        assert_error(invoke(runner, *unlearn, "--arch", "mlp", "--method", "puf", "--out", tmp_path / "x.safetensors"),
                     "but the recipe trains")  # fmt: skip
    finally:
        sys.modules.pop(name, None)


@pytest.mark.slow
def test_the_shadows_replay_the_federation_a_request_was_served_on(federation, tmp_path):
    """Two clients forgotten in one request: each shadow forgets two clients; a request on a
    federation that had lost clients: shadows of as many members as it had then."""
    d, runner = federation
    models = {"u02": (d / "fl.safetensors", ("0", "2")), "u2": (d / "r1.safetensors", ("2",))}
    expected = {"u02": (4, 2, 1347), "u2": (3, None, 1347 - len(federation_clients(
        load_dataset("digits"), Federation(clients=4, alpha=0.5, seed=2))[1]))}  # fmt: skip
    for name, (parent, clients) in models.items():
        out = tmp_path / f"{name}.safetensors"
        flags = [f for c in clients for f in ("--forget-client", c)]
        assert_ok(invoke(runner, "unlearn", "-m", parent, "--method", "puf", *flags, "--param", "variant=special",
                         "--param", "recovery_rounds=1", "--out", out, "--device", "cpu"))  # fmt: skip
        result = invoke(runner, "run", "-m", out, *flags, "--shadows", "4", "--bank", tmp_path / name, "--device",
                        "cpu", "--allow-underpowered", "-q", "-f", "json", "--original", parent)  # fmt: skip
        assert result.exit_code in (0, 1, 3), result.output
        (manifest,) = (tmp_path / name).rglob("manifest.json")
        spec = json.loads(manifest.read_text())["spec"]
        fed = spec["recipe"]["federation"]  # the bank's key: the count of the request's clients when several
        assert (fed["clients"], fed.get("forgotten"), spec["train_size"]) == expected[name], spec
        # The report's recipe is the shadows'.
        assert json.loads(result.stdout)["model"]["recipe"] == spec["recipe"]
        # An id file holding exactly those clients' examples is the same request: same bank, same report.
        ids = tmp_path / f"{name}.txt"
        ids.write_text(invoke(runner, "ids", "-m", parent, *[f.replace("forget-", "") for f in flags]).stdout)
        by_file = invoke(runner, "run", "-m", out, "--forget", ids, "--shadows", "4", "--bank", tmp_path / name,
                         "--device", "cpu", "--allow-underpowered", "-q", "-f", "json", "--original", parent)  # fmt: skip
        assert by_file.exit_code == result.exit_code, by_file.output
        report = json.loads(by_file.stdout)
        assert report["forget"]["clients"] == [int(c) for c in clients] and len(list((tmp_path / name).rglob(
            "manifest.json"))) == 1  # fmt: skip
