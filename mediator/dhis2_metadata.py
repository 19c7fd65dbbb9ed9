"""Preflight: what a DHIS2 data set says about the values the engine produced.

Pure functions over the one metadata document fetched per data set
(``GET /api/dataSets/{id}?fields=…``). Everything DHIS2 would
reject (or silently store wrongly) is caught here, before posting, so ops see
it in plain words naming the ids instead of as an E76xx conflict.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field

from .models import DataValue
from .periods import Month, Period, PeriodError, check_period_type
from .report import Finding, RejectedRow

# The default category option combo of a fresh DHIS2 database (the same id in 2.36-2.42).
FALLBACK_DEFAULT_COC = "HllvX50cXC0"

DATA_SET_FIELDS = (
    "id,name,periodType,expiryDays,openFuturePeriods,"
    "dataInputPeriods[period[id],openingDate,closingDate],"
    "categoryCombo[id,name,categoryOptionCombos[id]],"
    "dataSetElements[categoryCombo[id,name,categoryOptionCombos[id]],"
    "dataElement[id,name,valueType,zeroIsSignificant,aggregationType,"
    "categoryCombo[id,name,categoryOptionCombos[id]]]],"
    "organisationUnits[id]"
)

# dhis2-core ``ValidationUtils.java`` and ``MathUtils.java``, identical 2.36 → 2.42.
_NUMBER = re.compile(r"^(-?0|-?[1-9]\d*)(\.\d+)?$")
_INTEGER = re.compile(r"^(0|-?[1-9]\d*)$")
_INTEGER_POSITIVE = re.compile(r"^[1-9]\d*$")
_INTEGER_ZERO_OR_POSITIVE = re.compile(r"(^0$)|(^[1-9]\d*$)")
_INTEGER_NEGATIVE = re.compile(r"^-[1-9]\d*$")
_ZERO = re.compile(r"^0(\.0*)?$")

NUMERIC_TYPES = frozenset(
    {
        "NUMBER",
        "INTEGER",
        "INTEGER_POSITIVE",
        "INTEGER_NEGATIVE",
        "INTEGER_ZERO_OR_POSITIVE",
        "PERCENTAGE",
        "UNIT_INTERVAL",
    }
)
INTEGER_TYPES = frozenset(
    {"INTEGER", "INTEGER_POSITIVE", "INTEGER_NEGATIVE", "INTEGER_ZERO_OR_POSITIVE"}
)
TEXT_TYPES = frozenset({"TEXT", "LONG_TEXT"})
# Aggregation types for which DHIS2 stores zeros whatever zeroIsSignificant says.
_AVERAGES = frozenset({"AVERAGE", "AVERAGE_SUM_ORG_UNIT"})

Combo = tuple[str, str, str]  # dataElement, categoryOptionCombo, attributeOptionCombo
Key = tuple[str, str, str, str]  # dataElement, orgUnit, categoryOptionCombo, attributeOptionCombo


# -- the metadata document ------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class IdRef(_Wire):
    id: str


class CategoryComboMeta(_Wire):
    id: str
    name: str | None = None
    categoryOptionCombos: list[IdRef] | None = None


class DataElementMeta(_Wire):
    id: str
    name: str | None = None
    valueType: str = "NUMBER"
    zeroIsSignificant: bool = False
    aggregationType: str | None = None
    categoryCombo: CategoryComboMeta | None = None


class DataSetElementMeta(_Wire):
    dataElement: DataElementMeta
    categoryCombo: CategoryComboMeta | None = None  # per-data-set override


class DataInputPeriodMeta(_Wire):
    period: IdRef | None = None
    openingDate: str | None = None
    closingDate: str | None = None


class DataSetMeta(_Wire):
    id: str
    name: str | None = None
    periodType: str | None = None
    expiryDays: float = 0
    openFuturePeriods: int = 0
    dataInputPeriods: list[DataInputPeriodMeta] = Field(default_factory=list)
    categoryCombo: CategoryComboMeta | None = None
    dataSetElements: list[DataSetElementMeta] = Field(default_factory=list)
    organisationUnits: list[IdRef] = Field(default_factory=list)

    def combo_options(self) -> dict[str, set[str]]:
        """Category combo id → its option combo ids, pooled from every place listed.

        A combo may be listed with its option combos in one place and bare in
        another (the data set's own combo is often the elements' default one).
        """
        pooled: dict[str, set[str]] = {}
        combos = [self.categoryCombo] + [
            c
            for dse in self.dataSetElements
            for c in (dse.categoryCombo, dse.dataElement.categoryCombo)
        ]
        for combo in combos:
            if combo is not None and combo.categoryOptionCombos:
                pooled.setdefault(combo.id, set()).update(c.id for c in combo.categoryOptionCombos)
        return pooled

    def default_coc(self) -> str:
        """The default option combo: the sole one of a combo named "default"."""
        pooled = self.combo_options()
        combos = [self.categoryCombo] + [
            c
            for dse in self.dataSetElements
            for c in (dse.categoryCombo, dse.dataElement.categoryCombo)
        ]
        for combo in combos:
            if combo is not None and (combo.name or "").lower() == "default":
                options = pooled.get(combo.id, set())
                if len(options) == 1:
                    return next(iter(options))
        return FALLBACK_DEFAULT_COC

    def elements(self) -> dict[str, DataSetElementMeta]:
        return {dse.dataElement.id: dse for dse in self.dataSetElements}


def is_zero_insignificant(element: DataElementMeta, text: str) -> bool:
    """DHIS2's ``dataValueIsZeroAndInsignificant``: such a zero is never stored
    (dhis2-core ``ValidationUtils.java``)."""
    return (
        element.valueType in NUMERIC_TYPES
        and bool(_ZERO.match(text))
        and not element.zeroIsSignificant
        and (element.aggregationType or "SUM") not in _AVERAGES
    )


# -- value formatting -----------------------------------------------------------


def decimal_text(number: Decimal) -> str:
    """A number as DHIS2's NUMBER regex accepts it: no exponent, no trailing zeros."""
    if number == number.to_integral_value():
        return str(int(number))
    text = format(number.normalize(), "f")
    return text


