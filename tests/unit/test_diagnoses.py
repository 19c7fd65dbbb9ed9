"""Every DHIS2 rejection and CHT-side problem the mediator can meet is explained in
plain words, with the fix, naming the ids (mediator.run.diagnoses)."""

from __future__ import annotations

import re

import pytest

from mediator.dhis2.conflicts import TEXTS_236, conflict_code
from mediator.model.report import (
    ChtRead,
    Conflict,
    DataSetResult,
    Finding,
    OrgUnitCoverage,
    RunReport,
)
from mediator.openhim.properties import properties
from mediator.run.diagnoses import diagnose
from mediator.run.wording import CONFLICTS, FINDINGS

DS, PE, DE, OU, COC = "VMuFODsyWaO", "202401", "kB0ZBFisE0e", "DiszpKrYNg8", "Ua1bC2dE3fG"
PLACE, TARGET = "chu-1", "births-this-month"


def result(**kw) -> DataSetResult:
    base = {
        "data_set": DS,
        "period": PE,
        "status": "warning",
        "months": ["2024-01"],
        "mapped_targets": {DE: [TARGET]},
        "coverage": [OrgUnitCoverage(orgUnit=OU, places=[PLACE], expected=3, synced=3)],
        "users_expected": 3,
        "users_synced": 3,
    }
    return DataSetResult(**{**base, **kw})


def report(*results: DataSetResult, **kw) -> RunReport:
    reads = [ChtRead(period="202401", target_docs=12)]
    return RunReport(run_id="r1", results=list(results), cht=kw.pop("cht", reads), **kw)


def extended(code: str) -> Conflict:
    """A 2.37+ conflict of ``code`` naming a data element, org unit, period and combo."""
    return Conflict(
        object=DE,
        objects={
            "dataElement": DE,
            "organisationUnit": OU,
            "period": PE,
            "categoryOptionCombo": COC,
        },
        value=f"message of {code}",
        errorCode=code,
        property="categoryOptionCombo",
        indexes=[0, 1],
    )


@pytest.mark.parametrize("code", sorted(CONFLICTS))
def test_each_e76xx_conflict_code_is_explained_with_ids_and_a_fix(code):
    (diagnosis,) = diagnose(report(result(conflicts=[extended(code)])))
    assert diagnosis.kind == code
    assert diagnosis.title == CONFLICTS[code].title
    assert diagnosis.count == 2  # the conflict covered two rows
    assert "{" not in diagnosis.cause + diagnosis.fix  # every placeholder filled
    text = diagnosis.cause + " " + diagnosis.fix
    names_ids = "{" in CONFLICTS[code].cause + CONFLICTS[code].fix
    assert not names_ids or any(i in text for i in (DE, OU, PE, COC, DS, TARGET, PLACE)), text
    assert (diagnosis.data_set, diagnosis.period) == (DS, PE)


@pytest.mark.parametrize(("pattern", "code"), TEXTS_236)
def test_each_236_text_without_a_code_maps_to_its_e76xx(pattern, code):
    text = re.sub(r"\(\?!.*\)", "", pattern).strip("^$").replace("\\", "")
    conflict = Conflict(object=OU if code in ("E7603", "E7612") else DE, value=f"{text}: x")
    assert conflict_code(conflict) == code
    (diagnosis,) = diagnose(report(result(conflicts=[conflict])))
    assert diagnosis.kind == code


def test_unknown_org_unit_names_the_cht_place_to_fix():
    conflict = Conflict(
        object=OU,
        objects={"organisationUnit": OU},
        value="Organisation unit not found or not accessible: `DiszpKrYNg8`",
        errorCode="E7612",
        property="orgUnit",
        indexes=[3],
    )
    (diagnosis,) = diagnose(report(result(conflicts=[conflict])))
    assert OU in diagnosis.cause
    assert f"dhis.orgUnit on CHT place {PLACE}" in diagnosis.fix


def test_unknown_data_element_names_the_cht_target_to_fix():
    conflict = Conflict(object=DE, value="Data element not found or not accessible")  # 2.36
    (diagnosis,) = diagnose(report(result(conflicts=[conflict])))
    assert diagnosis.kind == "E7610"
    assert DE in diagnosis.cause and TARGET in diagnosis.fix


