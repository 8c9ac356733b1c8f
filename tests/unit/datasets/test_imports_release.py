"""pyarrow's streaming CSV reader reads on a background IO thread and holds the Python file object it was given
past the reader's end; a process exiting while it still does aborts (SIGABRT). The import's readers therefore wait
until pyarrow has let go of its feed, whether the rows were read to the end, given up early, or refused."""

from __future__ import annotations

import gc
from decimal import Decimal

import pytest

from opslab.datasets import imports
from opslab.errors import InputError

HEADER = "ts_close,open,high,low,close,volume\n"
STEP = (Decimal("0.01"), Decimal("0.00001"))


@pytest.fixture
def released(monkeypatch):
    """For each reader given up, whether pyarrow had let go of its feed the moment _release returned."""
    seen: list[bool] = []
    real = imports._release

    def watch(source, fed):
        real(source, fed)
        seen.append(fed() is None)

    monkeypatch.setattr(imports, "_release", watch)
    return seen


def _alive() -> int:
    # type(), not isinstance(): another test's dead weakref.proxy raises ReferenceError on isinstance
    return sum(type(o) is imports._Feed for o in gc.get_objects())


def _write(tmp_path, rows: int, tail: bytes = b""):
    from datetime import datetime, timedelta, timezone

    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    path = tmp_path / "bars.csv"
    with path.open("wb") as fh:
        fh.write(HEADER.encode())
        fh.write("".join(f"{(start + timedelta(minutes=i + 1)):%Y-%m-%dT%H:%M:%SZ},42000.00,42001.00,41999.00,42000.50,1.5\n"
                         for i in range(rows)).encode())
        fh.write(tail)
    return path


def test_rows_read_to_the_end_leave_no_feed_behind(tmp_path, released):
    source = imports.CsvSource(_write(tmp_path, 60_000), {}, "close", STEP)  # about 3.5 MB: several blocks read ahead
    assert source.scan().rows == 60_000
    assert released == [True] and _alive() == 0


def test_rows_given_up_early_leave_no_feed_behind(tmp_path, released):
    source = imports.CsvSource(_write(tmp_path, 60_000), {}, "close", STEP)
    source.scan()
    blocks = source.blocks()
    next(blocks)  # one block of rows, the rest still being read ahead
    blocks.close()
    assert released == [True, True] and _alive() == 0


def test_a_refused_line_leaves_no_feed_behind(tmp_path, released):
    path = _write(tmp_path, 100, b"2024-01-01T02:00:00Z,1,2,1,1," + b"1" * (3 << 20) + b"\n")
    with pytest.raises(InputError, match="longer than 1048576 bytes"):
        imports.CsvSource(path, {}, "close", STEP).scan()
    assert released == [True] and _alive() == 0
