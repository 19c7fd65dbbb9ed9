"""``python -m mediator explain`` against pouchdb-server (and the DHIS2 stand-in): on a
deployment with two levels of org units, conflicted docs, a deleted CHW, a percent
target and a quarter, for randomly chosen cells the contributions ``explain --json``
lists sum to what ``preview`` gives the cell, and list exactly the docs found here
independently, from CouchDB's winning revisions; every doc that did not count says why.
Bad input is one line and exit 2."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import requests

from devstack import cht_docs as d
from devstack import deployment as dep
from devstack.net import ServerThread
from mediator.cli.commands import main
from mediator.service.app import create_app

MONTHS = ["2024-01", "2024-02", "2024-03"]
QUARTER = "2024Q1"
CELLS = [  # data element, category option combo, the targets that feed it
    (dep.DE_BIRTHS, None, ["births-this-month"]),
    (dep.DE_FACILITY_DELIVERIES, None, ["facility-deliveries"]),  # sent as a percent
    (dep.DE_ANC_VISITS, dep.COC_UNDER_20, ["anc-visits-under-20"]),
    (dep.DE_ANC_VISITS, dep.COC_20_PLUS, ["anc-visits-20-plus"]),
]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def quarter(couch, monkeypatch):
    """The demo deployment over a quarter, with CouchDB conflicts (a CHW's person, a
    CHU, a target doc whose losing revision holds other numbers), and one CHW's person
    deleted, their target docs left behind."""
    deployment = dep.build(MONTHS, seed=11)
    db = f"medic-explain-{id(deployment)}"
    couch.create_db(db)
    couch.bulk(db, deployment.docs)
    dep.seed_conflicts(couch, db, deployment)
    doc = couch.get(
        db, next(x["_id"] for x in deployment.docs if x["_id"].startswith("target~2024-02"))
    )
    assert doc is not None
    loser = {**doc, "targets": [d.target("births-this-month", 99)]}
    couch.write_revisions(db, d.conflict(doc, loser, base_rev=doc["_rev"]).docs)
    gone = deployment.chw_contacts[deployment.users[5]]
    person = couch.get(db, gone)
    assert person is not None
    session = couch.session()
    session.delete(f"{couch.url}/{db}/{gone}", params={"rev": person["_rev"]}).raise_for_status()
    for key, value in {
        "CHT_URL": couch.url,
        "CHT_DB": db,
        "CHT_USERNAME": couch.username,
        "CHT_PASSWORD": couch.password,
        "MEDIATOR_VALUE_CHOICES": "facility-deliveries=percent",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DHIS2_URL", raising=False)
    return couch, db, gone


def winners(couch, db: str) -> dict[str, dict[str, Any]]:
    """Every live doc, at CouchDB's winning revision."""
    rows = couch.session().get(f"{couch.url}/{db}/_all_docs", params={"include_docs": "true"})
    return {r["id"]: r["doc"] for r in rows.json()["rows"] if not r["id"].startswith("_design")}


def counting(docs: dict[str, dict[str, Any]], ou: str, targets: list[str]) -> set[str]:
    """The target docs of the quarter that count at ``ou`` for these targets, by CHT's
    rules: the owner is a contact CHT has, whose lineage (itself, then its parents)
    reaches a place carrying ``ou``, and the doc holds one of the targets."""
    carriers = {i for i, x in docs.items() if (x.get("dhis") or {}).get("orgUnit") == ou}
    found = set()
    for ident, doc in docs.items():
        if doc.get("type") != "target" or ident.split("~")[1] not in MONTHS:
            continue
        owner = docs.get(doc.get("owner", ""))
        if owner is None:
            continue
        lineage, parent = {owner["_id"]}, owner.get("parent")
        while parent:
            lineage.add(parent["_id"])
            parent = parent.get("parent")
        if lineage & carriers and any(t["id"] in targets for t in doc["targets"]):
            found.add(ident)
    return found


def test_contributions_sum_to_previews_value_and_are_exactly_the_docs_that_count(quarter, capsys):
    couch, db, gone = quarter
    code, out, err = cli(capsys, "preview", "--period", QUARTER, "--data-set", dep.DS_MONTHLY)
    assert code == 0, err
    (shown,) = json.loads(out)
    previewed = {
        (v["orgUnit"], v["dataElement"], v.get("categoryOptionCombo")): v["value"]
        for v in shown["dataValues"]
    }
    docs = winners(couch, db)
    rng = random.Random(21)
    units = [dep.OU_DISTRICT, *dep.OU_CHU[:4]]
    picked = [(rng.choice(units), *rng.choice(CELLS)) for _ in range(5)]
    picked += [(dep.OU_DISTRICT, *CELLS[1]), (dep.OU_CHU[0], *CELLS[0])]
    for ou, element, coc, targets in picked:
        args = ["--period", QUARTER, "--data-set", dep.DS_MONTHLY, "--org-unit", ou]
        args += ["--data-element", element, "--json"]
        args += ["--category-option-combo", coc] if coc else []
        code, out, err = cli(capsys, "explain", *args)
        assert code == 0, err
        found = json.loads(out)
        assert found["months"] == MONTHS
        (row,) = found["rows"]
        value = previewed.get((ou, element, coc or (row["category_option_combo"])), 0)
        value = previewed.get((ou, element, row["category_option_combo"]), value)
        assert row["computed"] == value
        added = [a for c in found["contributions"] for a in c["added"]]
        if element == dep.DE_FACILITY_DELIVERIES:
            passed, total = sum(a["pass"] for a in added), sum(a["total"] for a in added)
            assert (row["summed"]["pass"], row["summed"]["total"]) == (passed, total)
            assert value == (round(passed * 100 / total) if total else 0)
        else:
            assert sum(a["value"] for a in added) == value
        places = {p["id"] for p in found["places"]}  # the carrier and what is under it
        assert ("district-1" in places) == (ou == dep.OU_DISTRICT)
        assert places >= {c["place_id"] for c in found["contributions"]}
        listed = {c["doc_id"] for c in found["contributions"]}
        assert listed == counting(docs, ou, targets), (ou, element)
        for c in found["contributions"]:  # the revision counted is CouchDB's winner
            assert c["rev"] == docs[c["doc_id"]]["_rev"]
        unplaced = {c["contact_id"]: c["reason"] for c in found["unplaced"]}
        assert unplaced and set(unplaced) == {gone}
        assert set(unplaced.values()) == {"owner_deleted"}


