"""Reporting periods.

CHT tags target docs with the month in which the CHT reporting interval ends
(``target~YYYY-MM~…``); DHIS2 names a monthly period ``YYYYMM``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

_MONTH = re.compile(r"^(\d{4})-?(\d{2})$", re.ASCII)


class PeriodError(ValueError):
    """A period the user gave that cannot be a month."""


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise PeriodError(f"month {self.month:02d} does not exist")
        if not 1970 <= self.year <= 2999:
            raise PeriodError(f"year {self.year} is out of range (1970-2999)")

    @classmethod
    def parse(cls, text: str) -> Month:
        """Accept ``YYYY-MM`` or ``YYYYMM``."""
        match = _MONTH.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise PeriodError(f"period {text!r} is not a month: use YYYY-MM or YYYYMM")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def containing(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @classmethod
    def previous_completed(cls, tz: str = "UTC", now: datetime | None = None) -> Month:
        """The last month that has fully ended in ``tz``, computed at call time."""
        moment = now.astimezone(ZoneInfo(tz)) if now else datetime.now(ZoneInfo(tz))
        return cls.containing(moment.date()).shift(-1)

    def shift(self, months: int) -> Month:
        index = self.year * 12 + (self.month - 1) + months
        return Month(index // 12, index % 12 + 1)

    @property
    def tag(self) -> str:
        """How CHT writes it in target doc ids: ``YYYY-MM``."""
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def dhis2(self) -> str:
        """DHIS2's monthly ISO period: ``YYYYMM``."""
        return f"{self.year:04d}{self.month:02d}"

    def __str__(self) -> str:
        return self.tag


# DHIS2 period types that can be built from CHT's monthly target docs: how many
# months a period holds and the month it starts in (cht-core's export: CHT itself
# is monthly only). ISO forms of dhis2-core's ``PeriodType`` classes.
_BUILDABLE: dict[str, tuple[int, int]] = {
    "Monthly": (1, 1),
    "Quarterly": (3, 1),
    "SixMonthly": (6, 1),
    "Yearly": (12, 1),
    "FinancialApril": (12, 4),
    "FinancialJuly": (12, 7),
    "FinancialOct": (12, 10),
    "FinancialNov": (12, 11),
}
_FINANCIAL_SUFFIX = {
    "April": "FinancialApril",
    "July": "FinancialJuly",
    "Oct": "FinancialOct",
    "Nov": "FinancialNov",
}
_ISO = [
    (re.compile(r"^(\d{4})-?(\d{2})$", re.ASCII), "Monthly"),
    (re.compile(r"^(\d{4})Q([1-4])$", re.ASCII), "Quarterly"),
    (re.compile(r"^(\d{4})S([12])$", re.ASCII), "SixMonthly"),
    (re.compile(r"^(\d{4})$", re.ASCII), "Yearly"),
    (re.compile(r"^(\d{4})(April|July|Oct|Nov)$", re.ASCII), "Financial"),
]


def check_period_type(period_type: str) -> None:
    """Refuse, with the reason, a DHIS2 period type CHT's monthly docs cannot fill."""
    if period_type in _BUILDABLE:
        return
    if not period_type:
        raise PeriodError("the data set has no period type")
    raise PeriodError(
        f"DHIS2 period type {period_type} cannot be built from CHT: CHT keeps targets by "
        f"calendar month (target~YYYY-MM~ docs), so only {', '.join(_BUILDABLE)} are supported"
    )


