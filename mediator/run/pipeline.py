"""A run, as its steps. Knows nothing of Flask, OpenHIM or the command line: a trigger
builds a ``RunRequest`` (``run_request``), ``execute`` returns a ``RunReport``.

    1. plan the jobs              jobs.plan_jobs: (data set, period) pairs, types from DHIS2
    2. read and aggregate CHT     cht_read.ChtSide.groups: each month once, group by group
    3. preflight                  preflight(): the data set's metadata, per DHIS2 version
    4. read what DHIS2 holds      read_stored(): batches of org units, then one by one
    5. plan the push              plan.plan_push: send, clear, unchanged (pure)
    6. post in chunks             post_plan(): POST /api/dataValueSets per chunk
    7. map results to rows        dhis2_imports.attribute: which row DHIS2 refused, why
    8. report                     report.RunReport and diagnoses.diagnose

A data set is pushed in batches of org units (memory holds one batch of values) and
then swept: values this integration stored at org units CHT no longer maps are
cleared. DHIS2 unreachable past its retry budget, or refusing the credentials, stops
the run: the rest is reported as not attempted, and nothing is retried in vain.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import replace

from mediator.dhis2.client import Dhis2Client, StoredValues
from mediator.dhis2.imports import ImportResult, attribute
from mediator.dhis2.metadata import Combo, Key
from mediator.dhis2.plan import Planned, PushPlan, chunks, own_values, plan_push, sweep_org_units
from mediator.dhis2.preflight import Preflight, Server, check, needs_lock_exceptions
from mediator.http.client import (
    BadBody,
    BadStatus,
    CredentialsRefused,
    PeerError,
    Recorder,
    RetryPolicy,
    TimedOut,
    Transport,
    Unreachable,
)
from mediator.model.periods import Period, PeriodError
from mediator.model.report import (
    DataSetResult,
    Finding,
    OrgUnitCoverage,
    RejectedRow,
    RunReport,
    outcome,
    rollup,
)
from mediator.model.values import DataValue, Exchange, is_uid, utcnow
from mediator.settings.config import RuntimeConfig

from .diagnoses import diagnose
from .jobs import Computed, Job
from .locks import RunLocks
from .read import ChtSide
from .request import RunInputError, RunRequest

__all__ = ["compute", "execute", "push"]

log = logging.getLogger(__name__)

ORG_UNITS_PER_PUSH = 250  # a push reads, plans and posts this many org units at a time
ORG_UNITS_PER_READ = 50  # keeps GET /api/dataValueSets URLs well under proxy limits
EXCHANGE_BODIES_KEPT = 300  # more than the OpenHIM envelope shows
EXCHANGE_BODY_CHARS = 30_000  # twice what the envelope shows of a body
SINGLE_READ_RETRY = RetryPolicy(attempts=2, base_seconds=1.0, budget_seconds=5.0)
STOPS_THE_RUN = (Unreachable, TimedOut, CredentialsRefused)  # every later call would fail too


# -- the run ----------------------------------------------------------------------------------


def execute(
    request: RunRequest, config: RuntimeConfig, *, transport: Transport | None = None
) -> RunReport:
    """Run it all and report. Raises RunInputError for requests that cannot run, and
    RunBusyError when another run holds one of its (data set, period) pairs.
    ``transport``: DHIS2's, for tests."""
    _check_ids(request)
    report = RunReport(run_id=request.run_id or new_run_id(), trigger=request.trigger)
    report.dry_run = config.dry_run if request.dry_run is None else request.dry_run
    report.org_unit = request.org_unit
    if config.dhis2 is None:
        raise RunInputError("DHIS2 is not configured: set DHIS2_URL and credentials")
    record = _recorder(report)
    dhis2 = Dhis2Client(config.dhis2, recorder=record, transport=transport)
    try:
        try:  # 1. plan the jobs (each data set's period type comes from DHIS2)
            cht = ChtSide(request, config, record, dhis2.period_type)
        except PeerError as exc:
            report.findings.append(Finding(level="error", code="cht_unreadable", message=str(exc)))
            return _finish(report)
        try:
            report.data_sets = cht.data_sets
            report.periods = list(dict.fromkeys(j.period.iso for j in cht.jobs))
            locks = RunLocks.for_run(config, run_id=report.run_id, trigger=request.trigger)
            _push_all(cht, dhis2, report, locks)
        finally:
            cht.close()
    finally:
        dhis2.close()
    return _finish(report)


