"""When a data set's period is closed for input, release by release.

The three time rules of ``DataSet`` and ``DataInputPeriod`` (expiry days, data input
periods, open future periods), the choice of data sets they are applied to, and
nothing else: conflicts are built by the importer. "now" is the server's local
clock (naive), as DHIS2 compares ``java.util.Date`` in ``ZoneId.systemDefault()``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from .auth import User
from .periods import Period, latest_open_future_period, parse_period
from .versions import Dhis2Version

FREQUENCY_ORDER = {
    "Daily": 1,
    "Weekly": 7,
    "BiWeekly": 14,
    "Monthly": 30,
    "BiMonthly": 61,
    "Quarterly": 91,
    "SixMonthly": 182,
    "SixMonthlyApril": 182,
    "Yearly": 365,
    "FinancialApril": 365,
    "FinancialJuly": 365,
    "FinancialOct": 365,
    "FinancialNov": 365,
}


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time.min)


def expiry_days(version: Dhis2Version, ds: dict[str, Any]) -> float:
    """The data set's expiryDays as the release stores it: a double on 2.42, an int before
    (Jackson truncates 0.5 to 0 on an int field)."""
    raw = float(ds.get("expiryDays") or 0)
    # 2.42.5.2 DataSet.java:140 (double expiryDays); 2.41.9.1 DataSet.java (int expiryDays)
    return raw if version.double_expiry_days else float(int(raw))


def is_expired(version: Dhis2Version, ds: dict[str, Any], period: Period, now: datetime) -> bool:
    """``DataSet.isLocked`` without the authority check (the caller does that).

    - 2.36.*, 2.37.0-2.37.9, 2.38.0-2.38.3, 2.39.0-2.39.1: locked once
      ``end + expiryDays`` is before now, to the instant (end = last day 00:00);
    - 2.37.10, 2.38.4+, 2.39.2+, 2.40, 2.41: whole days, the day ``end + expiryDays``
      is open all day;
    - 2.42: open until ``end + 1 day + expiryDays`` (fractional days), to the instant.
    """
    days = expiry_days(version, ds)
    # NO_EXPIRY = 0 (2.42.5.2 DataSet.java:91,459; 2.36.13.2 DataSet.java:555)
    if days <= 0:
        return False
    end = _midnight(period.end)
    if version.expiry_after_end_day:
        # 2.42.5.2 DataSet.java:466-468: addDays(end, 1), then addDays(.., expiryDays) in
        # whole milliseconds (DateUtils.addDays(double) 2.42.5.2:656-661), locked when after
        open_until = end + timedelta(days=1) + timedelta(milliseconds=int(days * 86_400_000))
        return now > open_until
    if version.day_truncated_periods:
        # 2.41.9.1 DataSet.java:452-459 + Period.isDateInTimeFrame 2.41.9.1:71-83 (LocalTime.MIN)
        return now.date() > period.end + timedelta(days=int(days))
    # 2.36.13.2 DataSet.java:546-557: new DateTime(end).plusDays(expiryDays).isBefore(now)
    return end + timedelta(days=int(days)) < now


def locked_for(
    version: Dhis2Version,
    ds: dict[str, Any],
    period: Period,
    ou: str,
    user: User,
    now: datetime,
    has_lock_exception: bool,
) -> bool:
    """The importer's ``isLocked``: expired for this user and no lock exception.

    F_EDIT_EXPIRED (or ALL) is never locked (DataSet.isLocked first line, 2.41.9.1
    DataSet.java:453-455); a lock exception for (data set, period, org unit) opens it
    (2.36.13.2 DVSS:1609-1613; 2.37.10 VAL:697-700; 2.42.5.2 VAL:850-856).
    """
    if user.has("F_EDIT_EXPIRED"):
        return False
    return is_expired(version, ds, period, now) and not has_lock_exception


def parse_dt(raw: Any) -> datetime | None:
    if not raw or not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=None)


def input_period_open(
    version: Dhis2Version, ds: dict[str, Any], period: Period, now: datetime
) -> bool:
    """``DataSet.isDataInputPeriodAndDateAllowed``: no input periods, or one for this
    period whose opening/closing dates admit now.

    Old releases: ``now.after(opening) && now.before(closing)`` exact (DataInputPeriod
    2.36.0:98-102). 2.37.10, 2.38.4+, 2.39.2+, 2.40+: ``Period.isDateInTimeFrame`` on
    whole days, both ends inclusive (DataInputPeriod 2.37.10:98-101, 2.42.5.2:85-87).
    """
    windows = ds.get("dataInputPeriods") or []
    if not windows:
        return True
    for w in windows:
        wp = parse_period((w.get("period") or {}).get("id"))
        if wp is None or wp.iso != period.iso:
            continue
        opening = parse_dt(w.get("openingDate"))
        closing = parse_dt(w.get("closingDate"))
        if version.day_truncated_periods:
            ok = (opening is None or now.date() >= opening.date()) and (
                closing is None or now.date() <= closing.date()
            )
        else:
            ok = (opening is None or now > opening) and (closing is None or now < closing)
        if ok:
            return True
    return False


def is_after(period: Period, latest: Period) -> bool:
    """``Period.isAfter``: this period ends after the other (2.41.9.1 Period.java:300-306)."""
    return period.end > latest.end


def _frequency_key(ds: dict[str, Any]) -> tuple[int, str]:
    # DataSetFrequencyComparator (2.37.10 dataset/comparator): frequency order, then name
    return (FREQUENCY_ORDER.get(str(ds.get("periodType")), 10**6), str(ds.get("name", "")))


def approval_data_set(data_sets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``DataElement.getApprovalDataSet``: one with a workflow first, then the highest
    collection frequency (2.37.10 DataElement.java:299-304, DataSetApprovalFrequencyComparator)."""
    ranked = sorted(data_sets, key=lambda d: (d.get("workflow") is None, *_frequency_key(d)))
    return ranked[0] if ranked else None


def element_latest_future_period(data_sets: list[dict[str, Any]], today: date) -> Period | None:
    """``DataElement.getLatestOpenFuturePeriod`` (up to 2.39.0): the most open future
    periods over all the element's data sets, in the period type of its most frequent
    data set (2.36.0 DataElement.java:383-401; 2.37.10 DataElement.java:287-292,378-414)."""
    if not data_sets:
        return None
    most = max(int(d.get("openFuturePeriods") or 0) for d in data_sets)
    ptype = str(sorted(data_sets, key=_frequency_key)[0].get("periodType", "Monthly"))
    try:
        return latest_open_future_period(ptype, today, most)
    except ValueError:
        return None


def data_set_latest_future_period(ds: dict[str, Any], today: date) -> Period | None:
    """2.39.1+: ``dataSet.getPeriodType().getFuturePeriod(openFuturePeriods)``
    (2.42.5.2 VAL:727; PeriodType.getFuturePeriod 2.42.5.2:660-667)."""
    try:
        return latest_open_future_period(
            str(ds.get("periodType", "Monthly")), today, int(ds.get("openFuturePeriods") or 0)
        )
    except ValueError:
        return None
