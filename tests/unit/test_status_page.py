"""The status page (GET /) and the run history behind it, with a fake runner.

The browser test (tests/browser/) checks the page as Chromium lays it out after
a real run; these check the rules: protection, escaping, the empty state, the
history's limit and its state file (kept across a restart, without secrets).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask

from mediator.model.report import (
    DataSetResult,
    ImportCount,
    OrgUnitCoverage,
    RejectedRow,
    RunReport,
)
from mediator.openhim.console_config import load_registration
from mediator.run.request import RunInputError, RunRequest
from mediator.service.app import create_app
from mediator.service.history import STATE_FILE, RunHistory, summarize
from mediator.settings.config import RuntimeConfig

DHIS2_PW = "Dhis2-Secret-4410"
ENV = {
    "CHT_URL": "https://cht.example.org",
    "CHT_USERNAME": "reader",
    "CHT_PASSWORD": "Cht-Secret-7731",
    "DHIS2_URL": "https://dhis2.example.org",
    "DHIS2_USERNAME": "admin",
    "DHIS2_PASSWORD": DHIS2_PW,
}
DS = "VTdjfLXXmoi"
NOW = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)
EVIL = "<script>alert(1)</script>"


def report(run_id: str = "run-1", *, error: str | None = None) -> RunReport:
    """Two periods; the newest has a held org unit, a missing CHW with a hostile name."""

    def result(period: str, imported: int) -> DataSetResult:
        return DataSetResult(
            data_set=DS,
            period=period,
            status="warning",
            counts=ImportCount(imported=imported, updated=2, ignored=1, deleted=0),
            rejected=[RejectedRow(dataElement="d", orgUnit="o", period=period, reason="E7612")],
            users_expected=5,
            users_synced=3,
            held_org_units=["OuHeld00001"],
            error=error,
            coverage=[
                OrgUnitCoverage(orgUnit="OuGood00001", name="CHU Good", expected=3, synced=3),
                OrgUnitCoverage(
                    orgUnit="OuHeld00001",
                    name=f"CHU {EVIL}",
                    expected=2,
                    synced=0,
                    missing=[f"chw{EVIL}", "o'brien"],
                    newest_doc=NOW - timedelta(days=3),
                    held=True,
                ),
            ],
        )

    return RunReport(
        run_id=run_id,
        trigger="http",
        started=NOW,
        finished=NOW + timedelta(seconds=5),
        periods=["202404", "202405"],
        data_sets=[DS],
        results=[result("202404", 7), result("202405", 10)],
    )


def app_with(
    runner: object, *, push_auth: tuple[str, str] | None = None, history: RunHistory | None = None
) -> Flask:
    return create_app(
        registration=load_registration(env={}),
        env=ENV,
        runner=runner,  # type: ignore[arg-type]
        clock=lambda: NOW + timedelta(minutes=1),
        push_auth=push_auth,
        history=history,
    )


def test_no_run_yet_says_so() -> None:
    page = app_with(lambda r, c: report()).test_client().get("/")
    assert page.status_code == 200
    assert page.content_type.startswith("text/html")
    html = page.get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "No run yet" in html
    assert "<svg" not in html


def test_page_shows_the_run_escapes_cht_names_and_runs_no_script() -> None:
    client = app_with(lambda r, c: report()).test_client()
    assert client.get("/push?period=2024-05").status_code == 207
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert EVIL not in html  # usernames and names come from CHT: escaped
    assert "chw&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "o&#39;brien" in html
    assert "<script" not in html
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    # the newest period only in the coverage view; held marked in words, not colour
    assert "Sync coverage, May 2024 (202405)" in html
    assert "held: not pushed" in html
    assert "3 days ago" in html
    assert len(re.findall(r'<g class="bar-group"', html)) == 2
    # totals of the latest run: both periods
    totals = re.search(r'<tr id="latest-totals">(.*?)</tr>', html, re.S)
    assert totals is not None
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', totals.group(1)))
    assert counts == {
        "imported": "17",
        "updated": "4",
        "ignored": "2",
        "deleted": "0",
        "unchanged": "0",
        "rejected": "2",
    }
    assert client.get("/status").get_data(as_text=True).count("bar-group") == 2


def test_page_is_protected_like_push() -> None:
    client = app_with(lambda r, c: report(), push_auth=("hrio", "s3cret-pw")).test_client()
    for path in ("/", "/status"):
        refused = client.get(path)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Basic ")
        wrong = client.get(path, auth=("hrio", "nope"))
        assert wrong.status_code == 401
        assert client.get(path, auth=("hrio", "s3cret-pw")).status_code == 200


def test_a_failed_run_is_listed_with_its_reason_and_keeps_the_last_coverage() -> None:
    calls = iter([report(), RunInputError("data set QX4ZTUbOt3a is not defined")])

    def runner(request: RunRequest, config: RuntimeConfig) -> RunReport:
        answer = next(calls)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = app_with(runner).test_client()
    client.get("/push?period=2024-05")
    client.get("/push?period=2024-05")
    html = client.get("/").get_data(as_text=True)
    assert "data set QX4ZTUbOt3a is not defined" in html
    assert html.count('<tr class="run"') == 2
    assert "Sync coverage, May 2024 (202405)" in html  # from the run before


def test_history_keeps_the_last_runs_in_a_file_without_secrets(tmp_path: Path) -> None:
    history = RunHistory(limit=3, path=tmp_path / STATE_FILE)
    for n in range(5):
        summary, coverage = summarize(
            report(f"run-{n}", error=f"DHIS2 said no to admin:{DHIS2_PW}"),
            status="Completed with error(s)",
            trigger="openhim",
            finished=NOW + timedelta(hours=n),
            secrets=[DHIS2_PW],
        )
        history.record(summary, coverage)
    stored = (tmp_path / STATE_FILE).read_text()
    assert DHIS2_PW not in stored
    assert [r["run_id"] for r in json.loads(stored)["runs"]] == ["run-4", "run-3", "run-2"]
    # a restart reads it back: the page keeps its history
    again = RunHistory(limit=3, path=tmp_path / STATE_FILE)
    assert [r.run_id for r in again.runs()] == ["run-4", "run-3", "run-2"]
    coverage = again.coverage()
    assert coverage is not None and coverage.latest_period() == "202405"
    page = app_with(lambda r, c: report(), history=again).test_client().get("/")
    assert page.get_data(as_text=True).count('<tr class="run"') == 3


def test_state_dir_from_the_environment(tmp_path: Path) -> None:
    app = create_app(
        registration=load_registration(env={}),
        env={**ENV, "MEDIATOR_STATE_DIR": str(tmp_path / "state")},
        runner=lambda r, c: report(),
        clock=lambda: NOW,
    )
    app.test_client().get("/push?period=2024-05")
    assert (tmp_path / "state" / STATE_FILE).exists()


def test_an_unreadable_state_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    history = RunHistory(path=tmp_path / STATE_FILE)
    assert history.runs() == [] and history.coverage() is None


# -- why a run failed, unchanged values, names, local times, a history shared with the CLI --


def cht_unreachable() -> RunReport:
    from mediator.model.report import Finding
    from mediator.run.diagnoses import diagnose

    failed = RunReport(
        run_id="run-cht",
        trigger="openhim",
        started=NOW,
        finished=NOW + timedelta(seconds=2),
        findings=[
            Finding(
                level="error",
                code="cht_unreadable",
                message="CHT at https://cht.example.org is unreachable (settings) after 3 "
                "attempt(s): ConnectionError",
            )
        ],
    )
    failed.diagnoses = diagnose(failed)
    return failed


def test_a_run_that_could_not_read_cht_says_why_first() -> None:
    client = app_with(lambda r, c: cht_unreachable()).test_client()
    client.get("/push?period=2024-05")
    html = client.get("/").get_data(as_text=True)
    reason = re.search(r'<div class="reason" id="latest-reason">(.*?)</div>', html, re.S)
    assert reason is not None
    assert "Failed" in reason.group(1)
    assert "CHT at https://cht.example.org is unreachable" in reason.group(1)
    # what was asked, though no period was reached; what to do, CHT down first
    assert "Asked for</dt><dd>202405" in html
    problems = re.search(r'<ul class="problems" id="latest-problems">(.*?)</ul>', html, re.S)
    assert problems is not None and "Check that CHT is up" in problems.group(1)
    assert "run-reason" in html  # and in the list of runs


def test_unchanged_values_have_their_column() -> None:
    def run(request: RunRequest, config: RuntimeConfig) -> RunReport:
        done = report()
        for result in done.results:
            result.values_unchanged = 11
        return done

    client = app_with(run).test_client()
    client.get("/push?period=2024-05")
    html = client.get("/").get_data(as_text=True)
    assert ">Unchanged</th>" in html
    totals = re.search(r'<tr id="latest-totals">(.*?)</tr>', html, re.S)
    assert totals is not None and 'data-count="unchanged">22<' in totals.group(1)


def test_times_are_in_the_mediators_time_zone_and_utc(tmp_path: Path) -> None:
    app = create_app(
        registration=load_registration(env={}),
        env={**ENV, "MEDIATOR_TIMEZONE": "Africa/Nairobi"},
        runner=lambda r, c: report(),
        clock=lambda: NOW,
    )
    client = app.test_client()
    client.get("/push?period=2024-05")
    html = client.get("/").get_data(as_text=True)
    # finished at 02:00:05 UTC: 05:00:05 in Nairobi (UTC+3)
    assert "2024-06-03 05:00:05 Africa/Nairobi (2024-06-03 02:00:05 UTC)" in html


def test_names_from_dhis2_are_shown_next_to_ids(tmp_path: Path) -> None:
    history = RunHistory(path=tmp_path / STATE_FILE)
    history.learn_names({DS: "MoH Monthly <Integration>"})
    client = app_with(lambda r, c: report(), history=history).test_client()
    client.get("/push?period=2024-05")
    html = client.get("/").get_data(as_text=True)
    assert f"MoH Monthly &lt;Integration&gt; <code>{DS}</code>" in html


def test_names_the_run_read_from_dhis2_are_kept_without_asking_again(tmp_path: Path) -> None:
    """The run's own metadata named the data set: the page shows it, and no name look-up
    is made (the report holds no DHIS2 answer, so one would not be tried)."""
    named = report()
    named.results[0].data_set_name = "MoH Monthly Integration"
    history = RunHistory(path=tmp_path / STATE_FILE)
    client = app_with(lambda r, c: named, history=history).test_client()
    client.get("/push?period=2024-05")
    assert history.names() == {DS: "MoH Monthly Integration"}
    html = client.get("/").get_data(as_text=True)
    assert f"MoH Monthly Integration <code>{DS}</code>" in html


def test_the_history_file_is_shared_by_the_processes_that_record_into_it(tmp_path: Path) -> None:
    """serve keeps a RunHistory open; a command-line push records into the same file: the
    page shows both, and neither overwrites the other's run."""
    served = RunHistory(path=tmp_path / STATE_FILE)
    cli = RunHistory(path=tmp_path / STATE_FILE)
    for n, (history, trigger) in enumerate(
        [(served, "openhim"), (cli, "cli"), (served, "openhim")]
    ):
        summary, coverage = summarize(
            report(f"run-{n}"),
            status="Successful",
            trigger=trigger,
            finished=NOW + timedelta(hours=n),
            request=RunRequest.from_fields({"period": "2024-05"}),
        )
        history.record(summary, coverage)
    assert [(r.run_id, r.trigger) for r in served.runs()] == [
        ("run-2", "openhim"),
        ("run-1", "cli"),
        ("run-0", "openhim"),
    ]
    html = (
        app_with(lambda r, c: report(), history=served)
        .test_client()
        .get("/")
        .get_data(as_text=True)
    )
    assert "command line" in html