def _push_all(cht: ChtSide, dhis2: Dhis2Client, report: RunReport, locks: RunLocks) -> None:
    """2.–7. for every job, group by group, under the run locks of its DHIS2 server."""
    config = cht.config
    results: dict[int, DataSetResult] = {}
    stopped: PeerError | None = None
    with locks.hold([j.key for j in cht.jobs if j.problem is None]):
        for group in cht.groups():  # 2. read and aggregate CHT
            for job in group:
                if stopped is not None:
                    results[id(job)] = _not_attempted(job, report.dry_run, stopped)
                else:
                    token = _JOB.set((job.data_set, job.period.iso))
                    try:
                        results[id(job)] = _isolated(dhis2, job, report.dry_run, config)
                    finally:
                        _JOB.reset(token)
                    stopped = dhis2.stopped
                job.release()  # pushed: let the aggregation go before the next group
    report.results = [results[id(job)] for job in cht.jobs]
    report.cht = cht.reads
    for name, error in cht.source_errors.items():
        report.findings.append(
            Finding(level="error", code="cht_source_failed", message=error, ids=[name])
        )
    for name, warning in cht.source_warnings.items():
        report.findings.append(
            Finding(level="warning", code="cht_contacts_read_afresh", message=warning, ids=[name])
        )


def compute(
    request: RunRequest,
    config: RuntimeConfig,
    *,
    recorder: Recorder | None = None,
    period_type_of: Callable[[str], str | None] | None = None,
) -> Computed:
    """Steps 1 and 2 only: read CHT and aggregate every job, no DHIS2 (preview,
    /coverage). Raises RunInputError / PeerError; a failed source's jobs carry
    ``read_error``."""
    cht = ChtSide(request, config, recorder, period_type_of)
    try:
        cht.aggregate_all()
        return Computed(cht.data_sets, cht.jobs, cht.reads, cht.source_errors, cht.source_warnings)
    finally:
        cht.close()


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _finish(report: RunReport) -> RunReport:
    report.finished = utcnow()
    report.diagnoses = diagnose(report)  # 8. report
    return report


def _check_ids(request: RunRequest) -> None:
    bad = [ds for ds in request.data_sets if not is_uid(ds)]
    if request.org_unit is not None and not is_uid(request.org_unit):
        bad.append(request.org_unit)
    if bad:
        raise RunInputError(
            f"not a DHIS2 id (11 letters or digits, starting with a letter): {', '.join(bad)}"
        )


# the (data set, period) a request is made for: tags each recorded exchange, so that the
# OpenHIM transaction can show steps per (data set, period) instead of raw requests
_JOB: ContextVar[tuple[str, str] | None] = ContextVar("job", default=None)


def _recorder(report: RunReport) -> Recorder:
    def record(exchange: Exchange) -> None:
        job = _JOB.get()
        if job is not None:
            exchange.data_set, exchange.period = job
        # the OpenHIM envelope keeps the bodies of the first requests only; a national
        # run makes hundreds, so later bodies are not held in memory either
        if len(report.exchanges) >= EXCHANGE_BODIES_KEPT:
            exchange = exchange.model_copy(update={"request_body": "", "response_body": ""})
        elif max(len(exchange.request_body), len(exchange.response_body)) > EXCHANGE_BODY_CHARS:
            exchange = exchange.model_copy(
                update={
                    "request_body": exchange.request_body[:EXCHANGE_BODY_CHARS],
                    "response_body": exchange.response_body[:EXCHANGE_BODY_CHARS],
                }
            )
        report.exchanges.append(exchange)

    return record


