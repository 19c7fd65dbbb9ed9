"""The command line's summary of a push (``summary.text``): problems said once, as the
OpenHIM envelope says them, and the command that resumes what did not complete."""

from __future__ import annotations

from mediator.model.report import Diagnosis
from mediator.run.request import RunRequest
from mediator.run.summary import text

from .test_envelope import DS, make_report, result


def test_the_summary_says_each_problem_once_with_where_and_what_to_do() -> None:
    diagnoses = [
        Diagnosis(
            kind="cht_users_not_synced",
            title="CHWs missing from the numbers",
            cause=f"1 of 12 CHT users have no target doc for {pe}: chw43.",
            fix="Ask them to sync.",
            period=pe,
            data_set=DS,
        )
        for pe in ("202408", "202409", "202410")
    ]
    results = [result(period=pe) for pe in ("202408", "202409", "202410")]
    report = make_report(
        results=results, diagnoses=diagnoses, periods=["202408", "202409", "202410"]
    )
    out = text(report, RunRequest(trigger="cli"))
    assert out.count("chw43") == 1 and out.count("what to do: Ask them to sync.") == 1
    assert f"[{DS}; 202408, 202409, 202410]: 1 of 12 CHT users have no target doc: chw43." in out
    assert "To resume" not in out  # everything was pushed: nothing to redo


def test_the_summary_ends_with_the_command_that_redoes_what_did_not_complete() -> None:
    done = result(period="202408")
    down = result(period="202409", status="error", error_kind="unreachable")
    report = make_report(results=[done, down], periods=["202408", "202409"], status="Completed")
    out = text(report, RunRequest(trigger="cli", org_unit="OU1"))
    assert f"Not completed, 1: {DS} 202409 (DHIS2 could not be reached)." in out
    assert out.rstrip().endswith(
        f"python -m mediator push --data-set {DS} --period 202409 --org-unit OU1"
    )
