"""The run's requests as the steps an operator follows in the OpenHIM console.

Not one orchestration per HTTP request (a national month makes hundreds): one for
reading CHT, one for DHIS2's server, user and data sets, then per (data set, period)
one for reading what DHIS2 holds and one for the push, each named with the data set's
name and id and the period, with a short address (no query: the console puts it in its
table and a long one pushes the Status column off screen) and the real status: the
worst HTTP status of its requests. The body says what the step did in numbers, with
DHIS2's own import counts per chunk::

    {"values_sent": 25, "imported": 25, ..., "chunks": [{"chunk": "1/1", "status": 200,
     "imported": 25, "updated": 0, "ignored": 0, "deleted": 0, "conflicts": 0}]}
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mediator.model.report import ChunkCount, DataSetResult, RunReport
from mediator.model.values import Exchange, iso
from mediator.run.explained import row_command
from mediator.run.summary import cut, labels
from mediator.settings.secrets import Scrubber

Orchestration = dict[str, Any]
_SERVER_PATHS = ("/api/system/info", "/api/me", "/api/systemSettings/", "/api/dataSets/")
_READS = ("/api/dataValueSets", "/api/lockExceptions")


def orchestrations(
    report: RunReport, scrub: Scrubber, *, detail: bool = True
) -> list[Orchestration]:
    """The steps, in the order they happened. ``detail`` False leaves the per-chunk
    lists and rejected examples out of the bodies (for a smaller envelope)."""
    out: list[Orchestration] = []
    cht = [ex for ex in report.exchanges if ex.peer == "CHT"]
    if cht:
        out.append(_cht_step(cht, report, scrub))
    dhis2 = [ex for ex in report.exchanges if ex.peer == "DHIS2"]
    server = [ex for ex in dhis2 if ex.path.startswith(_SERVER_PATHS)]
    if server:
        out.append(_server_step(server, report, scrub))
    results = {(r.data_set, r.period): r for r in report.results}
    named = labels(report)
    pairs: dict[tuple[str, str], list[Exchange]] = {}
    for ex in dhis2:
        if ex.data_set and ex.period and not ex.path.startswith(_SERVER_PATHS):
            pairs.setdefault((ex.data_set, ex.period), []).append(ex)
    for (data_set, period), exchanges in pairs.items():
        result = results.get((data_set, period))
        label = f"{named.get(data_set, data_set)} {period}"
        reads = [ex for ex in exchanges if ex.method == "GET" and ex.path.startswith(_READS)]
        posts = [ex for ex in exchanges if ex not in reads]
        if reads:
            out.append(_read_step(label, reads, result, scrub, pushed=bool(posts)))
        if posts:
            out.append(_push_step(label, posts, result, scrub, detail))
    return out


def _base(
    name: str, exchanges: list[Exchange], body: dict[str, Any], scrub: Scrubber
) -> Orchestration:
    first, last = exchanges[0], exchanges[-1]
    parts = urlsplit(first.url)
    statuses = [ex.status for ex in exchanges if ex.status is not None]
    failed = [ex for ex in exchanges if ex.error]
    orch: Orchestration = {
        "name": name,
        "request": {
            "host": parts.hostname or "",
            "port": str(parts.port or (443 if parts.scheme == "https" else 80)),
            "path": first.path,
            "querystring": "",
            "method": first.method.upper(),
            "headers": {},
            "body": _requests_line(exchanges) if len(exchanges) > 1 else "",
            "timestamp": _iso(first),
        },
        "response": {
            "status": max([*statuses, *([502] * sum(ex.status is None for ex in failed))] or [502]),
            "headers": {},
            "body": json.dumps(_nonzero(body), ensure_ascii=False, separators=(",", ":")),
            "timestamp": _iso(last, finished=True),
        },
    }
    if failed:
        orch["error"] = {"message": cut(scrub.text(failed[-1].error or ""), 300), "stack": ""}
    return orch


def _nonzero(body: dict[str, Any]) -> dict[str, Any]:
    """Only the counts that say something: zeros, empty lists and all-200 statuses go."""
    kept = {k: v for k, v in body.items() if v not in (0, [], None, {}) or k == "values_sent"}
    if set(kept.get("statuses", {})) == {"200"}:
        kept.pop("statuses")
    return kept


def _requests_line(exchanges: list[Exchange]) -> str:
    """What was asked, in a line: each method and path with how many times."""
    asked = Counter(f"{ex.method} {ex.path}" for ex in exchanges)
    return "; ".join(f"{what}" + (f" ×{n}" if n > 1 else "") for what, n in asked.items())


def _iso(ex: Exchange, finished: bool = False) -> str:
    return iso((ex.finished or ex.started) if finished else ex.started)


def _statuses(exchanges: list[Exchange]) -> dict[str, int]:
    return dict(
        Counter(str(ex.status) if ex.status is not None else "no answer" for ex in exchanges)
    )


def _cht_step(exchanges: list[Exchange], report: RunReport, scrub: Scrubber) -> Orchestration:
    months = sorted({r.period for r in report.cht})
    docs = sum(r.target_docs for r in report.cht)
    body = {
        "requests": len(exchanges),
        "statuses": _statuses(exchanges),
        "months": [
            {
                "month": r.period,
                "source": r.source,
                "target_docs": r.target_docs,
                "pages": r.pages,
                "owners_looked_up": r.owners_looked_up,
                "places": r.places,
            }
            for r in report.cht
        ],
    }
    page = next((ex for ex in exchanges if ex.path.endswith("/_all_docs")), exchanges[0])
    ordered = [page, *[ex for ex in exchanges if ex is not page]]
    name = f"CHT: read {', '.join(months) or 'app settings'} ({docs} target docs), places, users"
    orch = _base(name, ordered, body, scrub)
    orch["request"]["timestamp"] = _iso(exchanges[0])
    orch["response"]["timestamp"] = _iso(exchanges[-1], finished=True)
    return orch


def _server_step(exchanges: list[Exchange], report: RunReport, scrub: Scrubber) -> Orchestration:
    version = next((r.dhis2_version for r in report.results if r.dhis2_version), None)
    named = labels(report)
    sets = [
        named.get(ex.path.rsplit("/", 1)[1], ex.path.rsplit("/", 1)[1])
        for ex in exchanges
        if ex.path.startswith("/api/dataSets/")
    ]
    body = {"requests": len(exchanges), "statuses": _statuses(exchanges), "data_sets": sets}
    name = f"DHIS2 {version or ''}: server, integration user and data set metadata".replace(
        "  ", " "
    )
    return _base(name, exchanges, body, scrub)


def _read_step(
    label: str,
    exchanges: list[Exchange],
    result: DataSetResult | None,
    scrub: Scrubber,
    *,
    pushed: bool = True,
) -> Orchestration:
    units = {
        value
        for ex in exchanges
        for key, value in parse_qsl(ex.querystring or urlsplit(ex.url).query)
        if key == "orgUnit"
    }
    unread = next(
        (
            f.ids
            for f in (result.preflight if result else [])
            if f.code == "existing_values_unreadable"
        ),
        [],
    )
    body = {
        "requests": len(exchanges),
        "statuses": _statuses(exchanges),
        "org_units": len(units),
        "unreadable_org_units": list(unread)[:20],
    }
    name = f"{label}: read what DHIS2 holds ({len(units)} org units)"
    if not pushed and result is not None:
        right = result.values_unchanged + result.values_zero
        name += f", nothing to push ({right} values already right)"
    return _base(name, exchanges, body, scrub)


def _push_step(
    label: str,
    exchanges: list[Exchange],
    result: DataSetResult | None,
    scrub: Scrubber,
    detail: bool,
) -> Orchestration:
    chunks = [ex for ex in exchanges if ex.method == "POST" and ex.path == "/api/dataValueSets"]
    body: dict[str, Any] = {}
    if result is not None:
        body = {
            "values_sent": result.values_sent,
            "cleared": result.values_cleared,
            "unchanged": result.values_unchanged,
            "zeros_not_stored": result.values_zero,
            **result.counts.model_dump(),
            "rejected": len(result.rejected),
            "not_confirmed": len(result.unconfirmed),
        }
    if detail and result is not None:
        body["chunks"] = [
            _chunk(c, n, len(result.chunks)) for n, c in enumerate(result.chunks, start=1)
        ]
        if result is not None and result.rejected:
            body["first_rejected"] = [
                {
                    "dataElement": r.dataElement,
                    "orgUnit": r.orgUnit,
                    "categoryOptionCombo": r.categoryOptionCombo,
                    "value": r.value,
                    "reason": cut(scrub.text(r.reason), 160),
                    "explain": row_command(result.data_set, r),
                }
                for r in result.rejected[:3]
            ]
    verb = "dry-run push" if result is not None and result.dry_run else "push"
    sent = result.values_sent if result is not None else len(chunks)
    count = len(result.chunks) if result is not None and result.chunks else len(chunks)
    name = f"{label}: {verb} {sent} values ({count} chunk{'s' if count != 1 else ''})"
    return _base(name, exchanges, body, scrub)


def _chunk(chunk: ChunkCount, number: int, total: int) -> dict[str, Any]:
    """One POST as DHIS2 answered it: its import counts and how many conflicts."""
    entry: dict[str, Any] = {"chunk": f"{number}/{total}", "status": chunk.status}
    if chunk.error is not None:
        entry["error"] = cut(chunk.error, 120)
    else:
        entry.update(chunk.model_dump(include={"imported", "updated", "ignored", "deleted"}))
        entry["conflicts"] = chunk.conflicts
    return entry