@dataclass(frozen=True, order=True)
class Period:
    """A DHIS2 period made of whole months: a month, quarter, half, year or financial year."""

    first: Month
    period_type: str = "Monthly"

    def __post_init__(self) -> None:
        check_period_type(self.period_type)
        length, start = _BUILDABLE[self.period_type]
        offset = (self.first.month - start) % 12
        if offset % length:
            raise PeriodError(f"a {self.period_type} period cannot start in {self.first.tag}")

    @classmethod
    def parse(cls, text: str) -> Period:
        """Any supported DHIS2 ISO period; ``YYYY-MM`` is also a month."""
        cleaned = text.strip() if isinstance(text, str) else ""
        for pattern, kind in _ISO:
            match = pattern.match(cleaned)
            if not match:
                continue
            year = int(match.group(1))
            if kind == "Monthly":
                return cls(Month(year, int(match.group(2))), "Monthly")
            if kind == "Quarterly":
                return cls(Month(year, 3 * int(match.group(2)) - 2), kind)
            if kind == "SixMonthly":
                return cls(Month(year, 6 * int(match.group(2)) - 5), kind)
            if kind == "Yearly":
                return cls(Month(year, 1), kind)
            period_type = _FINANCIAL_SUFFIX[match.group(2)]
            return cls(Month(year, _BUILDABLE[period_type][1]), period_type)
        raise PeriodError(
            f"period {text!r} is not a DHIS2 period: use YYYY-MM or YYYYMM (month), YYYYQn, "
            "YYYYSn, YYYY, or YYYYApril / YYYYJuly / YYYYOct / YYYYNov"
        )

    @classmethod
    def containing(cls, month: Month, period_type: str) -> Period:
        check_period_type(period_type)
        length, start = _BUILDABLE[period_type]
        offset = (month.month - start) % 12
        return cls(month.shift(-(offset % length)), period_type)

    @classmethod
    def latest_completed(
        cls, period_type: str, tz: str = "UTC", now: datetime | None = None
    ) -> Period:
        """The last period of this type that has fully ended in ``tz``, at call time."""
        current = Month.containing(
            now.astimezone(ZoneInfo(tz)).date() if now else datetime.now(ZoneInfo(tz)).date()
        )
        return cls.containing(current, period_type).shift(-1)

    @property
    def length(self) -> int:
        return _BUILDABLE[self.period_type][0]

    @property
    def months(self) -> list[Month]:
        return [self.first.shift(n) for n in range(self.length)]

    @property
    def last(self) -> Month:
        return self.first.shift(self.length - 1)

    @property
    def last_day(self) -> date:
        """The period's last calendar day (DHIS2's ``endDate``)."""
        following = self.last.shift(1)
        return date(following.year, following.month, 1) - timedelta(days=1)

    def shift(self, periods: int) -> Period:
        return Period(self.first.shift(periods * self.length), self.period_type)

    @property
    def iso(self) -> str:
        """DHIS2's ISO name: 202401, 2024Q1, 2024S1, 2024, 2024April…"""
        year, month = self.first.year, self.first.month
        if self.period_type == "Monthly":
            return self.first.dhis2
        if self.period_type == "Quarterly":
            return f"{year}Q{(month - 1) // 3 + 1}"
        if self.period_type == "SixMonthly":
            return f"{year}S{(month - 1) // 6 + 1}"
        if self.period_type == "Yearly":
            return f"{year}"
        suffix = next(k for k, v in _FINANCIAL_SUFFIX.items() if v == self.period_type)
        return f"{year}{suffix}"

    @property
    def dhis2(self) -> str:
        """As ``Month.dhis2``: the period as DHIS2 names it."""
        return self.iso

    def __str__(self) -> str:
        return self.iso


def periods_touching(first: Month, last: Month, period_type: str) -> list[Period]:
    """Every period of ``period_type`` that holds a month from ``first`` to ``last``."""
    if last < first:
        raise PeriodError(f"from {first.tag} is after to {last.tag}")
    periods: list[Period] = []
    month = first
    while month <= last:
        period = Period.containing(month, period_type)
        if not periods or periods[-1] != period:
            periods.append(period)
        month = month.shift(1)
    return periods


def month_start_day(settings: dict[str, object]) -> int:
    """CHT's ``uhc.month_start_date`` (or ``uhc.visit_count.month_start_date``), 1..31.

    Read as CHT reads it: JavaScript's ``parseInt`` (``"26"`` is 26), anything else or
    out of range is 1 (cht-core ``shared-libs/calendar-interval/src/index.js``,
    ``normalizeStartDate``)."""
    uhc = settings.get("uhc")
    value: object = None
    if isinstance(uhc, dict):
        value = uhc.get("month_start_date")
        visit = uhc.get("visit_count")
        if not value and isinstance(visit, dict):
            value = visit.get("month_start_date")
    day = _js_parse_int(value)
    return day if day is not None and 1 <= day <= 31 else 1


_LEADING_INT = re.compile(r"\s*([+-]?\d+)")


def _js_parse_int(value: object) -> int | None:
    """JavaScript's ``parseInt(value)``: the leading integer of its text, else None (NaN)."""
    if isinstance(value, bool) or value is None:
        return None
    text = repr(value) if isinstance(value, float) else str(value)
    match = _LEADING_INT.match(text)
    return int(match.group(1)) if match else None


def _day_or_later(month: Month, day: int) -> date:
    """moment's ``date(day)`` on the month: past its last day it runs into the next."""
    return date(month.year, month.month, 1) + timedelta(days=day - 1)


def cht_interval(period: Period, start_day: int) -> tuple[date, date]:
    """The days CHT counted into ``period``'s target docs.

    A doc tagged YYYY-MM holds the CHT interval that ends in that month (cht-core
    ``shared-libs/rules-engine/src/provider-wireup.js``): with a month start day of 26,
    ``target~2000-02~`` covers 26 Jan to 25 Feb. The bounds follow CHT's
    ``calendar-interval`` for the interval holding the month's first day: from the
    start day of the month before (or the month's first day, if that is earlier) to
    the day before the start day (or the month's last day), e.g. 1 to 30 March for a
    start day of 31."""
    first, last = period.first, period.last
    if start_day == 1:
        return date(first.year, first.month, 1), date(last.year, last.month, _days_in(last))
    begin = min(_day_or_later(first.shift(-1), start_day), date(first.year, first.month, 1))
    end = min(_day_or_later(last, start_day - 1), date(last.year, last.month, _days_in(last)))
    return begin, end


def _days_in(month: Month) -> int:
    following = month.shift(1)
    return (date(following.year, following.month, 1) - date(month.year, month.month, 1)).days
