"""The push endpoint and /health, with a fake runner in place of CHT and DHIS2."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr

from mediator.model.periods import Month, Period
from mediator.model.report import ChtRead, DataSetResult, ImportCount, RunReport
from mediator.model.values import Exchange
from mediator.openhim.agent import OpenhimAgent
from mediator.openhim.client import OpenhimClient
from mediator.openhim.console_config import ConsoleConfig, load_registration
from mediator.openhim.envelope import BODY_LIMIT
from mediator.run.request import RunInputError, RunRequest
from mediator.service.app import create_app
from mediator.service.runs import parse_last_run_at
from mediator.settings.config import OpenhimSettings, RuntimeConfig

CORE = "https://openhim.test:8080"
CHT_PW = "Cht-Secret-7731"
DHIS2_PW = "Dhis2-Secret-4410"
OPENHIM_PW = "Him-Secret-9902"
ENV = {
    "CHT_URL": "https://cht.example.org",
    "CHT_USERNAME": "reader",
    "CHT_PASSWORD": CHT_PW,
    "DHIS2_URL": "https://dhis2.example.org",
    "DHIS2_USERNAME": "admin",
    "DHIS2_PASSWORD": DHIS2_PW,
    "OPENHIM_PASSWORD": OPENHIM_PW,
}
DS = "VTdjfLXXmoi"
OU = "ImspTQPwCqd"


class FakeRunner:
    """Records what the app asked for and answers a plausible report."""

    def __init__(self, status: str = "success", gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[RunRequest, RuntimeConfig]] = []
        self.status = status
        self.gate = gate  # each run waits for it: the test decides when runs may end
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self, request: RunRequest, config: RuntimeConfig) -> RunReport:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                assert self.gate.wait(10), "the test never let the run end"
            self.calls.append((request, config))
            periods = [m.dhis2 for m in request.periods]
            exchanges = [
                Exchange(
                    name="CHT target docs",
                    method="GET",
                    url=f"https://reader:{CHT_PW}@cht.example.org/medic/_all_docs",
                    path="/medic/_all_docs",
                    request_headers={"Authorization": "Basic cmVhZGVyOnB3"},
                    status=200,
                    response_body="{}",
                ),
                Exchange(
                    name="DHIS2 dataValueSets",
                    method="POST",
                    url="https://dhis2.example.org/api/dataValueSets",
                    path="/api/dataValueSets",
                    request_headers={"Authorization": "Basic YWRtaW46ZGlzdHJpY3Q="},
                    request_body=json.dumps({"password": DHIS2_PW, "v": "x" * 40_000}),
                    status=200,
                    response_body=json.dumps({"status": "OK"}),
                ),
            ]
            return RunReport(
                run_id=f"run-{len(self.calls)}",
                trigger=request.trigger,
                finished=datetime(2024, 3, 3, 2, 5, tzinfo=UTC),
                dry_run=bool(request.dry_run),
                periods=periods,
                data_sets=request.data_sets or config.data_sets or [DS],
                cht=[ChtRead(period=p, target_docs=10, places=3) for p in periods],
                results=[
                    DataSetResult(
                        data_set=DS,
                        period=p,
                        status=self.status,  # type: ignore[arg-type]
                        counts=ImportCount(imported=5),
                        error=None if self.status != "error" else "DHIS2 unreachable",
                    )
                    for p in periods
                ],
                exchanges=exchanges,
            )
        finally:
            with self._lock:
                self.active -= 1


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_app(
    runner: Callable[[RunRequest, RuntimeConfig], RunReport],
    env: dict[str, str] | None = None,
    clock: Clock | None = None,
    agent: OpenhimAgent | None = None,
    console: ConsoleConfig | None = None,
) -> Flask:
    registration = load_registration(env={})
    return create_app(
        registration=registration,
        console=console or ConsoleConfig(registration["configDefs"]),
        env=env if env is not None else dict(ENV),
        runner=runner,
        clock=clock or Clock(datetime(2024, 3, 3, 2, 0, tzinfo=UTC)),
        agent=agent,
        background=lambda work: work(),
    )


def envelope(response: Any) -> dict[str, Any]:
    assert response.content_type.startswith("application/json+openhim")
    data: dict[str, Any] = json.loads(response.get_data(as_text=True))
    assert data["x-mediator-urn"] == "urn:mediator:cht-dhis2-aggregate"
    assert isinstance(data["response"]["body"], str)
    return data


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def client(runner: FakeRunner) -> FlaskClient:
    return make_app(runner).test_client()


def test_get_runs_the_asked_month_and_answers_the_envelope(
    client: FlaskClient, runner: FakeRunner
) -> None:
    response = client.get(f"/push?period=2024-01&dataSet={DS}&orgUnit={OU}&dryRun=true")
    data = envelope(response)
    assert response.status_code == 200
    assert data["status"] == "Completed"  # a dry run that stored nothing
    request, config = runner.calls[0]
    assert [p.dhis2 for p in request.periods] == ["202401"]
    assert (request.data_sets, request.org_unit, request.dry_run) == ([DS], OU, True)
    assert config.cht.url == "https://cht.example.org"
    assert json.loads(data["response"]["body"])["run_id"] == "run-1"
    assert data["properties"]["periods"] == "202401"


def test_post_json_body(client: FlaskClient, runner: FakeRunner) -> None:
    response = client.post(
        "/push", json={"period": "202402", "dataSet": [DS, "BfMAe6Itzgt"], "dryRun": False}
    )
    assert envelope(response)["status"] == "Successful"
    request, _ = runner.calls[0]
    assert [p.dhis2 for p in request.periods] == ["202402"]
    assert request.data_sets == [DS, "BfMAe6Itzgt"]
    assert request.dry_run is False


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("period=2024-13", "month 13 does not exist"),
        ("period=March", "YYYY-MM or YYYYMM"),
        ("dataSet=abc", "not a DHIS2 id"),
        ("orgUnit=1mspTQPwCqd", "not a DHIS2 id"),
        ("dryRun=maybe", "dryRun must be true or false"),
        ("dataSets=VTdjfLXXmoi", "unknown parameter(s) dataSets"),
        ("orgUnit=ImspTQPwCqd&orgUnit=ImspTQPwCqe", "give orgUnit once"),
    ],
)
def test_bad_query_is_a_400_envelope_and_nothing_runs(
    client: FlaskClient, runner: FakeRunner, query: str, message: str
) -> None:
    response = client.get(f"/push?{query}")
    data = envelope(response)
    assert response.status_code == 400
    assert data["response"]["status"] == 400
    assert message in json.loads(data["response"]["body"])["error"]
    assert runner.calls == []
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"period": 202401}', "period must be a string"),
        (b'{"dryRun": "sometimes"}', "dryRun must be true or false"),
    ],
)
def test_bad_json_body_is_a_400_envelope(
    client: FlaskClient, runner: FakeRunner, body: bytes, message: str
) -> None:
    response = client.post("/push", data=body, content_type="application/json")
    assert response.status_code == 400
    assert message in envelope(response)["properties"]["error"]
    assert runner.calls == []


def test_unknown_data_set_from_the_run_is_a_400(client: FlaskClient) -> None:
    def refuse(request: RunRequest, config: RuntimeConfig) -> RunReport:
        raise RunInputError("data set BfMAe6Itzgt is not defined in CHT's dhis_data_sets")

    response = make_app(refuse).test_client().get("/push?dataSet=BfMAe6Itzgt")
    assert response.status_code == 400
    assert "dhis_data_sets" in envelope(response)["properties"]["error"]


def latest_month(request: RunRequest, tz: str) -> str:
    """The month a request without a period runs (the run's rule: run.jobs.plan_jobs)."""
    assert request.periods == [] and request.span is None and request.as_of is not None
    return Period.latest_completed("Monthly", tz, request.as_of).iso


def test_no_period_means_the_previous_month_in_the_configured_zone_at_request_time(
    runner: FakeRunner,
) -> None:
    # 22:30 UTC on 31 March is already 1 April in Nairobi (UTC+3)
    clock = Clock(datetime(2024, 3, 31, 22, 30, tzinfo=UTC))
    nairobi = make_app(runner, env={**ENV, "MEDIATOR_TIMEZONE": "Africa/Nairobi"}, clock=clock)
    utc = make_app(runner, clock=clock)
    nairobi.test_client().get("/push")
    answer = utc.test_client().get("/push")
    assert [
        latest_month(runner.calls[0][0], "Africa/Nairobi"),
        latest_month(runner.calls[1][0], "UTC"),
    ] == ["202403", "202402"]
    assert "and the 2 before it" in envelope(answer)["properties"]["period source"]
    clock.now = datetime(2024, 5, 2, 9, 0, tzinfo=UTC)  # same app, a month later
    utc.test_client().get("/push")
    assert latest_month(runner.calls[-1][0], "UTC") == "202404"


def test_rerun_of_a_polling_transaction_pushes_the_original_month(runner: FakeRunner) -> None:
    clock = Clock(datetime(2024, 6, 10, 9, 0, tzinfo=UTC))  # rerun in June
    app = make_app(runner, clock=clock)
    response = app.test_client().get(
        "/push",
        headers={
            "X-OpenHIM-LastRunAt": "Sun Mar 03 2024 02:00:00 GMT+0000 (Coordinated Universal Time)",
            "X-OpenHIM-TransactionID": "65f0000000000000000000aa",
            "parentID": "65f000000000000000000001",
        },
    )
    assert latest_month(runner.calls[0][0], "UTC") == "202402"
    assert runner.calls[0][0].trigger == "openhim"
    assert envelope(response)["properties"]["rerun of"] == "65f000000000000000000001"


def test_any_period_type_and_a_backfill_range_are_accepted(runner: FakeRunner) -> None:
    app = make_app(runner)
    app.test_client().get("/push?period=2024Q1&period=2024July")
    assert [p.iso for p in runner.calls[-1][0].periods] == ["2024Q1", "2024July"]
    app.test_client().post("/push", json={"from": "2024-01", "to": "2024-06"})
    assert runner.calls[-1][0].span == (Month(2024, 1), Month(2024, 6))
    for query, says in [
        ("from=2024-06&to=2024-01", "is after"),
        ("from=2024-01", "together"),
        ("period=2024-01&from=2024-01&to=2024-02", "not both"),
        ("period=2024W05", "not a DHIS2 period"),
    ]:
        answer = app.test_client().get(f"/push?{query}")
        assert answer.status_code == 400
        assert says in envelope(answer)["response"]["body"]


def test_last_run_at_parsing() -> None:
    assert parse_last_run_at("Mon Jan 01 2024 02:00:00 GMT+0300 (East Africa Time)") == datetime(
        2023, 12, 31, 23, 0, tzinfo=UTC
    )
    assert parse_last_run_at("2024-03-03T02:00:00.000Z") == datetime(2024, 3, 3, 2, tzinfo=UTC)
    assert parse_last_run_at("garbage") is None


def test_no_secret_reaches_the_response(client: FlaskClient) -> None:
    response = client.get(f"/push?period=2024-01&dataSet={DS}")
    text = response.get_data(as_text=True)
    for secret in (CHT_PW, DHIS2_PW, OPENHIM_PW, "cmVhZGVyOnB3", "YWRtaW46ZGlzdHJpY3Q="):
        assert secret not in text
    envelope(response)  # a valid envelope
    assert len(text) <= BODY_LIMIT  # core's own copy of the envelope stays JSON


def test_a_crashing_run_is_a_500_envelope_without_secrets_or_stack() -> None:
    def crash(request: RunRequest, config: RuntimeConfig) -> RunReport:
        raise RuntimeError(f"could not log in with {DHIS2_PW}")

    response = make_app(crash).test_client().get("/push?period=2024-01")
    text = response.get_data(as_text=True)
    data = envelope(response)
    assert response.status_code == 500 and data["status"] == "Failed"
    assert DHIS2_PW not in text and "Traceback" not in text
    assert "RuntimeError" in data["properties"]["error"]


def test_failed_run_is_500_so_channel_alerts_fire() -> None:
    response = make_app(FakeRunner(status="error")).test_client().get("/push?period=2024-01")
    data = envelope(response)
    assert (data["status"], data["response"]["status"]) == ("Failed", 500)


def test_missing_configuration_is_a_clear_500_envelope(runner: FakeRunner) -> None:
    app = make_app(runner, env={"DHIS2_URL": "https://d.org", "DHIS2_TOKEN": "tok-12345"})
    response = app.test_client().get("/push")
    assert response.status_code == 500
    assert "CHT_URL (console: chtUrl)" in envelope(response)["properties"]["error"]
    assert runner.calls == []


def test_console_config_applies_to_the_next_run_without_restart(runner: FakeRunner) -> None:
    registration = load_registration(env={})
    console = ConsoleConfig(registration["configDefs"])
    client = make_app(runner, console=console).test_client()
    client.get("/push?period=2024-01")
    console.apply({"dataSets": ["BfMAe6Itzgt"], "dryRun": True, "chunkSize": 100})
    client.get("/push?period=2024-01")
    first, second = (config for _, config in runner.calls)
    assert (first.data_sets, first.dry_run) == ([], False)
    assert (second.data_sets, second.dry_run) == (["BfMAe6Itzgt"], True)
    assert second.dhis2 is not None and second.dhis2.chunk_size == 100


def test_environment_pins_over_console_and_health_says_so(runner: FakeRunner) -> None:
    registration = load_registration(env={})
    console = ConsoleConfig(registration["configDefs"])
    console.apply({"chtUrl": "https://elsewhere.example.org"})
    app = make_app(runner, console=console)
    app.test_client().get("/push?period=2024-01")
    assert runner.calls[0][1].cht.url == "https://cht.example.org"
    health = app.test_client().get("/health").get_json()
    assert health["config"]["pinned_by_environment"] == ["chtUrl"]


# --- async mode ---


def make_agent() -> OpenhimAgent:
    registration = load_registration(env={})
    settings = OpenhimSettings(url=CORE, username="root@openhim.org", password=SecretStr("pw-123"))
    return OpenhimAgent(
        OpenhimClient(settings),
        registration,
        ConsoleConfig(registration["configDefs"]),
        sleep=lambda s: None,
    )


@responses.activate
def test_async_mode_answers_processing_then_updates_the_transaction(runner: FakeRunner) -> None:
    put = responses.put(f"{CORE}/transactions/65f0000000000000000000aa", body="updated")
    app = make_app(runner, env={**ENV, "MEDIATOR_ASYNC": "true"}, agent=make_agent())
    response = app.test_client().get(
        "/push?period=2024-01", headers={"X-OpenHIM-TransactionID": "65f0000000000000000000aa"}
    )
    data = envelope(response)
    assert (data["status"], data["response"]["status"]) == ("Processing", 202)
    assert put.call_count == 1
    update = json.loads(responses.calls[0].request.body)
    assert update["status"] == "Successful"
    assert update["response"]["status"] == 200
    assert json.loads(update["response"]["body"])["periods"] == ["202401"]
    assert update["properties"]["imported"] == "5"
    assert all(o["name"] and o["request"]["timestamp"] for o in update["orchestrations"])
    assert DHIS2_PW not in responses.calls[0].request.body.decode()


def test_async_mode_without_openhim_header_answers_synchronously(runner: FakeRunner) -> None:
    app = make_app(runner, env={**ENV, "MEDIATOR_ASYNC": "true"}, agent=make_agent())
    with responses.RequestsMock():  # no call to core allowed
        response = app.test_client().get("/push?period=2024-01")
    assert envelope(response)["status"] == "Successful"


def test_async_mode_can_be_switched_on_in_the_console(runner: FakeRunner) -> None:
    registration = load_registration(env={})
    console = ConsoleConfig(registration["configDefs"])
    console.apply({"asyncMode": True})
    app = make_app(runner, console=console, agent=make_agent())
    with responses.RequestsMock() as mock:
        mock.put(f"{CORE}/transactions/tx1", body="updated")
        response = app.test_client().get(
            "/push?period=2024-01", headers={"X-OpenHIM-TransactionID": "tx1"}
        )
    assert envelope(response)["status"] == "Processing"


# --- serialisation and health ---


def test_runs_never_interleave_and_a_full_queue_is_answered_busy() -> None:
    gate = threading.Event()
    slow = FakeRunner(gate=gate)
    registration = load_registration(env={})
    app = create_app(
        registration=registration,
        env=dict(ENV),
        runner=slow,
        clock=Clock(datetime(2024, 3, 3, 2, 0, tzinfo=UTC)),
        max_waiting=2,
    )
    statuses: list[int] = []

    def call() -> None:
        statuses.append(app.test_client().get("/push?period=2024-01").status_code)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    client = app.test_client()
    deadline = time.monotonic() + 10
    while client.get("/health").get_json()["waiting"] < 2:  # one running, two waiting
        assert time.monotonic() < deadline, "the runs never queued"
        time.sleep(0.01)
    assert client.get("/push?period=2024-01").status_code == 429  # a fourth: busy, at once
    gate.set()
    for thread in threads:
        thread.join(timeout=10)
    assert statuses == [200, 200, 200]
    assert slow.max_active == 1 and len(slow.calls) == 3


def test_health_reports_last_run_and_openhim_without_secrets(
    client: FlaskClient, runner: FakeRunner
) -> None:
    before = client.get("/health").get_json()
    assert before["status"] == "ok" and before["last_run"] is None
    assert before["openhim"] == {"configured": False, "registered": False}
    client.get("/push?period=2024-01")
    response = client.get("/health")
    health = response.get_json()
    assert health["last_run"]["run_id"] == "run-1"
    assert health["last_run"]["status"] == "Successful"
    assert health["last_run"]["finished"].startswith("2024-03-03T02:05")
    text = response.get_data(as_text=True)
    assert CHT_PW not in text and DHIS2_PW not in text and OPENHIM_PW not in text


def test_health_shows_registration_state() -> None:
    agent = make_agent()
    health = make_app(FakeRunner(), agent=agent).test_client().get("/health").get_json()
    assert health["openhim"]["registered"] is False
    assert health["openhim"]["urn"] == "urn:mediator:cht-dhis2-aggregate"
    assert "pw-123" not in json.dumps(health)


def test_a_password_saved_in_the_console_is_masked_too() -> None:
    registration = load_registration(env={})
    console = ConsoleConfig(registration["configDefs"])
    console.apply({"chtPassword": "Console-Secret-3141"})
    env = {k: v for k, v in ENV.items() if k != "CHT_PASSWORD"}

    def crash(request: RunRequest, config: RuntimeConfig) -> RunReport:
        assert config.cht.password is not None
        raise RuntimeError(f"login failed for {config.cht.password.get_secret_value()}")

    response = make_app(crash, env=env, console=console).test_client().get("/push?period=2024-01")
    assert response.status_code == 500
    assert "Console-Secret-3141" not in response.get_data(as_text=True)
