"""Datasets: a registry of loaders giving splits with stable example ids.

Importing this package registers every built-in loader.
"""

from audit_cli.data import builtin, tabular, vision  # noqa: F401  (registration)
from audit_cli.data.dataset import Dataset, DatasetSpec, Modality, make_dataset
from audit_cli.data.ids import as_ids, fingerprint_ids, read_id_file, write_id_file
from audit_cli.data.registry import DATASETS, DatasetEntry, LoadContext, load_dataset, resolve_spec

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetEntry",
    "DatasetSpec",
    "LoadContext",
    "Modality",
    "as_ids",
    "fingerprint_ids",
    "load_dataset",
    "make_dataset",
    "read_id_file",
    "resolve_spec",
    "write_id_file",
]
