"""The audit request: one typed value from every front end to ``prepare``.

``AuditRequest`` is what to audit (the model, its forget set, references, how its shadows
are trained); ``AuditConfig`` adds the settings it runs with. The command line
(cli/run.py, cli/shadows.py) and the Python API (api.py) each build an ``AuditRequest``
once and join it with the resolved settings in ``config_from_settings``; ``prepare``
(audit/inputs.py) takes the ``AuditConfig``. A new audit input is a field here, an option
in each front end that offers it, and the code that reads it (docs/architecture.md).

Nothing here imports torch: the commands that only resolve settings start without it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from audit_cli.config import DEFAULTS, Setting
from audit_cli.data import Dataset
from audit_cli.errors import UsageError

DEFAULT_SHADOWS = int(DEFAULTS["shadows"])


def whole(value: object, what: str) -> int:
    """A whole number given from Python: an int or a numpy integer, never a bool."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise UsageError(f"{what}: expected a whole number, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class AuditRequest:
    """What to audit: the model, what it forgot, the references it is compared with and how
    its shadows are trained. Each front end (``audit run``, ``audit shadows``, ``audit_cli.audit``
    from Python) builds one; the checks a caller can fail by the type of what it passed are
    made here, once, for all of them."""

    model: Path | Any
    """A model file, or (from Python) an in-memory model: an nn.Module, a fitted
    scikit-learn classifier, or a callable from a batch of inputs to logits."""
    forget: Path | np.ndarray | None = None
    """An id file, or (from Python) the ids themselves."""
    filter: Path | None = None
    """An MPRU output filter (``audit unlearn --method mpru``) applied to the model's outputs."""
    forget_class: int | None = None
    forget_clients: tuple[int, ...] = ()
    """A federated model: the forgotten clients, whose examples are the forget set."""
    original: Path | None = None
    retrained: Path | None = None
    estimate_retrained: str | None = None
    """Without a retrained model: estimate one from ``original`` with this method
    (influence); the checks that read it label it estimated and never gate on it."""
    data: str | Dataset | None = None
    """A registry name or data file (default: the checkpoint's), or (from Python) a Dataset."""
    data_options: Mapping[str, object] = field(default_factory=dict)
    data_root: Path | None = None
    method: str | None = None
    """Override the unlearning method recorded in the checkpoint."""
    method_params: Mapping[str, object] | None = None
    arch: str | None = None
    """For a model file without metadata: its architecture (a name or MODULE:FACTORY)."""
    strip_prefix: str | None = None
    """A prefix a wrapper added to every weight's key (``module.``), removed on loading."""
    recipe: Path | None = None
    """For a model the tool did not train: a recipe file its shadows are trained with."""
    trainer: str | Callable[..., Any] | None = None
    """The user's own training code (MODULE:FUNCTION or a callable) the shadows are trained with."""
    unlearner: str | Callable[..., Any] | None = None
    """The user's own unlearning code the shadows are unlearned with (with ``trainer``)."""
    shadows_from: Path | None = None
    """A bank imported with ``audit bank import``: its shadows are scored, none is trained."""

    def __post_init__(self) -> None:
        # Python callers may pass strings for paths, numpy integers, lists: normalised here,
        # with the message naming the argument, not deep inside prepare.
        for name in ("model", "forget", "original", "retrained"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, Path(getattr(self, name)))
        if self.forget_class is not None:
            object.__setattr__(self, "forget_class", whole(self.forget_class, "forget_class"))
        clients = self.forget_clients
        if isinstance(clients, str | bytes) or not isinstance(clients, Sequence | np.ndarray):
            raise UsageError(f"forget_clients must be a sequence of client numbers, got {clients!r}")
        object.__setattr__(self, "forget_clients", tuple(whole(c, "forget_clients") for c in clients))
        for name, value in (("params", self.method_params), ("data_options", self.data_options)):
            if value is not None and not isinstance(value, Mapping):
                raise UsageError(f"{name} must be a mapping of name to value, got {type(value).__name__}")
        object.__setattr__(self, "data_options", dict(self.data_options or {}))
        for name in ("recipe", "shadows_from"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str | Path):
                raise UsageError(f"{name} must be a path, got {type(value).__name__}")
            object.__setattr__(self, name, Path(value) if value is not None else None)
        if isinstance(self.data, Path):
            object.__setattr__(self, "data", str(self.data))
        elif self.data is not None and not isinstance(self.data, str | Dataset):
            raise UsageError(f"data must be a dataset name, a file or a Dataset, got {type(self.data).__name__}")


