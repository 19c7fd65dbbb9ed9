"""Reporting periods.

CHT tags target docs with the month in which the CHT reporting interval ends
(``target~YYYY-MM~…``); DHIS2 names a monthly period ``YYYYMM``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
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
# months a period holds and the month it starts in (cht-export.md §4: CHT itself
# is monthly only). ISO forms from dhis2.md §4.
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
    """CHT's ``uhc.month_start_date`` (or ``uhc.visit_count.month_start_date``), 1..31."""
    uhc = settings.get("uhc")
    value = None
    if isinstance(uhc, dict):
        value = uhc.get("month_start_date")
        visit = uhc.get("visit_count")
        if not value and isinstance(visit, dict):
            value = visit.get("month_start_date")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 31:
        return 1  # CHT's normalizeStartDate does the same
    return value


def cht_interval(period: Period, start_day: int) -> tuple[date, date]:
    """The days CHT counted into ``period``'s target docs.

    A doc tagged YYYY-MM holds the CHT interval that ends in that month: with a
    month start day of 26, ``target~2000-02~`` covers 26 Jan to 25 Feb.
    """
    first, last = period.first, period.last
    if start_day == 1:
        begin = date(first.year, first.month, 1)
        end = date(last.year, last.month, _days_in(last))
        return begin, end
    before = first.shift(-1)
    begin = date(before.year, before.month, min(start_day, _days_in(before)))
    end = date(last.year, last.month, min(start_day - 1, _days_in(last)))
    return begin, end


def _days_in(month: Month) -> int:
    following = month.shift(1)
    return (date(following.year, following.month, 1) - date(month.year, month.month, 1)).days
