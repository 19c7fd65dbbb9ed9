"""A whole push over real HTTP: live CouchDB → engine → DHIS2 stand-in, per version.

After each push the stand-in's stored values are compared with what the engine
computed: DHIS2 must hold exactly those values, nothing twice, nothing stale.
"""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime

import flask
import pytest

from devstack import deployment as dep
from devstack.dhis2_standin import Dhis2StandIn
from mediator.model.periods import Month
from mediator.run.pipeline import compute, execute
from mediator.run.request import RunRequest
from mediator.settings.config import ChtSettings, Dhis2Settings, RuntimeConfig

VERSIONS = ["2.36", "2.37", "2.38.5", "2.40.3", "2.41.1", "2.42"]
JAN = Month(2024, 1)
DEFAULT = dep.DEFAULT_COC


def standin(version: str, metadata=None, **kw) -> Dhis2StandIn:
    return Dhis2StandIn(metadata=metadata, version=version, **kw).start()


def config(couch, db: str, d2: Dhis2StandIn, **dhis2) -> RuntimeConfig:
    return RuntimeConfig(
        cht=ChtSettings(url=couch.url, db=db, username=couch.username, password=couch.password),
        dhis2=Dhis2Settings(url=d2.url, username="admin", password="district", **dhis2),
    )


def expected(cfg: RuntimeConfig, month: Month = JAN) -> dict[tuple[str, str, str, str, str], str]:
    """What DHIS2 should hold: every non-zero value the engine computes."""
    computed = compute(RunRequest(periods=[month]), cfg)
    want = {}
    for job in computed.jobs:
        for dv in job.merged.data_values():
            if dv.value != 0:
                key = (
                    dv.dataElement,
                    month.dhis2,
                    dv.orgUnit,
                    dv.categoryOptionCombo or DEFAULT,
                    dv.attributeOptionCombo or DEFAULT,
                )
                want[key] = str(dv.value)
    return want


def held(d2: Dhis2StandIn) -> dict[tuple[str, str, str, str, str], str]:
    return {k: v for k, v in d2.store.values().items() if v not in (None, "")}


def posts(d2: Dhis2StandIn) -> int:
    return len(d2.store.posts("/api/dataValueSets"))


@pytest.mark.parametrize("version", VERSIONS)
def test_first_push_imports_and_identical_second_push_writes_nothing(couch, cht_db, version):
    d2 = standin(version)
    try:
        cfg = config(couch, cht_db, d2)
        first = execute(RunRequest(periods=[JAN]), cfg)
        assert first.status == "Successful", first.model_dump_json(indent=1)
        assert held(d2) == expected(cfg)
        assert first.totals().imported == len(expected(cfg))
        before = posts(d2)
        second = execute(RunRequest(periods=[JAN]), cfg)
        assert second.status == "Successful"
        assert posts(d2) == before  # nothing sent at all
        assert all(r.values_sent == 0 for r in second.results)
        assert held(d2) == expected(cfg)
    finally:
        d2.stop()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_value_lowered_to_zero_or_no_longer_produced_leaves_no_old_number(couch, cht_db, version):
    d2 = standin(version)
    try:
        cfg = config(couch, cht_db, d2)
        execute(RunRequest(periods=[JAN]), cfg)
        s = couch.session()
        # every CHW of CHU 1 deletes nothing but syncs zero births; CHU 2 loses its org unit
        rows = s.get(
            f"{couch.url}/{cht_db}/_all_docs",
            params={
                "startkey": '"target~2024-01~chw-1-"',
                "endkey": '"target~2024-01~chw-1-\ufff0"',
                "include_docs": "true",
            },
        ).json()["rows"]
        for row in rows:
            doc = row["doc"]
            for target in doc["targets"]:
                if target["id"] == "births-this-month":
                    target["value"] = {"pass": 0, "total": 0}
            s.put(f"{couch.url}/{cht_db}/{doc['_id']}", json=doc).raise_for_status()
        chu2 = s.get(f"{couch.url}/{cht_db}/chu-2").json()
        del chu2["dhis"]
        s.put(f"{couch.url}/{cht_db}/chu-2", json=chu2).raise_for_status()

        report = execute(RunRequest(periods=[JAN]), cfg)
        assert report.status == "Successful", report.model_dump_json(indent=1)
        now = held(d2)
        assert not [k for k in now if k[0] == dep.DE_BIRTHS and k[2] == dep.OU_CHU[0]]
        assert not [k for k in now if k[2] == dep.OU_CHU[1]]
        assert now == expected(cfg)
        assert sum(r.values_cleared for r in report.results) > 0
    finally:
        d2.stop()


