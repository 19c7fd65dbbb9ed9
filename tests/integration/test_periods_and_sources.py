"""Beyond CHT's limits, over real HTTP (live CouchDB, DHIS2 stand-in): any period
type built from monthly docs, late syncs, backfill, sync coverage, several CHT
instances, completeness and runs that never interleave."""

from __future__ import annotations

import copy
import itertools
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack import cht_docs
from devstack import deployment as dep
from devstack.dhis2_standin import Dhis2StandIn
from mediator.model.periods import Month, Period
from mediator.run.locks import RunBusyError
from mediator.run.pipeline import compute, execute
from mediator.run.request import RunRequest
from mediator.settings.config import ChtSettings, ChtSource, Dhis2Settings, RuntimeConfig

Q1 = ["2024-01", "2024-02", "2024-03"]
APRIL_2024 = datetime(2024, 4, 10, 12, 0, tzinfo=UTC)
DEFAULT = dep.DEFAULT_COC
_names = itertools.count(1)


def seed(couch, docs: list[dict[str, Any]]) -> str:
    name = f"medic-periods-{next(_names)}"
    couch.create_db(name)
    couch.bulk(name, docs)
    return name


def cht(couch, db: str) -> ChtSettings:
    return ChtSettings(url=couch.url, db=db, username=couch.username, password=couch.password)


def config(couch, db: str, d2: Dhis2StandIn | None, **kw: Any) -> RuntimeConfig:
    dhis2 = Dhis2Settings(url=d2.url, username="admin", password="district") if d2 else None
    return RuntimeConfig(cht=cht(couch, db), dhis2=dhis2, lock_dir=kw.pop("lock_dir", None), **kw)


def metadata(**period_types: str) -> dict[str, Any]:
    meta = copy.deepcopy(dep.dhis2_metadata())
    for ds in meta["dataSets"]:
        ds["periodType"] = period_types.get(ds["id"], ds["periodType"])
    return meta


def held(d2: Dhis2StandIn, period: str) -> dict[tuple[str, str, str], str]:
    return {
        (de, ou, coc): v
        for (de, pe, ou, coc, _aoc), v in d2.store.values().items()
        if pe == period and v not in (None, "")
    }


def monthly(cfg: RuntimeConfig, month: str, data_set: str) -> dict[tuple[str, str, str], float]:
    computed = compute(RunRequest(periods=[Month.parse(month)], data_sets=[data_set]), cfg)
    return {
        (dv.dataElement, dv.orgUnit, dv.categoryOptionCombo or DEFAULT): dv.value
        for dv in computed.jobs[0].merged.data_values()
    }


@pytest.fixture
def q1_db(couch):
    return seed(couch, dep.build(Q1).docs)


def test_quarter_and_year_are_the_sums_of_their_months_and_percent_is_recomputed(couch, q1_db):
    d2 = Dhis2StandIn(metadata(**{dep.DS_MONTHLY: "Quarterly", dep.DS_CHW: "Yearly"})).start()
    try:
        choices = {"facility-deliveries": "percent"}
        cfg = config(couch, q1_db, d2, value_choices=choices)
        report = execute(RunRequest(periods=["2024Q1", "2024"]), cfg)
        # each data set runs only the period of its own type; the other is refused
        by_key = {(r.data_set, r.period): r for r in report.results}
        assert by_key[(dep.DS_MONTHLY, "2024Q1")].status == "success"
        assert by_key[(dep.DS_CHW, "2024")].status == "success"
        assert by_key[(dep.DS_MONTHLY, "2024")].status == "error"
        assert "is Yearly but data set" in by_key[(dep.DS_MONTHLY, "2024")].error
        assert by_key[(dep.DS_MONTHLY, "2024Q1")].months == Q1
        assert by_key[(dep.DS_MONTHLY, "2024Q1")].cht_interval == "2024-01-01..2024-03-31"

        plain = config(couch, q1_db, None)  # totals, month by month, for comparison
        sums: dict[tuple[str, str, str], float] = {}
        for month in Q1:
            for key, value in monthly(plain, month, dep.DS_MONTHLY).items():
                sums[key] = sums.get(key, 0) + value
        quarter = held(d2, "2024Q1")
        for (de, ou, coc), total in sums.items():
            if de == dep.DE_FACILITY_DELIVERIES:
                continue
            assert quarter.get((de, ou, coc), "0") == str(total), (de, ou, coc)

        # percent: from the summed pass and total of the quarter's docs, never averaged
        docs = [d for d in dep.build(Q1).docs if d.get("type") == "target"]
        passed = sum(
            t["value"]["pass"]
            for d in docs
            for t in d["targets"]
            if t["id"] == "facility-deliveries"
        )
        total = sum(
            t["value"]["total"]
            for d in docs
            for t in d["targets"]
            if t["id"] == "facility-deliveries"
        )
        district = quarter.get((dep.DE_FACILITY_DELIVERIES, dep.OU_DISTRICT, DEFAULT), "0")
        assert district == str(round(passed * 100 / total))

        year: dict[tuple[str, str, str], float] = {}
        for month in Q1:
            for key, value in monthly(plain, month, dep.DS_CHW).items():
                year[key] = year.get(key, 0) + value
        assert held(d2, "2024") == {k: str(v) for k, v in year.items() if v}
    finally:
        d2.stop()


