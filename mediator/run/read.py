"""Step 2 of a run: read CHT and aggregate, a group of jobs at a time.

Each month of target docs is read once per CHT instance, page by page, and fed to
every (data set, period) that holds it: a quarterly data set sums its three months, a
percent is recomputed from the summed pass and total. Several CHT instances are summed
per org unit. Contacts (places, owners, users) are read once per run, or taken from
what the last run kept (``cht.cache``) after asking CHT what changed.
"""

from __future__ import annotations

import contextvars
import gc
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from mediator.cht.cache import CacheStore, ChtUser, Contacts, Lineage
from mediator.cht.client import ChtReader, PageStream
from mediator.engine.aggregation import Aggregation
from mediator.engine.mapping import EngineError, data_set_ids, writes_targets
from mediator.http.client import Recorder
from mediator.http.errors import PeerError
from mediator.model.periods import cht_interval, month_start_day
from mediator.model.report import ChtRead, OrgUnitCoverage
from mediator.model.values import utcnow
from mediator.settings.config import ChtSource, RuntimeConfig

from .jobs import Job, month_groups, plan_jobs, resolve_data_sets
from .request import RunInputError, RunRequest

MakeAggregation = Callable[..., Aggregation]  # Aggregation's own signature


class SourceRead:
    """Everything read from one CHT instance for one run."""

    def __init__(
        self,
        source: ChtSource,
        recorder: Recorder | None,
        store: CacheStore,
        *,
        users: bool = True,
    ) -> None:
        self.source = source
        self.wants_users = users  # coverage needs CHT's users; the values do not
        self.reader = ChtReader(source.settings, recorder=recorder)
        self.store = store if source.settings.cache else None
        self.app_settings: dict[str, Any] | None = None
        self.error: str | None = None
        self.failure: PeerError | None = None
        # read once per run, whatever periods follow
        self.contacts: Contacts | None = None
        self.places: list[dict[str, Any]] | None = None
        self._users: Future[dict[str, ChtUser]] | None = None
        self.users_not_expected = 0  # CHT users who write no target docs (online…)
        self._pool: ThreadPoolExecutor | None = None
        self._prepared: Future[None] | None = None  # contacts and places, read ahead
        self._prep_pool: ThreadPoolExecutor | None = None

    def defines(self, data_set: str) -> bool:
        return self.app_settings is not None and data_set in data_set_ids(self.app_settings)

    def start(self) -> Contacts:
        """The contacts kept by the last run, checked against CHT's changes feed, and the
        users (for coverage only) on a thread of their own, so CHT reads them while the
        places and the target pages are worked on."""
        previous = self.store.load(self.source.settings) if self.store else None
        self.contacts = contacts = Contacts(self.reader, previous)
        if not self.wants_users:
            return contacts
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cht-users")

        def users() -> dict[str, ChtUser]:
            reader = self.reader.fork()
            try:
                return contacts.users(reader)
            finally:
                reader.close()

        self._users = self._pool.submit(users)
        return contacts

    def prepare(self, org_unit: str | None) -> None:
        """Check the kept contacts and read the places on a thread of their own, while
        the run asks DHIS2 for the data sets' period types: neither needs the other
        (``read_source`` takes them with ``begun``)."""
        self._prep_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cht-contacts")

        def contacts_and_places() -> None:
            contacts = self.start()
            self.places = contacts.places(org_unit)

        self._prepared = self._prep_pool.submit(contextvars.copy_context().run, contacts_and_places)

    def begun(self) -> Contacts:
        """The contacts, started now or by ``prepare`` (what reading them there raised,
        raised here)."""
        prepared, self._prepared = self._prepared, None
        if prepared is None:
            return self.contacts or self.start()
        prepared.result()
        assert self.contacts is not None
        return self.contacts

    def users(self) -> dict[str, str]:
        """Username -> contact id of the users who write target docs: only those are
        expected to sync (``engine.mapping.writes_targets``); the others are counted apart."""
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
        """What this run learned of CHT's contacts, for the next run (``cht.cache``)."""
        if self.store and self.contacts and self.contacts.keepable:
            self.store.save(self.source.settings, self.contacts.cache)

    def close(self) -> None:
        if self._prep_pool is not None:  # its reads use this reader: they end first
            self._prep_pool.shutdown(wait=True, cancel_futures=True)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.reader.close()


