"""HTTP edge cases of the CHT reader alone (the live-server tests cover the rest)."""

from __future__ import annotations

import json

import pytest
import responses

from mediator.cht.client import ChtError, ChtReader
from mediator.settings.config import ChtSettings

URL = "https://cht.example.org"


def reader() -> ChtReader:
    settings = ChtSettings(url=URL, username="mediator", password="S3cret-cht-pw")
    return ChtReader(settings, sleep=lambda _s: None)


@responses.activate
def test_settings_fall_back_to_the_api_when_the_doc_cannot_be_read():
    responses.get(f"{URL}/medic/settings", status=403, json={"error": "forbidden"})
    responses.get(f"{URL}/api/v1/settings", json={"dhis_data_sets": [{"id": "VMuFODsyWaO"}]})
    assert reader().app_settings() == {"dhis_data_sets": [{"id": "VMuFODsyWaO"}]}


@responses.activate
def test_settings_doc_is_preferred():
    responses.get(f"{URL}/medic/settings", json={"_id": "settings", "settings": {"a": 1}})
    assert reader().app_settings() == {"a": 1}
    assert len(responses.calls) == 1


@responses.activate
def test_missing_view_is_a_clear_error():
    responses.get(
        f"{URL}/medic/_design/medic-admin/_view/contacts_by_dhis_orgunit",
        status=404,
        json={"error": "not_found"},
    )
    with pytest.raises(ChtError, match="no medic-admin/contacts_by_dhis_orgunit view"):
        reader().places()


@responses.activate
def test_server_errors_are_retried_a_bounded_number_of_times():
    view = f"{URL}/medic/_design/medic-admin/_view/contacts_by_dhis_orgunit"
    responses.get(view, status=503)
    responses.get(view, status=502)
    responses.get(view, json={"rows": [{"id": "p", "doc": {"_id": "p", "dhis": {"orgUnit": "x"}}}]})
    assert [p["_id"] for p in reader().places()] == ["p"]
    assert len(responses.calls) == 3


@responses.activate
def test_persistent_server_errors_fail_without_leaking_the_password():
    responses.get(f"{URL}/medic/settings", status=500, body="boom")
    with pytest.raises(ChtError) as exc:
        reader().app_settings()
    assert "HTTP 500" in str(exc.value)
    assert "S3cret-cht-pw" not in str(exc.value)
    assert len(responses.calls) == 3


@responses.activate
def test_a_body_that_is_not_json_is_an_error():
    responses.get(f"{URL}/medic/settings", body="<html>proxy error</html>")
    with pytest.raises(ChtError, match="not JSON"):
        reader().app_settings()


def _bulk_get_answer(request):
    """CouchDB's _bulk_get answer: ``ok`` per found doc, ``error`` for missing or deleted."""
    out = []
    for ref in json.loads(request.body)["docs"]:
        ident = ref["id"]
        reason = {"gone": "missing", "deleted": "deleted"}.get(ident)
        entry: dict = {"ok": {"_id": ident, "_rev": "1-a"}}
        if reason:
            error = {"id": ident, "rev": "undefined", "error": "not_found", "reason": reason}
            entry = {"error": error}
        out.append({"id": ident, "docs": [entry]})
    return 200, {}, json.dumps({"results": out})


@responses.activate
def test_docs_by_id_uses_bulk_get_in_batches_and_maps_missing_or_deleted_to_none():
    responses.add_callback(responses.POST, f"{URL}/medic/_bulk_get", callback=_bulk_get_answer)
    settings = ChtSettings(url=URL, owner_batch=2)
    found = ChtReader(settings).docs_by_id(["a", "b", "gone", "deleted", "c"])
    assert found == {
        "a": {"_id": "a", "_rev": "1-a"},
        "b": {"_id": "b", "_rev": "1-a"},
        "gone": None,
        "deleted": None,
        "c": {"_id": "c", "_rev": "1-a"},
    }
    assert len(responses.calls) == 3


@responses.activate
@pytest.mark.parametrize("status", [400, 404, 405, 501])
def test_without_bulk_get_owners_are_read_with_all_docs_keys(status):
    """A server (or proxy) without _bulk_get: CHT's own export read, asked once only."""

    def rows(request):
        keys = json.loads(request.body)["keys"]
        out = [
            {"key": k, "error": "not_found"} if k == "gone" else {"key": k, "doc": {"_id": k}}
            for k in keys
        ]
        return 200, {}, json.dumps({"rows": out})

    responses.post(f"{URL}/medic/_bulk_get", status=status, json={"error": "not_found"})
    responses.add_callback(responses.POST, f"{URL}/medic/_all_docs", callback=rows)
    settings = ChtSettings(url=URL, owner_batch=2)
    found = ChtReader(settings).docs_by_id(["a", "b", "gone", "c"])
    assert found == {"a": {"_id": "a"}, "b": {"_id": "b"}, "gone": None, "c": {"_id": "c"}}
    paths = [c.request.url.split("?")[0].rsplit("/", 1)[1] for c in responses.calls]
    assert paths == ["_bulk_get", "_all_docs", "_all_docs"]


@responses.activate
def test_a_bulk_get_error_other_than_not_found_is_a_cht_error():
    responses.post(
        f"{URL}/medic/_bulk_get",
        json={
            "results": [
                {"id": "a", "docs": [{"error": {"id": "a", "error": "forbidden", "reason": "no"}}]}
            ]
        },
    )
    with pytest.raises(ChtError, match="could not read doc 'a': forbidden"):
        reader().docs_by_id(["a"])