def test_weekly_data_sets_are_refused_with_the_reason(couch, q1_db):
    d2 = Dhis2StandIn(metadata(**{dep.DS_CHW: "Weekly"})).start()
    try:
        report = execute(RunRequest(periods=["2024-01"]), config(couch, q1_db, d2))
        weekly = next(r for r in report.results if r.data_set == dep.DS_CHW)
        assert weekly.status == "error"
        assert "CHT keeps targets by calendar month" in weekly.error
        monthly_ds = next(r for r in report.results if r.data_set == dep.DS_MONTHLY)
        assert monthly_ds.status == "success"
    finally:
        d2.stop()


def test_a_late_sync_reaches_dhis2_in_the_next_scheduled_run(couch):
    deployment = dep.build(Q1, never_synced=1)
    db = seed(couch, deployment.docs)
    d2 = Dhis2StandIn().start()
    try:
        cfg = config(couch, db, d2)  # lookback 2: March, February and January
        first = execute(RunRequest(as_of=APRIL_2024, data_sets=[dep.DS_MONTHLY]), cfg)
        assert [r.period for r in first.results] == ["202401", "202402", "202403"]
        before = held(d2, "202401")
        # the CHW who never synced comes back online in April with January's doc
        late = deployment.never_synced[0]
        births = 5
        doc = cht_docs.target_doc(
            "2024-01",
            deployment.chw_contacts[late],
            late,
            [cht_docs.target("births-this-month", births)],
        )
        couch.session().put(f"{couch.url}/{db}/{doc['_id']}", json=doc).raise_for_status()
        second = execute(RunRequest(as_of=APRIL_2024, data_sets=[dep.DS_MONTHLY]), cfg)
        assert second.status == "Successful"
        after = held(d2, "202401")
        chu = deployment.chw_chu[late]
        key = (dep.DE_BIRTHS, chu, DEFAULT)
        assert int(after[key]) == int(before.get(key, "0")) + births
        # February and March did not change: nothing was sent for them
        assert [r.values_sent for r in second.results if r.period != "202401"] == [0, 0]
    finally:
        d2.stop()


def test_a_backfill_of_six_months_reports_six_periods(couch):
    months = [f"2024-{m:02d}" for m in range(1, 7)]
    db = seed(couch, dep.build(months).docs)
    d2 = Dhis2StandIn().start()
    try:
        report = execute(
            RunRequest(span=(Month(2024, 1), Month(2024, 6)), data_sets=[dep.DS_MONTHLY]),
            config(couch, db, d2),
        )
        assert report.periods == [f"2024{m:02d}" for m in range(1, 7)]
        assert [r.period for r in report.results] == report.periods
        assert all(r.status == "success" and r.counts.imported > 0 for r in report.results)
        assert {r.period for r in report.cht} == set(report.periods)  # each month read once
    finally:
        d2.stop()


def test_coverage_counts_users_who_never_synced(couch):
    deployment = dep.build(["2024-01"], never_synced=2)
    db = seed(couch, deployment.docs)
    computed = compute(
        RunRequest(periods=["2024-01"], data_sets=[dep.DS_MONTHLY]), config(couch, db, None)
    )
    (job,) = computed.jobs
    table = {c.orgUnit: c for c in job.coverage}
    district = table[dep.OU_DISTRICT]
    assert (district.expected, district.synced) == (12, 10)
    assert sorted(district.missing) == sorted(deployment.never_synced)
    for username in deployment.users:
        row = table[deployment.chw_chu[username]]
        assert row.expected == 3
        assert (username in row.missing) == (username in deployment.never_synced)
    assert job.users == (12, 10)


def test_coverage_threshold_holds_org_units_back_and_lists_them(couch):
    deployment = dep.build(["2024-01"], never_synced=2)  # both in CHU 4: 1 of 3 synced
    db = seed(couch, deployment.docs)
    d2 = Dhis2StandIn().start()
    try:
        cfg = config(couch, db, d2, coverage_threshold=50)
        report = execute(RunRequest(periods=["2024-01"], data_sets=[dep.DS_MONTHLY]), cfg)
        (result,) = report.results
        low = deployment.chw_chu[deployment.never_synced[0]]
        assert result.held_org_units == [low]
        assert [c.orgUnit for c in result.coverage if c.held] == [low]
        assert not [k for k in held(d2, "202401") if k[1] == low]  # not pushed
        assert [k for k in held(d2, "202401") if k[1] == dep.OU_DISTRICT]  # the rest was
    finally:
        d2.stop()


