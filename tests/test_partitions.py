import datetime as dt

import pytest

from backfill_lab.errors import PartitionError
from backfill_lab.partitions import (
    PartitionSet,
    key_range,
    parse_key,
    shift,
    to_value,
    trailing_window,
)


def test_range_is_inclusive_and_crosses_year_end():
    december = PartitionSet.parse("2024-12-01..2024-12-31")
    assert len(december) == 31
    assert (december.start, december.end) == ("2024-12-01", "2024-12-31")
    assert key_range("2024-12-31", "2025-01-01") == ["2024-12-31", "2025-01-01"]


def test_list_and_targeted_sets_are_sorted_and_deduplicated():
    ps = PartitionSet.parse(["2025-01-14", "2025-01-10..2025-01-12", "2025-01-11"])
    assert ps.keys == ("2025-01-10", "2025-01-11", "2025-01-12", "2025-01-14")
    assert ps.runs() == [("2025-01-10", "2025-01-12"), ("2025-01-14", "2025-01-14")]
    assert not ps.is_contiguous
    assert str(ps) == "2025-01-10..2025-01-12, 2025-01-14"
    assert PartitionSet.parse("2025-01-10, 2025-01-12") == PartitionSet.parse(
        ["2025-01-10", dt.date(2025, 1, 12)]
    )


def test_hourly_keys_and_ranges():
    hours = PartitionSet.parse("2024-12-01T00:00..2024-12-02T23:00")
    assert len(hours) == 48 and hours.grain == "hourly"
    assert parse_key("2024-12-01 05") == "2024-12-01T05:00"
    assert to_value("2024-12-01T05:00") == dt.datetime(2024, 12, 1, 5)
    assert shift("2024-12-01T00:00", -1) == "2024-11-30T23:00"


def test_order_and_windows():
    ps = PartitionSet.range("2024-12-01", "2024-12-03")
    assert ps.ordered("descending") == ["2024-12-03", "2024-12-02", "2024-12-01"]
    assert trailing_window("2025-01-01", 3) == ["2024-12-30", "2024-12-31", "2025-01-01"]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("2024-12-31..2024-12-01", "is reversed"),
        ("2024-12-01..", "must be written 'START..END'"),
        ("2024-13-01", "got '2024-13-01'"),
        ("yesterday", "got 'yesterday'"),
        ("2024-12-01..2024-12-02T05:00", "mixes a daily and an hourly key"),
        ([], "at least one partition"),
        ("2024-12-01T05:30", "must start on the hour"),
        (42, "got int 42"),
    ],
)
def test_bad_partitions_name_what_was_received(spec, fragment):
    with pytest.raises(PartitionError) as info:
        PartitionSet.parse(spec)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_reversed_range_suggests_the_fix():
    with pytest.raises(ValueError, match=r"write it as '2024-12-01\.\.2024-12-31'"):
        PartitionSet.parse("2024-12-31..2024-12-01")


def test_unknown_order_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'descending'"):
        PartitionSet.parse("2024-12-01").ordered("decending")
