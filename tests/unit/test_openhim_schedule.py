"""The internal schedule: runs go through OpenHIM core, or are recorded there."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses

from mediator.model.report import DataSetResult, RunReport
from mediator.run.request import RunRequest
from mediator.service.serve import ScheduledRun, build
from mediator.settings.config import RuntimeConfig
from mediator.settings.variables import ConfigError

CORE = "https://openhim.test:8080"
ENV = {
    "CHT_URL": "https://cht.example.org",
    "DHIS2_URL": "https://dhis2.example.org",
    "DHIS2_TOKEN": "d2pat-Secret-5511",
    "OPENHIM_URL": CORE,
    "OPENHIM_USERNAME": "root@openhim.org",
    "OPENHIM_PASSWORD": "Him-Secret-9902",
    "MEDIATOR_SCHEDULE": "0 2 3 * *",
    "MEDIATOR_TIMEZONE": "Africa/Nairobi",
    "MEDIATOR_CONFIG_FILE": "",
}
CHANNEL = "CHT to DHIS2 monthly push"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[RunRequest] = []

    def __call__(self, request: RunRequest, config: RuntimeConfig) -> RunReport:
        self.calls.append(request)
        return RunReport(
            run_id="sched-1",
            trigger=request.trigger,
            periods=[m.dhis2 for m in request.periods],
            results=[DataSetResult(data_set="VTdjfLXXmoi", period="202402")],
        )


def wired(runner: Recorder) -> tuple[Any, Any, ScheduledRun]:
    app, scheduler, agent = build(ENV, runner=runner)
    job = scheduler.get_job("internal-schedule")
    assert job is not None
    return app, agent, job.func


def test_build_schedules_heartbeat_and_the_monthly_job() -> None:
    _, scheduler, agent = build(ENV, runner=Recorder())
    heartbeat = scheduler.get_job("openhim-heartbeat")
    assert heartbeat.func == agent.heartbeat
    assert heartbeat.trigger.interval.total_seconds() == 10
    cron = scheduler.get_job("internal-schedule").trigger
    assert str(cron.timezone) == "Africa/Nairobi"
    assert {f.name: str(f) for f in cron.fields}["day"] == "3"


def test_no_schedule_unless_asked() -> None:
    _, scheduler, _ = build({**ENV, "MEDIATOR_SCHEDULE": ""}, runner=Recorder())
    assert scheduler.get_job("internal-schedule") is None


def test_bad_cron_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="MEDIATOR_SCHEDULE"):
        build({**ENV, "MEDIATOR_SCHEDULE": "monthly"}, runner=Recorder())


@responses.activate
def test_scheduled_run_goes_through_the_polling_channel() -> None:
    responses.get(f"{CORE}/channels", json=[{"_id": "c9", "name": CHANNEL}])
    trigger = responses.post(f"{CORE}/channels/c9/trigger", body="OK")
    runner = Recorder()
    _, _, job = wired(runner)
    job()
    assert trigger.call_count == 1
    assert runner.calls == []  # core called the route; nothing ran behind its back


@responses.activate
def test_trigger_500_after_the_run_reached_us_is_not_run_twice() -> None:
    runner = Recorder()
    app, _, job = wired(runner)
    answers: list[int] = []

    def route_called(request: Any) -> tuple[int, dict[str, str], str]:
        # core calls the channel's route, which runs; it answers 500 for a Failed run
        answers.append(app.test_client().get("/push").status_code)
        return (500, {}, "route answered 500")

    responses.get(f"{CORE}/channels", json=[{"_id": "c9", "name": CHANNEL}])
    responses.add_callback(responses.POST, f"{CORE}/channels/c9/trigger", callback=route_called)
    job.clock = lambda: datetime.now(UTC) - timedelta(seconds=1)
    job()
    assert answers == [200]
    assert len(runner.calls) == 1  # the routed run only: not run a second time here


@responses.activate
def test_trigger_500_without_a_run_runs_here() -> None:
    runner = Recorder()
    _, _, job = wired(runner)
    responses.get(f"{CORE}/channels", json=[{"_id": "c9", "name": CHANNEL}])
    responses.post(f"{CORE}/channels/c9/trigger", status=500)
    responses.post(f"{CORE}/transactions", status=201)
    job()
    assert len(runner.calls) == 1 and runner.calls[0].trigger == "schedule"


@responses.activate
def test_without_the_channel_the_mediator_runs_and_records_the_transaction() -> None:
    responses.get(f"{CORE}/channels", json=[])
    created = responses.post(f"{CORE}/transactions", status=201)
    runner = Recorder()
    _, _, job = wired(runner)
    job.clock = lambda: datetime(2024, 3, 2, 23, 30, tzinfo=UTC)  # 3 March in Nairobi
    job()
    # the latest completed period (and the lookback) as of the trigger time
    assert runner.calls[0].periods == []
    assert runner.calls[0].as_of == datetime(2024, 3, 2, 23, 30, tzinfo=UTC)
    assert runner.calls[0].trigger == "schedule"
    assert created.call_count == 1
    doc = json.loads(responses.calls[-1].request.body)
    assert doc["status"] == "Successful"
    assert doc["request"]["timestamp"].startswith("2024-03-02T23:30")
    # a console rerun replays the trigger time, so it redoes the same periods
    assert doc["request"]["querystring"] == ""
    assert doc["request"]["headers"]["X-OpenHIM-LastRunAt"].startswith("2024-03-02T23:30")
    assert doc["properties"]["trigger"] == "mediator schedule"
    assert "d2pat-Secret-5511" not in responses.calls[-1].request.body.decode()


@responses.activate
def test_scheduled_job_never_raises_when_core_is_down() -> None:
    responses.get(f"{CORE}/channels", status=503)
    responses.post(f"{CORE}/transactions", status=503)
    runner = Recorder()
    _, _, job = wired(runner)
    job()  # runs locally, fails to record, logs; the scheduler lives on
    assert len(runner.calls) == 1
