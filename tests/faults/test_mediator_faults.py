"""The mediator itself killed (SIGKILL) in the middle of a push.

Promise: nothing is lost and nothing is written twice. The next run completes
the job: DHIS2 then holds exactly the computed values, and every value reached
DHIS2's importer exactly once over both runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from devstack.net import wait_for

from .helpers import PERIOD, held, writes

ROOT = Path(__file__).resolve().parents[2]
POSTS = "/api/dataValueSets"


def command_env(couch, db: str, d2, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHT_", "DHIS2_", "MEDIATOR_"))}
    env.update(
        {
            "CHT_URL": couch.url,
            "CHT_DB": db,
            "CHT_USERNAME": couch.username,
            "CHT_PASSWORD": couch.password,
            "DHIS2_URL": d2.url,
            "DHIS2_USERNAME": "admin",
            "DHIS2_PASSWORD": "district",
            "DHIS2_CHUNK_SIZE": "3",
            "MEDIATOR_LOCK_DIR": str(tmp_path / "locks"),
        }
    )
    return env


def test_killed_mid_push_the_next_run_completes_exactly_and_writes_nothing_twice(
    couch, base_db, computed, d2, tmp_path
):
    env = command_env(couch, base_db, d2, tmp_path)
    d2.faults.delay_next(0.4, count=1000, path=POSTS, method="POST")  # a slow DHIS2
    first = subprocess.Popen(
        [sys.executable, "-m", "mediator", "push", "--period", PERIOD],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: held(d2), 60, "the first chunk to land")
    finally:
        first.kill()  # SIGKILL: no clean-up, no report
        first.communicate(timeout=10)
    assert first.returncode == -9
    # requests already on the wire are still processed by DHIS2: wait for them
    wait_for(lambda: all(r.status is not None for r in d2.store.requests), 10, "in-flight")
    partial = held(d2)
    assert 0 < len(partial) < len(computed), "killed too late to prove anything"
    assert all(computed[k] == v for k, v in partial.items())

    d2.faults.clear()
    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "mediator", "push", "--period", PERIOD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 0, second.stderr
    assert time.monotonic() - started < 60
    report = json.loads(second.stdout)
    sent = sum(r["values_sent"] for r in report["results"])
    assert sent == len(computed) - len(partial)  # only what the killed run did not deliver
    assert held(d2) == computed
    assert set(writes(d2).values()) == {1}  # no value reached DHIS2's importer twice


def test_a_bug_in_one_data_set_is_logged_with_its_traceback_and_the_others_still_run(
    couch, base_db, d2, monkeypatch, caplog
):
    """An unexpected exception is a bug: it fails that (data set, period) alone, its
    traceback goes to the log, and the report says where to look."""
    import logging

    from devstack import deployment as dep
    from mediator.run import push as pushing

    from .helpers import couch_config, push

    real = pushing.plan_push

    def buggy(period, ready, *args, **kwargs):
        if any(item.row.dataElement == dep.DE_HOUSEHOLD_VISITS for item in ready):
            raise KeyError("a bug")
        return real(period, ready, *args, **kwargs)

    monkeypatch.setattr(pushing, "plan_push", buggy)
    caplog.set_level(logging.ERROR, logger="mediator.run.push")
    report = push(couch_config(couch, base_db, d2))
    by_set = {r.data_set: r for r in report.results}
    assert by_set[dep.DS_MONTHLY].status == "success"  # the other data set went through
    failed = by_set[dep.DS_CHW]
    assert failed.status == "error"
    assert failed.error.startswith("internal error in the mediator (KeyError)")
    assert "the mediator's log" in failed.error
    (record,) = [r for r in caplog.records if "unexpected error pushing" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is KeyError  # the traceback
    assert report.status == "Completed with error(s)"
