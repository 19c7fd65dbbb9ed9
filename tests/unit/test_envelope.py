"""The application/json+openhim envelope, checked against core's schema rules (§4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from mediator.envelope import (
    BODY_LIMIT,
    MAX_ORCHESTRATIONS,
    error_envelope,
    processing_envelope,
    report_body,
    run_envelope,
    transaction_document,
    transaction_update,
)
from mediator.models import Exchange
from mediator.report import (
    ChtRead,
    Conflict,
    DataSetResult,
    Finding,
    ImportCount,
    OrgUnitCoverage,
    RejectedRow,
    RunReport,
)
from mediator.secrets import MASK

URN = "urn:mediator:cht-dhis2-aggregate"
T0 = datetime(2024, 3, 3, 2, 0, tzinfo=UTC)
CHT_PW = "Cht-Secret-7731"
DHIS2_PW = "Dhis2-Secret-4410"
CHT = "https://cht.example.org"
DHIS2 = "https://dhis2.example.org"


def cht_page(n: int) -> Exchange:
    return Exchange(
        name=f"CHT target docs page {n}",
        method="GET",
        url=f"{CHT}/medic/_all_docs?limit=1000",
        path="/medic/_all_docs",
        querystring="limit=1000",
        request_headers={"Authorization": "Basic Y2h0OnB3"},
        started=T0 + timedelta(seconds=n),
        status=200,
        response_body='{"rows": [' + "x" * 100 + "]}",
        finished=T0 + timedelta(seconds=n, milliseconds=300),
    )


def dhis2_post(body_size: int = 200) -> Exchange:
    return Exchange(
        name="DHIS2 dataValueSets",
        method="POST",
        url=f"{DHIS2}/api/dataValueSets?importStrategy=CREATE_AND_UPDATE&password={DHIS2_PW}",
        path="/api/dataValueSets",
        querystring=f"importStrategy=CREATE_AND_UPDATE&password={DHIS2_PW}",
        request_headers={
            "Authorization": "Basic YWRtaW46ZGlzdHJpY3Q=",
            "Cookie": "JSESSIONID=abc",
            "Content-Type": "application/json",
        },
        request_body=json.dumps({"dataValues": [{"value": "1"}] * body_size, "password": DHIS2_PW}),
        started=T0 + timedelta(minutes=5),
        status=200,
        response_headers={"Set-Cookie": "JSESSIONID=xyz", "Content-Type": "application/json"},
        response_body=json.dumps({"status": "OK", "importCount": {"imported": 10}}),
        finished=T0 + timedelta(minutes=5, seconds=2),
    )


def make_report(**overrides: Any) -> RunReport:
    values: dict[str, Any] = {
        "run_id": "run-1",
        "trigger": "openhim",
        "started": T0,
        "finished": T0 + timedelta(minutes=6),
        "periods": ["2024-02"],
        "data_sets": ["VTdjfLXXmoi"],
        "cht": [
            ChtRead(period="2024-02", target_docs=1200, places=87),
        ],
        "results": [
            DataSetResult(
                data_set="VTdjfLXXmoi",
                period="202402",
                docs_counted=1195,
                skipped={"owner_not_found": 3, "target.value.missing": 2},
                coverage=[
                    OrgUnitCoverage(orgUnit=ou, expected=4, synced=3, missing=["chw9"])
                    for ou in ("ou1", "ou2", "ou3")
                ],
                users_expected=12,
                users_synced=9,
                values_sent=40,
                counts=ImportCount(imported=30, updated=8, ignored=2, deleted=0),
                conflicts=[Conflict(value="bad value", object="x")],
            )
        ],
        "exchanges": [cht_page(1), cht_page(2), cht_page(3), dhis2_post()],
    }
    values.update(overrides)
    return RunReport(**values)


def build(report: RunReport | None = None) -> dict[str, Any]:
    return run_envelope(
        report or make_report(), urn=URN, secrets=[CHT_PW, DHIS2_PW], cht_url=CHT, now=T0
    )


def test_envelope_has_the_shape_core_requires() -> None:
    env = build()
    assert env["x-mediator-urn"] == URN
    assert env["status"] == "Successful"
    response = env["response"]
    assert isinstance(response["status"], int)
    assert isinstance(response["body"], str)
    assert json.loads(response["body"])["run_id"] == "run-1"
    assert datetime.fromisoformat(response["timestamp"]).tzinfo is not None
    assert isinstance(env["orchestrations"], list)
    for orch in env["orchestrations"]:
        assert orch["name"]
        req = orch["request"]
        assert set(req) >= {
            "host",
            "port",
            "path",
            "querystring",
            "method",
            "headers",
            "body",
            "timestamp",
        }
        assert isinstance(req["body"], str) and isinstance(req["port"], str)
        assert datetime.fromisoformat(req["timestamp"]).tzinfo is not None
        res = orch["response"]
        assert isinstance(res["status"], int) and isinstance(res["body"], str)
        assert datetime.fromisoformat(res["timestamp"]).tzinfo is not None
    assert all(isinstance(v, str) for v in env["properties"].values())
    json.dumps(env)  # serialisable as is


def test_status_and_inner_http_status_follow_the_run() -> None:
    ok = make_report(
        results=[DataSetResult(data_set="VTdjfLXXmoi", period="202402", status="success")]
    )
    partial = make_report(
        results=[DataSetResult(data_set="VTdjfLXXmoi", period="202402", status="warning")]
    )
    failed = make_report(
        results=[
            DataSetResult(data_set="VTdjfLXXmoi", period="202402", status="error", error="down")
        ]
    )
    assert (build(ok)["status"], build(ok)["response"]["status"]) == ("Successful", 200)
    assert "error" not in build(ok)
    assert build(partial)["response"]["status"] == 207
    failed_env = build(failed)
    assert (failed_env["status"], failed_env["response"]["status"]) == ("Failed", 500)
    assert "down" in failed_env["error"]["message"]  # shown by the console, alert fires on 500


def test_cht_reads_are_one_summary_and_dhis2_requests_are_kept() -> None:
    env = build()
    names = [o["name"] for o in env["orchestrations"]]
    assert names == ["CHT reads (3 requests)", "DHIS2 dataValueSets"]
    summary = json.loads(env["orchestrations"][0]["response"]["body"])
    assert summary["requests"] == 3
    assert summary["reads"][0]["target_docs"] == 1200
    dhis2 = env["orchestrations"][1]
    assert dhis2["request"]["method"] == "POST"
    assert dhis2["request"]["host"] == "dhis2.example.org"
    assert dhis2["request"]["port"] == "443"
    assert dhis2["request"]["path"] == "/api/dataValueSets"
    assert json.loads(dhis2["response"]["body"])["importCount"]["imported"] == 10


def test_credentials_appear_nowhere() -> None:
    text = json.dumps(build())
    for secret in (CHT_PW, DHIS2_PW, "Y2h0OnB3", "YWRtaW46ZGlzdHJpY3Q=", "JSESSIONID"):
        assert secret not in text
    dhis2 = build()["orchestrations"][1]
    assert dhis2["request"]["headers"]["Authorization"] == f"Basic {MASK}"  # the scheme stays
    assert dhis2["request"]["headers"]["Cookie"] == MASK
    assert dhis2["response"]["headers"]["Set-Cookie"] == MASK
    assert dhis2["request"]["querystring"] == f"importStrategy=CREATE_AND_UPDATE&password={MASK}"


def test_secrets_in_findings_and_errors_are_masked() -> None:
    report = make_report(
        findings=[
            Finding(
                level="error",
                code="cht",
                message=f"GET https://reader:{CHT_PW}@cht.example.org failed",
            )
        ]
    )
    text = json.dumps(build(report))
    assert CHT_PW not in text
    assert "reader:" not in text


def test_each_body_is_capped_with_a_marker() -> None:
    report = make_report(exchanges=[dhis2_post(body_size=5000)])
    orch = build(report)["orchestrations"][0]
    assert len(orch["request"]["body"]) <= BODY_LIMIT
    assert "[truncated by mediator" in orch["request"]["body"]


def test_long_report_body_stays_valid_json_under_the_cap() -> None:
    rejected = [
        RejectedRow(
            dataElement="DEabcdefghi",
            orgUnit=f"OU{i:09d}",
            period="202402",
            reason="orgUnit not in data set" * 3,
        )
        for i in range(2000)
    ]
    report = make_report(
        results=[
            DataSetResult(
                data_set="VTdjfLXXmoi", period="202402", status="warning", rejected=rejected
            )
        ]
    )
    body = report_body(report)
    assert len(body) <= BODY_LIMIT
    parsed = json.loads(body)
    assert parsed["results"][0]["rejected_omitted"] == 1950
    assert build(report)["properties"]["rejected rows"] == "2000"


def test_total_size_stays_far_below_cores_limit() -> None:
    exchanges = [dhis2_post(body_size=5000) for _ in range(MAX_ORCHESTRATIONS + 50)]
    env = build(make_report(exchanges=exchanges))
    assert len(env["orchestrations"]) == MAX_ORCHESTRATIONS + 1
    assert env["orchestrations"][-1]["name"] == "50 more requests (bodies not kept)"
    # core stores the envelope twice within 15 MiB
    assert len(json.dumps(env).encode()) < 7 * 1024 * 1024


def test_properties_are_flat_strings_an_operator_can_scan() -> None:
    props = build()["properties"]
    assert props["period"] == "2024-02"
    assert props["data sets"] == "VTdjfLXXmoi"
    assert (props["imported"], props["updated"], props["ignored"], props["deleted"]) == (
        "30",
        "8",
        "2",
        "0",
    )
    assert props["conflicts"] == "1"
    assert props["org units"] == "3"
    assert props["users synced"] == "202402: 9 of 12 (75%)"
    assert props["target docs read"] == "1200"
    assert props["docs skipped"] == "5"
    assert props["skipped owner_not_found"] == "3"
    assert props["skipped target_value_missing"] == "2"  # no '.' in MongoDB keys
    assert props["docs counted"] == "VTdjfLXXmoi: 1195"
    assert props["data set VTdjfLXXmoi"] == "success"
    assert props["dry run"] == "false"
    assert not any("." in k or "$" in k for k in props)


def test_skips_are_reported_per_data_set_when_there_are_several() -> None:
    results = [
        DataSetResult(data_set=ds, period="202402", skipped={"owner_not_found": 3})
        for ds in ("VTdjfLXXmoi", "BfMAe6Itzgt")
    ]
    props = build(make_report(results=results))["properties"]
    assert props["docs skipped"] == "VTdjfLXXmoi: 3, BfMAe6Itzgt: 3"  # the same 3 docs, not 6
    assert props["skipped BfMAe6Itzgt owner_not_found"] == "3"


def test_bad_input_envelope_is_400_without_retry() -> None:
    env = error_envelope(urn=URN, http_status=400, message="period 2024-13 ...", now=T0)
    assert env["response"]["status"] == 400
    assert env["status"] == "Failed"
    assert "error" not in env  # retrying the same bad request cannot help
    assert json.loads(env["response"]["body"])["error"] == "period 2024-13 ..."


def test_processing_and_transaction_update() -> None:
    env = processing_envelope(urn=URN, run_id="tx1", properties={"period": "2024-02"}, now=T0)
    assert (env["status"], env["response"]["status"]) == ("Processing", 202)
    update = transaction_update(build())
    assert set(update) == {"status", "response", "orchestrations", "properties"}
    assert "x-mediator-urn" not in update


def test_transaction_document_for_the_schedule_fallback() -> None:
    request = {
        "host": "m",
        "port": "5011",
        "path": "/push",
        "method": "GET",
        "timestamp": "2024-03-03T02:00:00+00:00",
    }
    doc = transaction_document(build(), request=request, channel_id=None)
    assert doc["status"] == "Successful"
    assert doc["request"]["timestamp"]
    assert doc["canRerun"] is False and "channelID" not in doc
    assert transaction_document(build(), request=request, channel_id="c1")["channelID"] == "c1"


# --- data is never altered (tests/unit/test_masking.py); free text is scrubbed ------


def test_a_place_named_basic_health_unit_is_not_taken_for_a_credential() -> None:
    message = "Basic Health Unit Kisumu refused; sent Authorization: Basic cmVhZGVyOnB3MTIz"
    report = make_report(findings=[Finding(level="error", code="x", message=message)])
    shown = json.loads(build(report)["response"]["body"])["findings"][0]["message"]
    assert shown == f"Basic Health Unit Kisumu refused; sent Authorization: Basic {MASK}"
