"""What one audit is given, resolved and checked before anything is trained.

``AuditConfig`` is what the user asked for (from flags, environment and files, see
audit_cli/config.py); ``prepare`` turns it into ``AuditInputs``: the audited model loaded
safely, the dataset it was trained on, the forget set and the test examples it is scored
against, the method the shadows replay, and the shadow bank's spec. ``power_notes``
refuses, before any shadow trains, an audit whose counts cannot decide its threshold.
``audit run`` and ``audit shadows`` share all of it, so they always agree on the bank.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attacks.lira import VARIANCES
from audit_cli.auditing.audited import AuditedModel, load_audited, load_reference
from audit_cli.auditing.estimate import check_estimator, estimate_retrained
from audit_cli.auditing.request import AuditConfig
from audit_cli.checks.context import ReferenceModel
from audit_cli.checks.gate import GATES, MAX_UNSCORABLE, MIN_EXAMPLES
from audit_cli.config import GATED_CHECKS
from audit_cli.data import Dataset, fingerprint_ids
from audit_cli.errors import InconclusiveError, UsageError
from audit_cli.families import family_of
from audit_cli.federated.partition import client_ids, federation_clients, request_federation, whole_clients
from audit_cli.files import check_printable
from audit_cli.models.metadata import CheckpointMeta
from audit_cli.models.recipe import Federation
from audit_cli.repair.unlearn_request import resolve_forget
from audit_cli.shadows import BankSpec, ForgetRule, ShadowBank
from audit_cli.shadows.executors import executor
from audit_cli.shadows.looks import FIRST_LOOK, check_shadow_count
from audit_cli.training.loop import resolve_device
from audit_cli.unlearn import UnlearningSpec, check_inert, get_method, parse_params, resolve_unlearning
from audit_cli.unlearn.mpru import FilterSpec, check_filter_parent, load_filter

# Shadows trained at once in a class-forgetting bank, read in one look (random forgetting's
# chunk is its first look).
CLASS_CHUNK = 16
# Random forgetting scores at most this many test examples per forget example (a seeded
# sample beyond it), so that each candidate is UNLEARNED in enough shadows.
NEGATIVES_PER_FORGET = 4


def load_references(inputs: AuditInputs) -> tuple[ReferenceModel | None, ReferenceModel | None]:
    """The --original and --retrained models, checked before minutes of shadow training:
    the original must be the very model the audited one was unlearned from (the
    unlearning-effect check measures the move from it)."""
    config, audited, meta = inputs.config, inputs.model, inputs.model.meta
    refs = []
    for given in (config.original, config.retrained):
        ref = load_reference(given, audited, inputs.dataset, config.strip_prefix)
        refs.append(ReferenceModel(ref, ref.view_logits(inputs.dataset, inputs.device)) if ref is not None else None)
    original, retrained = refs
    if retrained is not None:
        check_retrained_without(retrained.model.meta, config.retrained, audited, inputs.dataset, inputs.forget,
                                tuple(config.forget_clients))  # fmt: skip
    if original is not None and meta.unlearning is not None and original.model.sha256 != meta.unlearning.parent_sha256:
        raise UsageError(
            f"{config.original} is not the model {config.model} was unlearned from (parent sha256 "
            f"{meta.unlearning.parent_sha256[:12]}...)",
            hint="pass the checkpoint audit unlearn started from as --original",
        )
    if config.estimate_retrained is not None:  # after the parent check: the estimate starts from it
        estimate = estimate_retrained(original.model, inputs.dataset, inputs.forget, inputs.retain,
                                      config.forget_class, inputs.device, config.seed)  # fmt: skip
        retrained = ReferenceModel(None, estimate.view_logits, estimated=estimate.details)
    return original, retrained


def check_retrained_without(ref: CheckpointMeta, path: object, audited: AuditedModel, dataset: Dataset,
                            forget: np.ndarray, forget_clients: tuple[int, ...] = ()) -> None:  # fmt: skip
    """A --retrained model must be the model retrained without the forget set: utility and
    the reference metrics compare with it. Checked where the checkpoints say what was left
    out: centrally, a model written by ``audit train --exclude`` (or ``--exclude-class``) or
    ``audit unlearn --method retrain`` must have left out exactly the forget set, and an
    original is refused; for a federation, the reference must be the same federation
    without every client the audited one has lost and the request's clients. Imported
    weights are not checked."""
    if len(forget) == 0:
        return
    fed = getattr(audited.recipe, "federation", None)
    if fed is not None:
        _check_retrained_federation(ref, path, fed, forget_clients)
        return
    if ref.kind == "retrained" and ref.excluded is not None:
        left_out = ref.excluded.ids_fingerprint
    elif ref.unlearning is not None and ref.unlearning.method == "retrain":
        left_out = ref.unlearning.forget_fingerprint
    elif ref.kind == "original" and ref.trained_ids_fingerprint == fingerprint_ids(dataset.train_ids):
        left_out = fingerprint_ids(np.empty(0, dtype=np.int64))
    else:
        return
    if left_out != fingerprint_ids(forget):
        what = "is an original that left out nothing" if ref.kind == "original" else "was retrained without another set"
        raise UsageError(f"{path} {what}, not without the {len(forget)} forget ids",
                         hint="pass the model audit train --exclude <forget list> (or --exclude-class) writes, or "
                         "--estimate-retrained influence")  # fmt: skip


def _check_retrained_federation(ref: CheckpointMeta, path: object, fed: Federation,
                                forget_clients: tuple[int, ...]) -> None:  # fmt: skip
    if not forget_clients:
        return  # a forget list that is not whole clients: no federation was retrained without it
    ref_fed = getattr(ref.recipe, "federation", None) if ref.recipe is not None else None
    wanted = sorted(set(fed.gone) | set(forget_clients))
    same = ref_fed is not None and (ref_fed.clients, ref_fed.partition, ref_fed.alpha, ref_fed.seed) == (
        fed.clients, fed.partition, fed.alpha, fed.seed)  # fmt: skip
    if not same or sorted(set(ref_fed.gone)) != wanted:
        had = "is not this federation" if not same else f"left out clients {sorted(set(ref_fed.gone))}"
        raise UsageError(f"{path} {had}; the retrained federation leaves out clients {wanted}",
                         hint="audit fl train --exclude-client for each of them (same clients, partition and seed)")


@dataclass(frozen=True, eq=False)
class AuditInputs:
    """The resolved inputs of one audit: what `audit run` and `audit shadows` share."""

    config: AuditConfig
    """The configuration as resolved: with --filter, the class comes from the filter."""
    model: AuditedModel
    dataset: Dataset
    forget: np.ndarray
    retain: np.ndarray
    test: np.ndarray
    """Negatives of the attack: test ids (of the forgotten class, for class forgetting)."""
    unlearning: UnlearningSpec | None
    """What the shadows replay: the model's declared unlearning (or --method), resolved."""
    bank: ShadowBank
    device: torch.device
    output_filter: FilterSpec | None = None
    """An MPRU output filter the audited outputs pass through (``--filter``)."""

    @property
    def method(self) -> str | None:
        return self.unlearning.method if self.unlearning is not None else None

    def build_bank(self, progress=None, waiting=None, *, shadows: int | None = None) -> int:
        """Top the bank up to ``shadows`` (default: the configured number), where the
        configuration says; ``waiting(holder)`` is called if another run holds the bank's lock."""
        run = executor(self.config.executor, self.config.ray_address or None)
        return self.bank.build(shadows or self.config.shadows, device=self.device, progress=progress, run=run,
                               lock_timeout=self.config.lock_timeout, waiting=waiting)

    @property
    def params(self) -> dict[str, object]:
        """The method's parameters as the shadows use them (defaults filled in)."""
        return dict(self.unlearning.params) if self.unlearning is not None else {}


