"""CHT faults over real HTTP: pouchdb-server, with a fault proxy in front of it.

Promise: a CHT read that fails (down, 401, settings or view missing, a page
that fails or is cut mid-way, an answer of the wrong shape) is retried where a
retry can help and otherwise fails the run or the data set with a clear
reason, and **no partial totals are ever pushed**: DHIS2 gets no POST at all.
Docs of the wrong shape or type, a lineage loop and a 5 MB doc are skipped or
read, counted by reason, and leave the totals exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devstack import deployment as dep
from devstack.faultproxy import FaultProxy, Rule
from devstack.net import free_port
from mediator.openhim.envelope import BODY_LIMIT, run_envelope

from .helpers import PERIOD, config, couch_config, held, new_db, push

POSTS = "/api/dataValueSets"
TARGETS = r"/_all_docs$"


@pytest.fixture(scope="module")
def _proxy(couch) -> Iterator[FaultProxy]:
    with FaultProxy(couch.url) as p:
        yield p


@pytest.fixture
def proxy(_proxy: FaultProxy) -> FaultProxy:
    _proxy.clear()
    _proxy.log.clear()
    return _proxy


def via(proxy: FaultProxy, couch, db: str, d2, **kw):
    cfg = config(proxy.url, db, d2.url, cht_user=couch.username, cht_password=couch.password, **kw)
    cfg.cht.page_size = 4  # the month's 11 target docs come in 3 pages
    return cfg


def no_push(d2) -> bool:
    return d2.store.posts(POSTS) == [] and held(d2) == {}


def cht_error(report) -> str:
    messages = [f.message for f in report.findings if f.level == "error"]
    messages += [r.error or "" for r in report.results if r.status == "error"]
    return " | ".join(messages)


def test_cht_down_fails_the_run_and_pushes_nothing(couch, base_db, d2):
    cfg = config(f"http://127.0.0.1:{free_port()}", base_db, d2.url)
    report = push(cfg)
    assert report.status == "Failed"
    assert "unreachable" in cht_error(report) and "after 3 attempt(s)" in cht_error(report)
    assert no_push(d2)


def test_cht_401_names_the_user_not_the_password_and_pushes_nothing(couch, base_db, d2):
    cfg = config(couch.url, base_db, d2.url, cht_user=couch.username, cht_password="Wr0ng-pw!")
    report = push(cfg)
    assert report.status == "Failed"
    error = cht_error(report)
    assert f"refused the credentials of user {couch.username}" in error
    assert "Wr0ng-pw!" not in report.model_dump_json()
    assert no_push(d2)


def test_settings_doc_missing_is_a_clear_error_and_pushes_nothing(couch, d2):
    db = new_db(couch)
    s = couch.session()
    rev = s.get(f"{couch.url}/{db}/settings").json()["_rev"]
    s.delete(f"{couch.url}/{db}/settings", params={"rev": rev}).raise_for_status()
    report = push(couch_config(couch, db, d2))
    assert report.status == "Failed"
    assert "has no readable app settings" in cht_error(report)
    assert no_push(d2)


def test_view_missing_is_a_clear_error_and_pushes_nothing(couch, d2):
    db = new_db(couch)
    s = couch.session()
    ddoc = f"{couch.url}/{db}/_design/medic-admin"
    rev = s.get(ddoc).json()["_rev"]
    s.delete(ddoc, params={"rev": rev}).raise_for_status()
    report = push(couch_config(couch, db, d2))
    assert report.status == "Failed"
    assert "has no medic-admin/contacts_by_dhis_orgunit view" in cht_error(report)
    assert no_push(d2)


def test_a_page_failing_once_is_retried_and_the_totals_are_exact(
    couch, base_db, computed, d2, proxy
):
    proxy.add(Rule("status", path=TARGETS, method="GET", query="target", skip=1, status=500))
    report = push(via(proxy, couch, base_db, d2))
    assert report.status == "Successful", report.model_dump_json(indent=1)
    assert [s.status for s in proxy.log if s.fault] == [500]
    assert held(d2) == computed


@pytest.mark.parametrize("kind", ["status", "truncate", "drop"])
def test_a_page_failing_mid_month_every_time_pushes_no_partial_totals(
    couch, base_db, d2, proxy, kind
):
    # page 1 of the month is read, then page 2 fails (500 / cut mid-body / no answer)
    proxy.add(Rule(kind, path=TARGETS, method="GET", query="target", skip=1, count=None))
    report = push(via(proxy, couch, base_db, d2))
    assert report.status == "Failed"
    assert all(r.status == "error" for r in report.results)
    assert all("totals would be partial" in (r.error or "") for r in report.results)
    assert len([s for s in proxy.log if s.fault]) == 3  # retried, within bounds
    assert no_push(d2)


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"rows": "none"}', b'{"rows": [1, 2]}', b'{"rows": [{"doc": {}}]}', b"<html>"],
)
def test_an_answer_of_the_wrong_shape_is_a_cht_error_never_a_crash(couch, base_db, d2, proxy, body):
    proxy.add(
        Rule(
            "rewrite",
            path=TARGETS,
            method="GET",
            query="target",
            count=None,
            rewrite=lambda _old: body,
        )
    )
    report = push(via(proxy, couch, base_db, d2))
    assert report.status == "Failed"
    assert "unexpected shape" in cht_error(report) or "not JSON" in cht_error(report)
    assert no_push(d2)


@pytest.fixture(scope="module")
def odd_db(couch) -> str:
    """The demo deployment plus docs of the wrong shape or type, a lineage loop
    and a 5 MB doc, all in January's target id range."""
    db = new_db(couch)
    loop_a = {"_id": "loop-a", "parent": {"_id": "loop-b", "parent": {"_id": "loop-a"}}}
    docs = [
        {**loop_a, "type": "health_center", "name": "Loop A", "dhis": {"orgUnit": "Lo0pAaaaaaa"}},
        {"_id": "loop-b", "type": "health_center", "parent": {"_id": "loop-a"}},
        {"_id": "chw-loop", "type": "person", "parent": loop_a},
        target("chw-loop", "loop", 7),
        {"_id": f"target~{PERIOD}~x~wrong-type", "type": "data_record", "targets": []},
        {"_id": f"target~{PERIOD}~x~no-targets", "type": "target", "owner": "chw-1-1"},
        {"_id": f"target~{PERIOD}~x~targets-str", "type": "target", "targets": "many"},
        {"_id": f"target~{PERIOD}~x~no-owner", "type": "target", "targets": []},
        {
            **target("chw-1-1", "string-value", 0),
            "targets": [{"id": "births-this-month", "value": {"pass": "5", "total": "x"}}],
        },
        {**target("chw-ghost", "huge", 3), "junk": "x" * (5 * 1024 * 1024)},
    ]
    res = couch.session().post(f"{couch.url}/{db}/_bulk_docs", json={"docs": docs}, timeout=120)
    res.raise_for_status()
    assert not [r for r in res.json() if r.get("error")]
    return db


