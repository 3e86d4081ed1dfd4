"""The audit report as typed data, and the exit-code gate.

Renderers (terminal, JSON, Markdown, HTML, SARIF and JUnit, in this package) only read
these dataclasses; nothing here prints. ``to_dict`` is the JSON document
(docs/report-schema.json); ``from_dict`` reads it back for ``audit report``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from html import escape
from types import UnionType
from typing import Literal, Union, get_args, get_origin, get_type_hints

from audit_cli.errors import ExitCode

Verdict = Literal["pass", "fail", "inconclusive", "info", "skipped"]

SCHEMA_VERSION = 1


CONFUSION_ORDER = ("model", "retrained twins", "retrained")


def confusion_rows(details: dict) -> list[tuple[str, list[float]]]:
    """The "where the class goes" rows in one order, whether the details come from the run
    or from a saved report (whose JSON sorts keys): every format renders them alike."""
    rows = details["confusion_row"]
    return sorted(rows.items(), key=lambda kv: (CONFUSION_ORDER.index(kv[0]) if kv[0] in CONFUSION_ORDER
                                                else len(CONFUSION_ORDER), kv[0]))  # fmt: skip


@dataclass(frozen=True)
class CheckResult:
    """One row of the report: a score with its interval and what it means."""

    name: str
    verdict: Verdict
    sentence: str
    """One plain-language sentence on what the result means."""
    score: float | None = None
    low: float | None = None
    high: float | None = None
    threshold: float | None = None
    gated: bool = False
    """Whether this check can fail the run (exit 1)."""
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Exposed:
    """A forget example the attack still singles out."""

    example_id: int
    score: float


@dataclass(frozen=True)
class ModelSection:
    """The audited model."""

    path: str
    sha256: str
    kind: str
    """original, unlearned or retrained (from the checkpoint's metadata)."""
    method: str | None
    """The unlearning method the shadows replayed (None: a membership audit)."""
    method_params: dict = field(default_factory=dict)
    filter: str | None = None
    """An MPRU output filter the model's outputs went through."""
    recipe: dict | None = None
    """How its shadows were trained (a recipe, an estimator, or the user's trainer's identity)."""
    recipe_source: str | None = None
    """Where that came from: checkpoint, recipe file PATH, or trainer MODULE:FUNCTION (user supplied)."""


@dataclass(frozen=True)
class DatasetSection:
    name: str
    fingerprint: str


@dataclass(frozen=True)
class ForgetSection:
    """The forget set and the test examples it is scored against."""

    n: int
    n_test: int
    fingerprint: str
    path: str | None = None
    forget_class: int | None = None
    """Class forgetting: the class (``class`` in JSON)."""
    min_decidable_leakage: float | None = None
    """The smallest leakage threshold these counts decide (audit_cli/checks/gate.py)."""
    clients: tuple[int, ...] = ()
    """A federated model: the forgotten clients whose examples are the forget set."""

    def __post_init__(self) -> None:
        # A saved report is input: a JSON list of client numbers, nothing else.
        if not isinstance(self.clients, (list, tuple)) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in self.clients
        ):
            raise TypeError("ForgetSection.clients is not a list of client numbers")
        object.__setattr__(self, "clients", tuple(self.clients))

    @property
    def label(self) -> str:
        """"144 forget", or "144 forget (client 3)" for a federated model's clients."""
        if not self.clients:
            return f"{self.n} forget"
        return f"{self.n} forget (client{'s' if len(self.clients) > 1 else ''} {', '.join(map(str, self.clients))})"


@dataclass(frozen=True)
class ShadowSection:
    """The shadow bank the attacks read."""

    n: int
    bank: str
    trained_now: int
    seconds: float
    variance: str | None = None
    """The Gaussian spread used (``auto`` resolved)."""
    variance_setting: str | None = None
    spread: str | None = None
    train_size: int | None = None
    """Examples each shadow trained on: the audited model's training-set size."""
    source: str | None = None
    """built by this tool, or imported from FILE (sha256 ...) with audit bank import."""
    schedule: tuple[int, ...] | None = None
    """The shadows at each look of a sequential audit (audit_cli/shadows/looks.py); ``n`` is the look
    that decided it (or the last)."""


