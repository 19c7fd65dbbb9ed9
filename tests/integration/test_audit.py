"""``python -m mediator audit`` and ``GET /audit`` against pouchdb-server and the DHIS2
stand-in: after values are changed by hand in DHIS2 and a CHW syncs late, the audit lists
exactly those cells with both values and exits 1, nothing is posted, and the push it
names leaves it exiting 0.

What the cells should be is found here independently of the planner: the engine's
numbers (``compute``) beside the stand-in's store, compared as numbers."""

from __future__ import annotations

import json
import shlex
from typing import Any

import requests

from devstack import cht_docs as d
from devstack import deployment as dep
from devstack.dhis2_standin import Dhis2StandIn
from devstack.net import ServerThread
from mediator.cli.commands import main
from mediator.run.pipeline import compute
from mediator.run.request import RunRequest
from mediator.service.app import create_app
from mediator.settings.config import ChtSettings, Dhis2Settings, RuntimeConfig

JAN = "2024-01"
TYPED = dep.OU_CHU[4]  # assigned to the data sets in DHIS2; no CHT place: paper reporting
Cellkey = tuple[str, str, str, str, str, str]  # data set, period, ou, de, coc, aoc


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def audited(capsys, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli(capsys, "audit", "--period", JAN, "--json", *args)
    return code, json.loads(out)


def cells_of(found: dict[str, Any]) -> dict[Cellkey, tuple[str, str | None, str | None]]:
    return {
        (
            c["data_set"],
            c["period"],
            c["org_unit"],
            c["data_element"],
            c["category_option_combo"],
            c["attribute_option_combo"],
        ): (c["state"], c["dhis2_value"], c["computed_value"])
        for c in found["cells"]
        if c["state"] != "left_alone"
    }


def number(text: str | None) -> float | None:
    return None if text is None else float(text)


def differences(couch, db: str, d2: Dhis2StandIn) -> dict[Cellkey, tuple[str, Any, Any]]:
    """What differs, found without the planner: every value the engine computes beside
    every live value of the stand-in, per data set (its data elements), as numbers; a
    zero is no value (the deployment's elements store no zeros)."""
    config = RuntimeConfig(
        cht=ChtSettings(url=couch.url, db=db, username=couch.username, password=couch.password),
        dhis2=Dhis2Settings(url=d2.url, username="admin", password="district"),
    )
    meta = dep.dhis2_metadata(chus=5)
    elements = {
        ds["id"]: {e["dataElement"]["id"] for e in ds["dataSetElements"]} for ds in meta["dataSets"]
    }
    period = JAN.replace("-", "")
    found: dict[Cellkey, tuple[str, Any, Any]] = {}
    for job in compute(RunRequest(periods=[JAN]), config).jobs:
        computed = {
            (dv.orgUnit, dv.dataElement, dv.categoryOptionCombo or dep.DEFAULT_COC): dv.value
            for dv in job.merged.data_values()
        }
        held = {
            (ou, de, coc): value
            for (de, pe, ou, coc, _aoc), value in d2.store.values().items()
            if pe == period and de in elements[job.data_set] and value and ou != TYPED
        }
        for key in computed.keys() | held.keys():
            mine, theirs = computed.get(key, 0), held.get(key)
            if theirs is not None and float(theirs) == float(mine):
                continue
            if theirs is None and mine == 0:
                continue
            state = (
                "only_computed"
                if theirs is None
                else "differs"
                if key in computed
                else "only_in_dhis2"
            )
            ou, de, coc = key
            computed_text = None if key not in computed else str(mine)
            cell = (job.data_set, period, ou, de, coc, dep.DEFAULT_COC)
            found[cell] = (state, theirs, computed_text)
    return found


def test_hand_edits_and_a_late_sync_are_listed_with_both_values_and_the_named_push_repairs_them(
    couch, cht_db, stack, capsys
):
    d2, _ = stack
    d2.store.seed(dep.DE_BIRTHS, "202401", TYPED, "17")  # a person typed it, on paper's behalf
    assert cli(capsys, "push", "--period", JAN, "--json")[0] == 0
    code, found = audited(capsys)
    assert (code, found["status"], cells_of(found)) == (0, "agrees", {})
    assert found["repair"] == []
    (left,) = [c for c in found["cells"] if c["state"] == "left_alone"]
    assert (left["org_unit"], left["dhis2_value"], left["stored_by"]) == (TYPED, "17", "seed")

    # by hand in DHIS2: one value changed, one deleted, one typed where CHT counts zero
    store = d2.store.values()
    births = (dep.DE_BIRTHS, "202401", dep.OU_CHU[0], dep.DEFAULT_COC, dep.DEFAULT_COC)
    deliveries = (dep.DE_FACILITY_DELIVERIES, "202401", dep.OU_CHU[1], dep.DEFAULT_COC)
    deliveries += (dep.DEFAULT_COC,)
    assert store[births] and store[deliveries]
    d2.store.seed(*births[:3], str(int(store[births] or 0) + 5), *births[3:])
    d2.store.get(deliveries).deleted = True  # type: ignore[union-attr]
    # CHU 1's CHWs saw no ANC visit under 20: a zero, which DHIS2 stores as no value
    zero = (dep.DE_ANC_VISITS, "202401", dep.OU_CHU[0], dep.COC_UNDER_20, dep.DEFAULT_COC)
    assert zero not in store
    d2.store.seed(*zero[:3], "3", *zero[3:])
    # a CHW who had never synced syncs January, after the push
    silent = "chw43"
    late = d.target_doc(
        JAN,
        "chw-4-3",
        silent,
        [d.target("births-this-month", 4), d.target("households-visited", 21)],
        updated_date=1706745600000,
    )
    couch.session().put(f"{couch.url}/{cht_db}/{late['_id']}", json=late).raise_for_status()

    want = differences(couch, cht_db, d2)
    assert len(want) >= 6  # 3 hand edits; births and households at CHU 4 and the district
    posts = len(d2.store.posts())
    code, found = audited(capsys)
    assert code == 1 and found["status"] == "differs"
    got = cells_of(found)
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in want.items()}
    for key, (_, theirs, mine) in want.items():  # both values, DHIS2's as it holds it
        _, shown_theirs, shown_mine = got[key]
        assert (shown_theirs, number(shown_mine)) == (theirs, number(mine)), key
    assert len(d2.store.posts()) == posts  # an audit posts nothing

    for command in found["repair"]:
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "mediator"] and argv[3] == "push"
        assert cli(capsys, *argv[3:], "--json")[0] == 0
    code, found = audited(capsys)
    assert (code, found["status"], cells_of(found)) == (0, "agrees", {})
    assert d2.store.values()[(dep.DE_BIRTHS, "202401", TYPED, dep.DEFAULT_COC, dep.DEFAULT_COC)]
    assert differences(couch, cht_db, d2) == {}


