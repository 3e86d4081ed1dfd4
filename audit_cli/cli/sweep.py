"""`audit sweep`: one method over a grid of parameters, every point unlearned and audited,
the chosen point audited again on a fresh seed (audit_cli/auditing/sweep.py)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from audit_cli.auditing.sweep import SweepPoint, SweepRequest, parse_grid, sweep
from audit_cli.cli.common import (
    FLAG,
    OutputFormat,
    cli_errors,
    device_option,
    format_option,
    output_option,
    overwrite_option,
    param_option,
    parse_pairs,
    print_json,
    progress_bar,
    progress_option,
    quiet_option,
    reads_settings,
    seed_option,
    stderr_notice,
    stdout_console,
)
from audit_cli.cli.settings import bank_option, lock_timeout_option, resolved, shadows_option
from audit_cli.config import DEFAULTS
from audit_cli.report.sweep_html import label as point_label


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _row(name: str, p: SweepPoint) -> list[str]:
    return [name, f"{p.forget_accuracy:.2f}/{p.retain_accuracy:.2f}/{p.test_accuracy:.2f}",
            f"{p.leakage:.2f} [{p.leakage_low:.2f}, {p.leakage_high:.2f}]", p.verdict, _num(p.average_gap),
            _num(p.kl_forget), _num(p.detrimental_ratio), _num(p.klom), str(p.exit_code)]  # fmt: skip


@cli_errors
@reads_settings(*(k for k in DEFAULTS if k != "exit_zero"))
def sweep_cmd(
    ctx: typer.Context,
    model: Path = typer.Option(..., "--model", "-m", metavar="FILE", help="The original model every point unlearns."),
    method: str = typer.Option(..., "--method", metavar="NAME", help="Unlearning method (see `audit methods`)."),
    param: list[str] | None = param_option("name=v1,v2,... : the values to try (repeatable; the grid is the product)."),
    output: Path = output_option("Folder for the points' checkpoints and reports, sweep.json and sweep.html."),
    forget: Path | None = typer.Option(
        None, "--forget", metavar="FILE", help="Id file of training examples to forget."
    ),
    forget_class: int | None = typer.Option(None, "--forget-class", metavar="CLASS", help="The class to forget."),
    retrained: Path | None = typer.Option(
        None, "--retrained", metavar="FILE", help="A model retrained without the forget set (the criterion)."
    ),
    shadows: int = shadows_option("Shadow models per point."),
    bank: Path = bank_option(),
    fail_above: float = typer.Option(
        DEFAULTS["fail_above"], "--fail-above", metavar="LEAKAGE", help="Leakage threshold of every point's audit."
    ),  # fmt: skip
    allow_underpowered: bool = typer.Option(
        False, "--allow-underpowered", metavar=FLAG, help="Audit even when the counts cannot decide the threshold."
    ),
    seed: int = seed_option(0, "Seed of every point; the re-audit uses another."),
    overwrite: bool = overwrite_option(),
    device: str = device_option(),
    lock_timeout: float = lock_timeout_option(),
    quiet: bool = quiet_option(),
    progress: str = progress_option(),
    output_format: OutputFormat = format_option(),
) -> None:
    """Sweep a method's parameters: every point unlearned and audited; the chosen one re-audited on a fresh seed."""
    grid, fixed = parse_grid(parse_pairs(param, "--param"))
    # Settings as audit run resolves them: a flag, else AUDIT_*, else audit.toml or pyproject.toml.
    typed = {"shadows": shadows, "bank": str(bank), "fail_above": fail_above, "seed": seed,
             "allow_underpowered": allow_underpowered, "device": device, "lock_timeout": lock_timeout}  # fmt: skip
    # The settings sweep has no flag for (the other thresholds, the gate, variance, executor...)
    # too, so that each point's audit is the one audit run would make.
    s = resolved(ctx, typed | {k: None for k in DEFAULTS if k not in typed and k != "exit_zero"})
    request = SweepRequest(model=model, method=method, grid=grid, fixed=fixed, out=output, forget=forget,
                           forget_class=forget_class, retrained=retrained, shadows=s["shadows"], bank=Path(s["bank"]),
                           fail_above=s["fail_above"], allow_underpowered=s["allow_underpowered"], seed=s["seed"],
                           device=s["device"], overwrite=overwrite, lock_timeout=s["lock_timeout"],
                           audit_settings={k: v for k, v in s.items() if k not in typed})  # fmt: skip
    with progress_bar("sweep", quiet, unit="points", mode=progress) as update:
        result = sweep(request, progress=update, notice=stderr_notice)
    if output_format is OutputFormat.json:
        print_json(result.to_dict())
    else:
        console = stdout_console()
        table = Table("point", "acc f/r/t", "leakage", "verdict", "avg gap", "KL(f)", "ratio", "KLoM", "exit")
        swept = list(grid)
        for i, p in enumerate(result.points):
            table.add_row(*_row(point_label(p.params, swept) + (" (chosen)" if i == result.chosen else ""), p))
        table.add_row(*_row("chosen, fresh seed", result.fresh))
        console.print(table)
        console.print(
            f"chosen by the smallest {result.criterion}; the best of {len(result.points)} noisy points flatters "
            "itself, so the fresh-seed row is the honest figure: its audit's exit code is this command's"
        )
        console.print(f"wrote {result.out}/sweep.json, sweep.html and one checkpoint and report per point")
    raise typer.Exit(result.exit_code)
