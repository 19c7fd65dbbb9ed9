"""End to end over real HTTP: OpenHIM fires the monthly polling channel → the
mediator reads CHT (live CouchDB) → pushes to the DHIS2 stand-in → the stored
transaction says what happened, the way the OpenHIM console shows it.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devstack import deployment as dep
from devstack.net import wait_for
from devstack.stack import OPENHIM_PASSWORD, OPENHIM_USER, LocalStack
from mediator.periods import Month

URN = "urn:mediator:cht-dhis2-aggregate"
LAST = Month.previous_completed("UTC")
_dbs = itertools.count(1)


@pytest.fixture
def stack_factory(couch):
    stacks: list[LocalStack] = []

    def make(**kw) -> LocalStack:
        env = {"OPENHIM_HEARTBEAT_SECONDS": "0.3", **kw.pop("extra_env", {})}
        stack = LocalStack(
            months=[LAST.shift(-1).tag, LAST.tag],
            couch=couch,
            db=f"medic-openhim-{next(_dbs)}",
            extra_env=env,
            **kw,
        )
        stacks.append(stack)
        return stack.start()

    yield make
    for stack in stacks:
        stack.stop()


def polling_channel(stack: LocalStack) -> dict:
    stack.wait_registered(URN)
    channels = stack.install_channels(URN)
    return next(c for c in channels if c["type"] == "polling")


def held(stack: LocalStack) -> dict:
    assert stack.dhis2 is not None
    return {k: v for k, v in stack.dhis2.store.values().items() if v not in (None, "")}


def test_clean_import_is_successful_with_orchestrations_and_properties(stack_factory):
    stack = stack_factory()
    channel = polling_channel(stack)
    tx = stack.openhim.fire_polling_channel(channel["_id"])
    assert tx["status"] == "Successful"
    props = tx["properties"]
    # no period given: the latest completed month and the two before it (late syncs)
    assert props["period"] == ", ".join(LAST.shift(-k).dhis2 for k in (2, 1, 0))
    assert int(props["imported"]) == len(held(stack)) > 0
    assert props["conflicts"] == "0"
    assert all(isinstance(v, str) for v in props.values())
    names = [o["name"] for o in tx["orchestrations"]]
    assert any(n.startswith("DHIS2 dataValueSets POST") for n in names)
    assert any(n.startswith("CHT") for n in names)
    # core stores the mediator's orchestrations, then its own for the primary route
    assert names[-1] == "CHT to DHIS2 mediator"
    post = next(o for o in tx["orchestrations"] if o["name"].startswith("DHIS2 dataValueSets POST"))
    summary = json.loads(post["response"]["body"])
    assert summary["response"]["importCount"]["imported"] > 0  # DHIS2's own import summary
    report = json.loads(tx["response"]["body"])
    assert {r["data_set"] for r in report["results"]} == {dep.DS_MONTHLY, dep.DS_CHW}
    # a rerun from the console writes nothing twice
    again = stack.openhim.fire_polling_channel(channel["_id"])
    assert again["status"] == "Successful"
    assert again["properties"]["values sent"] == "0"


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
    # and ops read the cause and the fix in the properties
    problem = tx["properties"]["problem: Org unit unknown to DHIS2"]
    assert problem.startswith("1 × ") and "Zz9Unknown1" in problem and "chu-ghost" in problem


def test_dhis2_down_is_failed_and_says_why(stack_factory):
    stack = stack_factory()
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
    config = requests.get(
        f"{stack.openhim.url}/mediators/{URN}", auth=(OPENHIM_USER, OPENHIM_PASSWORD), timeout=10
    ).json()["config"]
    config["dryRun"] = True
    requests.put(
        f"{stack.openhim.url}/mediators/{URN}/config",
        json=config,
        auth=(OPENHIM_USER, OPENHIM_PASSWORD),
        timeout=10,
    ).raise_for_status()
    # the next heartbeat delivers it (every 0.3 s here, 10 s in production)
    changed = stack.openhim.mediator(URN)["_configModifiedTS"]
    wait_for(lambda: stack.openhim.mediator(URN)["_lastHeartbeat"] > changed, 20, "heartbeat")
    tx = stack.openhim.fire_polling_channel(channel["_id"])
    assert tx["properties"]["dry run"] == "true"
    assert held(stack) == {}  # a dry run stores nothing


def test_registration_survives_openhim_down_at_start_up(stack_factory):
    stack = stack_factory(openhim_down_at_start=True)
    health = requests.get(f"{stack.mediator_url}/health", timeout=5)
    assert health.status_code == 200  # the mediator serves while OpenHIM is away
    time.sleep(1.0)
    assert stack.openhim.mediators == []
    stack.openhim.up()
    stack.wait_registered(URN, timeout=30)
    wait_for(
        lambda: requests.get(f"{stack.mediator_url}/health", timeout=5).json()["openhim"][
            "registered"
        ],
        10,
        "registered in /health",
    )


@pytest.mark.slow
def test_demo_command_runs_the_stack_and_exits_0():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "mediator", "demo"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("status Successful") == 2
    assert "DHIS2 now holds" in done.stdout


def test_async_mode_answers_processing_then_updates_the_transaction(stack_factory):
    stack = stack_factory(extra_env={"MEDIATOR_ASYNC": "true"})
    channel = polling_channel(stack)
    tx = stack.openhim.fire_polling_channel(channel["_id"])
    assert tx["status"] == "Processing"  # answered at once, before the run
    wait_for(
        lambda: stack.openhim.transaction(tx["_id"])["status"] != "Processing", 60, "tx update"
    )
    final = stack.openhim.transaction(tx["_id"])
    assert final["status"] == "Successful"
    assert int(final["properties"]["imported"]) == len(held(stack)) > 0
    assert any(o["name"].startswith("DHIS2 dataValueSets POST") for o in final["orchestrations"])