EXAMPLE_COLUMNS = ("example_id", "split", "score", "phi", "shadows_in", "shadows_unlearned", "shadows_out")
"""The per-example table: the id; forget or test; the headline attack's score (U-LiRA or
LiRA; higher: more like a trained-on example); the audited model's logit-scaled
confidence; how many shadows trained on it and kept it, trained on it and unlearned it,
and never saw it."""


def _examples(data: object) -> dict:
    """The per-example columns of a saved report: all of EXAMPLE_COLUMNS, equally long."""
    if not isinstance(data, dict):
        raise TypeError("examples must be an object")
    if data and (set(data) != set(EXAMPLE_COLUMNS) or len({len(v) for v in data.values()}) != 1):
        raise ValueError("examples: its columns are not " + ", ".join(EXAMPLE_COLUMNS) + " of one length")
    return {k: list(v) for k, v in data.items()}


def _none(what: str):
    raise ValueError(f"no {what}")


def _mode(value: object) -> str:
    if value not in ("u-lira", "lira"):
        raise ValueError(f"mode {str(value)[:20]!r} is not u-lira or lira")
    return str(value)


def _finite(value):
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()  # a numpy scalar
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _section(cls: type, data: object, renames: dict[str, str] | None = None):
    """A dataclass from its JSON object, every field checked against its type: a saved
    report is input (``audit report``), and renderers trust what they are given. Unknown
    keys are an error, not silently dropped."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} must be an object")
    data = {(renames or {}).get(k, k): v for k, v in data.items()}
    hints = get_type_hints(cls)
    for name, value in data.items():
        if name in hints and not _fits(value, hints[name]):
            raise TypeError(f"{cls.__name__}.{name} is {type(value).__name__}, not {hints[name]}")
    return cls(**data)


def _shadow_section(data: object) -> ShadowSection:
    section = _section(ShadowSection, data)
    schedule = section.schedule
    if schedule is not None and not (isinstance(schedule, list) and all(_fits(n, int) for n in schedule)):
        raise TypeError("ShadowSection.schedule must be a list of whole numbers")
    return replace(section, schedule=None if schedule is None else tuple(schedule))


def _fits(value: object, hint: object) -> bool:
    """Whether a JSON value fits a field's type (numbers are not booleans; ints are floats)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return value in args
    if origin in (UnionType, Union):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool, dict):
        return isinstance(value, hint)
    return True  # containers checked where they are built


