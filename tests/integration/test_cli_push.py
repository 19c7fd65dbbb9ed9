"""``python -m mediator push``: the run report on stdout and the exit status ops script on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from devstack import deployment as dep
from devstack.dhis2_standin import Dhis2StandIn
from mediator.cli.commands import main


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


# -- for people: the summary, the JSON for scripts, progress, resume, --help ----------------


def summary(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["push", "--summary", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_json_report_has_the_http_answers_status_totals_and_resume(env, capsys):
    d2, _ = env
    code, report, err = run(capsys, "--period", "2024-01")
    assert code == 0
    assert report["status"] == "Successful"
    assert report["totals"]["imported"] == len(d2.store.values()) > 0
    assert report["resume"] == []
    # per result, the fields the guide documents
    for result in report["results"]:
        documented = {"values_sent", "values_unchanged", "values_zero", "delivered"}
        assert documented <= set(result)
        sent, unchanged, zeros = (
            result[k] for k in ("values_sent", "values_unchanged", "values_zero")
        )
        assert result["delivered"] == sent + unchanged + zeros
        assert unchanged == 0  # a first push into an empty DHIS2: nothing was already there
    assert err.splitlines()[-1].startswith("Pushed 2 of 2:")


def counts(out: str, data_set: str, period: str) -> list[int]:
    """imported, updated, deleted, unchanged, rejected of a summary's row."""
    row = re.search(rf"{data_set}\)?\s+{period}\s+\S+ \w+((?:\s+\d+){{5}})$", out, re.M)
    assert row is not None, out
    return [int(n) for n in row.group(1).split()]


def test_the_summary_shows_each_pair_and_unchanged_values_on_a_rerun(env, capsys):
    code, out, err = summary(capsys, "--period", "2024-01")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Run ") and lines[0].endswith(": Successful")
    assert "unchanged" in lines[1] and "rejected" in lines[1]
    assert counts(out, dep.DS_MONTHLY, "202401")[0] > 0
    # progress on stderr: each data set and period as it is reached
    assert f"{dep.DS_MONTHLY} 202401: comparing with what DHIS2 holds" in err
    assert f"{dep.DS_CHW} 202401: sending" in err
    assert out.splitlines()[-1].startswith("Pushed 2 of 2:")
    # nothing changed: the rerun sends nothing, and says the values are unchanged
    code, again, _ = summary(capsys, "--period", "2024-01")
    imported, updated, deleted, unchanged, rejected = counts(again, dep.DS_MONTHLY, "202401")
    assert (imported, updated, deleted, rejected) == (0, 0, 0, 0)
    assert unchanged >= 1


