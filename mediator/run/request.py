"""What a run is asked to do, validated once, whoever asks: the command line, the
push endpoint (query string and JSON body), ``/coverage`` and the schedule.

Every rule and limit is here, so the command line and HTTP refuse the same input
with the same words: a malformed or empty period, month or flag, an id that is not
a DHIS2 uid (checked before it is placed in any URL), more than ``MAX_PERIODS``
periods or a backfill of more than ``MAX_BACKFILL_MONTHS`` months. A refusal is a
``RunInputError`` of one line; pydantic's own text never reaches a user.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mediator.model.periods import Month, Period, PeriodError
from mediator.model.values import is_uid
from mediator.settings.variables import ConfigError, parse_flag

PARAMS = ("period", "from", "to", "dataSet", "orgUnit", "dryRun")
LISTS = ("period", "dataSet")  # repeatable, and comma-separated
MAX_PERIODS = 36  # periods in one request: three years of months
MAX_BACKFILL_MONTHS = 36  # months from `from` to `to`, both included
MAX_DATA_SETS = 50
MAX_VALUE_CHARS = 200  # one value (a period, a uid): longer is never valid
# how each caller spells the parameters in what it is told
HTTP_NAMES: Mapping[str, str] = {p: p for p in PARAMS}
CLI_NAMES: Mapping[str, str] = {
    "period": "--period",
    "from": "--from",
    "to": "--to",
    "dataSet": "--data-set",
    "orgUnit": "--org-unit",
    "dryRun": "--dry-run",
}
_OMIT = {
    "period": "for the scheduled periods (the latest completed period of each data set's "
    "type, and the lookback before it)",
    "dataSet": "for the data sets the configuration names",
    "orgUnit": "for every org unit",
    "dryRun": "for the configured default",
}
_NOT_UID = "is not a DHIS2 id (11 letters/digits, starting with a letter)"


class RunInputError(ValueError):
    """The request cannot be run as asked (unknown data set, bad period…): a 400 / exit 2."""


# the names refusals use while a request is checked (``RunRequest.checked``); a
# context variable, as pydantic hands no validation context through a custom __init__
_NAMES: ContextVar[Mapping[str, str]] = ContextVar("run_request_names", default=HTTP_NAMES)


def _one_line(exc: ValidationError) -> str:
    """The first refusal, in our words (a RunInputError raised by a validator), or a
    short line naming the field: never pydantic's block of text and its links."""
    error = exc.errors()[0]
    original = (error.get("ctx") or {}).get("error")
    if isinstance(original, ValueError):
        return str(original)
    where = ".".join(str(part) for part in error["loc"]) or "request"
    return f"{where}: {error['msg']}"


class RunRequest(BaseModel):
    """What to run. With no ``periods`` and no ``span`` it is a scheduled run: the
    latest completed period of each data set's type and the ``lookback`` before it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    periods: list[Period] = Field(default_factory=list)
    span: tuple[Month, Month] | None = None  # a backfill: every period these months touch
    as_of: datetime | None = None  # "now" for the default periods (a rerun replays it)
    data_sets: list[str] = Field(default_factory=list)  # empty: the configured ones
    org_unit: str | None = None
    dry_run: bool | None = None  # None: the configured default
    trigger: str = "cli"  # cli | openhim | http | schedule
    run_id: str | None = None  # given when the trigger answers before the run (async)

    def __init__(self, /, **data: Any) -> None:
        """As pydantic's, but a refusal is a one-line RunInputError."""
        try:
            self.__pydantic_validator__.validate_python(data, self_instance=self)
        except ValidationError as exc:
            raise RunInputError(_one_line(exc)) from None

    @classmethod
    def checked(cls, data: Mapping[str, Any], names: Mapping[str, str]) -> RunRequest:
        """Validate ``data`` (field names), telling refusals in the caller's ``names``."""
        token = _NAMES.set(names)
        try:
            return cls(**data)
        finally:
            _NAMES.reset(token)

    @field_validator("periods", mode="before")
    @classmethod
    def _months_are_periods(cls, value: Any) -> Any:
        """A Month or a period's ISO text is accepted where a Period is meant."""
        if not isinstance(value, list):
            return value
        try:
            return [
                Period(v, "Monthly")
                if isinstance(v, Month)
                else Period.parse(v)
                if isinstance(v, str)
                else v
                for v in value
            ]
        except PeriodError as exc:
            raise RunInputError(str(exc)) from None

    @field_validator("data_sets")
    @classmethod
    def _at_most_50_data_sets(cls, value: list[str]) -> list[str]:
        if len(set(value)) > MAX_DATA_SETS:
            raise RunInputError(f"at most {MAX_DATA_SETS} data sets per request, got {len(value)}")
        return value

    @model_validator(mode="after")
    def _limits(self) -> RunRequest:
        names = _NAMES.get()
        if len(self.periods) > MAX_PERIODS:
            raise RunInputError(
                f"at most {MAX_PERIODS} periods per request, got {len(self.periods)}"
            )
        if self.span is None:
            return self
        first, last = self.span
        if self.periods:
            raise RunInputError(
                f"give either {names['period']} or {names['from']}/{names['to']}, not both"
            )
        if last < first:
            raise RunInputError(f"{names['from']} {first.tag} is after {names['to']} {last.tag}")
        months = (last.year * 12 + last.month) - (first.year * 12 + first.month) + 1
        if months > MAX_BACKFILL_MONTHS:
            raise RunInputError(
                f"a backfill covers at most {MAX_BACKFILL_MONTHS} months; "
                f"{first.tag}..{last.tag} is {months}"
            )
        return self

    @property
    def scheduled(self) -> bool:
        return not self.periods and self.span is None

    @classmethod
    def from_fields(
        cls,
        fields: Mapping[str, Any],
        *,
        names: Mapping[str, str] = HTTP_NAMES,
        trigger: str = "http",
        dhis2_ids: bool = True,
    ) -> RunRequest:
        """A request from what a caller typed: ``fields`` by parameter name (``PARAMS``),
        each a string, a list of strings (``period`` and ``dataSet`` also split on
        commas), or for ``dryRun`` a bool. Absent means the default; present but empty
        is refused (``/push?period=`` is a mistake, never the scheduled periods).

        ``dhis2_ids``: data set and org unit must be DHIS2 uids, as anything that may
        reach DHIS2 (they go into its URLs). Only ``preview`` reads CHT alone and takes
        whatever ids CHT's ``dhis_data_sets`` and places carry, as CHT's export does."""
        unknown = sorted(set(fields) - set(PARAMS))
        if unknown:
            known = ", ".join(names[p] for p in PARAMS)
            raise RunInputError(f"unknown parameter(s) {', '.join(unknown)}: use {known}")
        periods = []
        for text in _items(fields, "period", names):
            try:
                periods.append(Period.parse(text))
            except PeriodError as exc:
                raise RunInputError(str(exc)) from None
        data_sets = list(dict.fromkeys(_items(fields, "dataSet", names)))
        org_unit = _single(fields, "orgUnit", names)
        if dhis2_ids:
            bad = next((ds for ds in data_sets if not is_uid(ds)), None)
            if bad is not None:
                raise RunInputError(f"{names['dataSet']} {bad!r} {_NOT_UID}")
            if org_unit is not None and not is_uid(org_unit):
                raise RunInputError(f"{names['orgUnit']} {org_unit!r} {_NOT_UID}")
        return cls.checked(
            {
                "periods": sorted(set(periods)),
                "span": _span(fields, names),
                "data_sets": data_sets,
                "org_unit": org_unit,
                "dry_run": _flag(fields, names),
                "trigger": trigger,
            },
            names,
        )


