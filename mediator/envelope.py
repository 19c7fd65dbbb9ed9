"""RunReport → the ``application/json+openhim`` envelope OpenHIM core stores.

Rules from core's transaction schema and router (openhim-core-js v8.5.0
``src/model/transactions.js`` and ``src/middleware/router.js``): every body is a string;
every orchestration has a ``name`` and a ``request.timestamp``; timestamps carry a time
zone; ``properties`` are flat strings with no ``.`` or ``$`` in keys (MongoDB field
names). The console cuts each body at 15,000 characters and core caps one transaction's
bodies at 15 MiB, storing the envelope twice (our orchestrations, then core's copy of
the raw envelope), so each body is capped here and the whole envelope stays far below
that.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from .models import Exchange, utcnow
from .report import Finding, RunReport
from .secrets import Scrubber, mask_headers, mask_members, mask_query

CONTENT_TYPE = "application/json+openhim"
BODY_LIMIT = 15_000
TOTAL_BODY_BUDGET = 5 * 1024 * 1024  # bytes of all bodies; core stores them twice, cap 15 MiB
MAX_ORCHESTRATIONS = 200
LIST_CAP = 50  # conflicts / rejected rows kept per data set in the response body

# Inner response status per run status: Failed is 5xx so channel alerts on
# 500/5xx fire; partial success is 207, 2xx for clients but alertable on its own.
INNER_STATUS: dict[str, int] = {
    "Successful": 200,
    "Completed with error(s)": 207,
    "Failed": 500,
}


def iso(moment: datetime | None = None) -> str:
    """ISO 8601 with a time zone: core's JS ``Date`` reads a bare time as local time."""
    moment = moment or utcnow()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds")


def truncate(text: str, limit: int = BODY_LIMIT) -> str:
    """Cut ``text`` to ``limit`` characters in all, saying how much was dropped."""
    if len(text) <= limit:
        return text
    marker = f"\n[truncated by mediator: {limit} of {len(text)} characters kept]"
    return text[: max(0, limit - len(marker))] + marker


def scrub_report(report: RunReport, scrub: Scrubber) -> RunReport:
    """A copy of the report whose free text (messages, errors, DHIS2's reasons and the
    diagnoses built from them) went through ``scrub``; ids, names, numbers and periods
    are never touched, so a place id that contains a password stays as it is. The
    exchanges are left out: each is masked where it becomes an orchestration."""

    def findings(items: list[Finding]) -> list[Finding]:
        return [f.model_copy(update={"message": scrub.text(f.message)}) for f in items]

    results = [
        r.model_copy(
            update={
                "error": scrub.optional(r.error),
                "preflight": findings(r.preflight),
                "conflicts": [
                    c.model_copy(update={"value": scrub.text(c.value)}) for c in r.conflicts
                ],
                "rejected": [
                    x.model_copy(update={"reason": scrub.text(x.reason)}) for x in r.rejected
                ],
            }
        )
        for r in report.results
    ]
    return report.model_copy(
        update={
            "findings": findings(report.findings),
            "cht": [c.model_copy(update={"error": scrub.optional(c.error)}) for c in report.cht],
            "diagnoses": [
                d.model_copy(update={"cause": scrub.text(d.cause), "fix": scrub.text(d.fix)})
                for d in report.diagnoses
            ],
            "results": results,
            "exchanges": [],
        }
    )


def _key(text: str) -> str:
    return text.replace(".", "_").replace("$", "_")


