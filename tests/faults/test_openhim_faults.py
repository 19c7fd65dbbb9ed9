"""OpenHIM faults against the real core 8.5.0: the mediator keeps serving, registers
when core comes back, re-registers when core lost it, and a failed heartbeat never
stops the scheduler (heartbeat every 0.3 s).

Core down is the real core stopped (connection refused) and started again with its
data. What the real core cannot be made to do (answer 500, answer slowly) comes
from ``devstack/faultproxy.py`` between the mediator and core's API; each such
test says so.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator

import pytest
import requests

from devstack.faultproxy import FaultProxy, Rule
from devstack.net import wait_for
from devstack.stack import LocalStack

from .helpers import PERIOD

URN = "urn:mediator:cht-dhis2-aggregate"


@pytest.fixture
def start(local_stacks):
    return functools.partial(local_stacks, [PERIOD])


@pytest.fixture
def core_proxy(openhim) -> Iterator[FaultProxy]:
    """A fault proxy in front of core's API (https, self-signed): the mediator talks
    plain http to it."""
    with FaultProxy(openhim.url, verify=False) as proxy:
        yield proxy


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


def heartbeats(proxy: FaultProxy) -> list:
    return [s for s in list(proxy.log) if s.path.endswith("/heartbeat")]


def slow_beats_answered(proxy: FaultProxy) -> list:
    return [s for s in heartbeats(proxy) if s.fault == "delay" and s.ended is not None]


def test_down_at_start_up_serves_meanwhile_then_registers(start):
    stack = start(openhim_down_at_start=True)
    push_ok(stack)
    wait_for(lambda: health(stack)["openhim"]["last_error"], 10, "a failed registration")
    assert health(stack)["openhim"]["registered"] is False
    stack.openhim.start()
    stack.wait_registered(URN, timeout=60)
    wait_for(lambda: health(stack)["openhim"]["registered"], 10, "registered")


def test_down_later_keeps_serving_heartbeat_job_survives_and_recovers(start, caplog):
    caplog.set_level(logging.INFO, logger="mediator.openhim")
    stack = start()
    stack.wait_registered(URN)
    wait_for(lambda: beats_ok(stack), 10, "heartbeat")
    stack.openhim.stop()
    try:
        wait_for(lambda: health(stack)["openhim"]["last_heartbeat_ok"] is False, 10, "failure")
        push_ok(stack)
        assert stack._scheduler.get_job("openhim-heartbeat") is not None
        # several failed beats, logged once, not once per beat
        wait_for(lambda: stack._agent._failures >= 3, 10, "three failed heartbeats")
    finally:
        stack.openhim.start()  # the same core, its data kept
    wait_for(lambda: beats_ok(stack), 20, "recovery")
    failures = [r for r in caplog.records if "heartbeat failed" in r.getMessage()]
    assert len(failures) == 1
    assert any("recovered" in r.getMessage() for r in caplog.records)
    assert stack.openhim.mediator(URN)["_lastHeartbeat"]  # core saw it again


def test_core_that_lost_the_mediator_gets_it_registered_again(start):
    stack = start()
    stack.wait_registered(URN)
    wait_for(lambda: beats_ok(stack), 10, "heartbeat")
    # deleted in the console: core answers the next heartbeat 404
    stack.openhim.expect(200, "DELETE", f"/mediators/{URN}")
    assert stack.openhim.mediator(URN) is None
    stack.wait_registered(URN, timeout=30)
    wait_for(lambda: beats_ok(stack), 10, "heartbeat after re-registering")


def test_500_on_heartbeat_three_times_keeps_the_job_and_recovers(start, core_proxy):
    # the real core answers a well-formed heartbeat 200; a 500 needs the proxy
    stack = start(extra_env={"OPENHIM_URL": core_proxy.url})
    stack.wait_registered(URN)
    wait_for(lambda: beats_ok(stack), 10, "heartbeat")
    rule = core_proxy.add(Rule("status", path=r"/heartbeat$", method="POST", count=3))
    wait_for(lambda: rule.fired == 3, 10, "the three 500s")
    wait_for(lambda: beats_ok(stack), 10, "recovery")
    assert [s.status for s in heartbeats(core_proxy)].count(500) == 3
    assert stack._scheduler.get_job("openhim-heartbeat") is not None
    last = stack.openhim.mediator(URN)["_lastHeartbeat"]
    wait_for(lambda: stack.openhim.mediator(URN)["_lastHeartbeat"] > last, 10, "core saw beats")


def test_slow_core_never_blocks_push_or_health_and_beats_do_not_pile_up(start, core_proxy):
    # the real core answers a heartbeat in milliseconds; a slow one needs the proxy
    stack = start(extra_env={"OPENHIM_URL": core_proxy.url})
    stack.wait_registered(URN)
    wait_for(lambda: beats_ok(stack), 10, "heartbeat")
    slow = core_proxy.add(Rule("delay", path=r"/heartbeat$", seconds=1.0, count=None))
    try:
        wait_for(lambda: slow.fired >= 1, 10, "a slow beat under way")
        health(stack)  # answers in < 1 s although every beat takes 1 s
        push_ok(stack)
        wait_for(lambda: len(slow_beats_answered(core_proxy)) >= 4, 20, "four slow beats")
    finally:
        core_proxy.clear()
    wait_for(lambda: beats_ok(stack), 10, "fast beats again")
    # one beat at a time: no heartbeat started while a slow one was waiting for its
    # answer (a 0.3 s interval against 1 s answers would otherwise overlap three deep)
    beats = heartbeats(core_proxy)
    for beat in slow_beats_answered(core_proxy):
        assert not [s for s in beats if beat.started < s.started < beat.ended], beat


def test_401_from_core_is_logged_once_and_the_mediator_keeps_serving(start, caplog):
    caplog.set_level(logging.DEBUG, logger="mediator.openhim")
    stack = start(extra_env={"OPENHIM_PASSWORD": "not-the-password"})
    wait_for(lambda: health(stack)["openhim"]["last_error"], 10, "registration error")
    assert "401" in health(stack)["openhim"]["last_error"]
    push_ok(stack)

    def retried() -> bool:  # a second refused attempt (back-off 1–2 s), logged at debug
        return any("registration still failing" in r.getMessage() for r in caplog.records)

    wait_for(retried, 15, "a second registration attempt")
    rejected = [r for r in caplog.records if "rejected the registration" in r.getMessage()]
    assert len(rejected) == 1 and rejected[0].levelno == logging.ERROR
    assert stack.openhim.mediators == []
