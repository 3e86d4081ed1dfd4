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


def test_write_then_read_roundtrip_and_fingerprint_ignores_order(tmp_path):
    ids = np.array([9, 2, 5])
    write_id_file(tmp_path / "f.txt", ids, header="forget set\nseed 0")
    text = (tmp_path / "f.txt").read_text()
    assert text.startswith("# forget set\n# seed 0\n2\n")
    assert read_id_file(tmp_path / "f.txt").tolist() == [2, 5, 9]
    assert fingerprint_ids(ids) == fingerprint_ids(np.array([5, 9, 2]))
    assert fingerprint_ids(ids) != fingerprint_ids(np.array([5, 9]))
    assert not list(tmp_path.glob(".*tmp")), "no temporary file left behind"
