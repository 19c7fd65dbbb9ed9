"""Run orchestration: one run = periods × data sets, CHT read → engine → DHIS2.

Knows nothing of Flask or OpenHIM: callers pass a ``RunRequest`` and get a
``RunReport`` back. Each month of target docs is read once per CHT instance,
page by page, and fed to every (data set, period) that holds it: a quarterly
data set sums its three months, a percent is recomputed from the summed pass
and total. Several CHT instances are summed per org unit.
"""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from .cht import ChtError, ChtReader
from .cht_cache import CacheStore, ChtUser, Contacts
from .config import ChtSource, RuntimeConfig
from .diagnoses import diagnose
from .engine import Aggregation, EngineError, data_set_ids, writes_targets
from .locks import RunBusyError, RunLocks
from .models import DataValue, DataValueSet, Exchange, is_uid, utcnow
from .periods import (
    Month,
    Period,
    check_period_type,
    cht_interval,
    month_start_day,
    periods_touching,
)
from .report import ChtRead, DataSetResult, Finding, OrgUnitCoverage, RunReport
from .run_request import RunInputError, RunRequest

__all__ = ["RunBusyError", "RunInputError", "RunRequest", "compute", "execute"]

Recorder = Callable[[Exchange], None]
ORG_UNITS_PER_PUSH = 250  # a push reads, plans and posts this many org units at a time
EXCHANGE_BODIES_KEPT = 300  # more than the OpenHIM envelope shows (MAX_ORCHESTRATIONS)
EXCHANGE_BODY_CHARS = 30_000  # twice what the envelope shows of a body


class Pusher(Protocol):
    def period_type(self, data_set: str) -> str | None: ...

    def push(
        self,
        data_set: str,
        period: str,
        rows: list[DataValue],
        *,
        dry_run: bool = False,
        scope_org_units: list[str] | None = None,
        mapped: list[tuple[str, str | None, str | None]] | None = None,
        sweep_assigned: bool = False,
        owned_org_units: Iterable[str] = (),
    ) -> DataSetResult: ...

    def register_completeness(
        self, data_set: str, period: str, org_units: list[str]
    ) -> tuple[list[str], list[Finding]]: ...

    def close(self) -> None: ...


@dataclass
class Job:
    """One (data set, period): what the engine computed for it, from every source."""

    data_set: str
    period: Period
    problem: str | None = None  # refused before reading CHT
    read_error: str | None = None  # a CHT read it needs failed: never push partial totals
    aggs: dict[str, Aggregation] = field(default_factory=dict)  # per CHT source
    coverage: list[OrgUnitCoverage] = field(default_factory=list)
    users: tuple[int, int] = (0, 0)  # expected, synced
    users_not_expected: int = 0  # CHT users who write no target docs (online, no permission)
    interval: str | None = None

    @property
    def key(self) -> str:
        return f"{self.data_set}/{self.period.iso}"

    @cached_property
    def merged(self) -> Aggregation:
        """The sum of every source's aggregation (computed once, on first use)."""
        aggs = list(self.aggs.values())
        total = aggs[0]
        for other in aggs[1:]:
            total.merge(other)
        return total

    def release(self) -> None:
        self.aggs = {}
        self.__dict__.pop("merged", None)

    def value_set(self, complete_date: str, human_readable: bool = False) -> DataValueSet:
        return self.merged.result(complete_date, human_readable=human_readable)


@dataclass
class Computed:
    data_sets: list[str]
    jobs: list[Job]
    reads: list[ChtRead]
    source_errors: dict[str, str]
    source_warnings: dict[str, str] = field(default_factory=dict)


def resolve_data_sets(defined: list[str], asked: list[str]) -> list[str]:
    if not defined:
        raise RunInputError("CHT app settings define no dhis_data_sets: nothing to export")
    chosen = list(dict.fromkeys(asked)) or defined
    unknown = [ds for ds in chosen if ds not in defined]
    if unknown:
        raise RunInputError(
            f"data set {', '.join(unknown)} is not defined in CHT's dhis_data_sets "
            f"(defined: {', '.join(defined)})"
        )
    return chosen


