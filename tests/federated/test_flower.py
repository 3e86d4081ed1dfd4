"""PUFStrategy on real ClientApps through the in-process grid (no Ray, no network): the
same global model as the simulation, forgotten clients never asked again, runtime requests."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("flwr", reason="the [flower] extra is not installed")  # CI installs it (the test extra)

from flwr.app import ArrayRecord, Context, RecordDict  # noqa: E402

from audit_cli.auditing.pipeline import run_audit
from audit_cli.auditing.request import AuditConfig  # noqa: E402
from audit_cli.data import load_dataset  # noqa: E402
from audit_cli.errors import UsageError  # noqa: E402
from audit_cli.federated.fedavg import simulate  # noqa: E402
from audit_cli.federated.partition import federation_clients  # noqa: E402
from audit_cli.models.checkpoint import load_checkpoint  # noqa: E402
from audit_cli.models.recipe import Federation, Recipe  # noqa: E402
from audit_cli.repair.flower import (  # noqa: E402
    LocalGrid,
    PUFStrategy,
    client_app,
    initial_arrays,
    save_global_model,
    save_run,
)
from audit_cli.unlearn import UnlearnTask  # noqa: E402
from audit_cli.unlearn.puf import PUFParams, puf  # noqa: E402

FED = Federation(clients=5, alpha=0.3, rounds=3, seed=4)
RECIPE = Recipe(arch="mlp", arch_args={"hidden": (32,)}, optimizer="sgd", lr=0.1, epochs=1, batch_size=16,
                federation=FED)  # fmt: skip


class CountingGrid(LocalGrid):
    """The in-process grid, recording which partitions each training round asked."""

    def push_messages(self, messages):
        messages = list(messages)
        partitions = sorted(self._contexts[m.metadata.dst_node_id].node_config["partition-id"] for m in messages)
        if any(m.metadata.message_type == "train" for m in messages):
            self.asked.append(partitions)
        elif messages:
            self.evaluated.append(partitions)
        return super().push_messages(messages)


@pytest.fixture(scope="module")
def setting():
    logging.getLogger("flwr").setLevel(logging.WARNING)
    ds = load_dataset("digits")
    clients = dict(enumerate(federation_clients(ds, FED)))
    return ds, clients, simulate(ds, RECIPE, [clients], [FED.seed])


def strategy(**kw) -> PUFStrategy:
    return PUFStrategy(federation_seed=FED.seed, unlearning_seed=7, recovery_rounds=2, min_train_nodes=1,
                       min_available_nodes=1, **kw)  # fmt: skip


def grid(ds) -> CountingGrid:
    g = CountingGrid(client_app(ds, RECIPE), partitions=FED.clients)
    g.asked, g.evaluated = [], []
    return g


# A Flower client trains its model alone, the simulation trains every client in one stack:
# on some CPUs the stacked and the single matmul round differently (CI's machine: 3.1e-6
# after a regular PUF request, whose eta of 20 multiplies the difference). A wrong formula
# or a wrong client moves weights by more than 1e-3 (asserted below).
ROUNDING = 1e-4


def max_diff(arrays, ens) -> float:
    got, want = arrays.to_torch_state_dict(), ens.state_dict(0)
    return max(float((got[k] - want[k]).abs().max()) for k in want)


@pytest.mark.numerics
def test_fedavg_rounds_equal_the_simulation(setting):
    ds, _, simulated = setting
    g = grid(ds)
    result = strategy().start(grid=g, initial_arrays=initial_arrays(RECIPE, ds), num_rounds=FED.rounds)
    assert max_diff(result.arrays, simulated) <= ROUNDING
    assert g.asked == [[0, 1, 2, 3, 4]] * 3


@pytest.mark.numerics
@pytest.mark.parametrize("variant", ["regular", "special", "natural"])
def test_scheduled_unlearning_equals_audit_unlearn_and_never_asks_the_client_again(setting, variant):
    ds, clients, simulated = setting
    forget = clients[2]
    retain = np.sort(np.concatenate([p for c, p in clients.items() if c != 2]))
    expected = puf(simulated, UnlearnTask(ds, [forget], [retain], RECIPE, [7], clients=[clients]),
                   PUFParams(variant=variant, recovery_rounds=2)).models  # fmt: skip
    g = grid(ds)
    s = strategy(variant=variant, schedule={4: [2]})
    rounds = FED.rounds + 2 + (variant != "natural")
    result = s.start(grid=g, initial_arrays=initial_arrays(RECIPE, ds), num_rounds=rounds)
    assert max_diff(result.arrays, expected) <= ROUNDING
    assert s.forgotten == {2} and s.node_client == {n: n - 1 for n in range(1, 6)}
    unlearning = {"regular": [[0, 1, 2, 3, 4]], "special": [[2]], "natural": []}[variant]
    assert g.asked[3:] == unlearning + [[0, 1, 3, 4]] * 2
    assert max_diff(result.arrays, simulated) > 1e-3  # it did move away from the original


def test_a_run_from_a_federation_that_lost_clients_never_hears_them(setting):
    """forgotten=recipe.federation.gone: their nodes, unknown at first, are asked once and
    not heard; the global model is the federation's without them."""
    ds, clients, _ = setting
    g = grid(ds)
    s = strategy(forgotten=[2])
    result = s.start(grid=g, initial_arrays=initial_arrays(RECIPE, ds), num_rounds=3)
    assert g.asked[0] == [0, 1, 2, 3, 4] and g.asked[1:] == [[0, 1, 3, 4]] * 2
    without = simulate(ds, RECIPE, [{c: ids for c, ids in clients.items() if c != 2}], [FED.seed])
    assert max_diff(result.arrays, without) <= ROUNDING


