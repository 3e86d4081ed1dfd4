"""The per-example table (-f csv, -f parquet, the JSON report's ``examples``): one row per
scored forget and test example, cross-checked against the bank's own export and the
report's other fields."""

import csv
import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from audit_cli.app import app
from audit_cli.data import read_id_file
from audit_cli.report import EXAMPLE_COLUMNS

FORGET = "sample_models/forget_random30.txt"


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """The original passed off as retrained: failed on the first 8 shadows."""
    out = tmp_path_factory.mktemp("table")
    result = CliRunner().invoke(app, [
        "run", "--model", "sample_models/digits_mlp_original.safetensors", "--method", "retrain", "--original",
        "sample_models/digits_mlp_original.safetensors", "--forget", FORGET, "--bank", str(out / "bank"), "-q",
        "-f", f"csv={out / 'e.csv'}", "-f", f"parquet={out / 'e.parquet'}", "-f", f"json={out / 'r.json'}",
    ])  # fmt: skip
    assert result.exit_code == 1, result.output
    return out


@pytest.mark.slow
def test_one_row_per_forget_and_test_example_with_the_banks_counts(audited):
    rows = list(csv.DictReader(io.StringIO((audited / "e.csv").read_text())))
    assert list(rows[0]) == list(EXAMPLE_COLUMNS)
    forget = read_id_file(FORGET)
    report = json.loads((audited / "r.json").read_text())
    n_forget, n_test = report["forget"]["n"], report["forget"]["n_test"]
    assert [r["split"] for r in rows] == ["forget"] * n_forget + ["test"] * n_test and n_forget == len(forget) == 404
    assert sorted(int(r["example_id"]) for r in rows[:n_forget]) == sorted(int(i) for i in forget)
    # The states each shadow of the bank recorded, counted from `audit bank export`.
    export = CliRunner().invoke(app, ["bank", "export", str(audited / "bank"), "-o", "-"])
    counts: dict[tuple[int, str], int] = {}
    for line in csv.DictReader(io.StringIO(export.stdout)):
        key = (int(line["example_id"]), line["state"])
        counts[key] = counts.get(key, 0) + 1
    for r in rows:
        i = int(r["example_id"])
        got = (int(r["shadows_in"]), int(r["shadows_unlearned"]), int(r["shadows_out"]))
        assert got == (counts.get((i, "in"), 0), counts.get((i, "unlearned"), 0), counts.get((i, "out"), 0)), i
        assert sum(got) == report["shadows"]["n"] == 8
    # Scores: the same as the plots' per-set scores, and the most exposed ids are the top forget rows.
    forget_scores = [float(r["score"]) for r in rows[:n_forget] if r["score"]]
    assert np.allclose(forget_scores, report["curves"]["scores"]["forget"], atol=1e-4)
    assert len(forget_scores) < n_forget  # at 8 shadows some examples lack a state: empty, not 0
    ranked = sorted((r for r in rows[:n_forget] if r["score"]), key=lambda r: -float(r["score"]))
    assert [int(r["example_id"]) for r in ranked[:10]] == [e["example_id"] for e in report["exposed"]]
    table = pq.read_table(audited / "e.parquet")
    assert table.column_names == list(EXAMPLE_COLUMNS) and table.num_rows == len(rows)
    assert table.column("example_id").to_pylist() == [int(r["example_id"]) for r in rows]


@pytest.mark.slow
def test_a_saved_report_rewrites_the_table_and_parquet_needs_a_file(audited):
    again = CliRunner().invoke(app, ["report", str(audited / "r.json"), "-f", "csv"])
    assert again.exit_code == 1 and again.stdout == (audited / "e.csv").read_text()
    binary = CliRunner().invoke(app, ["report", str(audited / "r.json"), "-f", "parquet"])
    assert binary.exit_code == 2 and "-f parquet is binary and goes to a file" in binary.stderr


def test_a_report_without_the_table_says_so(tmp_path):
    from tests.test_ci_recipe import _report

    saved = tmp_path / "old.json"
    saved.write_text(_report("pass").to_json())  # a report with no examples, as older versions wrote
    result = CliRunner().invoke(app, ["report", str(saved), "-f", "csv"])
    assert result.exit_code == 2 and "holds no per-example table" in result.stderr


def test_unequal_columns_are_not_a_report(tmp_path):
    from tests.test_ci_recipe import _report

    doc = json.loads(_report("pass").to_json())
    doc["examples"] = {name: [1, 2] for name in EXAMPLE_COLUMNS} | {"split": ["forget", "test"], "phi": [0.5]}
    saved = tmp_path / "bad.json"
    saved.write_text(json.dumps(doc))
    result = CliRunner().invoke(app, ["report", str(saved)])
    assert result.exit_code == 2 and "not an audit report" in result.stderr


def test_a_refused_audit_writes_the_header_and_no_rows(tmp_path):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("\n".join(str(i) for i in range(10)) + "\n")
    out = tmp_path / "e.csv"
    result = CliRunner().invoke(app, ["run", "--model", "sample_models/digits_mlp_original.safetensors", "--forget",
                                      str(tiny), "--bank", str(tmp_path / "b"), "-q", "-f", f"csv={out}"])  # fmt: skip
    assert result.exit_code == 3 and out.read_text().splitlines() == [",".join(f'"{c}"' for c in EXAMPLE_COLUMNS)]