def plan_jobs(
    request: RunRequest,
    data_sets: list[str],
    period_type_of: Callable[[str], str | None],
    config: RuntimeConfig,
    now: datetime,
) -> list[Job]:
    """The (data set, period) pairs to run; a data set whose type cannot be built
    from monthly docs, or a period of the wrong type, becomes a job with a problem."""
    jobs: list[Job] = []
    for ds in data_sets:
        try:
            period_type = period_type_of(ds)
            # DHIS2 has no such data set (the push says so), or there is no DHIS2
            # (preview): the periods asked for decide, else months
            period_type = period_type or (
                request.periods[0].period_type if request.periods else "Monthly"
            )
            check_period_type(period_type)
        except Exception as exc:  # noqa: BLE001 - DHIS2 unreachable or a weekly data set
            jobs += [Job(ds, p, problem=str(exc)) for p in _as_asked(request, config, now)]
            continue
        if request.periods:
            for period in request.periods:
                if period.period_type == period_type:
                    jobs.append(Job(ds, period))
                    continue
                hint = Period.containing(period.first, period_type).iso
                jobs.append(
                    Job(
                        ds,
                        period,
                        problem=f"period {period.iso} is {period.period_type} but data set {ds} "
                        f"is {period_type}: ask for {hint}, or give a range with from/to",
                    )
                )
        elif request.span is not None:
            jobs += [Job(ds, p) for p in periods_touching(*request.span, period_type)]
        else:
            latest = Period.latest_completed(period_type, config.timezone, now)
            jobs += [
                Job(ds, latest.shift(-back)) for back in range(config.lookback_periods, -1, -1)
            ]
    return jobs


def _as_asked(request: RunRequest, config: RuntimeConfig, now: datetime) -> list[Period]:
    """The periods to report a refused data set under, when its own type is unknown."""
    if request.periods:
        return request.periods
    if request.span is not None:
        return periods_touching(*request.span, "Monthly")
    return [Period.latest_completed("Monthly", config.timezone, now)]


class _SourceRead:
    """Everything read from one CHT instance for one run."""

    def __init__(self, source: ChtSource, recorder: Recorder | None, store: CacheStore) -> None:
        self.source = source
        self.recorder = recorder
        self.reader = ChtReader(source.settings, recorder=recorder)
        self.store = store if source.settings.cache else None
        self.app_settings: dict[str, Any] | None = None
        self.error: str | None = None
        # read once per run, whatever periods follow
        self.contacts: Contacts | None = None
        self.places: list[dict[str, Any]] | None = None
        self._users: Future[dict[str, ChtUser]] | None = None
        self.users_not_expected = 0  # CHT users who write no target docs (online…)
        self._pool: ThreadPoolExecutor | None = None

    def defines(self, data_set: str) -> bool:
        return self.app_settings is not None and data_set in data_set_ids(self.app_settings)

    def start(self, org_unit: str | None) -> None:
        """The users (for coverage only) on a thread of their own, so CHT reads them
        while the places and the target pages are worked on; the places here, as
        aggregation needs them first."""
        previous = self.store.load(self.source.settings) if self.store else None
        self.contacts = contacts = Contacts(self.reader, previous)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cht-users")

        def users() -> dict[str, ChtUser]:
            reader = ChtReader(self.source.settings, recorder=self.recorder)
            try:
                return contacts.users(reader)
            finally:
                reader.close()

        self._users = self._pool.submit(users)
        self.places = contacts.places(org_unit)

    def users(self) -> dict[str, str]:
        """Username -> contact id of the users who write target docs: only those are
        expected to sync (``engine.writes_targets``); the others are counted apart."""
        assert self._users is not None and self.app_settings is not None
        expected: dict[str, str] = {}
        others = 0
        for name, (contact, roles) in self._users.result().items():
            if writes_targets(roles, self.app_settings):
                expected[name] = contact
            else:
                others += 1
        self.users_not_expected = others
        return expected

    def keep(self) -> None:
        """What this run learned of CHT's contacts, for the next run (``cht_cache``)."""
        if self.store and self.contacts and self.contacts.keepable:
            self.store.save(self.source.settings, self.contacts.cache)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.reader.close()