@dataclass(frozen=True)
class AuditReport:
    """Everything one `audit run` found, with provenance."""

    model: ModelSection
    dataset: DatasetSection
    forget: ForgetSection
    shadows: ShadowSection
    mode: str
    """u-lira (shadows unlearned like the model) or lira (no method declared: forget
    examples tested for membership against never-seen examples)."""
    checks: tuple[CheckResult, ...]
    exposed: tuple[Exposed, ...]
    skipped: tuple[tuple[str, str], ...]
    """(check, why it was skipped)."""
    seconds: float
    config: dict = field(default_factory=dict)
    """Setting -> {"value", "source"} (flag, env, file or default)."""
    provenance: dict = field(default_factory=dict)
    """Tool and library versions, git commit, seeds, sha256 of every input, timestamps."""
    curves: dict = field(default_factory=dict)
    """Headline attack's ROC points and per-set scores, for plots."""
    examples: dict = field(default_factory=dict)
    """Every scored forget and test example, as columns of equal length (EXAMPLE_COLUMNS):
    what ``-f csv`` and ``-f parquet`` write, one row per example."""
    schema_version: int = SCHEMA_VERSION

    @property
    def exit_code(self) -> ExitCode:
        """1 if a gated check failed; else 3 if any gated check is inconclusive (an
        incomplete audit never passes); else 0."""
        gated = [c for c in self.checks if c.gated]
        if any(c.verdict == "fail" for c in gated):
            return ExitCode.FAIL
        if not gated or any(c.verdict == "inconclusive" for c in gated):
            return ExitCode.INCONCLUSIVE
        return ExitCode.PASS

    @property
    def headline(self) -> CheckResult:
        """The gated check that decided the verdict: the first failure, else the first
        inconclusive one, else the headline gate (residual memorisation, else leakage)."""
        gated = [c for c in self.checks if c.gated]
        for verdict in ("fail", "inconclusive"):
            for c in gated:
                if c.verdict == verdict:
                    return c
        for name in ("residual-memorisation", "leakage"):
            if (found := next((c for c in gated if c.name == name), None)) is not None:
                return found
        return (gated or list(self.checks))[0]

    @property
    def power_note(self) -> str:
        """What the forget and test counts can decide, for the renderers ('' when unknown)."""
        m = self.forget.min_decidable_leakage
        return f" (these counts decide leakage thresholds from {m:.3f})" if isinstance(m, (int, float)) else ""

    def to_json(self) -> str:
        """The JSON document (docs/report-schema.json). NaN and infinity are not JSON: a
        number that could not be computed is null."""
        return json.dumps(_finite(self.to_dict()), indent=2, sort_keys=True, default=float, allow_nan=False) + "\n"

    def _repr_html_(self) -> str:
        """A notebook cell's view: the verdict, the deciding sentence and one row per check."""
        word = {ExitCode.PASS: "PASS", ExitCode.FAIL: "FAIL", ExitCode.INCONCLUSIVE: "INCONCLUSIVE"}[self.exit_code]
        head = self.headline

        def num(x: float | None) -> str:
            return "" if x is None else f"{x:.3f}"

        rows = "".join(
            f"<tr><td>{escape(c.verdict)}</td><td>{escape(c.name)}</td><td>{num(c.score)}</td>"
            f"<td>{'' if c.low is None else f'[{num(c.low)}, {num(c.high)}]'}</td><td>{num(c.threshold)}</td></tr>"
            for c in self.checks
        )
        return (
            f"<p><b>{word}</b> {escape(head.name)}: {escape(head.sentence)}</p>"
            f"<table><tr><th>verdict</th><th>check</th><th>score</th><th>interval</th><th>threshold</th></tr>"
            f"{rows}</table>"
        )

    def to_dict(self) -> dict:
        out = asdict(self)
        out["forget"]["class"] = out["forget"].pop("forget_class")
        out["exit_code"] = int(self.exit_code)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> AuditReport:
        """Rebuild a report saved as JSON (``audit report saved.json``): validated against
        docs/report-schema.json first (audit_cli/report/schema.py), since renderers trust
        what they are given."""
        from audit_cli.errors import InputError
        from audit_cli.report.schema import validate_report

        try:
            version = data.get("schema_version")
            if type(version) is not int or version != SCHEMA_VERSION:  # true == 1 in Python, not in JSON
                raise InputError(
                    f"report schema_version {repr(version)[:20]} is not {SCHEMA_VERSION}",
                    hint="re-run the audit with this version of unlearning-audit",
                )
            validate_report(data)
            roc = data.get("curves", {}).get("roc", {})
            if len(roc.get("fpr", ())) != len(roc.get("tpr", ())):  # the one rule the schema cannot say
                raise ValueError("$.curves.roc: fpr and tpr are not as long as each other")
            return cls(
                model=_section(ModelSection, data["model"]),
                dataset=_section(DatasetSection, data["dataset"]),
                forget=_section(ForgetSection, data["forget"], {"class": "forget_class"}),
                shadows=_shadow_section(data["shadows"]),
                mode=_mode(data["mode"]),
                checks=tuple(_section(CheckResult, c) for c in data["checks"]) or _none("checks"),
                exposed=tuple(_section(Exposed, e) for e in data["exposed"]),
                skipped=tuple((str(a), str(b)) for a, b in data["skipped"]),
                seconds=float(data["seconds"]),
                config=dict(data.get("config", {})),
                provenance=dict(data.get("provenance", {})),
                curves=dict(data.get("curves", {})),
                examples=_examples(data.get("examples", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"not an audit report: {exc}") from None
