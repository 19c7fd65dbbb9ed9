"""CHT's API front (devstack/cht_api.py) answers as CHT 5.2 + CouchDB 3 do, per user type.

Users: pouchdb-server's admin (a CouchDB admin), the online non-admin integration user and
an offline CHW (both made through CHT's users API), and a user made by hand in CouchDB.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from devstack import cht_docs as d
from devstack import deployment as dep
from devstack.cht_api import (
    FIREWALL_ERROR,
    INTEGRATION_PASSWORD,
    INTEGRATION_USER,
    ChtApiError,
    ChtApiFront,
    password_score,
)
from devstack.couchdb import CouchServer
from tests.cht_fixtures import ORACLE, ChtExportError, cht_export

MONTH = "2024-01"
HAND_USER, HAND_PASSWORD = "hand-made", "Hand-made-Pa55"
_dbs = itertools.count(1)


@dataclass
class Deployment:
    db: str
    dep: dep.Deployment
    users: dict[str, requests.Session]  # admin, online, offline, hand


def _deploy(couch: CouchServer, front: ChtApiFront) -> tuple[str, dep.Deployment]:
    db = f"medic-front-{next(_dbs)}"
    built = dep.build([MONTH])
    couch.create_db(db)
    couch.bulk(db, built.docs_without_users())
    for spec in built.user_specs():
        front.create_user(**spec, db=db, replace=True)
    return db, built


@pytest.fixture(scope="module")
def deployed(couch: CouchServer, cht_api: ChtApiFront) -> Iterator[Deployment]:
    db, built = _deploy(couch, cht_api)
    cht_api.couchdb_only_user(HAND_USER, HAND_PASSWORD)
    chw = built.user_specs()[0]
    users = {
        "admin": cht_api.login(couch.username, couch.password),
        "online": cht_api.login(INTEGRATION_USER, INTEGRATION_PASSWORD),
        "offline": cht_api.login(chw["username"], chw["password"]),
        "hand": cht_api.login(HAND_USER, HAND_PASSWORD),
    }
    yield Deployment(db, built, users)
    for session in users.values():
        session.close()


ONLINE = ("admin", "online")
OFFLINE = ("offline", "hand")
ALL = ONLINE + OFFLINE


def url(front: ChtApiFront, db: str, path: str = "") -> str:
    return f"{front.url}/{db}{path}"


# -- the 302 and the database info -------------------------------------------------------------


@pytest.mark.parametrize("who", [*ALL, "anonymous"])
def test_get_db_without_slash_is_a_302_for_every_user(who, cht_api, deployed):
    session = deployed.users.get(who) or requests.Session()
    res = session.get(url(cht_api, deployed.db), allow_redirects=False, timeout=30)
    assert res.status_code == 302
    assert res.headers["Location"] == f"/{deployed.db}/"


@pytest.mark.parametrize("who", ALL)
def test_database_info_is_for_online_users_only(who, cht_api, deployed):
    res = deployed.users[who].get(url(cht_api, deployed.db, "/"), timeout=30)
    if who in ONLINE:
        assert res.status_code == 200
        assert res.json()["db_name"] == deployed.db and res.json()["update_seq"]
    else:
        assert res.status_code == 403
        assert res.json() == FIREWALL_ERROR


def test_wrong_password_is_401_and_no_credentials_is_chts_500(cht_api, deployed):
    json_only = {"Accept": "application/json"}
    wrong = requests.get(
        url(cht_api, deployed.db, "/"),
        auth=(INTEGRATION_USER, "Not-the-Pa55"),
        headers=json_only,
        timeout=30,
    )
    assert wrong.status_code == 401 and wrong.json() == {"code": 401, "error": "unauthorized"}
    text = requests.get(url(cht_api, deployed.db, "/"), auth=(INTEGRATION_USER, "x"), timeout=30)
    assert text.status_code == 401 and text.text == "not logged in"
    assert text.headers["WWW-Authenticate"] == 'Basic realm="Medic Web Services"'
    nobody = requests.get(url(cht_api, deployed.db, "/"), headers=json_only, timeout=30)
    assert nobody.status_code == 500 and nobody.json() == {"code": 500, "error": "Server error"}


def test_a_database_that_does_not_exist_is_couchdbs_404(cht_api, deployed):
    res = deployed.users["online"].get(url(cht_api, "medic-none", "/"), timeout=30)
    assert res.status_code == 404 and res.json()["error"] == "not_found"


def test_an_online_user_whose_roles_are_not_members_is_refused(couch, cht_api, deployed):
    db = f"medic-front-{next(_dbs)}"
    couch.create_db(db, member_roles=["chw"])  # the integration role not configured there
    res = deployed.users["online"].get(url(cht_api, db, "/"), timeout=30)
    assert res.status_code == 403
    assert res.json() == {"error": "forbidden", "reason": "You are not allowed to access this db."}


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ALL)
def test_the_settings_doc_and_api_settings_are_for_everyone(who, cht_api, deployed):
    doc = deployed.users[who].get(url(cht_api, deployed.db, "/settings"), timeout=30)
    assert doc.status_code == 200
    assert doc.json()["settings"]["dhis_data_sets"][0]["id"] == dep.DS_MONTHLY
    api = deployed.users[who].get(f"{cht_api.url}/api/v1/settings", timeout=30)
    assert api.status_code == 200 and api.json()["roles"] == d.CHT_ROLES


# -- the view ----------------------------------------------------------------------------------


VIEW = "/_design/medic-admin/_view/contacts_by_dhis_orgunit"


@pytest.mark.parametrize("who", ALL)
def test_the_org_unit_view_is_for_online_users_only(who, cht_api, deployed):
    res = deployed.users[who].get(
        url(cht_api, deployed.db, VIEW), params={"key": f'"{dep.OU_CHU[0]}"'}, timeout=30
    )
    if who in ONLINE:
        assert res.status_code == 200
        assert [r["id"] for r in res.json()["rows"]] == ["chu-1"]
    else:
        assert res.status_code == 403 and res.json() == FIREWALL_ERROR


def test_the_view_is_chts_own_map_null_entries_and_missing_org_units(couch, cht_api, deployed):
    """CHT's map throws on a ``null`` in a ``dhis`` array (the doc is not indexed, even for the
    entries before it) and emits a ``null`` key for a ``dhis`` without ``orgUnit``."""
    db = f"medic-front-{next(_dbs)}"
    couch.create_db(db)
    couch.bulk(
        db,
        [
            d.medic_admin_ddoc(),
            {"_id": "null-last", "type": "contact", "dhis": [{"orgUnit": "A"}, None]},
            {"_id": "null-first", "type": "contact", "dhis": [None, {"orgUnit": "B"}]},
            {"_id": "no-ou", "type": "clinic", "dhis": {"dataSet": "ds"}},
            {"_id": "mixed", "type": "contact", "dhis": [{"orgUnit": "C"}, {"dataSet": "ds"}]},
            {"_id": "empty", "type": "contact", "dhis": []},
            {"_id": "report", "type": "data_record", "dhis": {"orgUnit": "D"}},
            {"_id": "hc", "type": "health_center", "dhis": {"orgUnit": "E"}},
        ],
    )
    rows = deployed.users["online"].get(url(cht_api, db, VIEW), timeout=30).json()["rows"]
    assert [(r["key"], r["id"]) for r in rows] == [
        (None, "mixed"),
        (None, "no-ou"),
        ("C", "mixed"),
        ("E", "hc"),
    ]
    assert d.medic_admin_ddoc()["views"]["contacts_by_dhis_orgunit"]["map"].startswith(
        "function(doc) {\n  if (\n    doc.dhis &&\n"
    )


# -- _all_docs, _bulk_get, _changes, _revs_diff ------------------------------------------------


def _targets(deployed: Deployment, who: str, front: ChtApiFront) -> list[str]:
    res = deployed.users[who].get(
        url(front, deployed.db, "/_all_docs"),
        params={"startkey": f'"target~{MONTH}~"', "endkey": f'"target~{MONTH}~\ufff0"'},
        timeout=30,
    )
    assert res.status_code == 200
    return [r["id"] for r in res.json()["rows"] if "id" in r]


@pytest.mark.parametrize("who", ALL)
def test_all_docs_range_is_filtered_to_default_docs_for_offline_users(who, cht_api, deployed):
    ids = _targets(deployed, who, cht_api)
    synced = len(deployed.dep.users) - len(deployed.dep.never_synced)
    if who in ONLINE:
        assert len(ids) == synced and all(i.startswith(f"target~{MONTH}~") for i in ids)
    else:
        # range and limit ignored: the default docs that exist, whatever was asked
        name = deployed.users[who].auth[0]  # type: ignore[index]
        expected = ["settings"] + ([f"org.couchdb.user:{name}"] if who == "offline" else [])
        assert ids == expected


@pytest.mark.parametrize("who", ALL)
def test_all_docs_keys_are_ignored_for_offline_users(who, cht_api, deployed):
    keys = ["chw-1-1", "chu-2", "settings"]
    res = deployed.users[who].post(
        url(cht_api, deployed.db, "/_all_docs"), json={"keys": keys}, timeout=30
    )
    assert res.status_code == 200
    got = [r["key"] for r in res.json()["rows"]]
    if who in ONLINE:
        assert got == keys
    else:
        assert "chw-1-1" not in got and "chu-2" not in got and "settings" in got


@pytest.mark.parametrize("who", ALL)
def test_bulk_get_is_filtered_to_what_an_offline_user_replicates(who, cht_api, deployed):
    own = deployed.dep.users[0]  # the offline CHW: chw11 at chu-1
    other = deployed.dep.users[4]  # a CHW of chu-2
    ids = [
        "chw-1-1",  # the CHW's own contact
        "hh-1-2",  # a household under the CHW's CHU
        f"target~{MONTH}~chw-1-2~org.couchdb.user:chw12",  # a colleague's target doc
        "chu-2",  # another CHU
        deployed.dep.chw_contacts[other],
        f"org.couchdb.user:{own}",
        f"org.couchdb.user:{other}",
        "settings",
        "no-such-doc",
    ]
    res = deployed.users[who].post(
        url(cht_api, deployed.db, "/_bulk_get"), json={"docs": [{"id": i} for i in ids]}, timeout=30
    )
    assert res.status_code == 200
    results = {r["id"]: r["docs"] for r in res.json()["results"]}
    if who in ONLINE:
        assert list(results) == ids
        assert results["no-such-doc"] == [
            {
                "error": {
                    "id": "no-such-doc",
                    "rev": "undefined",
                    "error": "not_found",
                    "reason": "missing",
                }
            }
        ]
    elif who == "offline":
        assert list(results) == [ids[0], ids[1], ids[2], ids[5], "settings"]
    else:  # no place, no user-settings: only what everyone replicates
        assert list(results) == ["settings"]


@pytest.mark.parametrize("who", ALL)
def test_changes_filtered_by_doc_ids_is_ignored_for_offline_users(who, cht_api, deployed):
    res = deployed.users[who].post(
        url(cht_api, deployed.db, "/_changes"),
        params={"filter": "_doc_ids", "since": "0"},
        json={"doc_ids": ["chw-1-1", "chu-2"]},
        timeout=30,
    )
    assert res.status_code == 200
    ids = sorted(r["id"] for r in res.json()["results"])
    if who in ONLINE:
        assert ids == ["chu-2", "chw-1-1"]
    else:
        name = deployed.users[who].auth[0]  # type: ignore[index]
        assert ids == sorted(["settings"] + ([f"org.couchdb.user:{name}"] * (who == "offline")))
    assert "last_seq" in res.json()


@pytest.mark.parametrize("who", ALL)
def test_revs_diff_is_proxied_for_members(who, cht_api, deployed):
    rev = deployed.users["admin"].get(url(cht_api, deployed.db, "/chw-1-1"), timeout=30).json()
    res = deployed.users[who].post(
        url(cht_api, deployed.db, "/_revs_diff"),
        json={"chw-1-1": [rev["_rev"], "9-gone"]},
        timeout=30,
    )
    if who == "hand":  # not a member of medic since 4.4
        assert res.status_code == 403 and res.json()["error"] == "forbidden"
    else:
        assert res.json() == {"chw-1-1": {"missing": ["9-gone"]}}


@pytest.mark.parametrize("who", ALL)
def test_session_answers_each_users_roles(who, cht_api, deployed):
    ctx = deployed.users[who].get(f"{cht_api.url}/_session", timeout=30).json()["userCtx"]
    online = "mm-online" in ctx["roles"] or "_admin" in ctx["roles"]
    assert online == (who in ONLINE)


@pytest.mark.parametrize("who", OFFLINE)
def test_offline_users_read_only_docs_they_replicate(who, cht_api, deployed):
    mine = deployed.users[who].get(url(cht_api, deployed.db, "/chw-1-1"), timeout=30)
    assert mine.status_code == (200 if who == "offline" else 403)
    other = deployed.users[who].get(url(cht_api, deployed.db, "/chu-2"), timeout=30)
    assert other.status_code == 403
    assert other.json() == {"error": "forbidden", "reason": "Insufficient privileges"}


def test_offline_users_cannot_write_and_online_need_can_edit(cht_api, deployed):
    doc = {"_id": "note-1", "type": "note"}
    for who in ("offline", "online"):
        res = deployed.users[who].post(url(cht_api, deployed.db, "/"), json=doc, timeout=30)
        assert res.status_code == 403
    res = deployed.users["admin"].post(url(cht_api, deployed.db, "/"), json=doc, timeout=30)
    assert res.status_code == 201


# -- CouchDB 3's _bulk_get on conflicted docs --------------------------------------------------


@pytest.fixture(scope="module")
def conflicted(couch: CouchServer, cht_api: ChtApiFront) -> tuple[str, dep.Conflicts]:
    db, built = _deploy(couch, cht_api)
    return db, dep.seed_conflicts(couch, db, built)


def test_conflicts_are_seeded_with_the_intended_winner_and_loser(couch, conflicted):
    db, info = conflicted
    assert set(info.revs) == {"chw-1-1", "chu-3", f"org.couchdb.user:{info.deleted_user}"}
    for ident, (winner, loser) in info.revs.items():
        assert couch.get(db, ident)["_rev"] == winner  # CouchDB's (and PouchDB's) winner
        assert {leaf["_rev"] for leaf in couch.leaves(db, ident)} == {winner, loser}
    leaves = {leaf["_rev"]: leaf for leaf in couch.leaves(db, "chw-1-1")}
    winner, loser = info.revs["chw-1-1"]
    assert leaves[winner]["parent"]["_id"] == "chu-1"
    assert leaves[loser]["parent"]["_id"] != "chu-1"
    place_loser = info.revs["chu-3"][1]
    assert couch.get(db, "chu-3")["dhis"] == {"orgUnit": dep.OU_CHU[2]}
    assert {leaf["_rev"]: leaf["dhis"] for leaf in couch.leaves(db, "chu-3")}[place_loser] == {
        "orgUnit": dep.OU_CHU[3]
    }
    settings_loser = info.revs[f"org.couchdb.user:{info.deleted_user}"][1]
    deleted = [leaf for leaf in couch.leaves(db, f"org.couchdb.user:{info.deleted_user}")]
    assert [leaf["_rev"] for leaf in deleted if leaf.get("_deleted")] == [settings_loser]


def test_bulk_get_without_rev_answers_every_leaf_the_loser_first(cht_api, conflicted):
    db, info = conflicted
    online = cht_api.login(INTEGRATION_USER, INTEGRATION_PASSWORD)
    res = online.post(
        url(cht_api, db, "/_bulk_get"), json={"docs": [{"id": i} for i in info.revs]}, timeout=30
    )
    for result in res.json()["results"]:
        winner, loser = info.revs[result["id"]]
        assert [doc["ok"]["_rev"] for doc in result["docs"]] == [loser, winner]
        assert all("_revisions" not in doc["ok"] for doc in result["docs"])
    first = {r["id"]: r["docs"][0]["ok"] for r in res.json()["results"]}
    assert first["chw-1-1"]["parent"]["_id"] != "chu-1"  # a first-entry reader moves the CHW
    assert first["chu-3"]["dhis"] == {"orgUnit": dep.OU_CHU[3]}
    assert first[f"org.couchdb.user:{info.deleted_user}"]["_deleted"] is True
    # what CHT's export reads: the winners
    rows = online.post(
        url(cht_api, db, "/_all_docs"),
        params={"include_docs": "true"},
        json={"keys": list(info.revs)},
        timeout=30,
    ).json()["rows"]
    assert [r["doc"]["_rev"] for r in rows] == [w for w, _ in info.revs.values()]


def test_bulk_get_with_revs_and_explicit_revs(cht_api, conflicted):
    db, info = conflicted
    winner = info.revs["chw-1-1"][0]
    online = cht_api.login(INTEGRATION_USER, INTEGRATION_PASSWORD)
    res = online.post(
        url(cht_api, db, "/_bulk_get"),
        params={"revs": "true"},
        json={"docs": [{"id": "chw-1-1", "rev": winner}, {"id": "chw-1-1", "rev": "9-gone"}]},
        timeout=30,
    ).json()["results"]
    assert res[0]["docs"][0]["ok"]["_revisions"]["start"] == 2
    assert res[1]["docs"] == [
        {"error": {"id": "chw-1-1", "rev": "9-gone", "error": "not_found", "reason": "missing"}}
    ]
    bad = online.post(url(cht_api, db, "/_bulk_get"), params={"rev": "1"}, json={"docs": []})
    assert bad.status_code == 400


def test_bulk_get_switched_off_answers_pouchdb_servers_winner_only(couch, conflicted):
    db, info = conflicted
    with ChtApiFront(couch, couch3_bulk_get=False) as front:
        res = front.login(INTEGRATION_USER, INTEGRATION_PASSWORD).post(
            url(front, db, "/_bulk_get"), json={"docs": [{"id": "chw-1-1"}]}, timeout=30
        )
    assert [doc["ok"]["_rev"] for doc in res.json()["results"][0]["docs"]] == [
        info.revs["chw-1-1"][0]
    ]


# -- CHT's users API ---------------------------------------------------------------------------


def _post_user(front: ChtApiFront, session: requests.Session, body: Any) -> requests.Response:
    return session.post(f"{front.url}/api/v1/users", json=body, timeout=30)


def test_users_api_makes_an_online_user_with_mm_online(couch, cht_api, deployed):
    admin = deployed.users["admin"]
    body = {
        "username": "integration-2",
        "password": "Integration-Pa55",
        "roles": ["dhis2_integration"],
    }
    cht_api._forget_user("integration-2", cht_api.db)
    res = _post_user(cht_api, admin, body)
    assert res.status_code == 200, res.text
    assert set(res.json()) == {"user", "user-settings"}
    user = couch.session().get(f"{couch.url}/_users/org.couchdb.user:integration-2").json()
    assert user["roles"] == ["dhis2_integration", "mm-online"] and user["type"] == "user"
    assert "password" not in user  # CouchDB hashed it
    settings = couch.get(cht_api.db, "org.couchdb.user:integration-2")
    assert settings is not None
    assert {k: settings[k] for k in ("name", "type", "roles")} == {
        "name": "integration-2",
        "type": "user-settings",
        "roles": ["dhis2_integration", "mm-online"],
    }
    session = cht_api.login("integration-2", "Integration-Pa55")
    assert session.get(url(cht_api, deployed.db, "/"), timeout=30).status_code == 200


def test_users_api_makes_an_offline_chw_without_mm_online(couch, cht_api, deployed):
    settings = couch.get(deployed.db, f"org.couchdb.user:{deployed.dep.users[0]}")
    assert settings is not None
    assert settings["roles"] == ["chw"]
    assert settings["facility_id"] == ["chu-1"] and settings["contact_id"] == "chw-1-1"
    user = couch.session().get(f"{couch.url}/_users/org.couchdb.user:{deployed.dep.users[0]}")
    assert user.json()["roles"] == ["chw"] and user.json()["facility_id"] == ["chu-1"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"username": "x1", "roles": ["chw"]}, "Missing required fields: password, place, contact"),
        ({"username": "x1", "password": "Sh0rt!"}, "Missing required fields: type or roles"),
        (
            {"username": "x1", "password": "Sh0rt!", "roles": ["dhis2_integration"]},
            "The password must be at least 8 characters long.",
        ),
        (
            {"username": "x1", "password": "aaaaaaaaaa", "roles": ["dhis2_integration"]},
            "The password is too easy to guess.",
        ),
        (
            {"username": "X 1", "password": "Integration-Pa55", "roles": ["dhis2_integration"]},
            "Invalid user name.",
        ),
        (
            {"username": "chw11", "password": "Integration-Pa55", "roles": ["dhis2_integration"]},
            'Username "chw11" already taken.',
        ),
    ],
)
def test_users_api_refuses_what_cht_refuses(body, message, cht_api, deployed):
    res = _post_user(cht_api, deployed.users["admin"], body)
    assert res.status_code == 400
    assert res.json()["error"]["message"].startswith(message)


def test_users_api_checks_the_contact_is_within_the_place(cht_api, deployed):
    with pytest.raises(ChtApiError, match="Contact is not within place"):
        cht_api.create_user(
            "misplaced",
            "Misplaced-Pa55",
            ["chw"],
            place="chu-1",
            contact="chw-2-1",
            db=deployed.db,
            replace=True,
        )


def test_users_api_is_for_admins_and_user_managers(cht_api, deployed):
    body = {"username": "x2", "password": "Integration-Pa55", "roles": ["dhis2_integration"]}
    for who in ("online", "offline"):
        res = _post_user(cht_api, deployed.users[who], body)
        assert res.status_code == 403
        assert res.json() == {"code": 403, "error": "Insufficient privileges"}


def test_password_score_is_simple_password_testers():
    # simple-password-tester 1.0.0: length + 2 x distinct + 15 x (classes - 1)
    assert password_score("aaaaaaaa") == 8 + 2
    assert password_score("Integration-Pa55") == 16 + 2 * 12 + 15 * 3
    assert password_score("") == 0 + 0 - 15


# -- CHT's own export (the oracle) on a conflicted deployment -------------------------------


def test_chts_export_reads_winners_so_conflicts_leave_its_numbers_alone(
    couch, deployed, conflicted
):
    if not ORACLE.exists():
        pytest.skip(f"CHT's export oracle is not installed at {ORACLE}")
    clean = cht_export(couch, deployed.db, dep.DS_MONTHLY, MONTH)
    db = conflicted[0]
    with_conflicts = cht_export(couch, db, dep.DS_MONTHLY, MONTH)
    assert with_conflicts["dataValues"] == clean["dataValues"]
    assert with_conflicts["period"] == MONTH.replace("-", "")
    units = {v["orgUnit"] for v in with_conflicts["dataValues"]}
    assert dep.OU_CHU[2] in units  # chu-3's winning org unit
    with pytest.raises(ChtExportError, match='dataSet "nope" is not defined'):
        cht_export(couch, db, "nope", MONTH)
