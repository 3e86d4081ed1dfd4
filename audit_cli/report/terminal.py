"""Terminal rendering of an AuditReport with rich: verdict panel, checks, exposed ids."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from audit_cli.errors import ExitCode
from audit_cli.report import AuditReport

STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "info": "dim", "skipped": "dim"}
HEADLINE = {
    ExitCode.PASS: ("PASS", "green"),
    ExitCode.FAIL: ("FAIL", "bold red"),
    ExitCode.INCONCLUSIVE: ("INCONCLUSIVE", "yellow"),
}


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def render(report: AuditReport, console: Console) -> None:
    word, style = HEADLINE[report.exit_code]
    leak = report.headline
    m = report.model
    console.print(
        Panel(
            f"[{style}]{word}[/]  {escape(leak.sentence)}\n"
            f"[dim]{escape(m['path'])} ({m['kind']}{', ' + m['method'] if m['method'] else ''}), "
            f"{report.forget['n']} forget vs {report.forget['n_test']} test examples{report.power_note}, "
            f"{report.shadows['n']} shadows ({report.shadows['trained_now']} trained now), "
            f"mode {report.mode}, {report.seconds:.1f}s[/]",
            title="unlearning audit",
            expand=False,
        )
    )
    table = Table("check", "score", "interval", "threshold", "verdict")
    for c in report.checks:
        interval = f"[{_num(c.low)}, {_num(c.high)}]" if c.low is not None else ""
        table.add_row(c.name, _num(c.score), interval, _num(c.threshold), f"[{STYLE[c.verdict]}]{c.verdict}[/]")
    console.print(table)
    for c in report.checks:
        if "confusion_row" in c.details:
            console.print(confusion_table(c.details))
    # Sentences below the table: they stay readable in an 80-column CI log.
    for c in report.checks:
        console.print(f"[bold]{escape(c.name)}[/]: {escape(c.sentence)}")
    if report.exposed:
        ids = ", ".join(f"{e.example_id} ({e.score:.2f})" for e in report.exposed)
        console.print(f"most exposed forget ids (score): {ids}")
    for name, why in report.skipped:
        console.print(f"[dim]skipped {escape(name)}: {escape(why)}[/]")


def confusion_table(details: dict) -> Table:
    """Class forgetting: where each model sends the forgotten class's training examples."""
    classes = details["classes"]
    neighbors = set(details["neighbors"])
    names = [escape(str(c)) for c in classes]
    table = Table("predicted as", *[f"[bold]{c}[/]" if i in neighbors else c for i, c in enumerate(names)],
                  title="forgotten class: predictions (neighbor classes in bold)")  # fmt: skip
    for who, row in details["confusion_row"].items():
        table.add_row(escape(who), *[f"{v:.0%}" if v else "." for v in row])
    return table
