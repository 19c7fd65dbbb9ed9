"""Run orchestration: one run = periods × data sets, CHT read → engine → DHIS2.

Knows nothing of Flask or OpenHIM: callers pass a ``RunRequest`` and get a
``RunReport`` back. For each period the month's target docs are read once, page
by page, and fed to one ``Aggregation`` per data set.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from pydantic import BaseModel, Field

from .cht import ChtError, ChtReader
from .config import RuntimeConfig
from .engine import Aggregation, EngineError, data_set_ids, lineage_ids
from .models import DataValue, DataValueSet, Exchange, is_uid, utcnow
from .periods import Month
from .report import ChtRead, DataSetResult, Finding, RunReport


class RunInputError(ValueError):
    """The request cannot be run as asked (unknown data set, bad period…): a 400 / exit 2."""


class RunRequest(BaseModel):
    periods: list[Month] = Field(default_factory=list)  # empty: the previous completed month
    data_sets: list[str] = Field(default_factory=list)  # empty: the configured ones
    org_unit: str | None = None
    dry_run: bool | None = None  # None: the configured default
    trigger: str = "cli"  # cli | openhim | schedule


class Pusher(Protocol):
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
    ) -> DataSetResult: ...

    def close(self) -> None: ...


@dataclass
class PeriodData:
    """What the engine computed for one period, before anything is pushed."""

    month: Month
    read: ChtRead
    aggregations: dict[str, Aggregation] = field(default_factory=dict)

    def value_set(
        self, data_set: str, complete_date: str, human_readable: bool = False
    ) -> DataValueSet:
        return self.aggregations[data_set].result(complete_date, human_readable=human_readable)


def resolve_data_sets(app_settings: dict[str, Any], asked: list[str]) -> list[str]:
    defined = data_set_ids(app_settings)
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


def aggregate_period(
    reader: ChtReader,
    app_settings: dict[str, Any],
    places: list[dict[str, Any]],
    data_sets: list[str],
    month: Month,
    config: RuntimeConfig,
    org_unit: str | None,
) -> PeriodData:
    """Read the month's target docs page by page and aggregate every data set at once."""
    read = ChtRead(period=month.dhis2, places=len(places))
    data = PeriodData(month=month, read=read)
    try:
        for ds in data_sets:
            agg = Aggregation(
                app_settings,
                ds,
                month.dhis2,
                org_unit=org_unit,
                value_choices=config.value_choices,
            )
            agg.add_places(places)
            data.aggregations[ds] = agg
    except EngineError as exc:
        raise RunInputError(str(exc)) from None
    lineages: dict[str, tuple[str, ...] | str | None] = {}
    aggs = list(data.aggregations.values())
    try:
        for page in reader.target_pages(month):
            read.pages += 1
            read.target_docs += len(page)
            owners = [
                doc["owner"]
                for doc in page
                if isinstance(doc, dict) and isinstance(doc.get("owner"), str)
            ]
            unknown = [o for o in dict.fromkeys(owners) if o not in lineages]
            if unknown:
                read.owners_looked_up += len(unknown)
                for owner_id, owner_doc in reader.docs_by_id(unknown).items():
                    lineages[owner_id] = lineage_ids(owner_doc) if owner_doc else None
            for agg in aggs:
                for owner_id in agg.owners_unknown(owners):
                    agg.add_owner(owner_id, lineages.get(owner_id))
                agg.add_target_docs(page)
    except ChtError as exc:
        read.error = str(exc)
        return data
    for ds, agg in data.aggregations.items():
        read.docs_counted[ds] = agg.docs_counted
        read.skipped[ds] = dict(sorted(agg.skipped.items()))
    return data


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


def compute(
    request: RunRequest,
    config: RuntimeConfig,
    *,
    recorder: Callable[[Exchange], None] | None = None,
    reader: ChtReader | None = None,
) -> tuple[list[str], list[PeriodData]]:
    """Read CHT and aggregate; no DHIS2. Raises RunInputError / ChtError."""
    months = request.periods or [Month.previous_completed(config.timezone)]
    own_reader = reader is None
    reader = reader or ChtReader(config.cht, recorder=recorder)
    try:
        app_settings = reader.app_settings()
        data_sets = resolve_data_sets(app_settings, request.data_sets or config.data_sets)
        places = reader.places(request.org_unit)
        periods = []
        for month in months:
            data = aggregate_period(
                reader, app_settings, places, data_sets, month, config, request.org_unit
            )
            if recorder and data.read.owners_looked_up:
                recorder(_owners_exchange(reader, data.read))
            periods.append(data)
        return data_sets, periods
    finally:
        if own_reader:
            reader.close()


def execute(
    request: RunRequest,
    config: RuntimeConfig,
    *,
    pusher_factory: Callable[[RuntimeConfig, Callable[[Exchange], None]], Pusher] | None = None,
    today: date | None = None,
) -> RunReport:
    """Run it all and report. Raises RunInputError for requests that cannot run."""
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
    record = report.exchanges.append
    try:
        data_sets, periods = compute(request, config, recorder=record)
    except ChtError as exc:
        report.findings.append(Finding(level="error", code="cht_unreadable", message=str(exc)))
        report.finished = utcnow()
        return report
    report.data_sets = data_sets
    report.periods = [p.month.dhis2 for p in periods]
    report.cht = [p.read for p in periods]
    if pusher_factory is None:
        from .dhis2 import Dhis2Client

        def pusher_factory(cfg: RuntimeConfig, rec: Callable[[Exchange], None]) -> Pusher:
            if cfg.dhis2 is None:
                raise RunInputError("DHIS2 is not configured: set DHIS2_URL and credentials")
            return Dhis2Client(cfg.dhis2, recorder=rec)

    pusher = pusher_factory(config, record)
    try:
        for data in periods:
            for ds in data_sets:
                report.results.append(_push_one(pusher, data, ds, report.dry_run))
    finally:
        pusher.close()
    report.finished = utcnow()
    return report


def _push_one(pusher: Pusher, data: PeriodData, data_set: str, dry_run: bool) -> DataSetResult:
    period = data.month.dhis2
    if data.read.error:
        return DataSetResult(
            data_set=data_set,
            period=period,
            status="error",
            dry_run=dry_run,
            error="not pushed: reading CHT failed, so the totals would be partial "
            f"({data.read.error})",
        )
    agg = data.aggregations[data_set]
    rows = agg.data_values()
    try:
        result = pusher.push(
            data_set,
            period,
            rows,
            dry_run=dry_run,
            scope_org_units=agg.org_units,
            mapped=[m.row for m in agg.mappings],
            # an org unit CHT no longer maps keeps no stale numbers, unless one was asked for
            sweep_assigned=agg.org_unit is None,
        )
    except Exception as exc:  # noqa: BLE001 - one data set's failure must not stop the others
        return DataSetResult(
            data_set=data_set,
            period=period,
            status="error",
            dry_run=dry_run,
            values_computed=len(rows),
            error=str(exc) or type(exc).__name__,
        )
    result.values_computed = len(rows)
    return result
