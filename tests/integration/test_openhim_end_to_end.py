"""End to end over real HTTP with the real OpenHIM core 8.5.0: core's own scheduler
fires the monthly polling channel → the mediator reads CHT (live CouchDB) → pushes
to the DHIS2 stand-in → the transaction core stored says what happened, the way
the OpenHIM console shows it. The mediator logs in to core as its own admin user.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from devstack import deployment as dep
from devstack.faultproxy import FaultProxy, Rule
from devstack.net import wait_for
from devstack.openhim_core import ChannelNotScheduled
from devstack.stack import ADMIN_CLIENT, ADMIN_CLIENT_PASSWORD, LocalStack
from mediator.http.errors import BadStatus
from mediator.model.periods import Month
from mediator.openhim.client import OpenhimClient
from mediator.openhim.console_config import load_registration
from mediator.settings.config import OpenhimSettings

URN = "urn:mediator:cht-dhis2-aggregate"
LAST = Month.previous_completed("UTC")
PUSH_AUTH = ("openhim-route", "route-Pa55-e2e")


@pytest.fixture
def stack_factory(local_stacks):
    return functools.partial(local_stacks, [LAST.shift(-1).tag, LAST.tag])


def polling_channel(stack: LocalStack) -> dict:
    stack.wait_registered(URN)
    channels = stack.install_channels(URN)
    return next(c for c in channels if c["type"] == "polling")


def held(stack: LocalStack) -> dict:
    assert stack.dhis2 is not None
    return {k: v for k, v in stack.dhis2.store.values().items() if v not in (None, "")}


def health(stack: LocalStack) -> dict:
    return requests.get(f"{stack.mediator_url}/health", timeout=5).json()


def client_for(stack: LocalStack) -> OpenhimClient:
    """The mediator's own OpenHIM client, with the stack's settings."""
    return OpenhimClient(OpenhimSettings.from_env(stack.env))


def test_registration_is_stored_as_sent_and_core_validates_it(stack_factory):
    stack = stack_factory()
    shipped = load_registration(env=stack.env)
    stored = stack.wait_registered(URN)
    assert stored["version"] == shipped["version"] and stored["name"] == shipped["name"]
    assert [d["param"] for d in stored["configDefs"]] == [d["param"] for d in shipped["configDefs"]]
    assert [c["name"] for c in stored["defaultChannelConfig"]] == [
        c["name"] for c in shipped["defaultChannelConfig"]
    ]
    # the console reads password params masked; the mediator's user is not root
    assert stack.env["OPENHIM_USERNAME"] != "root@openhim.org"
    client = client_for(stack)
    # core's own validation (src/api/mediators.js): its words reach the mediator's error
    with pytest.raises(BadStatus, match=r"400.*SemVer") as bad_version:
        client.register({**shipped, "version": "0.2"})
    assert bad_version.value.status == 400
    with pytest.raises(BadStatus, match="No config definition found for parameter nope"):
        client.register({**shipped, "version": "9.0.0", "config": {"nope": 1}})
    # the same version again: 201, and core keeps what it has (a console edit survives)
    stack.openhim.expect(
        200,
        "PUT",
        f"/mediators/{URN}/config",
        json={**stored["config"], "chtDb": "edited-in-console"},
    )
    client.register({**shipped, "config": {**shipped["config"], "chtDb": "medic"}})
    assert stack.openhim.mediator(URN)["config"]["chtDb"] == "edited-in-console"


def test_default_channels_install_unscheduled_and_saving_schedules_the_poll(stack_factory):
    stack = stack_factory()
    stack.wait_registered(URN)
    names = [c["name"] for c in stack.openhim.mediator(URN)["defaultChannelConfig"]]
    installed = stack.openhim.install_channels(URN, names)
    assert sorted(c["name"] for c in installed) == sorted(names)
    polling = next(c for c in installed if c["type"] == "polling")
    assert polling["pollingSchedule"] == "0 2 3 * *"
    # core 8.5.0 installs a mediator's polling channel without scheduling it
    assert not stack.openhim.is_scheduled(polling["_id"])
    with pytest.raises(ChannelNotScheduled):
        stack.openhim.fire_polling_channel(polling["_id"])
    stack.install_channels(URN)  # edited and saved, as in the console
    assert stack.openhim.is_scheduled(polling["_id"])


def test_clean_import_is_successful_with_orchestrations_and_properties(stack_factory):
    stack = stack_factory()
    channel = polling_channel(stack)
    tx = stack.openhim.fire_polling_channel(channel["_id"])
    assert tx["status"] == "Successful"
    # core's poller called the route with the time it ran, as agenda sets it
    assert "x-openhim-lastrunat" in {k.lower() for k in tx["request"]["headers"]}
    props = tx["properties"]
    # no period given: the latest completed month and the two before it (late syncs)
    periods = [LAST.shift(-k).dhis2 for k in (2, 1, 0)]
    assert props["periods"] == ", ".join(periods)
    assert int(props["imported"]) == len(held(stack)) > 0
    assert props["conflicts"] == "0"
    assert props["summary"].startswith("Pushed 3 periods")
    assert all(isinstance(v, str) for v in props.values())
    names = [o["name"] for o in tx["orchestrations"]]
    assert names[0].startswith("CHT: read ")
    # steps, each named with its data set (name and id) and period, not raw requests
    for ds, label in ((dep.DS_MONTHLY, "MoH Monthly Integration"), (dep.DS_CHW, "CHW activity")):
        for period in periods:
            read = f"{label} ({ds}) {period}: read what DHIS2 holds (5 org units)"
            assert any(n.startswith(read) for n in names)
            pushed = any(n.startswith(f"{label} ({ds}) {period}: push ") for n in names)
            assert pushed or f"{read}, nothing to push" in " ".join(names)
    # core stores the mediator's orchestrations, then its own for the primary route, whose
    # body is the whole envelope: it stays JSON under the 15,000 characters the API keeps
    assert names[-1] == "CHT to DHIS2 mediator"
    json.loads(tx["orchestrations"][-1]["response"]["body"])
    push = next(o for o in tx["orchestrations"] if ": push " in o["name"])
    chunks = json.loads(push["response"]["body"])["chunks"]
    assert chunks and chunks[0]["imported"] > 0  # DHIS2's own import counts
    assert all(o["request"]["querystring"] == "" for o in tx["orchestrations"][:-1])
    report = json.loads(tx["response"]["body"])
    assert {r["data_set"] for r in report["results"]} == {dep.DS_MONTHLY, dep.DS_CHW}
    # a rerun from the console (POST /tasks) is a child transaction writing nothing twice
    again = stack.openhim.rerun(tx["_id"])
    assert again["parentID"] == tx["_id"]
    assert again["status"] == "Successful"
    assert again["properties"]["values sent"] == "0"
    assert again["properties"]["periods"] == props["periods"]  # the same months redone
    assert stack.openhim.transaction(tx["_id"])["wasRerun"] is True


def test_import_with_conflicts_is_completed_with_errors_row_by_row(stack_factory, couch):
    stack = stack_factory()
    # a CHT place whose org unit DHIS2 does not know: its values are rejected (E7612)
    s = couch.session()
    ghost = {"_id": "chu-ghost", "parent": {"_id": "district-1"}}
    docs = [
        {**ghost, "type": "health_center", "name": "Ghost", "dhis": {"orgUnit": "Zz9Unknown1"}},
        {"_id": "chw-ghost", "type": "person", "name": "CHW", "parent": ghost},
        {
            "_id": f"target~{LAST.tag}~chw-ghost~org.couchdb.user:ghost",
            "type": "target",
            "owner": "chw-ghost",
            "user": "org.couchdb.user:ghost",
            "targets": [{"id": "births-this-month", "value": {"pass": 2, "total": 2}}],
        },
    ]
    s.post(f"{couch.url}/{stack.db}/_bulk_docs", json={"docs": docs}).raise_for_status()
    tx = stack.openhim.fire_polling_channel(polling_channel(stack)["_id"])
    assert tx["status"] == "Completed with error(s)"
    assert int(tx["properties"]["rejected rows"]) >= 1
    report = json.loads(tx["response"]["body"])
    monthly = next(
        r
        for r in report["results"]
        if r["data_set"] == dep.DS_MONTHLY and r["period"] == LAST.dhis2
    )
    assert {(r["dataElement"], r["orgUnit"]) for r in monthly["rejected"]} == {
        (dep.DE_BIRTHS, "Zz9Unknown1")
    }
    # the good rows still reached DHIS2
    assert held(stack)
    # and ops read the cause and the fix in the properties, once, with its period
    problem = tx["properties"]["problem: Org unit unknown to DHIS2"]
    assert problem.startswith(f"{LAST.dhis2}: ") and problem.count("Zz9Unknown1") == 1
    assert "chu-ghost" in problem and "What to do: " in problem


def test_dhis2_down_is_failed_and_says_why(stack_factory):
    stack = stack_factory(extra_env={"DHIS2_MAX_ATTEMPTS": "2", "DHIS2_MAX_RETRY_SECONDS": "0.2"})
    channel = polling_channel(stack)
    stack.dhis2.stop()
    tx = stack.openhim.fire_polling_channel(channel["_id"])
    assert tx["status"] == "Failed"
    report = json.loads(tx["response"]["body"])
    assert all(r["status"] == "error" for r in report["results"])
    assert all("DHIS2" in (r["error"] or "") for r in report["results"])


def test_console_config_change_applies_to_the_next_run(stack_factory):
    stack = stack_factory()
    channel = polling_channel(stack)
    config = stack.openhim.mediator(URN)["config"]
    config["dryRun"] = True
    # what the console's mediator config dialog sends
    stack.openhim.expect(200, "PUT", f"/mediators/{URN}/config", json=config)
    # the next heartbeat delivers it (every 0.3 s here, 10 s in production)
    changed = stack.openhim.mediator(URN)["_configModifiedTS"]
    wait_for(lambda: stack.openhim.mediator(URN)["_lastHeartbeat"] > changed, 20, "heartbeat")
    wait_for(lambda: health(stack)["openhim"]["console_config_received"], 10, "config")
    tx = stack.openhim.fire_polling_channel(channel["_id"])
    assert tx["properties"]["dry run"].startswith("yes")
    assert tx["status"] == "Completed"  # told apart from a real run in the console's list
    assert held(stack) == {}  # a dry run stores nothing


def test_heartbeats_reach_core_with_the_uptime(stack_factory):
    stack = stack_factory()
    first = stack.wait_registered(URN)
    wait_for(lambda: stack.openhim.mediator(URN).get("_lastHeartbeat"), 10, "a heartbeat")
    before = stack.openhim.mediator(URN)
    wait_for(
        lambda: stack.openhim.mediator(URN)["_lastHeartbeat"] > before["_lastHeartbeat"],
        10,
        "the next heartbeat",
    )
    after = stack.openhim.mediator(URN)
    assert after["_uptime"] > before["_uptime"] >= 0
    assert first["urn"] == URN and health(stack)["openhim"]["last_heartbeat_ok"] is True


def test_manual_channel_through_cores_router_with_the_routes_credentials(stack_factory):
    push = {"MEDIATOR_PUSH_USERNAME": PUSH_AUTH[0], "MEDIATOR_PUSH_PASSWORD": PUSH_AUTH[1]}
    stack = stack_factory(extra_env=push)
    polling_channel(stack)  # installs and saves both channels, routes with the credentials
    url = f"{stack.openhim.router_url}/cht-dhis2/push"
    # the mediator's /push itself refuses a caller without them
    assert requests.get(f"{stack.mediator_url}/push", timeout=10).status_code == 401
    # core refuses a client it does not know
    assert requests.get(url, params={"period": LAST.tag}, timeout=30).status_code == 401
    answer = requests.get(
        url, params={"period": LAST.tag}, auth=(ADMIN_CLIENT, ADMIN_CLIENT_PASSWORD), timeout=120
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()  # core answers the client with the envelope's inner response
    assert report["status"] == "Successful"
    assert held(stack)
    manual = next(c for c in stack.openhim.channels if c["type"] == "http")
    tx = stack.openhim.await_transaction(lambda t: True, manual["_id"])
    assert tx["status"] == "Successful"
    assert tx["clientID"] and tx["request"]["querystring"] == f"period={LAST.tag}"
    assert tx["properties"]["periods"] == LAST.dhis2


def run_async_held(stack_factory, proxy: FaultProxy) -> tuple[dict, dict]:
    """An async run whose DHIS2 import waits behind ``proxy`` until the test has
    read the Processing answer, so the run cannot finish first. Returns the
    transaction as first answered, then as the mediator's update left it."""
    stack = stack_factory(extra_env={"MEDIATOR_ASYNC": "true", "DHIS2_URL": proxy.url})
    proxy.upstream = stack.dhis2.url
    gate = proxy.add(Rule("hold", method="POST", path=r"/dataValueSets$", count=None))
    channel = polling_channel(stack)
    first = stack.openhim.fire_polling_channel(channel["_id"], settled=False)
    gate.release.set()
    final = stack.openhim.await_transaction(lambda t: t["_id"] == first["_id"], channel["_id"])
    assert int(final["properties"]["imported"]) == len(held(stack)) > 0
    return first, final


