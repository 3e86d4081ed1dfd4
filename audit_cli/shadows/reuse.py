"""Trained shadows kept in memory for the audits of one process that train the very same
shadows: the points of ``audit sweep`` differ only in how their shadows are unlearned.

Off unless a caller opens ``reuse_fitted_shadows()``: an audit alone never trains a
chunk twice, and holding networks it will not use again would only cost memory. Within
the block, ``fitted`` returns the models an identical earlier call trained (same dataset
fingerprint, recipe, training subsets, seeds and device) instead of training them again.
Only networks (``Ensemble``) are kept: unlearning copies them before it steps
(``unlearn_models`` selects a copy), so one trained ensemble can serve every point; the
conformance suite checks that originals are left alone. The memory held is bounded; the
oldest entries go first.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from audit_cli.data import Dataset, fingerprint_ids
from audit_cli.training.loop import Ensemble

MAX_BYTES = 2**30
"""Trained shadows held at most (1 GiB): a sweep over a large network trains them again."""

_cache: OrderedDict[str, Ensemble] | None = None


@contextmanager
def reuse_fitted_shadows() -> Iterator[None]:
    """Keep the shadows trained inside the block for identical later calls; freed at exit."""
    global _cache
    outer = _cache
    _cache = OrderedDict() if outer is None else outer
    try:
        yield
    finally:
        if outer is None:
            _cache = None


def _key(dataset: Dataset, recipe: Any, train_ids: Sequence[np.ndarray], seeds: Sequence[int], device,
         forget: Sequence[np.ndarray] | None) -> str:  # fmt: skip
    doc = {"dataset": dataset.fingerprint, "recipe": recipe.key_dict(), "seeds": [int(s) for s in seeds],
           "subsets": [fingerprint_ids(np.asarray(ids)) for ids in train_ids], "device": str(device),
           # A federation holds its forget set as a client: it shapes the training too.
           "forget": None if forget is None else [fingerprint_ids(np.asarray(f)) for f in forget]}  # fmt: skip
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _nbytes(ens: Ensemble) -> int:
    return sum(t.numel() * t.element_size() for t in (*ens.params.values(), *ens.buffers.values()))


def fitted(fit: Callable[[], Any], dataset: Dataset, recipe: Any, train_ids: Sequence[np.ndarray],
           seeds: Sequence[int], device, forget: Sequence[np.ndarray] | None = None) -> Any:  # fmt: skip
    """``fit()``, or the models an identical call inside ``reuse_fitted_shadows`` trained."""
    if _cache is None:
        return fit()
    key = _key(dataset, recipe, train_ids, seeds, device, forget)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    models = fit()
    if isinstance(models, Ensemble) and _nbytes(models) <= MAX_BYTES:
        _cache[key] = models
        while sum(_nbytes(e) for e in _cache.values()) > MAX_BYTES:
            _cache.popitem(last=False)
    return models