_paused = 0
_paused_lock = threading.Lock()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a group is read and aggregated.

    The docs decoded from CHT hold no reference cycles, so refcounting frees every
    page; the collector would only scan them, again and again as the aggregation's
    own objects grow: half the CPU of reading a national month (benchmarks/). It is
    back on for the push, which waits on DHIS2 rather than on CPU, so nothing the
    push leaves behind waits for the run's end. Counted, so that runs on several
    threads turn it back on when the last one is done.
    """
    global _paused
    with _paused_lock:
        _paused += 1
        if _paused == 1:
            gc.disable()
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0:
                gc.enable()


def _read_source(
    src: _SourceRead,
    jobs: list[Job],
    config: RuntimeConfig,
    org_unit: str | None,
    reads: list[ChtRead],
    recorder: Recorder | None,
) -> None:
    """Aggregate every job this source feeds, reading each month once."""
    assert src.app_settings is not None
    mine = [j for j in jobs if j.problem is None and src.defines(j.data_set)]
    if not mine:
        return
    if src.contacts is None:
        src.start(org_unit)
    assert src.contacts is not None and src.places is not None
    contacts, places = src.contacts, src.places
    for job in mine:
        agg = Aggregation(
            src.app_settings,
            job.data_set,
            job.period.iso,
            org_unit=org_unit,
            value_choices=config.value_choices,
        )
        agg.add_places(places)
        job.aggs[src.source.name] = agg
    aggs = [j.aggs[src.source.name] for j in mine]
    months = sorted({m for j in mine for m in j.period.months})
    for month in months:
        read = ChtRead(period=month.dhis2, source=src.source.name, places=len(places))
        reads.append(read)
        feeding = [j.aggs[src.source.name] for j in mine if month in j.period.months]
        for page in src.reader.target_pages(month):
            read.pages += 1
            read.target_docs += len(page)
            owners = [
                doc["owner"]
                for doc in page
                if isinstance(doc, dict) and isinstance(doc.get("owner"), str)
            ]
            lineages, looked_up = contacts.lineages(owners)
            read.owners_looked_up += looked_up
            for agg in feeding:
                agg.add_owners(owners, lineages)
                agg.add_target_docs(page)
        if recorder and read.owners_looked_up:
            recorder(_owners_exchange(src.reader, read))
    # users who never synced still belong somewhere: their contacts' lineages too
    users = src.users()
    lineages, _ = contacts.lineages(list(users.values()))
    for agg in aggs:
        agg.add_owners(users.values(), lineages)
        agg.expect_users(users)
    src.keep()


def _owners_exchange(reader: ChtReader, read: ChtRead) -> Exchange:
    now = utcnow()
    return Exchange(
        name=f"CHT target owners {read.period}",
        method="POST",
        url=f"{reader.db_url}/_all_docs",
        path=f"/{reader.settings.db}/_all_docs",
        querystring="include_docs=true",
        request_body=f'{{"keys": [... {read.owners_looked_up} owner ids in batches of '
        f"{reader.settings.owner_batch}]}}",
        status=200,
        response_body=f'{{"owners": {read.owners_looked_up}}}',
        started=now,
        finished=now,
    )


class _Stream:
    """One run's CHT side: settings and plan first, then the jobs group by group.

    Jobs that share a month are in one group, so each month is read once; a group is
    pushed and let go before the next is read, so memory holds one group's
    aggregations, not the whole window's.
    """

    def __init__(
        self,
        request: RunRequest,
        config: RuntimeConfig,
        recorder: Recorder | None,
        period_type_of: Callable[[str], str | None] | None,
    ) -> None:
        self.request, self.config, self.recorder = request, config, recorder
        self.now = request.as_of or utcnow()
        store = CacheStore(config.state_dir)
        self.sources = [_SourceRead(s, recorder, store) for s in config.sources()]
        self.reads: list[ChtRead] = []
        try:
            self._plan(request, config, period_type_of)
        except BaseException:
            self.close()
            raise

    def _plan(
        self,
        request: RunRequest,
        config: RuntimeConfig,
        period_type_of: Callable[[str], str | None] | None,
    ) -> None:
        for src in self.sources:
            try:
                src.app_settings = src.reader.app_settings()
            except ChtError as exc:
                src.error = str(exc)
        readable = [s for s in self.sources if s.app_settings is not None]
        if not readable:
            raise ChtError(self.sources[0].error or "no CHT instance could be read")
        defined = list(
            dict.fromkeys(ds for s in readable for ds in data_set_ids(s.app_settings or {}))
        )
        self.data_sets = resolve_data_sets(defined, request.data_sets or config.data_sets)
        self.jobs = plan_jobs(
            request, self.data_sets, period_type_of or (lambda _ds: None), config, self.now
        )

    @property
    def source_errors(self) -> dict[str, str]:
        return {s.source.name: s.error for s in self.sources if s.error}

    @property
    def source_warnings(self) -> dict[str, str]:
        """Per CHT instance, why its kept contacts were not used (``cht_cache``)."""
        return {
            s.source.name: s.contacts.warning
            for s in self.sources
            if s.contacts is not None and s.contacts.warning
        }

    def groups(self) -> Iterator[list[Job]]:
        """The jobs, aggregated, a group of jobs sharing months at a time (month order);
        jobs refused before reading come first, alone."""
        refused = [j for j in self.jobs if j.problem is not None]
        if refused:
            _finish(refused, self.sources, self.now)
            yield refused
        for group in _month_groups([j for j in self.jobs if j.problem is None]):
            with _collector_paused():
                self._read(group)
            yield group

    def _read(self, group: list[Job]) -> None:
        for src in self.sources:
            if src.app_settings is None or src.error:
                continue
            try:
                _read_source(
                    src, group, self.config, self.request.org_unit, self.reads, self.recorder
                )
            except ChtError as exc:
                src.error = str(exc)
            except EngineError as exc:
                raise RunInputError(str(exc)) from None
        _finish(group, self.sources, self.now)

    def close(self) -> None:
        for src in self.sources:
            src.close()


def _month_groups(jobs: list[Job]) -> list[list[Job]]:
    """Jobs grouped so that no two groups need the same month, in month order."""
    groups: list[tuple[set[Month], list[Job]]] = []
    for job in sorted(jobs, key=lambda j: (j.period.first, j.period.last)):
        months = set(job.period.months)
        joined = [g for g in groups if g[0] & months]
        for g in joined:
            groups.remove(g)
            months |= g[0]
        merged = [j for g in joined for j in g[1]] + [job]
        groups.append((months, merged))
    return [g[1] for g in sorted(groups, key=lambda g: min(g[0]))]


def compute(
    request: RunRequest,
    config: RuntimeConfig,
    *,
    recorder: Recorder | None = None,
    period_type_of: Callable[[str], str | None] | None = None,
) -> Computed:
    """Read CHT and aggregate every job; no DHIS2 (preview, /coverage). Raises
    RunInputError / ChtError; a failed source's jobs carry ``read_error``."""
    stream = _Stream(request, config, recorder, period_type_of)
    try:
        for _group in stream.groups():
            pass
        return Computed(
            stream.data_sets,
            stream.jobs,
            stream.reads,
            stream.source_errors,
            stream.source_warnings,
        )
    finally:
        stream.close()