class ChtSide:
    """One run's CHT side: settings and the jobs first, then the jobs group by group.

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
        *,
        users: bool = True,
        aggregation: MakeAggregation = Aggregation,
    ) -> None:
        """``users=False``: CHT's users are not read, so coverage is empty (a preview
        shows values only; the users are a fifth of a cold run's reads).
        ``aggregation``: what each job's numbers are summed by (``explain`` watches one
        org unit's: ``engine.explain.WatchedAggregation``)."""
        self.request, self.config = request, config
        self.aggregation = aggregation
        self.now = request.as_of or utcnow()
        store = CacheStore(config.state_dir)
        self.sources = [SourceRead(s, recorder, store, users=users) for s in config.sources()]
        self.reads: list[ChtRead] = []
        try:
            self._plan(period_type_of)
        except BaseException:
            self.close()
            raise

    def _plan(self, period_type_of: Callable[[str], str | None] | None) -> None:
        for src in self.sources:
            try:
                src.app_settings = src.reader.app_settings()
            except PeerError as exc:
                src.error, src.failure = str(exc), exc
        readable = [s for s in self.sources if s.app_settings is not None]
        if not readable:
            failure = next(s.failure for s in self.sources if s.failure is not None)
            raise failure
        defined = list(
            dict.fromkeys(ds for s in readable for ds in data_set_ids(s.app_settings or {}))
        )
        asked = self.request.data_sets or self.config.data_sets
        self.data_sets = resolve_data_sets(defined, asked)
        if period_type_of is not None:  # DHIS2 is asked: CHT's contacts read meanwhile
            for src in readable:
                if any(src.defines(ds) for ds in self.data_sets):
                    src.prepare(self.request.org_unit)
        self.jobs = plan_jobs(
            self.request,
            self.data_sets,
            period_type_of or (lambda _ds: None),
            self.config,
            self.now,
        )

    @property
    def source_errors(self) -> dict[str, str]:
        return {s.source.name: s.error for s in self.sources if s.error}

    @property
    def source_warnings(self) -> dict[str, str]:
        """Per CHT instance, why its kept contacts were not used (``cht.cache``)."""
        return {
            s.source.name: s.contacts.warning
            for s in self.sources
            if s.contacts is not None and s.contacts.warning
        }

    def groups(self) -> Iterator[list[Job]]:
        """The jobs, aggregated, a group of jobs sharing months at a time (month order);
        jobs refused before reading come first, alone. A group is read when it is
        reached, so the caller can let one go before the next is read."""
        for group in self._planned():
            self._aggregate(group)
            yield group

    def aggregate_all(self) -> None:
        """Every job aggregated, kept by its job (``preview`` without streaming,
        ``/coverage``)."""
        for group in self._planned():
            self._aggregate(group)

    def _planned(self) -> list[list[Job]]:
        refused = [j for j in self.jobs if j.problem is not None]
        rest = month_groups([j for j in self.jobs if j.problem is None])
        return [refused, *rest] if refused else rest

    def _aggregate(self, group: list[Job]) -> None:
        if any(j.problem is not None for j in group):  # refused: nothing to read
            finish(group, self.sources, self.now)
            return
        with collector_paused():
            self._read(group)

    def _read(self, group: list[Job]) -> None:
        for src in self.sources:
            if src.app_settings is None or src.error:
                continue
            try:
                read_source(
                    src, group, self.config, self.request.org_unit, self.reads, self.aggregation
                )
            except PeerError as exc:
                src.error, src.failure = str(exc), exc
            except EngineError as exc:
                raise RunInputError(str(exc)) from None
        finish(group, self.sources, self.now)

    def close(self) -> None:
        for src in self.sources:
            src.close()


_paused = 0
_paused_lock = threading.Lock()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a group is read and aggregated.

    The docs decoded from CHT hold no reference cycles, so refcounting frees every
    page; the collector would only scan them, again and again as the aggregation's
    own objects grow: half the CPU of reading a national month (benchmarks/). It is
    back on for the push, which waits on DHIS2 rather than on CPU. Counted, so that
    runs on several threads turn it back on when the last one is done.
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