def properties(report: RunReport) -> dict[str, str]:
    """Flat strings an operator scans in the console's Properties box."""
    totals = report.totals()
    skipped: dict[str, Counter[str]] = {}  # data set -> reason -> docs, all periods
    counted: Counter[str] = Counter()
    for result in report.results:
        counted[result.data_set] += result.docs_counted
        skipped.setdefault(result.data_set, Counter()).update(result.skipped)
    props: dict[str, str] = {
        "run id": report.run_id,
        "status": report.status,
        "trigger": report.trigger,
        "period": ", ".join(report.periods) or "-",
        "data sets": ", ".join(report.data_sets) or "-",
        "org unit filter": report.org_unit or "all",
        "dry run": "true" if report.dry_run else "false",
        "imported": str(totals.imported),
        "updated": str(totals.updated),
        "ignored": str(totals.ignored),
        "deleted": str(totals.deleted),
        "conflicts": str(sum(len(r.conflicts) for r in report.results)),
        "rejected rows": str(sum(len(r.rejected) for r in report.results)),
        "values sent": str(sum(r.values_sent for r in report.results)),
        "values unchanged": str(sum(r.values_unchanged for r in report.results)),
        "org units": str(len({c.orgUnit for r in report.results for c in r.coverage})),
        "target docs read": str(sum(c.target_docs for c in report.cht)),
    }
    by_period: dict[str, tuple[int, int]] = {}  # the same users feed every data set
    for result in report.results:
        if result.users_expected > by_period.get(result.period, (0, 0))[0]:
            by_period[result.period] = (result.users_expected, result.users_synced)
    if by_period:
        props["users synced"] = truncate(
            ", ".join(
                f"{period}: {synced} of {expected} ({100 * synced / expected:.0f}%)"
                for period, (expected, synced) in by_period.items()
            ),
            500,
        )
    others = max((r.users_not_expected for r in report.results), default=0)
    if others:
        props["users not expected"] = (
            f"{others} CHT users write no target docs (online users, and users whose roles "
            "may not view tasks or analytics): coverage does not count them"
        )
    held = sorted({ou for r in report.results for ou in r.held_org_units})
    if held:
        props["org units held"] = truncate(f"{len(held)}: {', '.join(held)}", 500)
    intervals = {f"{r.period}: {r.cht_interval}" for r in report.results if r.cht_interval}
    if intervals:
        props["CHT intervals"] = truncate(", ".join(sorted(intervals)), 500)
    # the same doc is skipped once per data set: totals are per data set, never summed
    if len(skipped) <= 1:
        reasons = next(iter(skipped.values()), Counter())
        props["docs skipped"] = str(sum(reasons.values()))
        for reason, count in sorted(reasons.items()):
            props[_key(f"skipped {reason}")] = str(count)
    else:
        props["docs skipped"] = ", ".join(f"{ds}: {sum(c.values())}" for ds, c in skipped.items())
        for data_set, reasons in skipped.items():
            for reason, count in sorted(reasons.items()):
                props[_key(f"skipped {data_set} {reason}")] = str(count)
    counted = Counter({ds: n for ds, n in counted.items() if n})
    if counted:
        props["docs counted"] = ", ".join(f"{ds}: {n}" for ds, n in counted.items())
    several_periods = len({r.period for r in report.results}) > 1
    for result in report.results:
        label = f"data set {result.data_set}" + (f" {result.period}" if several_periods else "")
        state = result.status + (f": {result.error}" if result.error else "")
        props[_key(label)] = truncate(state, 500)
    # one line per kind of problem, with a count, the cause and the fix
    kinds: dict[str, list[str]] = {}
    for diagnosis in report.diagnoses:
        label = _key(f"problem: {diagnosis.title}")
        kinds.setdefault(label, []).append(
            f"{diagnosis.count} × {diagnosis.cause} Fix: {diagnosis.fix}"
        )
    for label, lines in kinds.items():
        props[label] = truncate(" | ".join(dict.fromkeys(lines)), 500)
    errors = [f.message for f in report.findings if f.level == "error"]
    errors += [f"CHT {c.period}: {c.error}" for c in report.cht if c.error]
    errors += [
        f"{r.data_set} {r.period}: {r.error}"
        for r in report.results
        if r.status == "error" and r.error
    ]
    if errors:
        props["error"] = truncate(errors[0], 500)
    return props


def report_body(report: RunReport, limit: int = BODY_LIMIT) -> str:
    """The run report as JSON text, always valid JSON within ``limit`` characters.

    What is too long for the console is shortened step by step: long lists are cut,
    then the per-org-unit coverage tables give way (GET /coverage serves them), then
    the rows; the counts, statuses and diagnoses stay.
    """
    data: dict[str, Any] = {"status": report.status, **report.model_dump(mode="json")}
    data["totals"] = report.totals().model_dump()
    text = json.dumps(data, ensure_ascii=False)
    if len(text) <= limit:
        return text
    results = data.get("results", [])
    for result in results:
        for name in ("conflicts", "rejected", "preflight", "coverage"):
            _cap(result, name, LIST_CAP)
        for row in result.get("coverage", []):
            _cap(row, "missing", 10)
            _cap(row, "places", 3)
    for item in data.get("findings", []) + data.get("diagnoses", []):
        _cap(item, "ids", LIST_CAP)
    steps: list[Callable[[dict[str, Any]], None]] = [_drop_coverage, _cap_rows, _drop_rows]
    for step in steps:
        text = json.dumps(data, ensure_ascii=False)
        if len(text) <= limit:
            return text
        for result in results:
            step(result)
    text = json.dumps(data, ensure_ascii=False)
    if len(text) <= limit:
        return text
    summary = {
        "status": report.status,
        "run_id": report.run_id,
        "periods": report.periods,
        "totals": data["totals"],
        "results": [
            {k: r.get(k) for k in ("data_set", "period", "status", "error", "counts")}
            for r in results
        ],
        "note": "the full report was too long for the console; see the orchestrations",
    }
    return truncate(json.dumps(summary, ensure_ascii=False), limit)


