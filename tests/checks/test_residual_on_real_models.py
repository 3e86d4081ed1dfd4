"""The README's first audit on the shipped digits samples, at the default settings: the
residual memorisation share passes the exact retrain of a random 30% and fails the original
passed off as retrained, where the leakage score cannot tell them apart (slow: up to 64
shadows of the default digits recipe)."""

import pytest

from audit_cli.auditing.pipeline import run_audit
from audit_cli.auditing.request import AuditConfig

SAMPLES = "sample_models"


def audit(model: str, bank) -> object:
    report = run_audit(AuditConfig(
        model=f"{SAMPLES}/{model}.safetensors", forget=f"{SAMPLES}/forget_random30.txt",
        original=f"{SAMPLES}/digits_mlp_original.safetensors", method="retrain", bank=bank, device="cpu"))  # fmt: skip
    return next(c for c in report.checks if c.name == "residual-memorisation"), report


@pytest.mark.slow
def test_the_readme_first_audit_passes_the_exact_retrain_and_fails_the_original(tmp_path):
    passed_off, report = audit("digits_mlp_original", tmp_path)
    # A no-op is decided on the first chunk: 8 shadows, nothing more trained.
    assert int(report.exit_code) == 1 and passed_off.verdict == "fail"
    assert report.shadows.n == 8 and report.shadows.trained_now == 8 and report.shadows.schedule == (8, 16, 32, 64)
    # Measured on this machine: 0.81, one-sided bounds [0.38, 1.24] at 2.5% / 3 looks.
    assert passed_off.score > 0.6 and passed_off.details["fail_bounds"][0] > 0
    exact, report = audit("digits_mlp_retrained_random30", tmp_path)
    # Measured: -0.00 [-0.25, 0.24] on 64 shadows (looks at 16 and 32 could not show it).
    assert int(report.exit_code) == 0 and exact.verdict == "pass", exact.sentence
    assert -0.3 <= exact.low < 0 < exact.high <= 0.3 and abs(exact.score) < 0.15
    assert report.shadows.trained_now == report.shadows.n - 8  # the first 8 came from the first audit
    leakage = next(c for c in report.checks if c.name == "leakage")
    assert leakage.verdict == "info" and leakage.score < 0.1
    # Without --retrained, utility compares with the shadows retrained without their forget
    # sets: exact unlearners at the right size, which an exact retrain matches.
    utility = next(c for c in report.checks if c.name == "utility")
    assert utility.details["reference"] == "retrained shadows" and utility.verdict == "pass", utility.sentence
    assert abs(utility.score) < 0.03
