"""MPRU: forget a class with an output filter after any classifier (reconstructed).

Reconstructed from the paper's description (docs/methods.md), not from the authors' code: the
model is left alone and its outputs are post-processed. With ``p = softmax(z)`` and the
forgotten class ``c``, the forgotten mass is projected out and handed to the retained
classes in proportion to their own probability, tilted by per-class biases ``a``::

    r_j(x) = p_j(x) exp(a_j) / sum_{k != c} p_k(x) exp(a_k)        (j != c)
    p'_j(x) = p_j(x) + p_c(x) r_j(x),    p'_c(x) = 0

``a = 0`` is plain renormalization, ``p'_j = p_j / (1 - p_c)`` (``fit="renormalize"``, no
data needed). ``fit="retain-sample"`` fits ``a`` by maximum likelihood of the true labels
on a small labelled retain sample (L-BFGS, small L2 penalty, ``a_c`` unused): where the
model confuses c with a particular class, the mass goes there rather than everywhere.
Neither mode needs the training data or the model's weights, so it wraps torch networks
and scikit-learn trees alike.

The filter is a file of its own (safetensors: tensor ``bias``, the JSON document in the
header under ``unlearning_audit_filter``), tied to the model file by its sha256. Outputs
are log-probabilities with the forgotten column at the finite floor ``log(1e-12)``.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_softmax, logsumexp

from audit_cli.atomic import atomic_path, check_output_path
from audit_cli.data import Dataset, DatasetSpec
from audit_cli.errors import CheckpointError, UsageError
from audit_cli.models.metadata import FILTER_METADATA_KEY, _now
from audit_cli.models.safetensors_file import MAX_HEADER_BYTES, file_sha256
from audit_cli.unlearn.base import MethodEntry
from audit_cli.version import __version__

FILTER_FORMAT = "unlearning-audit/filter"
FILTER_FORMAT_VERSION = 1
FITS = ("renormalize", "retain-sample")
LOG_FLOOR = math.log(1e-12)
"""Log-probability of the forgotten class after filtering: finite, so losses stay defined."""


@dataclass(frozen=True)
class MPRUParams:
    fit: str = "retain-sample"
    """renormalize (biases 0, parameter-free) or retain-sample (biases fitted on a labelled sample)."""
    sample: int = 200
    """Size of the labelled retain sample, drawn with the seed (retain-sample only)."""
    l2: float = 1e-3
    """L2 penalty on the biases; keeps them small and pins their free common offset."""

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if self.sample < 1:
            raise ValueError(f"sample must be at least 1, got {self.sample}")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise ValueError(f"l2 must be a non-negative number, got {self.l2}")

    def inert(self) -> dict[str, str]:
        why = "with fit renormalize (it fits nothing)"
        return {"sample": why, "l2": why} if self.fit == "renormalize" else {}


def _check_logits(logits: np.ndarray, forget_class: int) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 1 or z.shape[-1] < 2:
        raise UsageError(f"logits of shape {z.shape}: need at least two classes on the last axis")
    if not 0 <= forget_class < z.shape[-1]:
        raise UsageError(f"class {forget_class} does not exist (classes 0..{z.shape[-1] - 1})")
    return z


def retain_sample(retain: np.ndarray, params: MPRUParams, seed: int) -> np.ndarray | None:
    """The labelled retain ids the biases are fitted on, drawn with ``seed``; None for
    renormalize, which needs no data. audit unlearn and the audit's shadows both draw here."""
    if params.fit != "retain-sample":
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(retain, size=min(params.sample, len(retain)), replace=False))


