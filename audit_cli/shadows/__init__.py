"""The shadow bank: shadow models trained and unlearned like the audited model, kept as signals.

Shadow k trains on a random subset of the pool (every dataset example, train and test) as
large as the audited model's training set, so that its confidence matches the target's;
then it forgets as many examples as the audited model did, drawn by the audited model's
rule, and is unlearned with the audited model's method and every declared parameter,
augmentation included.

The forget rule keeps U-LiRA fair under the null. The attack scores the audited forget
set (positives) against the test examples (negatives), and each scored example needs
UNLEARNED and OUT observations in comparable numbers. So for a random forget set a
shadow forgets, at one rate, the scored candidates (forget and test ids alike) it trained
on, topped up from its other training examples when too few; each candidate is then
UNLEARNED in about ``|F| / |F + T|`` of the shadows and OUT in ``1 - n_train / n_pool``,
whatever side of the game it is on. (Forgetting only the audited ids it trained on left
a test example UNLEARNED in 2 or 3 of 64 shadows, and failed exact retrains.) For a
class: every example of that class it trained on.

For every pool example the bank keeps the state (OUT, IN, UNLEARNED), the logit-scaled
confidence before unlearning (LiRA) and after (U-LiRA), and the logits after (class-level
checks). Without a method (the audited model declares none) shadows are not unlearned
and every trained-on example is IN.

For class forgetting each shadow has a reference twin: a model trained with the same
seed on the same subset minus the class, the "retrained without c" model the unlearned
shadow should be indistinguishable from. U-LiRA in class mode and MIA-NN compare against
these twins; the bank keeps their signals and logits too.

Storage: a directory named by a content hash of everything that determines the shadows
(dataset fingerprint, recipe, training-set size, method, parameters and augmentation,
forget rule with the scored candidates, seed, bank format). Shadows are built in fixed
chunks (0..c-1, c..2c-1, ...), each written as one Parquet file atomically and then
recorded in ``manifest.json`` (also written atomically). A rerun reuses complete chunks
and tops up to the requested count; a killed run loses at most the chunk in flight, which
is rebuilt with the same composition, so the bank equals one built without interruption.
Weights are not kept.

``ShadowBank`` (the builder, which trains with torch) is imported on first use: reading a
bank (`audit bank ls`, `audit bank verify`) needs only the plan and the signals, and those
commands start without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from audit_cli.shadows.plan import BankSpec, ForgetRule, ShadowPlan, plan_shadow
from audit_cli.shadows.signals import BANK_FORMAT, MANIFEST, STATE_NAMES, SignalBank, export_long, read_bank

if TYPE_CHECKING:
    from audit_cli.shadows.bank import ShadowBank


def __getattr__(name: str) -> object:
    if name == "ShadowBank":
        return importlib.import_module("audit_cli.shadows.bank").ShadowBank
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BANK_FORMAT", "MANIFEST", "STATE_NAMES", "BankSpec", "ForgetRule", "ShadowBank", "ShadowPlan",
           "SignalBank", "export_long", "plan_shadow", "read_bank"]  # fmt: skip
