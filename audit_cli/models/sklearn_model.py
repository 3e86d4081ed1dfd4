"""scikit-learn models (trees for tabular data): the estimator registry, fitting, and skops io.

The audit's tabular models and MPRU's wrapped classifiers can be scikit-learn estimators.
This module is their counterpart of ``architectures`` plus ``checkpoint``:

- ``SKLEARN_ARCHS`` (in ``sklearn_params``) names the estimators the tool trains and loads; ``fit_sklearn`` fits
  one with typed parameters; ``sklearn_logits`` turns ``predict_proba`` into the
  ``(n, num_classes)`` log-probabilities the rest of the tool treats as logits.
- Files are skops archives (a zip of ``schema.json`` plus ``.npy`` arrays) with our
  :class:`CheckpointMeta` as an extra member, ``unlearning-audit.json``; skops ignores it.
- Loading never trusts the file. Every type the schema names must be on
  ``TRUSTED_TYPES`` (exactly what the registered estimators need), checked by walking the
  schema ourselves before skops sees it, then again with ``skops.io.get_untrusted_types``;
  only then does ``skops.io.loads`` run, trusting just the listed types it asked for.
  Anything else is refused with :class:`UnsafeArtifactError` (exit 4); a corrupt,
  truncated or foreign zip is a :class:`CheckpointError` (exit 2).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audit_cli.atomic import atomic_path, check_output_path
from audit_cli.errors import CheckpointError, UnsafeArtifactError, UsageError
from audit_cli.models.metadata import CheckpointMeta
from audit_cli.models.sklearn_params import SKLEARN_ARCHS, estimator_defaults, resolve_sklearn_params
from audit_cli.models.sklearn_trees import check_trees
from audit_cli.options import check_seed

# Every type a skops file of a registered estimator names (measured over binary and
# multi-class fits, early stopping, class weights, bootstrap/oob, int/str/float labels
# and RandomState seeds with scikit-learn 1.9 and skops 0.16). A type outside this list
# is refused even where skops itself would trust it: the list is ours, not skops'.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # containers and scalars skops writes for plain attributes
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "numpy.ndarray",
        "numpy.int32",
        "numpy.int64",
        "numpy.uint64",
        "numpy.float32",
        "numpy.float64",
        "numpy.bool_",
        # random_state as a generator (restored from its state, no code)
        "numpy.random._generator.Generator",
        "numpy.random.mtrand.RandomState",
        # the estimators and their fitted parts
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.tree._tree.Tree",
    }
)

META_MEMBER = "unlearning-audit.json"
SCHEMA_MEMBER = "schema.json"
LOG_FLOOR = math.log(1e-12)
"""Log-probability given to classes a model never predicts (finite, so softmax stays defined)."""

# Limits checked before anything is read into memory: the whole file, what its members
# claim to decompress to (a zip bomb claims little and inflates a lot: zipfile stops at
# the claimed size), the schema, and our metadata member.
MAX_FILE_BYTES = 4 << 30
MAX_UNCOMPRESSED_BYTES = 8 << 30
MAX_SCHEMA_BYTES = 100_000_000
MAX_META_BYTES = 1_000_000


@dataclass(frozen=True, eq=False)
class SklearnModel:
    """A loaded scikit-learn model file."""

    estimator: Any
    """The fitted estimator, one of ``SKLEARN_ARCHS``."""
    meta: CheckpointMeta | None
    """Our metadata document; None for a user's own skops file (then --data is needed)."""
    sha256: str
    """sha256 of the file."""
    path: Path

    @property
    def arch(self) -> str:
        return sklearn_arch_of(self.estimator)


@dataclass(frozen=True)
class SklearnRecipe:
    """How ``audit train`` fits a scikit-learn model (the counterpart of a network's Recipe)."""

    arch: str
    """A ``SKLEARN_ARCHS`` name."""
    params: Mapping[str, object] = field(default_factory=dict)
    """Estimator parameters (``--arch-arg``), typed against the estimator's defaults."""
    seed: int = 0
    """The estimator's random_state."""

    def __post_init__(self) -> None:
        if "random_state" in self.params:
            raise UsageError("set the random_state of a scikit-learn model with --seed, not --arch-arg")
        check_seed(self.seed, "the estimator's seed (random_state)")
        object.__setattr__(self, "params", resolve_sklearn_params(self.arch, self.params))

    def key_dict(self) -> dict:
        """What of the recipe shapes shadows (the bank key): the estimator and its parameters."""
        return {"sklearn": self.arch, "params": dict(self.params)}

    @property
    def arch_args(self) -> dict[str, object]:
        """The parameters the estimator is built with, random_state included (for metadata)."""
        return {**self.params, "random_state": self.seed}


def sklearn_arch_of(est: object) -> str:
    """Registry name of an estimator's class (exact class: subclasses could run anything)."""
    for name, cls in SKLEARN_ARCHS.items():
        if type(est) is cls:
            return name
    raise CheckpointError(
        f"{type(est).__module__}.{type(est).__qualname__} is not a registered scikit-learn model",
        hint=f"registered: {', '.join(SKLEARN_ARCHS)}",
    )