def test_a_request_at_runtime_is_served_in_the_next_round(setting):
    ds, _, _ = setting
    g = grid(ds)
    s = strategy(variant="special", fraction_evaluate=1.0, min_evaluate_nodes=1)

    def evaluate(server_round, arrays):
        if server_round == 1:
            s.request_unlearning(0, 3)  # two clients at once: one round
        return None

    result = s.start(grid=g, initial_arrays=initial_arrays(RECIPE, ds), num_rounds=5, evaluate_fn=evaluate)
    assert g.asked[1] == [0, 3] and all(0 not in a and 3 not in a for a in g.asked[2:])
    # Federated evaluation on the clients' own data: every client in round 1, then never the forgotten.
    assert g.evaluated == [[0, 1, 2, 3, 4]] + [[1, 2, 4]] * 4
    assert 0.0 <= float(result.evaluate_metrics_clientapp[5]["accuracy"]) <= 1.0
    assert s.forgotten == {0, 3} and [r.clients for r in s.requests] == [(0, 3)] and s.requests[0].served_in == 2
    s.request_unlearning(3)  # already forgotten: nothing to do
    assert s.pending == []


def test_a_flower_run_saves_checkpoints_the_audit_reads(setting, tmp_path):
    ds, _, simulated = setting
    s = strategy(variant="special", schedule={4: [2]})
    result = s.start(grid=grid(ds), initial_arrays=initial_arrays(RECIPE, ds), num_rounds=6)
    parent = tmp_path / "parent.safetensors"
    save_global_model(parent, s.requests[-1].before, RECIPE, ds)
    unlearned = tmp_path / "unlearned.safetensors"
    save_global_model(unlearned, result.arrays, RECIPE, ds, strategy=s, parent=parent)
    meta = load_checkpoint(unlearned).meta
    assert meta.kind == "unlearned" and meta.recipe.federation.forgotten == (2,) and meta.recipe.federation.rounds == 3
    assert meta.unlearning.params == {"variant": "special", "eta": 2.0, "recovery_rounds": 2, "target_accuracy": 0.0,
                                      "seed": 7}  # fmt: skip
    # The parent is the simulated federation of 3 rounds (audit fl train), weight for weight.
    assert max_diff(ArrayRecord(load_checkpoint(parent).state_dict), simulated) <= ROUNDING
    report = run_audit(AuditConfig(model=unlearned, forget_clients=(2,), original=parent, shadows=4,
                                   bank=tmp_path / "bank", allow_underpowered=True, device="cpu"))  # fmt: skip
    assert report.model.method == "puf" and report.forget.clients == (2,) and int(report.exit_code) in (0, 1, 3)


def test_a_request_for_a_client_that_never_answers_leaves_the_model_alone(setting):
    ds, _, _ = setting
    s = strategy(variant="special", schedule={2: [7]})  # no node holds client 7
    g = grid(ds)
    before = s.start(grid=g, initial_arrays=initial_arrays(RECIPE, ds), num_rounds=1).arrays
    after = strategy(variant="special", schedule={2: [7]}).start(grid=grid(ds), initial_arrays=initial_arrays(RECIPE, ds),
                                                                 num_rounds=2)  # fmt: skip
    assert g.asked == [[0, 1, 2, 3, 4]]
    got, want = after.arrays.to_torch_state_dict(), before.to_torch_state_dict()
    assert all(bool((got[k] == want[k]).all()) for k in want)