FINDING_IDS = {
    "data_set_not_found": [DS],
    "data_elements_not_in_data_set": [DE],
    "category_option_combo_invalid": [COC],
    "attribute_option_combo_invalid": [COC],
    "values_invalid": [DE],
    "duplicate_rows": [DE],
    "org_units_not_assigned": [OU],
    "period_expired": [DS, PE],
    "period_not_open_yet": [DS, PE],
    "period_input_closed": [DS, PE],
    "period_type_unsupported": [DS],
    "period_type_mismatch": [DS, PE],
    "existing_values_unreadable": [OU],
    "completeness_not_registered": [OU],
    "calendar_not_iso": [],
    "conflicts_unattributed": [],
}


@pytest.mark.parametrize("code", sorted(FINDINGS))
def test_each_preflight_finding_is_explained(code):
    finding = Finding(
        level="error", code=code, message="Data set has period type Weekly", ids=FINDING_IDS[code]
    )
    (diagnosis,) = diagnose(report(result(status="error", preflight=[finding])))
    assert diagnosis.kind == code
    assert "{" not in diagnosis.cause + diagnosis.fix
    for ident in FINDING_IDS[code]:
        assert ident in diagnosis.cause + diagnosis.fix


def test_an_unassigned_org_unit_says_where_to_assign_it_or_which_place_to_untag():
    finding = Finding(level="warning", code="org_units_not_assigned", message="", ids=[OU])
    (diagnosis,) = diagnose(report(result(preflight=[finding])))
    assert "Maintenance → Data set" in diagnosis.fix and DS in diagnosis.fix
    assert f"CHT places {PLACE}" in diagnosis.fix


def test_a_locked_period_says_what_unblocks_it():
    """DHIS2's own E7640 per row is what is diagnosed; the preflight's prediction is said
    in the report only (a prediction may be wrong: DHIS2 decides)."""
    e7640 = Conflict(
        object=PE,
        objects={"period": PE, "dataSet": DS},
        value=f"Current date is past expiry days for period: `{PE}`  and data set: `{DS}`",
        errorCode="E7640",
    )
    (diagnosis,) = diagnose(report(result(status="error", conflicts=[e7640])))
    for words in ("Expiry days", "F_EDIT_EXPIRED", "lock exception"):
        assert words in diagnosis.fix
    predicted = Finding(level="warning", code="period_expired", message="", ids=[DS, PE])
    assert diagnose(report(result(status="success", preflight=[predicted]))) == []


@pytest.mark.parametrize(
    ("error_kind", "status", "kind", "says"),
    [
        ("login_redirect", 302, "dhis2_login_redirect", "DHIS2_USERNAME"),
        ("credentials", 401, "dhis2_unauthorized", "DHIS2_PASSWORD"),
        ("token_refused", 400, "dhis2_token_invalid", "DHIS2_TOKEN"),
        ("forbidden", 403, "dhis2_forbidden", "F_DATAVALUE_ADD"),
        (None, 403, "dhis2_forbidden", "F_DATAVALUE_ADD"),
        ("unreachable", None, "dhis2_unreachable", "DHIS2_URL"),
        ("timeout", None, "dhis2_unreachable", "DHIS2_URL"),
        ("not_json", 502, "dhis2_not_json", "DHIS2_URL/api/system/info"),
        ("shape", 200, "dhis2_unexpected_shape", "2.36 to 2.42"),
        ("body", 200, "dhis2_unexpected_shape", "2.36 to 2.42"),
        ("too_large", 413, "dhis2_body_too_large", "DHIS2_CHUNK_SIZE"),
        ("cht_read", None, "cht_read_failed", "CHT"),
    ],
)
def test_data_set_failures_are_explained_by_their_kind(error_kind, status, kind, says):
    """Diagnoses decide by the kind of failure (http.PeerError.kind), never its words."""
    failed = result(status="error", error="whatever it says", error_status=status)
    failed.error_kind = error_kind
    (diagnosis,) = [d for d in diagnose(report(failed)) if d.kind == kind]
    assert says in diagnosis.fix or says in diagnosis.cause


@pytest.mark.parametrize(
    ("error_kind", "kind"),
    [("not_json", "dhis2_not_json"), ("shape", "dhis2_unexpected_shape")],
)
def test_an_answer_that_is_not_dhis2s_is_never_blamed_on_a_body_size_limit(error_kind, kind):
    """Three causes, three diagnoses: only a 413 is told to lower the chunk size or raise
    the proxy's body limit; a web page and JSON of another shape name DHIS2_URL."""
    failed = result(status="error", error="DHIS2 at https://x answered…", error_status=200)
    failed.error_kind = error_kind
    (diagnosis,) = diagnose(report(failed))
    assert diagnosis.kind == kind
    words = diagnosis.cause + diagnosis.fix
    assert "DHIS2_URL" in words
    for wrong in ("client_max_body_size", "DHIS2_CHUNK_SIZE", "body size"):
        assert wrong not in words