def _finish(jobs: list[Job], sources: list[_SourceRead], now: datetime) -> None:
    """Mark jobs a failed source should have fed; merge coverage; note CHT intervals."""
    primary = next((s.app_settings for s in sources if s.app_settings), {}) or {}
    start_day = month_start_day(primary)
    for job in jobs:
        begin, end = cht_interval(job.period, start_day)
        job.interval = f"{begin.isoformat()}..{end.isoformat()}"
        if job.problem:
            continue
        failed = [
            s for s in sources if s.error and (s.app_settings is None or s.defines(job.data_set))
        ]
        if failed:
            names = ", ".join(f"{s.source.name} ({s.error})" for s in failed)
            job.read_error = f"CHT instance {names} could not be read"
            continue
        if not job.aggs:
            job.problem = f"no CHT instance defines data set {job.data_set}"
            continue
        several = len(job.aggs) > 1
        rows: dict[str, OrgUnitCoverage] = {}
        tags = [m.tag for m in job.period.months]
        counts = [agg.users_synced(tags) for agg in job.aggs.values()]
        job.users = (sum(c[0] for c in counts), sum(c[1] for c in counts))
        job.users_not_expected = sum(
            s.users_not_expected for s in sources if s.defines(job.data_set)
        )
        for name, agg in job.aggs.items():
            for cov in agg.coverage(tags, now):
                if several:
                    cov.missing = [f"{name}:{user}" for user in cov.missing]
                into = rows.setdefault(
                    cov.orgUnit, OrgUnitCoverage(orgUnit=cov.orgUnit, name=cov.name)
                )
                into.places += [f"{name}:{p}" if several else p for p in cov.places]
                into.expected += cov.expected
                into.synced += cov.synced
                into.missing += cov.missing
                if cov.newest_doc and (into.newest_doc is None or cov.newest_doc > into.newest_doc):
                    into.newest_doc, into.newest_doc_age_days = (
                        cov.newest_doc,
                        cov.newest_doc_age_days,
                    )
        job.coverage = list(rows.values())


