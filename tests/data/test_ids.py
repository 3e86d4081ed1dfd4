"""Id files: what parses, what is refused and why."""

import numpy as np
import pytest

from audit_cli.data import fingerprint_ids, read_id_file, write_id_file
from audit_cli.errors import IdFileError


def write(tmp_path, data: bytes, name="ids.txt"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_comments_blank_lines_bom_and_crlf(tmp_path):
    p = write(tmp_path, "\ufeff# forget list\r\n3\r\n\r\n  10  # a comment\r\n1\r\n".encode("utf-8"))
    assert read_id_file(p).tolist() == [1, 3, 10]


@pytest.mark.parametrize(
    "content,message",
    [
        (b"1\n2\nabc\n", r"ids.txt:3: 'abc' is not an integer"),
        (b"1\n-4\n", r"ids.txt:2: id -4 is negative"),
        (b"7\n8\n7\n", r"ids.txt:3: id 7 repeats line 1"),
        (b"# nothing\n\n", r"no ids"),
        (b"", r"no ids"),
        (b"1.5\n", r"not an integer"),
        (b"\xff\xfe1\n", r"not UTF-8"),
        # Python's int() reads these; an id file must not.
        (b"+5\n", r"'\+5' is not an integer id \(ASCII digits only\)"),
        (b"1_0\n", r"'1_0' is not an integer id"),
        ("\u0663\u0661\n".encode(), r"not an integer id"),  # Arabic-Indic 31
        ("\uff15\n".encode(), r"not an integer id"),  # full-width 5
        # ... and str.splitlines() splits at these, turning one bad line into two ids.
        (b"12\x1c34\n", r"ids.txt:1: .* not an integer id"),
        ("12\u202834\n".encode(), r"ids.txt:1: .* not an integer id"),
        (b"9223372036854775808\n", r"ids.txt:1: id with 19 digits is too large"),
    ],
)
def test_bad_id_files_name_the_line(tmp_path, content, message):
    with pytest.raises(IdFileError, match=message):
        read_id_file(write(tmp_path, content))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(IdFileError, match="not found"):
        read_id_file(tmp_path / "nope.txt")
    with pytest.raises(IdFileError, match="directory"):
        read_id_file(tmp_path)


def test_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    import audit_cli.data.ids as ids_mod

    monkeypatch.setattr(ids_mod, "MAX_ID_FILE_BYTES", 10)
    with pytest.raises(IdFileError, match="byte limit"):
        read_id_file(write(tmp_path, b"1\n2\n3\n4\n5\n6\n"))


def test_devices_are_refused_and_a_symlinked_file_is_never_quoted(tmp_path):
    zero = tmp_path / "zero.txt"
    zero.symlink_to("/dev/zero")  # size 0, endless: the size cap alone would never trigger
    with pytest.raises(IdFileError, match="not a regular file"):
        read_id_file(zero)
    secret = tmp_path / "secret"
    secret.write_text("AKIA-SECRET-TOKEN-123\n")
    link = tmp_path / "ids.txt"
    link.symlink_to(secret)
    with pytest.raises(IdFileError) as info:
        read_id_file(link)
    assert "AKIA" not in str(info.value) and "ids.txt:1: the line is not an integer id" in str(info.value)


def test_write_then_read_roundtrip_and_fingerprint_ignores_order(tmp_path):
    ids = np.array([9, 2, 5])
    write_id_file(tmp_path / "f.txt", ids, header="forget set\nseed 0")
    text = (tmp_path / "f.txt").read_text()
    assert text.startswith("# forget set\n# seed 0\n2\n")
    assert read_id_file(tmp_path / "f.txt").tolist() == [2, 5, 9]
    assert fingerprint_ids(ids) == fingerprint_ids(np.array([5, 9, 2]))
    assert fingerprint_ids(ids) != fingerprint_ids(np.array([5, 9]))
    assert not list(tmp_path.glob(".*tmp")), "no temporary file left behind"
