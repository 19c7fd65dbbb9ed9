"""Step 3 of a run: what the DHIS2 data set, this DHIS2 release and its integration user
say about the rows, before anything is posted. Pure: no I/O.

Only what makes the whole data set meaningless to post blocks it (no such data set,
a period of another type, data elements outside the data set). Everything else is
said in the report and left to DHIS2: rows DHIS2 would store wrongly or refuse for
their value or option combos are kept back and named; a period DHIS2 of this release
will (or may) refuse for this user, and org units a strict server refuses, are
predicted per org unit, and the rows are posted all the same, so that DHIS2 decides
and its own per-row conflicts come back as rejected rows.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, Field

from mediator.model.periods import Month, Period, PeriodError, check_period_type
from mediator.model.report import Finding, Level, RejectedRow
from mediator.model.values import DataValue

from . import rules
from .metadata import (
    FALLBACK_DEFAULT_COC,
    INTEGER_TEXT,
    INTEGER_TYPES,
    DataSetElementMeta,
    DataSetMeta,
    Key,
    format_number,
    is_zero_insignificant,
    value_problem,
)

# Findings that make the data set meaningless to post: nothing of it is sent.
BLOCKING = frozenset(
    {
        "data_set_not_found",
        "period_type_unsupported",
        "period_invalid",
        "period_type_mismatch",
        "data_elements_not_in_data_set",
    }
)


@dataclass(frozen=True)
class Server:
    """What the preflight knows of the DHIS2 it pushes to and of its integration user.
    ``None`` means unknown (not readable): then a rule that needs it says "may"."""

    version: rules.Version = (2, 41, 0)
    now: datetime = field(default_factory=datetime.now)  # DHIS2's server time, naive
    iso_calendar: bool = True  # period rules are only checked for ISO calendars
    authorities: frozenset[str] | None = None
    strict_org_units: bool | None = None  # keyDataImportStrictOrganisationUnits
    lock_exceptions: frozenset[str] | None = None  # org units excepted for this (ds, pe)


class ReadyValue(BaseModel):
    """A row that passed preflight, keyed as DHIS2 keys it, its value as DHIS2 validates it."""

    row: DataValue
    key: Key
    text: str
    value_type: str
    zero_insignificant: bool


class Preflight(BaseModel):
    """What the metadata says about one data set, period and set of rows."""

    data_set: str
    period: str
    name: str | None = None
    period_type: str | None = None
    found: bool = True
    default_coc: str = FALLBACK_DEFAULT_COC
    findings: list[Finding] = Field(default_factory=list)
    rejected: list[RejectedRow] = Field(default_factory=list)
    ready: list[ReadyValue] = Field(default_factory=list)
    unassigned_org_units: list[str] = Field(default_factory=list)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.code in BLOCKING]

    @property
    def blocked(self) -> bool:
        """Nothing of this data set may be posted (see ``BLOCKING``)."""
        return bool(self.blocking)


def check(
    meta: DataSetMeta | None,
    data_set: str,
    period: str,
    rows: list[DataValue],
    server: Server | datetime,
) -> Preflight:
    """Findings and the rows fit to post. ``meta`` None means DHIS2 answered 404; a
    bare ``datetime`` is a server of the default release whose user is unknown."""
    if isinstance(server, datetime):
        server = Server(now=server)
    pre = Preflight(data_set=data_set, period=period)
    if meta is None:
        pre.found = False
        pre.findings.append(
            _finding(
                "error",
                "data_set_not_found",
                f"Data set {data_set} does not exist in DHIS2 (or this DHIS2 user cannot see "
                "it): nothing was sent for it.",
                [data_set],
            )
        )
        return pre
    pre.name, pre.period_type = meta.name, meta.periodType
    pre.default_coc = meta.default_coc()
    parsed = _period(pre, meta, period)
    unknown = sorted({r.dataElement for r in rows if r.dataElement not in meta.elements()})
    if unknown:
        pre.findings.append(
            _finding(
                "error",
                "data_elements_not_in_data_set",
                f"Data elements {_ids(unknown)} are mapped to data set {data_set} in CHT but "
                "are not part of it in DHIS2; fix the mapping or the data set. Nothing was sent "
                "for this data set.",
                unknown,
            )
        )
    org_units = list(dict.fromkeys(r.orgUnit for r in rows))
    if parsed is not None and server.iso_calendar:
        pre.findings += period_findings(meta, parsed, org_units, server)
    _assignment(pre, meta, rows, server)
    if not pre.blocked:
        _rows(pre, meta, rows)
    return pre


def _period(pre: Preflight, meta: DataSetMeta, period: str) -> Period | None:
    """The period, if the data set's type is one CHT can fill and the period is of it."""
    try:
        check_period_type(meta.periodType or "")
    except PeriodError as exc:
        message = f"Data set {meta.id}: {exc}. Nothing was sent for it."
        pre.findings.append(_finding("error", "period_type_unsupported", message, [meta.id]))
        return None
    try:
        parsed = Period.parse(period)
    except PeriodError as exc:
        pre.findings.append(_finding("error", "period_invalid", str(exc), [period]))
        return None
    if parsed.period_type != meta.periodType:
        pre.findings.append(
            _finding(
                "error",
                "period_type_mismatch",
                f"Period {period} is {parsed.period_type} but data set {meta.id} is "
                f"{meta.periodType}; nothing was sent for it.",
                [meta.id, period],
            )
        )
        return None
    return parsed


