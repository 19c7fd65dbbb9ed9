"""CHT as an operator reaches it: CHT's API in front of CouchDB (``devstack.cht_api``), read
by the mediator's own online non-admin user made through CHT's users API.

What a ministry relies on: the numbers equal CHT's own export (``cht-export-oracle``)
even when owner, place and user docs are in conflict and the server answers
``_bulk_get`` as CouchDB 3 does (every leaf, the loser first); an offline or a
CouchDB-only user gets one line that names the fix; and the check of the contacts kept
between runs can fall over in any way without changing a number.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from devstack import cht_docs as d
from devstack import deployment as dep
from devstack.cht_api import INTEGRATION_PASSWORD, INTEGRATION_USER, ChtApiFront
from devstack.faultproxy import FaultProxy, Rule
from mediator.cli.commands import main
from mediator.model.periods import Period
from mediator.run.pipeline import compute
from mediator.run.request import RunRequest
from mediator.settings.config import ChtSettings, RuntimeConfig
from tests.cht_fixtures import ORACLE, cht_export

MONTH = "2024-01"
_dbs = itertools.count(1)


@pytest.fixture(scope="module")
def instance(couch) -> dict[str, Any]:
    """A CHT deployment as CHT's users API and two devices leave it: CHWs are offline
    users, the mediator's user is online, three docs are in conflict."""
    db = f"medic-instance-{next(_dbs)}"
    deployment = dep.build([MONTH])
    couch.create_db(db)
    couch.bulk(db, deployment.docs_without_users())
    front = ChtApiFront(couch, db=db).start()
    for spec in deployment.user_specs():
        front.create_user(**spec, replace=True)
    front.create_integration_user()
    conflicts = dep.seed_conflicts(couch, db, deployment)
    try:
        yield {"db": db, "front": front, "deployment": deployment, "conflicts": conflicts}
    finally:
        front.stop()


def env_for(url: str, db: str, user: str, password: str, **more: str) -> dict[str, str]:
    return {"CHT_URL": url, "CHT_DB": db, "CHT_USERNAME": user, "CHT_PASSWORD": password, **more}


def preview(monkeypatch, capsys, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    for name in ("CHT_URL", "CHT_DB", "CHT_USERNAME", "CHT_PASSWORD", "CHT_CACHE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["preview", "--period", MONTH, *args])
    out, err = capsys.readouterr()
    return code, out, err


def rows(value_set: dict[str, Any], elements: set[str]) -> dict[tuple[str, str, str], Any]:
    return {
        (v["dataElement"], v["orgUnit"], v.get("categoryOptionCombo") or ""): v["value"]
        for v in value_set["dataValues"]
        if v["dataElement"] in elements
    }


@pytest.mark.skipif(not ORACLE.exists(), reason=f"CHT's export oracle is not at {ORACLE}")
def test_preview_through_chts_api_equals_chts_own_export_with_conflicted_docs(
    instance, couch, monkeypatch, capsys
):
    env = env_for(instance["front"].url, instance["db"], INTEGRATION_USER, INTEGRATION_PASSWORD)
    env["CHT_CACHE"] = "false"
    theirs = cht_export(couch, instance["db"], dep.DS_MONTHLY, MONTH)
    # births and deliveries: no documented difference from CHT's export applies to them
    # (the README lists where the mediator differs on purpose: the ANC option combos)
    same = {dep.DE_BIRTHS, dep.DE_FACILITY_DELIVERIES}
    code, out, err = preview(monkeypatch, capsys, env, "--data-set", dep.DS_MONTHLY)
    assert code == 0, err
    (ours,) = json.loads(out)
    assert rows(ours, same) == rows(theirs, same)
    assert len(rows(ours, same)) == 2 * 5  # two elements at the district and four CHUs
    # the conflicts matter: a reader taking the first _bulk_get leaf (a loser here)
    # moves the first CHW's numbers to another CHU, and this comparison catches it
    monkeypatch.setattr("mediator.cht.answers.winning_revision", lambda leaves: leaves[0])
    code, out, err = preview(monkeypatch, capsys, env, "--data-set", dep.DS_MONTHLY)
    (first_leaf,) = json.loads(out)
    assert rows(first_leaf, same) != rows(theirs, same)


def test_the_renamed_place_and_the_deleted_user_are_read_at_their_winners(
    instance, monkeypatch, capsys
):
    """The place's losing leaf carries the fourth CHU's org unit; the user's is a deleted
    branch: neither may change where numbers go or who coverage expects."""
    env = env_for(instance["front"].url, instance["db"], INTEGRATION_USER, INTEGRATION_PASSWORD)
    code, out, err = preview(monkeypatch, capsys, env, "--data-set", dep.DS_MONTHLY)
    assert code == 0, err
    (ours,) = json.loads(out)
    units = {v["orgUnit"] for v in ours["dataValues"]}
    assert dep.OU_CHU[2] in units  # chu-3's winning org unit


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("offline", "is an offline CHT user (roles: chw)"),
        ("couchdb", "has no CHT role (a user made in CouchDB by hand"),
    ],
)
def test_an_offline_or_couchdb_only_user_gets_one_line_naming_the_fix(
    instance, monkeypatch, capsys, kind, words
):
    front: ChtApiFront = instance["front"]
    if kind == "offline":
        user, password = instance["deployment"].users[0], dep.CHW_PASSWORD
    else:
        user, password = "made-by-hand", "Hand-made-Pa55word"
        front.couchdb_only_user(user, password)
    code, out, err = preview(
        monkeypatch, capsys, env_for(front.url, instance["db"], user, password)
    )
    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert words in lines[0]
    assert "with a role configured online" in lines[0] and "app_settings.roles" in lines[0]
    assert password not in err