def _isolated(dhis2: Dhis2Client, job: Job, dry_run: bool, config: RuntimeConfig) -> DataSetResult:
    """``push_job``, where a bug fails this (data set, period) alone: it is logged with its
    traceback, and the report says where to look; the other jobs still run."""
    try:
        return push_job(dhis2, job, dry_run, config)
    except Exception as exc:  # noqa: BLE001 - one job's bug must not hide the others' results
        log.exception("unexpected error pushing %s %s", job.data_set, job.period.iso)
        result = _base(job, dry_run)
        result.error = (
            f"internal error in the mediator ({type(exc).__name__}); the traceback is in the "
            "mediator's log"
        )
        result.error_kind = "internal"
        return _describe(job, result)


def _not_attempted(job: Job, dry_run: bool, cause: PeerError) -> DataSetResult:
    result = _base(job, dry_run)
    result.error = f"not attempted: the run stopped earlier because {cause}"
    result.error_kind, result.error_status = "not_attempted", cause.status
    return _describe(job, result)


# -- one (data set, period) ----------------------------------------------------------------------


def push_job(dhis2: Dhis2Client, job: Job, dry_run: bool, config: RuntimeConfig) -> DataSetResult:
    """Steps 3–7 for one job, org units in batches, then the sweep of stale org units
    and, when asked, the completeness registration."""
    if job.problem or job.read_error:
        return _describe(job, _not_pushed(job, dry_run))
    agg = job.merged
    held_back = held(job.coverage, config.coverage_threshold)
    scope = [ou for ou in agg.org_units if ou not in held_back]
    mapped = [m.row for m in agg.mappings]
    result = _base(job, dry_run)
    parts: list[DataSetResult] = []
    for batch in chunks(scope, ORG_UNITS_PER_PUSH) or [[]]:  # none: the preflight still speaks
        rows = agg.data_values(units=batch)
        result.values_computed += len(rows)
        part = push(
            dhis2,
            job.data_set,
            job.period.iso,
            rows,
            dry_run=dry_run,
            scope_org_units=list(batch),
            mapped=mapped,
        )
        parts.append(_add_part(result, part))
        if part.status == "error" and not part.values_sent:
            break  # a data set problem (preflight, credentials): the other batches fail too
    # an org unit CHT no longer maps keeps no stale numbers, unless one was asked for or
    # coverage holds some back (then "not produced" does not mean "gone")
    if agg.org_unit is None and not held_back and parts[-1].status != "error":
        sweep = push(
            dhis2,
            job.data_set,
            job.period.iso,
            [],
            dry_run=dry_run,
            mapped=mapped,
            sweep_assigned=True,
            owned_org_units=agg.org_units,
        )
        parts.append(_add_part(result, sweep))
    result.status = rollup([p.status for p in parts if p.status != "skipped"])
    for cov in job.coverage:
        cov.held = cov.orgUnit in held_back
    result.held_org_units = sorted(held_back)
    if config.complete_data_sets and not dry_run and result.status != "error":
        _complete(dhis2, job, scope, result)
    return _describe(job, result)