def estimator_params(est: object) -> dict[str, object]:
    """The JSON-safe parameters of an estimator that differ from its class defaults.

    For a user's own skops file (no metadata): what ``audit`` records as its arch_args.
    """
    defaults = type(est)().get_params(deep=False)
    out: dict[str, object] = {}
    for name, value in est.get_params(deep=False).items():
        if isinstance(value, np.generic):
            value = value.item()
        if value is not None and not isinstance(value, (bool, int, float, str)):
            continue  # a RandomState, a class_weight dict: not describable as a scalar
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if name not in defaults or not _same(value, defaults[name]):
            out[name] = value
    return out


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


def fit_sklearn(arch: str, params: Mapping[str, object] | None, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """Fit a registered estimator on flat features ``x`` (n, ...) and labels ``y``.

    ``random_state`` is ``seed`` (a ``random_state`` in ``params`` is replaced by it, so
    metadata arch_args can be passed back in with another seed).
    """
    typed = resolve_sklearn_params(arch, params)
    typed.pop("random_state", None)
    cls = SKLEARN_ARCHS[arch]
    if "random_state" in estimator_defaults(arch):
        typed["random_state"] = int(seed)
    x2 = np.asarray(x).reshape(len(x), -1)
    try:
        est = cls(**typed)
        est.fit(x2, np.asarray(y))
    except (ValueError, TypeError) as exc:  # scikit-learn's InvalidParameterError is both
        raise UsageError(f"{arch}: {_first_line(exc)}") from None
    return est


def sklearn_logits(est: Any, x: np.ndarray, num_classes: int) -> np.ndarray:
    """Log ``predict_proba`` in ``num_classes`` columns, float32 (n, num_classes).

    Columns are placed by ``est.classes_``; a class the model never saw (trained without
    it) and zero probabilities get the finite floor ``log(1e-12)``. Softmax of the result
    is the model's probabilities, so the rest of the tool treats it as logits.
    """
    x2 = np.asarray(x).reshape(len(x), -1)
    n_features = getattr(est, "n_features_in_", None)
    if n_features is not None and n_features != x2.shape[1]:
        raise CheckpointError(f"the model takes {n_features} features but the data has {x2.shape[1]}")
    classes = class_columns(est, num_classes)
    proba = np.asarray(est.predict_proba(x2), dtype=np.float64)
    out = np.full((len(x2), num_classes), LOG_FLOOR, dtype=np.float64)
    out[:, classes] = np.log(np.maximum(proba, 1e-12))
    return out.astype(np.float32)


def class_columns(est: Any, num_classes: int) -> np.ndarray:
    """The model's classes as output columns; labels must be integers in [0, num_classes)."""
    classes = np.asarray(getattr(est, "classes_", None))
    if classes.ndim != 1 or classes.size == 0:
        raise CheckpointError("the scikit-learn model is not fitted (no classes_)")
    if classes.dtype.kind not in "iuf" or not np.all(np.mod(classes, 1) == 0):
        raise CheckpointError(f"the model's classes are {classes[:3].tolist()}...: integer labels are needed")
    cols = classes.astype(np.int64)
    if cols.min() < 0 or cols.max() >= num_classes:
        raise CheckpointError(f"the model predicts class {int(cols.max())}, the dataset has {num_classes} classes")
    return cols


# --- files -------------------------------------------------------------------------------------


def save_sklearn(est: Any, meta: CheckpointMeta, path: str | Path, *, overwrite: bool = False) -> str:
    """Write ``est`` as a skops file with ``meta`` embedded, atomically; return its sha256."""
    import skops.io as sio

    arch = sklearn_arch_of(est)
    if meta.arch != arch:
        raise UsageError(f"metadata names {meta.arch!r} but the estimator is {arch!r}")
    path = check_output_path(path, overwrite=overwrite, suffix=".skops")
    buf = io.BytesIO(sio.dumps(est))
    # Never write what the loader would refuse (an HGB scored with a custom scorer holds
    # a function, say): better a usage error now than an unloadable model later.
    with zipfile.ZipFile(buf) as zf:
        refused = _first_untrusted(json.loads(zf.read(SCHEMA_MEMBER)))
    if refused is not None:
        raise UsageError(f"the {arch} model holds type {refused}, which audit refuses to load; not writing it")
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(META_MEMBER, meta.to_json())
    data = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def looks_like_skops(path: str | Path) -> bool:
    """A zip archive with a skops ``schema.json`` (and no torch pickle): sniffed, not by name."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(30 + 1024)
    except OSError:
        return False
    if not head.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        # No readable central directory (a truncated file): the first local header still
        # names the first member, a .npy array for skops and ``<name>/data.pkl`` for torch.
        first = _first_member_name(head)
        return first is not None and (first.endswith(".npy") or first == SCHEMA_MEMBER)
    return SCHEMA_MEMBER in names and not any(n.endswith("data.pkl") for n in names)


def _first_member_name(head: bytes) -> str | None:
    if len(head) < 30:
        return None
    name_len = int.from_bytes(head[26:28], "little")
    name = head[30 : 30 + name_len]
    return name.decode("utf-8", "replace") if len(name) == name_len else None


def load_sklearn(path: str | Path) -> SklearnModel:
    """Load a skops file of a registered estimator, trusting nothing outside ``TRUSTED_TYPES``."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"model {path} is not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: {size} bytes, over the {MAX_FILE_BYTES} byte limit for a skops file")
    # Read once: the bytes that are checked are the bytes that are loaded and hashed.
    data = path.read_bytes()
    if not data.startswith(b"PK\x03\x04"):
        raise CheckpointError(f"{path} is not a skops file (not a zip archive)")
    schema, meta = _read_archive(path, data)
    refused = _first_untrusted(schema, path)
    if refused is not None:
        raise _refusal(path, refused)
    root = f"{schema.get('__module__')}.{schema.get('__class__')}"
    allowed_roots = {f"{c.__module__}.{c.__qualname__}": name for name, c in SKLEARN_ARCHS.items()}
    if root not in allowed_roots:
        raise CheckpointError(
            f"{path} holds a {root}, not a scikit-learn classifier", hint=f"registered: {', '.join(SKLEARN_ARCHS)}"
        )
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises many types for malformed schemas
        raise CheckpointError(f"{path}: corrupt skops file ({_first_line(exc)})") from None
    for name in untrusted:
        if name not in TRUSTED_TYPES:
            raise _refusal(path, name)
    try:
        est = sio.loads(data, trusted=sorted(untrusted))
    except UntrustedTypesFoundException as exc:
        raise _refusal(path, _first_line(exc)) from None
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt or truncated skops file ({_first_line(exc)})") from None
    arch = sklearn_arch_of(est)
    check_trees(est, path)  # before any compiled tree code walks it
    if meta is not None and meta.arch != arch:
        raise CheckpointError(f"{path}: its metadata says {meta.arch!r} but the file holds a {arch!r}")
    if meta is not None:
        class_columns(est, meta.num_classes)
    return SklearnModel(estimator=est, meta=meta, sha256=hashlib.sha256(data).hexdigest(), path=path)


def _read_archive(path: Path, data: bytes) -> tuple[dict, CheckpointMeta | None]:
    """The parsed schema and our metadata (None if absent), with every size checked first."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            if SCHEMA_MEMBER not in infos:
                what = "a torch .pt archive" if any(n.endswith("data.pkl") for n in infos) else "a zip archive"
                raise CheckpointError(f"{path} is {what}, not a skops file (no {SCHEMA_MEMBER})")
            claimed = sum(i.file_size for i in infos.values())
            if claimed > MAX_UNCOMPRESSED_BYTES:
                raise CheckpointError(f"{path}: members claim {claimed} bytes uncompressed, over the limit")
            if infos[SCHEMA_MEMBER].file_size > MAX_SCHEMA_BYTES:
                raise CheckpointError(f"{path}: {SCHEMA_MEMBER} is over the {MAX_SCHEMA_BYTES} byte limit")
            schema_bytes = zf.read(SCHEMA_MEMBER)
            meta_text = None
            if META_MEMBER in infos:
                if infos[META_MEMBER].file_size > MAX_META_BYTES:
                    raise CheckpointError(f"{path}: {META_MEMBER} is over the {MAX_META_BYTES} byte limit")
                meta_text = zf.read(META_MEMBER).decode("utf-8")
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated skops file ({_first_line(exc)})") from None
    except Exception as exc:  # zlib.error and friends from a damaged member
        raise CheckpointError(f"{path}: corrupt or truncated skops file ({_first_line(exc)})") from None
    try:
        schema = json.loads(schema_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
        raise CheckpointError(f"{path}: {SCHEMA_MEMBER} is not valid JSON") from None
    if not isinstance(schema, dict):
        raise CheckpointError(f"{path}: {SCHEMA_MEMBER} is not a JSON object")
    meta = None
    if meta_text is not None:
        try:
            meta = CheckpointMeta.from_json(meta_text)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc.message}", hint=exc.hint) from None
    return schema, meta


def _first_untrusted(schema: dict, path: Path | str = "skops file") -> str | None:
    """First type (depth first, root first) the schema names outside ``TRUSTED_TYPES``.

    skops names every object it will build, function or class, by ``__module__`` and
    ``__class__`` on its node; walking every dict and list finds them all, whatever the
    node kind. Iterative, so a deeply nested schema cannot exhaust the stack.
    """
    stack: list[object] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node or "__module__" in node:
                module, cls = node.get("__module__"), node.get("__class__")
                if not isinstance(module, str) or not isinstance(cls, str):
                    raise CheckpointError(f"{path}: malformed {SCHEMA_MEMBER} (a node without a type name)")
                name = f"{module}.{cls}"
                if name not in TRUSTED_TYPES:
                    return name
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return None


def _refusal(path: Path, type_name: str) -> UnsafeArtifactError:
    return UnsafeArtifactError(
        f"{path}: refused: the skops file holds {type_name}, which is not on the trusted-type list; "
        "nothing from it was run",
        hint=f"only these scikit-learn models load: {', '.join(SKLEARN_ARCHS)}",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