def test_values_a_person_typed_for_a_non_cht_org_unit_are_left_alone(couch, cht_db):
    # CHU 5 is assigned to the data set in DHIS2 but is no CHT place: paper reporting
    d2 = standin("2.41.1", dep.dhis2_metadata(chus=5))
    try:
        typed = dep.OU_CHU[4]
        d2.store.seed(dep.DE_BIRTHS, JAN.dhis2, typed, "17")
        cfg = config(couch, cht_db, d2)
        report = execute(RunRequest(periods=[JAN]), cfg)
        assert report.status == "Successful"
        assert held(d2) == {
            **expected(cfg),
            (dep.DE_BIRTHS, JAN.dhis2, typed, DEFAULT, DEFAULT): "17",
        }
    finally:
        d2.stop()


GHOST = "Zz9Unknown1"  # a well-formed UID DHIS2 does not know


@pytest.mark.parametrize("version", ["2.36", "2.37", "2.41.1"])
def test_rejected_rows_are_reported_row_by_row(couch, cht_db, version):
    s = couch.session()
    ghost = {"_id": "chu-ghost", "parent": {"_id": "district-1"}}
    docs = [
        {
            **ghost,
            "type": "health_center",
            "name": "CHU unknown to DHIS2",
            "dhis": {"orgUnit": GHOST},
        },
        {"_id": "chw-ghost", "type": "person", "name": "CHW", "parent": ghost},
        {
            "_id": "target~2024-01~chw-ghost~org.couchdb.user:ghost",
            "type": "target",
            "owner": "chw-ghost",
            "user": "org.couchdb.user:ghost",
            "targets": [{"id": "births-this-month", "value": {"pass": 3, "total": 3}}],
        },
    ]
    s.post(f"{couch.url}/{cht_db}/_bulk_docs", json={"docs": docs}).raise_for_status()
    d2 = standin(version)
    try:
        cfg = config(couch, cht_db, d2)
        report = execute(RunRequest(periods=[JAN], data_sets=[dep.DS_MONTHLY]), cfg)
        assert report.status == "Completed with error(s)"
        (result,) = report.results
        assert result.status == "warning"
        # preflight warned: DHIS2 does not list the org unit for the data set
        assert any(f.level == "warning" and GHOST in f.ids for f in result.preflight)
        rejected = {(r.dataElement, r.orgUnit) for r in result.rejected}
        assert rejected == {(dep.DE_BIRTHS, GHOST)}
        assert not [k for k in d2.store.values() if k[2] == GHOST]
        good = {
            k: v
            for k, v in expected(cfg).items()
            if k[2] != GHOST and k[0] != dep.DE_HOUSEHOLD_VISITS
        }
        assert held(d2) == good
        assert result.counts.imported == len(good)
    finally:
        d2.stop()


def test_a_locked_period_is_predicted_then_refused_by_dhis2_row_by_row(couch, cht_db):
    """Expired, no lock exception, a user without F_EDIT_EXPIRED: the preflight says so,
    posts all the same (it must never block what DHIS2 might accept), and DHIS2's E7640
    per row makes the run Failed with nothing stored."""
    metadata = copy.deepcopy(dep.dhis2_metadata())
    for ds in metadata["dataSets"]:
        ds["expiryDays"] = 10
    d2 = standin("2.41.1", metadata, now=lambda: datetime(2024, 6, 1, tzinfo=UTC))
    try:
        report = execute(RunRequest(periods=[JAN]), config(couch, cht_db, d2))
        assert report.status == "Failed"
        assert posts(d2) > 0 and held(d2) == {}
        for result in report.results:
            assert result.status == "error"
            assert any(
                f.code == "period_expired" and "202401" in f.message for f in result.preflight
            )
            assert result.rejected and {r.errorCode for r in result.rejected} == {"E7640"}
    finally:
        d2.stop()


