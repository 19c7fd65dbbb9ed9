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
