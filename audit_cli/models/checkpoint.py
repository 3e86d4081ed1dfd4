"""Checkpoint files: safe loading, atomic saving, and fitting weights to a model.

What is loaded and how (the threat model is a checkpoint from a stranger's pull request):

- The format is sniffed from the bytes, not the file name.
- ``.safetensors``: the header length is checked against the file size before the
  header is read; the safetensors library then validates offsets and sizes. Data only:
  nothing in the format can run code.
- ``.pt`` (zip or legacy pickle): only ``torch.load(path, weights_only=True)``, whose
  unpickler admits tensors and plain containers and rejects every other global. A zip
  holding TorchScript (``code/``, ``constants.pkl``) is refused before torch sees it.
- A zip holding a skops ``schema.json`` is a scikit-learn model: it is pointed to
  ``audit_cli.models.sklearn_model`` (which loads it against a trusted-type list), and an
  MPRU output filter (safetensors) is named as such, instead of failing as odd weights.
- Refusals for code execution raise :class:`UnsafeArtifactError` (exit 4); corrupt,
  truncated or non-finite weights raise :class:`CheckpointError` (exit 2).
"""

from __future__ import annotations

import pickle
import pickletools
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from audit_cli.atomic import atomic_path, check_output_path
from audit_cli.data import Dataset
from audit_cli.errors import CheckpointError, UnsafeArtifactError, UsageError
from audit_cli.models.architectures import is_plugin
from audit_cli.models.metadata import METADATA_KEY, CheckpointMeta
from audit_cli.models.networks import build_model
from audit_cli.models.safetensors_file import (
    MAX_HEADER_BYTES,
    file_sha256,
    first_line,
    header_meta,
    looks_like_safetensors,
    read_header,
)

# The most a .pt archive may unpack to (weights included).
MAX_PT_UNPACKED = 8 * 1024**3

Format = Literal["safetensors", "pt"]


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint: weights, metadata if it has any, and the file's identity."""

    path: Path
    format: Format
    state_dict: dict[str, torch.Tensor]
    meta: CheckpointMeta | None
    """None for foreign files without our metadata document (then --arch is needed)."""
    sha256: str


