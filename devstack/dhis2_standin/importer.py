"""``POST /api/dataValueSets`` semantics: options, set-level aborts, per-value
validation in DHIS2's order (dhis2.md §2.3, first failure wins), then the write
rules of ``DefaultDataValueSetService.importDataValue`` (§5).

Period checks (E7640 expiry with lock exceptions, E7641, E7642 approval, E7643,
E7644) follow ``locking.py``. Up to 2.39.0 they run against one "approval data
set"; from 2.39.1 against the target data sets, each check all-or-any as the
``strictDataSet*`` options/settings say. Sharing: E7601 (set level), E7614/E7616
(category options). Every ``strict*``/``require*`` option is ORed with its system
setting.

Choices where the reference is silent (recorded, not observed):
- E7638/E7639 read ``startDate``/``endDate``/``organisationUnits`` off the attribute
  option combo itself (what its options give together); a data set's
  ``openPeriodsAfterCoEndDate`` is not modelled. File values are not validated
  beyond E7645.
- Approval: a (workflow, period, org unit, attribute option combo) is approved or
  not; approval levels and the "lowest approval" walk up the hierarchy are not
  modelled.
- ``deleted: true`` on a key that does not exist is written as a deleted row and
  counted ``imported`` (``saveDataValueCreate`` only ignores null values).
- A zero-insignificant value dropped on 2.37+ is neither counted nor added to
  ``rejectedIndexes``; CREATE/UPDATE/DELETE no-ops are ``ignored`` and rejected.
- 2.36: ``ignored`` = values - imported - updated - deleted, zero values are
  skipped before the existing check (the old value stays).
- The ``completeDate`` registration needs set-level dataSet, period and orgUnit.
  2.41+: ``true``/``false``/``yyyy-MM-dd`` and future dates clamp to today; a bad
  date fails the import. Up to 2.40 an unparseable date is treated as absent.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from . import locking
from .auth import User
from .metadata import Metadata
from .periods import Period, parse_period
from .store import AuditRow, Store, StoredValue
from .validation import (
    MAX_COMMENT_LENGTH,
    MAX_STORED_BY_LENGTH,
    Conflict,
    Conflicts,
    is_zero_and_insignificant,
    merge_conflicts,
    value_type_error,
)
from .versions import Dhis2Version

STRATEGIES = {
    "CREATE": "CREATE",
    "UPDATE": "UPDATE",
    "CREATE_AND_UPDATE": "CREATE_AND_UPDATE",
    "DELETE": "DELETE",
    "SYNC": "SYNC",
    "NEW": "CREATE",
    "UPDATES": "UPDATE",
    "NEW_AND_UPDATES": "CREATE_AND_UPDATE",
    "DELETES": "DELETE",
}
# ValueType.isFile: FILE_RESOURCE and IMAGE (2.41.9.1 ValueType.java)
FILE_TYPES = {"FILE_RESOURCE", "IMAGE"}
BOOL_TRUE = {"true", "on", "yes", "1"}
BOOL_FALSE = {"false", "off", "no", "0"}

# query parameter -> ImportOptions attribute (booleans)
BOOL_PARAMS = {
    "dryRun": "dry_run",
    "async": "async_",
    "force": "force",
    "preheatCache": "preheat_cache",
    "skipExistingCheck": "skip_existing_check",
    "skipAudit": "skip_audit",
    "strictPeriods": "strict_periods",
    "strictDataElements": "strict_data_elements",
    "strictCategoryOptionCombos": "strict_cocs",
    "strictAttributeOptionCombos": "strict_aocs",
    "strictOrganisationUnits": "strict_org_units",
    "strictDataSetApproval": "strict_ds_approval",
    "strictDataSetLocking": "strict_ds_locking",
    "strictDataSetInputPeriods": "strict_ds_input_periods",
    "requireCategoryOptionCombo": "require_coc",
    "requireAttributeOptionCombo": "require_aoc",
    "skipPatternValidation": "skip_pattern_validation",
    "ignoreEmptyCollection": "ignore_empty_collection",
    "firstRowIsHeader": "first_row_is_header",
    "skipLastUpdated": "skip_last_updated",
    "mergeDataValues": "merge_data_values",
    "skipCache": "skip_cache",
    "skipNotifications": "skip_notifications",
    "sharing": "sharing",
    "datasetAllowsPeriods": "dataset_allows_periods",
}
ENUM_PARAMS = {
    "importStrategy": ("strategy", list(STRATEGIES)),
    "strategy": ("strategy", list(STRATEGIES)),
    "mergeMode": ("merge_mode", ["MERGE", "REPLACE", "MERGE_ALWAYS", "MERGE_IF_NOT_NULL"]),
    "reportMode": ("report_mode", ["FULL", "ERRORS", "ERRORS_NOT_OWNER", "DEBUG"]),
}
SCHEME_PARAMS = {
    "idScheme": "idScheme",
    "dataElementIdScheme": "dataElementIdScheme",
    "orgUnitIdScheme": "orgUnitIdScheme",
    "categoryOptionComboIdScheme": "categoryOptionComboIdScheme",
    "dataSetIdScheme": "dataSetIdScheme",
}


class BadParameter(ValueError):
    """A query parameter Spring could not bind (400 in DHIS2)."""


@dataclass
class ImportOptions:
    """The ``ImportOptions`` a request binds to; ``echo`` renders ``importOptions``."""

    dry_run: bool = False
    async_: bool = False
    strategy: str = "CREATE_AND_UPDATE"
    merge_mode: str = "REPLACE"
    report_mode: str = "FULL"
    force: bool = False
    preheat_cache: bool | None = None
    skip_existing_check: bool = False
    skip_audit: bool = False
    sharing: bool = False
    skip_notifications: bool = False
    dataset_allows_periods: bool = False
    strict_periods: bool = False
    strict_data_elements: bool = False
    strict_cocs: bool = False
    strict_aocs: bool = False
    strict_org_units: bool = False
    strict_ds_approval: bool = False
    strict_ds_locking: bool = False
    strict_ds_input_periods: bool = False
    require_coc: bool = False
    require_aoc: bool = False
    skip_pattern_validation: bool = False
    ignore_empty_collection: bool = False
    first_row_is_header: bool = True
    skip_last_updated: bool = False
    merge_data_values: bool = False
    skip_cache: bool = False
    id_schemes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: dict[str, list[str]]) -> ImportOptions:
        """Bind query parameters like Spring does; unknown ones are ignored."""
        opts = cls()
        for name, values in args.items():
            raw = values[-1] if values else ""
            if name in BOOL_PARAMS:
                low = raw.strip().lower()
                if low == "":
                    continue
                if low not in BOOL_TRUE | BOOL_FALSE:
                    raise BadParameter(
                        f"Value '{raw}' is not valid for parameter {name}. "
                        "It should be of type boolean"
                    )
                setattr(opts, BOOL_PARAMS[name], low in BOOL_TRUE)
            elif name in ENUM_PARAMS:
                attr, allowed = ENUM_PARAMS[name]
                if raw.strip() == "":
                    continue
                if raw.strip() not in allowed:
                    raise BadParameter(
                        f"Value '{raw}' is not valid for parameter {name}. "
                        f"Valid values are: [{', '.join(allowed)}]"
                    )
                setattr(opts, attr, raw.strip())
            elif name in SCHEME_PARAMS and raw.strip():
                opts.id_schemes[SCHEME_PARAMS[name]] = raw.strip().upper()
        return opts

    @property
    def canonical_strategy(self) -> str:
        return STRATEGIES.get(self.strategy, "CREATE_AND_UPDATE")

    def scheme(self, specific: str) -> str:
        return self.id_schemes.get(specific) or self.id_schemes.get("idScheme") or "UID"

    def echo(self, version: Dhis2Version) -> dict[str, Any]:
        """Key order of the examples; strictDataSet* exist from 2.39.3."""
        schemes = {k: {"type": v} for k, v in self.id_schemes.items()}
        out: dict[str, Any] = {
            "idSchemes": schemes,
            "dryRun": self.dry_run,
            "async": self.async_,
            "importStrategy": self.strategy,
            "mergeMode": self.merge_mode,
            "reportMode": self.report_mode,
            "skipExistingCheck": self.skip_existing_check,
            "sharing": self.sharing,
            "skipNotifications": self.skip_notifications,
            "skipAudit": self.skip_audit,
            "datasetAllowsPeriods": self.dataset_allows_periods,
            "strictPeriods": self.strict_periods,
            "strictDataElements": self.strict_data_elements,
            "strictCategoryOptionCombos": self.strict_cocs,
            "strictAttributeOptionCombos": self.strict_aocs,
            "strictOrganisationUnits": self.strict_org_units,
        }
        if version.strict_dataset_options:
            out["strictDataSetApproval"] = self.strict_ds_approval
            out["strictDataSetLocking"] = self.strict_ds_locking
            out["strictDataSetInputPeriods"] = self.strict_ds_input_periods
        out.update(
            {
                "requireCategoryOptionCombo": self.require_coc,
                "requireAttributeOptionCombo": self.require_aoc,
                "skipPatternValidation": self.skip_pattern_validation,
                "ignoreEmptyCollection": self.ignore_empty_collection,
                "force": self.force,
                "firstRowIsHeader": self.first_row_is_header,
                "skipLastUpdated": self.skip_last_updated,
                "mergeDataValues": self.merge_data_values,
                "skipCache": self.skip_cache,
            }
        )
        return out


# system setting -> ImportOptions attribute it is ORed with
# (2.36.13.2 DVSS:820-833; 2.41.9.1 DVSS:1081-1110)
STRICT_SETTINGS = {
    "keyDataImportStrictPeriods": "strict_periods",
    "keyDataImportStrictDataElements": "strict_data_elements",
    "keyDataImportStrictCategoryOptionCombos": "strict_cocs",
    "keyDataImportStrictOrganisationUnits": "strict_org_units",
    "keyDataImportStrictAttributeOptionCombos": "strict_aocs",
    "keyDataImportRequireCategoryOptionCombo": "require_coc",
    "keyDataImportRequireAttributeOptionCombo": "require_aoc",
    "keyDataImportStrictDataSetApproval": "strict_ds_approval",
    "keyDataImportStrictDataSetLocking": "strict_ds_locking",
    "keyDataImportStrictDataSetInputPeriods": "strict_ds_input_periods",
}


@dataclass
class ImportContext:
    version: Dhis2Version
    metadata: Metadata
    store: Store
    user: User
    now: Callable[[], datetime]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Cell:
    """One value being checked: its index, resolved objects and raw (ou, period, aoc)."""

    index: int
    de: dict[str, Any]
    period: Period
    ou: dict[str, Any]
    aoc: dict[str, Any]
    raw: tuple[str | None, str | None, str | None]


class ImportFailure(Exception):
    """The reader or a header option failed: "The import process failed: ..."."""


# -- reading --------------------------------------------------------------


def decompress(body: bytes) -> bytes:
    """gzip or zip bodies are sniffed by magic bytes, no Content-Encoding needed."""
    if body[:2] == b"\x1f\x8b":
        return gzip.decompress(body)
    if body[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            names = zf.namelist()
            return zf.read(names[0]) if names else b""
    return body


def _text(value: Any, field_name: str) -> str | None:
    """Jackson's coercion of a JSON scalar to a Java String (numbers keep their literal)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    kind = "Array" if isinstance(value, list) else "Object"
    raise ImportFailure(
        f"Cannot deserialize value of type `java.lang.String` from {kind} value "
        f'(token `JsonToken.START_{kind.upper()}`) (through reference chain: field "{field_name}")'
    )


