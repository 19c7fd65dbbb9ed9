"""Preflight: what a DHIS2 data set says about the values the engine produced.

Pure functions over the one metadata document fetched per data set
(``GET /api/dataSets/{id}?fields=…``). Everything DHIS2 would
reject (or silently store wrongly) is caught here, before posting, so ops see
it in plain words naming the ids instead of as an E76xx conflict.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field

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
INTEGER_TEXT = re.compile(r"^(0|-?[1-9]\d*)$")
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
        "INTEGER": (INTEGER_TEXT, "is not an integer"),
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
