"""The run report: what one run read, sent and what DHIS2 did with it.

One model serves the command line (printed as JSON), the OpenHIM envelope
(its ``response.body`` and ``properties``) and the status page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from .values import Exchange, utcnow

Level = Literal["error", "warning", "info"]


class Finding(BaseModel):
    """Something found before or after posting, in plain words, naming the ids."""

    level: Level
    code: str
    message: str
    ids: list[str] = Field(default_factory=list)


class ImportCount(BaseModel):
    imported: int = 0
    updated: int = 0
    ignored: int = 0
    deleted: int = 0

    def add(self, other: ImportCount) -> None:
        self.imported += other.imported
        self.updated += other.updated
        self.ignored += other.ignored
        self.deleted += other.deleted


class ChunkCount(ImportCount):
    """One POST of a push as DHIS2 answered it: its import counts and how many conflicts,
    or why it got no answer (the OpenHIM step of the push lists them)."""

    status: int | None = None  # DHIS2's HTTP status, None when it never answered
    conflicts: int = 0
    error: str | None = None


class Conflict(BaseModel):
    """One DHIS2 conflict, normalised across 2.36 (object/value) and 2.37+ (errorCode…)."""

    object: str | None = None
    objects: dict[str, str] = Field(default_factory=dict)
    value: str
    errorCode: str | None = None
    property: str | None = None
    indexes: list[int] = Field(default_factory=list)


class RowRef(BaseModel):
    """A data value as DHIS2 keys it, with the value that was sent."""

    dataElement: str
    orgUnit: str
    period: str
    categoryOptionCombo: str | None = None
    attributeOptionCombo: str | None = None
    value: str | None = None


class RejectedRow(RowRef):
    reason: str
    errorCode: str | None = None


DataSetStatus = Literal["success", "warning", "error", "skipped"]
Outcome = Literal["success", "warning", "error"]


def outcome(ok: int, problems: int) -> Outcome:
    """The one rule behind every status, for a chunk, a data set and the run: success
    when nothing went wrong; a warning when something went wrong but something else
    reached DHIS2 (or was already there); an error when nothing did."""
    if problems == 0:
        return "success"
    return "warning" if ok > 0 else "error"


def rollup(parts: list[Outcome]) -> Outcome:
    """The status of a whole from its parts' (batches of a data set, data sets of a run)."""
    return outcome(ok=sum(p != "error" for p in parts), problems=sum(p != "success" for p in parts))


class OrgUnitCoverage(BaseModel):
    """Who is missing from an org unit's numbers: CHT users expected under it
    (user-settings and their contact's lineage) against those with target docs."""

    orgUnit: str
    name: str | None = None
    places: list[str] = Field(default_factory=list)  # CHT contact ids that carry it
    expected: int = 0
    synced: int = 0
    missing: list[str] = Field(default_factory=list)  # usernames without a doc for the period
    newest_doc: datetime | None = None  # latest updated_date among its users' docs
    newest_doc_age_days: float | None = None
    held: bool = False  # below the coverage threshold: not pushed this run

    @property
    def percent(self) -> float:
        return round(100 * self.synced / self.expected, 1) if self.expected else 100.0


