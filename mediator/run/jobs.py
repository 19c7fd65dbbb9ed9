"""Step 1 of a run: which (data set, period) pairs it does, and what each holds.

A ``Job`` is one data set for one period; it collects one aggregation per CHT instance
and what coverage found, and becomes one ``DataSetResult``. Jobs that share a month are
read together (``month_groups``), so each month of target docs is read once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from mediator.engine.aggregation import Aggregation, merge_into
from mediator.http.errors import PeerError
from mediator.model.periods import Month, Period, PeriodError, check_period_type, periods_touching
from mediator.model.report import ChtRead, OrgUnitCoverage
from mediator.model.values import DataValueSet
from mediator.settings.config import RuntimeConfig

from .request import RunInputError, RunRequest


@dataclass
class Job:
    """One (data set, period): what the engine computed for it, from every source."""

    data_set: str
    period: Period
    problem: str | None = None  # refused before reading CHT
    problem_kind: str | None = None  # http.PeerError.kind when DHIS2 failed to say its type
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
        """Every source's aggregation summed (computed once, on first use). With one
        source it is that source's; with several, a new one: no source's is changed."""
        aggs = list(self.aggs.values())
        if len(aggs) == 1:
            return aggs[0]
        first = aggs[0]
        total = Aggregation(
            first.settings,
            first.data_set,
            first.period,
            org_unit=first.org_unit,
            value_choices=first.value_choices,
        )
        for agg in aggs:
            merge_into(total, agg)
        return total

    def release(self) -> None:
        """Pushed: let the aggregations go before the next group is read."""
        self.aggs = {}
        self.__dict__.pop("merged", None)

    def value_set(self, complete_date: str, human_readable: bool = False) -> DataValueSet:
        return self.merged.result(complete_date, human_readable=human_readable)


@dataclass
class Computed:
    """What a run computed without DHIS2 (preview, /coverage)."""

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
            # DHIS2 has no such data set (the push says so), or there is no DHIS2
            # (preview): the periods asked for decide, else months
            period_type = period_type_of(ds) or (
                request.periods[0].period_type if request.periods else "Monthly"
            )
            check_period_type(period_type)
        except (PeriodError, PeerError) as exc:  # weekly; DHIS2 unreadable (named in exc)
            kind = exc.kind if isinstance(exc, PeerError) else None
            jobs += [
                Job(ds, p, problem=str(exc), problem_kind=kind)
                for p in _as_asked(request, config, now)
            ]
            continue
        jobs += _jobs_of(ds, period_type, request, config, now)
    return jobs


def _jobs_of(
    ds: str, period_type: str, request: RunRequest, config: RuntimeConfig, now: datetime
) -> list[Job]:
    if request.span is not None:
        return [Job(ds, p) for p in periods_touching(*request.span, period_type)]
    if not request.periods:
        latest = Period.latest_completed(period_type, config.timezone, now)
        return [Job(ds, latest.shift(-back)) for back in range(config.lookback_periods, -1, -1)]
    jobs = []
    for period in request.periods:
        if period.period_type == period_type:
            jobs.append(Job(ds, period))
            continue
        hint = Period.containing(period.first, period_type).iso
        problem = (
            f"period {period.iso} is {period.period_type} but data set {ds} is {period_type}: "
            f"ask for {hint}, or give a range with from/to"
        )
        jobs.append(Job(ds, period, problem=problem))
    return jobs


def _as_asked(request: RunRequest, config: RuntimeConfig, now: datetime) -> list[Period]:
    """The periods to report a refused data set under, when its own type is unknown."""
    if request.periods:
        return request.periods
    if request.span is not None:
        return periods_touching(*request.span, "Monthly")
    return [Period.latest_completed("Monthly", config.timezone, now)]


def month_groups(jobs: list[Job]) -> list[list[Job]]:
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
