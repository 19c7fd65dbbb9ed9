"""The days a CHT month holds, as CHT's calendar-interval computes them, and the start
day read as CHT reads it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediator.model.periods import Month, Period, cht_interval, month_start_day


def interval(tag: str, start_day: int) -> tuple[str, str]:
    begin, end = cht_interval(Period(Month.parse(tag), "Monthly"), start_day)
    return begin.isoformat(), end.isoformat()


def test_start_day_31_after_short_months_gives_chts_own_intervals():
    """The intervals cht-core's calendar-interval documents for a start day of 31:
    [12-31 -> 01-30], [01-31 -> 02-29], [03-01 -> 03-30], [03-31 -> 04-30],
    [05-01 -> 05-30], [05-31 -> 06-30]; a doc is tagged with the month its interval
    ends in."""
    assert interval("2024-01", 31) == ("2023-12-31", "2024-01-30")
    assert interval("2024-02", 31) == ("2024-01-31", "2024-02-29")
    assert interval("2024-03", 31) == ("2024-03-01", "2024-03-30")
    assert interval("2024-04", 31) == ("2024-03-31", "2024-04-30")
    assert interval("2024-05", 31) == ("2024-05-01", "2024-05-30")
    assert interval("2024-06", 31) == ("2024-05-31", "2024-06-30")


def test_common_start_days():
    assert interval("2024-02", 26) == ("2024-01-26", "2024-02-25")
    assert interval("2024-02", 1) == ("2024-02-01", "2024-02-29")
    assert interval("2023-03", 30) == ("2023-03-01", "2023-03-29")  # after a 28-day February


@given(start=st.integers(1, 31), first=st.integers(2000 * 12, 2100 * 12))
def test_consecutive_months_tile_the_calendar(start, first):
    """Every day belongs to exactly one CHT month, whatever the start day."""
    month = Month(first // 12, first % 12 + 1)
    _, end = cht_interval(Period(month, "Monthly"), start)
    begin, _ = cht_interval(Period(month.shift(1), "Monthly"), start)
    assert begin == end + timedelta(days=1)
    assert end.year == month.year and end.month == month.month  # tagged by its last month


@pytest.mark.parametrize(
    ("value", "day"),
    [
        (26, 26),
        ("26", 26),
        (" 26 ", 26),
        ("26th", 26),
        (26.9, 26),
        ("0", 1),
        (32, 1),
        ("x", 1),
        (True, 1),
        (None, 1),
    ],
)
def test_the_start_day_is_parsed_as_cht_parses_it(value, day):
    assert month_start_day({"uhc": {"month_start_date": value}}) == day


def test_the_visit_count_start_day_is_the_fallback():
    assert month_start_day({"uhc": {"visit_count": {"month_start_date": "5"}}}) == 5