def prepare(config: AuditConfig) -> AuditInputs:
    """Load and check everything an audit needs; nothing is trained yet."""
    device = resolve_device(config.device)
    for name in GATED_CHECKS.values():
        value = getattr(config, name)
        if name == "missing_effect_above":
            # The missing share exceeds 1 when unlearning raised the forget set's confidence:
            # a threshold of 1 fails exactly that.
            if not 0 <= value <= 1:
                raise UsageError(f"missing-effect-above is a share and must lie in [0, 1], got {value}")
        elif not 0 <= value < 1:
            # These scores never exceed 1: at 1 the check could not fail, and would pass every model.
            raise UsageError(f"{name.replace('_', '-')} must lie in [0, 1), got {value}",
                             hint="its score never exceeds 1: at 1 the check could not fail")  # fmt: skip
    if config.variance not in VARIANCES:
        raise UsageError(f"--variance must be auto, global or per-example, got {config.variance!r}")
    if config.gate not in GATES:
        raise UsageError(f"--gate must be {' or '.join(GATES)}, got {config.gate!r}")
    if config.spread not in ("shared", "separate"):
        raise UsageError(f"spread must be shared or separate, got {config.spread!r}")
    check_estimator(config.estimate_retrained, config.original, config.retrained)
    check_shadow_count(config.shadows)
    executor(config.executor)  # a typo fails now, not after loading everything
    check_bank_folder(Path(config.bank))
    audited, dataset = load_audited(config)
    meta = audited.meta
    output_filter = None
    if config.filter is not None:
        output_filter = load_filter(config.filter)
        check_filter_parent(output_filter, audited.sha256, config.filter)
        if meta.unlearning is not None:
            raise UsageError(f"--filter wraps the original model; {config.model} is already unlearned")
        if output_filter.dataset_fingerprint != dataset.fingerprint:
            raise UsageError(f"{config.filter} was fitted on another dataset than {dataset.name!r}")
        if config.forget is not None:
            raise UsageError("an MPRU filter forgets a class; pass --forget-class (or nothing), not --forget")
        if config.forget_class is not None and config.forget_class != output_filter.forget_class:
            raise UsageError(f"{config.filter} forgets class {output_filter.forget_class}, not {config.forget_class}")
        config = replace(config, forget_class=output_filter.forget_class, forget=None)
    if config.forget_clients:
        config = replace(config, forget=forgotten_clients_ids(config, audited.recipe, dataset))
    forget, retain = resolve_forget(dataset, config.forget, config.forget_class)
    if config.forget is not None and not config.forget_clients and getattr(audited.recipe, "federation", None):
        # An id file holding whole clients of a federation is those clients: the same shadows
        # (and report) as --forget-client.
        config = replace(config, forget_clients=whole_clients(dataset, audited.recipe.federation, forget))
    if meta.unlearning is not None and meta.unlearning.forget_fingerprint != fingerprint_ids(forget):
        raise UsageError(
            f"{config.model} was unlearned with another forget set than the one given",
            hint="pass the forget list the model was unlearned with",
        )
    declared = output_filter.method if output_filter else meta.unlearning.method if meta.unlearning else None
    declared_params = output_filter.params if output_filter else meta.unlearning.params if meta.unlearning else {}
    # Your own unlearning code is the method "own" (audit methods).
    method = config.method or declared or ("own" if config.unlearner is not None else None)
    unlearning = None
    if method is None and config.method_params:
        raise UsageError(f"--param sets an unlearning method's parameters; {config.model} declares no method",
                         hint="pass --method NAME with it (audit methods)")  # fmt: skip
    if method is not None:
        # --param overrides the declared parameters name by name; another method than the
        # declared one starts from its own defaults.
        params = dict(declared_params if method == declared else {}) | dict(config.method_params or {})
        params.pop("seed", None)
        # Shadows replay the augmentation too (it changes what unlearning does); it travels
        # beside the method's own parameters, as in the checkpoint.
        augmentation = str(params.pop("augmentation", "none"))
        entry = get_method(method)
        unlearning = resolve_unlearning(entry, params, augmentation, dataset)
        check_inert(entry, parse_params(entry, unlearning.params), config.method_params or {})
        if output_filter is not None and entry.produces != "filter":
            raise UsageError(f"--filter audits an output filter; {method} changes weights (drop --method)")
        if output_filter is None and entry.produces == "filter":
            raise UsageError(f"{method} is an output filter: pass the filter file with --filter")
        family_of(audited.recipe).check_method(entry, audited.recipe)
    test = dataset.test_ids
    if config.forget_class is None and len(test) > NEGATIVES_PER_FORGET * len(forget):
        # Each shadow forgets |F| of the scored candidates it trained on; with many more test
        # ids than forget ids a candidate would be UNLEARNED in almost no shadow. A seeded
        # sample of 4 negatives per forget example keeps that share at a fifth or more, and
        # costs the AUC little precision (its variance goes as 1/n_forget + 1/n_test).
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 23]))
        test = np.sort(rng.choice(test, NEGATIVES_PER_FORGET * len(forget), replace=False))
    if config.forget_class is not None:
        # The class game: forgotten training examples against unseen examples of the class.
        test = test[dataset.y[dataset.rows(test)] == config.forget_class]
        if len(test) < 2:
            raise InconclusiveError(
                f"class {config.forget_class} has {len(test)} test example(s): nothing to compare the forgotten "
                "examples with",
                hint="use a test split that holds examples of the class",
            )
    recipe, train_size = audited.recipe, original_train_size(meta, dataset)
    if config.forget_clients:
        # The shadows replay the federation the request was served on: its members then, the
        # request's clients as many clients, and the examples those members held.
        fed = recipe.federation
        before = set(fed.gone) - set(config.forget_clients)
        train_size = sum(len(ids) for c, ids in enumerate(federation_clients(dataset, fed)) if c not in before)
        recipe = recipe.replace(federation=request_federation(fed, config.forget_clients))
    elif getattr(recipe, "federation", None) is not None:
        recipe = recipe.replace(federation=recipe.federation.rule())  # a forget list: one forgotten client
    spec = BankSpec(
        dataset=dataset,
        recipe=recipe,
        unlearning=unlearning,
        forget_rule=ForgetRule(forget_class=config.forget_class)
        if config.forget_class is not None
        else ForgetRule(forget_ids=tuple(int(i) for i in forget), negatives=tuple(int(i) for i in test)),
        seed=config.seed,
        train_size=train_size,
    )
    chunk_size = config.chunk_size
    if chunk_size is None:
        chunk_size = CLASS_CHUNK if config.forget_class is not None else FIRST_LOOK
    bank = ShadowBank(config.bank, spec, chunk_size=chunk_size)
    return AuditInputs(config, audited, dataset, forget, retain, test, unlearning, bank, device, output_filter)


