"""HTML page of an ``audit sweep``: the points' table, a plot of leakage and Average Gap
against the points, and the chosen point beside its fresh-seed re-audit."""

from __future__ import annotations

import html

from audit_cli.report.html import png_base64, pyplot

ILLUSION = ("The chosen point is the best of several noisy measurements, so its own figures flatter it "
            "(selection after the fact: the illusion the ascent paper warns of). The fresh-seed row, "
            "unlearned and audited again with other randomness, is the honest figure.")  # fmt: skip


def label(params, swept: list[str]) -> str:
    return ", ".join(f"{k}={params[k]}" for k in swept)


def swept_names(points: list[dict]) -> list[str]:
    """The parameters whose value changes between points."""
    return [k for k in points[0]["params"] if len({str(p["params"][k]) for p in points}) > 1]


def figure(doc: dict, swept: list[str]) -> str:
    plt = pyplot("the sweep's HTML page")
    points = doc["points"]
    xs = list(range(len(points)))
    gaps = [p["average_gap"] for p in points]
    panels = 2 if all(g is not None for g in gaps) else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), dpi=110, squeeze=False)
    ax = axes[0][0]
    leak = [p["leakage"] for p in points]
    err = [[p["leakage"] - p["leakage_low"] for p in points], [p["leakage_high"] - p["leakage"] for p in points]]
    ax.errorbar(xs, leak, yerr=err, fmt="o", capsize=3, label="leakage (95% interval)")
    fresh = doc["fresh"]
    ax.errorbar([doc["chosen"] + 0.15], [fresh["leakage"]], yerr=[[fresh["leakage"] - fresh["leakage_low"]],
                [fresh["leakage_high"] - fresh["leakage"]]], fmt="s", color="black", capsize=3,
                label="chosen, fresh seed")  # fmt: skip
    ax.set(ylabel="leakage", title="leakage per point")
    ax.legend(fontsize=8)
    if panels == 2:
        ax2 = axes[0][1]
        ax2.plot(xs, gaps, "o-", label="Average Gap")
        if fresh["average_gap"] is not None:
            ax2.plot([doc["chosen"] + 0.15], [fresh["average_gap"]], "s", color="black", label="chosen, fresh seed")
        ax2.set(ylabel="points", title="Average Gap to the retrained model")
        ax2.legend(fontsize=8)
    for a in axes[0]:
        a.set_xticks(xs, [label(p["params"], swept) for p in points], rotation=30, ha="right", fontsize=7)
    return png_base64(fig, plt)


def render_sweep_html(doc: dict) -> str:
    """The page for a sweep's JSON document (``SweepResult.to_dict()``)."""
    e = html.escape
    points = doc["points"]
    swept = swept_names(points)

    def cell(x: object) -> str:
        return "" if x is None else e(f"{x:.3f}" if isinstance(x, float) else str(x))

    columns = ("point", "forget acc", "retain acc", "test acc", "leakage", "verdict", "Average Gap", "KL (forget)",
               "detrimental ratio", "KLoM")  # fmt: skip
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
    rows = []
    for i, p in enumerate([*points, doc["fresh"]]):
        name = "chosen, fresh seed" if i == len(points) else label(p["params"], swept)
        mark = " <b>(chosen)</b>" if i == doc["chosen"] else ""
        rows.append(f"<tr><td>{e(name)}{mark}</td><td>{cell(p['forget_accuracy'])}</td><td>{cell(p['retain_accuracy'])}"
                    f"</td><td>{cell(p['test_accuracy'])}</td><td>{cell(p['leakage'])} [{cell(p['leakage_low'])}, "
                    f"{cell(p['leakage_high'])}]</td><td class='{e(p['verdict'])}'>{e(p['verdict'])}</td>"
                    f"<td>{cell(p['average_gap'])}</td><td>{cell(p['kl_forget'])}</td>"
                    f"<td>{cell(p['detrimental_ratio'])}</td><td>{cell(p.get('klom'))}</td></tr>")  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unlearning sweep: {e(doc["method"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #d0d7de; padding: .3em .6em; }}
.fail {{ color: #cf222e; font-weight: bold; }} .pass {{ color: #1a7f37; }} .inconclusive {{ color: #9a6700; }}
</style></head><body>
<h1>Sweep of {e(doc["method"])} over {e(", ".join(swept) or "one point")}</h1>
<p>Chosen by the smallest {e(doc["criterion"])}; {e(ILLUSION)}</p>
<img alt="sweep" src="data:image/png;base64,{figure(doc, swept)}">
<table>{head}{"".join(rows)}</table>
</body></html>
"""