@responses.activate
def test_a_bulk_get_answer_of_the_wrong_shape_is_a_cht_error():
    responses.post(f"{URL}/medic/_bulk_get", json={"rows": []})
    with pytest.raises(ChtError, match="unexpected shape"):
        reader().docs_by_id(["a"])


@responses.activate
def test_changed_since_names_the_changed_ids_and_the_next_sequence():
    def changes(request):
        assert request.params == {"filter": "_doc_ids", "since": "12-g1AAAA"}
        assert json.loads(request.body) == {"doc_ids": ["a", "b"]}
        return (
            200,
            {},
            json.dumps(
                {"results": [{"id": "b", "seq": "14-x", "changes": []}], "last_seq": "14-x"}
            ),
        )

    responses.add_callback(responses.POST, f"{URL}/medic/_changes", callback=changes)
    assert reader().changed_since("12-g1AAAA", ["a", "b"]) == ({"b"}, "14-x")


@responses.activate
def test_a_sequence_the_server_refuses_means_no_answer_not_an_error():
    responses.post(f"{URL}/medic/_changes", status=400, json={"error": "bad_request"})
    assert reader().changed_since("99-zz", ["a"]) is None


@responses.activate
def test_a_conflicted_doc_is_read_at_its_winning_revision_whatever_the_leaf_order():
    """CouchDB 3 answers every leaf of a conflicted doc to _bulk_get without a rev, in
    rev-tree order: the winner is the live leaf with the longest history, then the
    highest revision id, never simply the first entry."""
    losing = {"_id": "chw", "_rev": "2-aaa", "parent": {"_id": "hc-old"}}
    winning = {"_id": "chw", "_rev": "2-bbb", "parent": {"_id": "hc-new"}}
    deleted_longer = {"_id": "chw", "_rev": "5-zzz", "_deleted": True}
    shorter = {"_id": "hc", "_rev": "2-zzz", "name": "short"}
    longer = {"_id": "hc", "_rev": "10-aaa", "name": "long"}  # 10 > 2 as numbers
    gone_live = {"_id": "gone", "_rev": "3-c", "_deleted": True}
    responses.post(
        f"{URL}/medic/_bulk_get",
        json={
            "results": [
                {"id": "chw", "docs": [{"ok": deleted_longer}, {"ok": losing}, {"ok": winning}]},
                {"id": "hc", "docs": [{"ok": shorter}, {"ok": longer}]},
                {"id": "gone", "docs": [{"ok": gone_live}]},
            ]
        },
    )
    found = reader().docs_by_id(["chw", "hc", "gone"])
    assert found["chw"] == winning
    assert found["hc"] == longer
    assert found["gone"] is None  # every leaf deleted: the doc is deleted


def _session(roles):
    return {"ok": True, "userCtx": {"name": "mediator", "roles": roles}}


@responses.activate
@pytest.mark.parametrize(
    ("roles", "words"),
    [
        (["chw"], "is an offline CHT user (roles: chw)"),
        ([], "has no CHT role (a user made in CouchDB by hand"),
        (None, "or use a CouchDB admin"),
    ],
)
def test_a_refusal_says_which_kind_of_user_it_is_and_how_to_fix_it(roles, words):
    view = f"{URL}/medic/_design/medic-admin/_view/contacts_by_dhis_orgunit"
    responses.get(view, status=403, json={"error": "forbidden", "reason": "Insufficient"})
    if roles is None:
        responses.get(f"{URL}/_session", status=500)
    else:
        responses.get(f"{URL}/_session", json=_session(roles))
    with pytest.raises(ChtError) as exc:
        reader().places()
    message = str(exc.value)
    assert "\n" not in message and "S3cret-cht-pw" not in message
    assert words in message
    assert "refused user mediator reading the medic-admin/contacts_by_dhis_orgunit view" in message
    assert "app_settings.roles" in message  # the fix


@responses.activate
def test_a_redirect_is_never_followed_and_names_the_setting_to_check():
    responses.get(
        f"{URL}/medic/settings",
        status=301,
        headers={"Location": "https://user:pw@cht.example.org/medic/settings"},
    )
    with pytest.raises(ChtError) as exc:
        reader().app_settings()
    assert "redirected (301) to https://cht.example.org/medic/settings" in str(exc.value)
    assert "check CHT_URL" in str(exc.value) and "pw@" not in str(exc.value)
    assert len(responses.calls) == 1


@responses.activate
def test_an_html_error_page_is_reduced_to_its_title():
    page = "<html><head><title>502 Bad Gateway</title></head><body>" + "x" * 5000 + "</body>"
    responses.get(f"{URL}/medic/settings", status=502, body=page)
    with pytest.raises(ChtError) as exc:
        reader().app_settings()
    assert str(exc.value).endswith(
        "answered HTTP 502 (reading the settings doc) after 3 attempt(s): 502 Bad Gateway"
    )


@responses.activate
def test_the_changes_feed_is_asked_in_batches_under_couchdbs_lookup_threshold():
    asked: list[int] = []

    def changes(request):
        ids = json.loads(request.body)["doc_ids"]
        asked.append(len(ids))
        seq = f"{100 + len(asked)}-x"
        results = [{"id": i, "seq": seq, "changes": []} for i in ids if i in ("id-5", "id-2400")]
        return 200, {}, json.dumps({"results": results, "last_seq": seq})

    responses.add_callback(responses.POST, f"{URL}/medic/_changes", callback=changes)
    ids = [f"id-{n}" for n in range(2500)]
    changed, seq = reader().changed_since("99-a", ids)
    assert asked == [1000, 1000, 500]
    assert changed == {"id-5", "id-2400"}
    # the first batch's sequence: a change made while later batches were asked shows
    # again next run rather than never
    assert seq == "101-x"