def test_the_conflicted_doc_names_its_losing_revision_and_the_silent_chw_is_missing(
    quarter, capsys
):
    del quarter  # the deployment, in the environment
    args = ["--period", "2024-02", "--data-set", dep.DS_MONTHLY, "--org-unit", dep.OU_DISTRICT]
    code, out, _ = cli(capsys, "explain", *args, "--data-element", dep.DE_BIRTHS, "--json")
    assert code == 0
    found = json.loads(out)
    conflicted = [c for c in found["contributions"] if c["conflicts"]]
    assert conflicted, "the target doc with two leaves"
    for c in conflicted:
        assert c["targets"]["births-this-month"]["total"] != 99  # the winner's numbers
    assert found["missing_users"]  # the CHW who never synced
    top, *under = found["places"]
    assert (top["id"], top["name"], top["carries_org_unit"]) == (
        "district-1",
        "Kisumu District",
        True,
    )
    assert top["contributing_chws"] == len({c["contact_id"] for c in found["contributions"]})
    assert {p["id"] for p in under} == {"chu-1", "chu-2", "chu-3", "chu-4"}
    code, out, _ = cli(capsys, "explain", *args, "--data-element", dep.DE_BIRTHS, "--summary")
    assert code == 0
    assert "Contributing CHWs:" in out and "its owner (the CHW's contact) was deleted" in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--data-set", "NoSuchSet01", "--period", "2024-01"], "NoSuchSet01"),
        (["--data-set", dep.DS_MONTHLY, "--period", "2024-13"], "month 13"),
        (
            ["--data-set", dep.DS_MONTHLY, "--period", "2024-01", "--org-unit", "NoSuchOU001"],
            "NoSuchOU001",
        ),
        (
            ["--data-set", dep.DS_MONTHLY, "--period", "2024-01", "--data-element", "NoSuchDE001"],
            "NoSuchDE001",
        ),
        (["--data-set", dep.DS_MONTHLY, "--from", "2000-01", "--to", "2024-01"], "one period"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(quarter, capsys, args, words):
    full = {"--org-unit": dep.OU_CHU[0], "--data-element": dep.DE_BIRTHS}
    for flag, value in full.items():
        if flag not in args:
            args = [*args, flag, value]
    code, out, err = cli(capsys, "explain", *args)
    assert code == 2
    assert out == ""
    lines = [line for line in err.splitlines() if "weak secret" not in line]
    assert len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in err


AUTH = ("openhim-route", "Route-Pa55word-long")


def test_explain_page_is_protected_shows_every_doc_and_refuses_bad_input_in_one_line(
    couch, cht_db, stack, capsys
):
    d2, env = stack
    code, out, err = cli(
        capsys,
        "explain",
        "--data-set",
        dep.DS_MONTHLY,
        "--period",
        "2024-01",
        "--org-unit",
        dep.OU_CHU[0],
        "--data-element",
        dep.DE_BIRTHS,
        "--json",
    )
    assert code == 0, err
    cell = json.loads(out)
    assert cell["dhis2_read"] is True, cell["dhis2_note"]
    assert cell["rows"][0]["state"] == "only_computed"  # DHIS2 holds nothing yet
    app = create_app(env=env, push_auth=AUTH)
    with ServerThread(app) as server:
        url = f"{server.url}/explain"
        query = {"dataSet": dep.DS_MONTHLY, "period": "2024-01", "orgUnit": dep.OU_CHU[0]}
        assert requests.get(url, params=query, timeout=30).status_code == 401
        page = requests.get(url, params=query, auth=AUTH, timeout=60)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert (
            "<script" not in page.text
            and "default-src 'none'" in page.headers["Content-Security-Policy"]
        )
        for doc in cell["contributions"]:  # every element: births among them, doc by doc
            assert f'data-doc-id="{doc["doc_id"]}"' in page.text
            assert doc["username"] in page.text
        answer = requests.get(
            url,
            params={**query, "dataElement": dep.DE_BIRTHS, "format": "json"},
            auth=AUTH,
            timeout=60,
        )
        assert answer.status_code == 200
        assert answer.json()["contributions"] == cell["contributions"]
        assert answer.json()["rows"] == cell["rows"]
        for bad in (
            {"dataSet": "NoSuchSet01"},
            {"period": "2024-13"},
            {"orgUnit": "NoSuchOU001"},
            {"dataElement": "NoSuchDE001"},
            {"period": None, "from": "2000-01", "to": "2024-01"},
            {"format": "xml"},
        ):
            asked = {k: v for k, v in {**query, **bad}.items() if v is not None}
            refused = requests.get(url, params=asked, auth=AUTH, timeout=60)
            assert refused.status_code == 400, (bad, refused.text)
            error = refused.json()["error"]
            assert "\n" not in error and "Traceback" not in error
    assert not d2.store.values()  # nothing posted: explain reads only
