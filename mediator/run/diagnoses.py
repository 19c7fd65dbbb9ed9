"""DHIS2 and CHT problems explained in plain words, with the fix, naming the ids.

The people who run the mediator (an HRIO, OpenHIM ops, a DHIS2 admin) should never
need DHIS2's source to know what went wrong. Every rejection the mediator can meet
maps to a ``Diagnosis``: E76xx conflicts (matched on ``errorCode``, or on 2.36's
fixed texts, which have no code), set-level aborts, refused credentials, missing
authorities, locked periods, preflight findings, and problems on the CHT side.
Which code a conflict stands for is ``dhis2.conflicts``; the words are ``wording``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from mediator.dhis2.conflicts import conflict_code, conflict_ids, object_kind
from mediator.model.report import DataSetResult, Diagnosis, Finding, RunReport

from .wording import CHT, CONFLICTS, ERRORS, FINDINGS, Explain


def _ids(items: Iterable[str], limit: int = 10) -> str:
    unique = list(dict.fromkeys(i for i in items if i))
    shown = ", ".join(unique[:limit])
    return shown + (f" and {len(unique) - limit} more" if len(unique) > limit else "")


@dataclass
class _Context:
    result: DataSetResult
    places_by_unit: dict[str, list[str]]
    trigger: str = "openhim"  # report.RunReport.trigger: says how to rerun

    def places(self, units: Iterable[str]) -> str:
        named = [p for u in units for p in self.places_by_unit.get(u, [])]
        return _ids(named) or "(the CHT places that carry them)"

    def targets(self, elements: Iterable[str]) -> str:
        named = [t for de in elements for t in self.result.mapped_targets.get(de, [])]
        return _ids(named) or "(the CHT targets that map them)"


def rerun_advice(trigger: str) -> str:
    """How to redo a run, as the one who started it can."""
    if trigger == "cli":
        return "run the command the summary ends with (it redoes only what did not complete)"
    return "rerun the transaction from the OpenHIM console"


def _fill(text: str, ctx: _Context, ids: Mapping[str, list[str]], detail: str = "") -> str:
    values = {
        "de": _ids(ids.get("de", [])),
        "ou": _ids(ids.get("ou", [])),
        "pe": _ids(ids.get("pe", [])) or ctx.result.period,
        "coc": _ids(ids.get("coc", [])),
        "aoc": _ids(ids.get("aoc") or ids.get("coc", [])),  # 2.37+ names both combos coc
        "ds": _ids(ids.get("ds", [])) or ctx.result.data_set,
        "user": _ids(ids.get("user", [])) or "the integration user",
        "ids": _ids(ids.get("ids", [])),
        "targets": ctx.targets(ids.get("de", []) or ids.get("ids", [])),
        "places": ctx.places(ids.get("ou", []) or ids.get("ids", [])),
        "detail": detail,
        "rerun": rerun_advice(ctx.trigger),
    }
    return text.format(**values)


def _from_conflicts(ctx: _Context) -> list[Diagnosis]:
    grouped: dict[str, tuple[int, dict[str, list[str]]]] = {}
    for conflict in ctx.result.conflicts:
        code = conflict_code(conflict) or "unknown_conflict"
        count, ids = grouped.get(code, (0, {}))
        for key, value in conflict_ids(conflict).items():
            if key == "object":
                # 2.36: the object is the id the message is about
                key = object_kind(code)
            ids.setdefault(key, [])
            if value not in ids[key]:
                ids[key].append(value)
        grouped[code] = (count + max(1, len(conflict.indexes)), ids)
    out = []
    for code, (count, ids) in grouped.items():
        explain = CONFLICTS.get(code) or Explain(
            "Conflict DHIS2 reported",
            "DHIS2 refused values: " + "; ".join(c.value for c in ctx.result.conflicts[:3]),
            "Read the import summary in the DHIS2 orchestration of this transaction.",
        )
        out.append(_diagnosis(code, explain, ctx, ids, count))
    return out


def _diagnosis(
    kind: str,
    explain: Explain,
    ctx: _Context,
    ids: Mapping[str, list[str]],
    count: int,
    detail: str = "",
) -> Diagnosis:
    return Diagnosis(
        kind=kind,
        title=explain.title,
        count=count,
        cause=_fill(explain.cause, ctx, ids, detail),
        fix=_fill(explain.fix, ctx, ids, detail),
        ids=[i for values in ids.values() for i in values],
        data_set=ctx.result.data_set,
        period=ctx.result.period,
    )


def _from_findings(ctx: _Context, findings: Iterable[Finding]) -> list[Diagnosis]:
    out = []
    for finding in findings:
        explain = FINDINGS.get(finding.code)
        if explain is None:
            continue
        ids: dict[str, list[str]] = {"ids": list(finding.ids)}
        if finding.code == "org_units_not_assigned":
            ids["ou"] = list(finding.ids)
        if finding.code == "data_elements_not_in_data_set":
            ids["de"] = list(finding.ids)
        detail = finding.message
        match = re.search(r"period type (\w+)", finding.message)
        if match:
            detail = match.group(1)
        out.append(_diagnosis(finding.code, explain, ctx, ids, max(1, len(finding.ids)), detail))
    return out


_KINDS = {
    "login_redirect": "dhis2_login_redirect",
    "credentials": "dhis2_unauthorized",
    "token_refused": "dhis2_token_invalid",
    "forbidden": "dhis2_forbidden",
    "unreachable": "dhis2_unreachable",
    "timeout": "dhis2_unreachable",
    "not_json": "dhis2_not_json",
    "shape": "dhis2_unexpected_shape",
    "body": "dhis2_unexpected_shape",
    "too_large": "dhis2_body_too_large",
    "cht_read": "cht_read_failed",
}


def _error_kind(result: DataSetResult) -> str | None:
    """The diagnosis of a data set that failed as a whole, by what kind of failure it was
    (``http.PeerError.kind``, set where the error was caught), never by its words."""
    if result.error_kind in _KINDS:
        return _KINDS[result.error_kind]
    if result.error_status == 403:
        return "dhis2_forbidden"
    if result.error_kind == "status" and (result.error_status or 0) >= 500:
        return "dhis2_server_error"  # retried within the budget, still failing
    return None


# failures of one chunk that leave the others imported: said even when the data set is
# not failed as a whole, since their fix is not the rejected rows' own
_CHUNK_KINDS = frozenset({"too_large", "not_json", "shape", "body", "status"})


def _from_error(ctx: _Context) -> list[Diagnosis]:
    result = ctx.result
    failed = result.status == "error" or result.error_kind in _CHUNK_KINDS
    kind = _error_kind(result) if failed and result.error else None
    if kind is None:
        return []
    return [_diagnosis(kind, ERRORS[kind], ctx, {}, 1, detail=result.error or "")]


def _from_cht(ctx: _Context, report: RunReport) -> list[Diagnosis]:
    """Problems on the CHT side, seen in what was read."""
    result = ctx.result
    out = []
    months = {m.replace("-", "") for m in result.months}
    read = [c for c in report.cht if c.period in months]
    if result.status != "error" and read and sum(c.target_docs for c in read) == 0:
        kind = "cht_no_target_docs"
        out.append(_diagnosis(kind, CHT[kind], ctx, {}, 1, detail=", ".join(result.months)))
    missing = sorted({u for c in result.coverage for u in c.missing})
    if missing and result.users_expected and not _not_over(result):
        kind = "cht_users_not_synced"
        detail = f"{len(missing)} of {result.users_expected}"
        out.append(_diagnosis(kind, CHT[kind], ctx, {"ids": missing}, len(missing), detail))
    return out


def _not_over(result: DataSetResult) -> bool:
    """The period has not ended (or DHIS2 does not open it yet): CHWs have not had the
    chance to sync it, so none is "missing" from its numbers."""
    if any(f.code == "period_not_open_yet" for f in result.preflight):
        return True
    if any(conflict_code(c) == "E7641" for c in result.conflicts):
        return True
    today = date.today()
    return bool(result.months) and max(result.months) >= f"{today.year:04d}-{today.month:02d}"


def diagnose(report: RunReport) -> list[Diagnosis]:
    """Every problem of the run, explained, in the order ops should read them."""
    out: list[Diagnosis] = []
    for finding in report.findings:
        explain = CHT.get(finding.code)
        if explain is not None:
            ids = {"ids": list(finding.ids)}
            out.append(
                Diagnosis(
                    kind=finding.code,
                    title=explain.title,
                    cause=explain.cause.format(ids=_ids(finding.ids), detail=finding.message),
                    fix=explain.fix.format(rerun=rerun_advice(report.trigger)),
                    ids=ids["ids"],
                )
            )
    for result in report.results:
        places_by_unit = {c.orgUnit: c.places for c in result.coverage}
        ctx = _Context(result, places_by_unit, report.trigger)
        out += _from_error(ctx)
        out += _from_findings(ctx, result.preflight)
        out += _from_conflicts(ctx)
        out += _from_cht(ctx, report)
    return out


def troubleshooting_table() -> str:
    """The operator guide's troubleshooting table, made from the explanations above
    (tests/unit/test_operator_guide.py keeps the guide equal to it)."""
    rows = [
        "| Problem (as in the report and the OpenHIM properties) | What it means | What to do |"
    ]
    rows.append("|---|---|---|")
    sections = [
        ("DHIS2 refused values", CONFLICTS),
        ("Before posting", FINDINGS),
        ("A data set failed", ERRORS),
        ("CHT", CHT),
    ]
    seen: set[str] = set()
    for _section, table in sections:
        for kind, explain in table.items():
            if explain.title in seen:
                continue
            seen.add(explain.title)
            label = f"{explain.title} (`{kind}`)"
            rows.append(f"| {label} | {_generic(explain.cause)} | {_generic(explain.fix)} |")
    return "\n".join(rows) + "\n"


def _generic(text: str) -> str:
    """A template with its placeholders named in words, for the guide."""
    words = {
        "de": "<data element>",
        "ou": "<org unit>",
        "pe": "<period>",
        "coc": "<option combo>",
        "aoc": "<attribute option combo>",
        "ds": "<data set>",
        "user": "<user>",
        "ids": "<ids>",
        "targets": "<CHT targets>",
        "places": "<CHT places>",
        "detail": "<details>",
        "rerun": "rerun it (OpenHIM console: Rerun; command line: the command the summary "
        "ends with)",
    }
    return text.format(**words).replace("|", "\\|")
