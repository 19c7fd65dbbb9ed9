"""The contact cache's edges that need no CouchDB: what it does when CHT forbids the
reads it checks with, and what a damaged or foreign file costs (one full read)."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from mediator.cht.cache import CacheStore, ContactCache, Contacts
from mediator.cht.client import ChtReader
from mediator.settings.config import ChtSettings

URL = "https://cht.example.org"
VIEW = f"{URL}/medic/_design/medic-admin/_view/contacts_by_dhis_orgunit"
PLACE = {"_id": "hc1", "name": "HC 1", "dhis": {"orgUnit": "OU1"}}


def fresh_places() -> None:
    """CHT as a run that trusts nothing kept finds the places: ids from the view, docs
    by id (``Contacts.places``)."""
    responses.get(VIEW, json={"rows": [{"id": "hc1", "key": "OU1", "value": None}]})
    responses.post(
        f"{URL}/medic/_bulk_get", json={"results": [{"id": "hc1", "docs": [{"ok": PLACE}]}]}
    )


def kept() -> ContactCache:
    return ContactCache(
        seq=5, instance="t0", lineages={"chw": ("chw", "hc1")}, places={"hc1": PLACE}
    )


@responses.activate
def test_a_user_forbidden_the_changes_feed_reads_everything_afresh_and_keeps_nothing():
    responses.get(f"{URL}/medic/", json={"update_seq": 9, "instance_start_time": "t0"})
    responses.post(f"{URL}/medic/_changes", status=403, json={"error": "forbidden"})
    fresh_places()
    contacts = Contacts(ChtReader(ChtSettings(url=URL)), kept())
    assert contacts.places(None) == [PLACE]  # read afresh, not from the cache
    assert not contacts.warm and not contacts.keepable
    assert contacts.cache.lineages == {}  # the kept lineage was not trusted


@responses.activate
def test_another_database_instance_throws_the_cache_away_without_asking_for_changes():
    responses.get(f"{URL}/medic/", json={"update_seq": 9, "instance_start_time": "t1"})
    contacts = Contacts(ChtReader(ChtSettings(url=URL)), kept())
    assert not contacts.warm and contacts.cache.lineages == {} and contacts.cache.seq == 9
    assert [c.request.method for c in responses.calls] == ["GET"]  # no _changes


@responses.activate
def test_a_kept_sequence_ahead_of_the_database_throws_the_cache_away():
    responses.get(f"{URL}/medic/", json={"update_seq": 3, "instance_start_time": "t0"})
    contacts = Contacts(ChtReader(ChtSettings(url=URL)), kept())
    assert not contacts.warm and contacts.cache.lineages == {}


@responses.activate
def test_a_kept_contact_that_changed_is_read_again_and_the_others_are_not():
    responses.get(f"{URL}/medic/", json={"update_seq": 9, "instance_start_time": "t0"})
    responses.post(
        f"{URL}/medic/_changes",
        json={"results": [{"id": "chw", "seq": 7, "changes": []}], "last_seq": 9},
    )
    moved = {"_id": "chw", "parent": {"_id": "hc2"}}
    responses.post(
        f"{URL}/medic/_bulk_get", json={"results": [{"id": "chw", "docs": [{"ok": moved}]}]}
    )
    contacts = Contacts(ChtReader(ChtSettings(url=URL)), kept())
    assert contacts.warm and contacts.cache.seq == 9
    lineages, read = contacts.lineages(["chw"])
    assert lineages["chw"] == ("chw", "hc2") and read == 1


def test_the_file_round_trips_and_a_damaged_or_foreign_one_is_ignored(tmp_path):
    settings = ChtSettings(url=URL, username="u", password="Sup3r-secret-pw")
    store = CacheStore(str(tmp_path))
    store.save(settings, kept())
    CacheStore.forget_all()
    back = store.load(settings)
    assert back is not None and back.lineages == {"chw": ("chw", "hc1")} and back.seq == 5
    (file,) = tmp_path.iterdir()
    assert "Sup3r-secret-pw" not in file.read_text() and URL not in file.read_text()
    CacheStore.forget_all()
    file.write_text("{not json")
    assert store.load(settings) is None
    file.write_text(json.dumps({"format": 99, "seq": 1}))
    assert store.load(settings) is None
    assert CacheStore(str(tmp_path)).load(ChtSettings(url="https://other.example.org")) is None


@responses.activate
def test_a_kept_revision_the_database_lacks_means_another_database_and_no_cache():
    """Recreated under the same name, past the kept sequence: the feed alone would
    say nothing changed; the revisions say it is not the same database."""
    responses.get(f"{URL}/medic/", json={"update_seq": 9, "instance_start_time": "t0"})
    responses.post(f"{URL}/medic/_changes", json={"results": [], "last_seq": 9})
    responses.post(f"{URL}/medic/_revs_diff", json={"chw": {"missing": ["1-a"]}})
    previous = kept()
    previous.revs = {"chw": "1-a", "hc1": "1-b"}
    contacts = Contacts(ChtReader(ChtSettings(url=URL)), previous)
    assert not contacts.warm and contacts.cache.lineages == {} and contacts.cache.seq == 9
    asked = json.loads(responses.calls[-1].request.body)
    assert asked == {"chw": ["1-a"], "hc1": ["1-b"]}


@responses.activate
def test_kept_revisions_all_present_keep_the_cache():
    responses.get(f"{URL}/medic/", json={"update_seq": 9, "instance_start_time": "t0"})
    responses.post(f"{URL}/medic/_changes", json={"results": [], "last_seq": 9})
    responses.post(f"{URL}/medic/_revs_diff", json={})
    previous = kept()
    previous.revs = {"chw": "1-a", "hc1": "1-b"}
    contacts = Contacts(ChtReader(ChtSettings(url=URL)), previous)
    assert contacts.warm and contacts.cache.lineages == {"chw": ("chw", "hc1")}


@responses.activate
@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500, "json": {"error": "internal"}},
        {"status": 302, "headers": {"Location": "https://cht.example.org/login"}},
        {"body": requests.exceptions.ReadTimeout("read timed out")},
        {"json": {"unexpected": "shape"}},
    ],
    ids=["500", "302", "timeout", "shape"],
)
def test_the_changes_feed_check_falling_over_means_fresh_reads_never_a_failed_run(fault):
    responses.get(f"{URL}/medic/", json={"update_seq": 9, "instance_start_time": "t0"})
    responses.post(f"{URL}/medic/_changes", **fault)
    fresh_places()
    contacts = Contacts(ChtReader(ChtSettings(url=URL), sleep=lambda _s: None), kept())
    assert contacts.places(None) == [PLACE]  # read afresh, not from the cache
    assert not contacts.warm and not contacts.keepable and contacts.cache.lineages == {}
    assert contacts.warning and "read afresh" in contacts.warning


@responses.activate
def test_the_database_info_is_read_with_the_slash_that_chts_api_wants():
    """CHT's API answers GET /medic with a redirect to /medic/ for every user."""
    responses.get(f"{URL}/medic", status=302, headers={"Location": "/medic/"})
    responses.get(f"{URL}/medic/", json={"update_seq": 9, "instance_start_time": "t0"})
    responses.post(f"{URL}/medic/_changes", json={"results": [], "last_seq": 9})
    contacts = Contacts(ChtReader(ChtSettings(url=URL)), kept())
    assert contacts.warm and contacts.warning is None
    assert all(not c.request.url.endswith("/medic") for c in responses.calls)