def push(
    dhis2: Dhis2Client,
    data_set: str,
    period: str,
    rows: list[DataValue],
    *,
    dry_run: bool = False,
    scope_org_units: list[str] | None = None,
    mapped: Iterable[tuple[str, str | None, str | None]] | None = None,
    sweep_assigned: bool = False,
    owned_org_units: Iterable[str] = (),
) -> DataSetResult:
    """Make DHIS2 hold exactly these rows for the mapped keys in scope (steps 3–7).

    ``mapped`` (dataElement, COC, AOC) lists the rows the engine maps for the data set;
    by default the combinations present in ``rows``. Values of other data elements are
    never touched. With ``sweep_assigned``, the org units assigned to the data set that
    CHT no longer maps are in scope too, but there only values this integration user
    stored (``storedBy``) are cleared: a number a person typed is left alone.
    ``owned_org_units`` are org units CHT maps that other batches push. Never raises a
    DHIS2 failure: it is reported in the result.
    """
    result = DataSetResult(
        data_set=data_set, period=period, dry_run=dry_run, values_computed=len(rows)
    )
    try:
        result.dhis2_version = dhis2.system_info().version
        pre = preflight(dhis2, data_set, period, rows)  # 3.
        result.preflight, result.rejected = list(pre.findings), list(pre.rejected)
        result.data_set_name = pre.name
        if pre.blocked:
            result.status = "error"
            result.error = pre.blocking[0].message
            return result
        scope = list(dict.fromkeys([r.orgUnit for r in rows] + list(scope_org_units or [])))
        swept = _swept(dhis2, data_set, scope, owned_org_units) if sweep_assigned else []
        stored, unread = read_stored(  # 4.
            dhis2, data_set, period, scope + swept, pre.default_coc, result
        )
        held_values = own_values(stored.held, stored.stored_by, set(swept), dhis2.username())
        plan = plan_push(  # 5.
            period,
            pre.ready,
            held_values,
            mapped=_combos(mapped, rows, pre.default_coc),
            protected={_key(r, pre.default_coc) for r in pre.rejected},
            unread=unread - set(swept),  # unreadable there: nothing of ours is known to clear
        )
        post_plan(dhis2, data_set, plan, dry_run, result, nothing_to_do=not rows)  # 6. and 7.
    except PeerError as exc:
        result.status, result.error = "error", str(exc)
        result.error_status, result.error_kind = exc.status, exc.kind
    return result


def _swept(dhis2: Dhis2Client, data_set: str, scope: list[str], owned: Iterable[str]) -> list[str]:
    meta = dhis2.data_set(data_set)
    assigned = [u.id for u in meta.organisationUnits] if meta else []
    return sweep_org_units(assigned, set(scope) | set(owned))


def _combos(
    mapped: Iterable[tuple[str, str | None, str | None]] | None,
    rows: list[DataValue],
    default_coc: str,
) -> set[Combo]:
    """The (data element, COC, AOC) rows the engine maps, defaults made explicit."""
    combos = (
        mapped
        if mapped is not None
        else ((r.dataElement, r.categoryOptionCombo, r.attributeOptionCombo) for r in rows)
    )
    return {(de, coc or default_coc, aoc or default_coc) for de, coc, aoc in combos}


def _key(row: RejectedRow, default_coc: str) -> Key:
    return (
        row.dataElement,
        row.orgUnit,
        row.categoryOptionCombo or default_coc,
        row.attributeOptionCombo or default_coc,
    )


# -- the steps -------------------------------------------------------------------------------


def preflight(dhis2: Dhis2Client, data_set: str, period: str, rows: list[DataValue]) -> Preflight:
    """3. The rows checked against the data set's metadata, and the period against what
    this DHIS2 release will do for this user, per org unit (``preflight.check``): its
    version and server time, the user's authorities, the strict org unit setting and,
    for an expired period, its lock exceptions."""
    info = dhis2.system_info()
    meta = dhis2.data_set(data_set)
    iso = (info.calendar or "iso8601").lower() == "iso8601"
    server = Server(
        version=info.version_tuple,
        now=info.server_date or utcnow().replace(tzinfo=None),
        iso_calendar=iso,
        authorities=dhis2.me().authorities if meta is not None else None,
        strict_org_units=dhis2.strict_org_units() if meta is not None else None,
    )
    parsed = _parsed(period)
    if meta is not None and parsed is not None and needs_lock_exceptions(meta, parsed, server):
        server = replace(server, lock_exceptions=dhis2.lock_exceptions(data_set, period))
    pre = check(meta, data_set, period, rows, server)
    if meta is not None and not iso:
        pre.findings.append(
            Finding(
                level="warning",
                code="calendar_not_iso",
                message=f"DHIS2 uses the {info.calendar} calendar: period locks were not "
                "checked before posting; DHIS2 will still report them per value.",
                ids=[data_set],
            )
        )
    return pre


