"""`audit evaluate-attack`: leave-one-shadow-out LiRA, and RMIA beside it, how strong the membership
attack is on a bank's recipe."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from attacks.rmia import GAMMA, OFFLINE_A
from audit_cli.cli.common import OutputFormat, cli_errors, format_option, print_json, reads_settings, stdout_console
from audit_cli.cli.settings import bank_option, resolved
from audit_cli.config import DEFAULTS
from audit_cli.shadows import read_bank
from audit_cli.shadows.banks import AttackStrength, evaluate_attack, resolve_bank


def attack_strength_dict(bank: Path, strength: AttackStrength) -> dict:
    def interval(i) -> dict:
        return {"value": i.value, "low": i.low, "high": i.high}

    targets = [
        {
            "target": k,
            "auc": interval(r.auc),
            "balanced_accuracy": interval(r.balanced_accuracy),
            "tpr_at_fpr": [
                {"fpr": t.fpr, "tpr": interval(t.tpr) if t.tpr else None, "reason": t.reason or None}
                for t in r.tpr_at_fpr
            ],
        }
        for k, r in enumerate(strength.reports)
    ]
    rmia = [{"target": k, "auc": interval(r.auc),
             "tpr_at_fpr": [{"fpr": t.fpr, "tpr": interval(t.tpr) if t.tpr else None, "reason": t.reason or None}
                            for t in r.tpr_at_fpr]}
            for k, r in enumerate(strength.rmia)]  # fmt: skip
    return {"bank": str(bank), "shadows": strength.n_shadows, "mean_auc": strength.mean_auc, "targets": targets,
            "rmia": {"mode": "offline", "a": OFFLINE_A, "gamma": GAMMA, "mean_auc": strength.mean_rmia_auc,
                     "targets": rmia}}  # fmt: skip


@cli_errors
@reads_settings("bank", "variance")
def evaluate_attack_cmd(
    ctx: typer.Context,
    bank: Path = bank_option(),
    targets: int = typer.Option(8, "--targets", metavar="N", help="How many shadows take a turn as the target."),
    variance: str = typer.Option(
        DEFAULTS["variance"], "--variance", metavar="auto|global|per-example", help="Gaussian spread."
    ),
    output_format: OutputFormat = format_option(),
) -> None:
    """Leave-one-shadow-out LiRA, and RMIA beside it: how strong the membership attack is on this recipe."""
    # Where `audit run` builds, with its spread: the command line, AUDIT_*, then audit.toml.
    settings = resolved(ctx, {"bank": str(bank), "variance": variance})
    bank, variance = Path(str(settings["bank"])), str(settings["variance"])
    path = resolve_bank(bank)
    strength = evaluate_attack(read_bank(path), targets=targets, variance=variance)
    if output_format is OutputFormat.json:
        print_json(attack_strength_dict(path, strength))
        return
    table = Table("target shadow", "AUC", "interval", "balanced acc.", "TPR @ 1% FPR", "TPR @ 0.1% FPR",
                  "RMIA AUC", "RMIA TPR @ 1% FPR")  # fmt: skip
    for k, (r, m) in enumerate(zip(strength.reports, strength.rmia, strict=True)):
        tprs = [f"{t.tpr.value:.3f}" if t.tpr else "inconclusive" for t in r.tpr_at_fpr]
        rmia_tpr = m.tpr_at_fpr[0]
        table.add_row(str(k), f"{r.auc.value:.3f}", f"[{r.auc.low:.3f}, {r.auc.high:.3f}]",
                      f"{r.balanced_accuracy.value:.3f}", *tprs, f"{m.auc.value:.3f}",
                      f"{rmia_tpr.tpr.value:.3f}" if rmia_tpr.tpr else "inconclusive")  # fmt: skip
    console = stdout_console()
    console.print(table)
    console.print(
        f"mean AUC over {len(strength.reports)} targets: LiRA {strength.mean_auc:.3f}, RMIA offline "
        f"{strength.mean_rmia_auc:.3f} (a = {OFFLINE_A}, gamma = {GAMMA}; {strength.n_shadows} shadows)"
    )
