"""The sequential audit's looks: 8, 16, 32, 64 ... up to --shadows, each spending an equal
share of the error, and a reused bank read at the same looks as a fresh one."""

import pytest

from audit_cli.errors import UsageError
from audit_cli.shadows.looks import ALPHA, plan_looks, single_look


def test_looks_double_from_the_first_chunk_up_to_the_shadows():
    assert [look.shadows for look in plan_looks(64)] == [8, 16, 32, 64]
    assert [look.shadows for look in plan_looks(100)] == [8, 16, 32, 64, 100]
    assert [look.shadows for look in plan_looks(16)] == [8, 16]
    assert [look.shadows for look in plan_looks(8)] == [8]
    assert [look.shadows for look in plan_looks(4)] == [4]
    looks = plan_looks(64)
    assert [look.last for look in looks] == [False, False, False, True]
    assert [look.index for look in looks] == [0, 1, 2, 3] and {look.count for look in looks} == {4}


def test_the_error_is_split_equally_over_the_looks():
    looks = plan_looks(64)
    assert all(look.alpha == pytest.approx(ALPHA / 4, rel=1e-12) for look in looks)
    assert sum(look.alpha for look in looks) == pytest.approx(ALPHA, rel=1e-12)
    assert sum(look.alpha for look in plan_looks(1000)) == pytest.approx(ALPHA, rel=1e-12)  # 8 looks
    assert single_look(64).alpha == ALPHA and single_look(64).last


def test_fewer_than_two_shadows_is_no_schedule():
    with pytest.raises(UsageError, match="--shadows must be at least 2, got 1"):
        plan_looks(1)
