"""Terminal rendering of an AuditReport with rich: the verdict first, one line per check,
the sentences behind them only with ``-v``.

A CI log reads top-down: the first line says pass, fail or inconclusive and why (the
deciding check's sentence, which for an inconclusive run says what would decide it); then
what was audited; then one row per check. ``verbose`` adds every check's sentence, the
forgotten class's confusion table and why each skipped check was skipped.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from audit_cli.errors import ExitCode
from audit_cli.report import AuditReport, CheckResult, confusion_rows

STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "info": "dim", "skipped": "dim"}
HEADLINE = {
    ExitCode.PASS: ("PASS", "green"),
    ExitCode.FAIL: ("FAIL", "bold red"),
    ExitCode.INCONCLUSIVE: ("INCONCLUSIVE", "yellow"),
}


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _interval(c: CheckResult) -> str:
    return f"[{_num(c.low)}, {_num(c.high)}]" if c.low is not None else ""


def render(report: AuditReport, console: Console, verbose: bool = False) -> None:
    word, style = HEADLINE[report.exit_code]
    head = report.headline
    m = report.model
    console.print(f"[{style}]{word}[/] {escape(head.name)}: {escape(head.sentence)}")
    console.print(
        f"[dim]{escape(m.path)} ({escape(m.kind)}{', ' + escape(m.method) if m.method else ''}), "
        f"{report.forget.label} vs {report.forget.n_test} test examples{report.power_note}, "
        f"{report.shadows.n} shadows ({report.shadows.trained_now} trained now), "
        f"mode {report.mode}, {report.seconds:.1f}s[/]"
    )
    table = Table("verdict", "check", "score", "interval", "threshold", box=None, pad_edge=False)
    for c in report.checks:
        table.add_row(f"[{STYLE[c.verdict]}]{c.verdict}[/]", escape(c.name), _num(c.score), _interval(c),
                      _num(c.threshold))  # fmt: skip
    console.print(table)
    if report.exposed:
        ids = ", ".join(f"{e.example_id} ({e.score:.2f})" for e in report.exposed)
        console.print(f"most exposed forget ids (score): {ids}")
    if not verbose:
        if report.skipped:
            names = ", ".join(escape(name) for name, _ in report.skipped)
            console.print(f"[dim]skipped: {names}[/]")
        console.print("[dim]-v: every check's sentence and why each skipped check was skipped[/]")
        return
    for c in report.checks:
        if "confusion_row" in c.details:
            console.print(confusion_table(c.details))
    for c in report.checks:
        console.print(f"[bold]{escape(c.name)}[/]: {escape(c.sentence)}")
    for name, why in report.skipped:
        console.print(f"[dim]skipped {escape(name)}: {escape(why)}[/]")


def confusion_table(details: dict) -> Table:
    """Class forgetting: where each model sends the forgotten class's training examples."""
    classes = details["classes"]
    neighbors = set(details["neighbors"])
    names = [escape(str(c)) for c in classes]
    table = Table("predicted as", *[f"[bold]{c}[/]" if i in neighbors else c for i, c in enumerate(names)],
                  title="forgotten class: predictions (neighbor classes in bold)")  # fmt: skip
    for who, row in confusion_rows(details):
        table.add_row(escape(who), *[f"{v:.0%}" if v else "." for v in row])
    return table