def test_a_413_on_one_chunk_is_diagnosed_though_the_others_went_through():
    partial = result(status="warning", error="DHIS2 … answered HTTP 413", error_status=413)
    partial.error_kind = "too_large"
    (diagnosis,) = [d for d in diagnose(report(partial)) if d.kind == "dhis2_body_too_large"]
    assert "client_max_body_size" in diagnosis.fix and "DHIS2_CHUNK_SIZE" in diagnosis.fix


def test_cht_without_target_docs_for_the_period():
    empty = result(status="success", coverage=[], users_expected=0)
    (diagnosis,) = diagnose(report(empty, cht=[ChtRead(period="202401", target_docs=0)]))
    assert diagnosis.kind == "cht_no_target_docs"
    assert "2024-01" in diagnosis.cause and "sync" in diagnosis.fix


def test_users_who_never_synced_are_named():
    coverage = [
        OrgUnitCoverage(orgUnit=OU, places=[PLACE], expected=3, synced=1, missing=["chw2", "chw3"])
    ]
    (diagnosis,) = diagnose(report(result(status="success", coverage=coverage, users_synced=1)))
    assert diagnosis.kind == "cht_users_not_synced" and diagnosis.count == 2
    assert "chw2, chw3" in diagnosis.cause


def test_cht_unreadable_and_a_failed_instance_at_run_level():
    run = report(
        findings=[
            Finding(
                level="error", code="cht_unreadable", message="CHT at https://c is unreachable"
            ),
            Finding(level="error", code="cht_source_failed", message="HTTP 500", ids=["south"]),
        ]
    )
    kinds = [d.kind for d in diagnose(run)]
    assert kinds == ["cht_unreadable", "cht_source_failed"]


def test_diagnoses_appear_as_one_property_per_kind_with_a_count():
    conflicts = [extended("E7612"), extended("E7612"), extended("E7640")]
    run = report(result(conflicts=conflicts))
    run.diagnoses = diagnose(run)
    props = properties(run)
    unknown = props["problem: Org unit unknown to DHIS2"]
    assert unknown.startswith("202401: DHIS2 has no org unit DiszpKrYNg8")
    assert unknown.count("DHIS2 has no org unit") == 1  # once, however many rows
    expired = props["problem: Period expired"]
    assert expired.startswith("202401: Period 202401 of data set") and "What to do: " in expired


# -- words an operator reads (issue 16) ------------------------------------------------------


def test_no_fix_reads_fix_fix():
    from mediator.run.wording import CHT, ERRORS

    for table in (CONFLICTS, FINDINGS, ERRORS, CHT):
        for kind, explain in table.items():
            assert not explain.fix.startswith("Fix"), kind  # shown after "Fix:" / "what to do:"


@pytest.mark.parametrize(
    ("trigger", "says", "never"),
    [
        ("cli", "run the command the summary ends with", "OpenHIM console"),
        ("openhim", "rerun the transaction from the OpenHIM console", "summary ends with"),
    ],
)
def test_how_to_rerun_depends_on_where_the_run_came_from(trigger, says, never):
    dhis2_down = result(status="error", error="DHIS2 unreachable", error_kind="unreachable")
    cht_down = Finding(level="error", code="cht_unreadable", message="CHT unreachable")
    for run in (report(dhis2_down, trigger=trigger), report(findings=[cht_down], trigger=trigger)):
        (diagnosis,) = [d for d in diagnose(run) if d.kind != "cht_users_not_synced"]
        assert says in diagnosis.fix and never not in diagnosis.fix


def test_an_unreachable_peer_is_first_suggested_to_be_down():
    cht_down = Finding(level="error", code="cht_unreadable", message="CHT unreachable")
    (cht,) = diagnose(report(findings=[cht_down]))
    assert cht.fix.startswith("Check that CHT is up")
    dhis2 = diagnose(report(result(status="error", error="x", error_kind="timeout")))
    assert dhis2[0].fix.startswith("Check that DHIS2 is up")


