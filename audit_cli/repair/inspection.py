"""What a file the tool reads or writes holds, described without running anything from it.

`audit inspect` takes any of the tool's own artifacts: a checkpoint (.safetensors, or a
plain-state_dict .pt), a scikit-learn model (.skops, loaded against the trusted-type list),
or an MPRU output filter (a .safetensors file with filter metadata). Each goes through the
same safe loader the audit uses; the kind is sniffed from the bytes, not the file name.
A safetensors checkpoint is read with numpy, through the header checks the audit's loader
uses (audit_cli/models/safetensors_file.py), so inspecting one needs no torch; a .pt file,
or weights numpy cannot hold (bfloat16), go through the torch loader.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from audit_cli.models.metadata import FILTER_METADATA_KEY, CheckpointMeta
from audit_cli.models.safetensors_file import (
    MAX_HEADER_BYTES,
    check_finite_arrays,
    file_sha256,
    header_meta,
    looks_like_safetensors,
    read_arrays,
    read_header,
)
from audit_cli.models.sklearn_model import estimator_params, load_sklearn, looks_like_skops


@dataclass(frozen=True)
class Inspection:
    """One file described twice: as a JSON document and as rows for a table."""

    doc: dict
    rows: tuple[tuple[str, str], ...]


def inspect_file(path: str | Path) -> Inspection:
    """Describe a checkpoint, scikit-learn model or output filter (sniffed from its bytes)."""
    path = Path(path)
    if path.is_file() and looks_like_skops(path):
        return _inspect_skops(path)
    if path.is_file() and is_filter_file(path):
        return _inspect_filter(path)
    return _inspect_checkpoint(path)


def is_filter_file(path: Path) -> bool:
    """A safetensors file whose header carries output-filter metadata (read, not loaded)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return False
            (header_len,) = struct.unpack("<Q", head)
            if header_len > min(size - 8, MAX_HEADER_BYTES):
                return False
            header = json.loads(fh.read(header_len))
    except (OSError, ValueError, RecursionError):
        return False
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(metadata, dict) and FILTER_METADATA_KEY in metadata


def _inspect_checkpoint(path: Path) -> Inspection:
    arrays = None
    if path.is_file():
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(9)
        if looks_like_safetensors(head, size):
            header = read_header(path, size)
            arrays = read_arrays(path, header)
    if arrays is not None:
        check_finite_arrays(path, arrays)
        fmt, sha, meta = "safetensors", file_sha256(path), header_meta(path, header)
        shapes = {k: list(v.shape) for k, v in arrays.items()}
    else:
        # Here, not at the top: only .pt files and bfloat16 weights need torch.
        from audit_cli.models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        fmt, sha, meta = ckpt.format, ckpt.sha256, ckpt.meta
        shapes = {k: list(v.shape) for k, v in ckpt.state_dict.items()}
    n_params = sum(math.prod(shape) for shape in shapes.values())
    doc = {
        "kind": "checkpoint",
        "path": str(path),
        "format": fmt,
        "sha256": sha,
        "tensors": shapes,
        "parameters": n_params,
        "metadata": meta.to_dict() if meta else None,
    }
    rows = [("format", fmt), ("sha256", sha), ("tensors", f"{len(shapes)} ({n_params:,} values)")]
    return Inspection(doc, tuple(rows + meta_rows(meta)))


def _inspect_skops(path: Path) -> Inspection:
    model = load_sklearn(path)
    params = estimator_params(model.estimator)
    doc = {
        "kind": "scikit-learn model",
        "path": str(model.path),
        "format": "skops",
        "sha256": model.sha256,
        "estimator": model.arch,
        "estimator_params": params,
        "metadata": model.meta.to_dict() if model.meta else None,
    }
    rows = [("format", "skops (scikit-learn)"), ("sha256", model.sha256),
            ("estimator", f"{model.arch} {json.dumps(params, sort_keys=True)}")]  # fmt: skip
    return Inspection(doc, tuple(rows + meta_rows(model.meta)))


def _inspect_filter(path: Path) -> Inspection:
    # Here, not at the top: the unlearning methods' package needs torch.
    from audit_cli.unlearn.mpru import load_filter

    spec = load_filter(path)
    sha = file_sha256(path)
    doc = {"kind": "output filter", "path": str(path), "format": "safetensors", "sha256": sha,
           "bias": [float(b) for b in spec.bias], "metadata": spec.to_dict()}  # fmt: skip
    rows = [
        ("format", "output filter (MPRU), safetensors"),
        ("sha256", sha),
        ("forgets", f"class {spec.forget_class} of {spec.num_classes}"),
        ("applies to", f"the model with sha256 {spec.parent_sha256} (audit run --filter)"),
        ("dataset", f"{spec.dataset.name} {json.dumps(dict(spec.dataset.options))}"),
        ("dataset fingerprint", spec.dataset_fingerprint),
        ("unlearning", f"{spec.method} {json.dumps(dict(spec.params), sort_keys=True, default=str)}"),
        ("fitted on", f"{spec.n_retain_sample} retained examples" if spec.n_retain_sample else "no examples"),
    ]
    rows += [(name.replace("_", " "), f"{value:.4f}") for name, value in spec.metrics.items()]
    rows.append(("written by", f"unlearning-audit {spec.tool_version}, {spec.created}, format {spec.format_version}"))
    return Inspection(doc, tuple(rows))


def meta_rows(meta: CheckpointMeta | None) -> list[tuple[str, str]]:
    """The metadata document a checkpoint or scikit-learn model carries, as table rows."""
    if meta is None:
        return [("metadata", "none (pass --arch and --data when using this file)")]
    rows = [
        ("kind", meta.kind),
        ("architecture", f"{meta.arch} {json.dumps(meta.to_dict()['arch_args'])}"),
        ("classes / input", f"{meta.num_classes} / {tuple(meta.input_shape)}"),
        ("dataset", f"{meta.dataset.name} {json.dumps(dict(meta.dataset.options))}"),
        ("dataset fingerprint", meta.dataset_fingerprint),
    ]
    if meta.n_trained is not None:
        rows.append(("trained on", f"{meta.n_trained} examples (ids {str(meta.trained_ids_fingerprint)[:16]}...)"))
    if meta.excluded is not None:
        ex = meta.excluded
        what = f"class {ex.forget_class}" if ex.forget_class is not None else "a forget set"
        rows.append(("left out", f"{what}: {ex.n_ids} examples (ids {ex.ids_fingerprint[:16]}...)"))
    if meta.unlearning is not None:
        u = meta.unlearning
        rows += [("unlearning", f"{u.method} {json.dumps(dict(u.params))}"), ("parent sha256", u.parent_sha256)]
    if meta.recipe is not None:
        r = meta.recipe.to_dict()
        rows.append(("recipe", ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("arch", "arch_args"))))
    rows += [(name.replace("_", " "), f"{value:.4f}") for name, value in meta.metrics.items()]
    rows.append(("written by", f"unlearning-audit {meta.tool_version}, {meta.created}, format {meta.format_version}"))
    return rows