@pytest.mark.parametrize(
    "fault",
    [
        Rule("status", method="POST", path=r"/_changes$", status=500, count=None),
        Rule("status", method="POST", path=r"/_changes$", status=302, body=b"", count=None),
        Rule("delay", method="POST", path=r"/_changes$", seconds=3.0, count=None),
        Rule("status", method="GET", path=r"/medic-instance-\d+/$", status=500, count=None),
    ],
    ids=["changes-500", "changes-302", "changes-timeout", "db-info-500"],
)
def test_the_contacts_kept_check_falling_over_leaves_the_numbers_exact(
    instance, tmp_path, monkeypatch, capsys, fault
):
    """A first run keeps the contacts; then CHT moves a CHW, and the check of what changed
    fails. The second run must read everything afresh: the moved CHW's numbers follow."""
    front: ChtApiFront = instance["front"]
    with FaultProxy(front.url) as proxy:
        env = env_for(
            proxy.url,
            instance["db"],
            INTEGRATION_USER,
            INTEGRATION_PASSWORD,
            MEDIATOR_STATE_DIR=str(tmp_path),
            CHT_TIMEOUT="1",
        )
        code, out, err = preview(monkeypatch, capsys, env, "--data-set", dep.DS_CHW)
        assert code == 0, err
        before = rows(json.loads(out)[0], {dep.DE_HOUSEHOLD_VISITS})
        # a CHW of CHU 1 moves to CHU 2 after the first run
        deployment = instance["deployment"]
        name = next(u for u in deployment.users if deployment.chw_chu[u] == dep.OU_CHU[0])
        contact = deployment.chw_contacts[name]
        _move(instance, contact, to="chu-2")
        proxy.add(fault)
        code, out, err = preview(monkeypatch, capsys, env, "--data-set", dep.DS_CHW)
        assert code == 0, err
        after = rows(json.loads(out)[0], {dep.DE_HOUSEHOLD_VISITS})
        assert "read afresh" in err  # the operator is told, once
        _move(instance, contact, to="chu-1")  # put it back for the next case
    fresh_env = env_for(
        front.url, instance["db"], INTEGRATION_USER, INTEGRATION_PASSWORD, CHT_CACHE="false"
    )
    _move(instance, contact, to="chu-2")
    code, out, _ = preview(monkeypatch, capsys, fresh_env, "--data-set", dep.DS_CHW)
    _move(instance, contact, to="chu-1")
    assert after == rows(json.loads(out)[0], {dep.DE_HOUSEHOLD_VISITS})  # = a run without cache
    assert after != before  # and the move did change the numbers


def _move(instance: dict[str, Any], contact: str, to: str) -> None:
    """Move a CHW's person doc under another CHU, as CHT's admin app does."""
    couch = instance["front"].couch
    db = instance["db"]
    doc = couch.get(db, contact)
    place = couch.get(db, to)
    assert doc is not None and place is not None
    doc["parent"] = d.minify(place)
    couch.session().put(f"{couch.url}/{db}/{contact}", json=doc, timeout=30).raise_for_status()


def test_coverage_expects_only_the_users_who_write_target_docs(instance, couch):
    """An online supervisor with a contact at a CHU writes no target docs: counting them
    would understate coverage (and, with a threshold, hold the CHU back for good)."""
    front: ChtApiFront = instance["front"]
    db = instance["db"]
    chu = couch.get(db, "chu-1")
    assert chu is not None
    supervisor = d.person("supervisor-1", "Supervisor 1", parent=chu)
    couch.bulk(db, [supervisor])
    front.create_user(
        username="supervisor1",
        password="Supervisor-Pa55word",
        roles=["dhis2_integration"],  # configured online
        place="chu-1",
        contact="supervisor-1",
        replace=True,
    )
    settings = ChtSettings(
        url=front.url, db=db, username=INTEGRATION_USER, password=INTEGRATION_PASSWORD
    )
    computed = compute(
        RunRequest(periods=[Period.parse(MONTH)], data_sets=[dep.DS_MONTHLY]),
        RuntimeConfig(cht=settings),
    )
    (job,) = computed.jobs
    chws = len(instance["deployment"].users)
    expected, synced = job.users
    # every CHW, the one whose user-settings doc has a deleted losing branch included
    assert expected == chws
    assert synced == expected - len(instance["deployment"].never_synced)
    assert job.users_not_expected == 1  # the supervisor, named apart in the report
    (chu1,) = [c for c in job.coverage if c.orgUnit == dep.OU_CHU[0]]
    assert "supervisor1" not in chu1.missing
