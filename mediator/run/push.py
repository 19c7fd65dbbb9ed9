"""Steps 3 to 5 for one (data set, period): make DHIS2 hold exactly what was computed.

``push_job`` takes a job's aggregation org units in batches; ``push`` does one batch:
the preflight (the data set's metadata and this DHIS2 release's rules), what DHIS2
holds there (``read_stored``), the plan (``dhis2.plan``, pure), then ``post.post_plan``.
A bug in one job fails that job alone (``attempt``), logged with its traceback.

Given ``compare`` (an audit, ``run.audit``), every step runs as for a push up to the
plan, which is handed to ``compare`` with what it was made from (``Compared``); nothing
is posted and no completeness is registered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TypedDict, Unpack

from mediator.dhis2.answers import StoredValues
from mediator.dhis2.client import Dhis2Client
from mediator.dhis2.metadata import Combo, Key
from mediator.dhis2.plan import PushPlan, chunks, own_values, plan_push, sweep_org_units
from mediator.dhis2.preflight import Preflight, Server, check, needs_lock_exceptions
from mediator.http.client import RetryPolicy
from mediator.http.errors import BadBody, BadStatus, PeerError
from mediator.model.periods import Period, PeriodError
from mediator.model.report import DataSetResult, Finding, OrgUnitCoverage, RejectedRow, rollup
from mediator.model.values import DataValue, utcnow
from mediator.settings.config import RuntimeConfig

from .ahead import Ahead
from .jobs import Job
from .post import count_plan, post_plan, register_completeness
from .results import add_part, base_result, describe, not_pushed, note_unreadable

log = logging.getLogger(__name__)

ORG_UNITS_PER_PUSH = 250  # a push reads, plans and posts this many org units at a time
ORG_UNITS_PER_READ = 50  # keeps GET /api/dataValueSets URLs well under proxy limits
SINGLE_READ_RETRY = RetryPolicy(attempts=2, base_seconds=1.0, budget_seconds=5.0)


@dataclass(frozen=True)
class Compared:
    """One batch's steps 3 to 5 without posting: the plan, and what it was made from
    that the plan does not say (an audit's cells, ``run.audit.classify``)."""

    data_set: str
    period: str
    plan: PushPlan
    default_coc: str
    stored: StoredValues  # what DHIS2 holds in scope, and who stored each value
    planned_over: dict[Key, str]  # of that, what the plan was made against (own_values)
    unread: set[str]  # org units DHIS2 would not say what it holds at

    @property
    def left_alone(self) -> dict[Key, str]:
        """Values at org units CHT does not map that this integration user did not
        store: a number a person typed, which the plan leaves alone."""
        return {k: v for k, v in self.stored.held.items() if k not in self.planned_over}


Compare = Callable[[Compared], None]


def attempt(
    dhis2: Dhis2Client,
    job: Job,
    dry_run: bool,
    config: RuntimeConfig,
    compare: Compare | None = None,
) -> DataSetResult:
    """``push_job``, where a bug fails this (data set, period) alone: it is logged with its
    traceback, and the report says where to look; the other jobs still run."""
    try:
        return push_job(dhis2, job, dry_run, config, compare)
    except Exception as exc:  # noqa: BLE001 - one job's bug must not hide the others' results
        log.exception("unexpected error pushing %s %s", job.data_set, job.period.iso)
        result = base_result(job, dry_run)
        result.error = (
            f"internal error in the mediator ({type(exc).__name__}); the traceback is in the "
            "mediator's log"
        )
        result.error_kind = "internal"
        return describe(job, result)


def not_attempted(job: Job, dry_run: bool, cause: PeerError) -> DataSetResult:
    result = base_result(job, dry_run)
    result.error = f"not attempted: the run stopped earlier because {cause}"
    result.error_kind, result.error_status = "not_attempted", cause.status
    return describe(job, result)


def push_job(
    dhis2: Dhis2Client,
    job: Job,
    dry_run: bool,
    config: RuntimeConfig,
    compare: Compare | None = None,
) -> DataSetResult:
    """Steps 3–7 for one job, org units in batches, then the sweep of stale org units
    and, when asked, the completeness registration (``compare``: steps 3–5 only).

    While a batch is posted, the next one is read and planned (``run.ahead``): its org units
    are not the ones being posted, so what DHIS2 holds there cannot change meanwhile."""
    if job.problem or job.read_error:
        return describe(job, not_pushed(job, dry_run))
    agg = job.merged
    held_back = held(job.coverage, config.coverage_threshold)
    scope = [ou for ou in agg.org_units if ou not in held_back]
    mapped = [m.row for m in agg.mappings]
    result = base_result(job, dry_run)
    # an org unit CHT no longer maps keeps no stale numbers, unless one was asked for or
    # coverage holds some back (then "not produced" does not mean "gone")
    steps = _Steps(job, scope, mapped, dry_run, sweeping=agg.org_unit is None and not held_back)
    parts = _run_steps(dhis2, steps, result, compare)
    result.status = rollup([p.status for p in parts if p.status != "skipped"])
    for cov in job.coverage:
        cov.held = cov.orgUnit in held_back
    result.held_org_units = sorted(held_back)
    if config.complete_data_sets and not dry_run and not compare and result.status != "error":
        _complete(dhis2, job, scope, result)
    return describe(job, result)


@dataclass
class _Steps:
    """A job's batches of org units, then the sweep when there is one: each step is
    prepared on whichever client is given (the run's, or ``Ahead``'s fork)."""

    job: Job
    scope: list[str]
    mapped: list[tuple[str, str | None, str | None]]
    dry_run: bool
    sweeping: bool

    def __post_init__(self) -> None:
        self.batches = chunks(self.scope, ORG_UNITS_PER_PUSH) or [[]]  # none: preflight speaks

    def __len__(self) -> int:
        return len(self.batches) + self.sweeping

    def __call__(self, client: Dhis2Client, step: int) -> Prepared:
        ds, period, agg = self.job.data_set, self.job.period.iso, self.job.merged
        if step == len(self.batches):  # the sweep
            return prepare(
                client,
                ds,
                period,
                [],
                dry_run=self.dry_run,
                mapped=self.mapped,
                sweep_assigned=True,
                owned_org_units=agg.org_units,
            )
        batch = list(self.batches[step])
        rows = agg.data_values(units=batch)
        return prepare(
            client,
            ds,
            period,
            rows,
            dry_run=self.dry_run,
            scope_org_units=batch,
            mapped=self.mapped,
        )


def _run_steps(
    dhis2: Dhis2Client, steps: _Steps, result: DataSetResult, compare: Compare | None
) -> list[DataSetResult]:
    """Each step posted (or compared) in turn, the next one prepared meanwhile."""
    parts: list[DataSetResult] = []
    last_batch = len(steps.batches) - 1
    with Ahead[Prepared](dhis2) as ahead:
        ready = steps(dhis2, 0)
        for step in range(len(steps)):
            following = step + 1 < len(steps)
            if following and ready.plan is not None:  # the next step meanwhile
                ahead.start(steps, step + 1)
            part = finish(dhis2, ready, steps.dry_run, compare)
            parts.append(add_part(result, part))
            if step <= last_batch:
                result.values_computed += part.values_computed
            if part.status == "error" and (not part.values_sent or step == last_batch):
                # a data set problem (preflight, credentials): the other batches fail too;
                # or the last batch failed: no sweep
                break
            if following:
                ready = ahead.take() if ahead.started else steps(dhis2, step + 1)
    return parts


@dataclass
class Prepared:
    """One batch through steps 3 to 5 (``prepare``): its result so far, and the plan to
    post (``plan``), or none when the preflight blocked it or DHIS2 failed."""

    result: DataSetResult
    compared: Compared | None = None
    nothing_to_do: bool = False

    @property
    def plan(self) -> PushPlan | None:
        return self.compared.plan if self.compared else None


class Scope(TypedDict, total=False):
    """Where a push (or its ``prepare``) makes DHIS2 hold the rows, besides their own
    org units (``push``)."""

    scope_org_units: list[str] | None
    mapped: Iterable[tuple[str, str | None, str | None]] | None
    sweep_assigned: bool
    owned_org_units: Iterable[str]


def push(
    dhis2: Dhis2Client,
    data_set: str,
    period: str,
    rows: list[DataValue],
    *,
    dry_run: bool = False,
    compare: Compare | None = None,
    **scope: Unpack[Scope],
) -> DataSetResult:
    """Make DHIS2 hold exactly these rows for the mapped keys in scope (steps 3–7).

    ``mapped`` (dataElement, COC, AOC) lists the rows the engine maps for the data set;
    by default the combinations present in ``rows``. Values of other data elements are
    never touched. With ``sweep_assigned``, the org units assigned to the data set that
    CHT no longer maps are in scope too, but there only values this integration user
    stored (``storedBy``) are cleared: a number a person typed is left alone.
    ``owned_org_units`` are org units CHT maps that other batches push;
    ``scope_org_units``, org units in scope without a row. Never raises a DHIS2
    failure: it is reported in the result. ``compare`` takes the plan instead of
    posting it.
    """
    ready = prepare(dhis2, data_set, period, rows, dry_run=dry_run, **scope)
    return finish(dhis2, ready, dry_run, compare)


def prepare(
    dhis2: Dhis2Client,
    data_set: str,
    period: str,
    rows: list[DataValue],
    *,
    dry_run: bool = False,
    **where: Unpack[Scope],
) -> Prepared:
    """Steps 3 to 5 of ``push``: the preflight, what DHIS2 holds in scope, the plan.
    Posts nothing; a DHIS2 failure is in the result."""
    mapped = where.get("mapped")
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
            return Prepared(result)
        extra = where.get("scope_org_units") or []
        scope = list(dict.fromkeys([r.orgUnit for r in rows] + list(extra)))
        owned = where.get("owned_org_units", ())
        swept = _swept(dhis2, data_set, scope, owned) if where.get("sweep_assigned") else []
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
    except PeerError as exc:
        _failed(result, exc)
        return Prepared(result)
    compared = Compared(data_set, period, plan, pre.default_coc, stored, held_values, unread)
    return Prepared(result, compared, nothing_to_do=not rows)


def finish(
    dhis2: Dhis2Client, ready: Prepared, dry_run: bool, compare: Compare | None = None
) -> DataSetResult:
    """Steps 6 and 7 of ``push`` for a prepared batch: its plan posted, or handed to
    ``compare`` (an audit: nothing is posted). A DHIS2 failure is in the result."""
    result, compared = ready.result, ready.compared
    if compared is None:
        return result
    if compare is not None:  # an audit: the plan is the answer, nothing is posted
        compare(compared)
        count_plan(compared.plan, result)
        return result
    try:  # 6. and 7.
        post_plan(
            dhis2,
            result.data_set,
            compared.plan,
            dry_run,
            result,
            nothing_to_do=ready.nothing_to_do,
        )
    except PeerError as exc:
        _failed(result, exc)
    return result


def _failed(result: DataSetResult, exc: PeerError) -> None:
    result.status, result.error = "error", str(exc)
    result.error_status, result.error_kind = exc.status, exc.kind


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
    cleared (``dhis2.plan.plan_push``), so no stale number can stay."""
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
                note_unreadable(result, batch[0], exc)
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
                note_unreadable(result, ou, exc)
    return stored, unread


def _complete(dhis2: Dhis2Client, job: Job, scope: list[str], result: DataSetResult) -> None:
    """Register completeness where DHIS2 took every value."""
    refused = {r.orgUnit for r in result.rejected}
    ready = [ou for ou in scope if ou not in refused]
    if ready:
        result.completeness_registered, findings = register_completeness(
            dhis2, job.data_set, job.period.iso, ready
        )
        result.preflight += findings


def held(coverage: list[OrgUnitCoverage], threshold: float | None) -> set[str]:
    """Org units whose sync coverage is below the threshold: not pushed this run."""
    if threshold is None:
        return set()
    return {c.orgUnit for c in coverage if c.expected and c.percent < threshold}