@pytest.fixture
def dhis2_proxy():
    with FaultProxy("http://127.0.0.1:9") as proxy:  # upstream set once DHIS2 runs
        yield proxy


def test_async_mode_answers_processing_then_updates_the_transaction(stack_factory, dhis2_proxy):
    first, final = run_async_held(stack_factory, dhis2_proxy)
    assert first["status"] == "Processing"  # answered at once, before the run
    assert first["response"]["status"] == 202
    assert first["properties"]["run id"]
    # then the mediator's PUT /transactions/:id replaced it with the run's outcome
    assert final["status"] == "Successful"
    assert final["response"]["status"] == 200
    assert any(": push " in o["name"] for o in final["orchestrations"])


def test_async_run_id_is_the_same_in_the_answer_and_the_update(stack_factory, dhis2_proxy):
    first, final = run_async_held(stack_factory, dhis2_proxy)
    assert final["properties"]["run id"] == first["properties"]["run id"]


def test_registration_survives_openhim_down_at_start_up(stack_factory, caplog):
    caplog.set_level(logging.INFO, logger="mediator.openhim")
    stack = stack_factory(openhim_down_at_start=True)
    health_now = requests.get(f"{stack.mediator_url}/health", timeout=5)
    assert health_now.status_code == 200  # the mediator serves while OpenHIM is away
    # a registration attempt failed on the closed port, and the mediator said so
    wait_for(lambda: health(stack)["openhim"]["last_error"], 10, "a failed registration")
    assert health(stack)["openhim"]["registered"] is False
    assert "OpenHIM not reachable for registration" in caplog.text
    stack.openhim.start()
    stack.wait_registered(URN, timeout=60)
    wait_for(lambda: health(stack)["openhim"]["registered"], 10, "registered in /health")


@pytest.mark.slow
def test_demo_command_runs_the_stack_and_exits_0():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "mediator", "demo"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("status Successful") == 2
    assert "DHIS2 now holds" in done.stdout
    assert "re-run from core's /tasks" in done.stdout
