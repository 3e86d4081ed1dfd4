"""Progress on stderr: a bar on a terminal, one line per step in a CI log (``2>log``)."""

import pytest
from typer.testing import CliRunner

from audit_cli.app import app
from audit_cli.cli.common import progress_lines


def test_lines_say_done_of_total_elapsed_and_the_time_left_at_the_pace_so_far():
    now, lines = [0.0], []
    update = progress_lines("shadow bank", "shadows", 0.0, lines.append, clock=lambda: now[0])
    for t, done, total in [(4, 8, 8), (8, 16, 16), (11, 24, 32), (14, 32, 32)]:
        now[0] = t
        update(done, total)
    # 16 shadows from the first update (4 s) to 11 s: the 8 left take about 7 / 16 * 8 = 3.5 s.
    assert lines == ["shadow bank: 8/8 shadows, 4s elapsed", "shadow bank: 16/16 shadows, 8s elapsed",
                     "shadow bank: 24/32 shadows, 11s elapsed, about 4s left",
                     "shadow bank: 32/32 shadows, 14s elapsed"]  # fmt: skip


def test_a_reused_banks_shadows_do_not_count_toward_the_pace():
    """Topping up a bank of 64 to 96: the first update already counts 72; from it, 8 more
    took 10 s, so the 16 left take about 20 s, not the 3 that 80 shadows in 10 s would say."""
    now, lines = [10.0], []
    update = progress_lines("shadow bank", "shadows", 0.0, lines.append, clock=lambda: now[0] - 10.0)
    update(72, 96)  # the first chunk this process trained: no pace yet
    now[0] = 20.0
    update(80, 96)
    assert lines == ["shadow bank: 72/96 shadows, 0s elapsed", "shadow bank: 80/96 shadows, 10s elapsed, about 20s left"]


def test_lines_are_throttled_but_the_last_always_shows():
    now, lines = [0.0], []
    update = progress_lines("training", "model-epochs", 10.0, lines.append, clock=lambda: now[0])
    for step in range(1, 61):
        now[0] = step * 0.5
        update(step, 60)
    # The first update, one every 10 s (steps 21 and 41), and the last.
    assert [line.split(",")[0] for line in lines] == ["training: 1/60 model-epochs", "training: 21/60 model-epochs",
                                                      "training: 41/60 model-epochs", "training: 60/60 model-epochs"]


@pytest.mark.slow
def test_a_ci_log_holds_one_line_per_chunk(tmp_path):
    """``audit run ... 2>log``: stderr is not a terminal, so each chunk of 8 shadows is one
    line, and ``--progress none`` (or -q) prints nothing."""
    args = ["run", "--model", "sample_models/digits_mlp_original.safetensors", "--forget",
            "sample_models/forget_random30.txt", "--method", "retrain", "--original",
            "sample_models/digits_mlp_original.safetensors", "--bank", str(tmp_path / "bank")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output  # a model that forgot nothing: failed on the first chunk
    assert result.stderr.splitlines() == [line for line in result.stderr.splitlines() if line.startswith("shadow")]
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("shadow bank: 8/8 shadows, ")
    quiet = CliRunner().invoke(app, [*args, "--progress", "none", "--shadows", "16"])
    assert quiet.exit_code == 1 and quiet.stderr == ""
    bad = CliRunner().invoke(app, [*args, "--progress", "sometimes"])
    assert bad.exit_code == 2 and "sometimes" in bad.stderr