def forgotten_clients_ids(config: AuditConfig, recipe: Any, dataset: Dataset) -> np.ndarray:
    """The examples of the forgotten clients of a federated model (``--forget-client``)."""
    if config.forget is not None or config.forget_class is not None:
        raise UsageError("give --forget-client or --forget/--forget-class, not both")
    federation = getattr(recipe, "federation", None)
    if federation is None:
        raise UsageError(f"--forget-client audits a federated model; {config.model} was trained centrally",
                         hint="pass --forget ids.txt")  # fmt: skip
    return client_ids(dataset, federation, config.forget_clients)


def check_original_given(inputs: AuditInputs) -> None:
    """An audit of a model audited as unlearned compares it with the model it started from,
    or it could never pass: a no-op passes every attack where membership leakage is weak,
    and only the original shows that nothing moved. Refused before any shadow trains,
    whatever the checkpoint's metadata says (a header anyone can write proves nothing). An
    output filter's original is the model it wraps. Building a bank ahead of time (audit
    shadows) needs no original."""
    config = inputs.config
    if inputs.method is not None and config.original is None and inputs.output_filter is None:
        raise UsageError(
            f"{config.model} is audited as unlearned ({inputs.method}), and without the model it started from a model "
            "that forgot nothing cannot be told from one that forgot: add --original ORIGINAL",
            hint="--original is the checkpoint the unlearning started from (for an exact retrain: the model "
            "trained on every training id); to test membership only, audit a model that declares no method",
        )


