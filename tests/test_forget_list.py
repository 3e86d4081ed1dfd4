"""`audit ids` and `audit forget-list`: a dataset's ids and seeded forget lists, through the CLI."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from audit_cli.app import app
from audit_cli.data import read_id_file


def run(*args):
    return CliRunner().invoke(app, list(args))


def test_ids_lists_each_split_and_a_class(digits):
    train = run("ids", "--data", "digits")
    assert train.exit_code == 0 and np.array_equal(np.array(train.stdout.split(), int), np.sort(digits.train_ids))
    assert len(run("ids", "--split", "test").stdout.split()) == 450
    assert len(run("ids", "--split", "all").stdout.split()) == 1797
    class3 = json.loads(run("ids", "--split", "test", "--class", "3", "--format", "json").stdout)
    assert class3 == sorted(int(i) for i in digits.ids_of_class(3, split="test")) and len(class3) > 20
    assert run("ids", "--split", "validation").exit_code == 2
    assert run("ids", "--class", "10").exit_code == 2


def test_forget_list_draws_a_seeded_sample_of_training_ids(tmp_path, digits):
    out = tmp_path / "f.txt"
    result = run("forget-list", "--data", "digits", "--fraction", "0.1", "--seed", "4", "-o", str(out))
    assert result.exit_code == 0 and "135 of 1347" in result.stdout
    ids = read_id_file(out)  # the header is comments: it reads back as an id file
    assert len(ids) == 135 and np.isin(ids, digits.train_ids).all()
    assert out.read_text().startswith("# 135 of the 1347 training ids of digits")
    again = tmp_path / "g.txt"
    run("forget-list", "--fraction", "0.1", "--seed", "4", "-o", str(again))
    assert np.array_equal(read_id_file(again), ids)  # same seed, same list
    other = tmp_path / "h.txt"
    run("forget-list", "--count", "135", "--seed", "5", "-o", str(other))
    assert not np.array_equal(read_id_file(other), ids)
    of_class = tmp_path / "c.txt"
    assert run("forget-list", "--count", "20", "--class", "3", "-o", str(of_class)).exit_code == 0
    assert (digits.y[digits.rows(read_id_file(of_class))] == 3).all()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--fraction", "0.1", "--count", "5"], "exactly one of --fraction and --count"),
        ([], "exactly one of --fraction and --count"),
        (["--fraction", "1.0"], "between 0 and 1"),
        (["--count", "1347"], "leaves nothing to keep"),
        (["--count", "0"], "leaves nothing to keep"),
    ],
)
def test_forget_list_refuses_bad_requests_with_one_line(tmp_path, args, message):
    out = tmp_path / "f.txt"
    result = run("forget-list", "-o", str(out), *args)
    assert result.exit_code == 2 and message in result.stderr and not out.exists()


def test_forget_list_keeps_an_existing_file_unless_told(tmp_path):
    out = tmp_path / "f.txt"
    out.write_text("7\n")
    result = run("forget-list", "--count", "5", "-o", str(out))
    assert result.exit_code == 2 and "not overwriting" in result.stderr and out.read_text() == "7\n"
    assert run("forget-list", "--count", "5", "-o", str(out), "--overwrite").exit_code == 0
    assert len(read_id_file(out)) == 5
    assert run("forget-list", "--count", "5", "-o", str(tmp_path / "nope" / "f.txt")).exit_code == 2
