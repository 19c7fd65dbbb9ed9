"""Typed values that cross module boundaries.

The engine produces ``DataValueSet``s; the DHIS2 client consumes them; the run
orchestration collects ``Exchange`` records from every client so the OpenHIM
layer can turn them into orchestrations without knowing any wire format.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# DHIS2 identifiers: 11 characters, a letter then 10 letters or digits.
UID_PATTERN = r"^[a-zA-Z][a-zA-Z0-9]{10}$"
_UID = re.compile(UID_PATTERN)

# what a target gives a data element: its total, its pass count, or pass/total as a percent
# (MEDIATOR_VALUE_CHOICES)
ValueChoice = Literal["total", "pass", "percent"]


def is_uid(text: object) -> bool:
    """Whether ``text`` is a DHIS2 UID; checked before any id is placed in a URL."""
    return isinstance(text, str) and _UID.fullmatch(text) is not None


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None = None) -> str:
    """ISO 8601 with a time zone: core's JS ``Date`` reads a bare time as local time."""
    moment = moment or utcnow()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds")


class DataValue(BaseModel):
    """One value as CHT's export shapes it: ``orgUnit`` per value, a JSON number."""

    model_config = ConfigDict(frozen=True)

    dataElement: str
    categoryOptionCombo: str | None = None
    attributeOptionCombo: str | None = None
    orgUnit: str
    value: int | float

    def as_export(self) -> dict[str, Any]:
        """The dict CHT's export would print (no null keys)."""
        return self.model_dump(exclude_none=True)


class DataValueSet(BaseModel):
    dataSet: str
    completeDate: str
    period: str
    dataValues: list[DataValue] = Field(default_factory=list)

    def as_export(self) -> dict[str, Any]:
        return {
            "dataSet": self.dataSet,
            "completeDate": self.completeDate,
            "period": self.period,
            "dataValues": [dv.as_export() for dv in self.dataValues],
        }


class Exchange(BaseModel):
    """One request to an outside system, as ops will see it in OpenHIM.

    Bodies are already summarised and free of credentials when they get here.
    """

    name: str
    method: str
    url: str
    peer: str = ""  # CHT | DHIS2 | OpenHIM
    data_set: str | None = None  # the (data set, period) a request was made for, if one
    period: str | None = None
    path: str
    querystring: str = ""
    request_headers: dict[str, str] = Field(default_factory=dict)
    request_body: str = ""
    started: datetime = Field(default_factory=utcnow)
    status: int | None = None
    response_headers: dict[str, str] = Field(default_factory=dict)
    response_body: str = ""
    response_bytes: int = 0
    finished: datetime | None = None
    error: str | None = None