def check_bank_folder(bank: Path) -> None:
    """The bank's parent folder must be a folder this tool may create banks in, named
    without control characters (from Python, too: the command line refuses them earlier)."""
    check_printable(bank, "--bank")
    resolved = bank.resolve()
    if resolved.parts[1:2] in (("proc",), ("sys",), ("dev",)):
        raise UsageError(f"--bank {bank} is under /{resolved.parts[1]}: not a place for shadow banks")
    if bank.exists() and not bank.is_dir():
        raise UsageError(f"--bank {bank} is a file, not a folder")


def power_notes(inputs: AuditInputs, min_leakage: float) -> list[str]:
    """What the counts alone say a pass cannot reach, said before any shadow is trained: the
    audit still runs, since a fail needs no such power (a no-op is failed on the first
    chunk). Refuses (exit 3, unless --allow-underpowered) only what no data can make up
    for: fewer forget or test examples than any claim needs, either way, and shadows too
    few for every scored example to be observed UNLEARNED and OUT."""
    config, n_forget, n_test = inputs.config, len(inputs.forget), len(inputs.test)
    notes = []
    if min(n_forget, n_test) < MIN_EXAMPLES and not config.allow_underpowered:
        raise InconclusiveError(
            f"{n_forget} forget and {n_test} test examples are too few for any claim (at least {MIN_EXAMPLES} "
            "each); no shadow was trained",
            hint="pass --allow-underpowered to run anyway",
        )
    # The leakage gate decides a pass only where the residual share cannot (class forgetting).
    if config.forget_class is not None and config.gate == "decide" and config.fail_above < min_leakage:
        notes.append(f"{n_forget} forget and {n_test} test examples cannot show leakage below {config.fail_above}: "
                     f"an exact unlearner passes at most half the time below {min_leakage:.3f} (raise --fail-above "
                     "or audit a larger forget set); the audit can still fail the model")  # fmt: skip
    if not config.allow_underpowered:
        _check_observed(inputs)
    return notes