# -- the period: expired, not open yet, outside the data input periods ----------------------


def needs_lock_exceptions(meta: DataSetMeta, period: Period, server: Server) -> bool:
    """Whether the lock exceptions of (data set, period) change what DHIS2 does: the
    period is expired by this release's rule and the user may not edit expired data."""
    return (
        server.iso_calendar
        and rules.expired(server.version, meta.expiryDays, period.last_day, server.now)
        and not (server.authorities is not None and rules.may_edit_expired(server.authorities))
    )


def period_findings(
    meta: DataSetMeta, period: Period, org_units: list[str], server: Server
) -> list[Finding]:
    """What DHIS2 of ``server.version`` will do with ``period`` for this user, per org
    unit: warnings only; the rows are posted and DHIS2's own conflicts decide."""
    found: list[Finding] = []
    expiry = rules.Expiry(
        expired=rules.expired(server.version, meta.expiryDays, period.last_day, server.now),
        may_edit=server.authorities is not None and rules.may_edit_expired(server.authorities),
        exceptions=server.lock_exceptions,
    )
    if expiry.expired and not expiry.may_edit:
        found.append(_expiry_finding(meta, period, org_units, expiry, server))
    current = Period.containing(Month.containing(server.now.date()), period.period_type)
    latest_open = current.shift(meta.openFuturePeriods - 1)  # 0: the current one is closed
    if period > latest_open:
        sure = rules.open_future_per_data_set(server.version)
        found.append(
            _finding(
                "warning",
                "period_not_open_yet",
                f"Period {period.iso} is after the latest open period {latest_open.iso} of data "
                f"set {meta.id} (openFuturePeriods={meta.openFuturePeriods}): DHIS2 "
                + (
                    "will refuse its values (E7641)"
                    if sure
                    else "may refuse its values (E7641: "
                    "before 2.39.1 another data set holding the same elements can open it)"
                )
                + ". Push it once it has ended, or ask an admin to open future periods.",
                [meta.id, period.iso],
            )
        )
    if meta.dataInputPeriods and not _input_open(meta, period, server):
        found.append(
            _finding(
                "warning",
                "period_input_closed",
                f"Period {period.iso} is outside the data input periods of data set {meta.id} "
                f"(DHIS2 server time {server.now:%Y-%m-%d %H:%M}): DHIS2 will refuse its values "
                "(E7643).",
                [meta.id, period.iso],
            )
        )
    return found


