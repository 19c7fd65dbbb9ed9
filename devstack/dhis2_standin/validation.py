"""Value-type checks and conflict objects, in the words each DHIS2 release uses.

Regexes are ``MathUtils``'s (dhis2.md §5.5), identical in 2.36 and 2.41. Messages
are the ``ErrorCode`` templates of 2.41 with the noted 2.37-2.39.0 variants, and
the hard-coded 2.36 strings (§2.3).

Texts are ``i18n_global.properties`` (2.36.13.2 and 2.41.9.1
dhis-service-core/src/main/resources): a key with no entry there (e.g.
``value_not_zero_or_positive_integer``) is printed as the key itself, as
``I18n.getString(key)`` falls back to the key (2.41.9.1 I18n.java:52-75).
Message arguments are the *raw* entry fields, so a period given only at set level
prints as ``null``; 2.36 prints the resolved ids instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .versions import Dhis2Version

NUMBER_RE = re.compile(r"^(-?0|-?[1-9]\d*)(\.\d+)?$")
INT_RE = re.compile(r"^(0|-?[1-9]\d*)$")
POSITIVE_INT_RE = re.compile(r"^[1-9]\d*$")
ZERO_OR_POSITIVE_INT_RE = re.compile(r"(^0$)|(^[1-9]\d*$)")
NEGATIVE_INT_RE = re.compile(r"^-[1-9]\d*$")
ZERO_RE = re.compile(r"^0(\.0*)?$")
BOOL_VALUES = {"true", "false", "1", "0", "t", "f"}
MAX_VALUE_LENGTH = 50_000
MAX_COMMENT_LENGTH = 50_000
MAX_STORED_BY_LENGTH = 255

NUMERIC_TYPES = {
    "NUMBER",
    "INTEGER",
    "INTEGER_POSITIVE",
    "INTEGER_NEGATIVE",
    "INTEGER_ZERO_OR_POSITIVE",
    "PERCENTAGE",
    "UNIT_INTERVAL",
}

# i18n_global.properties, 2.36.13.2 and 2.41.9.1 (the same lines in both; no entry for
# value_not_zero_or_positive_integer, value_not_valid_datetime, value_not_coordinate,
# value_not_url, so those print as their key)
I18N = {
    "value_length_greater_than_max_length": "Data value is greater than max length",
    "value_not_numeric": "Data value is not numeric",
    "value_not_unit_interval": "Data value is not a unit interval",
    "value_not_percentage": "Data value is not a percentage",
    "value_not_integer": "Data value is not an integer",
    "value_not_positive_integer": "Data value is not a positive integer",
    "value_not_negative_integer": "Data value is not a negative integer",
    "value_not_bool": "Data value is not a boolean",
    "value_not_true_only": "Data value is not true",
    "value_not_valid_date": "Data value is not a valid date",
    "value_not_valid_letter": "Data value is not a valid letter",
    "comment_length_greater_than_max_length": "Comment is greater than max length",
    "stored_by_length_greater_than_max_length": "Stored by is greater than max length",
}


def is_numeric(value: str) -> bool:
    return len(value) < 250 and NUMBER_RE.match(value) is not None


def value_type_error(value: str | None, value_type: str) -> str | None:
    """The i18n key of the first rule ``value`` breaks, or None (``ValidationUtils``)."""
    if value is None or value.strip() == "":
        return None
    if len(value) > MAX_VALUE_LENGTH:
        return "value_length_greater_than_max_length"
    checks: dict[str, tuple[bool, str]] = {
        "NUMBER": (is_numeric(value), "value_not_numeric"),
        "UNIT_INTERVAL": (is_numeric(value) and 0 <= float(value) <= 1, "value_not_unit_interval"),
        # MathUtils.isPercentage: isNumeric and 0..100, decimals allowed (2.36.13.2:300-310)
        "PERCENTAGE": (is_numeric(value) and 0 <= float(value) <= 100, "value_not_percentage"),
        "INTEGER": (INT_RE.match(value) is not None, "value_not_integer"),
        "INTEGER_POSITIVE": (
            POSITIVE_INT_RE.match(value) is not None,
            "value_not_positive_integer",
        ),
        "INTEGER_NEGATIVE": (
            NEGATIVE_INT_RE.match(value) is not None,
            "value_not_negative_integer",
        ),
        "INTEGER_ZERO_OR_POSITIVE": (
            ZERO_OR_POSITIVE_INT_RE.search(value) is not None,
            "value_not_zero_or_positive_integer",
        ),
        "BOOLEAN": (value.lower() in BOOL_VALUES, "value_not_bool"),
        "TRUE_ONLY": (value == "true", "value_not_true_only"),
        "DATE": (_is_date(value), "value_not_valid_date"),
        "DATETIME": (_is_datetime(value), "value_not_valid_datetime"),
        "COORDINATE": (
            re.fullmatch(r"\[\s*-?\d+(\.\d+)?\s*,\s*-?\d+(\.\d+)?\s*\]", value) is not None,
            "value_not_coordinate",
        ),
        "URL": (re.match(r"^(https?|ftp)://\S+$", value) is not None, "value_not_url"),
        "LETTER": (len(value) == 1 and value.isalpha(), "value_not_valid_letter"),
    }
    ok, key = checks.get(value_type, (True, ""))
    return None if ok else key


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def is_zero_and_insignificant(value: str | None, de: dict[str, object]) -> bool:
    """``ValidationUtils.dataValueIsZeroAndInsignificant``."""
    return (
        value is not None
        and de.get("valueType", "NUMBER") in NUMERIC_TYPES
        and ZERO_RE.match(value) is not None
        and not de.get("zeroIsSignificant", False)
        and de.get("aggregationType") not in ("AVERAGE", "AVERAGE_SUM_ORG_UNIT")
    )


# -- conflicts ----------------------------------------------------------------


@dataclass
class Conflict:
    """One conflict before rendering; ``objects`` is ordered like DHIS2's map."""

    value: str
    object: str | None = None
    objects: dict[str, str | None] = field(default_factory=dict)
    error_code: str | None = None
    property: str | None = None
    indexes: list[int] | None = None

    def group_key(self) -> tuple[Any, ...]:
        if self.error_code is None:
            return (self.object, self.value)
        return (self.error_code, tuple(self.objects.items()))

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.object is not None:
            out["object"] = self.object
        if self.error_code is not None:
            out["objects"] = dict(self.objects)
        out["value"] = self.value
        if self.error_code is not None:
            out["errorCode"] = self.error_code
            if self.property is not None:
                out["property"] = self.property
            if self.indexes is not None:
                out["indexes"] = list(self.indexes)
        return out