def _bool(value: Any, field_name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0", ""):
        return False
    raise ImportFailure(
        f'Cannot deserialize value of type `boolean` from String "{value}" '
        f'(through reference chain: field "{field_name}")'
    )


def read_payload(body: bytes) -> dict[str, Any]:
    """Parse like Jackson: numbers stay literal text, unknown fields are ignored."""
    data = decompress(body)
    text = data.decode("utf-8", "replace")
    if not text.strip():
        raise ImportFailure("No content to map due to end-of-input")
    try:
        parsed = json.loads(text, parse_float=str, parse_int=str)
    except json.JSONDecodeError as exc:
        ch = text[exc.pos] if exc.pos < len(text) else "EOF"
        raise ImportFailure(
            f"Unexpected character ('{ch}' (code {ord(ch) if len(ch) == 1 else -1})): expected a "
            "valid value (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
            f" at [line: {exc.lineno}, column: {exc.colno}]"
        ) from exc
    if not isinstance(parsed, dict):
        raise ImportFailure(
            "Cannot deserialize value of type `org.hisp.dhis.dxf2.datavalueset.DataValueSet` "
            "from non-Object value"
        )
    values = parsed.get("dataValues")
    if values is not None and not isinstance(values, list):
        raise ImportFailure(
            "Cannot deserialize value of type `java.util.ArrayList` from non-Array value"
        )
    for item in values or []:
        if not isinstance(item, dict):
            raise ImportFailure(
                "Cannot deserialize value of type `org.hisp.dhis.dxf2.datavalue.DataValue` "
                "from non-Object value"
            )
    return parsed


# -- the import -------------------------------------------------------------


def fmt_date(d: date) -> str:
    return d.strftime("%Y-%m-%d")


def _parse_loose_date(text: str) -> date | None:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")[:26]).date()
    except ValueError:
        try:
            return date.fromisoformat(text.strip()[:10])
        except ValueError:
            return None


def failure_summary(message: str, opts: ImportOptions, version: Dhis2Version) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "responseType": "ImportSummary",
        "status": "ERROR",
        "importOptions": opts.echo(version),
        "description": f"The import process failed: {message}",
        "importCount": {"imported": 0, "updated": 0, "ignored": 0, "deleted": 0},
    }
    if version.rejected_indexes:
        summary["rejectedIndexes"] = []
    summary["conflicts"] = []
    return summary