def execute(
    request: RunRequest,
    config: RuntimeConfig,
    *,
    pusher_factory: Callable[[RuntimeConfig, Recorder], Pusher] | None = None,
) -> RunReport:
    """Run it all and report. Raises RunInputError for requests that cannot run, and
    RunBusyError when another run holds one of its (data set, period) pairs."""
    bad = [ds for ds in request.data_sets if not is_uid(ds)]
    if request.org_unit is not None and not is_uid(request.org_unit):
        bad.append(request.org_unit)
    if bad:
        raise RunInputError(
            f"not a DHIS2 id (11 letters or digits, starting with a letter): {', '.join(bad)}"
        )
    report = RunReport(run_id=uuid.uuid4().hex[:12], trigger=request.trigger)
    report.dry_run = config.dry_run if request.dry_run is None else request.dry_run
    report.org_unit = request.org_unit

    def record(exchange: Exchange) -> None:
        # the OpenHIM envelope keeps the bodies of the first requests only; a national
        # run makes hundreds, so later bodies are not held in memory either
        if len(report.exchanges) >= EXCHANGE_BODIES_KEPT:
            exchange = exchange.model_copy(update={"request_body": "", "response_body": ""})
        elif max(len(exchange.request_body), len(exchange.response_body)) > EXCHANGE_BODY_CHARS:
            # the envelope shows 15,000 characters of a body, after masking secrets; twice
            # that keeps any secret cut here out of what it shows
            exchange = exchange.model_copy(
                update={
                    "request_body": exchange.request_body[:EXCHANGE_BODY_CHARS],
                    "response_body": exchange.response_body[:EXCHANGE_BODY_CHARS],
                }
            )
        report.exchanges.append(exchange)

    if pusher_factory is None:
        from .dhis2 import Dhis2Client

        def pusher_factory(cfg: RuntimeConfig, rec: Recorder) -> Pusher:
            if cfg.dhis2 is None:
                raise RunInputError("DHIS2 is not configured: set DHIS2_URL and credentials")
            return Dhis2Client(cfg.dhis2, recorder=rec)

    pusher = pusher_factory(config, record)
    locks = RunLocks(config.lock_dir, config.concurrent_runs)
    stream: _Stream | None = None
    try:
        try:
            stream = _Stream(request, config, record, pusher.period_type)
        except ChtError as exc:
            report.findings.append(Finding(level="error", code="cht_unreadable", message=str(exc)))
            report.finished = utcnow()
            report.diagnoses = diagnose(report)
            return report
        report.data_sets = stream.data_sets
        report.periods = list(dict.fromkeys(j.period.iso for j in stream.jobs))
        results: dict[int, DataSetResult] = {}
        with locks.hold([j.key for j in stream.jobs if j.problem is None]):
            for group in stream.groups():
                for job in group:
                    results[id(job)] = _push_one(pusher, job, report.dry_run, config)
                    job.release()  # pushed: let the aggregation go before the next group
        report.results = [results[id(job)] for job in stream.jobs]
        report.cht = stream.reads
        for name, error in stream.source_errors.items():
            report.findings.append(
                Finding(level="error", code="cht_source_failed", message=error, ids=[name])
            )
        for name, warning in stream.source_warnings.items():
            report.findings.append(
                Finding(
                    level="warning", code="cht_contacts_read_afresh", message=warning, ids=[name]
                )
            )
    finally:
        pusher.close()
        if stream is not None:
            stream.close()
    report.finished = utcnow()
    report.diagnoses = diagnose(report)
    return report


def _describe(job: Job, result: DataSetResult) -> DataSetResult:
    result.period_type = job.period.period_type
    result.months = [m.tag for m in job.period.months]
    result.cht_interval = job.interval
    if job.aggs:
        merged = job.merged
        result.sources = list(job.aggs)
        result.docs_counted = merged.docs_counted
        result.skipped = dict(sorted(merged.skipped.items()))
        result.coverage = job.coverage
        result.users_expected, result.users_synced = job.users
        result.users_not_expected = job.users_not_expected
        for mapping in merged.mappings:
            targets = result.mapped_targets.setdefault(mapping.row[0], [])
            if mapping.target_id not in targets:
                targets.append(mapping.target_id)
    return result