def test_the_terminal_summary_and_the_csv_say_the_same_cells(couch, cht_db, stack, capsys):
    d2, _ = stack
    assert cli(capsys, "push", "--period", JAN, "--json")[0] == 0
    births = (dep.DE_BIRTHS, "202401", dep.OU_CHU[0], dep.DEFAULT_COC, dep.DEFAULT_COC)
    d2.store.seed(*births[:3], "99", *births[3:])
    code, out, err = cli(capsys, "audit", "--period", JAN, "--csv")
    assert code == 1
    assert out.splitlines()[1:] == [
        f"{dep.DS_MONTHLY},202401,{dep.OU_CHU[0]},{dep.DE_BIRTHS},{dep.DEFAULT_COC},"
        f"{dep.DEFAULT_COC},differs,99,{differences(couch, cht_db, d2)[births_cell()][2]},seed"
    ]
    assert "1 cell differs" in err
    assert f"python -m mediator push --data-set {dep.DS_MONTHLY} --period 202401" in err
    code, out, _ = cli(capsys, "audit", "--period", JAN, "--summary")
    assert code == 1
    assert f"org unit {dep.OU_CHU[0]} data element {dep.DE_BIRTHS}" in out
    assert "DHIS2 holds 99 (stored by seed), CHT computes" in out
    assert out.rstrip().endswith(
        f"python -m mediator push --data-set {dep.DS_MONTHLY} --period 202401"
    )


def births_cell() -> Cellkey:
    return (
        dep.DS_MONTHLY,
        "202401",
        dep.OU_CHU[0],
        dep.DE_BIRTHS,
        dep.DEFAULT_COC,
        dep.DEFAULT_COC,
    )


def test_get_audit_is_protected_like_push_and_answers_json_or_csv(couch, cht_db, stack, capsys):
    d2, env = stack
    assert cli(capsys, "push", "--period", JAN, "--json")[0] == 0
    d2.store.seed(dep.DE_BIRTHS, "202401", dep.OU_CHU[0], "99")
    app = create_app(env=env, push_auth=("openhim-route", "Route-Pa55word-long"))
    with ServerThread(app) as server:
        url = f"{server.url}/audit"
        assert requests.get(url, params={"period": JAN}, timeout=30).status_code == 401
        auth = ("openhim-route", "Route-Pa55word-long")
        answer = requests.get(url, params={"period": JAN}, auth=auth, timeout=60)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
        body = answer.json()
        assert body["status"] == "differs" and body["totals"]["differs"] == 1
        assert cells_of(body) == {
            births_cell(): ("differs", "99", cells_of(body)[births_cell()][2])
        }
        assert body["repair"] == [
            f"python -m mediator push --data-set {dep.DS_MONTHLY} --period 202401"
        ]
        csv = requests.get(url, params={"period": JAN, "format": "csv"}, auth=auth, timeout=60)
        assert csv.headers["Content-Type"].startswith("text/csv")
        assert [line.split(",")[6] for line in csv.text.splitlines()[1:]] == ["differs"]


def test_org_units_held_by_the_coverage_threshold_are_said_and_not_compared(
    couch, cht_db, stack, capsys, monkeypatch
):
    # CHU 4 has 2 of its 3 CHWs synced (chw43 never did): 67 %, below 90, so a push holds
    # it; the district's 11 of 12 (92 %) goes out
    d2, _ = stack
    monkeypatch.setenv("MEDIATOR_COVERAGE_THRESHOLD", "90")
    held = dep.OU_CHU[3]
    assert cli(capsys, "push", "--period", JAN, "--json")[0] == 0
    assert not [k for k in d2.store.values() if k[2] == held]
    d2.store.seed(dep.DE_BIRTHS, "202401", held, "40")  # typed while the push held it
    code, found = audited(capsys)
    assert (code, found["status"], cells_of(found)) == (0, "agrees", {})
    for result in found["results"]:
        assert result["held_org_units"] == [held] and result["swept"] is False
    code, out, _ = cli(capsys, "audit", "--period", JAN, "--summary")
    assert code == 0
    assert "held by the coverage threshold, not compared" in out and held in out