def region(couch, name: str, national: str, regional: str, births: int) -> str:
    """One CHT instance: a national place, a region under it, a CHW with a target doc."""
    nat = cht_docs.place(
        "nat", "National", "district_hospital", dhis={"orgUnit": national}, legacy=True
    )
    reg = cht_docs.place(
        f"reg-{name}", name, "health_center", parent=nat, dhis={"orgUnit": regional}
    )
    chw = cht_docs.person(f"chw-{name}", "CHW", parent={"_id": reg["_id"], "parent": nat})
    doc = cht_docs.target_doc(
        "2024-01", chw["_id"], f"u{name}", [cht_docs.target("births-this-month", births)]
    )
    settings = copy.deepcopy(dep.app_settings())
    return seed(
        couch, [cht_docs.settings_doc(settings), cht_docs.medic_admin_ddoc(), nat, reg, chw, doc]
    )


def test_two_instances_feeding_one_national_org_unit_are_summed(couch):
    north = region(couch, "north", dep.OU_DISTRICT, dep.OU_CHU[0], births=4)
    south = region(couch, "south", dep.OU_DISTRICT, dep.OU_CHU[1], births=7)
    d2 = Dhis2StandIn().start()
    try:
        cfg = config(couch, north, d2)
        cfg.extra_sources = [ChtSource(name="south", settings=cht(couch, south))]
        report = execute(RunRequest(periods=["2024-01"], data_sets=[dep.DS_MONTHLY]), cfg)
        assert report.status == "Successful"
        values = held(d2, "202401")
        assert values[(dep.DE_BIRTHS, dep.OU_DISTRICT, DEFAULT)] == "11"
        assert values[(dep.DE_BIRTHS, dep.OU_CHU[0], DEFAULT)] == "4"
        assert values[(dep.DE_BIRTHS, dep.OU_CHU[1], DEFAULT)] == "7"
        assert report.results[0].sources == ["cht", "south"]
    finally:
        d2.stop()


def test_a_failing_instance_blocks_only_the_totals_it_feeds(couch):
    north = region(couch, "north", dep.OU_DISTRICT, dep.OU_CHU[0], births=4)
    # the south instance defines only the monthly data set, and its view is missing
    settings = copy.deepcopy(dep.app_settings())
    settings["dhis_data_sets"] = [{"id": dep.DS_MONTHLY}]
    south = seed(couch, [cht_docs.settings_doc(settings)])
    d2 = Dhis2StandIn().start()
    try:
        cfg = config(couch, north, d2)
        cfg.extra_sources = [ChtSource(name="south", settings=cht(couch, south))]
        report = execute(RunRequest(periods=["2024-01"]), cfg)
        by_ds = {r.data_set: r for r in report.results}
        assert by_ds[dep.DS_MONTHLY].status == "error"
        assert "south" in by_ds[dep.DS_MONTHLY].error and "partial" in by_ds[dep.DS_MONTHLY].error
        assert by_ds[dep.DS_CHW].status == "success"
        assert not [k for k in d2.store.values() if k[0] == dep.DE_BIRTHS]  # no partial sum
        assert any(f.code == "cht_source_failed" and f.ids == ["south"] for f in report.findings)
        assert report.status == "Completed with error(s)"
    finally:
        d2.stop()


def test_completeness_is_registered_for_org_units_whose_values_were_accepted(couch, q1_db):
    d2 = Dhis2StandIn().start()
    try:
        cfg = config(couch, q1_db, d2, complete_data_sets=True)
        report = execute(RunRequest(periods=["2024-01"], data_sets=[dep.DS_MONTHLY]), cfg)
        (result,) = report.results
        expected = {dep.OU_DISTRICT, *dep.OU_CHU[:4]}
        assert set(result.completeness_registered) == expected
        registered = {(k[0], k[1], k[2]) for k in d2.store.registrations}
        assert registered == {(dep.DS_MONTHLY, "202401", ou) for ou in expected}
    finally:
        d2.stop()