def format_number(value: int | float) -> str | None:
    """``5`` and ``5.0`` → ``"5"``; ``1e-7`` → ``"0.0000001"``; NaN/inf → None."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return decimal_text(Decimal(repr(value)))


def normalise_stored(text: str, value_type: str) -> str:
    """How a stored value compares: numbers canonically (``"5.0"`` equals ``"5"``)."""
    stripped = text.strip()
    if value_type in NUMERIC_TYPES or value_type in TEXT_TYPES:
        try:
            number = Decimal(stripped)
        except InvalidOperation:
            return stripped
        if number.is_finite():
            return decimal_text(number)
    return stripped


def value_problem(text: str, value_type: str) -> str | None:
    """Why DHIS2 would refuse ``text`` for ``value_type`` (E7619), or None."""
    checks = {
        "NUMBER": (_NUMBER, "is not a number DHIS2 accepts"),
        "INTEGER": (_INTEGER, "is not an integer"),
        "INTEGER_POSITIVE": (_INTEGER_POSITIVE, "is not a positive integer"),
        "INTEGER_ZERO_OR_POSITIVE": (
            _INTEGER_ZERO_OR_POSITIVE,
            "is not zero or a positive integer",
        ),
        "INTEGER_NEGATIVE": (_INTEGER_NEGATIVE, "is not a negative integer"),
    }
    if value_type in checks:
        pattern, words = checks[value_type]
        return None if pattern.match(text) else f"{text} {words}"
    if value_type in ("PERCENTAGE", "UNIT_INTERVAL"):
        top = 100 if value_type == "PERCENTAGE" else 1
        if not _NUMBER.match(text) or not 0 <= Decimal(text) <= top:
            return f"{text} is not between 0 and {top}"
        return None
    if value_type in TEXT_TYPES:
        return None
    return f"value type {value_type} cannot hold a number from CHT"


# -- periods and locks ------------------------------------------------------------


def _month_end(month: Month) -> date:
    return date(month.year, month.month, calendar.monthrange(month.year, month.month)[1])


def _parse_day(text: str | None) -> datetime | None:
    if not text:
        return None
    match = re.match(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}:\d{2}))?", text)
    if not match:
        return None
    return datetime.fromisoformat(f"{match.group(1)}T{match.group(2) or '00:00:00'}")


def lock_problem(meta: DataSetMeta, period: Period, now: datetime) -> tuple[str, str] | None:
    """(code, message) if DHIS2 would refuse this period as locked (E7640/E7641/E7643)."""
    # DataSet.isLocked: now after period end date (midnight) + expiryDays.
    if meta.expiryDays > 0:
        end = datetime.combine(_month_end(period.last), datetime.min.time())
        if now > end + timedelta(days=meta.expiryDays):
            return (
                "period_expired",
                f"Period {period.iso} is locked in data set {meta.id}: it expired "
                f"{meta.expiryDays:g} days after the period ended (DHIS2 server date "
                f"{now:%Y-%m-%d}). An admin can raise expiryDays or add a lock exception.",
            )
    # PeriodType.getFuturePeriod: 0 open future periods means even the current one is closed.
    current = Period.containing(Month.containing(now.date()), period.period_type)
    latest_open = current.shift(meta.openFuturePeriods - 1)
    if period > latest_open:
        return (
            "period_not_open_yet",
            f"Period {period.iso} is after the latest open period {latest_open.iso} of data set "
            f"{meta.id} (openFuturePeriods={meta.openFuturePeriods}); push it once the month "
            "has ended, or ask an admin to open future periods.",
        )
    if meta.dataInputPeriods:
        for dip in meta.dataInputPeriods:
            if dip.period is None or dip.period.id != period.iso:
                continue
            opening, closing = _parse_day(dip.openingDate), _parse_day(dip.closingDate)
            if (opening is None or opening <= now) and (closing is None or now <= closing):
                return None
        return (
            "period_input_closed",
            f"Period {period.iso} is not open for data input in data set {meta.id} at this "
            "time (its data input periods do not allow it).",
        )
    return None


# -- preflight --------------------------------------------------------------------


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
    def blocked(self) -> bool:
        """An error finding means nothing of this data set may be posted."""
        return any(f.level == "error" for f in self.findings)


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


def check(
    meta: DataSetMeta | None,
    data_set: str,
    period: str,
    rows: list[DataValue],
    now: datetime,
    *,
    check_locks: bool = True,
) -> Preflight:
    """Findings and the rows fit to post. ``meta`` None means DHIS2 answered 404."""
    pre = Preflight(data_set=data_set, period=period)
    if meta is None:
        pre.found = False
        pre.findings.append(
            Finding(
                level="error",
                code="data_set_not_found",
                message=f"Data set {data_set} does not exist in DHIS2 (or this DHIS2 user "
                "cannot see it): nothing was sent for it.",
                ids=[data_set],
            )
        )
        return pre
    pre.name, pre.period_type = meta.name, meta.periodType
    pre.default_coc = meta.default_coc()
    elements = meta.elements()

    parsed: Period | None = None
    try:
        check_period_type(meta.periodType or "")
    except PeriodError as exc:
        pre.findings.append(
            Finding(
                level="error",
                code="period_type_unsupported",
                message=f"Data set {data_set}: {exc}. Nothing was sent for it.",
                ids=[data_set],
            )
        )
    else:
        try:
            parsed = Period.parse(period)
        except PeriodError as exc:
            pre.findings.append(
                Finding(level="error", code="period_invalid", message=str(exc), ids=[period])
            )
        if parsed is not None and parsed.period_type != meta.periodType:
            pre.findings.append(
                Finding(
                    level="error",
                    code="period_type_mismatch",
                    message=f"Period {period} is {parsed.period_type} but data set {data_set} "
                    f"is {meta.periodType}; nothing was sent for it.",
                    ids=[data_set, period],
                )
            )
            parsed = None

    unknown = sorted({r.dataElement for r in rows if r.dataElement not in elements})
    if unknown:
        pre.findings.append(
            Finding(
                level="error",
                code="data_elements_not_in_data_set",
                message=f"Data elements {_ids(unknown)} are mapped to data set {data_set} in CHT "
                "but are not part of it in DHIS2; fix the mapping or the data set. Nothing was "
                "sent for this data set.",
                ids=unknown,
            )
        )
    if parsed is not None and check_locks:
        lock = lock_problem(meta, parsed, now)
        if lock:
            pre.findings.append(
                Finding(level="error", code=lock[0], message=lock[1], ids=[data_set, period])
            )

    assigned = {ou.id for ou in meta.organisationUnits}
    pre.unassigned_org_units = sorted({r.orgUnit for r in rows} - assigned)
    if pre.unassigned_org_units:
        pre.findings.append(
            Finding(
                level="warning",
                code="org_units_not_assigned",
                message=f"Org units {_ids(pre.unassigned_org_units)} are not assigned to data set "
                f"{data_set}; DHIS2 accepts their values but they will not show in its data "
                "entry form. The values were sent.",
                ids=pre.unassigned_org_units,
            )
        )
    if pre.blocked:
        return pre

    combos = meta.combo_options()
    aoc_options = combos.get(meta.categoryCombo.id, set()) if meta.categoryCombo else set()
    seen: set[Key] = set()
    bad: dict[str, set[str]] = {"coc": set(), "aoc": set(), "value": set(), "dup": set()}
    counts: Counter[str] = Counter()
    for row in rows:
        dse = elements[row.dataElement]
        element = dse.dataElement
        coc = row.categoryOptionCombo or pre.default_coc
        aoc = row.attributeOptionCombo or pre.default_coc
        key: Key = (row.dataElement, row.orgUnit, coc, aoc)
        text = format_number(row.value)
        combo = dse.categoryCombo or element.categoryCombo
        coc_options = combos.get(combo.id, set()) if combo else set()
        reason: str | None = None
        kind = "value"
        if key in seen:
            reason = "the same data value key appears twice in the engine output"
            kind = "dup"
        elif coc_options and coc not in coc_options:
            reason = (
                f"category option combo {coc} is not part of the category combo "
                f"{combo.id if combo else '?'} of data element {row.dataElement}"
            )
            kind = "coc"
        elif aoc_options and aoc not in aoc_options:
            reason = (
                f"attribute option combo {aoc} is not part of the category combo "
                f"{meta.categoryCombo.id if meta.categoryCombo else '?'} of data set {data_set}"
            )
            kind = "aoc"
        elif text is None:
            reason = f"{row.value} is not a finite number"
        else:
            zero = is_zero_insignificant(element, text)
            if not zero:
                if element.valueType in INTEGER_TYPES and not _INTEGER.match(text):
                    problem: str | None = (
                        f"{text} is not a whole number; data element {row.dataElement} "
                        f"is {element.valueType}"
                    )
                else:
                    problem = value_problem(text, element.valueType)
                    if problem:
                        problem += f" (data element {row.dataElement} is {element.valueType})"
                reason = problem
        seen.add(key)
        if reason:
            bad[kind].add({"coc": coc, "aoc": aoc}.get(kind, row.dataElement))
            counts[kind] += 1
            pre.rejected.append(_rejected(row, period, text, reason))
            continue
        assert text is not None
        pre.ready.append(
            ReadyValue(
                row=row,
                key=key,
                text=text,
                value_type=element.valueType,
                zero_insignificant=is_zero_insignificant(element, text),
            )
        )
    labels = {
        "coc": ("category_option_combo_invalid", "category option combos"),
        "aoc": ("attribute_option_combo_invalid", "attribute option combos"),
        "value": ("values_invalid", "values of data elements"),
        "dup": ("duplicate_rows", "duplicate rows of data elements"),
    }
    for kind, ids in bad.items():
        if ids:
            code, words = labels[kind]
            count = counts[kind]
            pre.findings.append(
                Finding(
                    level="warning",
                    code=code,
                    message=f"{count} rows were not sent because DHIS2 would refuse them: "
                    f"{words} {_ids(sorted(ids))} (see the rejected rows).",
                    ids=sorted(ids),
                )
            )
    return pre