def fit_redistribution(logits: np.ndarray, labels: np.ndarray, forget_class: int, params: MPRUParams) -> np.ndarray:
    """The biases ``a`` (C,) for ``apply_filter``, from the model's logits on a labelled sample.

    ``renormalize``: zeros. ``retain-sample``: minimise ``-mean log p'_y(x; a) + l2 |a|^2``
    over the retained classes' biases (``a_c`` stays 0). Examples labelled ``c`` are
    ignored (a retain sample has none).
    """
    z = _check_logits(logits, forget_class)
    num_classes = z.shape[-1]
    bias = np.zeros(num_classes)
    if params.fit == "renormalize":
        return bias
    labels = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or labels.shape != (len(z),):
        raise UsageError(f"logits {z.shape} and labels {labels.shape} do not pair up")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise UsageError(f"labels must lie in 0..{num_classes - 1}")
    keep = labels != forget_class
    z, labels = z[keep], labels[keep]
    if len(labels) == 0:
        raise UsageError("the retain sample is empty: nothing to fit the redistribution on")
    retained = np.flatnonzero(np.arange(num_classes) != forget_class)
    logp = log_softmax(z, axis=1)
    logp_c, logp_r = logp[:, forget_class], logp[:, retained]
    # Column of each label among the retained classes.
    y = np.searchsorted(retained, labels)
    rows = np.arange(len(y))
    onehot = np.zeros_like(logp_r)
    onehot[rows, y] = 1.0

    def objective(a: np.ndarray) -> tuple[float, np.ndarray]:
        s = logp_r + a
        log_s = logsumexp(s, axis=1)
        # log p'_y = log p_y + log(1 + u), u = p_c e^{a_y} / S; d/da_k = u/(1+u) (1[k=y] - q_k).
        t = logp_c + a[y] - log_s
        loglik = logp_r[rows, y] + np.logaddexp(0.0, t)
        q = np.exp(s - log_s[:, None])
        grad = -((expit(t)[:, None] * (onehot - q)).mean(axis=0)) + 2 * params.l2 * a
        return float(-loglik.mean() + params.l2 * a @ a), grad

    # A tight gradient tolerance: on a model that fits its training data, p_c is tiny on
    # retain examples and the default tolerance would stop at the starting point.
    result = minimize(
        objective, np.zeros(len(retained)), jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "maxiter": 1000}
    )
    if not np.all(np.isfinite(result.x)):
        raise UsageError("fitting the MPRU redistribution diverged (non-finite biases)")
    bias[retained] = result.x
    return bias


def apply_filter(logits: np.ndarray, forget_class: int, bias: np.ndarray) -> np.ndarray:
    """Filtered log-probabilities (..., C), float32; the forgotten column is ``LOG_FLOOR``.

    Computed in log space, so a model that is sure of class c (p_c near 1) still hands
    its retained classes a proper distribution instead of 0/0.
    """
    z = _check_logits(logits, forget_class)
    num_classes = z.shape[-1]
    bias = np.asarray(bias, dtype=np.float64)
    if bias.shape != (num_classes,):
        raise UsageError(f"bias of shape {bias.shape} does not fit {num_classes} classes")
    retained = np.arange(num_classes) != forget_class
    logp = log_softmax(z, axis=-1)
    s = logp[..., retained] + bias[retained]
    log_s = logsumexp(s, axis=-1, keepdims=True)
    t = logp[..., forget_class : forget_class + 1] + bias[retained] - log_s
    out = np.full(z.shape, LOG_FLOOR)
    out[..., retained] = np.maximum(logp[..., retained] + np.logaddexp(0.0, t), LOG_FLOOR)
    return out.astype(np.float32)