@dataclass(frozen=True)
class AuditConfig(AuditRequest):
    """An audit request and the settings it runs with (thresholds, shadows, bank, gate,
    seed, device...): what ``prepare`` takes. The settings' defaults are config.DEFAULTS (one
    source for the command line, the settings files and Python callers)."""

    shadows: int = DEFAULT_SHADOWS
    bank: Path = Path(str(DEFAULTS["bank"]))
    chunk_size: int | None = None
    """Shadows trained at once (a new bank's chunks); None: the first look's count for random
    forgetting (audit_cli/shadows/looks.py: a fresh audit stops there when it can), 16 for class
    forgetting (one look at the whole bank)."""
    fail_above: float = DEFAULTS["fail_above"]
    """The leakage threshold (2|AUC - 0.5|): fail above it; with random forgetting it only fails."""
    residual_above: float = DEFAULTS["residual_above"]
    """Random forgetting, the headline gate: pass when the forget set's residual memorisation share
    is shown within this of exact unlearning (0); fail when exact unlearning is rejected and the share
    lies beyond it (audit_cli/checks/residual.py)."""
    mia_nn_above: float = DEFAULTS["mia_nn_above"]
    """Class forgetting: fail when the MIA-NN score's lower bound exceeds this."""
    forget_class_accuracy_above: float = DEFAULTS["forget_class_accuracy_above"]
    """Class forgetting: fail when forget-class accuracy beyond the retrained twins' exceeds this."""
    utility_drop_above: float = DEFAULTS["utility_drop_above"]
    """With --retrained: fail when the test-accuracy drop below the retrained model exceeds this."""
    missing_effect_above: float = DEFAULTS["missing_effect_above"]
    """With --original: fail when the share of exact unlearning's effect on the forget set that
    the model did not achieve exceeds this (1 = a no-op)."""
    gate: str = DEFAULTS["gate"]
    """decide: pass only when an interval shows the score below its threshold; evidence: pass
    unless it shows it above (the older reading)."""
    allow_underpowered: bool = DEFAULTS["allow_underpowered"]
    """Train shadows even when there are too few forget or test examples for any claim, or too
    few shadows to observe every example in both states."""
    variance: str = DEFAULTS["variance"]
    """Gaussian spread per example, pooled ("global"), or auto (by observations per state)."""
    spread: str = "shared"
    """One spread for both Gaussians of an example (shared), or one each (separate)."""
    seed: int = DEFAULTS["seed"]
    device: str = DEFAULTS["device"]
    executor: str = DEFAULTS["executor"]
    """Where shadow chunks are built: local, or ray (a Ray cluster)."""
    ray_address: str = DEFAULTS["ray_address"]
    """The Ray cluster's address ("": RAY_ADDRESS, else a local Ray)."""
    deterministic: bool = DEFAULTS["deterministic"]
    """Run torch with deterministic algorithms only (slower on GPU; recorded in the report)."""
    lock_timeout: float = DEFAULTS["lock_timeout"]
    """Seconds to wait for another run building the same bank (audit_cli/shadows/lock.py)."""
    settings: Mapping[str, object] = field(default_factory=dict)
    """Where each setting came from ({name: {"value", "source"}}), recorded in the report."""
    config_file: Path | None = None


def config_from_settings(
    request: AuditRequest,
    settings: Mapping[str, Setting],
    *,
    source_label: str = "flag",
    config_file: Path | None = None,
) -> AuditConfig:
    """The one place resolved settings (config.resolve_settings) join a request into an
    AuditConfig, for the command line and the Python API alike. ``source_label`` names
    settings given directly ("flag" on the command line, "argument" from Python) in the
    report."""
    names = {f.name for f in fields(AuditConfig)}
    values = {k: s.value for k, s in settings.items() if k in names}
    values["bank"] = Path(str(values["bank"]))
    sources = {k: {"value": s.value, "source": source_label if s.source == "flag" else s.source}
               for k, s in settings.items()}  # fmt: skip
    asked = {f.name: getattr(request, f.name) for f in fields(AuditRequest)}
    return AuditConfig(**asked, **values, settings=sources, config_file=config_file)
