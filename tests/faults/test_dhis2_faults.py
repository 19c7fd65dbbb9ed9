"""DHIS2 faults over real HTTP (live CouchDB → mediator → DHIS2 stand-in).

Promise: transient faults (connection refused, timeout, 5xx, 429, a dropped
connection) are retried within bounds (3 attempts, at most 1 s of back-off per
request here); the rest fail the affected data set with a clear reason; the
report says exactly which rows reached DHIS2 (``rejected`` names every row that
did not); and the next run completes the job without writing any value twice.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from devstack import deployment as dep
from devstack.dhis2_standin import Dhis2StandIn, Fault
from devstack.dhis2_standin.store import StoredValue
from devstack.net import free_port

from .helpers import (
    DEFAULT,
    DHIS2_PERIOD,
    couch_config,
    held,
    new_db,
    oracle,
    push,
    rejected_keys,
    writes,
)

POSTS = "/api/dataValueSets"


def elements(data_set: str) -> set[str]:
    (ds,) = [d for d in dep.dhis2_metadata()["dataSets"] if d["id"] == data_set]
    return {e["dataElement"]["id"] for e in ds["dataSetElements"]}


def assert_completed_by_next_run(couch, db, d2, computed, *, sent: int | None = None) -> None:
    """The next run makes DHIS2 hold exactly the computed values; no key written twice."""
    d2.faults.clear()
    report = push(couch_config(couch, db, d2))
    assert report.status == "Successful", report.model_dump_json(indent=1)
    assert held(d2) == computed
    if sent is not None:
        assert sum(r.values_sent for r in report.results) == sent
    assert max(writes(d2).values()) == 1, writes(d2).most_common(3)


def test_connection_refused_stops_the_run_after_3_attempts_then_next_run_completes(
    couch, base_db, computed, d2
):
    cfg = couch_config(couch, base_db, d2)
    cfg.dhis2.url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    exchanges: list = []
    report = push(cfg)
    exchanges = [ex for ex in report.exchanges if ex.peer == "DHIS2"]
    # bounded: 3 attempts in all, not 3 for every (data set, period) left to do
    assert len(exchanges) == 3
    assert report.status == "Failed"
    assert {r.status for r in report.results} == {"error"}
    first, *rest = report.results
    assert "is unreachable" in first.error and "after 3 attempt(s)" in first.error
    assert rest and all(r.error.startswith("not attempted: the run stopped") for r in rest)
    assert all("is unreachable" in r.error for r in rest)  # each says why
    assert held(d2) == {}
    assert_completed_by_next_run(couch, base_db, d2, computed, sent=len(computed))


def test_answer_slower_than_the_timeout_is_retried_and_dhis2_ends_exact(
    couch, base_db, computed, d2
):
    d2.faults.delay_next(2.0, count=1, path=POSTS, method="POST")
    report = push(couch_config(couch, base_db, d2, timeout=0.5))
    assert report.status == "Successful", report.model_dump_json(indent=1)
    attempts = [ex.name for ex in report.exchanges if "(attempt 2)" in ex.name]
    assert len(attempts) == 1 and "POST" in attempts[0]
    # the slow request is still processed by DHIS2 after the client gave up
    assert d2.store.settled(), "the delayed request never finished"
    assert held(d2) == computed
    again = push(couch_config(couch, base_db, d2))
    assert sum(r.values_sent for r in again.results) == 0  # nothing left to send


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_twice_is_retried_and_the_run_is_successful(couch, base_db, computed, d2, status):
    d2.faults.fail_next(2, status=status, path=POSTS, method="POST")
    report = push(couch_config(couch, base_db, d2))
    assert report.status == "Successful", report.model_dump_json(indent=1)
    assert held(d2) == computed
    faulted = [r for r in d2.store.posts(POSTS) if r.fault]
    assert [r.status for r in faulted] == [status, status]
    assert max(writes(d2).values()) == 1


def test_5xx_beyond_the_attempts_fails_that_chunk_names_its_rows_and_next_run_completes(
    couch, base_db, computed, d2
):
    d2.faults.fail_next(3, status=503, path=POSTS, method="POST")  # the first chunk, 3 times
    report = push(couch_config(couch, base_db, d2))
    assert report.status in ("Failed", "Completed with error(s)")
    failed = [r for r in report.results if r.chunks_failed]
    assert len(failed) == 1 and "HTTP 503" in failed[0].error and "3 attempt(s)" in failed[0].error
    missing = rejected_keys(report)
    assert missing and all("not imported" in r.reason for r in failed[0].rejected)
    # exactly the rows the report names as rejected are missing from DHIS2
    assert set(held(d2)) == set(computed) - missing
    assert_completed_by_next_run(couch, base_db, d2, computed, sent=len(missing))


def test_429_honours_retry_after_then_succeeds(couch, base_db, computed, d2):
    d2.faults.fail_next(1, status=429, path=POSTS, retry_after=1, method="POST")
    started = time.monotonic()
    report = push(couch_config(couch, base_db, d2, max_retry_seconds=5.0))
    assert report.status == "Successful"
    posts = d2.store.posts(POSTS)
    assert posts[0].status == 429
    assert (posts[1].at - posts[0].at).total_seconds() >= 0.9  # waited Retry-After: 1
    assert time.monotonic() - started < 10
    assert held(d2) == computed


def test_429_asking_longer_than_the_retry_budget_fails_at_once_with_the_reason(
    couch, base_db, computed, d2
):
    d2.faults.fail_next(1, status=429, path="/api/system/info", retry_after=3600)
    started = time.monotonic()
    report = push(couch_config(couch, base_db, d2))
    assert time.monotonic() - started < 5  # did not sleep an hour
    # only the data set whose request got the 429 failed; the other one went through
    assert report.status == "Completed with error(s)"
    first, second = report.results
    assert first.status == "error" and "HTTP 429" in first.error
    assert second.status == "success"
    assert held(d2) == {k: v for k, v in computed.items() if k[0] in elements(second.data_set)}
    assert_completed_by_next_run(couch, base_db, d2, computed)


def test_401_fails_all_data_sets_after_one_request_and_never_repeats_the_credentials(
    couch, base_db, d2
):
    report = push(couch_config(couch, base_db, d2, dhis2_password="wrong-password"))
    assert report.status == "Failed"
    assert {r.status for r in report.results} == {"error"}
    assert all("refused the credentials" in r.error for r in report.results)
    # one request in all: repeating refused credentials could lock the DHIS2 account
    assert len(d2.store.requests) == 1
    assert "wrong-password" not in report.model_dump_json()


def test_302_to_the_login_page_is_an_auth_failure_that_says_so(couch, base_db, d2):
    d2.faults.add(
        Fault("status", "/api/system/info", status=302, headers={"Location": "/dhis-web-login/"})
    )
    report = push(couch_config(couch, base_db, d2))
    assert report.status == "Failed"
    assert all("redirected to its login page" in r.error for r in report.results)
    # redirects are not followed nor retried: the 302 was the last request made
    assert [r.status for r in d2.store.requests].count(302) == 1
    assert d2.store.requests[-1].status == 302
    assert held(d2) == {}


def test_409_conflicts_name_each_rejected_row_and_the_rest_is_stored(couch, base_db, computed):
    # DHIS2 without CHU 1's org unit: its rows get E7612 conflicts inside a 409
    metadata = dep.dhis2_metadata()
    gone = dep.OU_CHU[0]
    metadata["organisationUnits"] = [o for o in metadata["organisationUnits"] if o["id"] != gone]
    for ds in metadata["dataSets"]:
        ds["organisationUnits"] = [o for o in ds["organisationUnits"] if o["id"] != gone]
    with Dhis2StandIn(metadata, version="2.41.1") as d2:
        report = push(couch_config(couch, base_db, d2))
        assert report.status == "Completed with error(s)"
        assert any(409 == ex.status for ex in report.exchanges)
        rejected = rejected_keys(report)
        assert rejected == {k for k in computed if k[2] == gone}
        assert held(d2) == {k: v for k, v in computed.items() if k[2] != gone}
        again = push(couch_config(couch, base_db, d2))
        # only the rejected rows are tried again; nothing stored is written twice
        assert sum(r.values_sent for r in again.results) == len(rejected)
        assert {writes(d2)[k] for k in held(d2)} == {1}


def test_a_body_that_is_not_json_fails_that_chunk_with_a_clear_reason(couch, base_db, computed, d2):
    d2.faults.add(Fault("garbage", POSTS, method="POST", status=200))
    report = push(couch_config(couch, base_db, d2))
    assert report.status in ("Failed", "Completed with error(s)")
    (failed,) = [r for r in report.results if r.chunks_failed]
    assert "not JSON (text/html)" in failed.error
    (said,) = [d for d in report.diagnoses if d.kind == "dhis2_not_json"]
    assert "DHIS2_URL" in said.fix and "DHIS2_CHUNK_SIZE" not in said.fix
    assert set(held(d2)) == set(computed) - rejected_keys(report)
    assert_completed_by_next_run(couch, base_db, d2, computed, sent=len(rejected_keys(report)))


def test_a_413_page_from_a_proxy_is_the_body_size_limit_and_nothing_else(
    couch, base_db, computed, d2
):
    """nginx's 413 page on one chunk: its rows are named as not imported, the diagnosis is
    the body size limit (lower DHIS2_CHUNK_SIZE or raise client_max_body_size), never
    "something other than DHIS2 answered", and the next run sends only those rows."""
    page = "<html><head><title>413 Request Entity Too Large</title></head></html>"
    d2.faults.add(Fault("garbage", POSTS, method="POST", status=413, body=page))
    report = push(couch_config(couch, base_db, d2))
    (failed,) = [r for r in report.results if r.chunks_failed]
    assert failed.error_kind == "too_large" and "HTTP 413" in failed.error
    kinds = {d.kind for d in report.diagnoses}
    assert "dhis2_body_too_large" in kinds and "dhis2_not_json" not in kinds
    (said,) = [d for d in report.diagnoses if d.kind == "dhis2_body_too_large"]
    assert "DHIS2_CHUNK_SIZE" in said.fix and "client_max_body_size" in said.fix
    assert set(held(d2)) == set(computed) - rejected_keys(report)
    assert_completed_by_next_run(couch, base_db, d2, computed, sent=len(rejected_keys(report)))


def test_an_html_502_from_a_proxy_is_retried(couch, base_db, computed, d2):
    d2.faults.add(Fault("garbage", POSTS, method="POST", status=502))
    report = push(couch_config(couch, base_db, d2))
    assert report.status == "Successful"
    assert held(d2) == computed


def test_connection_dropped_mid_push_stops_the_run_and_the_report_names_what_did_not_land(
    couch, base_db, computed, d2
):
    """The second chunk's connection drops on every attempt: DHIS2 counts as unreachable
    past the retry budget, so the run stops there instead of retrying every remaining
    (data set, period). The report names every row that did not land, and the next run
    completes the job."""
    d2.faults.drop_next(count=3, path=POSTS, method="POST", skip=1)
    report = push(couch_config(couch, base_db, d2, chunk_size=4))
    assert report.status == "Completed with error(s)", report.model_dump_json(indent=1)
    (partial,) = [r for r in report.results if r.chunks_failed]
    assert partial.chunks_failed == 1 and partial.chunks_sent == 2
    assert partial.status == "warning"
    reasons = [r.reason for r in partial.rejected]
    assert reasons[:4] == [reasons[0]] * 4 and reasons[0].startswith("not imported:")
    assert all(r.startswith("not sent:") for r in reasons[4:])
    assert all("is unreachable" in r for r in reasons)
    after = report.results[report.results.index(partial) + 1 :]
    assert all(r.error.startswith("not attempted: the run stopped") for r in after)
    landed = held(d2)
    assert all(computed[k] == v for k, v in landed.items())  # nothing DHIS2 holds is wrong
    assert not set(landed) & rejected_keys(report)  # the report says exactly what did not land
    assert len(landed) == 4  # the first chunk
    assert_completed_by_next_run(couch, base_db, d2, computed, sent=len(computed) - 4)


def test_a_dropped_connection_once_is_retried_and_nothing_is_written_twice(
    couch, base_db, computed, d2
):
    d2.faults.drop_next(count=1, path=POSTS, method="POST", skip=1)
    report = push(couch_config(couch, base_db, d2, chunk_size=4))
    assert report.status == "Successful"
    assert held(d2) == computed
    assert max(writes(d2).values()) == 1


def test_an_answer_lost_after_dhis2_stored_the_chunk_is_retried_and_the_values_stay_exact(
    couch, base_db, computed, d2
):
    d2.faults.drop_after_next(count=1, path=POSTS, method="POST")
    report = push(couch_config(couch, base_db, d2, chunk_size=4))
    assert report.status == "Successful", report.model_dump_json(indent=1)
    assert held(d2) == computed
    # the retried chunk reached DHIS2 twice with the same values; nothing else did
    assert sorted(set(writes(d2).values())) in ([1, 2], [1])
    again = push(couch_config(couch, base_db, d2))
    assert sum(r.values_sent for r in again.results) == 0


def test_a_batch_that_fails_is_not_followed_by_the_sweep_read_ahead_meanwhile(couch, d2):
    """While a batch posts, the sweep (values this integration stored at org units CHT
    no longer maps) is read and planned ahead. When the batch fails, that plan is
    dropped: nothing is cleared on a run that could not deliver; the next run clears."""
    db = new_db(couch)
    s = couch.session()
    chu2 = s.get(f"{couch.url}/{db}/chu-2").json()
    del chu2["dhis"]  # CHU 2 no longer feeds DHIS2
    s.put(f"{couch.url}/{db}/chu-2", json=chu2).raise_for_status()
    gone = dep.OU_CHU[1]
    when = datetime(2024, 2, 1)
    stale = StoredValue(
        dep.DE_BIRTHS, DHIS2_PERIOD, gone, DEFAULT, DEFAULT, "7", None, False, "admin", when, when
    )
    d2.store.put(stale)
    jobs = 2  # the two data sets of the month
    d2.faults.add(Fault("status", POSTS, count=3 * jobs, method="POST", status=500))
    report = push(couch_config(couch, db, d2))
    assert report.status == "Failed", report.model_dump_json(indent=1)
    assert all("HTTP 500" in r.error for r in report.results)
    assert len(d2.store.posts(POSTS)) == 3 * jobs  # each batch's 3 attempts; no sweep post
    assert held(d2)[stale.key] == "7"  # not cleared by a run that delivered nothing
    d2.faults.clear()
    again = push(couch_config(couch, db, d2))
    assert again.status == "Successful", again.model_dump_json(indent=1)
    assert stale.key not in held(d2)
    assert held(d2) == oracle(couch, db)