@pytest.mark.parametrize("version", ["2.36", "2.41.1"])
def test_dry_run_changes_nothing_but_reports_counts(couch, cht_db, version):
    d2 = standin(version)
    try:
        cfg = config(couch, cht_db, d2)
        report = execute(RunRequest(periods=[JAN], dry_run=True), cfg)
        assert report.dry_run
        assert held(d2) == {}
        assert report.totals().imported == len(expected(cfg))
        assert all("dryRun=true" in p.query_string for p in d2.store.posts("/api/dataValueSets"))
    finally:
        d2.stop()


def test_pushing_in_batches_of_org_units_gives_the_same_result(couch, cht_db, monkeypatch):
    import mediator.run.push

    monkeypatch.setattr(mediator.run.push, "ORG_UNITS_PER_PUSH", 2)  # 5 org units: 3 batches
    d2 = standin("2.41.1")
    try:
        cfg = config(couch, cht_db, d2)
        first = execute(RunRequest(periods=[JAN]), cfg)
        assert first.status == "Successful"
        assert held(d2) == expected(cfg)
        monthly = next(r for r in first.results if r.data_set == dep.DS_MONTHLY)
        assert monthly.values_computed == 5 * 4  # every batch counted once
        assert monthly.counts.imported == len(
            [k for k in expected(cfg) if k[0] != dep.DE_HOUSEHOLD_VISITS]
        )
        before = posts(d2)
        again = execute(RunRequest(periods=[JAN]), cfg)
        assert posts(d2) == before and again.status == "Successful"
        # an org unit dropped from CHT is swept once, not by every batch
        s = couch.session()
        chu2 = s.get(f"{couch.url}/{cht_db}/chu-2").json()
        del chu2["dhis"]
        s.put(f"{couch.url}/{cht_db}/chu-2", json=chu2).raise_for_status()
        third = execute(RunRequest(periods=[JAN]), cfg)
        assert third.status == "Successful"
        assert not [k for k in held(d2) if k[2] == dep.OU_CHU[1]]
        assert held(d2) == expected(cfg)
    finally:
        d2.stop()


def test_the_next_batch_is_read_while_this_one_posts(couch, cht_db, monkeypatch):
    """While a batch's values are posted, the next batch's are read and planned, on a
    connection of their own: the stand-in holds the first POST until the second read
    of stored values has arrived (or 10 s; one after another, it would come only after
    the POST). DHIS2 ends as after batches run one by one, and each read is tagged
    with its (data set, period) in the transaction."""
    import mediator.run.push

    monkeypatch.setattr(mediator.run.push, "ORG_UNITS_PER_PUSH", 2)  # 2 org units a batch
    d2 = Dhis2StandIn(version="2.41.1")
    reads, second_read = [0], threading.Event()
    overlapped: list[bool] = []  # had the second batch's read come when the first POST did?

    @d2.app.before_request
    def hold_the_first_post() -> None:
        if not flask.request.path.endswith("/dataValueSets"):
            return
        if flask.request.method == "GET":
            reads[0] += 1
            if reads[0] == 2:  # the first batch's read is the first (one read per batch)
                second_read.set()
        elif not overlapped:
            overlapped.append(second_read.wait(timeout=10))

    d2.start()
    try:
        cfg = config(couch, cht_db, d2)
        report = execute(RunRequest(periods=[JAN]), cfg)
        assert overlapped == [True], "the next batch was read only after this one posted"
        assert report.status == "Successful", report.model_dump_json(indent=1)
        assert held(d2) == expected(cfg)
        recorded = [
            ex
            for ex in report.exchanges
            if ex.method == "GET" and ex.path.endswith("/api/dataValueSets")
        ]
        assert len(recorded) >= 2 * 3  # two data sets, three batches each
        jobs = {(ds, JAN.dhis2) for ds in report.data_sets}
        assert all((ex.data_set, ex.period) in jobs for ex in recorded)
    finally:
        d2.stop()