def _drop_coverage(result: dict[str, Any]) -> None:
    _drop(result, "coverage", "GET /coverage?period=<period> serves the table")


def _cap_rows(result: dict[str, Any]) -> None:
    _cap(result, "rejected", 10)
    _cap(result, "conflicts", 10)


def _drop_rows(result: dict[str, Any]) -> None:
    for name in ("rejected", "conflicts"):
        _drop(result, name, "see the DHIS2 orchestrations of this transaction")
    _drop(result, "preflight", "see the diagnoses")


def _cap(item: dict[str, Any], name: str, cap: int) -> None:
    values = item.get(name)
    if isinstance(values, list) and len(values) > cap:
        item[name] = values[:cap]
        item[f"{name}_omitted"] = len(values) - cap + item.get(f"{name}_omitted", 0)


def _drop(item: dict[str, Any], name: str, where: str) -> None:
    values = item.pop(name, None)
    if values:
        item[f"{name}_omitted"] = len(values) + item.get(f"{name}_omitted", 0)
        item[f"{name}_note"] = where


def _request(ex: Exchange) -> dict[str, Any]:
    parts = urlsplit(ex.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {
        "host": parts.hostname or "",
        "port": str(port),
        "path": ex.path or parts.path,
        "querystring": mask_query(ex.querystring or parts.query),
        "method": ex.method.upper(),
        "headers": mask_headers(ex.request_headers),
        "body": truncate(mask_members(ex.request_body)),
        "timestamp": iso(ex.started),
    }


def _response_body(ex: Exchange, scrub: Scrubber) -> str:
    """A peer's error body is free text from outside: scrubbed. Any other body is
    data (an import summary, target docs): only members named like a credential
    are masked."""
    body = mask_members(ex.response_body)
    return scrub.text(body) if ex.status is None or ex.status >= 400 else body


def _orchestration(ex: Exchange, scrub: Scrubber) -> dict[str, Any]:
    orch: dict[str, Any] = {
        "name": ex.name or f"{ex.method} {ex.path}",
        "request": _request(ex),
    }
    if ex.status is not None:
        orch["response"] = {
            "status": ex.status,
            "headers": mask_headers(ex.response_headers),
            "body": truncate(_response_body(ex, scrub)),
            "timestamp": iso(ex.finished or ex.started),
        }
    if ex.error:
        orch["error"] = {"message": truncate(scrub.text(ex.error), 2000), "stack": ""}
    return orch


def _is_cht(ex: Exchange, cht_url: str | None) -> bool:
    if cht_url and ex.url.startswith(cht_url.rstrip("/")):
        return True
    return ex.name.lower().startswith("cht")


def _cht_summary(exchanges: list[Exchange], report: RunReport, scrub: Scrubber) -> dict[str, Any]:
    """One orchestration for all CHT reads: a national run makes thousands."""
    first, last = exchanges[0], exchanges[-1]
    statuses = Counter(str(ex.status) if ex.status is not None else "no answer" for ex in exchanges)
    paths = Counter(ex.path for ex in exchanges)
    failed = [ex for ex in exchanges if ex.error or (ex.status or 0) >= 400]
    summary = {
        "requests": len(exchanges),
        "statuses": dict(statuses),
        "paths": dict(paths.most_common(20)),
        "reads": [
            {**read.model_dump(mode="json"), "error": scrub.optional(read.error)}
            for read in report.cht
        ],
        "first_errors": [
            {"path": ex.path, "status": ex.status, "error": scrub.optional(ex.error)}
            for ex in failed[:5]
        ],
    }
    worst = max((ex.status or 0 for ex in exchanges), default=200)
    orch = {
        "name": f"CHT reads ({len(exchanges)} requests)",
        "request": {**_request(first), "body": ""},
        "response": {
            "status": worst if worst else 502,
            "headers": {"content-type": "application/json"},
            "body": truncate(json.dumps(summary, ensure_ascii=False)),
            "timestamp": iso(last.finished or last.started),
        },
    }
    if failed and failed[0].error:
        orch["error"] = {"message": truncate(scrub.text(failed[0].error or ""), 2000), "stack": ""}
    return orch


def orchestrations(
    report: RunReport, scrub: Scrubber, cht_url: str | None = None
) -> list[dict[str, Any]]:
    """CHT reads summarised; every other request (DHIS2) with its bodies, in order."""
    cht = [ex for ex in report.exchanges if _is_cht(ex, cht_url)]
    others = [ex for ex in report.exchanges if not _is_cht(ex, cht_url)]
    result: list[dict[str, Any]] = [_cht_summary(cht, report, scrub)] if cht else []
    keep = others[:MAX_ORCHESTRATIONS]
    result.extend(_orchestration(ex, scrub) for ex in keep)
    rest = others[MAX_ORCHESTRATIONS:]
    if rest:
        statuses = Counter(str(ex.status) for ex in rest)
        result.append(
            {
                "name": f"{len(rest)} more requests (bodies not kept)",
                "request": {**_request(rest[0]), "body": ""},
                "response": {
                    "status": max((ex.status or 0 for ex in rest), default=0) or 502,
                    "headers": {},
                    "body": json.dumps({"statuses": dict(statuses)}),
                    "timestamp": iso(rest[-1].finished or rest[-1].started),
                },
            }
        )
    _enforce_budget(result)
    return result


def _enforce_budget(orchs: list[dict[str, Any]], budget: int = TOTAL_BODY_BUDGET) -> None:
    used = 0
    for orch in orchs:
        for part in ("request", "response"):
            section = orch.get(part)
            if not section or not section.get("body"):
                continue
            size = len(section["body"].encode("utf-8"))
            if used + size > budget:
                section["body"] = "[omitted by mediator: envelope body budget reached]"
            else:
                used += size


def _response(status: int, body: str, now: datetime) -> dict[str, Any]:
    return {
        "status": status,
        "headers": {"content-type": "application/json"},
        "body": body,
        "timestamp": iso(now),
    }


def run_envelope(
    report: RunReport,
    *,
    urn: str,
    secrets: Iterable[str] = (),
    cht_url: str | None = None,
    extra_properties: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The envelope for a finished run. Only free text is scrubbed (``scrub_report``,
    and the orchestrations' error bodies): the report's ids and numbers are shown as
    they are."""
    scrub = Scrubber(secrets)
    now = now or report.finished or utcnow()
    status = report.status
    shown = scrub_report(report, scrub)
    envelope: dict[str, Any] = {
        "x-mediator-urn": urn,
        "status": status,
        "response": _response(INNER_STATUS[status], report_body(shown), now),
        "orchestrations": orchestrations(report, scrub, cht_url),
        "properties": {**properties(shown), **(extra_properties or {})},
    }
    if status == "Failed":
        # `error` makes core queue the transaction for auto-retry when the channel
        # enables it; runs are idempotent per period (DHIS2 upserts), so that is safe.
        envelope["error"] = {"message": envelope["properties"].get("error", "run failed")}
    return envelope


def error_envelope(
    *,
    urn: str,
    http_status: int,
    message: str,
    now: datetime | None = None,
    secrets: Iterable[str] = (),
    extra_properties: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A request that never became a run (bad input 400, configuration or crash 500).
    No ``error`` key for 4xx: retrying the same bad request cannot help. The message
    may carry an exception's text: it is scrubbed."""
    message = Scrubber(secrets).text(message)
    body = json.dumps({"status": "Failed", "error": message}, ensure_ascii=False)
    envelope: dict[str, Any] = {
        "x-mediator-urn": urn,
        "status": "Failed",
        "response": _response(http_status, truncate(body), now or utcnow()),
        "orchestrations": [],
        "properties": {"status": "Failed", "error": truncate(message, 500)},
    }
    envelope["properties"].update(extra_properties or {})
    if http_status >= 500:
        envelope["error"] = {"message": truncate(message, 2000)}
    return envelope


def processing_envelope(
    *, urn: str, run_id: str, properties: Mapping[str, str], now: datetime | None = None
) -> dict[str, Any]:
    """Async mode: answer at once; the transaction is updated when the run ends."""
    body = json.dumps({"status": "Processing", "run_id": run_id})
    return {
        "x-mediator-urn": urn,
        "status": "Processing",
        "response": _response(202, body, now or utcnow()),
        "orchestrations": [],
        "properties": {"status": "Processing", "run id": run_id, **properties},
    }


def transaction_update(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``PUT /transactions/:id`` that replaces the Processing answer."""
    update = {
        key: envelope[key]
        for key in ("status", "response", "orchestrations", "properties", "error")
        if key in envelope
    }
    return update


def transaction_document(
    envelope: Mapping[str, Any],
    *,
    request: Mapping[str, Any],
    channel_id: str | None,
) -> dict[str, Any]:
    """A whole transaction for ``POST /transactions``, for a run that did not come
    through core (the schedule's fallback). Rerunnable only with a channel."""
    doc: dict[str, Any] = {
        "status": envelope["status"],
        "request": dict(request),
        "response": envelope["response"],
        "orchestrations": envelope.get("orchestrations", []),
        "properties": envelope.get("properties", {}),
        "canRerun": channel_id is not None,
    }
    if channel_id is not None:
        doc["channelID"] = channel_id
    if "error" in envelope:
        doc["error"] = envelope["error"]
    return doc
