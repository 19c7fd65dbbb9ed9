"""The run history behind the status page: the last runs and the latest coverage.

The status page must answer "did last month's push work, and which CHWs are
missing from it" without OpenHIM's console, so the mediator keeps a small,
self-contained summary of its recent runs in memory (and, with
``MEDIATOR_STATE_DIR``, in a JSON file, so a restart keeps the page's history). The
file is shared: ``serve`` and every ``python -m mediator push`` pointed at the same
directory record into it (under a file lock, re-reading it first), so runs from the
command line appear on the page too. It also keeps the data set names DHIS2 gave.
Summaries are built from the run report; their free text (a failed run's message,
a data set's error) is scrubbed like the OpenHIM envelope's, and their ids and names
are kept as they are: no password or token is ever stored, and no data is altered.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from mediator.model.periods import Period, PeriodError
from mediator.model.report import DataSetResult, Diagnosis, RunReport
from mediator.run.request import RunRequest
from mediator.run.summary import Outcome, resume_commands
from mediator.settings.secrets import Scrubber

log = logging.getLogger(__name__)

STATE_DIR_ENV = "MEDIATOR_STATE_DIR"
STATE_FILE = "status-history.json"
DEFAULT_LIMIT = 20
FORMAT_VERSION = 1


class RejectedCell(BaseModel):
    """A row DHIS2 rejected, as the status page lists it (and links to explain it)."""

    data_element: str
    org_unit: str
    category_option_combo: str | None = None
    reason: str = ""


REJECTED_KEPT = 20  # rejected rows kept per (data set, period) for the page; the count is whole


class ResultSummary(BaseModel):
    """One (data set, period) of a run: what DHIS2 did with it."""

    data_set: str
    period: str
    status: str
    dry_run: bool = False
    imported: int = 0
    updated: int = 0
    ignored: int = 0
    deleted: int = 0
    unchanged: int = 0  # already in DHIS2 with this value: not sent
    rejected: int = 0
    users_expected: int = 0
    users_synced: int = 0
    held: int = 0
    error: str | None = None
    error_kind: str | None = None  # report.DataSetResult.error_kind
    rejected_rows: list[RejectedCell] = Field(default_factory=list)  # the first REJECTED_KEPT


class Totals(BaseModel):
    imported: int = 0
    updated: int = 0
    ignored: int = 0
    deleted: int = 0
    unchanged: int = 0
    rejected: int = 0


class ProblemSummary(BaseModel):
    """One kind of problem of a run, once, with where it happened and what to do."""

    title: str
    cause: str
    fix: str
    where: list[str] = Field(default_factory=list)  # "<data set> <period>"
    count: int = 1


class RunSummary(BaseModel):
    """One run as the status page lists it."""

    run_id: str | None = None
    trigger: str = "http"
    transaction_id: str | None = None
    started: datetime | None = None
    finished: datetime
    status: str
    dry_run: bool = False
    periods: list[str] = Field(default_factory=list)
    data_sets: list[str] = Field(default_factory=list)
    asked: str | None = None  # what the run was asked for ("2024-01..2024-06", "latest")
    results: list[ResultSummary] = Field(default_factory=list)
    message: str | None = None  # why a run without a report failed
    reason: str | None = None  # why a run that is not Successful is not, first thing
    problems: list[ProblemSummary] = Field(default_factory=list)
    resume: list[str] = Field(default_factory=list)  # commands that redo what did not complete

    @property
    def totals(self) -> Totals:
        total = Totals()
        for r in self.results:
            total.imported += r.imported
            total.updated += r.updated
            total.ignored += r.ignored
            total.deleted += r.deleted
            total.unchanged += r.unchanged
            total.rejected += r.rejected
        return total


class CoverageRow(BaseModel):
    """One org unit's sync coverage, as the report gave it."""

    org_unit: str
    name: str | None = None
    expected: int = 0
    synced: int = 0
    percent: float = 100.0
    missing: list[str] = Field(default_factory=list)
    newest_doc: datetime | None = None
    newest_doc_age_days: float | None = None  # at the time of the run
    held: bool = False


class CoverageTable(BaseModel):
    """Coverage of one (data set, period) of a run."""

    data_set: str
    period: str
    cht_interval: str | None = None
    users_expected: int = 0
    users_synced: int = 0
    org_units: list[CoverageRow] = Field(default_factory=list)


class LatestCoverage(BaseModel):
    """The coverage tables of the newest run that produced any, with its id."""

    run_id: str | None = None
    finished: datetime
    tables: list[CoverageTable] = Field(default_factory=list)

    def latest_period(self) -> str | None:
        """The period that ends last (a quarter ending in March beats February)."""
        periods = {t.period for t in self.tables}
        return max(periods, key=_period_key) if periods else None

    def for_latest_period(self) -> list[CoverageTable]:
        latest = self.latest_period()
        return [t for t in self.tables if t.period == latest]


