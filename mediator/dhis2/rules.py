"""When DHIS2 refuses a period, release by release: pure rules, no I/O.

The preflight uses these to predict, per org unit, what the DHIS2 it talks to will do
with a period: expired (E7640), not open yet (E7641), outside its data input periods
(E7643). A prediction is said in the report; it never stops a push: DHIS2 decides, and
its per-row conflicts come back as rejected rows. Where the rules of a release cannot
be applied with what the mediator knows (openFuturePeriods before 2.39.1 is per data
element, over every data set holding it), the prediction says "may".

Times are DHIS2's server time (``serverDate`` of ``/api/system/info``, local and
naive), as DHIS2 compares them. A period "ends" at 00:00 of its last day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

Version = tuple[int, int, int]
EDIT_EXPIRED = frozenset({"F_EDIT_EXPIRED", "ALL"})


def day_rule(version: Version) -> bool:
    """Period checks compare whole days (the last day open all day) from 2.37.10, 2.38.4
    and 2.39.2 on (commit DHIS2-14591; 2.37.10 DataSet.java:552-561, 2.38.7:446-453,
    2.41.9.1:452-459, Period.isDateInTimeFrame 2.41.9.1:71-83; DataInputPeriod
    2.37.10:98-101, 2.42.5.2:85-87). Before: to the instant (2.36.13.2 DataSet.java:
    546-557, DataInputPeriod 2.36.0:98-102)."""
    major, minor, patch = version
    if (major, minor) == (2, 37):
        return patch >= 10
    if (major, minor) == (2, 38):
        return patch >= 4
    if (major, minor) == (2, 39):
        return patch >= 2
    return (major, minor) >= (2, 40)


def expiry_after_end_day(version: Version) -> bool:
    """2.42 keeps a period open until ``end + 1 day + expiryDays``, expiryDays a double
    (2.42.5.2 DataSet.java:140, 458-469; DateUtils.addDays(double))."""
    return version[:2] >= (2, 42)


def open_future_per_data_set(version: Version) -> bool:
    """openFuturePeriods counts per data set from 2.39.1 (2.42.5.2 VAL:727); before, per
    data element: the most over all data sets holding it (2.36.0 DataElement.java:
    383-401; 2.37.10 VAL:603)."""
    return version >= (2, 39, 1)


def expired(version: Version, expiry_days: float, period_end: date, now: datetime) -> bool:
    """``DataSet.isLocked`` without the user: is the period past its expiry days?"""
    days = expiry_days if expiry_after_end_day(version) else float(int(expiry_days))
    if days <= 0:  # NO_EXPIRY (2.42.5.2 DataSet.java:91; 2.36.13.2 DataSet.java:555)
        return False
    end = datetime.combine(period_end, datetime.min.time())
    if expiry_after_end_day(version):
        return now > end + timedelta(days=1) + timedelta(milliseconds=int(days * 86_400_000))
    if day_rule(version):
        return now.date() > period_end + timedelta(days=int(days))
    return end + timedelta(days=int(days)) < now


def input_window_open(
    version: Version, opening: datetime | None, closing: datetime | None, now: datetime
) -> bool:
    """One data input period admits ``now``."""
    if day_rule(version):
        return (opening is None or now.date() >= opening.date()) and (
            closing is None or now.date() <= closing.date()
        )
    return (opening is None or now > opening) and (closing is None or now < closing)


def may_edit_expired(authorities: frozenset[str] | set[str]) -> bool:
    """F_EDIT_EXPIRED or ALL: never locked by expiry (2.41.9.1 DataSet.java:453-455;
    User.isAuthorized checks ALL, User.java:290-297)."""
    return bool(EDIT_EXPIRED & set(authorities))


@dataclass(frozen=True)
class Expiry:
    """What expiry means for one push: expired at all, and for which org units."""

    expired: bool  # past expiryDays by this release's rule
    may_edit: bool  # the integration user holds F_EDIT_EXPIRED or ALL
    exceptions: frozenset[str] | None  # org units with a lock exception; None: unknown

    def locked(self, org_unit: str) -> bool | None:
        """True: DHIS2 will refuse (E7640); False: it will not; None: cannot tell."""
        if not self.expired or self.may_edit:
            return False
        if self.exceptions is None:
            return None
        return org_unit not in self.exceptions
