"""RunReport → the ``application/json+openhim`` envelope OpenHIM core stores.

Rules from core's transaction schema and router (openhim-core-js v8.5.0
``src/model/transactions.js`` and ``src/middleware/router.js``): every body is a string;
every orchestration has a ``name`` and a ``request.timestamp``; timestamps carry a time
zone; ``properties`` are flat strings with no ``.`` or ``$`` in keys (MongoDB field
names).

Size: core keeps the route's whole answer, this envelope, as the body of its own
orchestration, and its API cuts every body at 15,000 characters for the console
(``truncateTransactionDetails``, src/api/transactions.js, ``truncateSize``). So the
whole envelope is kept under ``ENVELOPE_LIMIT`` characters, or core's copy of it stops
being JSON the console can show: bodies give up detail first, then steps are merged,
then grouped (``_fit``). The report's full detail is on the status page and in the
command line's JSON.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from mediator.model.report import Finding, RunReport
from mediator.model.values import iso, utcnow
from mediator.run.explained import row_command
from mediator.run.summary import cut, labels, problems, sentence
from mediator.settings.secrets import Scrubber

from .properties import envelope_status, properties
from .steps import orchestrations

__all__ = ["iso"]

CONTENT_TYPE = "application/json+openhim"
BODY_LIMIT = 15_000  # what core's API keeps of one body for the console
ENVELOPE_LIMIT = 14_500  # the whole envelope, serialized: under BODY_LIMIT with room
LIST_CAP = 20  # rejected rows shown in the response body per data set and period

# Inner response status per run status: Failed is 5xx so channel alerts on 500/5xx
# fire; partial success is 207, 2xx for clients but alertable on its own. A dry run
# that stored nothing is "Completed": told apart from a real Successful run in the
# console's list, where only the status shows.
INNER_STATUS: dict[str, int] = {
    "Successful": 200,
    "Completed": 200,
    "Completed with error(s)": 207,
    "Failed": 500,
}


def truncate(text: str, limit: int = BODY_LIMIT) -> str:
    """Cut ``text`` to ``limit`` characters in all, at a word, saying so."""
    return cut(text, limit, "[cut by the mediator]")


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


def report_body(report: RunReport, limit: int = BODY_LIMIT, *, detail: int = 2) -> str:
    """The response body: the summary in words first, then what each (data set, period)
    did, the problems with their fixes, and the rejected rows. ``detail`` 2 keeps the
    preflight findings and up to ``LIST_CAP`` rejected rows per result, 1 five rows and
    no findings (the problems say them), 0 the counts only. Valid JSON, within
    ``limit`` characters (fewer details until it is)."""
    names = report.data_set_names()
    body: dict[str, Any] = {
        "summary": sentence(report),
        "status": envelope_status(report),
        "dry_run": report.dry_run,
        "run_id": report.run_id,
        "trigger": report.trigger,
        "periods": report.periods,
        "data_sets": [{"id": ds, "name": names.get(ds)} for ds in report.data_sets],
        "totals": report.totals().model_dump(),
        "results": [_result_entry(r, detail) for r in report.results],
        "problems": [p.model_dump() for p in problems(report.diagnoses)],
        "findings": [f.model_dump() for f in report.findings],
        "cht": [c.model_dump(mode="json") for c in report.cht],
        "started": iso(report.started),
        "finished": iso(report.finished) if report.finished else None,
    }
    text = _json(body)
    if len(text) <= limit:
        return text
    if detail > 0:
        return report_body(report, limit, detail=detail - 1)
    return _shortest(report, body, limit)


def _result_entry(result: Any, detail: int) -> dict[str, Any]:
    """One (data set, period): what DHIS2 did, in counts; what went wrong, when it did."""
    entry: dict[str, Any] = {
        "data_set": result.data_set,
        "period": result.period,
        "status": result.status,
        "counts": result.counts.model_dump(),
        "values_sent": result.values_sent,
        "values_unchanged": result.values_unchanged,
        "values_zero": result.values_zero,
        "delivered": result.delivered,
        "rejected_count": len(result.rejected),
        "users_expected": result.users_expected,
        "users_synced": result.users_synced,
        "cht_interval": result.cht_interval,
    }
    rows = {2: LIST_CAP, 1: 5}.get(detail, 0)
    optional = {
        "error": result.error,
        "not_confirmed": len(result.unconfirmed),
        "preflight": [f.model_dump() for f in result.preflight] if detail >= 2 else [],
        "rejected": [  # each with the command that shows why its cell holds its number
            {**r.model_dump(exclude_none=True), "explain": row_command(result.data_set, r)}
            for r in result.rejected[:rows]
        ],
    }
    entry.update({k: v for k, v in optional.items() if v})
    return entry


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _shortest(report: RunReport, body: dict[str, Any], limit: int) -> str:
    """Still too long (a window of many periods): one line of counts per result."""
    body["results"] = [
        f"{e['data_set']} {e['period']}: {e['status']}, "
        + ", ".join(f"{n} {k}" for k, n in e["counts"].items())
        + f", {e['rejected_count']} rejected"
        + (f" ({cut(e['error'], 80)})" if e.get("error") else "")
        for e in body["results"]
    ]
    body.pop("findings", None)
    body.pop("cht", None)
    for problem in body["problems"]:
        problem["cause"] = cut(problem["cause"], 300)
        problem["fix"] = cut(problem["fix"], 300)
    body["note"] = "shortened to fit the console: the status page shows every detail"
    text = _json(body)
    if len(text) <= limit:
        return text
    keep = ("summary", "status", "dry_run", "run_id", "periods", "totals", "note")
    return _json({k: body[k] for k in keep})


def _response(status: int, body: str, now: datetime) -> dict[str, Any]:
    return {
        "status": status,
        "headers": {"content-type": "application/json"},
        "body": body,
        "timestamp": iso(now),
    }


def _size(envelope: Mapping[str, Any]) -> int:
    return len(json.dumps(envelope, ensure_ascii=False))


def _grouped(orchs: list[dict[str, Any]], keep: int, which: str = "") -> list[dict[str, Any]]:
    """The first ``keep`` steps, then one that names how many more there were."""
    if len(orchs) <= keep:
        return orchs
    rest = orchs[keep:]
    statuses = Counter(str(o.get("response", {}).get("status")) for o in rest)
    last = rest[-1]
    words = f" {which}" if which else ""
    summary = {
        "name": f"{len(rest)} more steps{words} (their counts are in the response body)",
        "request": {**rest[0]["request"], "body": ""},
        "response": {
            "status": max(int(o.get("response", {}).get("status") or 502) for o in rest),
            "headers": {},
            "body": _json({"statuses": dict(statuses)}),
            "timestamp": last.get("response", {}).get("timestamp", last["request"]["timestamp"]),
        },
    }
    return [*orchs[:keep], summary]


def _fit(
    envelope: dict[str, Any], report: RunReport, scrub: Scrubber, extra: Mapping[str, str]
) -> dict[str, Any]:
    """Give up detail until the whole envelope is under ``ENVELOPE_LIMIT``: the steps'
    chunk lists, the rejected rows in the body, most per-result properties, then the
    steps past the first few (grouped into one), then the body's per-result detail."""

    def fits() -> bool:
        return _size(envelope) <= ENVELOPE_LIMIT

    if not fits():
        envelope["orchestrations"] = orchestrations(report, scrub, detail=False)
    if not fits():
        envelope["properties"] = {**properties(report, results=6), **extra}
    if not fits():
        envelope["response"]["body"] = report_body(report, detail=1)
    if not fits():  # the steps of pairs that went through cleanly, as one
        named = labels(report)
        clean = {
            f"{named[r.data_set]} {r.period}: " for r in report.results if r.status == "success"
        }
        steps = envelope["orchestrations"]
        quiet = [o for o in steps if any(o["name"].startswith(p) for p in clean)]
        loud = [o for o in steps if o not in quiet]
        envelope["orchestrations"] = loud + _grouped(quiet, 0, "that went through cleanly")
    if not fits():
        envelope["response"]["body"] = report_body(report, detail=0)
    steps = envelope["orchestrations"]
    for keep in (24, 12, 6, 2):
        if fits():
            break
        envelope["orchestrations"] = _grouped(steps, keep)
    if not fits():
        envelope["response"]["body"] = ""
        room = ENVELOPE_LIMIT - _size(envelope)  # a body is a string in the envelope:
        body = report_body(report, limit=int(room * 0.8), detail=0)  # quotes escape
        envelope["response"]["body"] = body
    return envelope


def run_envelope(
    report: RunReport,
    *,
    urn: str,
    secrets: Iterable[str] = (),
    extra_properties: Mapping[str, str] | None = None,
    now: datetime | None = None,
    cht_url: str | None = None,  # kept for callers; CHT requests are known by their peer
) -> dict[str, Any]:
    """The envelope for a finished run, under ``ENVELOPE_LIMIT`` characters. Only free
    text is scrubbed (``scrub_report``, and the steps' error texts): the report's ids and
    numbers are shown as they are."""
    scrub = Scrubber(secrets)
    now = now or report.finished or utcnow()
    status = envelope_status(report)
    shown = scrub_report(report, scrub).model_copy(update={"exchanges": report.exchanges})
    envelope: dict[str, Any] = {
        "x-mediator-urn": urn,
        "status": status,
        "response": _response(INNER_STATUS[status], report_body(shown), now),
        "orchestrations": orchestrations(shown, scrub),
        "properties": {**properties(shown), **(extra_properties or {})},
    }
    _fit(envelope, shown, scrub, extra_properties or {})
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
