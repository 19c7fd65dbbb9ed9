"""``python -m mediator push``: the run report on stdout and the exit status ops script on."""

from __future__ import annotations

import json

import pytest

from devstack import deployment as dep
from devstack.dhis2_standin import Dhis2StandIn
from mediator.cli import main


@pytest.fixture
def env(couch, monkeypatch):
    deployment = dep.build(["2024-01"])
    db = f"medic-cli-{id(deployment)}"
    couch.create_db(db)
    couch.bulk(db, deployment.docs)
    d2 = Dhis2StandIn(version="2.40.3").start()
    for key, value in {
        "CHT_URL": couch.url,
        "CHT_DB": db,
        "CHT_USERNAME": couch.username,
        "CHT_PASSWORD": couch.password,
        "DHIS2_URL": d2.url,
        "DHIS2_USERNAME": "admin",
        "DHIS2_PASSWORD": "district",
    }.items():
        monkeypatch.setenv(key, value)
    yield d2, db
    d2.stop()


def run(capsys, *args: str) -> tuple[int, dict | None, str]:
    capsys.readouterr()
    code = main(["push", *args])
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip() else None, out.err


def test_clean_push_exits_0_and_prints_the_report(env, capsys):
    d2, _ = env
    code, report, _ = run(capsys, "--period", "2024-01")
    assert code == 0
    assert {r["data_set"]: r["status"] for r in report["results"]} == {
        dep.DS_MONTHLY: "success",
        dep.DS_CHW: "success",
    }
    assert sum(r["counts"]["imported"] for r in report["results"]) == len(d2.store.values())


def test_dry_run_stores_nothing(env, capsys):
    d2, _ = env
    code, report, _ = run(capsys, "--period", "202401", "--dry-run")
    assert code == 0
    assert report["dry_run"] is True
    assert d2.store.values() == {}


def test_rejected_rows_exit_1(env, couch, capsys):
    _, db = env
    ghost = {"_id": "chu-ghost", "parent": {"_id": "district-1"}}
    docs = [
        {**ghost, "type": "health_center", "name": "Ghost", "dhis": {"orgUnit": "Zz9Unknown1"}},
        {"_id": "chw-ghost", "type": "person", "name": "CHW", "parent": ghost},
        {
            "_id": "target~2024-01~chw-ghost~org.couchdb.user:ghost",
            "type": "target",
            "owner": "chw-ghost",
            "targets": [{"id": "births-this-month", "value": {"pass": 1, "total": 1}}],
        },
    ]
    couch.session().post(f"{couch.url}/{db}/_bulk_docs", json={"docs": docs}).raise_for_status()
    code, report, err = run(capsys, "--period", "2024-01", "--data-set", dep.DS_MONTHLY)
    assert code == 1
    (result,) = report["results"]
    assert result["status"] == "warning"
    assert [r["orgUnit"] for r in result["rejected"]] == ["Zz9Unknown1"]
    # explained in plain words, naming the CHT place to fix
    kinds = {d["kind"]: d for d in report["diagnoses"]}
    assert "chu-ghost" in kinds["E7612"]["fix"]
    assert "org_units_not_assigned" in kinds
    assert "Org unit unknown to DHIS2" in err and "dhis.orgUnit on CHT place chu-ghost" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--period", "2024-13"], "does not exist"),
        (["--period", "2024-01", "--data-set", "not-a-uid"], "not a DHIS2 id"),
        (["--period", "2024-01", "--org-unit", "x/../../api"], "not a DHIS2 id"),
        (["--period", "2024-01", "--data-set", "AbCdEfGhIj1"], "is not defined"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(env, capsys, args, says):
    d2, _ = env
    try:
        code, _, err = run(capsys, *args)
    except SystemExit as exc:  # argparse rejects a malformed period itself
        code, err = exc.code, capsys.readouterr().err
    assert code == 2
    assert says in err
    assert "Traceback" not in err
    assert d2.store.posts("/api/dataValueSets") == []


def test_refused_dhis2_credentials_are_explained(env, capsys, monkeypatch):
    monkeypatch.setenv("DHIS2_PASSWORD", "wrong-Passw0rd")
    code, report, err = run(capsys, "--period", "2024-01")
    assert code == 1
    assert {d["kind"] for d in report["diagnoses"]} == {"dhis2_unauthorized"}
    assert "DHIS2 refused the credentials" in err and "DHIS2_PASSWORD" in err
    assert "wrong-Passw0rd" not in err


def test_unreachable_cht_exits_2_and_pushes_nothing(env, capsys, monkeypatch):
    from devstack.net import free_port

    d2, _ = env
    monkeypatch.setenv("CHT_URL", f"http://127.0.0.1:{free_port()}")
    code, _, err = run(capsys, "--period", "2024-01")
    assert code == 2
    assert "unreachable" in err
    assert d2.store.posts("/api/dataValueSets") == []