def import_data_value_set(body: bytes, opts: ImportOptions, ctx: ImportContext) -> dict[str, Any]:
    """Run one import and return the bare ImportSummary dict."""
    try:
        payload = read_payload(body)
        return _Import(payload, opts, ctx).run()
    except ImportFailure as exc:
        return failure_summary(str(exc), opts, ctx.version)


class _Import:
    def __init__(self, payload: dict[str, Any], opts: ImportOptions, ctx: ImportContext) -> None:
        self.p = payload
        self.opts = opts
        self.ctx = ctx
        self.v = ctx.version
        self.md = ctx.metadata
        self.c = Conflicts(ctx.version)
        self.conflicts: list[Conflict] = []
        self.rejected: list[int] = []
        self.count = {"imported": 0, "updated": 0, "ignored": 0, "deleted": 0}
        self.now = ctx.now()
        self.dry_run = opts.dry_run
        self.strategy = opts.canonical_strategy
        self._apply_payload_options()
        # options ORed with the system settings; the summary echoes the options alone
        self.strict = {
            attr: bool(getattr(opts, attr)) or bool(ctx.settings.get(key, False))
            for key, attr in STRICT_SETTINGS.items()
        }
        # InputUtils.canForceDataInput: superuser and force=true (2.41.9.1 DVSS:1111-1112)
        self.force = ctx.user.is_super and opts.force

    def _apply_payload_options(self) -> None:
        """Payload options beat the query string (``createDataValueSetImportContext``)."""
        if self.p.get("dryRun") is not None:
            self.dry_run = bool(_bool(self.p.get("dryRun"), "dryRun"))
        strategy = self.p.get("strategy")
        if strategy is not None:
            if strategy not in STRATEGIES:
                raise ImportFailure(
                    f"No enum constant org.hisp.dhis.importexport.ImportStrategy.{strategy}"
                )
            self.strategy = STRATEGIES[strategy]
        for key in (
            "idScheme",
            "dataElementIdScheme",
            "orgUnitIdScheme",
            "categoryOptionComboIdScheme",
            "dataSetIdScheme",
        ):
            if self.p.get(key):
                self.opts.id_schemes[key] = str(self.p[key]).upper()

    def summary(self, status: str, description: str, complete: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "responseType": "ImportSummary",
            "status": status,
            "importOptions": self.opts.echo(self.v),
            "description": description,
            "importCount": dict(self.count),
        }
        if self.v.rejected_indexes:
            out["rejectedIndexes"] = list(self.rejected)
        out["conflicts"] = [c.render() for c in merge_conflicts(self.conflicts)]
        if complete is not None:
            out["dataSetComplete"] = complete
        return out

    def run(self) -> dict[str, Any]:
        p = self.p
        ds_id = _text(p.get("dataSet"), "dataSet")
        outer_ou_id = _text(p.get("orgUnit"), "orgUnit")
        outer_aoc_id = _text(p.get("attributeOptionCombo"), "attributeOptionCombo")
        outer_pe_raw = _text(p.get("period"), "period")
        self.ds = (
            self.md.find("dataSets", ds_id, self.opts.scheme("dataSetIdScheme")) if ds_id else None
        )
        self.outer_ou = (
            self.md.find("organisationUnits", outer_ou_id, self.opts.scheme("orgUnitIdScheme"))
            if outer_ou_id
            else None
        )
        self.outer_aoc = (
            self.md.find(
                "categoryOptionCombos",
                outer_aoc_id,
                self.opts.scheme("categoryOptionComboIdScheme"),
            )
            if outer_aoc_id
            else None
        )
        self.outer_period = (
            parse_period(outer_pe_raw, self.v.iso_dash_daily) if outer_pe_raw else None
        )
        self.outer_pe_raw = outer_pe_raw

        # every set-level check runs and adds its conflict; any of them aborts
        # (2.36.13.2 DVSS:924-958; 2.41.9.1 VAL abortDataSetImport)
        aborts: list[Conflict] = []
        if ds_id and self.ds is None:
            aborts.append(self.c.dataset_not_found(ds_id))
        if self.ds is not None and ds_id and not self.ctx.user.can_data_write(self.ds["id"]):
            aborts.append(self.c.dataset_not_writable(ds_id, self.ds["id"]))
        if self.strict["strict_data_elements"] and self.ds is None:
            if self.v.strict_elements_needs_dataset:
                aborts.append(self.c.dataset_required())
        if outer_ou_id and self.outer_ou is None:
            aborts.append(self.c.outer_org_unit_not_found(outer_ou_id, ds_id))
        if outer_aoc_id and self.outer_aoc is None:
            aborts.append(self.c.outer_aoc_not_found(outer_aoc_id, ds_id))
        if aborts:
            self.conflicts.extend(aborts)
            return self.summary("ERROR", "Import process was aborted", None)

        complete = self._complete(_text(p.get("completeDate"), "completeDate"))
        values = p.get("dataValues") or []
        with self.ctx.store.lock:
            for index, entry in enumerate(values):
                self._value(index, entry)
        if not self.v.extended_conflicts:
            done = self.count["imported"] + self.count["updated"] + self.count["deleted"]
            self.count["ignored"] = len(values) - done
        status = "WARNING" if self.conflicts else "SUCCESS"
        return self.summary(status, "Import process completed successfully", complete)

    # -- completeness -------------------------------------------------------

    def _complete(self, raw: str | None) -> str:
        if self.ds is None or raw is None:
            return "false"
        today = self.now.date()
        when: date | None
        if self.v.minor >= 41:
            low = raw.strip().lower()
            if low == "true":
                when = today
            elif low == "false" or low == "":
                return "false"
            else:
                try:
                    when = date.fromisoformat(raw.strip()[:10])
                except ValueError as exc:
                    raise ImportFailure(
                        f"Invalid date format '{raw}', expected yyyy-MM-dd"
                    ) from exc
                when = min(when, today)
        else:
            when = _parse_loose_date(raw)
            if when is None:
                return "false"
        if self.outer_ou is None:
            self.conflicts.append(
                Conflict("Must be provided to complete data set", "OrganisationUnit")
            )
            return "false"
        if self.outer_period is None:
            self.conflicts.append(Conflict("Must be provided to complete data set", "Period"))
            return "false"
        if not self.dry_run or self.v.completion_ignores_dry_run:
            aoc = self.outer_aoc["id"] if self.outer_aoc else self.md.default_coc
            key = (self.ds["id"], self.outer_period.iso, self.outer_ou["id"], aoc)
            with self.ctx.store.lock:
                self.ctx.store.registrations[key] = {
                    "dataSet": self.ds["id"],
                    "period": self.outer_period.iso,
                    "organisationUnit": self.outer_ou["id"],
                    "attributeOptionCombo": aoc,
                    "date": fmt_date(when),
                    "storedBy": self.ctx.user.username,
                    "completed": True,
                }
        return fmt_date(when)

    # -- one value ------------------------------------------------------------

    def _reject(self, index: int, conflict: Conflict | None) -> None:
        if conflict is not None:
            self.conflicts.append(conflict)
        self.count["ignored"] += 1
        self.rejected.append(index)

    def _value(self, i: int, entry: dict[str, Any]) -> None:  # noqa: C901 - DHIS2's order
        md, c, user = self.md, self.c, self.ctx.user
        de_raw = _text(entry.get("dataElement"), "dataElement")
        pe_raw = _text(entry.get("period"), "period")
        ou_raw = _text(entry.get("orgUnit"), "orgUnit")
        coc_raw = _text(entry.get("categoryOptionCombo"), "categoryOptionCombo")
        aoc_raw = _text(entry.get("attributeOptionCombo"), "attributeOptionCombo")
        value = _text(entry.get("value"), "value")
        comment = _text(entry.get("comment"), "comment")
        stored_by = _text(entry.get("storedBy"), "storedBy")
        followup = bool(_bool(entry.get("followup"), "followup"))
        deleted = bool(_bool(entry.get("deleted"), "deleted"))

        de = md.find("dataElements", de_raw, self.opts.scheme("dataElementIdScheme"))
        if de is None:
            return self._reject(i, c.de_not_found(i, de_raw))
        # an unparseable set-level period falls back to the entry's own, and the conflict
        # names the entry's (2.36.13.2 DVSS:1008-1010,1063; 2.41.9.1 DVSS:1214-1221)
        period = self.outer_period or parse_period(pe_raw, self.v.iso_dash_daily)
        if period is None:
            return self._reject(i, c.period_not_valid(i, pe_raw))
        ou = self.outer_ou or md.find(
            "organisationUnits", ou_raw, self.opts.scheme("orgUnitIdScheme")
        )
        if ou is None:
            return self._reject(i, c.ou_not_found(i, ou_raw))
        coc_scheme = self.opts.scheme("categoryOptionComboIdScheme")
        coc = md.find("categoryOptionCombos", coc_raw, coc_scheme) if coc_raw else None
        if coc_raw and coc is None:
            return self._reject(i, c.coc_not_found(i, coc_raw))
        # data write sharing on each category option of a COC given in the entry
        # (2.41.9.1 VAL validateDataValueCategoryOptionComboAccess; 2.36.13.2 DVSS:1081-1090)
        if coc is not None:
            denied = [o for o in md.coc_options(coc["id"]) if not user.can_data_write_option(o)]
            if denied:
                return self._reject_all(i, [c.coc_not_writable(i, coc_raw, o) for o in denied])
        aoc: dict[str, Any] | None = self.outer_aoc
        if aoc is None and aoc_raw:
            aoc = md.find("categoryOptionCombos", aoc_raw, coc_scheme)
            if aoc is None:
                return self._reject(i, c.aoc_not_found(i, aoc_raw))
        # 2.41.9.1 VAL validateDataValueAttrOptionComboAccess; 2.36.13.2 DVSS:1100-1109
        if aoc is not None:
            denied = [o for o in md.coc_options(aoc["id"]) if not user.can_data_write_option(o)]
            if denied:
                return self._reject_all(i, [c.aoc_not_writable(i, aoc_raw, o) for o in denied])
        # capture org units (2.41.9.1 DVSS:1066-1067 currentOrgUnits = getOrganisationUnits)
        roots = user.capture_roots(md.roots())
        if not any(f"/{r}/" in f"{ou['path']}/" for r in roots):
            shown_ou = ou_raw if self.v.extended_conflicts else ou["id"]
            return self._reject(i, c.ou_not_in_hierarchy(i, shown_ou, user.uid, user.username))

        de_id = de["id"]
        delete_strategy = self.strategy == "DELETE"
        if (
            value is None
            and comment is None
            and not deleted
            and (not delete_strategy or self.v.delete_needs_value)
        ):
            return self._reject(i, c.value_not_defined(i, de_id))
        type_error = value_type_error(value, de.get("valueType", "NUMBER"))
        if type_error:
            return self._reject(i, c.value_not_valid(i, de_id, value or "", type_error))
        if comment is not None and len(comment) > MAX_COMMENT_LENGTH:
            return self._reject(
                i, c.comment_not_valid(i, comment, "comment_length_greater_than_max_length")
            )
        option_set = md.resolve("optionSet", de.get("optionSet")) if de.get("optionSet") else None
        if option_set and value not in (None, ""):
            codes = {o.get("code") for o in option_set.get("options", [])}
            if codes and value not in codes:
                return self._reject(i, c.invalid_option(i, de_id, value))

        if coc is None:
            if self.strict["require_coc"]:
                return self._reject(i, c.coc_required(i, value))
            coc = md.get("categoryOptionCombos", md.default_coc)
        if aoc is None:
            if self.strict["require_aoc"]:
                return self._reject(i, c.aoc_required(i, value))
            aoc = md.get("categoryOptionCombos", md.default_coc)
        assert coc is not None and aoc is not None
        de_sets = md.data_sets_of_element(de_id)
        if (
            self.strict["strict_periods"]
            and de_sets
            and period.type_name not in {d.get("periodType") for d in de_sets}
        ):
            return self._reject(i, c.period_type_not_valid(i, pe_raw, period.iso, de_id))
        if self.strict["strict_data_elements"]:
            if self.ds is not None and de_id not in {
                e["dataElement"]["id"] for e in self.ds["dataSetElements"]
            }:
                return self._reject(i, c.de_not_in_dataset(i, de_id, self.ds["id"]))
            if self.ds is None and not de_sets:
                return self._reject(i, c.de_not_in_dataset(i, de_id, ""))
        if self.strict["strict_cocs"] and coc["id"] not in md.element_cocs(de, self.ds):
            return self._reject(i, c.coc_not_in_combo(i, coc["id"], de_id))
        if self.strict["strict_aocs"]:
            allowed: set[str] = set()
            for d in [self.ds] if self.ds else de_sets:
                allowed |= md.data_set_aocs(d)
            if aoc["id"] not in allowed:
                return self._reject(i, c.aoc_not_in_combo(i, aoc["id"], de_id))
        # strictOrganisationUnits or keyDataImportStrictOrganisationUnits
        # (2.36.13.2 DVSS:828-829,1217-1225; 2.41.9.1 DVSS:1094-1095,
        # VAL checkDataValueStrictOrgUnits)
        if self.strict["strict_org_units"] and not md.org_unit_has_element(ou["id"], de_id):
            return self._reject(i, c.ou_not_assigned(i, ou["id"], de_id))
        zero = is_zero_and_insignificant(value, de)
        if zero and not self.v.zero_deletes_existing:
            return None  # 2.36.0-2.36.6 skip zeros here (2.36.0 DVSS:1233-1238); ignored at the end
        if stored_by is not None and len(stored_by) > MAX_STORED_BY_LENGTH:
            return self._reject(
                i, c.stored_by_not_valid(i, stored_by, "stored_by_length_greater_than_max_length")
            )

        # the AOC's date range and org units (2.36.13.2 DVSS:1245-1275; 2.41.9.1 VAL
        # checkDataValuePeriodWithinAttrOptionComboRange, checkDataValueOrgUnitValidForAttr...)
        start, end = (locking.parse_dt(aoc.get(k)) for k in ("startDate", "endDate"))
        first, last = (datetime.combine(d, datetime.min.time()) for d in (period.start, period.end))
        if (start is not None and start > last) or (end is not None and end < first):
            ids = (period.iso, aoc["id"], ou["id"])
            return self._reject(i, c.period_outside_aoc(i, pe_raw, aoc_raw, ids))
        aoc_ous = [o["id"] for o in aoc.get("organisationUnits") or []]
        if aoc_ous and not any(o in ou["path"] for o in aoc_ous):  # OrganisationUnit.isDescendant
            return self._reject(i, c.ou_outside_aoc(i, ou_raw, aoc_raw, ou["id"], aoc["id"]))
        failures = self._period_checks(_Cell(i, de, period, ou, aoc, (ou_raw, pe_raw, aoc_raw)))
        if failures:
            return self._reject_all(i, failures)
        # DELETE of a file value that does not exist (2.36.13.2 DVSS:1350-1359; 2.41.9.1 VAL
        # checkDataValueFileResourceExists)
        if delete_strategy and de.get("valueType") in FILE_TYPES:
            key = (de_id, period.iso, ou["id"], coc["id"], aoc["id"])
            existing = self.ctx.store.get(key)
            if existing is None or existing.deleted:
                return self._reject(i, c.no_file_value(i, de_raw, de_id))
        self._write(
            i, de, period, ou, coc, aoc, value, comment, stored_by, followup, deleted, zero, entry
        )
        return None

    def _reject_all(self, index: int, conflicts: list[Conflict]) -> None:
        """One value refused with several conflicts (one per category option or data set)."""
        self.conflicts.extend(conflicts[:-1])
        self._reject(index, conflicts[-1])

    def _period_checks(self, t: _Cell) -> list[Conflict]:
        """E7640 (expiry, lock exceptions), E7641 (future), E7642 (approval), E7643 (input
        periods), E7644 (element's data sets), in DHIS2's order; superuser + force skip all.
        """
        i, de, period, ou, raw = t.index, t.de, t.period, t.ou, t.raw
        if self.force:
            # 2.36.13.2 DVSS:1282,1332,1341 (!forceDataInput);
            # 2.41.9.1 VAL checkDataValueTargetDataSets
            return []
        if self.v.target_data_sets:
            failures = self._target_checks(t)
        else:
            failures = self._approval_data_set_checks(t)
        if failures:
            return failures
        # E7644: DataElement.isDataInputAllowedForPeriodAndDate: no data sets, or one open
        # (2.37.10 DataElement.java:722-726; 2.36.13.2 DVSS:1340-1346; 2.41.9.1 VAL)
        de_sets = self.md.data_sets_of_element(de["id"])
        if de_sets and not any(
            locking.input_period_open(self.v, d, period, self.now) for d in de_sets
        ):
            return [self.c.not_conform_to_open_periods(i, raw[1], period.iso, ou["id"])]
        return []

    def _expired(self, ds: dict[str, Any], period: Period, ou: dict[str, Any]) -> bool:
        exception = self.ctx.store.has_lock_exception(ds["id"], period.iso, ou["id"])
        return locking.locked_for(self.v, ds, period, ou["id"], self.ctx.user, self.now, exception)

    def _approved(self, ds: dict[str, Any], period: Period, ou: dict[str, Any], aoc: str) -> bool:
        """The data set has a workflow and (workflow, period, org unit, AOC) is approved
        (2.41.9.1 VAL checkDataValueNotAlreadyApproved; 2.36.13.2 DVSS:1307-1326)."""
        workflow = (ds.get("workflow") or {}).get("id")
        return workflow is not None and (workflow, period.iso, ou["id"], aoc) in (
            self.ctx.store.approvals
        )

    def _approval_data_set_checks(self, t: _Cell) -> list[Conflict]:
        """Up to 2.39.0: the set-level data set, else the element's approval data set
        (2.37.10 ImportContext.java:227-233, VAL:573-660; 2.36.13.2 DVSS:1276-1338)."""
        i, de, period, ou, aoc, raw = t.index, t.de, t.period, t.ou, t.aoc, t.raw
        de_sets = self.md.data_sets_of_element(de["id"])
        ds = self.ds if self.ds is not None else locking.approval_data_set(de_sets)
        if ds is None:
            return []
        pe_raw = raw[1]
        shown_pe = pe_raw if self.v.extended_conflicts else period.iso
        if self._expired(ds, period, ou):
            return [self.c.expired(i, shown_pe, period.iso, ds["id"])]
        # element level: most open future periods over all its data sets (DataElement.java)
        latest = locking.element_latest_future_period(de_sets, self.now.date())
        if latest is not None and locking.is_after(period, latest):
            return [self.c.after_future(i, shown_pe, period.iso, de["id"], ds["id"], latest.iso)]
        if self._approved(ds, period, ou, aoc["id"]):
            return [self.c.already_approved(i, raw, (ou["id"], period.iso, aoc["id"]), ds["id"])]
        if not locking.input_period_open(self.v, ds, period, self.now):
            return [self.c.not_open(i, shown_pe, period.iso, ds["id"], ou["id"])]
        return []

    def _target_checks(self, t: _Cell) -> list[Conflict]:
        """2.39.1+: each check over the target data sets; strict = every one must pass,
        otherwise one passing data set is enough (2.41.9.1 VAL checkDataValueTargetDataSets).
        """
        i, de, period, ou, aoc, raw = t.index, t.de, t.period, t.ou, t.aoc, t.raw
        if self.ds is not None:
            targets = [self.ds]
        else:
            # 2.41.9.1 ImportContext.java:281-300: the element's data sets assigned to the org
            # unit whose category combo is the AOC's
            aoc_cc = (aoc.get("categoryCombo") or {}).get("id", self.md.default_cc_id())
            targets = [
                d
                for d in self.md.data_sets_of_element(de["id"])
                if any(o["id"] == ou["id"] for o in d["organisationUnits"])
                and (d.get("categoryCombo") or {}).get("id", self.md.default_cc_id()) == aoc_cc
            ]
        if not targets:
            return []
        pe_raw = raw[1]
        today = self.now.date()

        def expired(ds: dict[str, Any]) -> Conflict | None:
            if self._expired(ds, period, ou):
                return self.c.expired(i, pe_raw, period.iso, ds["id"])
            return None

        def future(ds: dict[str, Any]) -> Conflict | None:
            latest = locking.data_set_latest_future_period(ds, today)
            if latest is not None and locking.is_after(period, latest):
                return self.c.after_future(i, pe_raw, period.iso, de["id"], ds["id"], latest.iso)
            return None

        def approved(ds: dict[str, Any]) -> Conflict | None:
            if self._approved(ds, period, ou, aoc["id"]):
                return self.c.already_approved(i, raw, (ou["id"], period.iso, aoc["id"]), ds["id"])
            return None

        def not_open(ds: dict[str, Any]) -> Conflict | None:
            if not locking.input_period_open(self.v, ds, period, self.now):
                return self.c.not_open(i, pe_raw, period.iso, ds["id"], ou["id"])
            return None

        # register order and strictness: 2.41.9.1 VAL init (locking, future=always strict,
        # approval, input periods)
        checks = [
            (expired, self.strict["strict_ds_locking"]),
            (future, True),
            (approved, self.strict["strict_ds_approval"]),
            (not_open, self.strict["strict_ds_input_periods"]),
        ]
        for check, strict in checks:
            staged: list[Conflict] = []
            passed = False
            for ds in targets:
                failure = check(ds)
                if failure is None and not strict:
                    passed = True
                    break
                if failure is not None:
                    staged.append(failure)
            if not passed and staged:
                return staged
        return []

    def _write(
        self,
        i: int,
        de: dict[str, Any],
        period: Period,
        ou: dict[str, Any],
        coc: dict[str, Any],
        aoc: dict[str, Any],
        value: str | None,
        comment: str | None,
        stored_by: str | None,
        followup: bool,
        deleted: bool,
        zero: bool,
        entry: dict[str, Any],
    ) -> None:
        store = self.ctx.store
        key = (de["id"], period.iso, ou["id"], coc["id"], aoc["id"])
        existing = None if self.opts.skip_existing_check else store.get(key)
        strategy = self.strategy
        now = self.now
        who = stored_by if stored_by and stored_by.strip() else self.ctx.user.username
        new_value = None if value == "" else value
        created = now
        last_updated = now
        if self.v.honours_payload_dates:
            created = locking.parse_dt(entry.get("created")) or now
            last_updated = locking.parse_dt(entry.get("lastUpdated")) or now
        if existing is not None and not entry.get("created"):
            created = existing.created

        if zero and (existing is None or strategy == "CREATE"):
            return None  # skipValue(): 2.37+ counts it nowhere
        live = existing is not None and not existing.deleted
        if live and existing is not None:
            if strategy in ("CREATE_AND_UPDATE", "UPDATE"):
                is_delete = (new_value is None and comment is None) or deleted or zero
                if is_delete:
                    self.count["deleted"] += 1
                elif (
                    existing.value == new_value
                    and existing.comment == comment
                    and existing.followup == followup
                ):
                    if self.v.ignore_unchanged:
                        self.count["ignored"] += 1
                        return None
                    self.count["updated"] += 1
                    if self.v.minor >= 37:
                        return None  # counted, but "avoid performing unnecessary updates"
                else:
                    self.count["updated"] += 1
                if not self.dry_run:
                    self._save(existing, new_value, comment, followup, who, last_updated, is_delete)
            elif strategy == "DELETE":
                self.count["deleted"] += 1
                if not self.dry_run:
                    self._save(
                        existing,
                        existing.value,
                        existing.comment,
                        existing.followup,
                        who,
                        now,
                        True,
                    )
            else:
                self.count["ignored"] += 1
                self.rejected.append(i)
            return None
        if strategy in ("CREATE_AND_UPDATE", "CREATE"):
            if new_value is None and comment is None:
                self.count["ignored"] += 1
                return None
            self.count["imported"] += 1
            if not self.dry_run:
                row = StoredValue(
                    *key, new_value, comment, followup, who, created, last_updated, deleted
                )
                store.put(row)
                if existing is not None:
                    store.audit.append(AuditRow(key, "CREATE", existing.value, new_value, now))
        else:
            self.count["ignored"] += 1
            self.rejected.append(i)
        return None

    def _save(
        self,
        existing: StoredValue,
        value: str | None,
        comment: str | None,
        followup: bool,
        who: str,
        when: datetime,
        delete: bool,
    ) -> None:
        previous = existing.value
        if delete:
            existing.deleted = True
        else:
            existing.value, existing.comment, existing.followup = value, comment, followup
        existing.stored_by = who
        existing.last_updated = when
        if delete or previous != value or not self.v.extended_conflicts:
            audit_type = "DELETE" if delete else "UPDATE"
            self.ctx.store.audit.append(
                AuditRow(existing.key, audit_type, previous, None if delete else value, when)
            )