def _items(fields: Mapping[str, Any], field: str, names: Mapping[str, str]) -> list[str]:
    """The values of a repeatable parameter, comma-separated ones split."""
    if field not in fields:
        return []
    name, value = names[field], fields[field]
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise RunInputError(f"{name} must be a string or a list of strings")
    parts = []
    for item in items or [""]:  # an empty JSON list is as empty as ?period=
        split = [part.strip() for part in item.split(",") if part.strip()]
        if not split:
            raise RunInputError(f"{name} is empty: omit {name} {_OMIT[field]}")
        parts += split
    long = next((part for part in parts if len(part) > MAX_VALUE_CHARS), None)
    if long is not None:
        raise RunInputError(f"a {name} value is {len(long)} characters long: that is not a {name}")
    return parts


def _single(fields: Mapping[str, Any], field: str, names: Mapping[str, str]) -> str | None:
    if field not in fields or fields[field] is None:
        return None
    name, value = names[field], fields[field]
    if not isinstance(value, str):
        if field == "orgUnit":
            shown = value if len(repr(value)) <= MAX_VALUE_CHARS else "(too long)"
            raise RunInputError(f"{name} {shown!r} {_NOT_UID}")
        raise RunInputError(f"{name} must be a string")
    if not value.strip():
        if field in ("from", "to"):
            raise RunInputError(
                f"{name} is empty: give a month (YYYY-MM), or omit {names['from']} and "
                f"{names['to']} {_OMIT['period']}"
            )
        raise RunInputError(f"{name} is empty: omit {name} {_OMIT[field]}")
    if len(value) > MAX_VALUE_CHARS:
        raise RunInputError(f"a {name} value is {len(value)} characters long: that is not a {name}")
    return value.strip()


def _span(fields: Mapping[str, Any], names: Mapping[str, str]) -> tuple[Month, Month] | None:
    """A backfill range of months, ``from`` and ``to`` both given (YYYY-MM or YYYYMM)."""
    start, end = _single(fields, "from", names), _single(fields, "to", names)
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise RunInputError(f"give {names['from']} and {names['to']} together (months, YYYY-MM)")
    try:
        return Month.parse(start), Month.parse(end)
    except PeriodError as exc:
        raise RunInputError(
            f"{names['from']}/{names['to']} must be months (YYYY-MM or YYYYMM): {exc}"
        ) from None


def _flag(fields: Mapping[str, Any], names: Mapping[str, str]) -> bool | None:
    """true/false (yes/no, on/off, 1/0), or a JSON bool."""
    value = fields.get("dryRun")
    if value is None or isinstance(value, bool):
        return value
    name = names["dryRun"]
    if isinstance(value, str) and not value.strip():
        raise RunInputError(f"{name} is empty: omit {name} {_OMIT['dryRun']}")
    if isinstance(value, str):
        try:
            return parse_flag(value, False)
        except ConfigError:
            pass
    shown = value if len(repr(value)) <= MAX_VALUE_CHARS else "(too long)"
    raise RunInputError(f"{name} must be true or false, got {shown!r}")
