"""The words of every diagnosis: per DHIS2 conflict code, preflight finding, failed data
set and CHT-side problem, a title, its cause and what to do, as templates that
``diagnoses`` fills with the ids involved. The operator guide's troubleshooting table is
made from these tables (``diagnoses.troubleshooting_table``).
"""

from __future__ import annotations

from dataclasses import dataclass

MAINTENANCE_DS = "DHIS2 Maintenance → Data set"


@dataclass(frozen=True)
class Explain:
    """One kind of problem in words: ``{de}``, ``{ou}``, ``{ds}``… are filled with ids."""

    title: str
    cause: str
    fix: str


# What each DHIS2 conflict code means here. ``{de}``, ``{ou}``, ``{pe}``, ``{coc}``,
# ``{aoc}``, ``{ds}``, ``{user}``, ``{targets}`` and ``{places}`` are filled with the ids
# of the conflicts of that kind.
CONFLICTS: dict[str, Explain] = {
    "E7600": Explain(
        "Data set not found",
        "DHIS2 has no data set {ds}, or this user cannot see it; nothing of it was imported.",
        "Check the id in CHT's app_settings.dhis_data_sets, and share the data set with the "
        f"integration user ({MAINTENANCE_DS} → Sharing: metadata can view).",
    ),
    "E7601": Explain(
        "No data write access to the data set",
        "The integration user may not write data for data set {ds}.",
        f"In {MAINTENANCE_DS} {{ds}} → Sharing, give the user (or its group) data 'can capture'.",
    ),
    "E7602": Explain(
        "Data set required",
        "DHIS2 requires a data set on every import (strict data elements is on).",
        "Nothing to change in CHT; upgrade the mediator if this persists (it sends the data set).",
    ),
    "E7603": Explain(
        "Org unit not found (whole import)",
        "DHIS2 has no org unit {ou}, or the user cannot see it; nothing was imported.",
        "Check dhis.orgUnit on CHT place {places}, or share the org unit with the user.",
    ),
    "E7604": Explain(
        "Attribute option combo not found (whole import)",
        "DHIS2 has no attribute option combo {aoc}; nothing was imported.",
        "Correct attributeOptionCombo on CHT targets {targets}.",
    ),
    "E7610": Explain(
        "Data element not found",
        "DHIS2 has no data element {de} (or the user cannot read it).",
        "Correct dhis.dataElement on CHT targets {targets} (targets.js), or create the data "
        "element in DHIS2 and share it with the integration user.",
    ),
    "E7611": Explain(
        "Period not valid",
        "DHIS2 could not parse period {pe}.",
        "Ask for a DHIS2 period (202401, 2024Q1, 2024…); report this if the mediator chose it.",
    ),
    "E7612": Explain(
        "Org unit unknown to DHIS2",
        "DHIS2 has no org unit {ou} (or the user cannot see it).",
        "Correct or remove dhis.orgUnit on CHT place {places}, or create the org unit in DHIS2 "
        "(Maintenance → Organisation unit).",
    ),
    "E7613": Explain(
        "Category option combo not found",
        "DHIS2 has no category option combo {coc}.",
        "Correct categoryOptionCombo on CHT targets {targets}: use an id from the data "
        "element's category combo.",
    ),
    "E7614": Explain(
        "Category option not writable",
        "A category option of combo {coc} is not shared for data writing.",
        "In DHIS2 Maintenance → Category option, give the integration user data 'can capture'.",
    ),
    "E7615": Explain(
        "Attribute option combo not found",
        "DHIS2 has no attribute option combo {aoc}.",
        "Correct attributeOptionCombo on CHT targets {targets}.",
    ),
    "E7616": Explain(
        "Attribute option not writable",
        "An option of attribute option combo {aoc} is not shared for data writing.",
        "In DHIS2 Maintenance → Category option, give the integration user data 'can capture'.",
    ),
    "E7617": Explain(
        "Org unit outside the user's hierarchy",
        "Org unit {ou} is outside the integration user's data capture org units.",
        "In DHIS2 Users → {user} → Data capture org units, add {ou} or an ancestor of it.",
    ),
    "E7618": Explain(
        "Value missing",
        "A value for data element {de} had neither value nor comment.",
        "Report this to the mediator's maintainers: it never sends empty values on purpose.",
    ),
    "E7619": Explain(
        "Value does not fit the data element's type",
        "Values for data element {de} do not match its value type (for example a decimal "
        "for an integer type, or a negative number).",
        "Send another target value (MEDIATOR_VALUE_CHOICES: total, pass or percent) for "
        "targets {targets}, or change the data element's value type in DHIS2.",
    ),
    "E7620": Explain(
        "Comment too long",
        "A comment is over 50,000 characters.",
        "Report this: the mediator sends no comments.",
    ),
    "E7621": Explain(
        "Value not in the option set",
        "Data element {de} has an option set and the value is not one of its codes.",
        "Map targets {targets} to a numeric data element without an option set.",
    ),
    "E7630": Explain(
        "Category option combo required",
        "DHIS2 requires a category option combo on every value (requireCategoryOptionCombo).",
        "Add categoryOptionCombo to the dhis mapping of CHT targets {targets}.",
    ),
    "E7631": Explain(
        "Attribute option combo required",
        "DHIS2 requires an attribute option combo on every value.",
        "Add attributeOptionCombo to the dhis mapping of CHT targets {targets}.",
    ),
    "E7632": Explain(
        "Period type not valid for the data element",
        "Period {pe} is not of the period type of the data sets holding {de} (strictPeriods).",
        "Push the data set of the right period type, or add {de} to a data set of that type.",
    ),
    "E7633": Explain(
        "Data element outside the data set",
        "Data element {de} is not part of data set {ds} (strictDataElements).",
        f"Add {{de}} to the data set in {MAINTENANCE_DS} → Data elements, or remove it "
        "from CHT targets {targets}.",
    ),
    "E7634": Explain(
        "Category option combo outside the data element's category combo",
        "Category option combo {coc} is not part of the category combo of {de}.",
        "Correct categoryOptionCombo on CHT targets {targets}.",
    ),
    "E7635": Explain(
        "Attribute option combo outside the data set's category combo",
        "Attribute option combo {aoc} is not part of the category combo of data set {ds}.",
        "Correct attributeOptionCombo on CHT targets {targets}, or the data set's attribute "
        "category combo.",
    ),
    "E7636": Explain(
        "Org unit not assigned to the data set",
        "Org unit {ou} is not assigned to a data set holding {de}, and DHIS2 refuses such "
        "values (the system setting keyDataImportStrictOrganisationUnits, or the data set's "
        "strict org units option, is on).",
        f"Assign {{ou}} in {MAINTENANCE_DS} {{ds}} → Organisation units, or remove "
        "dhis.orgUnit from CHT place {places}; or an admin turns off 'Require organisation "
        "units to match assignment of data set' (keyDataImportStrictOrganisationUnits) in "
        "System settings → Data import.",
    ),
    "E7637": Explain(
        "storedBy too long",
        "The storedBy field is over 255 characters.",
        "Report this: the mediator does not set storedBy.",
    ),
    "E7638": Explain(
        "Period outside the attribute option combo's dates",
        "Period {pe} is outside the start and end dates of attribute option combo {aoc}.",
        "Widen the category option's dates in DHIS2, or push another period.",
    ),
    "E7639": Explain(
        "Org unit not valid for the attribute option combo",
        "Org unit {ou} is not among the org units of attribute option combo {aoc}.",
        "Add {ou} to the category option's org units in DHIS2.",
    ),
    "E7640": Explain(
        "Period expired",
        "Period {pe} of data set {ds} is past its expiry days, for the org units named, and "
        "the integration user may not edit expired data.",
        "Any one of these unblocks it, then rerun the period: a lock exception for (data "
        "set {ds}, period {pe}, org unit) in DHIS2 Data administration → Lock exception; the "
        "authority F_EDIT_EXPIRED ('Edit expired data') on the integration user's role; or "
        f"more Expiry days in {MAINTENANCE_DS} {{ds}} (fractional days count from 2.42; "
        "before 2.37.10, 2.38.4 and 2.39.2 the last day closes at midnight).",
    ),
    "E7641": Explain(
        "Period not open yet",
        "Period {pe} is after the latest open future period of data set {ds}.",
        "Push only completed periods (the default), or raise Open future periods in "
        f"{MAINTENANCE_DS} {{ds}}.",
    ),
    "E7642": Explain(
        "Data already approved",
        "Data of {ds} for {pe} at {ou} is approved and cannot change.",
        "Ask the approver to unapprove it in DHIS2 (Data approval), then rerun the period; "
        "approved data is never changed by the mediator.",
    ),
    "E7643": Explain(
        "Period closed for data input",
        "Data set {ds} does not accept data for {pe} at this time (data input periods).",
        f"Open the period in {MAINTENANCE_DS} {{ds}} → Data input periods, then rerun it.",
    ),
    "E7644": Explain(
        "Period closed in every data set of the element",
        "None of the data sets holding {de} accepts data for {pe} now.",
        "Open the period in the data sets' data input periods, then rerun it.",
    ),
    "E7645": Explain(
        "No file value to delete",
        "A delete named a file value that does not exist.",
        "Report this: the mediator does not send file values.",
    ),
}
# Preflight and run findings (mediator/dhis2/preflight.py, mediator/run/push.py).
FINDINGS: dict[str, Explain] = {
    "data_set_not_found": CONFLICTS["E7600"],
    "data_elements_not_in_data_set": Explain(
        "Data elements mapped in CHT but not in the DHIS2 data set",
        "CHT targets {targets} map to data elements {ids} that data set {ds} does not hold; "
        "nothing of the data set was sent.",
        f"Add them in {MAINTENANCE_DS} {{ds}} → Data elements, or fix dhis.dataElement "
        "in CHT's targets.js.",
    ),
    "category_option_combo_invalid": Explain(
        "Category option combos outside their data element's category combo",
        "Category option combos {ids} do not belong to their data element's category combo; "
        "those rows were not sent.",
        "Correct categoryOptionCombo on the CHT targets (ids from the data element's category "
        "combo in DHIS2).",
    ),
    "attribute_option_combo_invalid": Explain(
        "Attribute option combos outside the data set's category combo",
        "Attribute option combos {ids} do not belong to data set {ds}'s category combo; "
        "those rows were not sent.",
        "Correct attributeOptionCombo on the CHT targets.",
    ),
    "values_invalid": Explain(
        "Values DHIS2 would refuse for their value type",
        "Values of data elements {ids} do not fit their value type; those rows were not sent.",
        "Choose another target value (MEDIATOR_VALUE_CHOICES) or change the value type.",
    ),
    "duplicate_rows": Explain(
        "The same data value twice",
        "Two CHT targets map to the same data element, option combos and org unit ({ids}).",
        "Give each target its own data element or category option combo in targets.js.",
    ),
    "org_units_not_assigned": Explain(
        "Org units not assigned to the data set",
        "Org units {ids} are not assigned to data set {ds}; DHIS2 stores their values anyway, "
        "but they will not show in its data entry or reports for the data set.",
        f"Assign them in {MAINTENANCE_DS} {{ds}} → Organisation units, or remove "
        "dhis.orgUnit from CHT places {places}.",
    ),
    "period_type_unsupported": Explain(
        "Period type CHT cannot fill",
        "Data set {ds} is {detail}; CHT keeps targets by calendar month.",
        "Use a Monthly, Quarterly, SixMonthly, Yearly or financial-year data set for CHT data.",
    ),
    "period_type_mismatch": Explain(
        "Period of another type than the data set",
        "Period {pe} is not of data set {ds}'s period type.",
        "Ask for a period of the data set's type, or give a range with from/to.",
    ),
    "existing_values_unreadable": Explain(
        "What DHIS2 holds could not be read",
        "The values DHIS2 holds at {ids} could not be read, so every value computed for "
        "them was sent and every zero sent as a clear: nothing stale stays, but nothing "
        "could be called unchanged.",
        "Give the integration user data read access: sharing 'data can view' on data set "
        "{ds} and these org units in its data view (or capture) org units.",
    ),
    "completeness_not_registered": Explain(
        "Completeness not registered",
        "DHIS2 did not mark data set {ds} complete for {pe} at {ids}.",
        "Check the org units' assignment to the data set and the user's authority "
        "F_DATAVALUE_ADD / completeness rights.",
    ),
    "calendar_not_iso": Explain(
        "DHIS2 uses another calendar",
        "DHIS2's calendar is not ISO 8601, so locked periods could not be checked before posting.",
        "Nothing to do unless DHIS2 refuses periods; then check the calendar setting.",
    ),
    "conflicts_unattributed": Explain(
        "Conflicts not matched to rows",
        "DHIS2 reported conflicts the mediator could not match to a row (2.36 gives no positions).",
        "Read the conflicts in the DHIS2 orchestration of this transaction.",
    ),
}
# A data set that failed as a whole: what its error says, in the order tested.
ERRORS: dict[str, Explain] = {
    "dhis2_login_redirect": Explain(
        "DHIS2 sent its login page",
        "DHIS2 answered with a redirect to its login page: it did not see valid credentials.",
        "Set DHIS2_USERNAME and DHIS2_PASSWORD (or DHIS2_TOKEN) for a DHIS2 user that can "
        "log in; check DHIS2_URL is the base URL (https, no /dhis-web-… path).",
    ),
    "dhis2_unauthorized": Explain(
        "DHIS2 refused the credentials",
        "DHIS2 answered 401: the username and password (or the token) are wrong, expired, "
        "or the account is locked or disabled.",
        "Correct DHIS2_PASSWORD / DHIS2_TOKEN (console: dhis2Password / dhis2Token); a DHIS2 "
        "admin can unlock the user in Users. The mediator stops after one refusal so it "
        "does not lock the account.",
    ),
    "dhis2_token_invalid": Explain(
        "DHIS2 refused the API token",
        "The personal access token is malformed or its checksum is wrong.",
        "Create a new token in DHIS2 (profile → Personal access tokens) and set DHIS2_TOKEN.",
    ),
    "dhis2_forbidden": Explain(
        "The DHIS2 user lacks an authority",
        "DHIS2 answered 403: the integration user may not import data values.",
        "In DHIS2 Users, give the user a role with 'Add/Update data values' "
        "(F_DATAVALUE_ADD) and data write sharing on the data set.",
    ),
    "dhis2_unreachable": Explain(
        "DHIS2 could not be reached",
        "Connections to DHIS2 failed or timed out, even after retries.",
        "Check that DHIS2 is up, the network between the mediator and DHIS2, and DHIS2_URL; "
        "then {rerun}.",
    ),
    "dhis2_not_json": Explain(
        "Something other than DHIS2 answered",
        "The answer was not JSON: a web page (from a proxy, a load balancer or another web "
        "server at that address) answered instead of DHIS2's API: {detail}.",
        "Open DHIS2_URL/api/system/info from the mediator's host: it must show DHIS2's JSON. "
        "If a page shows instead, correct DHIS2_URL (DHIS2's base URL) or the proxy's route "
        "to DHIS2; then {rerun}.",
    ),
    "dhis2_unexpected_shape": Explain(
        "DHIS2's answer was not in the shape DHIS2 sends",
        "{detail}.",
        "Check that DHIS2_URL points at the DHIS2 instance, not another service behind the "
        "same address, and that it is DHIS2 2.36 to 2.42 (DHIS2 → About DHIS2). If both are "
        "right, report the answer (the DHIS2 step of this transaction) to the mediator's "
        "maintainers.",
    ),
    "dhis2_server_error": Explain(
        "DHIS2 kept failing",
        "DHIS2, or a proxy in front of it, answered with a server error on every attempt: "
        "{detail}.",
        "Check DHIS2's health (its log, its database, memory) and the proxy's log for that "
        "time; then {rerun}: only what was not imported is sent again.",
    ),
    "dhis2_body_too_large": Explain(
        "The import was too large for DHIS2's web server or a proxy",
        "DHIS2 answered HTTP 413: the body of a POST was over the size limit of DHIS2's web "
        "server or of a proxy in front of it, so its values were not imported.",
        "Lower DHIS2_CHUNK_SIZE (values per POST), or raise the proxy's limit (nginx "
        "client_max_body_size, Apache LimitRequestBody); then {rerun}: only what was not "
        "imported is sent again.",
    ),
    "cht_read_failed": Explain(
        "CHT could not be read",
        "{detail}.",
        "Check that this CHT instance is up and reachable from the mediator, then its URL, "
        "credentials and the medic-admin views; the data set is pushed by the next run once "
        "CHT answers.",
    ),
}
# Run-level and CHT-side problems (their causes are built from what was read).
CHT: dict[str, Explain] = {
    "cht_unreadable": Explain(
        "CHT could not be read",
        "{detail}",
        "Check that CHT is up and reachable from the mediator (open CHT_URL there), then "
        "CHT_URL (the instance's address, without /medic), CHT_USERNAME and CHT_PASSWORD "
        "(an online CHT user) and that the medic-admin design doc exists. Nothing was "
        "pushed; once CHT answers, {rerun}.",
    ),
    "cht_source_failed": Explain(
        "A CHT instance could not be read",
        "CHT instance {ids}: {detail}",
        "Check that the instance is up and reachable from the mediator, then its URL and "
        "credentials; the data sets it feeds were not pushed with partial totals and go out "
        "in the next run.",
    ),
    "cht_contacts_read_afresh": Explain(
        "Contacts read afresh",
        "CHT instance {ids}: {detail}.",
        "Nothing to fix for the numbers: they are exact, the run was only slower. To keep "
        "contacts between runs again, let the CHT user read the database info "
        "($CHT_URL/$CHT_DB/) and POST _changes (an online CHT user does); a timeout here "
        "means CHT was slow to answer, and the next run tries again.",
    ),
    "cht_no_target_docs": Explain(
        "No target docs in CHT for the period",
        "CHT holds no target docs for {detail}: either no CHW has synced since the period "
        "ended, or targets are not enabled in the app.",
        "Ask CHWs to open the app and sync; check tasks.targets in the app settings. Zero "
        "rows were pushed; the next scheduled run picks up late syncs.",
    ),
    "cht_users_not_synced": Explain(
        "CHWs missing from the numbers",
        "{detail} CHT users have no target doc for {pe}: {ids}.",
        "Ask them to sync; their numbers reach DHIS2 in the next scheduled run "
        "(MEDIATOR_LOOKBACK_PERIODS). See /coverage for the list by org unit.",
    ),
}