def _parsed(period: str) -> Period | None:
    try:
        return Period.parse(period)
    except PeriodError:
        return None


def read_stored(
    dhis2: Dhis2Client,
    data_set: str,
    period: str,
    org_units: list[str],
    default_coc: str,
    result: DataSetResult,
) -> tuple[StoredValues, set[str]]:
    """4. What DHIS2 holds at these org units, in batches; a batch DHIS2 refuses or
    fails on is asked again org unit by org unit. Org units it still cannot read are
    returned apart (``unread``): there every computed value is sent and every zero
    cleared (``plan.plan_push``), so no stale number can stay."""
    stored = StoredValues()
    unread: set[str] = set()
    batches = chunks(org_units, ORG_UNITS_PER_READ)
    for number, batch in enumerate(batches, start=1):
        name = f"DHIS2 dataValueSets GET (batch {number}/{len(batches)})"
        try:
            stored.add(dhis2.read_values(data_set, period, batch, default_coc, name))
            continue
        except (BadStatus, BadBody) as exc:  # refused (E2010, E2012, 409) or a 5xx, retried
            if len(batch) == 1:
                unread.add(batch[0])
                _unreadable(result, batch[0], exc)
                continue
        for ou in batch:
            try:
                stored.add(
                    dhis2.read_values(
                        data_set,
                        period,
                        [ou],
                        default_coc,
                        f"{name}, {ou}",
                        retry=SINGLE_READ_RETRY,
                    )
                )
            except (BadStatus, BadBody) as exc:
                unread.add(ou)
                _unreadable(result, ou, exc)
    return stored, unread


def post_plan(
    dhis2: Dhis2Client,
    data_set: str,
    plan: PushPlan,
    dry_run: bool,
    result: DataSetResult,
    *,
    nothing_to_do: bool = False,
) -> None:
    """6. and 7. Post the plan in chunks, then map each chunk's import summary back to
    the rows it refused. A chunk that fails does not stop the next, except a 403 (the
    same for every chunk) or DHIS2 gone (``STOPS_THE_RUN``)."""
    result.values_unchanged = plan.unchanged
    result.values_zero = plan.zeros
    result.values_sent = len(plan.send)
    result.values_cleared = plan.cleared
    size = dhis2.settings.chunk_size
    sent = chunks(plan.send, size)
    tally = _Tally()
    for number, chunk in enumerate(sent, start=1):
        name = f"DHIS2 dataValueSets POST (chunk {number}/{len(sent)})"
        result.chunks_sent += 1
        try:
            answer = dhis2.post_values(
                data_set, [p.payload for p in chunk], dry_run=dry_run, name=name
            )
        except CredentialsRefused:
            raise
        except PeerError as exc:
            if _chunk_failed(result, exc, chunk, sent[number:]):
                break
            continue
        _map_answer(result, answer, chunk, (number - 1) * size, tally, f"{number}/{len(sent)}")
    if tally.unattributed:
        unsure = (
            f" {len(result.unconfirmed)} rows are not confirmed: " if result.unconfirmed else " "
        )
        result.preflight.append(
            Finding(
                level="warning",
                code="conflicts_unattributed",
                message=f"{tally.unattributed} DHIS2 conflicts could not be matched to a row."
                + unsure
                + "see the conflicts list; the next run compares and sends what is missing.",
            )
        )
    result.delivered = plan.unchanged + plan.zeros + (0 if dry_run else tally.accepted_engine)
    problems = (
        len(result.rejected) + len(result.unconfirmed) + result.chunks_failed + tally.unattributed
    )
    ok = tally.accepted + plan.unchanged + (1 if nothing_to_do and not plan.send else 0)
    result.status = outcome(ok, problems)
    if result.status == "success":
        result.error = None
    elif result.status == "error":
        result.error = result.error or "DHIS2 accepted none of the values: see the rejected rows"