def _push_one(pusher: Pusher, job: Job, dry_run: bool, config: RuntimeConfig) -> DataSetResult:
    period = job.period.iso
    base = {"data_set": job.data_set, "period": period, "status": "error", "dry_run": dry_run}
    if job.problem:
        return _describe(job, DataSetResult(**base, error=f"not pushed: {job.problem}"))
    if job.read_error:
        return _describe(
            job,
            DataSetResult(
                **base,
                error=f"not pushed: {job.read_error}, so the totals would be partial",
            ),
        )
    agg = job.merged
    held = _held(job.coverage, config.coverage_threshold)
    scope = [ou for ou in agg.org_units if ou not in held]
    mapped = [m.row for m in agg.mappings]
    result = DataSetResult(**{**base, "status": "success"})
    statuses: list[str] = []
    # in batches of org units, so that memory holds one batch of values at a time
    batches = [scope[i : i + ORG_UNITS_PER_PUSH] for i in range(0, len(scope), ORG_UNITS_PER_PUSH)]
    for batch in batches or [[]]:  # no org unit at all: the preflight still speaks
        rows = agg.data_values(units=batch)
        result.values_computed += len(rows)
        part = _push_part(pusher, job, period, rows, dry_run, batch, mapped)
        _merge(result, part)
        statuses.append(part.status)
        if part.status == "error" and not part.values_sent:
            break  # a data set problem (preflight, credentials): the other batches would fail too
    # an org unit CHT no longer maps keeps no stale numbers, unless one was asked for or
    # coverage holds some back (then "not produced" does not mean "gone")
    if agg.org_unit is None and not held and statuses[-1] != "error":
        sweep = pusher.push(
            job.data_set,
            period,
            [],
            dry_run=dry_run,
            scope_org_units=[],
            mapped=mapped,
            sweep_assigned=True,
            owned_org_units=agg.org_units,
        )
        _merge(result, sweep)
        statuses.append(sweep.status)
    if all(status == "error" for status in statuses):
        result.status = "error"
    elif any(status in ("error", "warning") for status in statuses):
        result.status = "warning"  # some of it reached DHIS2, some did not
    for cov in job.coverage:
        cov.held = cov.orgUnit in held
    result.held_org_units = sorted(held)
    if config.complete_data_sets and not dry_run and result.status != "error":
        refused = {r.orgUnit for r in result.rejected}
        ready = [ou for ou in scope if ou not in refused]
        if ready:
            done, findings = pusher.register_completeness(job.data_set, period, ready)
            result.completeness_registered = done
            result.preflight += findings
    return _describe(job, result)


def _push_part(
    pusher: Pusher,
    job: Job,
    period: str,
    rows: list[DataValue],
    dry_run: bool,
    batch: list[str],
    mapped: list[tuple[str, str | None, str | None]],
) -> DataSetResult:
    try:
        return pusher.push(
            job.data_set,
            period,
            rows,
            dry_run=dry_run,
            scope_org_units=batch,
            mapped=mapped,
            sweep_assigned=False,
        )
    except Exception as exc:  # noqa: BLE001 - one data set's failure must not stop the others
        return DataSetResult(
            data_set=job.data_set,
            period=period,
            status="error",
            dry_run=dry_run,
            error=str(exc) or type(exc).__name__,
        )


def _merge(total: DataSetResult, part: DataSetResult) -> None:
    """Add one batch's result to the data set's: counts add up, rows and findings join,
    the status is the worst that still tells what reached DHIS2."""
    offset = total.values_sent
    total.counts.add(part.counts)
    for name in (
        "values_sent",
        "values_unchanged",
        "values_cleared",
        "chunks_sent",
        "chunks_failed",
        "delivered",
    ):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.conflicts += [
        c.model_copy(update={"indexes": [offset + i for i in c.indexes]}) for c in part.conflicts
    ]
    total.rejected += part.rejected
    total.dhis2_version = total.dhis2_version or part.dhis2_version
    if part.error and not total.error:
        total.error, total.error_status = part.error, part.error_status
    for finding in part.preflight:
        same = next(
            (f for f in total.preflight if (f.level, f.code) == (finding.level, finding.code)),
            None,
        )
        if same is None:
            total.preflight.append(finding.model_copy())
        elif finding.message != same.message:
            new = [i for i in finding.ids if i not in same.ids]
            same.ids += new
            if new:
                same.message += f" Also: {', '.join(new[:20])}" + (
                    f" and {len(new) - 20} more" if len(new) > 20 else ""
                )


def _held(coverage: list[OrgUnitCoverage], threshold: float | None) -> set[str]:
    if threshold is None:
        return set()
    return {c.orgUnit for c in coverage if c.expected and c.percent < threshold}
