"""own: the user's own unlearning code, given as ``--unlearner package.module:function``.

The tool does not run it on the user's model (the user did that); the audit replays it on
shadows trained by the user's own trainer (``--trainer``), so that U-LiRA compares the
audited model with shadows unlearned exactly as it was. The protocol is in docs/api.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit_cli.unlearn.base import MethodEntry


@dataclass(frozen=True)
class OwnParams:
    """No parameters: the user's function carries its own."""


ENTRY = MethodEntry(
    name="own",
    params=OwnParams,
    supports=frozenset({"random", "class"}),
    description="your own unlearning code (audit run --trainer ... --unlearner package.module:function); "
    "replayed on shadows your trainer trains",
    external=True,
)