def test_full_participation_only():
    with pytest.raises(ValueError, match="fraction_train must be 1.0"):
        strategy(fraction_train=0.5)


def test_a_round_waits_for_the_minimum_of_nodes(setting):
    """FedAvg's min_available_nodes holds: a round with too few nodes connected waits."""
    ds, _, simulated = setting

    class LateGrid(CountingGrid):
        calls = 0

        def get_node_ids(self):
            self.calls += 1
            return super().get_node_ids()[: 2 if self.calls == 1 else None]  # 2 of 5 at first

    g = LateGrid(client_app(ds, RECIPE), partitions=FED.clients)
    g.asked, g.evaluated = [], []
    s = PUFStrategy(federation_seed=FED.seed, unlearning_seed=7, min_available_nodes=5)
    result = s.start(grid=g, initial_arrays=initial_arrays(RECIPE, ds), num_rounds=FED.rounds)
    assert g.asked == [[0, 1, 2, 3, 4]] * 3 and max_diff(result.arrays, simulated) <= ROUNDING


def test_a_request_served_in_a_round_nobody_answers_still_forgets(setting):
    ds, _, _ = setting

    class SilentGrid(CountingGrid):
        def push_messages(self, messages):
            ids = list(super().push_messages(messages))
            if len(self.asked) == 4:  # the unlearning round: every reply is lost
                for i in ids:
                    self._replies.pop(i)
            return ids

    g = SilentGrid(client_app(ds, RECIPE), partitions=FED.clients)
    g.asked, g.evaluated = [], []
    s = strategy(variant="regular", schedule={4: [2]})
    s.start(grid=g, initial_arrays=initial_arrays(RECIPE, ds), num_rounds=FED.rounds + 3)
    assert s.forgotten == {2} and g.asked[3:] == [[0, 1, 2, 3, 4]] + [[0, 1, 3, 4]] * 2


def test_a_forgotten_client_that_comes_back_as_a_new_node_is_not_heard(setting):
    """Client 2 is forgotten in round 4 and reconnects under a new node id before a second
    request (client 3, round 7): its reply is discarded, in that regular round too, and
    the global model is the one of a run where it never came back."""
    ds, _, _ = setting

    class ReconnectingGrid(CountingGrid):
        def push_messages(self, messages):
            if len(self.asked) == 6 and 99 not in self._contexts:
                held = self._contexts[3]  # node 3 held client 2
                self._contexts[99] = Context(run_id=1, node_id=99, node_config=dict(held.node_config),
                                             state=RecordDict(), run_config={})  # fmt: skip
            return super().push_messages(messages)

    runs = []
    for cls in (CountingGrid, ReconnectingGrid):
        g = cls(client_app(ds, RECIPE), partitions=FED.clients)
        g.asked, g.evaluated = [], []
        s = strategy(variant="regular", schedule={4: [2], 7: [3]})
        runs.append((g, s, s.start(grid=g, initial_arrays=initial_arrays(RECIPE, ds), num_rounds=9).arrays))
    (_, _, alone), (g, s, back) = runs
    assert g.asked[6] == [0, 1, 2, 3, 4]  # the new node, not known yet, is asked once...
    assert all(a.count(2) == 0 for a in g.asked[7:]) and s.node_client[99] == 2  # ...and never again
    assert s.forgotten == {2, 3}
    a, b = alone.to_torch_state_dict(), back.to_torch_state_dict()
    assert all(bool((a[k] == b[k]).all()) for k in a)


def test_a_saved_model_lists_every_client_the_run_forgot(setting, tmp_path):
    ds, _, _ = setting
    s = strategy(variant="special", schedule={4: [2], 7: [3]})
    result = s.start(grid=grid(ds), initial_arrays=initial_arrays(RECIPE, ds), num_rounds=9)
    parent = tmp_path / "parent.safetensors"
    save_global_model(parent, s.requests[-1].before, RECIPE, ds)
    save_global_model(tmp_path / "u.safetensors", result.arrays, RECIPE, ds, strategy=s, parent=parent)
    assert load_checkpoint(tmp_path / "u.safetensors").meta.recipe.federation.forgotten == (2, 3)