def test_concurrent_runs_for_one_period_do_not_interleave(couch, q1_db, tmp_path):
    d2 = Dhis2StandIn().start()
    try:
        cfg = config(couch, q1_db, d2, lock_dir=str(tmp_path))
        d2.faults.delay_next(0.5, count=2, path="/api/dataValueSets", method="POST")
        spans: list[tuple[datetime, datetime]] = []

        def run() -> None:
            report = execute(RunRequest(periods=["2024-01"], data_sets=[dep.DS_MONTHLY]), cfg)
            posts = [e for e in report.exchanges if "dataValueSets" in e.name]
            spans.append((posts[0].started, posts[-1].finished or posts[-1].started))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(spans) == 2
        first, second = sorted(spans)
        # what the second run read from and wrote to DHIS2 began after the first ended
        assert first[1] <= second[0]

        refusing = cfg.model_copy(update={"concurrent_runs": "refuse"})
        slowed = d2.faults.delay_next(1.0, count=1, path="/api/dataValueSets", method="GET")
        errors: list[Exception] = []

        def refused() -> None:
            try:
                execute(RunRequest(periods=["2024-01"], data_sets=[dep.DS_MONTHLY]), refusing)
            except RunBusyError as exc:
                errors.append(exc)

        slow = threading.Thread(target=refused)
        slow.start()
        # the slow run holds the lock while DHIS2 is answering its read
        assert slowed.hit.wait(30), "the slow run never read DHIS2"
        refused()
        slow.join(60)
        assert len(errors) == 1 and "another run is pushing" in str(errors[0])
        assert f"{dep.DS_MONTHLY}/202401" in str(errors[0])
    finally:
        d2.stop()


def test_period_parsing_covers_the_financial_years():
    assert [m.tag for m in Period.parse("2024July").months][:2] == ["2024-07", "2024-08"]
    assert Period.parse("2024July").last.tag == "2025-06"
    assert Period.latest_completed("FinancialJuly", now=APRIL_2024).iso == "2022July"
    assert Period.latest_completed("Quarterly", now=APRIL_2024).iso == "2024Q1"


@pytest.fixture
def mediator_server(couch):
    """The mediator's HTTP app over real HTTP, with the env of a seeded CHT and DHIS2."""
    from devstack.net import ServerThread
    from mediator.service.app import create_app

    running: list[Any] = []

    def start(db: str, d2: Dhis2StandIn | None = None) -> str:
        env = {
            "CHT_URL": couch.url,
            "CHT_DB": db,
            "CHT_USERNAME": couch.username,
            "CHT_PASSWORD": couch.password,
            "DHIS2_URL": d2.url if d2 else "http://127.0.0.1:9",
            "DHIS2_USERNAME": "admin",
            "DHIS2_PASSWORD": "district",
        }
        server = ServerThread(create_app(env=env)).start()
        running.append(server)
        return server.url

    yield start
    for server in running:
        server.stop()


def test_coverage_endpoint_serves_json_and_csv(couch, mediator_server):
    import csv
    import io

    import requests

    deployment = dep.build(["2024-01"], never_synced=1)
    url = mediator_server(seed(couch, deployment.docs))
    answer = requests.get(
        f"{url}/coverage", params={"period": "2024-01", "dataSet": dep.DS_MONTHLY}, timeout=30
    )
    assert answer.status_code == 200
    (table,) = answer.json()["coverage"]
    assert (table["users_expected"], table["users_synced"]) == (12, 11)
    rows = {r["orgUnit"]: r for r in table["orgUnits"]}
    assert rows[dep.OU_DISTRICT]["missing"] == deployment.never_synced
    as_csv = requests.get(
        f"{url}/coverage",
        params={"period": "2024-01", "dataSet": dep.DS_MONTHLY, "format": "csv"},
        timeout=30,
    )
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(as_csv.text)))
    district = next(line for line in lines if line["orgUnit"] == dep.OU_DISTRICT)
    assert (district["expected"], district["synced"], district["missing"]) == (
        "12",
        "11",
        deployment.never_synced[0],
    )
    bad = requests.get(f"{url}/coverage", params={"period": "2024-13"}, timeout=30)
    assert bad.status_code == 400 and "does not exist" in bad.json()["error"]


def test_backfill_through_the_push_endpoint_reports_each_period(couch, mediator_server):
    import json

    import requests

    months = [f"2024-{m:02d}" for m in range(1, 7)]
    d2 = Dhis2StandIn().start()
    try:
        url = mediator_server(seed(couch, dep.build(months).docs), d2)
        answer = requests.post(
            f"{url}/push",
            json={"from": "2024-01", "to": "2024-06", "dataSet": dep.DS_MONTHLY},
            timeout=120,
        )
        envelope = answer.json()
        assert envelope["status"] == "Successful"
        report = json.loads(envelope["response"]["body"])
        assert [r["period"] for r in report["results"]] == [f"2024{m:02d}" for m in range(1, 7)]
        assert all(r["counts"]["imported"] > 0 for r in report["results"])
        assert len([k for k in d2.store.values() if k[1] == "202406"]) > 0
    finally:
        d2.stop()
