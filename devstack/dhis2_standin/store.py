"""What the stand-in has been told: data values, their audit, completeness, jobs
and every request received, so a test can read them back in Python.

Values are soft-deleted like DHIS2 does (``deleted=True`` rows stay); ``values()``
shows only live ones.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Key = tuple[str, str, str, str, str]  # (dataElement, period, orgUnit, coc, aoc)


@dataclass
class StoredValue:
    data_element: str
    period: str
    org_unit: str
    coc: str
    aoc: str
    value: str | None
    comment: str | None
    followup: bool
    stored_by: str
    created: datetime
    last_updated: datetime
    deleted: bool = False

    @property
    def key(self) -> Key:
        return (self.data_element, self.period, self.org_unit, self.coc, self.aoc)


@dataclass
class AuditRow:
    """One DataValueAudit: a change to an existing row (UPDATE or DELETE) or a CREATE."""

    key: Key
    audit_type: str
    previous: str | None
    value: str | None
    at: datetime


@dataclass
class RecordedRequest:
    method: str
    path: str
    query_string: str
    args: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: datetime
    status: int | None = None
    fault: str | None = None
    # set once the stand-in has finished with the request, answered or not (a test
    # waits on it instead of sleeping: a client that gave up does not stop the server)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class LockException:
    """A lock exception: data set, period and org unit writable although expired.

    ``LockException.java`` (2.41.9.1 dhis-api/.../dataset/LockException.java).
    """

    data_set: str
    period: str  # ISO
    org_unit: str
    created: datetime


@dataclass
class Job:
    """An async DATAVALUE_IMPORT job: notifications newest first, then a summary."""

    uid: str
    name: str
    created: datetime
    notifications: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    status: str = "NOT_STARTED"


class Store:
    """Thread-safe state shared by the request handlers and the async job threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._rows: dict[Key, StoredValue] = {}
        self.audit: list[AuditRow] = []
        self.requests: list[RecordedRequest] = []
        self.registrations: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.jobs: dict[str, Job] = {}
        self.lock_exceptions: list[LockException] = []
        # (workflow uid, period ISO, org unit uid, attribute option combo uid)
        self.approvals: set[tuple[str, str, str, str]] = set()

    # -- lock exceptions ---------------------------------------------------

    def add_lock_exception(self, ds: str, period: str, ou: str, at: datetime) -> None:
        with self.lock:
            if not self.has_lock_exception(ds, period, ou):
                self.lock_exceptions.append(LockException(ds, period, ou, at))

    def has_lock_exception(self, ds: str, period: str, ou: str) -> bool:
        """``lockExceptionStore.getCount(dataSet, period, orgUnit) > 0``."""
        with self.lock:
            return any(
                (e.data_set, e.period, e.org_unit) == (ds, period, ou) for e in self.lock_exceptions
            )

    def remove_lock_exceptions(self, ds: str, period: str, ou: str | None) -> None:
        with self.lock:
            self.lock_exceptions = [
                e
                for e in self.lock_exceptions
                if not (
                    e.data_set == ds and e.period == period and (ou is None or e.org_unit == ou)
                )
            ]

    # -- data values -------------------------------------------------------

    def get(self, key: Key) -> StoredValue | None:
        with self.lock:
            return self._rows.get(key)

    def put(self, row: StoredValue) -> None:
        with self.lock:
            self._rows[row.key] = row

    def rows(self, include_deleted: bool = False) -> list[StoredValue]:
        with self.lock:
            return [r for r in self._rows.values() if include_deleted or not r.deleted]

    def values(self) -> dict[Key, str | None]:
        """Live values keyed by (de, period, ou, coc, aoc): what DHIS2 would export."""
        return {r.key: r.value for r in self.rows()}

    def seed(
        self,
        de: str,
        period: str,
        ou: str,
        value: str,
        coc: str = "HllvX50cXC0",
        aoc: str = "HllvX50cXC0",
        at: datetime | None = None,
        comment: str | None = None,
    ) -> None:
        """Put a value in place as if a DHIS2 user had typed it."""
        when = at or datetime(2000, 1, 1)
        self.put(StoredValue(de, period, ou, coc, aoc, value, comment, False, "seed", when, when))

    # -- requests ----------------------------------------------------------

    def record(self, req: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(req)

    def settled(self, timeout: float = 30.0) -> bool:
        """Wait until every request received so far is finished (a delayed one
        included); False if one still runs after ``timeout`` seconds."""
        with self.lock:
            pending = list(self.requests)
        deadline = time.monotonic() + timeout
        return all(r.finished.wait(max(0.0, deadline - time.monotonic())) for r in pending)

    def posts(self, path: str | None = None) -> list[RecordedRequest]:
        """POSTs received (optionally only those whose path ends with ``path``)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r.method == "POST" and (path is None or r.path.endswith(path))
            ]

    def clear(self) -> None:
        with self.lock:
            self._rows.clear()
            self.audit.clear()
            self.requests.clear()
            self.registrations.clear()
            self.jobs.clear()
            self.lock_exceptions.clear()
            self.approvals.clear()
