"""Dataset registry: a name, its options with defaults, and a loader.

Loaders take parsed options plus where the files live (``data_root``) and whether a
download is allowed; they return a :class:`Dataset`. Files given directly
(``--data path.parquet``) are routed to the file loaders by extension.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from audit_cli.data.dataset import Dataset, DatasetSpec
from audit_cli.errors import DatasetError, UsageError
from audit_cli.options import coerce


@dataclass(frozen=True)
class LoadContext:
    """Where files live and what the loader may do; not part of the dataset identity."""

    data_root: Path | None = None
    """Root folder of torchvision-style datasets."""
    download: bool = False
    """Whether a missing torchvision dataset may be downloaded."""


Loader = Callable[[DatasetSpec, Mapping[str, object], LoadContext], Dataset]


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset."""

    name: str
    loader: Loader
    description: str
    options: Mapping[str, object] = field(default_factory=dict)
    """Option names and their defaults; the default's type is the option's type."""
    needs_root: bool = False


DATASETS: dict[str, DatasetEntry] = {}

FILE_EXTENSIONS = {".parquet": "parquet", ".npz": "npz"}


def register(entry: DatasetEntry) -> DatasetEntry:
    DATASETS[entry.name] = entry
    return entry


def resolve_spec(data: str, options: Mapping[str, object] | None = None) -> DatasetSpec:
    """Name or file path plus raw options -> a spec with every option typed and defaulted."""
    options = dict(options or {})
    name = data
    suffix = Path(data).suffix.lower()
    if data not in DATASETS and suffix in FILE_EXTENSIONS:
        name = FILE_EXTENSIONS[suffix]
        options["path"] = data
    entry = DATASETS.get(name)
    if entry is None:
        known = ", ".join(sorted(DATASETS))
        raise UsageError(
            f"unknown dataset {data!r}",
            hint=f"built-in datasets: {known}; or a .parquet / .npz file",
        )
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        valid = ", ".join(sorted(entry.options)) or "none"
        raise UsageError(f"dataset {name!r} has no option {unknown[0]!r}", hint=f"its options: {valid}")
    typed = {k: coerce(k, options.get(k, default), default) for k, default in entry.options.items()}
    return DatasetSpec(name=name, options=typed)


def load_dataset(
    data: str | DatasetSpec,
    options: Mapping[str, object] | None = None,
    *,
    data_root: str | Path | None = None,
    download: bool = False,
) -> Dataset:
    """Load a registered dataset or a data file into memory."""
    if isinstance(data, DatasetSpec):
        # A spec read from a file (a checkpoint's metadata) is checked like options typed on
        # the command line: a malformed option is the file's error, not a crash. A missing one
        # takes its default (the dataset fingerprint, compared next, catches another dataset).
        try:
            spec = resolve_spec(data.name, data.options) if data.name in DATASETS else data
        except UsageError as exc:
            raise DatasetError(f"the recorded dataset {data.name!r}: {exc.message}", hint=exc.hint) from None
    else:
        spec = resolve_spec(data, options)
    entry = DATASETS.get(spec.name)
    if entry is None:
        raise UsageError(f"unknown dataset {spec.name!r}")
    if entry.needs_root and data_root is None:
        raise DatasetError(
            f"dataset {spec.name!r} needs --data-root pointing at its torchvision folder",
            hint="add --download as well to fetch it into that folder",
        )
    ctx = LoadContext(data_root=Path(data_root) if data_root is not None else None, download=download)
    return entry.loader(spec, spec.options, ctx)
