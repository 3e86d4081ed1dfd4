"""Flower (flwr >= 1.42, Message API): PUF unlearning in a real deployment.

- ``PUFStrategy`` extends ``flwr.serverapp.strategy.FedAvg``. Unlearning requests (client
  ids) arrive at runtime (``request_unlearning``) or on a schedule; the next round serves
  them (regular: a round of every client with the forgotten clients' pseudo-gradients
  negated and amplified; special: a round of the forgotten clients alone), then
  ``recovery_rounds`` FedAvg rounds over the others. A forgotten client is never sampled
  again. Clients report a stable id (``client-id``) in their metrics; the strategy keys
  forgetting on it, not on the transport's node ids.
- ``client_app(data, recipe)`` builds a ClientApp that trains the tool's architecture on
  its partition of a dataset with the tool's local training (K = 1 of the vectorized
  loop), seeded as the simulation seeds it.
- ``LocalGrid`` runs real ClientApps in this process, no Ray and no network: CI tests the
  strategy through it, and ``audit fl train`` and a Flower run with the same partition and
  seed give the same global model up to float rounding.

The aggregate is the simulation's (audit_cli/federated/fedavg.py): ``w + sum_k c_k
(w_k - w)`` in float64, with FedAvg's ``c_k = n_k / N`` and PUF's negated weights.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from logging import WARNING
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import sample_nodes
from flwr.supercore import log
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from audit_cli.data import Dataset, fingerprint_ids, load_dataset
from audit_cli.errors import UsageError
from audit_cli.federated.fedavg import TRAINING, UNLEARNING, client_seed, train_local
from audit_cli.federated.partition import federation_clients
from audit_cli.models.checkpoint import save_checkpoint
from audit_cli.models.metadata import CheckpointMeta, Unlearning
from audit_cli.models.recipe import Recipe
from audit_cli.models.safetensors_file import file_sha256
from audit_cli.training.loop import Ensemble, dataset_tensors, init_ensemble, predict_logits
from audit_cli.unlearn.puf import DEFAULT_ETA, VARIANTS

CLIENT_ID = "client-id"
"""The metric every client reports: its stable id (its partition of the training split)."""
EXAMPLES = "num-examples"


# -- client side --------------------------------------------------------------------------


def global_model(recipe: Recipe, dataset: Dataset) -> Ensemble:
    """The initial global model of a federation (initialised from its seed, as audit fl train)."""
    return init_ensemble(recipe.arch, recipe.arch_args, dataset.input_shape, dataset.num_classes,
                         [recipe.federation.seed])  # fmt: skip


def load_state(ens: Ensemble, arrays: ArrayRecord) -> Ensemble:
    """A K = 1 ensemble holding the weights of ``arrays``."""
    state = arrays.to_torch_state_dict()
    params = {n: state[n].detach().clone().float().unsqueeze(0) for n in ens.params}
    buffers = {n: state[n].detach().clone().unsqueeze(0) for n in ens.buffers}
    return Ensemble(ens.arch, ens.arch_args, ens.input_shape, ens.num_classes, params, buffers, ens.base)


def client_app(data: str | Dataset, recipe: Recipe) -> ClientApp:
    """A ClientApp that trains on partition ``node_config["partition-id"]`` of ``data``
    with the recipe's local training, and reports ``client-id`` and ``num-examples``."""
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    parts = federation_clients(dataset, recipe.federation)
    template = global_model(recipe, dataset)
    tensors = dataset_tensors(dataset, "cpu")
    app = ClientApp()

    def partition_of(context: Context) -> int:
        return int(context.node_config["partition-id"])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        client = partition_of(context)
        config = msg.content["config"]
        seed = client_seed(int(config["seed"]), int(config["round"]), client, int(config["stream"]))
        local = load_state(template, msg.content["arrays"])
        train_local(local, *tensors, [dataset.rows(parts[client])], recipe, [seed], dataset.pixel_stats)
        metrics = MetricRecord({EXAMPLES: len(parts[client]), CLIENT_ID: client})
        return Message(RecordDict({"arrays": ArrayRecord(local.state_dict(0)), "metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        client = partition_of(context)
        local = load_state(template, msg.content["arrays"])
        rows = dataset.rows(parts[client])
        logits = predict_logits(local, dataset.x[rows])[0]
        acc = float((logits.argmax(-1).numpy() == dataset.y[rows]).mean())
        metrics = MetricRecord({EXAMPLES: len(rows), CLIENT_ID: client, "accuracy": acc})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app


# -- server side --------------------------------------------------------------------------


@dataclass
class Request:
    """One unlearning request and how far it has been served."""

    clients: tuple[int, ...]
    served_in: int | None = None
    """The server round of its unlearning round."""
    recovery_left: int = 0
    trained_rounds: int = 0
    """FedAvg training rounds before it was served."""
    before: ArrayRecord | None = None
    """The global model it was served on (the parent of the unlearned one)."""

    def recovery_rounds_run(self, planned: int) -> int:
        return planned - self.recovery_left


class PUFStrategy(FedAvg):
    """FedAvg that forgets clients on request with PUF, then recovers.

    ``federation_seed`` seeds the clients' training rounds and ``unlearning_seed`` the
    rounds of a request (as ``audit fl train --seed`` and ``audit unlearn --seed`` do).
    ``schedule`` maps a server round to the clients whose request arrives before it.
    ``forgotten``: clients the federation lost before this run (a model whose recipe
    records them, ``recipe.federation.gone``): treated as forgotten from the first round.
    """

    def __init__(
        self,
        *,
        variant: str = "regular",
        eta: float = 0.0,
        recovery_rounds: int = 5,
        federation_seed: int = 0,
        unlearning_seed: int = 0,
        schedule: Mapping[int, Sequence[int]] | None = None,
        forgotten: Sequence[int] = (),
        **fedavg: object,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if float(fedavg.get("fraction_train", 1.0)) != 1.0:  # type: ignore[arg-type]
            # The simulation and the audit's shadows train every remaining client each round.
            raise ValueError("PUF rounds are full participation: fraction_train must be 1.0")
        fedavg.setdefault("fraction_evaluate", 0.0)
        super().__init__(**fedavg)  # type: ignore[arg-type]
        self.variant = variant
        self.eta = eta or DEFAULT_ETA[variant]
        self.recovery_rounds = recovery_rounds
        self.federation_seed = federation_seed
        self.unlearning_seed = unlearning_seed
        self.schedule = {int(r): tuple(c) for r, c in (schedule or {}).items()}
        self.forgotten: set[int] = {int(c) for c in forgotten}
        self.pending: list[int] = []
        self.requests: list[Request] = []
        self.node_client: dict[int, int] = {}
        """Transport node id -> the client id it reported."""
        self._global: ArrayRecord | None = None
        self._round_kind: str = "train"
        self._training_round = 0
        self._recovery_round = 0

    def request_unlearning(self, *clients: int) -> None:
        """Forget these clients, starting with the next round."""
        self.pending.extend(int(c) for c in clients if int(c) not in self.forgotten and int(c) not in self.pending)

    def _nodes(self, grid: Grid, wanted: set[int] | None, skip: set[int]) -> list[int]:
        """Nodes to send to, once FedAvg's minimum of nodes is connected: every node but the
        ``skip`` clients' (``wanted``: only those clients'). A node whose client is not known
        yet is asked, and its reply sorted out by the client id it reports."""
        # PUF's rounds are full participation, as the simulation and the audit's shadows run
        # them. A forgotten client's node may leave: the minimum counts the members left.
        least = max(1, max(self.min_available_nodes, self.min_train_nodes) - len(self.forgotten))
        _, nodes = sample_nodes(grid, least, 0)
        return [n for n in nodes if self.node_client.get(n) not in skip
                and (wanted is None or self.node_client.get(n, -1) in wanted or n not in self.node_client)]  # fmt: skip

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
                        ) -> Iterable[Message]:  # fmt: skip
        for c in self.schedule.get(server_round, ()):
            self.request_unlearning(c)
        self._global = arrays
        active = self.requests[-1] if self.requests else None
        if self.pending:
            request = Request(tuple(self.pending), served_in=server_round, recovery_left=self.recovery_rounds,
                              trained_rounds=self._training_round, before=arrays)  # fmt: skip
            self.requests.append(request)
            self.pending = []
            self._recovery_round = 0
            # Forgotten from now on, whatever the unlearning round's replies turn out to be.
            self.forgotten.update(request.clients)
            kind = "recovery" if self.variant == "natural" else "unlearn"
            return self.configure_train_kind(server_round, arrays, config, grid, kind)
        if active is not None and active.recovery_left > 0:
            return self.configure_train_kind(server_round, arrays, config, grid, "recovery")
        return self.configure_train_kind(server_round, arrays, config, grid, "train")

    def configure_train_kind(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid,
                             kind: str) -> list[Message]:  # fmt: skip
        self._round_kind = kind
        config = ConfigRecord(dict(config))
        config["server-round"] = server_round
        if kind == "train":
            self._training_round += 1
            config.update({"seed": self.federation_seed, "round": self._training_round, "stream": TRAINING})
            nodes = self._nodes(grid, None, self.forgotten)
        elif kind == "unlearn":
            config.update({"seed": self.unlearning_seed, "round": 0, "stream": UNLEARNING})
            request = set(self.requests[-1].clients)
            nodes = self._nodes(grid, request if self.variant == "special" else None, self.forgotten - request)
        else:
            request = self.requests[-1]
            request.recovery_left -= 1
            self._recovery_round += 1
            config.update({"seed": self.unlearning_seed, "round": self._recovery_round, "stream": UNLEARNING})
            nodes = self._nodes(grid, None, self.forgotten)
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return [Message(content=record, message_type="train", dst_node_id=n) for n in nodes]

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
                           ) -> Iterable[Message]:  # fmt: skip
        """FedAvg's evaluation round, never sent to a forgotten client."""
        messages = super().configure_evaluate(server_round, arrays, config, grid)
        return [m for m in messages if self.node_client.get(m.metadata.dst_node_id) not in self.forgotten]

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:  # fmt: skip
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid or self._global is None:
            return None, None
        reports = []
        for msg in valid:
            metrics = next(iter(msg.content.metric_records.values()))
            client = int(metrics[CLIENT_ID])
            self.node_client[msg.metadata.src_node_id] = client
            reports.append((client, float(metrics[self.weighted_by_key]), msg.content[self.arrayrecord_key]))
        kind = self._round_kind
        if kind == "unlearn":
            gone = set(self.requests[-1].clients)
            # A client forgotten by an earlier request that came back as a new node is not heard.
            reports = [r for r in reports if r[0] in gone or r[0] not in self.forgotten]
            if not any(c in gone for c, _, _ in reports):
                # None of the clients answered: nothing of theirs to negate this round.
                log(WARNING, "PUF: no forgotten client replied; the unlearning round negates nothing")
            if self.variant == "special":
                reports = [r for r in reports if r[0] in gone]
                if not reports:
                    return self._global, None
                total = sum(n for c, n, _ in reports)
                weights = [-self.eta * n / total for c, n, _ in reports]
            else:
                total = sum(n for c, n, _ in reports)
                weights = [(-self.eta if c in gone else 1.0) * n / total for c, n, _ in reports]
        else:
            reports = [r for r in reports if r[0] not in self.forgotten]
            if not reports:
                return self._global, None
            total = sum(n for c, n, _ in reports)
            weights = [n / total for c, n, _ in reports]
        arrays = pseudo_gradient_step(self._global, [a for _, _, a in reports], weights)
        metrics = self.train_metrics_aggr_fn([msg.content for msg in valid], self.weighted_by_key)
        return arrays, metrics


def pseudo_gradient_step(global_: ArrayRecord, locals_: Sequence[ArrayRecord], weights: Sequence[float]) -> ArrayRecord:
    """``w + sum_k weights[k] (w_k - w)``, accumulated in float64 (floats; integers keep w)."""
    base = global_.to_torch_state_dict()
    out = {}
    states = [a.to_torch_state_dict() for a in locals_]
    for name, w in base.items():
        if not w.is_floating_point():
            out[name] = w
            continue
        update = torch.zeros_like(w, dtype=torch.float64)
        for state, c in zip(states, weights, strict=True):
            update += c * (state[name].double() - w.double())
        out[name] = (w.double() + update).to(w.dtype)
    return ArrayRecord(out)


# -- an in-process grid ------------------------------------------------------------------


@dataclass
class LocalGrid(Grid):
    """Runs ClientApps in this process: node ``i`` holds partition ``i`` (``partition-id``
    in its node config), as Flower's simulation engine does, without Ray or a SuperLink."""

    app: ClientApp
    partitions: int
    run_config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Messages take their run and sender from the process's task identity, which
        # Flower's runtime sets for a ServerApp; in this process nothing has.
        for name, value in (("run_id", 1), ("node_id", 0), ("task_id", 1)):
            if getattr(TaskIdentity, f"_{name}") is None:
                setattr(TaskIdentity, name, value)
        self._run = Run.create_empty(run_id=1)
        self._contexts = {
            node: Context(run_id=1, node_id=node, node_config={"partition-id": node - 1, "num-partitions":
                                                                self.partitions},
                          state=RecordDict(), run_config=dict(self.run_config))
            for node in range(1, self.partitions + 1)
        }  # fmt: skip
        self._replies: dict[str, Message] = {}

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:  # fmt: skip
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg_id = uuid.uuid4().hex
            msg.metadata.__dict__["_message_id"] = msg_id
            msg.metadata.__dict__["_src_node_id"] = 0
            reply = self.app(msg, self._contexts[msg.metadata.dst_node_id])
            reply.metadata.__dict__["_src_node_id"] = msg.metadata.dst_node_id
            self._replies[msg_id] = reply
            ids.append(msg_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        # Every ClientApp has run when push_messages returns: there is nothing to wait for.
        return list(self.pull_messages(self.push_messages(messages)))


def save_global_model(path: str | Path, arrays: ArrayRecord, recipe: Recipe, dataset: Dataset, *,
                      strategy: PUFStrategy | None = None, parent: str | Path | None = None,
                      overwrite: bool = False) -> str:  # fmt: skip
    """Write a Flower run's global model as a checkpoint the audit reads; returns its sha256.

    Without a served request: the federation as trained (``audit run`` audits it like
    ``audit fl train``'s). After ``strategy``'s last request: an unlearned checkpoint that
    records PUF with its variant, eta and recovery rounds, the forgotten clients, and
    ``parent``, the checkpoint of the model the request was served on. ``save_run`` writes
    both, and every model between the requests of a run that served several. Save right
    after recovery: rounds trained later are not part of what the audit's shadows replay.
    """
    fed = recipe.federation
    request = strategy.requests[-1] if strategy is not None and strategy.requests else None
    if request is None:
        return _save(path, arrays, recipe, dataset, fed.rounds, fed.forgotten, None, overwrite)
    if parent is None:
        raise UsageError("an unlearned model names its parent: write the run with save_run, which writes both")
    return _save_unlearned(path, arrays, recipe, dataset, strategy, len(strategy.requests) - 1, parent, overwrite)


def save_run(folder: str | Path, arrays: ArrayRecord, strategy: PUFStrategy, recipe: Recipe, dataset: Dataset, *,
             overwrite: bool = False) -> list[Path]:  # fmt: skip
    """Write every model of a run that served requests, as checkpoints the audit reads:
    ``original.safetensors``, the model the first request was served on, and
    ``unlearned-<i>.safetensors`` after request i (the last one is ``arrays``), each naming
    the one before as its parent. Audit request i with ``--model unlearned-<i>`` and
    ``--original`` the one before it. Returns the paths written, in order.

    A model between two requests is only what its metadata says when the later request
    came right after the earlier one's recovery (no FedAvg round in between): otherwise
    it is refused before anything is written.
    """
    requests = strategy.requests
    if not requests:
        raise UsageError("the run served no unlearning request: save its global model with save_global_model")
    for i, (a, b) in enumerate(zip(requests, requests[1:], strict=False), start=1):
        if a.recovery_left or b.trained_rounds != a.trained_rounds:
            when = "during the recovery of" if a.recovery_left else "after FedAvg rounds that followed"
            raise UsageError(f"request {i + 1} was served {when} request {i}: the model in between is none the "
                             "audit can describe", hint="serve a request right after the previous one's recovery")
    if strategy._training_round > requests[-1].trained_rounds:
        # FedAvg rounds after the last request changed the model in a way the record cannot say.
        raise UsageError(f"the run trained {strategy._training_round - requests[-1].trained_rounds} FedAvg round(s) "
                         "after its last request: the final model is none the audit can describe",
                         hint="save the run right after the last request's recovery")  # fmt: skip
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "original.safetensors"] + [folder / f"unlearned-{i}.safetensors" for i in
                                                 range(1, len(requests) + 1)]  # fmt: skip
    if not overwrite:
        for path in paths:  # all or nothing: refused before the first is written
            if path.exists():
                raise UsageError(f"{path} exists; not overwriting it", hint="pass overwrite=True")
    fed = recipe.federation
    _save(paths[0], requests[0].before, recipe, dataset, requests[0].trained_rounds, fed.forgotten, None, overwrite)
    for i in range(len(requests)):
        model = requests[i + 1].before if i + 1 < len(requests) else arrays
        _save_unlearned(paths[i + 1], model, recipe, dataset, strategy, i, paths[i], overwrite)
    return paths


def _save_unlearned(path: str | Path, arrays: ArrayRecord, recipe: Recipe, dataset: Dataset, strategy: PUFStrategy,
                    index: int, parent: str | Path, overwrite: bool) -> str:  # fmt: skip
    """The model after ``strategy.requests[index]``: PUF's record of that request, and
    every client forgotten by then (the recipe's federation's, then this run's)."""
    fed = recipe.federation
    request = strategy.requests[index]
    clients = federation_clients(dataset, fed)
    forget = np.sort(np.concatenate([clients[c] for c in request.clients]))
    served = [c for r in strategy.requests[: index + 1] for c in r.clients]
    forgotten = tuple(dict.fromkeys(fed.forgotten + tuple(served)))
    params = {"variant": strategy.variant, "eta": float(strategy.eta),
              "recovery_rounds": request.recovery_rounds_run(strategy.recovery_rounds), "target_accuracy": 0.0,
              "seed": strategy.unlearning_seed}  # fmt: skip
    unlearning = Unlearning(method="puf", params=params, forget_fingerprint=fingerprint_ids(forget),
                            n_forget=len(forget), parent_sha256=file_sha256(parent))  # fmt: skip
    return _save(path, arrays, recipe, dataset, request.trained_rounds, forgotten, unlearning, overwrite)


def _save(path: str | Path, arrays: ArrayRecord, recipe: Recipe, dataset: Dataset, rounds: int,
          forgotten: tuple[int, ...], unlearning: Unlearning | None, overwrite: bool) -> str:  # fmt: skip
    fed = recipe.federation
    clients = federation_clients(dataset, fed)
    members = [c for c in range(fed.clients) if c not in fed.excluded]
    trained = np.sort(np.concatenate([clients[c] for c in members]))
    recipe = recipe.replace(federation=replace(fed, rounds=rounds, forgotten=forgotten))
    meta = CheckpointMeta.of("unlearned" if unlearning else "original", dataset, arch=recipe.arch,
                             arch_args=recipe.arch_args, recipe=recipe,
                             trained_ids_fingerprint=fingerprint_ids(trained), n_trained=len(trained),
                             unlearning=unlearning)  # fmt: skip
    state = {k: v.detach().contiguous() for k, v in arrays.to_torch_state_dict().items()}
    return save_checkpoint(Path(path), state, meta, overwrite=overwrite)


def initial_arrays(recipe: Recipe, dataset: Dataset) -> ArrayRecord:
    """The federation's initial global model as Flower arrays."""
    return ArrayRecord(global_model(recipe, dataset).state_dict(0))