class _Tally:
    """What the chunks of one plan did: rows accepted (and of those, the engine's own,
    not sweep clears), and conflicts that named no row."""

    def __init__(self) -> None:
        self.accepted = self.accepted_engine = self.unattributed = 0


def _chunk_failed(
    result: DataSetResult,
    exc: PeerError,
    chunk: Sequence[Planned],
    rest: Sequence[Sequence[Planned]],
) -> bool:
    """A chunk DHIS2 never answered for: its rows are named as not imported. True when
    the rest cannot go either (a 403, or DHIS2 gone): they are named as not sent."""
    result.chunks_failed += 1
    result.rejected += [
        RejectedRow(**p.ref.model_dump(), reason=f"not imported: {exc}") for p in chunk
    ]
    result.error, result.error_status, result.error_kind = str(exc), exc.status, exc.kind
    if exc.status != 403 and not isinstance(exc, STOPS_THE_RUN):
        return False
    for later in rest:
        result.rejected += [
            RejectedRow(**p.ref.model_dump(), reason=f"not sent: {exc}") for p in later
        ]
    return True


def _map_answer(
    result: DataSetResult,
    answer: ImportResult,
    chunk: Sequence[Planned],
    offset: int,
    tally: _Tally,
    label: str,
) -> None:
    """7. One chunk's import summary: counts, conflicts (indexes made run-wide) and the
    rows DHIS2 refused, each with DHIS2's reason."""
    result.counts.add(answer.counts)
    result.conflicts += [
        c.model_copy(update={"indexes": [offset + i for i in c.indexes]}) for c in answer.conflicts
    ]
    found = attribute(answer, [p.ref for p in chunk])
    if answer.aborted:
        result.chunks_failed += 1
        reason = next(iter(found.rejected.values())).reason if found.rejected else "ERROR"
        result.error = f"DHIS2 refused chunk {label}: {reason}"
    tally.unattributed += len(found.unattributed)
    result.rejected += [found.rejected[i] for i in sorted(found.rejected)]
    kept = [p for i, p in enumerate(chunk) if i not in found.rejected]
    counted = answer.counts.imported + answer.counts.updated + answer.counts.deleted
    if found.unattributed and counted < len(kept):
        # a conflict that names no row (2.36) and fewer rows counted than sent: which
        # rows DHIS2 kept is unknown, so none of them is called delivered (the next run
        # reads what DHIS2 holds and sends what is missing)
        result.unconfirmed += [p.ref for p in kept]
        tally.accepted += counted  # DHIS2 took that many, which ones it does not say
        return
    tally.accepted += len(kept)
    tally.accepted_engine += sum(p.from_engine for p in kept)


def register_completeness(
    dhis2: Dhis2Client, data_set: str, period: str, org_units: list[str]
) -> tuple[list[str], list[Finding]]:
    """Mark the data set complete for the period at each org unit whose values DHIS2
    accepted. Returns the org units registered and findings for those DHIS2 refused."""
    done: list[str] = []
    findings: list[Finding] = []
    batches = chunks(org_units, dhis2.settings.chunk_size)
    for number, batch in enumerate(batches, start=1):
        name = f"DHIS2 completeDataSetRegistrations POST ({number}/{len(batches)})"
        try:
            answer = dhis2.register_completeness(data_set, period, list(batch), name)
        except PeerError as exc:
            findings.append(_not_complete(data_set, period, list(batch), str(exc)))
            continue
        refused = {c.object for c in answer.conflicts if c.object and c.object in batch}
        if answer.aborted:
            refused = set(batch)
        done += [ou for ou in batch if ou not in refused]
        if refused:
            reasons = "; ".join(c.value for c in answer.conflicts[:5])
            findings.append(_not_complete(data_set, period, sorted(refused), reasons))
    return done, findings