def _expiry_finding(
    meta: DataSetMeta, period: Period, org_units: list[str], expiry: rules.Expiry, server: Server
) -> Finding:
    locked = [ou for ou in org_units if expiry.locked(ou)]
    unknown = [ou for ou in org_units if expiry.locked(ou) is None]
    excepted = [ou for ou in org_units if expiry.locked(ou) is False]
    days = f"{meta.expiryDays:g}"
    start = (
        f"Period {period.iso} of data set {meta.id} expired {days} days after it ended "
        f"(DHIS2 {'.'.join(map(str, server.version))} server time {server.now:%Y-%m-%d %H:%M})"
    )
    if unknown:
        why = (
            "whether the integration user holds F_EDIT_EXPIRED is unknown"
            if server.authorities is None
            else "its lock exceptions could not be read"
        )
        tail = f": DHIS2 may refuse the values at {_ids(unknown)} (E7640; {why})"
    else:
        tail = f": DHIS2 will refuse the values at {_ids(locked)} (E7640)" if locked else ""
    if excepted:
        tail += f"; {_ids(excepted)} have a lock exception and are open"
    fix = (
        ". Unblock: a lock exception for these org units (DHIS2 Data administration → Lock "
        "exception), or F_EDIT_EXPIRED for the integration user, or a higher expiryDays."
    )
    return _finding("warning", "period_expired", start + tail + fix, locked + unknown)


def _input_open(meta: DataSetMeta, period: Period, server: Server) -> bool:
    return any(
        rules.input_window_open(
            server.version, _parse_day(w.openingDate), _parse_day(w.closingDate), server.now
        )
        for w in meta.dataInputPeriods
        if w.period is not None and w.period.id == period.iso
    )


def _parse_day(text: str | None) -> datetime | None:
    if not text:
        return None
    match = re.match(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}:\d{2}))?", text)
    if not match:
        return None
    return datetime.fromisoformat(f"{match.group(1)}T{match.group(2) or '00:00:00'}")


# -- org units and rows ----------------------------------------------------------------------


def _assignment(pre: Preflight, meta: DataSetMeta, rows: list[DataValue], server: Server) -> None:
    """Org units not assigned to the data set: stored anyway, unless the server's
    keyDataImportStrictOrganisationUnits is on; then DHIS2 refuses them (E7636)."""
    assigned = {ou.id for ou in meta.organisationUnits}
    pre.unassigned_org_units = sorted({r.orgUnit for r in rows} - assigned)
    if not pre.unassigned_org_units:
        return
    ids = pre.unassigned_org_units
    if server.strict_org_units:
        pre.findings.append(
            _finding(
                "error",
                "org_units_not_assigned_strict",
                f"Org units {_ids(ids)} are not assigned to data set {meta.id}, and DHIS2's "
                "system setting keyDataImportStrictOrganisationUnits is on: DHIS2 will refuse "
                "their values (E7636). They were posted for DHIS2 to say so.",
                ids,
            )
        )
        return
    maybe = (
        " (unless DHIS2's keyDataImportStrictOrganisationUnits is on: it could not be read)"
        if server.strict_org_units is None
        else ""
    )
    pre.findings.append(
        _finding(
            "warning",
            "org_units_not_assigned",
            f"Org units {_ids(ids)} are not assigned to data set {meta.id}; DHIS2 accepts their "
            f"values{maybe} but they will not show in its data entry form. The values were sent.",
            ids,
        )
    )


_ROW_KINDS = {
    "coc": ("category_option_combo_invalid", "category option combos"),
    "aoc": ("attribute_option_combo_invalid", "attribute option combos"),
    "value": ("values_invalid", "values of data elements"),
    "dup": ("duplicate_rows", "duplicate rows of data elements"),
}


