"""DHIS2 and CHT problems explained in plain words, with the fix, naming the ids.

The people who run the mediator (an HRIO, OpenHIM ops, a DHIS2 admin) should never
need DHIS2's source to know what went wrong. Every rejection the mediator can meet
maps to a ``Diagnosis``: E76xx conflicts (matched on ``errorCode``, or on 2.36's
fixed texts, which have no code), set-level aborts, refused credentials, missing
authorities, locked periods, preflight findings, and problems on the CHT side.
Codes and texts: dhis2-core's ``ErrorCode.java`` and ``DataValueImportConflict`` (2.37+),
and the fixed texts of 2.36.13.2 ``DefaultDataValueSetService.java``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from mediator.model.report import Conflict, DataSetResult, Diagnosis, Finding, RunReport

MAINTENANCE_DS = "DHIS2 Maintenance → Data set"


@dataclass(frozen=True)
class _Explain:
    title: str
    cause: str
    fix: str


def _ids(items: Iterable[str], limit: int = 10) -> str:
    unique = list(dict.fromkeys(i for i in items if i))
    shown = ", ".join(unique[:limit])
    return shown + (f" and {len(unique) - limit} more" if len(unique) > limit else "")


# What each DHIS2 conflict code means here. ``{de}``, ``{ou}``, ``{pe}``, ``{coc}``,
# ``{aoc}``, ``{ds}``, ``{user}``, ``{targets}`` and ``{places}`` are filled with the ids
# of the conflicts of that kind.
CONFLICTS: dict[str, _Explain] = {
    "E7600": _Explain(
        "Data set not found",
        "DHIS2 has no data set {ds}, or this user cannot see it; nothing of it was imported.",
        "Check the id in CHT's app_settings.dhis_data_sets, and share the data set with the "
        f"integration user ({MAINTENANCE_DS} → Sharing: metadata can view).",
    ),
    "E7601": _Explain(
        "No data write access to the data set",
        "The integration user may not write data for data set {ds}.",
        f"In {MAINTENANCE_DS} {{ds}} → Sharing, give the user (or its group) data 'can capture'.",
    ),
    "E7602": _Explain(
        "Data set required",
        "DHIS2 requires a data set on every import (strict data elements is on).",
        "Nothing to change in CHT; upgrade the mediator if this persists (it sends the data set).",
    ),
    "E7603": _Explain(
        "Org unit not found (whole import)",
        "DHIS2 has no org unit {ou}, or the user cannot see it; nothing was imported.",
        "Check dhis.orgUnit on CHT place {places}, or share the org unit with the user.",
    ),
    "E7604": _Explain(
        "Attribute option combo not found (whole import)",
        "DHIS2 has no attribute option combo {aoc}; nothing was imported.",
        "Correct attributeOptionCombo on CHT targets {targets}.",
    ),
    "E7610": _Explain(
        "Data element not found",
        "DHIS2 has no data element {de} (or the user cannot read it).",
        "Correct dhis.dataElement on CHT targets {targets} (targets.js), or create the data "
        "element in DHIS2 and share it with the integration user.",
    ),
    "E7611": _Explain(
        "Period not valid",
        "DHIS2 could not parse period {pe}.",
        "Ask for a DHIS2 period (202401, 2024Q1, 2024…); report this if the mediator chose it.",
    ),
    "E7612": _Explain(
        "Org unit unknown to DHIS2",
        "DHIS2 has no org unit {ou} (or the user cannot see it).",
        "Correct or remove dhis.orgUnit on CHT place {places}, or create the org unit in DHIS2 "
        "(Maintenance → Organisation unit).",
    ),
    "E7613": _Explain(
        "Category option combo not found",
        "DHIS2 has no category option combo {coc}.",
        "Correct categoryOptionCombo on CHT targets {targets}: use an id from the data "
        "element's category combo.",
    ),
    "E7614": _Explain(
        "Category option not writable",
        "A category option of combo {coc} is not shared for data writing.",
        "In DHIS2 Maintenance → Category option, give the integration user data 'can capture'.",
    ),
    "E7615": _Explain(
        "Attribute option combo not found",
        "DHIS2 has no attribute option combo {aoc}.",
        "Correct attributeOptionCombo on CHT targets {targets}.",
    ),
    "E7616": _Explain(
        "Attribute option not writable",
        "An option of attribute option combo {aoc} is not shared for data writing.",
        "In DHIS2 Maintenance → Category option, give the integration user data 'can capture'.",
    ),
    "E7617": _Explain(
        "Org unit outside the user's hierarchy",
        "Org unit {ou} is outside the integration user's data capture org units.",
        "In DHIS2 Users → {user} → Data capture org units, add {ou} or an ancestor of it.",
    ),
    "E7618": _Explain(
        "Value missing",
        "A value for data element {de} had neither value nor comment.",
        "Report this to the mediator's maintainers: it never sends empty values on purpose.",
    ),
    "E7619": _Explain(
        "Value does not fit the data element's type",
        "Values for data element {de} do not match its value type (for example a decimal "
        "for an integer type, or a negative number).",
        "Send another target value (MEDIATOR_VALUE_CHOICES: total, pass or percent) for "
        "targets {targets}, or change the data element's value type in DHIS2.",
    ),
    "E7620": _Explain(
        "Comment too long",
        "A comment is over 50,000 characters.",
        "Report this: the mediator sends no comments.",
    ),
    "E7621": _Explain(
        "Value not in the option set",
        "Data element {de} has an option set and the value is not one of its codes.",
        "Map targets {targets} to a numeric data element without an option set.",
    ),
    "E7630": _Explain(
        "Category option combo required",
        "DHIS2 requires a category option combo on every value (requireCategoryOptionCombo).",
        "Add categoryOptionCombo to the dhis mapping of CHT targets {targets}.",
    ),
    "E7631": _Explain(
        "Attribute option combo required",
        "DHIS2 requires an attribute option combo on every value.",
        "Add attributeOptionCombo to the dhis mapping of CHT targets {targets}.",
    ),
    "E7632": _Explain(
        "Period type not valid for the data element",
        "Period {pe} is not of the period type of the data sets holding {de} (strictPeriods).",
        "Push the data set of the right period type, or add {de} to a data set of that type.",
    ),
    "E7633": _Explain(
        "Data element outside the data set",
        "Data element {de} is not part of data set {ds} (strictDataElements).",
        f"Add {{de}} to the data set in {MAINTENANCE_DS} → Data elements, or remove it "
        "from CHT targets {targets}.",
    ),
    "E7634": _Explain(
        "Category option combo outside the data element's category combo",
        "Category option combo {coc} is not part of the category combo of {de}.",
        "Correct categoryOptionCombo on CHT targets {targets}.",
    ),
    "E7635": _Explain(
        "Attribute option combo outside the data set's category combo",
        "Attribute option combo {aoc} is not part of the category combo of data set {ds}.",
        "Correct attributeOptionCombo on CHT targets {targets}, or the data set's attribute "
        "category combo.",
    ),
    "E7636": _Explain(
        "Org unit not assigned to the data set",
        "Org unit {ou} is not assigned to a data set holding {de}, and DHIS2 refuses such "
        "values (the system setting keyDataImportStrictOrganisationUnits, or the data set's "
        "strict org units option, is on).",
        f"Assign {{ou}} in {MAINTENANCE_DS} {{ds}} → Organisation units, or remove "
        "dhis.orgUnit from CHT place {places}; or an admin turns off 'Require organisation "
        "units to match assignment of data set' (keyDataImportStrictOrganisationUnits) in "
        "System settings → Data import.",
    ),
    "E7637": _Explain(
        "storedBy too long",
        "The storedBy field is over 255 characters.",
        "Report this: the mediator does not set storedBy.",
    ),
    "E7638": _Explain(
        "Period outside the attribute option combo's dates",
        "Period {pe} is outside the start and end dates of attribute option combo {aoc}.",
        "Widen the category option's dates in DHIS2, or push another period.",
    ),
    "E7639": _Explain(
        "Org unit not valid for the attribute option combo",
        "Org unit {ou} is not among the org units of attribute option combo {aoc}.",
        "Add {ou} to the category option's org units in DHIS2.",
    ),
    "E7640": _Explain(
        "Period expired",
        "Period {pe} of data set {ds} is past its expiry days, for the org units named, and "
        "the integration user may not edit expired data.",
        "Any one of these unblocks it, then rerun the period: a lock exception for (data "
        "set {ds}, period {pe}, org unit) in DHIS2 Data administration → Lock exception; the "
        "authority F_EDIT_EXPIRED ('Edit expired data') on the integration user's role; or "
        f"more Expiry days in {MAINTENANCE_DS} {{ds}} (fractional days count from 2.42; "
        "before 2.37.10, 2.38.4 and 2.39.2 the last day closes at midnight).",
    ),
    "E7641": _Explain(
        "Period not open yet",
        "Period {pe} is after the latest open future period of data set {ds}.",
        "Push only completed periods (the default), or raise Open future periods in "
        f"{MAINTENANCE_DS} {{ds}}.",
    ),
    "E7642": _Explain(
        "Data already approved",
        "Data of {ds} for {pe} at {ou} is approved and cannot change.",
        "Ask the approver to unapprove it in DHIS2 (Data approval), then rerun the period; "
        "approved data is never changed by the mediator.",
    ),
    "E7643": _Explain(
        "Period closed for data input",
        "Data set {ds} does not accept data for {pe} at this time (data input periods).",
        f"Open the period in {MAINTENANCE_DS} {{ds}} → Data input periods, then rerun it.",
    ),
    "E7644": _Explain(
        "Period closed in every data set of the element",
        "None of the data sets holding {de} accepts data for {pe} now.",
        "Open the period in the data sets' data input periods, then rerun it.",
    ),
    "E7645": _Explain(
        "No file value to delete",
        "A delete named a file value that does not exist.",
        "Report this: the mediator does not send file values.",
    ),
}

# 2.36 has no error codes: its fixed texts, matched in this order (2.36.13.2
# ``DefaultDataValueSetService.java``).
TEXTS_236: list[tuple[str, str]] = [
    (r"^Data set not found or not accessible", "E7600"),
    (r"User does not have write access for DataSet", "E7601"),
    (r"A valid dataset is required", "E7602"),
    (r"^Org unit not found or not accessible", "E7603"),
    (r"^Attribute option combo not found or not accessible(?! for writing)", "E7604"),
    (r"Data element not found or not accessible", "E7610"),
    (r"Period not valid", "E7611"),
    (r"Organisation unit not found or not accessible", "E7612"),
    (r"Category option combo not found or not accessible", "E7613"),
    (r"Attribute option combo not found or not accessible for writing", "E7615"),
    (r"not in hierarchy of current user", "E7617"),
    (r"Data value or comment not specified", "E7618"),
    (r"must match data element type", "E7619"),
    (r"not a valid option of the data element option set", "E7621"),
    (r"User has no data write access for CategoryOption", "E7614"),  # E7616 reads the same
    (r"^Comment is greater than max length", "E7620"),
    (r"Category option combo is required", "E7630"),
    (r"Attribute option combo is required", "E7631"),
    (r"Period type of period", "E7632"),
    (r"is not part of dataset", "E7633"),
    (r"must be part of category combo of data element", "E7634"),
    (r"must be part of category combo of data sets of data element", "E7635"),
    (r"must be assigned through data sets to organisation unit", "E7636"),
    (r"^Stored by is greater than max length", "E7637"),
    (r"is not within date range of attribute option combo", "E7638"),
    (r"is not valid for attribute option combo", "E7639"),
    (r"past expiry days", "E7640"),
    (r"after latest open future period", "E7641"),
    (r"already approved", "E7642"),
    (r"is not open for this data set at this time", "E7643"),
    (r"does not conform to the open periods", "E7644"),
    (r"No data value for file resource exist", "E7645"),
]
_TEXTS_236 = [(re.compile(pattern), code) for pattern, code in TEXTS_236]

# Preflight and run findings (mediator/dhis2_metadata.py, mediator/pipeline.py).
FINDINGS: dict[str, _Explain] = {
    "data_set_not_found": CONFLICTS["E7600"],
    "data_elements_not_in_data_set": _Explain(
        "Data elements mapped in CHT but not in the DHIS2 data set",
        "CHT targets {targets} map to data elements {ids} that data set {ds} does not hold; "
        "nothing of the data set was sent.",
        f"Add them in {MAINTENANCE_DS} {{ds}} → Data elements, or fix dhis.dataElement "
        "in CHT's targets.js.",
    ),
    "category_option_combo_invalid": _Explain(
        "Category option combos outside their data element's category combo",
        "Category option combos {ids} do not belong to their data element's category combo; "
        "those rows were not sent.",
        "Correct categoryOptionCombo on the CHT targets (ids from the data element's category "
        "combo in DHIS2).",
    ),
    "attribute_option_combo_invalid": _Explain(
        "Attribute option combos outside the data set's category combo",
        "Attribute option combos {ids} do not belong to data set {ds}'s category combo; "
        "those rows were not sent.",
        "Correct attributeOptionCombo on the CHT targets.",
    ),
    "values_invalid": _Explain(
        "Values DHIS2 would refuse for their value type",
        "Values of data elements {ids} do not fit their value type; those rows were not sent.",
        "Choose another target value (MEDIATOR_VALUE_CHOICES) or change the value type.",
    ),
    "duplicate_rows": _Explain(
        "The same data value twice",
        "Two CHT targets map to the same data element, option combos and org unit ({ids}).",
        "Give each target its own data element or category option combo in targets.js.",
    ),
    "org_units_not_assigned": _Explain(
        "Org units not assigned to the data set",
        "Org units {ids} are not assigned to data set {ds}; DHIS2 stores their values anyway, "
        "but they will not show in its data entry or reports for the data set.",
        f"Assign them in {MAINTENANCE_DS} {{ds}} → Organisation units, or remove "
        "dhis.orgUnit from CHT places {places}.",
    ),
    "period_type_unsupported": _Explain(
        "Period type CHT cannot fill",
        "Data set {ds} is {detail}; CHT keeps targets by calendar month.",
        "Use a Monthly, Quarterly, SixMonthly, Yearly or financial-year data set for CHT data.",
    ),
    "period_type_mismatch": _Explain(
        "Period of another type than the data set",
        "Period {pe} is not of data set {ds}'s period type.",
        "Ask for a period of the data set's type, or give a range with from/to.",
    ),
    "existing_values_unreadable": _Explain(
        "What DHIS2 holds could not be read",
        "The values DHIS2 holds at {ids} could not be read, so every value computed for "
        "them was sent and every zero sent as a clear: nothing stale stays, but nothing "
        "could be called unchanged.",
        "Give the integration user data read access: sharing 'data can view' on data set "
        "{ds} and these org units in its data view (or capture) org units.",
    ),
    "completeness_not_registered": _Explain(
        "Completeness not registered",
        "DHIS2 did not mark data set {ds} complete for {pe} at {ids}.",
        "Check the org units' assignment to the data set and the user's authority "
        "F_DATAVALUE_ADD / completeness rights.",
    ),
    "calendar_not_iso": _Explain(
        "DHIS2 uses another calendar",
        "DHIS2's calendar is not ISO 8601, so locked periods could not be checked before posting.",
        "Nothing to do unless DHIS2 refuses periods; then check the calendar setting.",
    ),
    "conflicts_unattributed": _Explain(
        "Conflicts not matched to rows",
        "DHIS2 reported conflicts the mediator could not match to a row (2.36 gives no positions).",
        "Read the conflicts in the DHIS2 orchestration of this transaction.",
    ),
}


def _objects(conflict: Conflict) -> dict[str, str]:
    """The ids a conflict names, in one vocabulary whatever the version."""
    found = dict(conflict.objects)
    if conflict.object and not found:
        found["object"] = conflict.object
    aliases = {"organisationUnit": "ou", "dataElement": "de", "period": "pe", "dataSet": "ds"}
    out = {aliases.get(k, k): v for k, v in found.items()}
    if "categoryOptionCombo" in found:
        key = "aoc" if conflict.property == "attributeOptionCombo" else "coc"
        out[key] = found["categoryOptionCombo"]
    return out


def conflict_code(conflict: Conflict) -> str | None:
    """E76xx: the conflict's own code (2.37+) or the one 2.36's text stands for."""
    if conflict.errorCode:
        return conflict.errorCode
    for pattern, code in _TEXTS_236:
        if pattern.search(conflict.value):
            return code
    return None


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
        for key, value in _objects(conflict).items():
            if key == "object":
                # 2.36: the object is the id the message is about
                key = _object_kind(code)
            ids.setdefault(key, [])
            if value not in ids[key]:
                ids[key].append(value)
        grouped[code] = (count + max(1, len(conflict.indexes)), ids)
    out = []
    for code, (count, ids) in grouped.items():
        explain = CONFLICTS.get(code) or _Explain(
            "Conflict DHIS2 reported",
            "DHIS2 refused values: " + "; ".join(c.value for c in ctx.result.conflicts[:3]),
            "Read the import summary in the DHIS2 orchestration of this transaction.",
        )
        out.append(_diagnosis(code, explain, ctx, ids, count))
    return out


def _object_kind(code: str) -> str:
    return {
        "E7600": "ds",
        "E7601": "ds",
        "E7603": "ou",
        "E7604": "aoc",
        "E7610": "de",
        "E7611": "pe",
        "E7612": "ou",
        "E7613": "coc",
        "E7615": "aoc",
        "E7617": "ou",
        "E7633": "de",
        "E7636": "ou",
    }.get(code, "ids")


def _diagnosis(
    kind: str,
    explain: _Explain,
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


# A data set that failed as a whole: what its error says, in the order tested.
ERRORS: dict[str, _Explain] = {
    "dhis2_login_redirect": _Explain(
        "DHIS2 sent its login page",
        "DHIS2 answered with a redirect to its login page: it did not see valid credentials.",
        "Set DHIS2_USERNAME and DHIS2_PASSWORD (or DHIS2_TOKEN) for a DHIS2 user that can "
        "log in; check DHIS2_URL is the base URL (https, no /dhis-web-… path).",
    ),
    "dhis2_unauthorized": _Explain(
        "DHIS2 refused the credentials",
        "DHIS2 answered 401: the username and password (or the token) are wrong, expired, "
        "or the account is locked or disabled.",
        "Correct DHIS2_PASSWORD / DHIS2_TOKEN (console: dhis2Password / dhis2Token); a DHIS2 "
        "admin can unlock the user in Users. The mediator stops after one refusal so it "
        "does not lock the account.",
    ),
    "dhis2_token_invalid": _Explain(
        "DHIS2 refused the API token",
        "The personal access token is malformed or its checksum is wrong.",
        "Create a new token in DHIS2 (profile → Personal access tokens) and set DHIS2_TOKEN.",
    ),
    "dhis2_forbidden": _Explain(
        "The DHIS2 user lacks an authority",
        "DHIS2 answered 403: the integration user may not import data values.",
        "In DHIS2 Users, give the user a role with 'Add/Update data values' "
        "(F_DATAVALUE_ADD) and data write sharing on the data set.",
    ),
    "dhis2_unreachable": _Explain(
        "DHIS2 could not be reached",
        "Connections to DHIS2 failed or timed out, even after retries.",
        "Check that DHIS2 is up, the network between the mediator and DHIS2, and DHIS2_URL; "
        "then {rerun}.",
    ),
    "dhis2_not_json": _Explain(
        "Something other than DHIS2 answered",
        "The answer was not DHIS2's JSON (an HTML error page from a proxy?).",
        "Check the proxy in front of DHIS2 (body size limits: client_max_body_size) and "
        "DHIS2_URL; lower DHIS2_CHUNK_SIZE if the proxy refuses large bodies.",
    ),
    "cht_read_failed": _Explain(
        "CHT could not be read",
        "{detail}.",
        "Check that this CHT instance is up and reachable from the mediator, then its URL, "
        "credentials and the medic-admin views; the data set is pushed by the next run once "
        "CHT answers.",
    ),
}


_KINDS = {
    "login_redirect": "dhis2_login_redirect",
    "credentials": "dhis2_unauthorized",
    "token_refused": "dhis2_token_invalid",
    "forbidden": "dhis2_forbidden",
    "unreachable": "dhis2_unreachable",
    "timeout": "dhis2_unreachable",
    "body": "dhis2_not_json",
    "cht_read": "cht_read_failed",
}


def _error_kind(result: DataSetResult) -> str | None:
    """The diagnosis of a data set that failed as a whole, by what kind of failure it was
    (``http.PeerError.kind``, set where the error was caught), never by its words."""
    if result.error_kind in _KINDS:
        return _KINDS[result.error_kind]
    return "dhis2_forbidden" if result.error_status == 403 else None


def _from_error(ctx: _Context) -> list[Diagnosis]:
    result = ctx.result
    kind = _error_kind(result) if result.status == "error" and result.error else None
    if kind is None:
        return []
    return [_diagnosis(kind, ERRORS[kind], ctx, {}, 1, detail=result.error or "")]


# Run-level and CHT-side problems (their causes are built from what was read).
CHT: dict[str, _Explain] = {
    "cht_unreadable": _Explain(
        "CHT could not be read",
        "{detail}",
        "Check that CHT is up and reachable from the mediator (open CHT_URL there), then "
        "CHT_URL (the instance's address, without /medic), CHT_USERNAME and CHT_PASSWORD "
        "(an online CHT user) and that the medic-admin design doc exists. Nothing was "
        "pushed; once CHT answers, {rerun}.",
    ),
    "cht_source_failed": _Explain(
        "A CHT instance could not be read",
        "CHT instance {ids}: {detail}",
        "Check that the instance is up and reachable from the mediator, then its URL and "
        "credentials; the data sets it feeds were not pushed with partial totals and go out "
        "in the next run.",
    ),
    "cht_contacts_read_afresh": _Explain(
        "Contacts read afresh",
        "CHT instance {ids}: {detail}.",
        "Nothing to fix for the numbers: they are exact, the run was only slower. To keep "
        "contacts between runs again, let the CHT user read the database info "
        "($CHT_URL/$CHT_DB/) and POST _changes (an online CHT user does); a timeout here "
        "means CHT was slow to answer, and the next run tries again.",
    ),
    "cht_no_target_docs": _Explain(
        "No target docs in CHT for the period",
        "CHT holds no target docs for {detail}: either no CHW has synced since the period "
        "ended, or targets are not enabled in the app.",
        "Ask CHWs to open the app and sync; check tasks.targets in the app settings. Zero "
        "rows were pushed; the next scheduled run picks up late syncs.",
    ),
    "cht_users_not_synced": _Explain(
        "CHWs missing from the numbers",
        "{detail} CHT users have no target doc for {pe}: {ids}.",
        "Ask them to sync; their numbers reach DHIS2 in the next scheduled run "
        "(MEDIATOR_LOOKBACK_PERIODS). See /coverage for the list by org unit.",
    ),
}


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