class HistoryFile(BaseModel):
    """What ``status-history.json`` holds."""

    version: int = FORMAT_VERSION
    runs: list[RunSummary] = Field(default_factory=list)  # newest first
    coverage: LatestCoverage | None = None
    data_set_names: dict[str, str] = Field(default_factory=dict)  # id -> name in DHIS2


def _period_key(period: str) -> tuple[int, int, int, str]:
    try:
        parsed = Period.parse(period)
    except PeriodError:
        return (0, 0, 0, period)
    last = parsed.last
    return (last.year, last.month, -parsed.length, period)


def _result_summary(result: DataSetResult, scrub: Scrubber) -> ResultSummary:
    return ResultSummary(
        data_set=result.data_set,
        period=result.period,
        status=result.status,
        dry_run=result.dry_run,
        imported=result.counts.imported,
        updated=result.counts.updated,
        ignored=result.counts.ignored,
        deleted=result.counts.deleted,
        unchanged=result.values_unchanged,
        rejected=len(result.rejected),
        users_expected=result.users_expected,
        users_synced=result.users_synced,
        held=len(result.held_org_units),
        error=scrub.optional(result.error),
        error_kind=result.error_kind,
        rejected_rows=[
            RejectedCell(
                data_element=r.dataElement,
                org_unit=r.orgUnit,
                category_option_combo=r.categoryOptionCombo,
                reason=scrub.text(r.reason),
            )
            for r in result.rejected[:REJECTED_KEPT]
        ],
    )


def _coverage_table(result: DataSetResult) -> CoverageTable:
    return CoverageTable(
        data_set=result.data_set,
        period=result.period,
        cht_interval=result.cht_interval,
        users_expected=result.users_expected,
        users_synced=result.users_synced,
        org_units=[
            CoverageRow(
                org_unit=c.orgUnit,
                name=c.name,
                expected=c.expected,
                synced=c.synced,
                percent=c.percent,
                missing=list(c.missing),
                newest_doc=c.newest_doc,
                newest_doc_age_days=c.newest_doc_age_days,
                held=c.held,
            )
            for c in result.coverage
        ],
    )


def summarize(
    report: RunReport | None,
    *,
    status: str,
    trigger: str,
    finished: datetime,
    transaction_id: str | None = None,
    message: str | None = None,
    secrets: Iterable[str] = (),
    request: RunRequest | None = None,
) -> tuple[RunSummary, LatestCoverage | None]:
    """The run's summary, and its coverage tables when the report has any.

    The free text goes through the same scrubber as the OpenHIM envelope's, so the
    page and the state file show what the transaction shows, never a secret.
    """
    scrub = Scrubber(secrets)
    summary = RunSummary(
        run_id=report.run_id if report else None,
        trigger=trigger,
        transaction_id=transaction_id,
        started=report.started if report else None,
        finished=finished,
        status=status,
        dry_run=report.dry_run if report else bool(request and request.dry_run),
        periods=list(report.periods) if report else [],
        data_sets=list(report.data_sets) if report else list(request.data_sets if request else []),
        asked=asked(request) if request else None,
        results=[_result_summary(r, scrub) for r in report.results] if report else [],
        message=scrub.optional(message),
        reason=scrub.optional(message or (_reason(report) if report else None)),
        problems=_problems(report.diagnoses, scrub) if report else [],
        resume=resume_commands(report, request) if report and request else [],
    )
    if status == "Successful":
        summary.reason = scrub.optional(message)
    coverage: LatestCoverage | None = None
    tables = [_coverage_table(r) for r in report.results if r.coverage] if report else []
    if tables:
        coverage = LatestCoverage(run_id=summary.run_id, finished=finished, tables=tables)
    return summary, coverage


def asked(request: RunRequest) -> str:
    """What a run was asked for, in a few words (a run that failed early has no periods)."""
    if request.span is not None:
        what = f"{request.span[0].tag}..{request.span[1].tag}"
    elif request.periods:
        what = ", ".join(p.iso for p in request.periods)
    else:
        what = "the latest completed periods"
    if request.data_sets:
        what += f" of {', '.join(request.data_sets)}"
    return what + (f" at org unit {request.org_unit}" if request.org_unit else "")


