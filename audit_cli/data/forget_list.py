"""Which ids a dataset has, and random forget lists drawn from them, without importing internals.

`audit ids` lists a split's ids (optionally one class's); `audit forget-list` draws a
forget list from the training ids, by fraction or count, seeded, and writes it as an id
file whose header says how it was drawn (so a list in a repository explains itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from audit_cli.atomic import STDOUT, atomic_write_text, check_output_path
from audit_cli.data import Dataset, fingerprint_ids
from audit_cli.data.ids import id_file_text
from audit_cli.errors import UsageError
from audit_cli.options import check_seed

Split = Literal["train", "test", "all"]
SPLITS = ("train", "test", "all")


def split_ids(dataset: Dataset, split: str, forget_class: int | None = None) -> np.ndarray:
    """Sorted ids of one split (``train``, ``test`` or ``all``), of one class if given."""
    if split not in SPLITS:
        raise UsageError(f"--split must be train, test or all, got {split!r}")
    if forget_class is not None:
        return np.sort(dataset.ids_of_class(int(forget_class), split=split))
    if split == "train":
        return np.sort(dataset.train_ids)
    if split == "test":
        return np.sort(dataset.test_ids)
    return np.sort(dataset.ids)


@dataclass(frozen=True)
class ForgetList:
    ids: np.ndarray
    pool: int
    """How many training ids it was drawn from."""
    path: Path
    """Where it was written (``-``: nowhere; the caller prints ``text``)."""
    text: str
    """The id file's text: the header, then the ids."""


def draw_forget_list(
    dataset: Dataset,
    out: str | Path,
    *,
    fraction: float | None = None,
    count: int | None = None,
    forget_class: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> ForgetList:
    """A uniform random sample of the training ids (of ``forget_class``'s, if given), written
    to ``out`` as an id file (``-``: not written; the caller prints its text). Exactly one
    of ``fraction`` (0 < f < 1) and ``count``."""
    out = Path(out) if str(out) == STDOUT else check_output_path(out, overwrite=overwrite, suffix=None)
    check_seed(seed)
    if (fraction is None) == (count is None):
        raise UsageError("give exactly one of --fraction and --count")
    pool = split_ids(dataset, "train", forget_class)
    if fraction is not None:
        if not 0 < fraction < 1:
            raise UsageError(f"--fraction must be between 0 and 1 (exclusive), got {fraction}")
        n = int(round(fraction * len(pool)))
    else:
        n = int(count)
    if not 1 <= n < len(pool):
        raise UsageError(f"a forget list of {n} ids from {len(pool)} training ids leaves nothing to keep or forget")
    ids = np.sort(np.random.default_rng(seed).choice(pool, n, replace=False))
    what = f"class {forget_class} " if forget_class is not None else ""
    header = (
        f"{n} of the {len(pool)} {what}training ids of {dataset.name} (fingerprint {dataset.fingerprint[:16]}), "
        f"drawn uniformly with seed {seed} by audit forget-list\nids fingerprint {fingerprint_ids(ids)}"
    )
    text = id_file_text(ids, header)
    if str(out) != STDOUT:
        atomic_write_text(out, text)
    return ForgetList(ids, len(pool), out, text)