# --- the filter file ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FilterSpec:
    """A fitted output filter and where it belongs: which class, which model, which data."""

    forget_class: int
    """The class the filter removes."""
    num_classes: int
    """Width of the model's output."""
    bias: np.ndarray
    """Redistribution biases a (num_classes,), float64; a[forget_class] is unused (0)."""
    params: Mapping[str, Any]
    """The method's parameters as used, seed included."""
    parent_sha256: str
    """sha256 of the model file the filter was fitted for."""
    dataset: DatasetSpec
    """How to load the dataset it was fitted on (``dataset.name`` is its name)."""
    dataset_fingerprint: str
    """Content fingerprint of that dataset."""
    retain_sample_fingerprint: str | None
    """Fingerprint of the labelled retain sample's ids; None for renormalize (no sample)."""
    n_retain_sample: int = 0
    """How many examples the biases were fitted on."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Accuracies of the filtered model when the filter was written."""
    method: str = "mpru"
    """Unlearning method registry name (only mpru writes filters)."""
    tool_version: str = __version__
    created: str = ""
    format_version: int = FILTER_FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.method != "mpru":
            raise CheckpointError(f"output filter: unknown method {self.method!r}")
        if not (isinstance(self.num_classes, int) and self.num_classes >= 2):
            raise CheckpointError(f"output filter: num_classes must be an integer >= 2, got {self.num_classes!r}")
        if not (isinstance(self.forget_class, int) and 0 <= self.forget_class < self.num_classes):
            raise CheckpointError(
                f"output filter: forget class {self.forget_class!r} is not in 0..{self.num_classes - 1}"
            )
        bias = np.asarray(self.bias)
        if bias.dtype.kind != "f" or bias.shape != (self.num_classes,):
            raise CheckpointError(
                f"output filter: bias is {bias.dtype} {bias.shape}, expected float ({self.num_classes},)"
            )
        if not np.all(np.isfinite(bias)):
            raise CheckpointError(f"output filter: bias has {int((~np.isfinite(bias)).sum())} NaN or infinite value(s)")
        if not (isinstance(self.parent_sha256, str) and re.fullmatch(r"[0-9a-f]{64}", self.parent_sha256)):
            raise CheckpointError("output filter: parent_sha256 is not a sha256 hex digest")
        frozen = bias.astype(np.float64, copy=True)
        frozen.flags.writeable = False
        object.__setattr__(self, "bias", frozen)
        object.__setattr__(self, "params", dict(self.params))
        if not self.created:
            object.__setattr__(self, "created", _now())

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """The filtered log-probabilities of ``logits`` (..., num_classes)."""
        return apply_filter(logits, self.forget_class, self.bias)

    def to_dict(self) -> dict:
        """The JSON document (without the bias, which is the file's tensor)."""
        return {
            "format": FILTER_FORMAT,
            "format_version": self.format_version,
            "method": self.method,
            "forget_class": self.forget_class,
            "num_classes": self.num_classes,
            "params": dict(self.params),
            "parent_sha256": self.parent_sha256,
            "dataset": self.dataset.to_dict(),
            "dataset_fingerprint": self.dataset_fingerprint,
            "retain_sample_fingerprint": self.retain_sample_fingerprint,
            "n_retain_sample": self.n_retain_sample,
            "metrics": dict(self.metrics),
            "tool_version": self.tool_version,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: object, bias: np.ndarray) -> FilterSpec:
        if not isinstance(data, Mapping):
            raise CheckpointError("output filter metadata is not a JSON object")
        if data.get("format") != FILTER_FORMAT:
            raise CheckpointError(f"output filter metadata has format {data.get('format')!r}, not {FILTER_FORMAT!r}")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise CheckpointError("output filter metadata has no integer format_version")
        if version > FILTER_FORMAT_VERSION:
            raise CheckpointError(
                f"output filter format {version} is newer than this tool understands ({FILTER_FORMAT_VERSION})",
                hint="upgrade unlearning-audit",
            )
        try:
            sample_fp = data.get("retain_sample_fingerprint")
            return cls(
                forget_class=_int(data["forget_class"]),
                num_classes=_int(data["num_classes"]),
                bias=bias,
                params=dict(data.get("params") or {}),
                parent_sha256=str(data["parent_sha256"]),
                dataset=DatasetSpec.from_dict(data["dataset"]),
                dataset_fingerprint=str(data["dataset_fingerprint"]),
                retain_sample_fingerprint=None if sample_fp is None else str(sample_fp),
                n_retain_sample=_int(data.get("n_retain_sample", 0)),
                metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
                method=str(data.get("method", "mpru")),
                tool_version=str(data.get("tool_version", "unknown")),
                created=str(data.get("created", "")),
                format_version=version,
            )
        except KeyError as exc:
            raise CheckpointError(f"output filter metadata lacks field {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"output filter metadata is malformed: {exc}") from None


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def save_filter(path: str | Path, spec: FilterSpec, *, overwrite: bool = False) -> str:
    """Write the filter as safetensors (tensor ``bias``, JSON in the header), atomically; return its sha256."""
    from safetensors.numpy import save_file

    path = check_output_path(path, overwrite=overwrite)
    doc = json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
    with atomic_path(path) as tmp:
        save_file({"bias": np.ascontiguousarray(spec.bias)}, str(tmp), metadata={FILTER_METADATA_KEY: doc})
    return file_sha256(path)


def load_filter(path: str | Path) -> FilterSpec:
    """Read and check an output filter; anything wrong with it is a one-line CheckpointError."""
    path = Path(path)
    try:
        return _load_filter(path)
    except CheckpointError as exc:
        if str(path) in exc.message:
            raise
        raise CheckpointError(f"{path}: {exc.message}", hint=exc.hint) from None


def _load_filter(path: Path) -> FilterSpec:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not path.is_file():
        raise CheckpointError(f"output filter not found: {path}" if not path.exists() else f"{path} is not a file")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError("not an output filter (too short for a safetensors file)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(size - 8, MAX_HEADER_BYTES):
            raise CheckpointError("not an output filter, or a truncated one (safetensors header does not fit the file)")
        header_bytes = fh.read(header_len)
    try:
        header = json.loads(header_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
        raise CheckpointError("not an output filter (safetensors header is not JSON)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or FILTER_METADATA_KEY not in metadata:
        raise CheckpointError(
            "not an output filter (no filter metadata in its header)",
            hint="write one with audit unlearn --method mpru --forget-class C",
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"corrupt or truncated output filter ({first[0][:200] if first else 'unreadable'})"
        ) from None
    if set(tensors) != {"bias"}:
        raise CheckpointError(f"an output filter holds one tensor, 'bias'; this one holds {sorted(tensors)[:3]}")
    try:
        data = json.loads(metadata[FILTER_METADATA_KEY])
    except (json.JSONDecodeError, TypeError, RecursionError, ValueError):
        raise CheckpointError("output filter metadata is not valid JSON") from None
    return FilterSpec.from_dict(data, tensors["bias"])


def check_filter_parent(spec: FilterSpec, model_sha256: str, path: str | Path) -> None:
    """Refuse a filter fitted for another model file (its outputs would be filtered blind)."""
    if spec.parent_sha256 != model_sha256:
        raise UsageError(
            f"{path} was fitted for the model with sha256 {spec.parent_sha256[:16]}..., "
            f"not this one ({model_sha256[:16]}...)",
            hint="fit a filter for this model: audit unlearn --method mpru --forget-class C",
        )


def filter_outputs(
    view_logits: np.ndarray, dataset: Dataset, retain: np.ndarray, forget_class: int, params: MPRUParams, seed: int
) -> np.ndarray:
    """One model's outputs (views, n, C) through a filter fitted as ``audit unlearn`` fits it:
    on a labelled sample of the model's own retain set (what the audit's shadows do)."""
    sample = retain_sample(retain, params, seed)
    rows = dataset.rows(retain if sample is None else sample)
    bias = fit_redistribution(view_logits[0][rows], dataset.y[rows], forget_class, params)
    return apply_filter(view_logits, forget_class, bias)


ENTRY = MethodEntry(
    name="mpru",
    params=MPRUParams,
    filter_outputs=filter_outputs,
    supports=frozenset({"class"}),
    description="Output filter (writes a filter file; the model is untouched): removes class c from the "
    "outputs and redistributes its probability over the retained classes.",
)