def _check_observed(inputs: AuditInputs) -> None:
    config = inputs.config
    hint = "pass --allow-underpowered to run anyway"
    if inputs.method is None or config.shadows_from is not None:
        return  # (an imported bank's observations are counted once it is loaded)
    # With one observation per state an example is scorable; below that share it is not.
    rates = inputs.bank.spec.state_rates()
    if config.forget_class is not None:
        rates = rates[:1]  # the negatives are the twins, every one of them
    never = max((1 - rate) ** config.shadows for rate in rates)
    if never > MAX_UNSCORABLE:
        raise InconclusiveError(
            f"with {config.shadows} shadows {never:.0%} of the scored examples would have no shadow that "
            f"unlearned them or none that never saw them (more than {MAX_UNSCORABLE:.0%}); no shadow was trained",
            hint="use more shadows, or " + hint,
        )


def original_train_size(meta: CheckpointMeta, dataset: Dataset) -> int:
    """How many examples the audited model (or, for an unlearned or retrained one, the model
    it stands for) was first trained on: what each shadow trains on."""
    if meta.kind == "retrained" and meta.excluded is not None and meta.n_trained is not None:
        return int(meta.n_trained) + int(meta.excluded.n_ids)
    if meta.n_trained is not None:
        return int(meta.n_trained)
    return len(dataset.train_ids)