def test_save_run_writes_every_model_of_a_run_each_naming_its_parent(setting, tmp_path):
    """Two requests in one run: the model the second was served on is the first's unlearned
    model (client 2 forgotten), not an original; each checkpoint says so and names its parent."""
    import hashlib

    ds, _, simulated = setting
    s = strategy(variant="special", schedule={4: [2], 7: [3]})
    result = s.start(grid=grid(ds), initial_arrays=initial_arrays(RECIPE, ds), num_rounds=9)
    paths = save_run(tmp_path / "run", result.arrays, s, RECIPE, ds)
    assert [p.name for p in paths] == ["original.safetensors", "unlearned-1.safetensors", "unlearned-2.safetensors"]
    metas = [load_checkpoint(p).meta for p in paths]
    assert [m.kind for m in metas] == ["original", "unlearned", "unlearned"]
    assert [m.recipe.federation.forgotten for m in metas] == [(), (2,), (2, 3)]
    assert all(m.recipe.federation.rounds == 3 for m in metas)
    sha = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert [m.unlearning.parent_sha256 for m in metas[1:]] == sha[:2]
    assert metas[1].unlearning.params["recovery_rounds"] == 2
    assert max_diff(ArrayRecord(load_checkpoint(paths[0]).state_dict), simulated) <= ROUNDING
    weights = [load_checkpoint(p).state_dict for p in paths[1:]]
    for got, want in zip(weights, (s.requests[1].before, result.arrays), strict=True):
        assert all(bool((got[k] == v).all()) for k, v in want.to_torch_state_dict().items())
    report = run_audit(AuditConfig(model=paths[2], forget_clients=(3,), original=paths[1], shadows=4,
                                   bank=tmp_path / "bank", allow_underpowered=True, device="cpu"))  # fmt: skip
    assert report.model.method == "puf" and int(report.exit_code) in (0, 1, 3)
    with pytest.raises(UsageError, match="exists; not overwriting it"):
        save_run(tmp_path / "run", result.arrays, s, RECIPE, ds)


def test_save_run_records_the_rounds_trained_before_the_request(setting, tmp_path):
    """A request served before the recipe's last round: the original is the federation of
    the rounds trained until then (the recipe says 3, the run trained 2)."""
    ds, clients, _ = setting
    s = strategy(variant="special", schedule={3: [2]})
    result = s.start(grid=grid(ds), initial_arrays=initial_arrays(RECIPE, ds), num_rounds=5)
    original, unlearned = save_run(tmp_path, result.arrays, s, RECIPE, ds)
    assert load_checkpoint(original).meta.recipe.federation.rounds == 2
    assert load_checkpoint(unlearned).meta.recipe.federation.rounds == 2
    two = RECIPE.replace(federation=Federation(clients=5, alpha=0.3, rounds=2, seed=4))
    assert max_diff(ArrayRecord(load_checkpoint(original).state_dict), simulate(ds, two, [clients], [FED.seed])) <= ROUNDING


def test_save_run_refuses_a_model_between_requests_it_cannot_describe(setting, tmp_path):
    ds, _, _ = setting
    s = strategy(variant="special", schedule={4: [2], 5: [3]})  # the second during the first's recovery
    result = s.start(grid=grid(ds), initial_arrays=initial_arrays(RECIPE, ds), num_rounds=7)
    with pytest.raises(UsageError, match="request 2 was served during the recovery of request 1"):
        save_run(tmp_path / "run", result.arrays, s, RECIPE, ds)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match="served no unlearning request"):
        save_run(tmp_path / "run", result.arrays, strategy(variant="special"), RECIPE, ds)
    later = strategy(variant="special", schedule={4: [2]})  # recovery ends in round 6, round 7 trains again
    result = later.start(grid=grid(ds), initial_arrays=initial_arrays(RECIPE, ds), num_rounds=7)
    with pytest.raises(UsageError, match="trained 1 FedAvg round\\(s\\) after its last request"):
        save_run(tmp_path / "run", result.arrays, later, RECIPE, ds)
    assert not (tmp_path / "run").exists()


def test_a_forgotten_client_that_leaves_does_not_stall_the_rounds(setting):
    """min_available_nodes counts the members left: with client 2 forgotten and its node
    gone, the remaining four carry on (FedAvg's wait would hold the round forever)."""
    ds, _, _ = setting

    class LeavingGrid(CountingGrid):
        def get_node_ids(self):
            nodes = super().get_node_ids()
            return [n for n in nodes if n != 3] if len(self.asked) >= 4 else nodes  # node 3 held client 2

    g = LeavingGrid(client_app(ds, RECIPE), partitions=FED.clients)
    g.asked, g.evaluated = [], []
    s = PUFStrategy(federation_seed=FED.seed, unlearning_seed=7, recovery_rounds=2, variant="special",
                    schedule={4: [2]}, min_available_nodes=5)  # fmt: skip
    s.start(grid=g, initial_arrays=initial_arrays(RECIPE, ds), num_rounds=6)
    assert g.asked[3:] == [[2], [0, 1, 3, 4], [0, 1, 3, 4]]
