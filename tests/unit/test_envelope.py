"""The application/json+openhim envelope: core's schema rules, and what ops read in the
console (steps named with their data set and period, a summary in words first, each
problem once, the whole envelope small enough for core's own copy to stay JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from mediator.model.report import (
    ChtRead,
    ChunkCount,
    Conflict,
    DataSetResult,
    Diagnosis,
    Finding,
    ImportCount,
    OrgUnitCoverage,
    RejectedRow,
    RunReport,
)
from mediator.model.values import Exchange
from mediator.openhim.envelope import (
    BODY_LIMIT,
    error_envelope,
    processing_envelope,
    run_envelope,
    transaction_document,
    transaction_update,
)
from mediator.settings.secrets import MASK

URN = "urn:mediator:cht-dhis2-aggregate"
T0 = datetime(2024, 3, 3, 2, 0, tzinfo=UTC)
CHT_PW = "Cht-Secret-7731"
DHIS2_PW = "Dhis2-Secret-4410"
CHT = "https://cht.example.org"
DHIS2 = "https://dhis2.example.org"
DS, NAME = "VTdjfLXXmoi", "MoH Monthly Integration"
SUMMARY = {
    "httpStatus": "OK",
    "httpStatusCode": 200,
    "status": "OK",
    "response": {
        "responseType": "ImportSummary",
        "status": "SUCCESS",
        "importCount": {"imported": 30, "updated": 8, "ignored": 2, "deleted": 0},
        "conflicts": [],
    },
}


def exchange(peer: str, method: str, url: str, n: int = 0, **kw: Any) -> Exchange:
    parts = url.split("?", 1)
    path = "/" + parts[0].split("/", 3)[3]
    return Exchange(
        peer=peer,
        name=kw.pop("name", f"{method} {path}"),
        method=method,
        url=url,
        path=path,
        querystring=parts[1] if len(parts) > 1 else "",
        request_headers={"Authorization": "Basic Y2h0OnB3"},
        started=T0 + timedelta(seconds=n),
        status=kw.pop("status", 200),
        finished=T0 + timedelta(seconds=n, milliseconds=300),
        **kw,
    )


def cht_page(n: int) -> Exchange:
    return exchange("CHT", "GET", f"{CHT}/medic/_all_docs?startkey=x&limit=1001", n)


def read(period: str = "202402", n: int = 10) -> Exchange:
    url = f"{DHIS2}/api/dataValueSets?dataSet={DS}&period={period}&orgUnit=ou1&orgUnit=ou2"
    return exchange("DHIS2", "GET", url, n, data_set=DS, period=period)


def post(period: str = "202402", n: int = 11, body_size: int = 40) -> Exchange:
    return exchange(
        "DHIS2",
        "POST",
        f"{DHIS2}/api/dataValueSets?importStrategy=CREATE_AND_UPDATE&password={DHIS2_PW}",
        n,
        data_set=DS,
        period=period,
        request_body=json.dumps({"dataValues": [{"value": "1"}] * body_size}),
        response_body=json.dumps(SUMMARY),
    )


def result(period: str = "202402", **kw: Any) -> DataSetResult:
    values: dict[str, Any] = {
        "data_set": DS,
        "data_set_name": NAME,
        "period": period,
        "dhis2_version": "2.41.1",
        "docs_counted": 1195,
        "skipped": {"owner_not_found": 3, "target.value.missing": 2},
        "coverage": [
            OrgUnitCoverage(orgUnit=ou, expected=4, synced=3, missing=["chw9"])
            for ou in ("ou1", "ou2", "ou3")
        ],
        "users_expected": 12,
        "users_synced": 9,
        "values_sent": 40,
        "values_unchanged": 2,
        "counts": ImportCount(imported=30, updated=8, ignored=2, deleted=0),
        "chunks": [ChunkCount(imported=30, updated=8, ignored=2, deleted=0, status=200)],
        "conflicts": [Conflict(value="bad value", object="x")],
    }
    values.update(kw)
    return DataSetResult(**values)


def make_report(**overrides: Any) -> RunReport:
    values: dict[str, Any] = {
        "run_id": "run-1",
        "trigger": "openhim",
        "started": T0,
        "finished": T0 + timedelta(minutes=6),
        "periods": ["202402"],
        "data_sets": [DS],
        "cht": [ChtRead(period="202402", target_docs=1200, places=87, pages=2)],
        "results": [result()],
        "exchanges": [
            cht_page(1),
            cht_page(2),
            exchange("DHIS2", "GET", f"{DHIS2}/api/system/info", 5),
            exchange("DHIS2", "GET", f"{DHIS2}/api/dataSets/{DS}?fields=id,name,periodType", 6),
            read(),
            post(),
        ],
    }
    values.update(overrides)
    return RunReport(**values)


def build(report: RunReport | None = None, **kw: Any) -> dict[str, Any]:
    return run_envelope(report or make_report(), urn=URN, secrets=[CHT_PW, DHIS2_PW], now=T0, **kw)


def size(envelope: dict[str, Any]) -> int:
    """As the mediator answers it: core stores this text in its own orchestration."""
    return len(json.dumps(envelope, ensure_ascii=False))


def test_envelope_has_the_shape_core_requires() -> None:
    env = build()
    assert env["x-mediator-urn"] == URN
    assert env["status"] == "Successful"
    response = env["response"]
    assert isinstance(response["status"], int) and isinstance(response["body"], str)
    assert json.loads(response["body"])["run_id"] == "run-1"
    assert datetime.fromisoformat(response["timestamp"]).tzinfo is not None
    for orch in env["orchestrations"]:
        assert orch["name"]
        req = orch["request"]
        assert set(req) >= {"host", "port", "path", "querystring", "method", "headers", "body"}
        assert isinstance(req["body"], str) and isinstance(req["port"], str)
        assert datetime.fromisoformat(req["timestamp"]).tzinfo is not None
        res = orch["response"]
        assert isinstance(res["status"], int) and isinstance(res["body"], str)
        assert datetime.fromisoformat(res["timestamp"]).tzinfo is not None
    assert all(isinstance(v, str) for v in env["properties"].values())
    assert not any("." in k or "$" in k for k in env["properties"])  # MongoDB field names


def test_status_and_inner_http_status_follow_the_run() -> None:
    ok = make_report(results=[result(status="success")])
    partial = make_report(results=[result(status="warning")])
    failed = make_report(results=[result(status="error", error="DHIS2 down")])
    assert (build(ok)["status"], build(ok)["response"]["status"]) == ("Successful", 200)
    assert "error" not in build(ok)
    assert build(partial)["response"]["status"] == 207
    failed_env = build(failed)
    assert (failed_env["status"], failed_env["response"]["status"]) == ("Failed", 500)
    assert "DHIS2 down" in failed_env["error"]["message"]  # alert fires on 500


def test_a_dry_run_is_completed_not_successful_so_the_list_tells_it_apart() -> None:
    """The console's transaction list shows the status only: a dry run that stored
    nothing is "Completed", never "Successful"."""
    env = build(make_report(dry_run=True, results=[result(dry_run=True)]))
    assert (env["status"], env["response"]["status"]) == ("Completed", 200)
    assert env["properties"]["dry run"].startswith("yes")
    assert env["properties"]["summary"].startswith("Dry run, nothing stored")


def test_orchestrations_are_steps_named_with_data_set_and_period() -> None:
    steps = build()["orchestrations"]
    names = [o["name"] for o in steps]
    assert names == [
        "CHT: read 202402 (1200 target docs), places, users",
        "DHIS2 2.41.1: server, integration user and data set metadata",
        f"{NAME} ({DS}) 202402: read what DHIS2 holds (2 org units)",
        f"{NAME} ({DS}) 202402: push 40 values (1 chunk)",
    ]
    # short addresses, no query: the console's table keeps its Status column in view
    assert all(o["request"]["querystring"] == "" for o in steps)
    assert [o["request"]["path"] for o in steps] == [
        "/medic/_all_docs",
        "/api/system/info",
        "/api/dataValueSets",
        "/api/dataValueSets",
    ]
    push = json.loads(steps[-1]["response"]["body"])
    assert push["chunks"] == [
        {
            "chunk": "1/1",
            "status": 200,
            "imported": 30,
            "updated": 8,
            "ignored": 2,
            "deleted": 0,
            "conflicts": 0,
        }
    ]
    assert json.loads(steps[0]["response"]["body"])["months"][0]["target_docs"] == 1200


def test_a_step_has_the_worst_status_of_its_requests() -> None:
    report = make_report(exchanges=[post(n=1), post(n=2).model_copy(update={"status": 409})])
    (push,) = build(report)["orchestrations"]
    assert push["response"]["status"] == 409


def test_the_response_body_opens_with_a_summary_in_words() -> None:
    problem = Diagnosis(
        kind="cht_users_not_synced",
        title="CHWs missing from the numbers",
        cause="1 of 12 CHT users have no target doc for 202402: chw9.",
        fix="Ask them to sync.",
        period="202402",
        data_set=DS,
    )
    body = json.loads(build(make_report(diagnoses=[problem]))["response"]["body"])
    assert next(iter(body)) == "summary"
    assert body["summary"].startswith(
        f"Pushed 1 period (202402) of 1 data set ({NAME} ({DS})) to DHIS2 2.41.1: 30 imported, "
        "8 updated, 0 deleted, 2 already right, 0 rejected. 1 kind of problem: CHWs missing"
    )


def test_each_problem_is_said_once_with_its_periods_and_never_cut_mid_word() -> None:
    diagnoses = [
        Diagnosis(
            kind="cht_users_not_synced",
            title="CHWs missing from the numbers",
            cause=f"1 of 12 CHT users have no target doc for {pe}: chw43.",
            fix="Ask them to sync; " + "their numbers reach DHIS2 in the next run. " * 20,
            period=pe,
            data_set=ds,
        )
        for pe in ("202408", "202409", "202410")
        for ds in (DS, "QX4ZTUbOt3a")
    ]
    props = build(make_report(diagnoses=diagnoses))["properties"]
    (key,) = [k for k in props if k.startswith("problem:")]
    value = props[key]
    assert value.startswith("202408, 202409, 202410: 1 of 12 CHT users have no target doc: chw43.")
    assert value.count("chw43") == 1  # once, not once per period and data set
    assert len(value) <= 500 and value.endswith("(the whole text is in the response body)")
    assert "What to do: Ask them to sync" in value and " ×" not in value


def test_properties_are_flat_strings_an_operator_can_scan() -> None:
    props = build()["properties"]
    assert props["periods"] == "202402"
    assert props["data sets"] == f"{NAME} ({DS})"
    assert (props["imported"], props["updated"], props["ignored"], props["deleted"]) == (
        "30",
        "8",
        "2",
        "0",
    )
    assert props["CHWs synced"] == "202402: 9 of 12 (75%)"
    assert props["target docs read"] == "1200"
    assert props["docs skipped"] == "5"
    assert props["skipped target_value_missing"] == "2"  # no '.' in MongoDB keys
    assert props[f"{DS} 202402"].startswith("success: 30 imported, 8 updated, 0 deleted")
    assert props["dry run"] == "no"


def test_skips_are_not_summed_over_data_sets() -> None:
    results = [result(data_set=ds, skipped={"owner_not_found": 3}) for ds in (DS, "BfMAe6Itzgt")]
    props = build(make_report(results=results, data_sets=[DS, "BfMAe6Itzgt"]))["properties"]
    assert props["docs skipped"] == "3"  # the same 3 docs, not 6


def test_credentials_appear_nowhere() -> None:
    text = json.dumps(build())
    for secret in (CHT_PW, DHIS2_PW, "Y2h0OnB3", "password="):
        assert secret not in text


def test_secrets_in_findings_and_errors_are_masked() -> None:
    message = f"GET https://reader:{CHT_PW}@cht.example.org failed"
    text = json.dumps(
        build(make_report(findings=[Finding(level="error", code="c", message=message)]))
    )
    assert CHT_PW not in text and "reader:" not in text


def big_report(periods: int, data_sets: int, chunks: int, rejected: int) -> RunReport:
    """A national month (chunks) or a long backfill (periods × data sets)."""
    sets = [f"Ds{n:09d}" for n in range(data_sets)]
    months = [f"20{22 + n // 12}{n % 12 + 1:02d}" for n in range(periods)]
    results, exchanges = [], [cht_page(1)]
    for ds in sets:
        for pe in months:
            rows = [
                RejectedRow(
                    dataElement="DEabcdefghi",
                    orgUnit=f"OU{i:09d}",
                    period=pe,
                    reason="Org unit not assigned to the data set " * 3,
                )
                for i in range(rejected)
            ]
            results.append(result(pe, data_set=ds, values_sent=500 * chunks, rejected=rows))
            exchanges.append(read(pe).model_copy(update={"data_set": ds}))
            exchanges += [post(pe).model_copy(update={"data_set": ds}) for _ in range(chunks)]
    return make_report(periods=months, data_sets=sets, results=results, exchanges=exchanges)


def test_a_national_month_fits_the_console_and_cores_copy_stays_json() -> None:
    env = build(big_report(periods=1, data_sets=1, chunks=242, rejected=2000))
    assert size(env) <= BODY_LIMIT  # core's own orchestration keeps 15,000 characters
    assert len(env["orchestrations"]) == 3  # CHT, read, push: not 243 requests
    body = json.loads(env["response"]["body"])
    assert body["results"][0]["rejected_count"] == 2000
    assert env["properties"]["rejected rows"] == "2000"


def test_a_36_month_backfill_of_two_data_sets_still_fits() -> None:
    env = build(big_report(periods=36, data_sets=2, chunks=3, rejected=5))
    assert size(env) <= BODY_LIMIT
    names = [o["name"] for o in env["orchestrations"]]
    assert (
        names[-1]
        == "144 more steps that went through cleanly (their counts are in the response body)"
    )
    body = json.loads(env["response"]["body"])
    assert body["summary"].startswith("Pushed 36 periods (202201 to 202412) of 2 data sets")
    assert len(body["results"]) == 72  # one line of counts each
    assert body["results"][0].startswith("Ds000000000 202201: success, 30 imported")


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


def test_each_rejected_row_names_the_explain_command_of_its_cell() -> None:
    row = RejectedRow(
        dataElement="DEabcdefghi",
        orgUnit="OUabcdefghi",
        period="202402",
        categoryOptionCombo="COabcdefghi",
        reason="Data element not assigned to the data set",
    )
    env = build(make_report(results=[result(rejected=[row])]))
    body = json.loads(env["response"]["body"])
    (listed,) = body["results"][0]["rejected"]
    assert listed["explain"] == (
        f"python -m mediator explain --data-set {DS} --period 202402 --org-unit OUabcdefghi "
        "--data-element DEabcdefghi --category-option-combo COabcdefghi"
    )
    steps = [o for o in env["orchestrations"] if "push" in o["name"]]
    shown = [json.loads(o["response"]["body"]) for o in steps]
    assert any(
        r.get("explain") == listed["explain"] for s in shown for r in s.get("first_rejected", [])
    ), "the push step's first rejected rows name it too"
