"""A (data set, period)'s ``DataSetResult``, put together: what CHT gave (``describe``),
the batches' results added up (``add_part``), findings joined by code."""

from __future__ import annotations

from mediator.http.errors import PeerError
from mediator.model.report import DataSetResult, Finding

from .jobs import Job


def not_pushed(job: Job, dry_run: bool) -> DataSetResult:
    """A job refused before DHIS2 (wrong period type…) or fed by a CHT read that failed."""
    result = base_result(job, dry_run)
    if job.problem:
        result.error, result.error_kind = f"not pushed: {job.problem}", job.problem_kind
    else:
        result.error = f"not pushed: {job.read_error}, so the totals would be partial"
        result.error_kind = "cht_read"
    return result


def base_result(job: Job, dry_run: bool) -> DataSetResult:
    return DataSetResult(
        data_set=job.data_set, period=job.period.iso, status="error", dry_run=dry_run
    )


def describe(job: Job, result: DataSetResult) -> DataSetResult:
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


def add_part(total: DataSetResult, part: DataSetResult) -> DataSetResult:
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
    total.chunks += part.chunks
    total.rejected += part.rejected
    total.unconfirmed += part.unconfirmed
    total.dhis2_version = total.dhis2_version or part.dhis2_version
    total.data_set_name = total.data_set_name or part.data_set_name
    if part.error and not total.error:
        total.error, total.error_status = part.error, part.error_status
        total.error_kind = part.error_kind
    for finding in part.preflight:
        join_finding(total.preflight, finding)
    return part


def join_finding(findings: list[Finding], finding: Finding) -> None:
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


def note_unreadable(result: DataSetResult, org_unit: str, exc: PeerError) -> None:
    join_finding(
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