def read_source(
    src: SourceRead,
    jobs: list[Job],
    config: RuntimeConfig,
    org_unit: str | None,
    reads: list[ChtRead],
    aggregation: MakeAggregation = Aggregation,
) -> None:
    """Aggregate every job this source feeds, reading each month once. The first
    month's target pages are asked for before anything else, and their owners are
    looked up while the places are read, so CHT is never idle meanwhile."""
    assert src.app_settings is not None
    mine = [j for j in jobs if j.problem is None and src.defines(j.data_set)]
    if not mine:
        return
    months = sorted({m for j in mine for m in j.period.months})
    ahead = src.reader.target_pages(months[0])
    lookups: OwnerLookups | None = None
    try:
        contacts = src.begun()
        lookups = OwnerLookups(contacts, src.reader, ahead)
        if src.places is None:
            src.places = contacts.places(org_unit)
        for job in mine:
            agg = aggregation(
                src.app_settings,
                job.data_set,
                job.period.iso,
                org_unit=org_unit,
                value_choices=config.value_choices,
                track_sync=src.wants_users,
                source=src.source.name,
            )
            agg.add_places(src.places)
            job.aggs[src.source.name] = agg
        for month in months:
            if month != months[0]:
                lookups.close()
                lookups = OwnerLookups(contacts, src.reader, src.reader.target_pages(month))
            feeding = [j.aggs[src.source.name] for j in mine if month in j.period.months]
            read = ChtRead(period=month.dhis2, source=src.source.name, places=len(src.places))
            reads.append(read)  # before reading: a failed read still shows how far it got
            read_month(lookups, feeding, read)
    finally:
        ahead.close()
        if lookups is not None:
            lookups.close()
    if src.wants_users:
        expect_users(src, mine)
    src.keep()


def read_month(lookups: OwnerLookups, feeding: list[Aggregation], read: ChtRead) -> None:
    """Feed one month's target docs to the aggregations it belongs to, page by page,
    each page's owners placed first (``OwnerLookups``: read beside the next page)."""
    for page in lookups.pages:
        owners, placed = lookups.next()
        lineages, looked_up = placed.result()
        read.pages += 1
        read.target_docs += len(page)
        read.owners_looked_up += looked_up
        for agg in feeding:
            agg.add_owners(owners, lineages)
            agg.add_target_docs(page)


class OwnerLookups:
    """The owners of each page of a month, looked up in page order on a thread of their
    own as soon as the page is read (``PageStream.on_page``), so CHT reads them while
    it reads the next page and the mediator aggregates the last one."""

    def __init__(self, contacts: Contacts, reader: ChtReader, pages: PageStream) -> None:
        self.contacts, self.pages = contacts, pages
        self.reader = reader.fork()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cht-owners")
        self.started: deque[tuple[list[str], Future[tuple[dict[str, Lineage], int]]]] = deque()
        pages.on_page = self.start

    def start(self, page: list[Any]) -> None:
        owners = [
            doc["owner"]
            for doc in page
            if isinstance(doc, dict) and isinstance(doc.get("owner"), str)
        ]
        self.started.append((owners, self.pool.submit(self.contacts.lineages, owners, self.reader)))

    def next(self) -> tuple[list[str], Future[tuple[dict[str, Lineage], int]]]:
        return self.started.popleft()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.reader.close()


def expect_users(src: SourceRead, jobs: list[Job]) -> None:
    """Coverage: the users expected to sync, placed by their contacts' lineages."""
    assert src.contacts is not None
    # users who never synced still belong somewhere: their contacts' lineages too
    users = src.users()
    lineages, _ = src.contacts.lineages(list(users.values()))
    for job in jobs:
        job.aggs[src.source.name].add_owners(users.values(), lineages)
        job.aggs[src.source.name].expect_users(users)


def finish(jobs: list[Job], sources: list[SourceRead], now: datetime) -> None:
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
        if not any(s.wants_users for s in sources):
            continue  # no users read (a preview): no coverage to tell
        tags = [m.tag for m in job.period.months]
        counts = [agg.users_synced(tags) for agg in job.aggs.values()]
        job.users = (sum(c[0] for c in counts), sum(c[1] for c in counts))
        job.users_not_expected = sum(
            s.users_not_expected for s in sources if s.defines(job.data_set)
        )
        job.coverage = _coverage(job, tags, now)


def _coverage(job: Job, tags: list[str], now: datetime) -> list[OrgUnitCoverage]:
    """Every source's coverage, one row per org unit (source-prefixed names when several)."""
    several = len(job.aggs) > 1
    rows: dict[str, OrgUnitCoverage] = {}
    for name, agg in job.aggs.items():
        for cov in agg.coverage(tags, now):
            if several:
                cov.missing = [f"{name}:{user}" for user in cov.missing]
            into = rows.setdefault(cov.orgUnit, OrgUnitCoverage(orgUnit=cov.orgUnit, name=cov.name))
            into.places += [f"{name}:{p}" if several else p for p in cov.places]
            into.expected += cov.expected
            into.synced += cov.synced
            into.missing += cov.missing
            if cov.newest_doc and (into.newest_doc is None or cov.newest_doc > into.newest_doc):
                into.newest_doc, into.newest_doc_age_days = cov.newest_doc, cov.newest_doc_age_days
    return list(rows.values())