def _rows(pre: Preflight, meta: DataSetMeta, rows: list[DataValue]) -> None:
    """Each row checked as DHIS2 validates it; the ones it would refuse or store wrongly
    are kept back and named, the others are ready to post."""
    elements = meta.elements()
    combos = meta.combo_options()
    aoc_options = combos.get(meta.categoryCombo.id, set()) if meta.categoryCombo else set()
    seen: set[Key] = set()
    bad: dict[str, set[str]] = {kind: set() for kind in _ROW_KINDS}
    counts: Counter[str] = Counter()
    for row in rows:
        dse = elements[row.dataElement]
        coc = row.categoryOptionCombo or pre.default_coc
        aoc = row.attributeOptionCombo or pre.default_coc
        key: Key = (row.dataElement, row.orgUnit, coc, aoc)
        text = format_number(row.value)
        kind, reason = _row_problem(meta, dse, combos, aoc_options, row, key, seen, text)
        seen.add(key)
        if reason:
            bad[kind].add({"coc": coc, "aoc": aoc}.get(kind, row.dataElement))
            counts[kind] += 1
            pre.rejected.append(_rejected(row, pre.period, text, reason))
            continue
        assert text is not None
        element = dse.dataElement
        zero = is_zero_insignificant(element, text)
        pre.ready.append(
            ReadyValue(
                row=row, key=key, text=text, value_type=element.valueType, zero_insignificant=zero
            )
        )
    for kind, ids in bad.items():
        if ids:
            code, words = _ROW_KINDS[kind]
            pre.findings.append(
                _finding(
                    "warning",
                    code,
                    f"{counts[kind]} rows were not sent because DHIS2 would refuse them: "
                    f"{words} {_ids(sorted(ids))} (see the rejected rows).",
                    sorted(ids),
                )
            )


def _row_problem(
    meta: DataSetMeta,
    dse: DataSetElementMeta,
    combos: dict[str, set[str]],
    aoc_options: set[str],
    row: DataValue,
    key: Key,
    seen: set[Key],
    text: str | None,
) -> tuple[str, str | None]:
    """(kind, reason) of a row DHIS2 would refuse or store wrongly, else (kind, None)."""
    element = dse.dataElement
    combo = dse.categoryCombo or element.categoryCombo
    coc_options = combos.get(combo.id, set()) if combo else set()
    _de, _ou, coc, aoc = key
    if key in seen:
        return "dup", "the same data value key appears twice in the engine output"
    if coc_options and coc not in coc_options:
        return "coc", (
            f"category option combo {coc} is not part of the category combo "
            f"{combo.id if combo else '?'} of data element {row.dataElement}"
        )
    if aoc_options and aoc not in aoc_options:
        return "aoc", (
            f"attribute option combo {aoc} is not part of the category combo "
            f"{meta.categoryCombo.id if meta.categoryCombo else '?'} of data set {meta.id}"
        )
    if text is None:
        return "value", f"{row.value} is not a finite number"
    if is_zero_insignificant(element, text):
        return "value", None
    if element.valueType in INTEGER_TYPES and not INTEGER_TEXT.match(text):
        return "value", (
            f"{text} is not a whole number; data element {row.dataElement} is {element.valueType}"
        )
    problem = value_problem(text, element.valueType)
    if problem:
        return "value", f"{problem} (data element {row.dataElement} is {element.valueType})"
    return "value", None


def _finding(level: Level, code: str, message: str, ids: list[str]) -> Finding:
    return Finding(level=level, code=code, message=message, ids=ids)


def _ids(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _rejected(row: DataValue, period: str, text: str | None, reason: str) -> RejectedRow:
    return RejectedRow(
        dataElement=row.dataElement,
        orgUnit=row.orgUnit,
        period=period,
        categoryOptionCombo=row.categoryOptionCombo,
        attributeOptionCombo=row.attributeOptionCombo,
        value=text,
        reason=reason,
    )