class DataSetResult(BaseModel):
    data_set: str
    period: str
    data_set_name: str | None = None  # as DHIS2 names it (its metadata), when it answered
    status: DataSetStatus = "success"
    dry_run: bool = False
    dhis2_version: str | None = None
    preflight: list[Finding] = Field(default_factory=list)
    values_computed: int = 0
    values_sent: int = 0
    values_unchanged: int = 0  # already in DHIS2 with this value: not sent
    # zeros of elements where DHIS2 stores no zero (zeroIsSignificant false), at keys
    # DHIS2 holds nothing for: already right, nothing to send
    values_zero: int = 0
    values_cleared: int = 0  # sent as deletions: DHIS2 held a value the engine no longer has
    chunks_sent: int = 0
    chunks_failed: int = 0
    counts: ImportCount = Field(default_factory=ImportCount)
    conflicts: list[Conflict] = Field(default_factory=list)
    # each POST as DHIS2 answered it, in order: for the OpenHIM step (not in the JSON report)
    chunks: list[ChunkCount] = Field(default_factory=list, exclude=True)
    rejected: list[RejectedRow] = Field(default_factory=list)
    # sent, not refused by any conflict DHIS2 tied to a row, but not counted as imported
    # either (2.36 conflicts without a row): never called delivered
    unconfirmed: list[RowRef] = Field(default_factory=list)
    # rows DHIS2 holds as computed after this run: unchanged, zeros, and those it accepted
    delivered: int = 0
    error: str | None = None
    error_status: int | None = None  # DHIS2's HTTP status behind ``error``, when it answered
    # what kind of failure ``error`` is (http.errors' PeerError.kind: unreachable, timeout,
    # tls, credentials, forbidden, redirect, status, too_large, body, not_json, shape), for
    # diagnoses to decide by
    error_kind: str | None = None
    # what CHT gave for this period (filled by the run orchestration)
    period_type: str = "Monthly"
    months: list[str] = Field(default_factory=list)  # the target~YYYY-MM~ tags read
    cht_interval: str | None = None  # the days CHT counted, e.g. 2024-01-26..2024-02-25
    sources: list[str] = Field(default_factory=list)  # CHT instances summed
    docs_counted: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)  # reason -> target docs or targets
    coverage: list[OrgUnitCoverage] = Field(default_factory=list)
    # CHT users under the data set's org units who write target docs (offline users whose
    # roles may view tasks or analytics): the ones coverage expects to sync
    users_expected: int = 0
    users_not_expected: int = 0  # CHT users who write no target docs (online, no permission)
    users_synced: int = 0  # of those, users with a target doc for every month
    held_org_units: list[str] = Field(default_factory=list)
    completeness_registered: list[str] = Field(default_factory=list)  # org units
    mapped_targets: dict[str, list[str]] = Field(default_factory=dict)  # data element -> targets


class Diagnosis(BaseModel):
    """One kind of problem, with how many times it happened and what to do."""

    kind: str  # stable key: an E76xx code, a finding code, or a name like "dhis2_login"
    title: str
    count: int = 1
    cause: str
    fix: str
    ids: list[str] = Field(default_factory=list)
    data_set: str | None = None
    period: str | None = None

    def line(self) -> str:
        """One line for the command line and the OpenHIM properties."""
        return f"{self.count} × {self.title}: {self.cause} Fix: {self.fix}"


class ChtRead(BaseModel):
    """What the run read from one CHT instance for one month (each month is read once,
    whatever periods and data sets it feeds)."""

    period: str  # the month, YYYYMM
    source: str = "cht"
    target_docs: int = 0
    pages: int = 0
    owners_looked_up: int = 0
    places: int = 0
    error: str | None = None


RunStatus = Literal["Successful", "Completed with error(s)", "Failed"]
RUN_STATUS: dict[Outcome, RunStatus] = {
    "success": "Successful",
    "warning": "Completed with error(s)",
    "error": "Failed",
}


class RunReport(BaseModel):
    run_id: str
    trigger: str = "cli"
    started: datetime = Field(default_factory=utcnow)
    finished: datetime | None = None
    dry_run: bool = False
    periods: list[str] = Field(default_factory=list)
    data_sets: list[str] = Field(default_factory=list)
    org_unit: str | None = None
    cht: list[ChtRead] = Field(default_factory=list)
    results: list[DataSetResult] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)  # run-level problems
    diagnoses: list[Diagnosis] = Field(default_factory=list)  # every problem, with its fix
    exchanges: list[Exchange] = Field(default_factory=list, exclude=True)

    def data_set_names(self) -> dict[str, str]:
        """Data set id -> the name DHIS2 gave it in this run's metadata, from any of its
        (data set, period) results that read it."""
        return {r.data_set: r.data_set_name for r in self.results if r.data_set_name}

    def totals(self) -> ImportCount:
        total = ImportCount()
        for result in self.results:
            total.add(result.counts)
        return total

    @property
    def status(self) -> RunStatus:
        """Successful: everything imported cleanly. Completed with error(s): DHIS2
        rejected rows or a data set could not be pushed. Failed: nothing delivered."""
        parts: list[Outcome] = [r.status for r in self.results if r.status != "skipped"]
        parts += ["error" for f in self.findings if f.level == "error"]
        if not self.results:
            parts.append("error")  # a run that did nothing delivered nothing
        return RUN_STATUS[rollup(parts)]
