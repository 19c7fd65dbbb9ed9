"""ISO period strings to date ranges, the way DHIS2's ``DateUnitType`` parses them.

Only the ISO 8601 calendar is modelled. Supported period types: Daily, Weekly
(ISO weeks, Monday start), Monthly (``yyyyMM`` and ``yyyy-MM``), BiMonthly,
Quarterly, SixMonthly, SixMonthlyApril, Yearly and FinancialApril/July/Oct/Nov.
Not modelled (reported as unparseable, E7611): Weekly{Wednesday,Thursday,
Saturday,Sunday}, BiWeekly, QuarterlyNov, SixMonthlyNov, FinancialSep.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True, order=True)
class Period:
    """A parsed period; ``iso`` is the canonical form DHIS2 stores and exports."""

    start: date
    end: date
    type_name: str
    iso: str


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _months(year: int, month: int, count: int) -> tuple[date, date]:
    """First day of (year, month) to the last day ``count`` months later."""
    last_index = year * 12 + (month - 1) + count - 1
    return date(year, month, 1), _month_end(last_index // 12, last_index % 12 + 1)


FINANCIAL_START = {"April": 4, "July": 7, "Oct": 10, "Nov": 11}


def parse_period(text: str | None, dash_daily: bool = True) -> Period | None:
    """The period for ``text`` or None when DHIS2 could not parse it (E7611)."""
    if not text:
        return None
    s = text.strip()
    try:
        return _parse(s, dash_daily)
    except ValueError:
        return None


def _parse(s: str, dash_daily: bool) -> Period | None:
    if m := re.fullmatch(r"(\d{4})(\d{2})(\d{2})", s):
        d = date(int(m[1]), int(m[2]), int(m[3]))
        return Period(d, d, "Daily", d.strftime("%Y%m%d"))
    if dash_daily and (m := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", s)):
        d = date(int(m[1]), int(m[2]), int(m[3]))
        return Period(d, d, "Daily", d.strftime("%Y%m%d"))
    if m := re.fullmatch(r"(\d{4})W(\d\d?)", s):
        year, week = int(m[1]), int(m[2])
        start = date.fromisocalendar(year, week, 1)
        return Period(start, start + timedelta(days=6), "Weekly", f"{year}W{week}")
    if m := re.fullmatch(r"(\d{4})-?(\d{2})", s):
        year, month = int(m[1]), int(m[2])
        start, end = _months(year, month, 1)
        return Period(start, end, "Monthly", f"{year}{month:02d}")
    if m := re.fullmatch(r"(\d{4})(\d{2})B", s):
        year, n = int(m[1]), int(m[2])
        if not 1 <= n <= 6:
            return None
        start, end = _months(year, 2 * n - 1, 2)
        return Period(start, end, "BiMonthly", f"{year}{n:02d}B")
    if m := re.fullmatch(r"(\d{4})Q([1-4])", s):
        year, q = int(m[1]), int(m[2])
        start, end = _months(year, 3 * q - 2, 3)
        return Period(start, end, "Quarterly", s)
    if m := re.fullmatch(r"(\d{4})S([12])", s):
        year, h = int(m[1]), int(m[2])
        start, end = _months(year, 6 * h - 5, 6)
        return Period(start, end, "SixMonthly", s)
    if m := re.fullmatch(r"(\d{4})AprilS([12])", s):
        year, h = int(m[1]), int(m[2])
        start, end = _months(year, 4 + 6 * (h - 1), 6)
        return Period(start, end, "SixMonthlyApril", s)
    if m := re.fullmatch(r"(\d{4})", s):
        year = int(m[1])
        return Period(date(year, 1, 1), date(year, 12, 31), "Yearly", s)
    if m := re.fullmatch(r"(\d{4})(April|July|Oct|Nov)", s):
        year, month = int(m[1]), FINANCIAL_START[m[2]]
        start, end = _months(year, month, 12)
        return Period(start, end, f"Financial{m[2]}", s)
    return None


def period_containing(type_name: str, day: date) -> Period:
    """The period of ``type_name`` that contains ``day``."""
    y, mo = day.year, day.month
    iso: str
    if type_name == "Daily":
        iso = day.strftime("%Y%m%d")
    elif type_name == "Weekly":
        iso_year, week, _ = day.isocalendar()
        iso = f"{iso_year}W{week}"
    elif type_name == "Monthly":
        iso = f"{y}{mo:02d}"
    elif type_name == "BiMonthly":
        iso = f"{y}{(mo + 1) // 2:02d}B"
    elif type_name == "Quarterly":
        iso = f"{y}Q{(mo - 1) // 3 + 1}"
    elif type_name == "SixMonthly":
        iso = f"{y}S{1 if mo <= 6 else 2}"
    elif type_name == "SixMonthlyApril":
        if mo >= 4:
            iso = f"{y}AprilS{1 if mo <= 9 else 2}"
        else:
            iso = f"{y - 1}AprilS2"
    elif type_name == "Yearly":
        iso = str(y)
    elif type_name.startswith("Financial") and type_name[9:] in FINANCIAL_START:
        first = FINANCIAL_START[type_name[9:]]
        iso = f"{y if mo >= first else y - 1}{type_name[9:]}"
    else:
        raise ValueError(f"unsupported period type {type_name}")
    period = parse_period(iso)
    assert period is not None
    return period


def shift(period: Period, steps: int) -> Period:
    """The period ``steps`` periods after (or before, if negative) ``period``."""
    current = period
    for _ in range(abs(steps)):
        day = current.end + timedelta(days=1) if steps > 0 else current.start - timedelta(days=1)
        current = period_containing(current.type_name, day)
    return current


def latest_open_future_period(type_name: str, today: date, open_future_periods: int) -> Period:
    """DHIS2 ``PeriodType.getFuturePeriod``: 0 open periods closes the current one too."""
    return shift(period_containing(type_name, today), open_future_periods - 1)


PERIOD_TYPES: list[dict[str, object]] = [
    {"name": "Daily", "isoDuration": "P1D", "isoFormat": "yyyyMMdd", "frequencyOrder": 1},
    {"name": "Weekly", "isoDuration": "P7D", "isoFormat": "yyyyWn", "frequencyOrder": 7},
    {"name": "Monthly", "isoDuration": "P1M", "isoFormat": "yyyyMM", "frequencyOrder": 30},
    {"name": "BiMonthly", "isoDuration": "P2M", "isoFormat": "yyyyMMB", "frequencyOrder": 61},
    {"name": "Quarterly", "isoDuration": "P3M", "isoFormat": "yyyyQn", "frequencyOrder": 91},
    {"name": "SixMonthly", "isoDuration": "P6M", "isoFormat": "yyyySn", "frequencyOrder": 182},
    {
        "name": "SixMonthlyApril",
        "isoDuration": "P6M",
        "isoFormat": "yyyyAprilSn",
        "frequencyOrder": 182,
    },
    {"name": "Yearly", "isoDuration": "P1Y", "isoFormat": "yyyy", "frequencyOrder": 365},
    {
        "name": "FinancialApril",
        "isoDuration": "P1Y",
        "isoFormat": "yyyyApril",
        "frequencyOrder": 365,
    },
    {"name": "FinancialJuly", "isoDuration": "P1Y", "isoFormat": "yyyyJuly", "frequencyOrder": 365},
    {"name": "FinancialOct", "isoDuration": "P1Y", "isoFormat": "yyyyOct", "frequencyOrder": 365},
    {"name": "FinancialNov", "isoDuration": "P1Y", "isoFormat": "yyyyNov", "frequencyOrder": 365},
]