def test_dhis2_unreachable_stops_at_once_and_says_how_to_resume(env, capsys, monkeypatch):
    from devstack.net import free_port

    monkeypatch.setenv("DHIS2_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DHIS2_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("DHIS2_MAX_RETRY_SECONDS", "1")
    code, out, err = summary(capsys, "--from", "2024-01", "--to", "2024-01")
    assert code == 1
    # every failed attempt is said while it happens: minutes of silence no more
    assert err.count("failed attempt") == 3
    assert "Not completed, 2:" in out and "DHIS2 could not be reached" in out
    assert "rerun the transaction from the OpenHIM console" not in out  # the CLI's advice
    assert "run the command the summary ends with" in out
    assert out.splitlines()[-1].strip() == (
        f"python -m mediator push --data-set {dep.DS_MONTHLY} --data-set {dep.DS_CHW} "
        "--period 202401"
    )
    code, report, _ = run(capsys, "--period", "2024-01")
    assert report["resume"] == [out.splitlines()[-1].strip()]


def test_an_org_unit_no_cht_place_carries_is_refused(env, capsys):
    d2, _ = env
    code, report, err = run(capsys, "--period", "2024-01", "--org-unit", "AbCdEfGhIj1")
    assert code == 2 and report is None
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "org unit AbCdEfGhIj1: no CHT place carries it (dhis.orgUnit)" in line
    assert d2.store.posts("/api/dataValueSets") == []
    # an org unit CHT maps is pushed as before
    code, report, _ = run(capsys, "--period", "2024-01", "--org-unit", dep.OU_CHU[0])
    assert code == 0 and report["totals"]["imported"] > 0


def test_the_push_endpoint_refuses_the_same_org_unit(env):
    from mediator.service.app import create_app

    d2, _ = env
    app = create_app(env=dict(os.environ))
    answer = app.test_client().get("/push?period=2024-01&orgUnit=AbCdEfGhIj1")
    assert answer.status_code == 400
    envelope = json.loads(answer.get_data(as_text=True))
    assert "no CHT place carries it" in json.loads(envelope["response"]["body"])["error"]
    assert d2.store.posts("/api/dataValueSets") == []


def test_a_command_line_run_is_on_the_status_page(env, capsys):
    from mediator.service.app import create_app

    d2, _ = env
    monkey_state = os.environ["MEDIATOR_STATE_DIR"]
    code, _, _ = run(capsys, "--period", "2024-01")
    assert code == 0
    app = create_app(env={"MEDIATOR_STATE_DIR": monkey_state, **dict(os.environ)})
    html = app.test_client().get("/").get_data(as_text=True)
    assert "command line" in html
    # the data set's name, as DHIS2 gave it, next to its id
    name = d2.metadata.get("dataSets", dep.DS_MONTHLY)["name"]
    assert f"{name} <code>{dep.DS_MONTHLY}</code>" in html


def test_waiting_for_another_run_says_whose_and_since_when(env):
    from mediator.run.locks import RunLocks

    d2, _ = env

    locks = RunLocks(
        os.environ["MEDIATOR_LOCK_DIR"], target=d2.url, run_id="monthly-run", trigger="openhim"
    )
    with locks.hold([f"{dep.DS_MONTHLY}/202401"]):
        pushing = subprocess.Popen(
            [sys.executable, "-m", "mediator", "push", "--period", "2024-01", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        assert pushing.stderr is not None
        for line in pushing.stderr:
            if "waiting for" in line:
                break
        else:
            raise AssertionError("the run never said it waits")
        assert line.startswith("warning: waiting for the run of ")
        assert f"{os.getpid()} (started 20" in line and "run monthly-run, openhim" in line
        assert d2.store.posts("/api/dataValueSets") == []
    out, _ = pushing.communicate(timeout=120)
    assert pushing.returncode == 0 and json.loads(out)["status"] == "Successful"


@pytest.mark.parametrize("command", ["preview", "push", "serve"])
def test_help_lists_the_environment_it_reads(command, capsys):
    from mediator.settings.variables import ENV_VARS

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    for var in ENV_VARS:
        assert (f"{var.name}={var.example}" in shown) == (command in var.commands), var.name
    if command != "serve":
        assert "YYYY-MM" in shown and "YYYYQn" in shown


def test_version_and_plain_top_level_help(capsys):
    from mediator import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"python -m mediator {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    assert "``" not in shown and "preview" in shown and "exit status" in shown


def test_preview_refuses_an_org_unit_no_cht_place_carries(env, capsys):
    capsys.readouterr()
    assert main(["preview", "--period", "2024-01", "--org-unit", "AbCdEfGhIj1"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "org unit AbCdEfGhIj1: no CHT place carries it" in out.err


def test_serve_refuses_a_bad_time_zone_in_one_line(caplog):
    import logging

    from mediator.service.serve import serve

    caplog.set_level(logging.ERROR)
    assert serve({"MEDIATOR_TIMEZONE": "Nairobi", "MEDIATOR_PORT": "0"}) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "MEDIATOR_TIMEZONE='Nairobi' is not an IANA time zone" in line
    assert "Africa/Nairobi" in line and "Traceback" not in caplog.text