def test_a_period_not_open_yet_asks_no_one_to_sync():
    missing = [OrgUnitCoverage(orgUnit=OU, places=[PLACE], expected=12, synced=0, missing=["chw1"])]
    future = Finding(level="warning", code="period_not_open_yet", message="not open", ids=[DS])
    run = report(
        result(status="error", conflicts=[extended("E7641")], coverage=missing, users_synced=0),
        result(status="warning", preflight=[future], coverage=missing, users_synced=0),
        result(status="error", coverage=missing, users_synced=0, months=["2999-01"]),
    )
    kinds = [d.kind for d in diagnose(run)]
    assert "E7641" in kinds
    assert "cht_users_not_synced" not in kinds
    # a period that is over still names who is missing
    (over,) = diagnose(report(result(status="success", coverage=missing, users_synced=0)))
    assert over.kind == "cht_users_not_synced"


# Every (object, value) conflict 2.36.13.2 writes for a data value import, verbatim from
# its DefaultDataValueSetService (the DHIS2 stand-in's 2.36 texts, cited there line by
# line): none may go unrecognised, or its rows could pass for delivered.
AOC, DS2, USER = "HllvX50cXC0", "pBOMPrpg1QX", "admin"
TEXTS_236_VERBATIM = [
    (DS2, "Data set not found or not accessible", "E7600"),
    (DS2, f"User does not have write access for DataSet: {DS2}", "E7601"),
    ("DATA_IMPORT_STRICT_DATA_ELEMENTS", "A valid dataset is required", "E7602"),
    (OU, "Org unit not found or not accessible", "E7603"),
    (AOC, "Attribute option combo not found or not accessible", "E7604"),
    (DE, "Data element not found or not accessible", "E7610"),
    ("2024W99", "Period not valid", "E7611"),
    (OU, "Organisation unit not found or not accessible", "E7612"),
    (COC, "Category option combo not found or not accessible for writing data", "E7613"),
    ("dataValueSet", "User has no data write access for CategoryOption: CoUnder20aa", "E7614"),
    (AOC, "Attribute option combo not found or not accessible for writing data", "E7615"),
    (OU, f"Organisation unit not in hierarchy of current user: {USER}", "E7617"),
    ("Value", f"Data value or comment not specified for data element: {DE}", "E7618"),
    ("2.5", f"Data value is not an integer, must match data element type: {DE}", "E7619"),
    ("-1", f"value_not_zero_or_positive_integer, must match data element type: {DE}", "E7619"),
    ("Comment", "Comment is greater than max length", "E7620"),
    ("9", f"Data value is not a valid option of the data element option set: {DE}", "E7621"),
    ("3", "Category option combo is required but is not specified", "E7630"),
    ("3", "Attribute option combo is required but is not specified", "E7631"),
    ("2024W5", f"Period type of period: 2024W5 not valid for data element: {DE}", "E7632"),
    (
        "DATA_IMPORT_STRICT_DATA_ELEMENTS",
        f"Data element: {DE} is not part of dataset: {DS2}",
        "E7633",
    ),
    (
        COC,
        f"Category option combo: {COC} must be part of category combo of data element: {DE}",
        "E7634",
    ),
    (
        AOC,
        f"Attribute option combo: {AOC} must be part of category combo of data sets of data "
        f"element: {DE}",
        "E7635",
    ),
    (
        OU,
        f"Data element: {DE} must be assigned through data sets to organisation unit: {OU}",
        "E7636",
    ),
    ("mediator", "Stored by is greater than max length", "E7637"),
    (OU, f"Period: 202401 is not within date range of attribute option combo: {AOC}", "E7638"),
    (OU, f"Organisation unit: {OU} is not valid for attribute option combo: {AOC}", "E7639"),
    ("202401", f"Current date is past expiry days for period 202401 and data set: {DS2}", "E7640"),
    (
        "202412",
        f"Period: 202412 is after latest open future period: 202411 for data element: {DE}",
        "E7641",
    ),
    (
        OU,
        f"Data is already approved for data set: {DS2} period: 202401 organisation unit: {OU} "
        f"attribute option combo: {AOC}",
        "E7642",
    ),
    (OU, f"Period: 202401 is not open for this data set at this time: {DS2}", "E7643"),
    (OU, "Period 202401 does not conform to the open periods of associated data sets", "E7644"),
    (DE, "No data value for file resource exist for the given combination", "E7645"),
]


@pytest.mark.parametrize(("obj", "text", "code"), TEXTS_236_VERBATIM)
def test_every_236_conflict_text_maps_to_its_code(obj, text, code):
    assert conflict_code(Conflict(object=obj, value=text)) == code
