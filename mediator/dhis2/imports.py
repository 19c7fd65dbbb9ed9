"""One import-result model for every DHIS2 version 2.36 → 2.42.

DHIS2 answers ``POST /api/dataValueSets`` with a bare ImportSummary (2.36, 2.37, and
task summaries) or a WebMessage wrapping one (2.38+), on HTTP 200 or 409, with conflicts
in two shapes (dhis2-core ``DataValueSetController``, ``ImportSummary``,
``ImportConflict``). This module turns all of them into ``ImportResult`` and maps each
conflict back to the rows that were posted, so a report can say which value DHIS2
refused and why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mediator.model.report import Conflict, ImportCount, RejectedRow, RowRef

ImportStatus = Literal["SUCCESS", "WARNING", "ERROR"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class WebMessage(_Wire):
    """DHIS2's envelope for errors and (2.38+) import summaries."""

    httpStatus: str | None = None
    httpStatusCode: int | None = None
    status: str | None = None
    message: str | None = None
    errorCode: str | None = None
    response: Any = None


class _RawCount(_Wire):
    imported: int = 0
    updated: int = 0
    ignored: int = 0
    deleted: int = 0


class _RawConflict(_Wire):
    object: str | None = None
    objects: dict[str, Any] | None = None
    value: str | None = None
    errorCode: str | None = None
    property: str | None = None
    indexes: list[int] | None = None


class _RawSummary(_Wire):
    responseType: str | None = None
    status: str = "ERROR"
    description: str | None = None
    importCount: _RawCount | None = None
    conflicts: list[_RawConflict] | None = None
    rejectedIndexes: list[int] | None = None


class ImportResult(BaseModel):
    """What DHIS2 did with one posted chunk, whatever the version."""

    status: ImportStatus
    http_status: int = 200
    wrapped: bool = False
    message: str | None = None  # the WebMessage text, when wrapped
    description: str | None = None
    counts: ImportCount = Field(default_factory=ImportCount)
    conflicts: list[Conflict] = Field(default_factory=list)
    rejected_indexes: list[int] | None = None  # 2.41+ only

    @property
    def aborted(self) -> bool:
        """ERROR: a set-level check or a parse failure; nothing of the chunk was imported."""
        return self.status == "ERROR"


class AsyncJob(BaseModel):
    """The reply to ``async=true``: where to follow the import job."""

    id: str
    name: str | None = None
    notifier: str | None = None


def _is_summary(body: Any) -> bool:
    return isinstance(body, dict) and (
        body.get("responseType") == "ImportSummary"
        or ("importCount" in body and "status" in body and "httpStatusCode" not in body)
    )


def _conflict(raw: _RawConflict) -> Conflict:
    return Conflict(
        object=raw.object,
        objects={str(k): str(v) for k, v in (raw.objects or {}).items() if v is not None},
        value=raw.value or "",
        errorCode=raw.errorCode,
        property=raw.property,
        indexes=list(raw.indexes or []),
    )


def parse_import(body: Any, http_status: int = 200) -> ImportResult | None:
    """The import result in ``body``, bare or wrapped; None if it holds no ImportSummary."""
    wrapped = False
    message: str | None = None
    inner = body
    if isinstance(body, dict) and "httpStatusCode" in body and _is_summary(body.get("response")):
        wrapped, inner = True, body["response"]
        message = body.get("message") if isinstance(body.get("message"), str) else None
    if not _is_summary(inner):
        return None
    try:
        raw = _RawSummary.model_validate(inner)
    except ValidationError:
        return None
    status: ImportStatus = "ERROR"
    if raw.status.upper() == "SUCCESS":
        status = "SUCCESS"
    elif raw.status.upper() == "WARNING":
        status = "WARNING"
    count = raw.importCount or _RawCount()
    return ImportResult(
        status=status,
        http_status=http_status,
        wrapped=wrapped,
        message=message,
        description=raw.description,
        counts=ImportCount(**count.model_dump()),
        conflicts=[_conflict(c) for c in raw.conflicts or []],
        rejected_indexes=raw.rejectedIndexes,
    )


def parse_web_message(body: Any) -> WebMessage | None:
    if not isinstance(body, dict) or not ("httpStatusCode" in body or "httpStatus" in body):
        return None
    try:
        return WebMessage.model_validate(body)
    except ValidationError:
        return None