def test_health_is_not_ok_when_the_next_run_could_not_start() -> None:
    app = create_app(
        registration=load_registration(env={}),
        env={**ENV, "MEDIATOR_TIMEZONE": "Nairobi"},
        runner=lambda r, c: report(),
        clock=lambda: NOW,
    )
    answer = app.test_client().get("/health")
    health = answer.get_json()
    assert answer.status_code == 503 and health["status"] == "misconfigured"
    assert "MEDIATOR_TIMEZONE" in health["config"]["error"]
    assert "Africa/Nairobi" in health["config"]["error"]
    page = app.test_client().get("/").get_data(as_text=True)
    assert 'id="config-problem"' in page and "is not an IANA time zone" in page
    answer = app_with(lambda r, c: report()).test_client().get("/health")
    assert answer.status_code == 200 and answer.get_json()["status"] == "ok"


def test_the_coverage_csv_has_the_held_column() -> None:
    from mediator.service.render import COVERAGE_COLUMNS, coverage_csv

    tables = [
        {
            "dataSet": DS,
            "period": "202405",
            "orgUnits": [
                {
                    "orgUnit": "OuHeld00001",
                    "name": "CHU",
                    "expected": 2,
                    "synced": 0,
                    "percent": 0.0,
                    "missing": ["a", "b"],
                    "newest_doc": None,
                    "newest_doc_age_days": None,
                    "held": True,
                }
            ],
        }
    ]
    lines = coverage_csv(tables).splitlines()
    assert COVERAGE_COLUMNS[-1] == "held" and lines[0].endswith(",held")
    assert lines[1].endswith(",true")


def test_coverage_rows_and_rejected_rows_link_to_their_explain_page() -> None:
    client = app_with(lambda r, c: report()).test_client()
    assert client.get("/push?period=2024-05").status_code == 207
    html = client.get("/").get_data(as_text=True)
    links = set(re.findall(r'<a class="explain" href="([^"]+)"', html))
    assert f"/explain?dataSet={DS}&amp;period=202405&amp;orgUnit=OuGood00001" in links
    assert f"/explain?dataSet={DS}&amp;period=202405&amp;orgUnit=OuHeld00001" in links
    for period in ("202404", "202405"):  # each rejected row, its own cell
        assert f"/explain?dataSet={DS}&amp;period={period}&amp;orgUnit=o&amp;dataElement=d" in links
    assert "<script" not in html
