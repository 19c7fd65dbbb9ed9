"""The transaction's properties: flat strings an operator scans in the console's
Properties box (the summary, the counts, one line per data set and period, each problem
once with its periods and its fix), and the status the envelope gives the run."""

from __future__ import annotations

from collections import Counter

from mediator.model.report import RunReport
from mediator.run.summary import cut, labels, problems, sentence

PROPERTY_CHARS = 500
RESULT_PROPERTIES = 24  # per (data set, period) status lines shown as properties


def _key(text: str) -> str:
    return text.replace(".", "_").replace("$", "_")


def envelope_status(report: RunReport) -> str:
    """The run's status, but "Completed" for a dry run that would have succeeded."""
    return "Completed" if report.dry_run and report.status == "Successful" else report.status


def properties(report: RunReport, *, results: int = RESULT_PROPERTIES) -> dict[str, str]:
    """Flat strings an operator scans in the console's Properties box: the summary, the
    counts, each problem once with its periods and its fix, never cut mid-word."""
    totals = report.totals()
    results_of = report.results
    names = labels(report)
    props: dict[str, str] = {
        "summary": cut(sentence(report), PROPERTY_CHARS, "(see the response body)"),
        "status": envelope_status(report),
        "dry run": "yes: DHIS2 checked the values and stored nothing" if report.dry_run else "no",
        "trigger": report.trigger,
        "run id": report.run_id,
        "periods": ", ".join(report.periods) or "none",
        "data sets": ", ".join(names.get(ds, ds) for ds in report.data_sets) or "none",
        "org unit filter": report.org_unit or "all",
        "imported": str(totals.imported),
        "updated": str(totals.updated),
        "deleted": str(totals.deleted),
        "ignored": str(totals.ignored),
        "values sent": str(sum(r.values_sent for r in results_of)),
        "values already right": str(sum(r.values_unchanged + r.values_zero for r in results_of)),
        "rejected rows": str(sum(len(r.rejected) for r in results_of)),
        "conflicts": str(sum(len(r.conflicts) for r in results_of)),
        "target docs read": str(sum(c.target_docs for c in report.cht)),
    }
    unconfirmed = sum(len(r.unconfirmed) for r in results_of)
    if unconfirmed:
        props["rows not confirmed"] = str(unconfirmed)
    props.update(_coverage_properties(report))
    props.update(_result_properties(report, results))
    said: dict[str, list[str]] = {}
    for problem in problems(report.diagnoses):
        said.setdefault(_key(f"problem: {problem.title}"), []).append(problem.text())
    for key, texts in said.items():  # one property per title, each problem in it once
        props[key] = cut(
            " Also: ".join(texts), PROPERTY_CHARS, "(the whole text is in the response body)"
        )
    errors = [f.message for f in report.findings if f.level == "error"]
    errors += [
        f"{r.data_set} {r.period}: {r.error}" for r in results_of if r.status == "error" and r.error
    ]
    if errors:
        props["error"] = cut(errors[0], PROPERTY_CHARS)
    return props


def _coverage_properties(report: RunReport) -> dict[str, str]:
    props: dict[str, str] = {}
    by_period: dict[str, tuple[int, int]] = {}  # the same users feed every data set
    for result in report.results:
        if result.users_expected > by_period.get(result.period, (0, 0))[0]:
            by_period[result.period] = (result.users_expected, result.users_synced)
    if by_period:
        props["CHWs synced"] = cut(
            "; ".join(
                f"{period}: {synced} of {expected} ({100 * synced / expected:.0f}%)"
                for period, (expected, synced) in by_period.items()
            ),
            PROPERTY_CHARS,
        )
    others = max((r.users_not_expected for r in report.results), default=0)
    if others:
        props["users not expected"] = (
            f"{others} CHT users write no target docs (online users, and users whose roles "
            "may not view tasks or analytics): coverage does not count them"
        )
    held = sorted({ou for r in report.results for ou in r.held_org_units})
    if held:
        props["org units held"] = cut(f"{len(held)}: {', '.join(held)}", PROPERTY_CHARS)
    intervals = sorted({f"{r.period}: {r.cht_interval}" for r in report.results if r.cht_interval})
    if intervals:
        props["CHT intervals"] = cut(", ".join(intervals), PROPERTY_CHARS)
    skipped: Counter[str] = Counter()
    for result in report.results:  # the same doc is skipped once per data set: the most
        for reason, count in result.skipped.items():
            skipped[reason] = max(skipped[reason], count)
    props["docs skipped"] = str(sum(skipped.values()))
    for reason, count in sorted(skipped.items()):
        props[_key(f"skipped {reason}")] = str(count)
    return props


def _result_properties(report: RunReport, limit: int) -> dict[str, str]:
    """One line per (data set, period): its status and its counts in words."""
    props: dict[str, str] = {}
    for result in report.results[:limit]:
        c = result.counts
        if result.status == "error":
            state = f"not pushed: {result.error}" if result.error else "error"
        else:
            state = (
                f"{result.status}: {c.imported} imported, {c.updated} updated, {c.deleted} "
                f"deleted, {result.values_unchanged + result.values_zero} already right, "
                f"{len(result.rejected)} rejected"
            )
        props[_key(f"{result.data_set} {result.period}")] = cut(state, 300)
    if len(report.results) > limit:
        props["more data sets and periods"] = (
            f"{len(report.results) - limit} more: see the response body"
        )
    return props
