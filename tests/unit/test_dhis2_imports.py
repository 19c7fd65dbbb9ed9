"""Every import response in the reference examples parses to one model, and
conflicts map back to the rows that were posted (2.36 by object, 2.37+ by index)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mediator.dhis2.imports import attribute, parse_async_job, parse_import, parse_web_message
from mediator.model.report import RowRef

EXAMPLES = Path(__file__).parent / "dhis2_examples"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


def scenario_rows() -> list[RowRef]:
    """The request behind the *_conflicts examples, as the client would have posted it."""
    body = example("constructed_request_conflict_scenarios.json")
    return [RowRef(**v) for v in body["dataValues"]]


@pytest.mark.parametrize(
    ("name", "http", "status", "counts", "wrapped", "conflicts", "rejected_indexes"),
    [
        ("constructed_236_200_bare_success.json", 200, "SUCCESS", (3, 0, 0, 0), False, 0, None),
        (
            "constructed_236_200_bare_warning_conflicts.json",
            200,
            "WARNING",
            (1, 0, 6, 0),
            False,
            6,
            None,
        ),
        ("constructed_236_200_bare_error_aborted.json", 200, "ERROR", (0, 0, 0, 0), False, 1, None),
        (
            "constructed_237_200_bare_warning_extended_conflicts.json",
            200,
            "WARNING",
            (1, 0, 2, 0),
            False,
            2,
            None,
        ),
        (
            "androidsdk_response_238plus_success_webmessage.json",
            200,
            "SUCCESS",
            (0, 10, 0, 0),
            True,
            0,
            None,
        ),
        ("constructed_241_200_success_first_post.json", 200, "SUCCESS", (3, 0, 0, 0), True, 0, []),
        (
            "constructed_241_200_success_identical_repost.json",
            200,
            "SUCCESS",
            (0, 0, 3, 0),
            True,
            0,
            [],
        ),
        (
            "constructed_241_409_warning_conflicts.json",
            409,
            "WARNING",
            (1, 0, 6, 0),
            True,
            6,
            [1, 2, 3, 4, 5, 6],
        ),
        (
            "constructed_241_409_error_aborted_dataset_not_found.json",
            409,
            "ERROR",
            (0, 0, 0, 0),
            True,
            1,
            [],
        ),
        (
            "constructed_241_409_error_aborted_orgunit_not_found.json",
            409,
            "ERROR",
            (0, 0, 0, 0),
            True,
            1,
            [],
        ),
        ("constructed_241_409_error_parse_failure.json", 409, "ERROR", (0, 0, 0, 0), True, 0, []),
        (
            "docs241_response_taskSummaries_importSummary.json",
            200,
            "SUCCESS",
            (0, 431, 0, 0),
            False,
            0,
            None,
        ),
    ],
)
def test_every_import_example_parses(
    name: str,
    http: int,
    status: str,
    counts: tuple[int, int, int, int],
    wrapped: bool,
    conflicts: int,
    rejected_indexes: list[int] | None,
) -> None:
    result = parse_import(example(name), http)
    assert result is not None
    assert result.status == status
    assert result.wrapped is wrapped
    assert result.http_status == http
    c = result.counts
    assert (c.imported, c.updated, c.ignored, c.deleted) == counts
    assert len(result.conflicts) == conflicts
    assert result.rejected_indexes == rejected_indexes
    assert result.aborted is (status == "ERROR")


def test_wrapped_409_keeps_the_webmessage_text_and_the_error_codes() -> None:
    result = parse_import(example("constructed_241_409_warning_conflicts.json"), 409)
    assert result is not None
    assert result.message == "One more conflicts encountered, please check import summary."
    assert [c.errorCode for c in result.conflicts] == [
        "E7610",
        "E7619",
        "E7612",
        "E7611",
        "E7640",
        "E7641",
    ]
    e7641 = result.conflicts[-1]
    assert e7641.property == "period"
    assert e7641.indexes == [6]
    assert e7641.objects == {
        "period": "202411",
        "dataElement": "f7n9E0hX8qk",
        "dataSet": "pBOMPrpg1QX",
    }


def test_236_conflicts_have_only_object_and_value() -> None:
    result = parse_import(example("constructed_236_200_bare_warning_conflicts.json"))
    assert result is not None
    first = result.conflicts[0]
    assert (first.object, first.value) == (
        "aaaaaaaaaaa",
        "Data element not found or not accessible",
    )
    assert first.errorCode is None and first.indexes == [] and first.objects == {}


def test_the_abort_reason_survives_parsing() -> None:
    result = parse_import(example("constructed_241_409_error_parse_failure.json"), 409)
    assert result is not None
    assert result.description is not None
    assert result.description.startswith("The import process failed:")


@pytest.mark.parametrize(
    "name",
    [
        "constructed_401_basic_bad_credentials.json",
        "constructed_401_apitoken_unknown.json",
        "constructed_403_missing_F_DATAVALUE_ADD.json",
        "constructed_404_dataset_241.json",
        "constructed_400_apitoken_bad_checksum_241plus.json",
        "constructed_241_200_async_initiated.json",
        "docs241_response_async_initiated.json",
        "constructed_get_dataSet_with_fields.json",
    ],
)
def test_bodies_without_an_import_summary_are_not_import_results(name: str) -> None:
    assert parse_import(example(name), 409) is None


def test_error_webmessages_carry_message_and_code() -> None:
    msg = parse_web_message(example("constructed_404_dataset_241.json"))
    assert msg is not None
    assert (msg.httpStatusCode, msg.message, msg.errorCode) == (
        404,
        "DataSet with id zzzzzzzzzzz could not be found.",
        "E1005",
    )
    assert parse_web_message(example("constructed_403_missing_F_DATAVALUE_ADD.json")) is not None


@pytest.mark.parametrize(
    ("name", "job_id", "notifier"),
    [
        (
            "constructed_241_200_async_initiated.json",
            "qtCHqU4uEGt",
            "/api/system/tasks/DATAVALUE_IMPORT/qtCHqU4uEGt",
        ),
        (
            "docs241_response_async_initiated.json",
            "YR1UxOUXmzT",
            "/api/system/tasks/DATAVALUE_IMPORT/YR1UxOUXmzT",
        ),
    ],
)
def test_async_initiated_replies_name_the_job(name: str, job_id: str, notifier: str) -> None:
    job = parse_async_job(example(name))
    assert job is not None
    assert (job.id, job.notifier) == (job_id, notifier)


def test_241_conflicts_map_to_rows_by_index() -> None:
    result = parse_import(example("constructed_241_409_warning_conflicts.json"), 409)
    assert result is not None
    rows = scenario_rows()
    found = attribute(result, rows)
    assert sorted(found.rejected) == [1, 2, 3, 4, 5, 6]
    assert found.unattributed == []
    bad_de = found.rejected[1]
    assert (bad_de.dataElement, bad_de.errorCode) == ("aaaaaaaaaaa", "E7610")
    expired = found.rejected[5]
    assert (expired.period, expired.errorCode) == ("202301", "E7640")
    assert "past expiry days" in expired.reason
    assert found.rejected[3].orgUnit == "bbbbbbbbbbb"


def test_237_conflicts_map_to_rows_by_index() -> None:
    result = parse_import(example("constructed_237_200_bare_warning_extended_conflicts.json"))
    assert result is not None
    found = attribute(result, scenario_rows()[:3])
    assert {i: r.errorCode for i, r in found.rejected.items()} == {1: "E7610", 2: "E7619"}


def test_236_conflicts_map_to_rows_by_object_and_the_ids_in_the_message() -> None:
    """2.36 gives no indexes: the object (an id, or the bad value) finds the row."""
    result = parse_import(example("constructed_236_200_bare_warning_conflicts.json"))
    assert result is not None
    rows = scenario_rows()
    found = attribute(result, rows)
    # row 0 (f7n9E0hX8qk, 202410, DiszpKrYNg8) is the one value that was imported
    assert sorted(found.rejected) == [1, 2, 3, 4, 5, 6]
    assert found.unattributed == []
    assert found.rejected[2].value == "abc"
    assert "not numeric" in found.rejected[2].reason
    assert found.rejected[6].reason.startswith("Period: 202411 is after latest open")


def test_236_period_conflict_narrows_to_the_data_element_it_names() -> None:
    result = parse_import(
        {
            "responseType": "ImportSummary",
            "status": "WARNING",
            "importCount": {"imported": 1, "updated": 0, "ignored": 1, "deleted": 0},
            "conflicts": [
                {
                    "object": "202411",
                    "value": "Period: 202411 is after latest open future period: 202410 "
                    "for data element: f7n9E0hX8qk",
                }
            ],
        }
    )
    assert result is not None
    rows = [
        RowRef(dataElement="f7n9E0hX8qk", orgUnit="DiszpKrYNg8", period="202411", value="1"),
        RowRef(dataElement="Ix2HsbDMLea", orgUnit="DiszpKrYNg8", period="202411", value="2"),
    ]
    assert sorted(attribute(result, rows).rejected) == [0]


def test_conflicts_no_row_matches_stay_unattributed() -> None:
    result = parse_import(
        {
            "responseType": "ImportSummary",
            "status": "WARNING",
            "importCount": {"imported": 1},
            "conflicts": [{"object": "Value", "value": "Data value or comment not specified"}],
        }
    )
    assert result is not None
    rows = [RowRef(dataElement="f7n9E0hX8qk", orgUnit="DiszpKrYNg8", period="202410", value="1")]
    found = attribute(result, rows)
    assert found.rejected == {}
    assert len(found.unattributed) == 1


def test_an_aborted_chunk_rejects_every_row_with_the_reason() -> None:
    result = parse_import(example("constructed_241_409_error_aborted_dataset_not_found.json"), 409)
    assert result is not None
    rows = scenario_rows()[:2]
    found = attribute(result, rows)
    assert sorted(found.rejected) == [0, 1]
    assert found.rejected[0].errorCode == "E7600"
    assert "Data set not found" in found.rejected[0].reason


def test_rejected_indexes_without_a_conflict_still_reject_the_row() -> None:
    result = parse_import(
        {
            "httpStatusCode": 200,
            "response": {
                "responseType": "ImportSummary",
                "status": "SUCCESS",
                "importCount": {"ignored": 1},
                "rejectedIndexes": [0],
                "conflicts": [],
            },
        }
    )
    assert result is not None
    rows = [RowRef(dataElement="f7n9E0hX8qk", orgUnit="DiszpKrYNg8", period="202410", value="")]
    assert list(attribute(result, rows).rejected) == [0]