def _reason(report: RunReport) -> str | None:
    """Why the run is not Successful, first thing: a run-level error (CHT unreadable),
    else the first data set's error, else the first problem."""
    finding = next((f for f in report.findings if f.level == "error"), None)
    if finding is not None:
        return finding.message
    incomplete = Outcome.of(report)
    first = next(iter(incomplete.incomplete + incomplete.blocked), None)
    if first is not None and first.error:
        return f"{first.data_set} {first.period}: {first.error}"
    if report.diagnoses:
        d = report.diagnoses[0]
        return f"{d.title}: {d.cause}"
    return None


def _problems(diagnoses: Iterable[Diagnosis], scrub: Scrubber) -> list[ProblemSummary]:
    grouped: dict[tuple[str, str, str], ProblemSummary] = {}
    for d in diagnoses:
        key = (d.kind, d.cause, d.fix)
        if key not in grouped:
            grouped[key] = ProblemSummary(
                title=d.title, cause=scrub.text(d.cause), fix=scrub.text(d.fix), count=0
            )
        problem = grouped[key]
        problem.count += d.count
        where = f"{d.data_set} {d.period}" if d.data_set else None
        if where and where not in problem.where:
            problem.where.append(where)
    return list(grouped.values())[:20]


class RunHistory:
    """The last ``limit`` run summaries (newest first), the latest coverage and the data
    set names DHIS2 gave.

    Thread-safe; with ``path`` the file is the truth, shared by every process pointed at
    it: a record takes a file lock, reads the file again, adds the run and writes it back
    atomically, and a read takes the file again when it changed. A file that cannot be
    read or written is logged and otherwise ignored: the page is a view, never a reason
    to fail a run.
    """

    def __init__(self, limit: int = DEFAULT_LIMIT, path: Path | None = None) -> None:
        self.limit = max(1, limit)
        self.path = path
        self._lock = threading.Lock()
        self._state = HistoryFile()
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file read

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunHistory:
        """``MEDIATOR_STATE_DIR`` set: keep the history in a file there too."""
        folder = (env.get(STATE_DIR_ENV) or "").strip()
        return cls(path=Path(folder) / STATE_FILE if folder else None)

    def _refresh(self) -> HistoryFile:
        """The state, read again from the file when another process changed it."""
        if self.path is None:
            return self._state
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return self._state
        except OSError as exc:
            log.warning("cannot read the status history %s: %s", self.path, exc)
            return self._state
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            self._state = self._load(self.path)
            self._seen = seen
        return self._state

    def _load(self, path: Path) -> HistoryFile:
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return HistoryFile()
        except OSError as exc:
            log.warning("cannot read the status history %s: %s", path, exc)
            return HistoryFile()
        try:
            state = HistoryFile.model_validate_json(raw)
        except ValidationError as exc:
            log.warning("ignoring the unreadable status history %s: %s", path, exc)
            return HistoryFile()
        state.runs = state.runs[: self.limit]
        return state

    @contextmanager
    def _exclusive(self) -> Iterator[HistoryFile]:
        """The state to change, read under the file lock shared with other processes."""
        with self._lock:
            if self.path is None:
                yield self._state
                return
            handle = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(self.path.with_name(self.path.name + ".lock"), "ab")  # noqa: SIM115
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError as exc:
                log.warning("cannot lock the status history %s: %s", self.path, exc)
            try:
                self._seen = None
                yield self._refresh()
            finally:
                if handle is not None:
                    handle.close()  # closing releases the flock

    def _save(self, state: HistoryFile) -> None:
        self._state = state
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=".status-", dir=self.path.parent)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(state.model_dump_json(indent=1))
            os.replace(tmp, self.path)
            stat = self.path.stat()
            self._seen = (stat.st_mtime_ns, stat.st_size)
        except OSError as exc:
            log.warning("cannot write the status history %s: %s", self.path, exc)

    def record(self, summary: RunSummary, coverage: LatestCoverage | None = None) -> None:
        """Add a run; its coverage replaces the previous one only when it has some,
        so a run that failed before reading CHT leaves the last known coverage."""
        with self._exclusive() as current:
            runs = [summary, *current.runs][: self.limit]
            self._save(
                current.model_copy(update={"runs": runs, "coverage": coverage or current.coverage})
            )

    def learn_names(self, names: Mapping[str, str]) -> None:
        """Data set names DHIS2 gave, kept for the page and the next runs."""
        if not names:
            return
        with self._exclusive() as current:
            known = {**current.data_set_names, **names}
            if known != current.data_set_names:  # a run that names nothing new writes nothing
                self._save(current.model_copy(update={"data_set_names": known}))

    def runs(self) -> list[RunSummary]:
        with self._lock:
            return list(self._refresh().runs)

    def coverage(self) -> LatestCoverage | None:
        with self._lock:
            return self._refresh().coverage

    def names(self) -> dict[str, str]:
        with self._lock:
            return dict(self._refresh().data_set_names)
