"""HTML report: one self-contained file with plots, the checks table and the provenance.

Plots (matplotlib, the ``plots`` extra) are embedded as base64 PNG: the headline attack's
ROC curve on log-log axes (the low-FPR region is where membership attacks matter) and the
histograms of the attack's scores on forget and test examples. No external asset is
referenced, so the file can be uploaded as a CI artifact and opened anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json

from audit_cli.errors import UsageError
from audit_cli.report import AuditReport, confusion_rows

WORDS = {0: ("PASS", "#1a7f37"), 1: ("FAIL", "#cf222e"), 3: ("INCONCLUSIVE", "#9a6700")}


def pyplot(what: str = "the HTML report"):
    """matplotlib's pyplot on the Agg backend (no display in CI), or a usage error naming
    the ``plots`` extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        hint = "pip install matplotlib (the plots extra: pip install -e '.[plots]' in a clone)"
        raise UsageError(f"{what} needs matplotlib", hint=hint) from None
    return plt


def _figures(report: AuditReport) -> list[tuple[str, str]]:
    plt = pyplot()
    out = []
    roc = report.curves.get("roc")
    if roc and len(roc["fpr"]) > 1:
        fig, ax = plt.subplots(figsize=(4.5, 4.2), dpi=110)
        floor = 1e-4
        ax.plot([max(f, floor) for f in roc["fpr"]], [max(t, floor) for t in roc["tpr"]], label=report.mode.upper())
        ax.plot([floor, 1], [floor, 1], "--", color="grey", label="chance")
        ax.set(xscale="log", yscale="log", xlabel="false positive rate", ylabel="true positive rate",
               title="ROC, forget vs test (log-log)")  # fmt: skip
        ax.legend(loc="lower right")
        out.append(("roc", png_base64(fig, plt)))
    scores = report.curves.get("scores")
    if scores and scores.get("forget") and scores.get("test"):
        fig, ax = plt.subplots(figsize=(4.5, 4.2), dpi=110)
        ax.hist(scores["test"], bins=40, alpha=0.6, density=True, label="test (never seen)")
        ax.hist(scores["forget"], bins=40, alpha=0.6, density=True, label="forget")
        ax.set(xlabel=f"{report.mode.upper()} score", ylabel="density", title="attack scores")
        ax.legend()
        out.append(("scores", png_base64(fig, plt)))
    return out


def png_base64(fig, plt) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _confusion(details: dict) -> str:
    """Class forgetting: where each model sends the forgotten class's training examples."""
    e = html.escape
    head = "".join(
        f"<th>{'<b>' + e(str(n)) + '</b>' if i in details['neighbors'] else e(str(n))}</th>"
        for i, n in enumerate(details["classes"])
    )
    body = "".join(
        f"<tr><td>{e(str(who))}</td>" + "".join(f"<td>{e(f'{v:.0%}')}</td>" for v in row) + "</tr>"
        for who, row in confusion_rows(details)
    )
    return (
        "<h2>Where the forgotten class goes</h2><p>Predictions on its training examples "
        f"(neighbor classes in bold).</p><table><tr><th>model</th>{head}</tr>{body}</table>"
    )


def render_html(report: AuditReport) -> str:
    e = html.escape
    word, colour = WORDS[int(report.exit_code)]
    leak = report.headline
    rows = "\n".join(
        f"<tr><td>{e(c.name)}</td><td>{_num(c.score)}</td>"
        f"<td>{'[' + _num(c.low) + ', ' + _num(c.high) + ']' if c.low is not None else ''}</td>"
        f"<td>{_num(c.threshold)}</td><td class='{e(c.verdict)}'>{e(c.verdict)}</td><td>{e(c.sentence)}</td></tr>"
        for c in report.checks
    )
    figures = "".join(f"<img alt='{name}' src='data:image/png;base64,{data}'>" for name, data in _figures(report))
    exposed = e(", ".join(f"{x.example_id} ({x.score:.2f})" for x in report.exposed))
    skipped = "".join(f"<li>{e(name)}: {e(why)}</li>" for name, why in report.skipped)
    confusion = "".join(_confusion(c.details) for c in report.checks if "confusion_row" in c.details)
    m = report.model
    # Sorted as the saved JSON is, so that audit report renders the same page.
    prov = e(json.dumps({"config": report.config, "provenance": report.provenance}, indent=2, default=str,
                        sort_keys=True))  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unlearning audit: {word}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #1f2328; }}
.verdict {{ font-size: 1.6em; font-weight: bold; color: {colour}; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #d0d7de; padding: .3em .6em; }}
.fail {{ color: #cf222e; font-weight: bold; }} .pass {{ color: #1a7f37; }} .inconclusive {{ color: #9a6700; }}
img {{ margin-right: 1em; }} pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; }}
</style></head><body>
<h1>Unlearning audit</h1>
<p class="verdict">{word}</p>
<p>{e(leak.sentence)}</p>
<p><code>{e(m.path)}</code> ({e(m.kind)}{", " + e(m.method) if m.method else ""}):
{e(str(report.forget.n))} forget vs {e(str(report.forget.n_test))} test examples{e(report.power_note)},
{e(str(report.shadows.n))} shadows, mode {e(report.mode)}, {report.seconds:.1f} s.</p>
<div>{figures}</div>
<table><tr><th>check</th><th>score</th><th>interval</th><th>threshold</th><th>verdict</th><th>what it means</th></tr>
{rows}
</table>{confusion}
<p>Most exposed forget ids (score): {exposed or "none"}</p>
<ul>{skipped}</ul>
<h2>Settings and provenance</h2>
<pre>{prov}</pre>
</body></html>
"""
