"""OpenHIM faults: the mediator keeps serving, re-registers when core returns, and a
failed heartbeat never stops the scheduler (the OpenHIM core stand-in over real HTTP,
heartbeat every 0.3 s)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import requests

from devstack.net import wait_for
from devstack.stack import LocalStack

from .helpers import PERIOD

URN = "urn:mediator:cht-dhis2-aggregate"


def start(couch, **kw) -> LocalStack:
    env = {"OPENHIM_HEARTBEAT_SECONDS": "0.3", **kw.pop("extra_env", {})}
    return LocalStack(months=[PERIOD], couch=couch, db=kw.pop("db"), extra_env=env, **kw).start()


@pytest.fixture(scope="module")
def stack(couch) -> Iterator[LocalStack]:
    s = start(couch, db="medic-openhim-faults")
    s.wait_registered(URN)
    yield s
    s.stop()


def health(stack: LocalStack) -> dict:
    started = time.monotonic()
    answer = requests.get(f"{stack.mediator_url}/health", timeout=5)
    assert answer.status_code == 200
    assert time.monotonic() - started < 1.0  # never blocked by OpenHIM
    return answer.json()


def push_ok(stack: LocalStack) -> None:
    """A push straight to the mediator (not through core) still runs end to end."""
    answer = requests.get(f"{stack.mediator_url}/push", params={"period": PERIOD}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "Successful"


def beats_ok(stack: LocalStack) -> bool:
    return health(stack)["openhim"]["last_heartbeat_ok"] is True


def test_down_at_start_up_serves_meanwhile_then_registers(couch):
    stack = start(couch, db="medic-openhim-down", openhim_down_at_start=True)
    try:
        push_ok(stack)
        assert health(stack)["openhim"]["registered"] is False
        stack.openhim.up()
        stack.wait_registered(URN, timeout=30)
        wait_for(lambda: health(stack)["openhim"]["registered"], 10, "registered")
    finally:
        stack.stop()


def test_down_later_keeps_serving_heartbeat_job_survives_and_recovers(stack, caplog):
    caplog.set_level(logging.INFO, logger="mediator.openhim")
    wait_for(lambda: beats_ok(stack), 10, "heartbeat")
    stack.openhim.down()
    try:
        wait_for(lambda: health(stack)["openhim"]["last_heartbeat_ok"] is False, 10, "failure")
        push_ok(stack)
        assert stack._scheduler.get_job("openhim-heartbeat") is not None
        time.sleep(1.0)  # several failed beats: logged once, not once per beat
    finally:
        stack.openhim.up()
    wait_for(lambda: beats_ok(stack), 10, "recovery")
    failures = [r for r in caplog.records if "heartbeat failed" in r.getMessage()]
    assert len(failures) == 1
    assert any("recovered" in r.getMessage() for r in caplog.records)


def test_core_that_lost_the_mediator_gets_it_registered_again(stack):
    stack.openhim.reset()  # core restarted without its data: the heartbeat answers 404
    assert stack.openhim.mediator(URN) is None
    stack.wait_registered(URN, timeout=30)
    wait_for(lambda: beats_ok(stack), 10, "heartbeat after re-registering")


def test_500_on_heartbeat_three_times_keeps_the_job_and_recovers(stack):
    wait_for(lambda: beats_ok(stack), 10, "heartbeat")
    stack.openhim.faults.fail(r"/heartbeat$", 500, times=3)
    wait_for(lambda: not stack.openhim.faults.active, 10, "the three 500s")
    wait_for(lambda: beats_ok(stack), 10, "recovery")
    beats = [e for e in stack.openhim.api_log if e["path"].endswith("/heartbeat")]
    assert [e["status"] for e in beats].count(500) == 3
    assert stack._scheduler.get_job("openhim-heartbeat") is not None
    assert stack.openhim.mediator(URN)["_lastHeartbeat"] is not None


def test_slow_core_never_blocks_push_or_health_and_beats_do_not_pile_up(stack):
    stack.openhim.faults.slow(r"/heartbeat$", 1.0)
    try:
        time.sleep(0.5)
        before = len(stack.openhim.api_log)
        started = time.monotonic()
        health(stack)  # answers in < 1 s although every beat takes 1 s
        push_ok(stack)
        time.sleep(max(0.0, 2.5 - (time.monotonic() - started)))
        beats = [e for e in stack.openhim.api_log[before:] if e["path"].endswith("/heartbeat")]
        assert len(beats) <= 4  # one beat at a time (0.3 s interval would be 8)
    finally:
        stack.openhim.faults.clear()
    wait_for(lambda: beats_ok(stack), 10, "fast beats again")


def test_401_from_core_is_logged_once_and_the_mediator_keeps_serving(couch, caplog):
    caplog.set_level(logging.INFO, logger="mediator.openhim")
    stack = start(couch, db="medic-openhim-401", extra_env={"OPENHIM_PASSWORD": "not-the-password"})
    try:
        wait_for(lambda: health(stack)["openhim"]["last_error"], 10, "registration error")
        assert "401" in health(stack)["openhim"]["last_error"]
        push_ok(stack)
        time.sleep(2.5)  # at least one more attempt (back-off 1–2 s)
        rejected = [r for r in caplog.records if "rejected the registration" in r.getMessage()]
        assert len(rejected) == 1 and rejected[0].levelno == logging.ERROR
        assert stack.openhim.mediators == []
    finally:
        stack.stop()