def save_checkpoint(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    meta: CheckpointMeta,
    *,
    overwrite: bool = False,
) -> str:
    """Write weights and metadata as safetensors, atomically; return the file's sha256."""
    from safetensors.torch import save_file

    path = check_output_path(path, overwrite=overwrite)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: meta.to_json()})
    return file_sha256(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint without executing anything from it."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    with open(path, "rb") as fh:
        head = fh.read(9)
    size = path.stat().st_size
    try:
        # safetensors first: its leading u64 header length can start with any byte,
        # 0x80 included (a pickle's protocol marker), but its header opens with "{".
        if looks_like_safetensors(head, size):
            fmt: Format = "safetensors"
            state_dict, meta = _load_safetensors(path, size)
        elif head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
            fmt = "pt"
            state_dict, meta = _load_pt(path, is_zip=head.startswith(b"PK"))
        elif len(head) >= 9 and head[8:9] == b"{":
            # A "{" header whose length does not fit the file: a truncated safetensors file.
            fmt = "safetensors"
            state_dict, meta = _load_safetensors(path, size)
        else:
            # Protocol 0/1 pickles start with a plain opcode; torch never writes them,
            # but a pickle that imports code is still an unsafe artifact, not just junk.
            foreign = _foreign_global(path.read_bytes()) if size <= MAX_HEADER_BYTES else None
            if foreign is not None:
                raise UnsafeArtifactError(
                    f"{path}: refused: a pickle that imports {foreign}; nothing from it was run",
                    hint="only plain state_dicts load from .pt; prefer .safetensors",
                )
            raise CheckpointError(
                f"{path} is neither a safetensors file nor a torch .pt file",
                hint="save weights with safetensors, or torch.save(model.state_dict(), path)",
            )
    except CheckpointError as exc:
        if str(path) in exc.message:
            raise
        raise CheckpointError(f"{path}: {exc.message}", hint=exc.hint) from None
    _check_finite(path, state_dict)
    return Checkpoint(path=path, format=fmt, state_dict=state_dict, meta=meta, sha256=file_sha256(path))


def _load_safetensors(path: Path, size: int) -> tuple[dict[str, torch.Tensor], CheckpointMeta | None]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    header = read_header(path, size)
    try:
        state_dict = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({first_line(exc)})") from None
    return state_dict, header_meta(path, header)


TORCHSCRIPT_MARKERS = ("/code/", "constants.pkl", ".debug_pkl")
SKOPS_SCHEMA = "schema.json"


def _load_pt(path: Path, *, is_zip: bool) -> tuple[dict[str, torch.Tensor], CheckpointMeta | None]:
    if is_zip:
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError(f"{path}: corrupt .pt archive ({first_line(exc)})") from None
        names = [i.filename for i in infos]
        # Sizes as the archive declares them, before anything is unpacked: a small file can
        # hold a pickle that inflates to gigabytes (a 1 GiB metadata string).
        unpacked = sum(i.file_size for i in infos)
        if unpacked > MAX_PT_UNPACKED:
            raise CheckpointError(f"{path}: unpacks to {unpacked} bytes, over the {MAX_PT_UNPACKED} byte limit")
        pickled = max((i.file_size for i in infos if i.filename.endswith("data.pkl")), default=0)
        if pickled > MAX_HEADER_BYTES:
            raise CheckpointError(f"{path}: its pickle unpacks to {pickled} bytes, over the {MAX_HEADER_BYTES} limit")
        if any(marker in name for name in names for marker in TORCHSCRIPT_MARKERS):
            raise UnsafeArtifactError(
                f"{path} is a TorchScript archive; loading it would run its code. Refused",
                hint="export the weights: torch.save(model.state_dict(), path) or safetensors",
            )
        if SKOPS_SCHEMA in names and not any(name.endswith("data.pkl") for name in names):
            raise CheckpointError(
                f"{path} is a scikit-learn model (skops file), not torch weights",
                hint="scikit-learn models load through audit_cli.models.sklearn_model; "
                "audit unlearn takes them with --method mpru",
            )
    try:
        # A file object, not the path: torch.load routes paths ending in .safetensors to
        # the safetensors reader, and we sniff the format from the bytes instead.
        with open(path, "rb") as fh:
            obj = torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        pickled = _pickle_bytes(path, is_zip)
        foreign = _foreign_global(pickled) if pickled is not None else None
        if foreign is None:
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            foreign = found.group(1) if found else None
        if foreign is None and pickled is not None and not _parses_as_pickle(pickled):
            raise CheckpointError(f"{path}: corrupt .pt file (not a readable pickle)") from None
        what = f" (it imports {foreign})" if foreign else ""
        raise UnsafeArtifactError(
            f"{path}: refused: its pickle needs code to load{what}; nothing from it was run",
            hint="only plain state_dicts load from .pt; prefer .safetensors",
        ) from None
    except Exception as exc:  # torch raises many types for damaged archives
        raise CheckpointError(f"{path}: corrupt or truncated .pt file ({first_line(exc)})") from None
    meta_raw: object = None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        meta_raw = obj.get("metadata")
        obj = obj["state_dict"]
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise CheckpointError(
            f"{path}: a .pt checkpoint must hold a state_dict (names -> tensors), "
            "or a dict with 'state_dict' and optional 'metadata'"
        )
    for name, t in obj.items():
        # A view whose strides revisit its storage (a zero stride) is tiny on disk and huge
        # in memory once copied: 1.3 KB on disk, a 30000 x 30000 tensor.
        if t.numel() * t.element_size() > t.untyped_storage().nbytes():
            raise CheckpointError(f"{path}: tensor {name!r} is a view larger than its storage (overlapping strides)")
    if meta_raw is None:
        meta = None
    elif isinstance(meta_raw, str):
        meta = CheckpointMeta.from_json(meta_raw)
    else:
        meta = CheckpointMeta.from_dict(meta_raw)
    return dict(obj), meta


def _check_finite(path: Path, state_dict: Mapping[str, torch.Tensor]) -> None:
    for name, t in state_dict.items():
        if t.is_floating_point() or t.is_complex():
            try:
                finite = torch.isfinite(t)
            except (NotImplementedError, RuntimeError):  # float8 variants lack isfinite
                try:
                    finite = torch.isfinite(t.float())
                except (NotImplementedError, RuntimeError):
                    raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {t.dtype}") from None
            bad = int((~finite).sum())
            if bad:
                raise CheckpointError(f"{path}: tensor {name!r} has {bad} NaN or infinite value(s)")


# Globals a weights-only torch pickle legitimately references (for naming, not deciding:
# the decision is torch.load(weights_only=True)'s).
TORCH_PICKLE_MODULES = ("torch", "collections")


def _pickle_bytes(path: Path, is_zip: bool) -> bytes | None:
    """The pickle stream of a .pt file: the file itself, or the archive's data.pkl."""
    if not is_zip:
        return path.read_bytes() if path.stat().st_size <= MAX_HEADER_BYTES else None
    try:
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
            return zf.read(name) if name is not None else None
    except (zipfile.BadZipFile, OSError, KeyError):
        return None


def _foreign_global(data: bytes) -> str | None:
    """First global a pickle imports outside torch's own, by reading opcodes only."""
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                name = str(arg).replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
            else:
                if isinstance(arg, str):
                    strings.append(arg)
                continue
            if name.split(".", 1)[0] not in TORCH_PICKLE_MODULES:
                return name
    except Exception:  # malformed stream: report what was found before it, if anything
        return None
    return None


def _parses_as_pickle(data: bytes) -> bool:
    try:
        for _ in pickletools.genops(data):
            pass
    except Exception:
        return False
    return True


def build_model_from_checkpoint(
    ckpt: Checkpoint,
    *,
    arch: str | None = None,
    arch_args: Mapping[str, object] | None = None,
    dataset: Dataset | None = None,
) -> nn.Module:
    """Instantiate the checkpoint's architecture and load its weights (strict fit).

    ``arch`` (from the command line) overrides the metadata and is the only way a plug-in
    architecture gets imported. Without metadata, shapes come from ``dataset``.
    """
    meta = ckpt.meta
    name = arch or (meta.arch if meta else None)
    if name is None:
        raise UsageError(f"{ckpt.path} carries no metadata", hint="pass --arch (and --data) to say what it is")
    args = arch_args if arch_args is not None else (meta.arch_args if meta and name == meta.arch else {})
    if meta is not None:
        input_shape, num_classes = meta.input_shape, meta.num_classes
    elif dataset is not None:
        input_shape, num_classes = dataset.input_shape, dataset.num_classes
    else:
        raise UsageError(f"{ckpt.path} carries no metadata", hint="pass --data so the input shape is known")
    model = build_model(name, input_shape, num_classes, args, allow_plugin=arch is not None and is_plugin(arch))
    fit_state_dict(model, ckpt.state_dict, label=f"{ckpt.path} for architecture {name!r}")
    return model


# Prefixes wrappers add to every key: DataParallel / DDP, Lightning-style modules, torch.compile.
COMMON_PREFIXES = ("module.", "model.", "_orig_mod.", "net.")


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The state dict with ``prefix`` removed from every key (``--strip-prefix``); every key
    must carry it, or the mapping would silently mix two models' weights."""
    missing = [k for k in state_dict if not k.startswith(prefix)]
    if missing:
        raise CheckpointError(f"--strip-prefix {prefix!r}: key {missing[0]!r} does not start with it")
    return {k[len(prefix) :]: v for k, v in state_dict.items()}


def fit_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, label: str) -> None:
    """load_state_dict(strict) with one readable line instead of torch's wall of text, and a
    hint when a wrapper's prefix is all that is wrong."""
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state_dict]
    problems += [f"unexpected {k}" for k in state_dict if k not in expected]
    problems += [
        f"{k} is {tuple(state_dict[k].shape)} in the checkpoint, {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if problems:
        more = f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""
        hint = next((f"every key starts with {p!r}: pass --strip-prefix {p}" for p in COMMON_PREFIXES
                     if state_dict and all(k.startswith(p) for k in state_dict)
                     and {k[len(p):] for k in state_dict} == set(expected)), None)  # fmt: skip
        raise CheckpointError(f"weights do not fit {label}: {'; '.join(problems[:2])}{more}", hint=hint)
    model.load_state_dict(dict(state_dict), strict=True)


def check_dataset(meta: CheckpointMeta | None, dataset: Dataset, *, path: Path | str = "checkpoint") -> None:
    """Refuse a dataset other than the one the checkpoint was trained on."""
    if meta is None:
        return
    if meta.num_classes != dataset.num_classes:
        raise CheckpointError(
            f"{path} predicts {meta.num_classes} classes but dataset {dataset.name!r} has {dataset.num_classes}"
        )
    if tuple(meta.input_shape) != dataset.input_shape:
        raise CheckpointError(
            f"{path} takes inputs of shape {tuple(meta.input_shape)} but dataset {dataset.name!r} "
            f"has {dataset.input_shape}"
        )
    if meta.dataset_fingerprint != dataset.fingerprint:
        raise CheckpointError(
            f"{path} was trained on a different dataset (fingerprint {meta.dataset_fingerprint[:12]}, "
            f"loaded {dataset.name!r} is {dataset.fingerprint[:12]})",
            hint=f"the checkpoint records dataset {meta.dataset.to_dict()}",
        )
