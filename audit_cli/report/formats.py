"""Report formats: one small renderer per format, ``render(report) -> str`` (bytes for
parquet, which only goes to a file).

- ``json``: the report's plain data with ``schema_version`` (schema in docs/report-schema.json);
- ``markdown``: for pull-request comments and ``$GITHUB_STEP_SUMMARY``;
- ``junit``: one testcase per gated check, for CI systems that read JUnit XML;
- ``html``: one self-contained page with plots (``html.py``);
- ``sarif``: SARIF 2.1.0 for code-scanning annotations (``sarif.py``);
- ``csv`` and ``parquet``: one row per scored forget and test example (report.EXAMPLE_COLUMNS),
  for a notebook or a spreadsheet.

The terminal renderer lives in ``terminal.py`` (it writes to a rich console instead).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from xml.etree import ElementTree as ET

from audit_cli.report import EXAMPLE_COLUMNS, AuditReport, confusion_rows

WORDS = {0: "PASS", 1: "FAIL", 3: "INCONCLUSIVE"}


def render_json(report: AuditReport) -> str:
    return report.to_json()


# Characters that make Markdown do something (links, images, emphasis, code, headings,
# HTML, table cells): a report rendered into a pull-request comment or a step summary must
# show the user's text (class names, paths), never run it.
MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]<>#|!~])")


def _cell(text: str) -> str:
    return MARKDOWN_ACTIVE.sub(r"\\\1", str(text)).replace("\r", " ").replace("\n", " ")


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def render_markdown(report: AuditReport) -> str:
    leak = report.headline
    m = report.model
    lines = [
        f"## Unlearning audit: **{WORDS[int(report.exit_code)]}**",
        "",
        _cell(leak.sentence),
        "",
        f"{_cell(m.path)} ({_cell(m.kind)}{', ' + _cell(m.method) if m.method else ''}); "
        f"{report.forget.label} vs {report.forget.n_test} test examples{report.power_note}; "
        f"{report.shadows.n} shadows; mode {report.mode}.",
        "",
        "| check | score | interval | threshold | verdict | what it means |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in report.checks:
        interval = f"[{_num(c.low)}, {_num(c.high)}]" if c.low is not None else ""
        cells = [_cell(c.name), _num(c.score), interval, _num(c.threshold), _cell(c.verdict), _cell(c.sentence)]
        lines.append("| " + " | ".join(cells) + " |")
    for c in report.checks:
        if "confusion_row" in c.details:
            d = c.details
            lines += ["", "Where the forgotten class's training examples go (neighbor classes in bold):", ""]
            head = [
                f"**{_cell(str(n))}**" if i in d["neighbors"] else _cell(str(n)) for i, n in enumerate(d["classes"])
            ]
            lines += ["| predicted as | " + " | ".join(head) + " |", "| --- |" + " --- |" * len(head)]
            for who, row in confusion_rows(d):
                lines.append(f"| {_cell(who)} | " + " | ".join(f"{v:.0%}" for v in row) + " |")
    if report.exposed:
        lines += [
            "",
            "Most exposed forget ids: " + ", ".join(f"{e.example_id} ({e.score:.2f})" for e in report.exposed),
        ]
    if report.skipped:
        lines += ["", "Skipped:"] + [f"- {_cell(name)}: {_cell(why)}" for name, why in report.skipped]
    return "\n".join(lines) + "\n"


# Characters XML 1.0 cannot hold at all (ElementTree writes them, and the file is then
# not well-formed): dropped from text that may come from a saved, edited report.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render_junit(report: AuditReport) -> str:
    gated = [c for c in report.checks if c.gated]
    suite = ET.Element(
        "testsuite",
        name="unlearning-audit",
        tests=str(len(gated)),
        failures=str(sum(c.verdict == "fail" for c in gated)),
        # An inconclusive check is no pass (the audit exits 3): an error, not a skipped test
        # that CI dashboards count as fine.
        errors=str(sum(c.verdict == "inconclusive" for c in gated)),
        time=f"{report.seconds:.3f}",
    )
    for c in gated:
        name, sentence = _NOT_XML.sub("", c.name), _NOT_XML.sub("", c.sentence)
        case = ET.SubElement(suite, "testcase", classname=f"audit.{report.mode}", name=name, time="0")
        if c.verdict == "fail":
            ET.SubElement(case, "failure", message=sentence, type=name).text = sentence
        elif c.verdict == "inconclusive":
            ET.SubElement(case, "error", message=sentence, type="inconclusive").text = sentence
        ET.SubElement(case, "system-out").text = sentence
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def render_html(report: AuditReport) -> str:
    from audit_cli.report.html import render_html as render  # matplotlib only when asked for

    return render(report)


def render_sarif(report: AuditReport) -> str:
    from audit_cli.report.sarif import render_sarif as render

    return render(report)


def _example_table(report: AuditReport):
    import pyarrow as pa

    if not report.examples:
        from audit_cli.errors import UsageError

        raise UsageError("this report holds no per-example table (a report saved by an older version): nothing "
                         "to write as csv or parquet", hint="rerun the audit")  # fmt: skip
    types = {"example_id": pa.int64(), "split": pa.string(), "score": pa.float64(), "phi": pa.float64(),
             "shadows_in": pa.int32(), "shadows_unlearned": pa.int32(), "shadows_out": pa.int32()}  # fmt: skip
    return pa.table({name: pa.array(report.examples[name], type=types[name]) for name in EXAMPLE_COLUMNS})


def render_csv(report: AuditReport) -> str:
    """One row per example; an unscorable example's score is empty."""
    import io

    import pyarrow.csv as pacsv

    out = io.BytesIO()
    pacsv.write_csv(_example_table(report), out, pacsv.WriteOptions(quoting_style="none"))
    return out.getvalue().decode("utf-8")


def render_parquet(report: AuditReport) -> bytes:
    import io

    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(_example_table(report), out)
    return out.getvalue()


FORMATS: dict[str, Callable[[AuditReport], str | bytes]] = {
    "json": render_json,
    "markdown": render_markdown,
    "junit": render_junit,
    "html": render_html,
    "sarif": render_sarif,
    "csv": render_csv,
    "parquet": render_parquet,
}
BINARY = frozenset({"parquet"})
"""Formats that only go to a file (``-f parquet=PATH``)."""
