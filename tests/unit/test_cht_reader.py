"""HTTP edge cases of the CHT reader alone (the live-server tests cover the rest)."""

from __future__ import annotations

import pytest
import responses

from mediator.cht import ChtError, ChtReader
from mediator.config import ChtSettings

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


@responses.activate
def test_owner_lookups_are_batched_and_missing_owners_map_to_none():
    def rows(request):
        import json

        keys = json.loads(request.body)["keys"]
        out = [
            {"key": k, "error": "not_found"} if k == "gone" else {"key": k, "doc": {"_id": k}}
            for k in keys
        ]
        return 200, {}, json.dumps({"rows": out})

    responses.add_callback(responses.POST, f"{URL}/medic/_all_docs", callback=rows)
    settings = ChtSettings(url=URL, owner_batch=2)
    found = ChtReader(settings).docs_by_id(["a", "b", "gone", "c"])
    assert found == {"a": {"_id": "a"}, "b": {"_id": "b"}, "gone": None, "c": {"_id": "c"}}
    assert len(responses.calls) == 2