def _q(arg: str | None) -> str:
    return "null" if arg is None else str(arg)


def _coded(
    code: str, prop: str | None, objects: dict[str, str | None], message: str, index: int | None
) -> Conflict:
    first = next(iter(objects.values()), None)
    return Conflict(message, first, objects, code, prop, None if index is None else [index])


class Conflicts:
    """Builds conflicts for one release; ``raw_*`` are the entry's own fields."""

    def __init__(self, version: Dhis2Version) -> None:
        self.v = version

    def _pick(self, coded: Conflict, legacy: tuple[str | None, str]) -> Conflict:
        if self.v.extended_conflicts:
            return coded
        return Conflict(legacy[1], legacy[0])

    # set level
    def dataset_not_found(self, ds: str) -> Conflict:
        return self._pick(
            _coded(
                "E7600",
                "dataSet",
                {"dataSet": ds},
                f"Data set not found or not accessible: `{ds}`",
                None,
            ),
            (ds, "Data set not found or not accessible"),
        )

    def dataset_required(self) -> Conflict:
        # 2.36.13.2 DVSS:939-942; 2.38.3 VAL:207-214 (E7602)
        return self._pick(
            _coded("E7602", "dataSet", {}, "A valid dataset is required", None),
            ("DATA_IMPORT_STRICT_DATA_ELEMENTS", "A valid dataset is required"),
        )

    def dataset_not_writable(self, ds_raw: str, ds_uid: str) -> Conflict:
        """E7601: no data write sharing on the set-level data set (aborts the import)."""
        # 2.36.13.2 DVSS:931-936; 2.41.9.1 VAL validateDataSetIsAccessibleByUser
        return self._pick(
            _coded(
                "E7601",
                "dataSet",
                {"dataSet": ds_raw},
                f"User does not have write access for DataSet: `{ds_raw}`",
                None,
            ),
            (ds_raw, f"User does not have write access for DataSet: {ds_uid}"),
        )

    def outer_org_unit_not_found(self, ou: str, ds: str | None) -> Conflict:
        objects: dict[str, str | None] = {"organisationUnit": ou}
        if ds is not None:
            objects["dataSet"] = ds
        return self._pick(
            _coded(
                "E7603", "orgUnit", objects, f"Org unit not found or not accessible: `{ou}`", None
            ),
            (ou, "Org unit not found or not accessible"),
        )

    def outer_aoc_not_found(self, aoc: str, ds: str | None) -> Conflict:
        objects: dict[str, str | None] = {"categoryOptionCombo": aoc}
        if ds is not None:
            objects["dataSet"] = ds
        return self._pick(
            _coded(
                "E7604",
                "attributeOptionCombo",
                objects,
                f"Attribute option combo not found or not accessible: `{aoc}`",
                None,
            ),
            (aoc, "Attribute option combo not found or not accessible"),
        )

    # per value
    def de_not_found(self, i: int, de: str | None) -> Conflict:
        return self._pick(
            _coded(
                "E7610",
                "dataElement",
                {"dataElement": de},
                f"Data element not found or not accessible: `{_q(de)}`",
                i,
            ),
            (de, "Data element not found or not accessible"),
        )

    def period_not_valid(self, i: int, pe: str | None) -> Conflict:
        return self._pick(
            _coded("E7611", "period", {"period": pe}, f"Period not valid: `{_q(pe)}`", i),
            (pe, "Period not valid"),
        )

    def ou_not_found(self, i: int, ou: str | None) -> Conflict:
        return self._pick(
            _coded(
                "E7612",
                "orgUnit",
                {"organisationUnit": ou},
                f"Organisation unit not found or not accessible: `{_q(ou)}`",
                i,
            ),
            (ou, "Organisation unit not found or not accessible"),
        )

    def coc_not_found(self, i: int, coc: str | None) -> Conflict:
        return self._pick(
            _coded(
                "E7613",
                "categoryOptionCombo",
                {"categoryOptionCombo": coc},
                f"Category option combo not found or not accessible for writing data: `{_q(coc)}`",
                i,
            ),
            (coc, "Category option combo not found or not accessible for writing data"),
        )

    def aoc_not_found(self, i: int, aoc: str | None) -> Conflict:
        return self._pick(
            _coded(
                "E7615",
                "attributeOptionCombo",
                {"categoryOptionCombo": aoc},
                f"Attribute option combo not found or not accessible for writing data: `{_q(aoc)}`",
                i,
            ),
            (aoc, "Attribute option combo not found or not accessible for writing data"),
        )

    def ou_not_in_hierarchy(self, i: int, ou: str | None, user_uid: str, username: str) -> Conflict:
        # 2.37.0+ VAL validateDataValueOrgUnitInUserHierarchy: currentUser.getUid();
        # 2.36.13.2 DVSS:1115-1119: the username in the text
        return self._pick(
            _coded(
                "E7617",
                "orgUnit",
                {"organisationUnit": ou, "user": user_uid},
                f"Organisation unit: `{_q(ou)}` not in hierarchy of current user: `{user_uid}`",
                i,
            ),
            (ou, f"Organisation unit not in hierarchy of current user: {username}"),
        )

    def coc_not_writable(self, i: int, coc_raw: str | None, option: str) -> Conflict:
        """E7614: a category option of the COC lacks data write sharing."""
        # 2.41.9.1 VAL validateDataValueCategoryOptionComboAccess; 2.36.13.2 DVSS:1081-1090
        # + DefaultAggregateAccessManager.canWrite 2.36.13.2:145-164
        return self._pick(
            _coded(
                "E7614",
                "categoryOptionCombo",
                {"categoryOptionCombo": coc_raw, "categoryOption": option},
                f"Category option combo: `{_q(coc_raw)}` option not accessible: `{option}`",
                i,
            ),
            ("dataValueSet", f"User has no data write access for CategoryOption: {option}"),
        )

    def aoc_not_writable(self, i: int, aoc_raw: str | None, option: str) -> Conflict:
        """E7616: a category option of the AOC lacks data write sharing."""
        # 2.41.9.1 VAL validateDataValueAttrOptionComboAccess; 2.36.13.2 DVSS:1100-1109
        return self._pick(
            _coded(
                "E7616",
                "attributeOptionCombo",
                {"categoryOptionCombo": aoc_raw, "categoryOption": option},
                f"Attribute option combo: `{_q(aoc_raw)}` option not accessible: `{option}`",
                i,
            ),
            ("dataValueSet", f"User has no data write access for CategoryOption: {option}"),
        )

    def value_not_defined(self, i: int, de: str | None) -> Conflict:
        return self._pick(
            _coded(
                "E7618",
                "value",
                {"dataElement": de},
                f"Data value or comment not specified for data element: `{_q(de)}`",
                i,
            ),
            ("Value", f"Data value or comment not specified for data element: {de}"),
        )

    def value_not_valid(self, i: int, de: str, value: str, key: str) -> Conflict:
        text = I18N.get(key, key)
        if self.v.e7619_new_text:
            message = f"Value must match value type of data element `{de}`: `{text}`"
        else:
            message = f"Value must match data element's `{de}` type constraints: {text}"
        return self._pick(
            _coded("E7619", "value", {"dataElement": de, "value": key}, message, i),
            (value, f"{text}, must match data element type: {de}"),
        )

    def comment_not_valid(self, i: int, comment: str, key: str) -> Conflict:
        text = I18N.get(key, key)
        return self._pick(
            _coded("E7620", "comment", {"comment": key}, f"Invalid comment: {text}", i),
            ("Comment", text),  # 2.36.13.2 DVSS:1145
        )

    def invalid_option(self, i: int, de: str, value: str) -> Conflict:
        message = f"Data value is not a valid option of the data element option set: `{de}`"
        return self._pick(
            _coded("E7621", "value", {"dataElement": de}, message, i),
            (value, f"Data value is not a valid option of the data element option set: {de}"),
        )

    # 2.36 puts the raw *value* in the object (2.36.13.2 DVSS:1168-1169,1182-1183)
    def coc_required(self, i: int, value: str | None) -> Conflict:
        message = "Category option combo is required but is not specified"
        return self._pick(_coded("E7630", "categoryOptionCombo", {}, message, i), (value, message))

    def aoc_required(self, i: int, value: str | None) -> Conflict:
        message = "Attribute option combo is required but is not specified"
        return self._pick(_coded("E7631", "attributeOptionCombo", {}, message, i), (value, message))

    def period_type_not_valid(self, i: int, pe: str | None, iso: str, de: str) -> Conflict:
        return self._pick(
            _coded(
                "E7632",
                None,
                {"period": pe, "dataElement": de},
                f"Period type of period: `{_q(pe)}` not valid for data element: `{de}`",
                i,
            ),
            # 2.36.13.2 DVSS:1195-1197: object the raw period, text the ISO period
            (pe, f"Period type of period: {iso} not valid for data element: {de}"),
        )

    def de_not_in_dataset(self, i: int, de: str, data_sets: str) -> Conflict:
        noun = "dataset(s)" if self.v.e7633_plural else "dataset"
        return self._pick(
            _coded(
                "E7633",
                "dataElement",
                {"dataElement": de, "dataSet": data_sets},
                f"Data element: `{de}` is not part of {noun}: `{data_sets}`",
                i,
            ),
            (
                "DATA_IMPORT_STRICT_DATA_ELEMENTS",
                f"Data element: {de} is not part of dataset: {data_sets}",
            ),
        )

    def coc_not_in_combo(self, i: int, coc: str, de: str) -> Conflict:
        return self._pick(
            _coded(
                "E7634",
                "categoryOptionCombo",
                {"categoryOptionCombo": coc, "dataElement": de},
                f"Category option combo: `{coc}` must be part of category combo of "
                f"data element: `{de}`",
                i,
            ),
            (
                coc,
                f"Category option combo: {coc} must be part of category combo of "
                f"data element: {de}",
            ),
        )

    def aoc_not_in_combo(self, i: int, aoc: str, de: str) -> Conflict:
        tail = f"must be part of category combo of data sets of data element: `{de}`"
        return self._pick(
            _coded(
                "E7635",
                "attributeOptionCombo",
                {"categoryOptionCombo": aoc, "dataElement": de},
                f"Attribute option combo: `{aoc}` {tail}",
                i,
            ),
            (aoc, f"Attribute option combo: {aoc} {tail.replace('`', '')}"),
        )

    def ou_not_assigned(self, i: int, ou: str, de: str) -> Conflict:
        return self._pick(
            _coded(
                "E7636",
                "orgUnit",
                {"organisationUnit": ou, "dataElement": de},
                f"Data element: `{de}` must be assigned through data sets to "
                f"organisation unit: `{ou}`",
                i,
            ),
            (
                ou,
                f"Data element: {de} must be assigned through data sets to organisation unit: {ou}",
            ),
        )

    def stored_by_not_valid(self, i: int, stored_by: str, key: str) -> Conflict:
        text = I18N.get(key, key)
        return self._pick(
            _coded("E7637", "storedBy", {"storedBy": key}, f"Invalid storedBy: {text}", i),
            (stored_by, text),
        )

    def period_outside_aoc(
        self, i: int, pe_raw: str | None, aoc_raw: str | None, ids: tuple[str, str, str]
    ) -> Conflict:
        """E7638; ``ids`` are the resolved (period ISO, AOC, org unit)."""
        pe, aoc, ou = ids
        return self._pick(
            _coded(
                "E7638",
                "period",
                {"period": pe_raw, "categoryOptionCombo": aoc_raw},
                f"Period: `{_q(pe_raw)}` is not within date range of attribute option combo: "
                f"`{_q(aoc_raw)}`",
                i,
            ),
            # 2.36.13.2 DVSS:1260-1262: the object is the org unit
            (ou, f"Period: {pe} is not within date range of attribute option combo: {aoc}"),
        )

    def ou_outside_aoc(
        self, i: int, ou_raw: str | None, aoc_raw: str | None, ou: str, aoc: str
    ) -> Conflict:
        return self._pick(
            _coded(
                "E7639",
                "orgUnit",
                {"organisationUnit": ou_raw, "categoryOptionCombo": aoc_raw},
                f"Organisation unit: `{_q(ou_raw)}` is not valid for attribute option combo: "
                f"`{_q(aoc_raw)}`",
                i,
            ),
            # 2.36.13.2 DVSS:1271-1273
            (ou, f"Organisation unit: {ou} is not valid for attribute option combo: {aoc}"),
        )

    def no_file_value(self, i: int, de_raw: str | None, de: str) -> Conflict:
        """E7645: importStrategy=DELETE of a file-type value that does not exist."""
        return self._pick(
            _coded(
                "E7645",
                "dataElement",
                {"dataElement": de_raw},
                "No data value for file resource exist for the given combination for data "
                f"element: `{_q(de_raw)}`",
                i,
            ),
            # 2.36.13.2 DVSS:1356-1357
            (de, "No data value for file resource exist for the given combination"),
        )

    def expired(self, i: int, pe_raw: str | None, pe: str, ds: str) -> Conflict:
        return self._pick(
            _coded(
                "E7640",
                "period",
                {"period": pe_raw, "dataSet": ds},
                f"Current date is past expiry days for period: `{_q(pe_raw)}`  "
                f"and data set: `{ds}`",
                i,
            ),
            (pe, f"Current date is past expiry days for period {pe} and data set: {ds}"),
        )

    def after_future(
        self, i: int, pe_raw: str | None, pe: str, de: str, ds: str, latest: str
    ) -> Conflict:
        if self.v.e7641_new_text:
            coded = _coded(
                "E7641",
                "period",
                {"period": pe_raw, "dataElement": de, "dataSet": ds},
                f"Period: `{_q(pe_raw)}` is after latest open future period: `{latest}` "
                f"for data element: `{de}` and data set: `{ds}`",
                i,
            )
        else:
            coded = _coded(
                "E7641",
                "period",
                {"period": pe_raw, "dataElement": de},
                f"Period: `{_q(pe_raw)}` is after latest open future period: `{latest}` "
                f"for data element: `{de}`",
                i,
            )
        legacy = f"Period: {pe} is after latest open future period: {latest} for data element: {de}"
        return self._pick(coded, (pe, legacy))

    def not_open(self, i: int, pe_raw: str | None, pe: str, ds: str, ou: str) -> Conflict:
        return self._pick(
            _coded(
                "E7643",
                "period",
                {"period": pe_raw, "dataSet": ds},
                f"Period: `{_q(pe_raw)}` is not open for this data set at this time: `{ds}`",
                i,
            ),
            # 2.36.13.2 DVSS:1335-1337: the object is the org unit
            (ou, f"Period: {pe} is not open for this data set at this time: {ds}"),
        )

    def already_approved(
        self,
        i: int,
        raw: tuple[str | None, str | None, str | None],
        ids: tuple[str, str, str],
        ds: str,
    ) -> Conflict:
        """E7642; ``raw`` and ``ids`` are (org unit, period, attribute option combo)."""
        ou_raw, pe_raw, aoc_raw = raw
        ou, pe, aoc = ids
        if self.v.e7642_new_text:
            # 2.39.0 ErrorCode.java E7642
            text = (
                f"Data already approved for data set: `{ds}` period: `{_q(pe_raw)}` "
                f"org unit: `{_q(ou_raw)}` attribute option combo: `{_q(aoc_raw)}`"
            )
        else:
            # 2.37.0 ErrorCode.java E7642
            text = (
                f"Data is already approved for data set: `{ds}` period: `{_q(pe_raw)}` "
                f"organisation unit: `{_q(ou_raw)}` attribute option combo: `{_q(aoc_raw)}`"
            )
        objects = {
            "organisationUnit": ou_raw,
            "period": pe_raw,
            "categoryOptionCombo": aoc_raw,
            "dataSet": ds,
        }
        return self._pick(
            _coded("E7642", None, objects, text, i),
            # 2.36.13.2 DVSS:1322-1325
            (
                ou,
                f"Data is already approved for data set: {ds} period: {pe} "
                f"organisation unit: {ou} attribute option combo: {aoc}",
            ),
        )

    def not_conform_to_open_periods(self, i: int, pe_raw: str | None, pe: str, ou: str) -> Conflict:
        """E7644: no data set of the element admits input now (element level)."""
        return self._pick(
            _coded(
                "E7644",
                "period",
                {"period": pe_raw},
                f"Period: `{_q(pe_raw)}` does not conform to the open periods of associated "
                "data sets",
                i,
            ),
            # 2.36.13.2 DVSS:1344-1345 (Period.getName() falls back to the ISO period)
            (ou, f"Period {pe} does not conform to the open periods of associated data sets"),
        )


def merge_conflicts(conflicts: list[Conflict]) -> list[Conflict]:
    """Group by error code + objects, merging indexes (``ImportSummary.addConflict``).

    Uncoded (2.36 style) conflicts collapse when (object, value) repeat, as
    2.36 kept them in a HashSet.
    """
    merged: dict[tuple[Any, ...], Conflict] = {}
    for c in conflicts:
        key = c.group_key()
        if key in merged:
            existing = merged[key]
            if existing.indexes is not None and c.indexes:
                existing.indexes.extend(i for i in c.indexes if i not in existing.indexes)
        else:
            merged[key] = Conflict(
                c.value,
                c.object,
                dict(c.objects),
                c.error_code,
                c.property,
                None if c.indexes is None else list(c.indexes),
            )
    return list(merged.values())
