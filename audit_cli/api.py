"""The Python API, for notebooks and scripts: ``audit`` a model held in memory, with the
same code path as ``audit run`` (one ``AuditConfig``, settings resolved with the same
precedence: arguments, ``AUDIT_*`` environment, ``audit.toml``, defaults).

    from audit_cli import audit, load_dataset
    digits = load_dataset("digits")
    report = audit(model, data=digits, forget=forget_ids, trainer=my_train, method="retrain",
                   original=original_model, fail_above=0.2)
    report.exit_code, report.headline.sentence, report.to_json()

Data is a registry name or file, a ``Dataset`` (``load_dataset``), arrays
(``dataset_from_arrays``) or two torch datasets (``dataset_from_torch``). A model is a
file path, a ``torch.nn.Module``, a fitted scikit-learn classifier, or any
callable from a float32 batch of ``dataset.x`` to logits. ``trainer`` and ``unlearner``
are callables (or ``"package.module:function"``) following the protocols in docs/api.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audit_cli.auditing.pipeline import run_audit
from audit_cli.auditing.request import AuditRequest, config_from_settings
from audit_cli.config import DEFAULTS, find_config_file, resolve_settings
from audit_cli.data import Dataset, DatasetSpec
from audit_cli.data.dataset import make_dataset
from audit_cli.errors import DatasetError, UsageError
from audit_cli.report import AuditReport


def audit(
    model: Any,
    *,
    data: str | Path | Dataset | None = None,
    forget: Any = None,
    forget_class: int | None = None,
    forget_clients: Sequence[int] = (),
    trainer: str | Callable[..., Any] | None = None,
    unlearner: str | Callable[..., Any] | None = None,
    method: str | None = None,
    params: Mapping[str, object] | None = None,
    original: Any = None,
    retrained: Any = None,
    estimate_retrained: str | None = None,
    recipe: str | Path | None = None,
    arch: str | None = None,
    data_options: Mapping[str, object] | None = None,
    shadows_from: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    **settings: object,
) -> AuditReport:
    """Audit ``model`` (see the module docstring); ``settings`` are those of ``audit run``
    (``fail_above``, ``shadows``, ``bank``, ``seed``, ``gate``, ``device``...). Raises the
    tool's errors (``audit_cli.errors``) where the command line would exit non-zero before
    the report; the report's ``exit_code`` is the gate's verdict."""
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise UsageError(f"unknown setting {unknown[0]!r}", hint=f"settings: {', '.join(DEFAULTS)}")
    # Arguments are checked before anything loads (the request checks its own fields), where
    # a caller can read the message. Settings: numpy scalars as Python ones, a Path (bank=)
    # as the string a setting is.
    settings = {k: v.item() if isinstance(v, np.generic) else str(v) if isinstance(v, Path) else v
                for k, v in settings.items()}  # fmt: skip
    if progress is not None and not callable(progress):
        raise UsageError(f"progress must be a callable(done, total), got {type(progress).__name__}")
    request = AuditRequest(
        model=model,
        forget=forget,
        forget_class=forget_class,
        forget_clients=forget_clients,
        original=original,
        retrained=retrained,
        estimate_retrained=estimate_retrained,
        data=data,
        data_options=data_options,
        method=method,
        method_params=params,
        arch=arch,
        recipe=recipe,
        trainer=trainer,
        unlearner=unlearner,
        shadows_from=shadows_from,
    )
    config = config_from_settings(request, resolve_settings(settings), source_label="argument",
                                  config_file=find_config_file(Path.cwd()))  # fmt: skip
    return run_audit(config, progress=progress)


def dataset_from_arrays(
    x: Any,
    y: Any,
    is_train: Any,
    *,
    ids: Any = None,
    class_names: list[str] | None = None,
    name: str = "arrays",
) -> Dataset:
    """A dataset from arrays in memory (numpy or torch): features, integer labels, and which
    examples are in the training split; ids default to row numbers. The fingerprint covers
    the content, so a bank built on it is reused only for the same arrays."""

    def array(a: Any) -> np.ndarray:
        return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)

    y = array(y)
    if y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"labels must be a non-empty array of integers, got {y.size} of {y.dtype}",
                           hint="encode class names as 0..C-1 and pass class_names")  # fmt: skip
    names = class_names or [str(c) for c in range(int(y.max()) + 1)]
    x = array(x)
    modality = "image" if x.ndim == 4 else "tabular"
    return make_dataset(DatasetSpec(name), x, y, array(is_train), names, modality,
                        ids=None if ids is None else array(ids))  # fmt: skip


def dataset_from_torch(train: Any, test: Any, *, class_names: list[str] | None = None, name: str = "torch") -> Dataset:
    """A dataset from two ``torch.utils.data.Dataset`` objects yielding (input, label): the
    training split and the test split, ids in that order (train first). Every item is read
    once, into memory."""
    import torch

    xs, ys = [], []
    for part in (train, test):
        for i in range(len(part)):
            x, y = part[i]
            xs.append(torch.as_tensor(x).float().numpy())
            ys.append(int(y))
    is_train = np.r_[np.ones(len(train), bool), np.zeros(len(test), bool)]
    return dataset_from_arrays(np.stack(xs), np.array(ys), is_train, class_names=class_names, name=name)