def parse_async_job(body: Any) -> AsyncJob | None:
    """``{…, response: {id, name, jobType: DATAVALUE_IMPORT, relativeNotifierEndpoint}}``."""
    message = parse_web_message(body)
    inner = message.response if message else None
    if not isinstance(inner, dict) or not isinstance(inner.get("id"), str):
        return None
    return AsyncJob(
        id=inner["id"],
        name=inner.get("name") if isinstance(inner.get("name"), str) else None,
        notifier=inner.get("relativeNotifierEndpoint")
        if isinstance(inner.get("relativeNotifierEndpoint"), str)
        else None,
    )


# -- mapping conflicts back to rows ---------------------------------------------

# ``objects`` keys (2.37+) → the row field they name.
_OBJECT_FIELDS = {
    "dataElement": ("dataElement",),
    "period": ("period",),
    "organisationUnit": ("orgUnit",),
    "orgUnit": ("orgUnit",),
    "categoryOptionCombo": ("categoryOptionCombo", "attributeOptionCombo"),
    "attributeOptionCombo": ("attributeOptionCombo",),
}
_TOKEN = re.compile(r"[A-Za-z0-9]+")


class Attribution(BaseModel):
    """Rows of one chunk that DHIS2 refused, and the conflicts no row could be found for."""

    rejected: dict[int, RejectedRow] = Field(default_factory=dict)  # chunk index → row
    unattributed: list[Conflict] = Field(default_factory=list)


def _fields(row: RowRef) -> tuple[str | None, ...]:
    return (
        row.dataElement,
        row.orgUnit,
        row.period,
        row.categoryOptionCombo,
        row.attributeOptionCombo,
    )


def _match_objects(objects: dict[str, str], rows: Sequence[RowRef]) -> list[int]:
    """2.37+ conflicts without indexes: rows whose ids equal every id ``objects`` names."""
    wanted = [(_OBJECT_FIELDS[k], v) for k, v in objects.items() if k in _OBJECT_FIELDS]
    if not wanted:
        return []
    return [
        i
        for i, row in enumerate(rows)
        if all(any(getattr(row, f) == v for f in names) for names, v in wanted)
    ]


# 2.36 texts naming a row by its value alone: the row that lacks the combo it names
_REQUIRED_236 = {
    "Category option combo is required": "categoryOptionCombo",
    "Attribute option combo is required": "attributeOptionCombo",
}


def _match_legacy(conflict: Conflict, rows: Sequence[RowRef]) -> list[int]:
    """2.36 ``{object, value}``: the object is an id of the row (or its value), and
    the message may name more ids (e.g. the data element) that narrow it down. Some
    name no row at all (object ``dataValueSet`` for a category option not writable,
    2.36.13.2 DVSS:1087,1106): those stay unattributed."""
    obj = conflict.object
    tokens = set(_TOKEN.findall(conflict.value))
    lacking = next((f for text, f in _REQUIRED_236.items() if text in conflict.value), None)
    candidates = [
        i
        for i, row in enumerate(rows)
        if obj is not None
        and (
            obj in _fields(row)
            or (row.value == obj and row.dataElement in tokens)
            or (row.value == obj and lacking is not None and not getattr(row, lacking))
        )
    ]
    if not candidates:
        return []
    mentioned = {t for t in tokens if t != obj and any(t in _fields(rows[i]) for i in candidates)}
    narrowed = [i for i in candidates if mentioned <= set(_fields(rows[i]))]
    return narrowed or candidates


def _reject(row: RowRef, reason: str, code: str | None) -> RejectedRow:
    return RejectedRow(**row.model_dump(), reason=reason, errorCode=code)


def attribute(result: ImportResult, rows: Sequence[RowRef]) -> Attribution:
    """Which of ``rows`` (the chunk as posted, in order) DHIS2 refused, and why."""
    out = Attribution()
    if result.aborted:
        reasons = [c.value for c in result.conflicts if c.value]
        reason = "; ".join([result.description or "DHIS2 refused the whole chunk", *reasons])
        code = next((c.errorCode for c in result.conflicts if c.errorCode), None)
        for i, row in enumerate(rows):
            out.rejected[i] = _reject(row, reason, code)
        return out
    for conflict in result.conflicts:
        if conflict.indexes:
            hits = [i for i in conflict.indexes if 0 <= i < len(rows)]
        elif conflict.objects:
            hits = _match_objects(conflict.objects, rows)
        else:
            hits = _match_legacy(conflict, rows)
        if not hits:
            out.unattributed.append(conflict)
        for i in hits:
            out.rejected.setdefault(i, _reject(rows[i], conflict.value, conflict.errorCode))
    for i in result.rejected_indexes or []:
        if 0 <= i < len(rows) and i not in out.rejected:
            out.rejected[i] = _reject(
                rows[i], "DHIS2 ignored this value without giving a conflict", None
            )
    return out