def _complete(dhis2: Dhis2Client, job: Job, scope: list[str], result: DataSetResult) -> None:
    """Register completeness where DHIS2 took every value."""
    refused = {r.orgUnit for r in result.rejected}
    ready = [ou for ou in scope if ou not in refused]
    if ready:
        result.completeness_registered, findings = register_completeness(
            dhis2, job.data_set, job.period.iso, ready
        )
        result.preflight += findings


# -- small helpers ------------------------------------------------------------------------------


def _not_pushed(job: Job, dry_run: bool) -> DataSetResult:
    """A job refused before DHIS2 (wrong period type…) or fed by a CHT read that failed."""
    result = _base(job, dry_run)
    if job.problem:
        result.error, result.error_kind = f"not pushed: {job.problem}", job.problem_kind
    else:
        result.error = f"not pushed: {job.read_error}, so the totals would be partial"
        result.error_kind = "cht_read"
    return result


def held(coverage: list[OrgUnitCoverage], threshold: float | None) -> set[str]:
    """Org units whose sync coverage is below the threshold: not pushed this run."""
    if threshold is None:
        return set()
    return {c.orgUnit for c in coverage if c.expected and c.percent < threshold}


def _base(job: Job, dry_run: bool) -> DataSetResult:
    return DataSetResult(
        data_set=job.data_set, period=job.period.iso, status="error", dry_run=dry_run
    )


def _describe(job: Job, result: DataSetResult) -> DataSetResult:
    """What CHT gave for the job, added to what DHIS2 did with it."""
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


def _add_part(total: DataSetResult, part: DataSetResult) -> DataSetResult:
    """Add one batch's result to the data set's: counts add up, rows and findings join.
    Returns the part."""
    offset = total.values_sent
    total.counts.add(part.counts)
    for name in (
        "values_sent",
        "values_unchanged",
        "values_zero",
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
    total.unconfirmed += part.unconfirmed
    total.dhis2_version = total.dhis2_version or part.dhis2_version
    total.data_set_name = total.data_set_name or part.data_set_name
    if part.error and not total.error:
        total.error, total.error_status = part.error, part.error_status
        total.error_kind = part.error_kind
    for finding in part.preflight:
        _join_finding(total.preflight, finding)
    return part


def _join_finding(findings: list[Finding], finding: Finding) -> None:
    """One finding per (level, code): a later batch's ids are added to the first's."""
    same = next((f for f in findings if (f.level, f.code) == (finding.level, finding.code)), None)
    if same is None:
        findings.append(finding.model_copy())
        return
    if finding.message == same.message:
        return
    new = [i for i in finding.ids if i not in same.ids]
    same.ids += new
    if new:
        more = f" and {len(new) - 20} more" if len(new) > 20 else ""
        same.message += f" Also: {', '.join(new[:20])}{more}"


def _unreadable(result: DataSetResult, org_unit: str, exc: PeerError) -> None:
    _join_finding(
        result.preflight,
        Finding(
            level="warning",
            code="existing_values_unreadable",
            message=f"Could not read what DHIS2 holds for org unit {org_unit} ({exc}); its "
            "computed values were all sent, and its zeros sent as clears, so nothing stale "
            "stays there.",
            ids=[org_unit],
        ),
    )


def _not_complete(data_set: str, period: str, org_units: list[str], why: str) -> Finding:
    return Finding(
        level="warning",
        code="completeness_not_registered",
        message=f"DHIS2 did not mark data set {data_set} complete for {period} at "
        f"{', '.join(org_units)}: {why}",
        ids=org_units,
    )


__all__ += ["held", "post_plan", "preflight", "push_job", "read_stored"]
