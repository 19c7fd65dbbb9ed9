"""Masking never changes data; secrets are decided in one place (mediator/secrets.py).

Seen: with DHIS2's well-known default password ``district``, the CHT place id
``district-1`` became ``**********-1`` in the transaction OpenHIM stored.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mediator.cli.commands import main
from mediator.model.report import DataSetResult, ImportCount, OrgUnitCoverage, RunReport
from mediator.model.values import Exchange
from mediator.openhim.console_config import ConsoleConfig, load_registration
from mediator.run.request import RunRequest
from mediator.service.app import create_app
from mediator.service.history import STATE_FILE, RunHistory
from mediator.service.serve import serve
from mediator.settings.config import RuntimeConfig
from mediator.settings.secrets import (
    MASK,
    Scrubber,
    is_weak,
    mask_headers,
    mask_query,
    secret_values,
    weak_secrets,
)

REAL = "Dhis2-Secret-4410"  # a strong secret: masked wherever free text shows it
ENV = {
    "CHT_URL": "https://cht.example.org",
    "CHT_USERNAME": "reader",
    "CHT_PASSWORD": "Cht-Secret-7731",
    "DHIS2_URL": "https://dhis2.example.org",
    "DHIS2_USERNAME": "admin",
    "DHIS2_PASSWORD": "district",  # DHIS2's demo password, and a prefix of CHT place ids
    "DHIS2_TOKEN": REAL,
}
NOW = datetime(2024, 3, 3, 2, 0, tzinfo=UTC)


def district_run(request: RunRequest, config: RuntimeConfig) -> RunReport:
    """A run over the place ``district-1`` whose DHIS2 echoed a real secret in an error."""
    error_body = json.dumps({"message": f"token {REAL} refused for org unit district-1"})
    return RunReport(
        run_id="run-district-1",
        trigger=request.trigger,
        finished=NOW,
        periods=["202402"],
        data_sets=["VTdjfLXXmoi"],
        results=[
            DataSetResult(
                data_set="VTdjfLXXmoi",
                period="202402",
                status="warning",
                counts=ImportCount(imported=4),
                error=f"DHIS2 answered 409 for district-1 (token {REAL})",
                coverage=[
                    OrgUnitCoverage(
                        orgUnit="OuDistrict1",
                        name="district-1",
                        places=["district-1"],
                        expected=2,
                        synced=1,
                        missing=["chw-district-1"],
                    )
                ],
            )
        ],
        exchanges=[
            Exchange(
                peer="DHIS2",
                data_set="VTdjfLXXmoi",
                period="202402",
                name="DHIS2 dataValueSets",
                method="POST",
                url="https://dhis2.example.org/api/dataValueSets",
                path="/api/dataValueSets",
                request_headers={"Authorization": "Basic YWRtaW46ZGlzdHJpY3Q="},
                request_body=json.dumps({"dataValues": [{"orgUnit": "district-1"}]}),
                status=409,
                response_body=error_body,
            )
        ],
    )


def test_a_district_place_id_survives_in_the_envelope_and_the_history(tmp_path: Path) -> None:
    history = RunHistory(path=tmp_path / STATE_FILE)
    app = create_app(
        registration=load_registration(env={}),
        env=ENV,
        runner=district_run,
        clock=lambda: NOW,
        history=history,
    )
    answer = app.test_client().get("/push?period=2024-02")
    text = answer.get_data(as_text=True)
    envelope = json.loads(text)
    report = json.loads(envelope["response"]["body"])
    assert report["run_id"] == "run-district-1"
    assert report["results"][0]["error"] == f"DHIS2 answered 409 for district-1 (token {MASK})"
    (step,) = envelope["orchestrations"]
    assert step["request"]["headers"] == {}  # no credential header is ever shown
    assert "*-1" not in text and "run-****" not in text
    # the real secret in the result's error is masked
    assert REAL not in text
    # the status page's history and its state file keep the ids too
    stored = (tmp_path / STATE_FILE).read_text()
    assert REAL not in stored and "*-1" not in stored
    assert "run-district-1" in stored and "chw-district-1" in stored
    page = app.test_client().get("/").get_data(as_text=True)
    assert "chw-district-1" in page and REAL not in page


def test_health_and_coverage_mask_with_the_same_list() -> None:
    """A console-saved password inside a configuration problem: both endpoints hide it."""
    secret = "Console-Secret-3141"
    registration = load_registration(env={})
    console = ConsoleConfig(registration["configDefs"])
    assert console.apply({"chtPassword": secret})
    env = {k: v for k, v in ENV.items() if not k.startswith("CHT_")}
    env["CHT_URL"] = f"ftp://reader:{secret}@cht.example.org"  # refused, and echoed
    app = create_app(
        registration=registration, console=console, env=env, runner=district_run, clock=lambda: NOW
    )
    health = app.test_client().get("/health").get_json()["config"]["error"]
    coverage = app.test_client().get("/coverage?period=2024-02")
    assert coverage.status_code == 500
    shown = coverage.get_json()["error"]
    assert secret not in health and secret not in shown
    assert MASK in health and MASK in shown
    assert health in shown  # the same message, masked the same way


def test_the_one_list_of_secrets() -> None:
    env = {
        "CHT_PASSWORD": "a-Cht-pw-1",
        "CHT_NORTH_PASSWORD": "a-North-pw-2",
        "DHIS2_TOKEN": "d2pat-3",
        "OPENHIM_PASSWORD": "a-Him-pw-4",
        "MEDIATOR_PUSH_PASSWORD": "a-Push-pw-5",
        "CHT_USERNAME": "reader",
        "MEDIATOR_PUSH_USERNAME": "route",
    }
    console = {"dhis2Password": "a-Console-pw-6", "chtUsername": "other"}
    assert set(secret_values(env, console)) == {
        "a-Cht-pw-1",
        "a-North-pw-2",
        "d2pat-3",
        "a-Him-pw-4",
        "a-Push-pw-5",
        "a-Console-pw-6",
    }
    # the console's secrets are exactly its configDefs of type password
    defs = load_registration(env={})["configDefs"]
    secret_params = {d["param"] for d in defs if d["type"] == "password"}
    values = {d["param"]: f"Value-of-{d['param']}-123" for d in defs if d["type"] == "string"}
    values |= {param: f"Value-of-{param}-123" for param in secret_params}
    assert set(secret_values({}, values)) == {f"Value-of-{p}-123" for p in secret_params}


@pytest.mark.parametrize(
    ("secret", "weak"),
    [
        ("district", True),
        ("admin", True),
        ("Password", True),
        ("Sh0rt!", True),
        ("kakamega", True),  # a single word: a place name
        ("Dhis2-Secret-4410", False),
        ("correct horse battery staple", False),
    ],
)
def test_weak_secrets(secret: str, weak: bool) -> None:
    assert is_weak(secret) is weak


def test_a_weak_secret_is_never_masked_by_value_a_strong_one_is() -> None:
    scrub = Scrubber(["district", REAL])
    assert scrub.text(f"district-1 refused {REAL}") == f"district-1 refused {MASK}"


def test_headers_and_query_are_masked_by_name_only() -> None:
    assert mask_headers([("Authorization", "ApiToken d2pat-xyz"), ("Accept", "x")]) == {
        "Authorization": f"ApiToken {MASK}",
        "Accept": "x",
    }
    assert mask_headers({"Cookie": "JSESSIONID=1", "X-Token": "t"}) == {
        "Cookie": MASK,
        "X-Token": MASK,
    }
    query = 'startkey="target~2024-01~"&keys=%5B%22district-1%22%5D&password=pw&api_key=k'
    assert mask_query(query) == (
        f'startkey="target~2024-01~"&keys=%5B%22district-1%22%5D&password={MASK}&api_key={MASK}'
    )


def weak_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "weak secret" in r.getMessage()]


def test_serve_reports_a_weak_secret_by_its_variable_once(caplog) -> None:
    caplog.set_level(logging.WARNING)
    env = {**ENV, "MEDIATOR_SCHEDULE": "not a cron"}  # so that it stops right after
    assert serve(env) == 2
    (line,) = weak_lines(caplog)
    assert "DHIS2_PASSWORD" in line and "district" not in line
    assert weak_secrets(ENV) == ["DHIS2_PASSWORD"]


def test_the_command_line_reports_a_weak_secret_once(caplog, monkeypatch) -> None:
    caplog.set_level(logging.WARNING)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CHT_URL", "not a url")  # stops before any request
    assert main(["push", "--period", "2024-02"]) == 2
    (line,) = weak_lines(caplog)
    assert "DHIS2_PASSWORD" in line and "district" not in line
