"""A federated checkpoint as the commands read it: its metadata, dataset and federation."""

from __future__ import annotations

from pathlib import Path

from audit_cli.data import Dataset, load_dataset
from audit_cli.errors import UsageError
from audit_cli.models.checkpoint import Checkpoint, check_dataset, load_checkpoint
from audit_cli.models.metadata import CheckpointMeta
from audit_cli.models.recipe import Federation


def federation_of(meta: CheckpointMeta | None, path: Path | str) -> Federation:
    """The federation a checkpoint records; a usage error for a centrally trained model."""
    if meta is None or meta.recipe is None or meta.recipe.federation is None:
        raise UsageError(f"{path} is not a federated model (it records no federation)",
                         hint="train one with audit fl train")  # fmt: skip
    return meta.recipe.federation


def load_federated(path: Path, data_root: Path | None = None) -> tuple[Checkpoint, Dataset, Federation]:
    """Load a federated checkpoint safely, the dataset it records, and its federation."""
    checkpoint = load_checkpoint(path)
    federation = federation_of(checkpoint.meta, path)
    dataset = load_dataset(checkpoint.meta.dataset, data_root=data_root)
    check_dataset(checkpoint.meta, dataset, path=path)
    return checkpoint, dataset, federation
