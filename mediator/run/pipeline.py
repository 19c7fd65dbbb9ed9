"""A run, as its steps. Knows nothing of Flask, OpenHIM or the command line: a trigger
builds a ``RunRequest`` (``request``), ``execute`` returns a ``RunReport``.

    1. plan the jobs              jobs.plan_jobs: (data set, period) pairs, types from DHIS2
    2. read and aggregate CHT     read.ChtSide.groups: each month once, group by group
    3. preflight                  push.preflight: the data set's metadata, per DHIS2 version
    4. read what DHIS2 holds      push.read_stored: batches of org units, then one by one
    5. plan the push              dhis2.plan.plan_push: send, clear, unchanged (pure)
    6. post in chunks             post.post_plan: POST /api/dataValueSets per chunk
    7. map results to rows        dhis2.imports.attribute: which row DHIS2 refused, why
    8. report                     model.report.RunReport and diagnoses.diagnose

Steps 3 to 7 are one (data set, period) at a time (``push.push_job``); an audit
(``audit.audit``) is the same run stopped after step 5, each plan handed to it. A data set is
pushed in batches of org units (memory holds one batch of values, and the next, read
and planned on a helper thread while this one posts: ``run.ahead``) and then swept:
values this integration stored at org units CHT no longer maps are cleared. DHIS2
unreachable past its retry budget, or refusing the credentials, stops the run: the
rest is reported as not attempted, and nothing is retried in vain.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import nullcontext
from contextvars import ContextVar

from mediator.dhis2.client import Dhis2Client
from mediator.engine.aggregation import Aggregation
from mediator.http.client import Recorder
from mediator.http.errors import PeerError
from mediator.http.transport import Transport
from mediator.model.report import DataSetResult, Finding, RunReport
from mediator.model.values import Exchange, is_uid, utcnow
from mediator.settings.config import RuntimeConfig

from .diagnoses import diagnose
from .jobs import Computed
from .locks import RunLocks
from .push import Compare, attempt, not_attempted
from .read import ChtSide, MakeAggregation
from .request import RunInputError, RunRequest

__all__ = ["compute", "execute", "new_run_id"]


EXCHANGE_BODIES_KEPT = 300  # more than the OpenHIM envelope shows
EXCHANGE_BODY_CHARS = 30_000  # twice what the envelope shows of a body


# -- the run ----------------------------------------------------------------------------------


def execute(
    request: RunRequest,
    config: RuntimeConfig,
    *,
    transport: Transport | None = None,
    compare: Compare | None = None,
    aggregation: MakeAggregation = Aggregation,
) -> RunReport:
    """Run it all and report. Raises RunInputError for requests that cannot run, and
    RunBusyError when another run holds one of its (data set, period) pairs.
    ``transport``: DHIS2's, for tests. ``compare``: an audit's, which takes each plan
    instead of posting it (nothing is written, so no run lock is taken either).
    ``aggregation``: what sums each job (``read.ChtSide``; explain's watches a cell)."""
    _check_ids(request)
    report = RunReport(run_id=request.run_id or new_run_id(), trigger=request.trigger)
    report.dry_run = config.dry_run if request.dry_run is None else request.dry_run
    report.dry_run = report.dry_run or compare is not None
    report.org_unit = request.org_unit
    if config.dhis2 is None:
        raise RunInputError("DHIS2 is not configured: set DHIS2_URL and credentials")
    record = _recorder(report)
    dhis2 = Dhis2Client(config.dhis2, recorder=record, transport=transport)
    try:
        try:  # 1. plan the jobs (each data set's period type comes from DHIS2)
            cht = ChtSide(request, config, record, dhis2.period_type, aggregation=aggregation)
        except PeerError as exc:
            report.findings.append(Finding(level="error", code="cht_unreadable", message=str(exc)))
            return _finish(report)
        try:
            report.data_sets = cht.data_sets
            report.periods = list(dict.fromkeys(j.period.iso for j in cht.jobs))
            locks = (
                None
                if compare
                else RunLocks.for_run(config, run_id=report.run_id, trigger=request.trigger)
            )
            _push_all(cht, dhis2, report, locks, compare)
        finally:
            cht.close()
    finally:
        dhis2.close()
    return _finish(report)


def _push_all(
    cht: ChtSide,
    dhis2: Dhis2Client,
    report: RunReport,
    locks: RunLocks | None,
    compare: Compare | None = None,
) -> None:
    """2.–7. for every job, group by group, under the run locks of its DHIS2 server."""
    config = cht.config
    results: dict[int, DataSetResult] = {}
    stopped: PeerError | None = None
    keys = [j.key for j in cht.jobs if j.problem is None]
    with locks.hold(keys) if locks else nullcontext():
        for group in cht.groups():  # 2. read and aggregate CHT
            for job in group:
                if stopped is not None:
                    results[id(job)] = not_attempted(job, report.dry_run, stopped)
                else:
                    token = _JOB.set((job.data_set, job.period.iso))
                    try:
                        results[id(job)] = attempt(dhis2, job, report.dry_run, config, compare)
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
    aggregation: MakeAggregation = Aggregation,
) -> Computed:
    """Steps 1 and 2 only: read CHT and aggregate every job, no DHIS2 (preview,
    /coverage). Raises RunInputError / PeerError; a failed source's jobs carry
    ``read_error``."""
    cht = ChtSide(request, config, recorder, period_type_of, aggregation=aggregation)
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
