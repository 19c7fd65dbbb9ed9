"""Secrets and access.

1. Distinctive secrets (CHT password, DHIS2 token and password, OpenHIM password,
   the push endpoint's password) go through a representative set of faults, and
   none of them, nor their Basic-auth base64 form, appears in anything captured:
   logs of every logger at DEBUG, stdout/stderr, run reports, envelopes, the
   transactions and orchestrations the real OpenHIM core stored, /health and the
   console's config echo. The mediator talks to core through a fault proxy, which
   makes the heartbeat 500s the real core cannot be made to answer.
2. The push endpoint is not an open trigger: with credentials set it answers 401
   without them; off loopback the mediator refuses to start without them.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from devstack.dhis2_standin import Dhis2StandIn
from devstack.faultproxy import FaultProxy, Rule
from devstack.net import ServerThread, free_port, wait_for
from devstack.openhim_core import OpenhimCore
from mediator.cli.commands import main
from mediator.service.serve import build, push_credentials
from mediator.settings.variables import ConfigError

from .helpers import PERIOD, new_db

URN = "urn:mediator:cht-dhis2-aggregate"
CHT_USER, CHT_SECRET = "cht-secret-reader", "Sekr1t-CHT-7f3a"
DHIS2_SECRET = "Sekr1t-DHIS2-91bd"  # a console-saved DHIS2 password (the token wins)
OH_USER, OH_SECRET = "ops@example.org", "Sekr1t-OpenHIM-c0de"
PUSH_USER, PUSH_SECRET = "openhim-route", "Sekr1t-Push-5e6f"


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class World:
    d2: Dhis2StandIn
    openhim: OpenhimCore
    proxy: FaultProxy  # between the mediator and core's API
    url: str
    env: dict[str, str]
    token: str
    captured: list[str] = field(default_factory=list)

    def forbidden(self) -> dict[str, str]:
        secrets = {
            "CHT password": CHT_SECRET,
            "DHIS2 token": self.token,
            "DHIS2 password": DHIS2_SECRET,
            "OpenHIM password": OH_SECRET,
            "push password": PUSH_SECRET,
        }
        secrets |= {
            f"{name} as Basic": basic(user, secret)
            for name, user, secret in [
                ("CHT", CHT_USER, CHT_SECRET),
                ("OpenHIM", OH_USER, OH_SECRET),
                ("push", PUSH_USER, PUSH_SECRET),
            ]
        }
        return secrets

    def fire(self) -> dict:
        channel = next(c for c in self.openhim.channels if c["type"] == "polling")
        tx = self.openhim.fire_polling_channel(channel["_id"])
        self.captured.append(json.dumps(tx))
        return tx


@pytest.fixture(scope="module")
def world(couch, openhim_core) -> Iterator[World]:
    db = new_db(couch)
    requests.put(
        f"{couch.url}/_config/admins/{CHT_USER}",
        data=json.dumps(CHT_SECRET),
        auth=(couch.username, couch.password),
        timeout=10,
    ).raise_for_status()
    d2 = Dhis2StandIn(version="2.41.1").start()
    token = d2.add_token("admin")
    openhim = openhim_core
    if not openhim.running:
        openhim.start()
    openhim.reset()
    if openhim.mongo["users"].find_one({"email": OH_USER}) is None:
        openhim.add_user(OH_USER, OH_SECRET)  # an ops user of their own, admin group
    proxy = FaultProxy(openhim.url, verify=False).start()
    port = free_port()
    env = {
        "CHT_URL": couch.url,
        "CHT_DB": db,
        "CHT_USERNAME": CHT_USER,
        "CHT_PASSWORD": CHT_SECRET,
        "DHIS2_URL": d2.url,
        "DHIS2_TOKEN": token,
        "DHIS2_MAX_ATTEMPTS": "2",
        "DHIS2_MAX_RETRY_SECONDS": "0.2",
        "OPENHIM_URL": proxy.url,
        "OPENHIM_USERNAME": OH_USER,
        "OPENHIM_PASSWORD": OH_SECRET,
        "OPENHIM_HEARTBEAT_SECONDS": "0.3",
        "MEDIATOR_HOST": "127.0.0.1",
        "MEDIATOR_PORT": str(port),
        "MEDIATOR_PUSH_USERNAME": PUSH_USER,
        "MEDIATOR_PUSH_PASSWORD": PUSH_SECRET,
    }
    app, scheduler, agent = build(env)
    server = ServerThread(app, port=port).start()
    scheduler.start()
    agent.start()
    try:
        wait_for(lambda: openhim.mediator(URN) is not None, 30, "registration")
        names = [c["name"] for c in openhim.mediator(URN)["defaultChannelConfig"]]
        openhim.install_channels(URN, names)
        for channel in openhim.channels:
            for route in channel["routes"]:
                route.update(host="127.0.0.1", port=port, username=PUSH_USER, password=PUSH_SECRET)
            openhim.save_channel(channel)
        yield World(d2, openhim, proxy, server.url, env, token)
    finally:
        agent.stop()
        scheduler.shutdown(wait=False)
        server.stop()
        proxy.stop()
        d2.stop()


def test_no_secret_appears_in_anything_captured_across_faults(world, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3 included
    w = world
    # 1. a clean run through OpenHIM's polling channel (route sends Basic auth to /push)
    assert w.fire()["status"] == "Successful"
    # 2. DHIS2 answering 500 on every request; 3. DHIS2 refusing the token (401)
    w.d2.faults.fail_next(50, status=500)
    assert w.fire()["status"] == "Failed"
    w.d2.faults.clear()
    w.d2.faults.fail_next(1, status=401)
    assert w.fire()["status"] in ("Failed", "Completed with error(s)")
    # 4. the console saves passwords; core hands them over by heartbeat, in clear
    oh_auth = (OH_USER, OH_SECRET)
    saved = w.openhim.expect(200, "GET", f"/mediators/{URN}", auth=oh_auth).json()
    config = {**saved["config"], "dhis2Password": DHIS2_SECRET, "chtPassword": CHT_SECRET}
    w.openhim.expect(200, "PUT", f"/mediators/{URN}/config", json=config, auth=oh_auth)
    wait_for(
        lambda: requests.get(f"{w.url}/health", timeout=5).json()["openhim"][
            "console_config_received"
        ],
        10,
        "console config",
    )
    # 5. heartbeats failing with 500, then recovering
    # (the real core cannot be made to answer 500: the proxy does)
    beats500 = w.proxy.add(Rule("status", method="POST", path=r"/heartbeat$", count=2))
    wait_for(lambda: beats500.fired == 2, 10, "heartbeat faults used up")
    # 6. /push straight: no credentials, wrong ones, then bad input with the right ones
    for auth in (None, (PUSH_USER, "wrong"), (PUSH_USER, PUSH_SECRET)):
        answer = requests.get(f"{w.url}/push", params={"period": "2024-13"}, auth=auth)
        w.captured.append(answer.text + json.dumps(dict(answer.headers)))
    # 7. DHIS2 down for a push with a failure message
    w.d2.faults.fail_next(50, status=503)
    answer = requests.get(f"{w.url}/push", params={"period": PERIOD}, auth=(PUSH_USER, PUSH_SECRET))
    w.captured.append(answer.text)
    assert answer.json()["status"] == "Failed"
    w.d2.faults.clear()
    # 8. the command line, failing the same way
    for key, value in w.env.items():
        monkeypatch.setenv(key, value)
    w.d2.faults.fail_next(50, status=502)
    assert main(["push", "--period", PERIOD]) == 1
    w.d2.faults.clear()
    # what ops can read: /health, the console's config echo, every transaction stored
    w.captured.append(requests.get(f"{w.url}/health", timeout=5).text)
    w.captured.append(w.openhim.expect(200, "GET", f"/mediators/{URN}", auth=oh_auth).text)
    w.captured.append(json.dumps(w.openhim.transactions))
    w.captured.append(json.dumps([seen.__dict__ for seen in w.proxy.log], default=str))
    out = capsys.readouterr()
    everything = "\n".join([*w.captured, caplog.text, out.out, out.err])
    assert len(caplog.records) > 20 and len(w.openhim.transactions) >= 3
    # positive controls: the secrets were in play (core keeps them, unmasked, inside)
    assert DHIS2_SECRET in json.dumps(w.openhim.mediator_document(URN), default=str)
    assert PUSH_SECRET in json.dumps(w.openhim.channels)
    leaks = {name for name, secret in w.forbidden().items() if secret in everything}
    assert leaks == set(), leaks


def test_push_without_credentials_is_401_with_a_challenge_and_runs_nothing(world):
    before = len(world.d2.store.requests)
    answer = requests.get(f"{world.url}/push", params={"period": PERIOD}, timeout=10)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert "MEDIATOR_PUSH_USERNAME" in answer.json()["properties"]["error"]
    wrong = requests.get(
        f"{world.url}/push", params={"period": PERIOD}, auth=(PUSH_USER, "nope"), timeout=10
    )
    assert wrong.status_code == 401
    assert len(world.d2.store.requests) == before  # nothing ran
    assert requests.get(f"{world.url}/health", timeout=5).status_code == 200  # stays open


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "cht-dhis2-mediator", "::"])
def test_off_loopback_the_mediator_refuses_to_start_without_push_credentials(host):
    with pytest.raises(ConfigError, match="MEDIATOR_PUSH_USERNAME"):
        push_credentials({}, host)
    assert push_credentials({"MEDIATOR_PUSH_USERNAME": "u", "MEDIATOR_PUSH_PASSWORD": "p"}, host)


def test_open_push_off_loopback_is_explicit_and_logged(caplog):
    caplog.set_level(logging.WARNING)
    assert push_credentials({"MEDIATOR_PUSH_AUTH": "none"}, "0.0.0.0") is None
    assert "open to anyone" in caplog.text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_on_loopback_push_credentials_are_optional(host):
    assert push_credentials({}, host) is None
    with pytest.raises(ConfigError, match="both"):
        push_credentials({"MEDIATOR_PUSH_USERNAME": "u"}, host)