def target(owner: str, user: str, births: int) -> dict:
    return {
        "_id": f"target~{PERIOD}~{owner}~org.couchdb.user:{user}",
        "type": "target",
        "owner": owner,
        "user": f"org.couchdb.user:{user}",
        "targets": [{"id": "births-this-month", "value": {"pass": births, "total": births}}],
    }


def test_odd_docs_a_lineage_loop_and_a_5mb_doc_are_counted_by_reason_totals_exact(
    couch, odd_db, computed, d2
):
    report = push(couch_config(couch, odd_db, d2))
    assert report.status == "Successful", report.model_dump_json(indent=1)
    assert held(d2) == computed  # none of the odd docs changed a number
    (monthly,) = [r for r in report.results if r.data_set == dep.DS_MONTHLY]
    skipped = monthly.skipped
    assert skipped.get("owner_lineage_loop") == 1
    assert skipped.get("doc_type_not_target") == 1
    assert skipped.get("doc_without_targets") == 2
    assert skipped.get("doc_without_owner") == 1
    assert skipped.get("owner_not_found") == 1  # the 5 MB doc: read, then skipped
    assert skipped.get("target_value_not_numeric") == 1
    # what ops see stays within the console's limits although a doc was 5 MB
    envelope = run_envelope(report, urn="urn:test", cht_url=couch.url)
    assert len(envelope["response"]["body"]) <= BODY_LIMIT
    assert len(json.dumps(envelope)) < 200_000
