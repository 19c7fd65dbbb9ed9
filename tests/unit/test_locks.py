"""Run locks: keyed by DHIS2 server, data set and period; they say who holds them.

Seen: a mediator waited over two minutes on an unrelated mediator's run on the same
host, because the lock knew only the (data set, period), not the DHIS2 server.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mediator.run.locks import RunBusyError, RunLocks, holder_of, normalise_target
from mediator.settings.config import ChtSettings, Dhis2Settings, RuntimeConfig

KEY = "VTdjfLXXmoi/202401"
NORTH, SOUTH = "https://dhis2-north.example.org", "https://dhis2-south.example.org"


def locks(tmp_path: Path, target: str, mode: str = "wait", **kw: object) -> RunLocks:
    return RunLocks(str(tmp_path), mode, target=target, **kw)  # type: ignore[arg-type]


def test_runs_to_different_dhis2_servers_hold_the_same_data_set_and_period_at_once(tmp_path):
    with locks(tmp_path, NORTH).hold([KEY]):
        # refuse mode: it would raise at once if the key were taken
        with locks(tmp_path, SOUTH, "refuse").hold([KEY]):
            pass
        with pytest.raises(RunBusyError, match="another run is pushing"):
            with locks(tmp_path, NORTH + "/api/", "refuse").hold([KEY]):
                pass


def test_a_run_to_the_same_server_waits_and_says_for_whom_once(tmp_path):
    waiting, entered = threading.Event(), threading.Event()
    told: list[str] = []

    def second() -> None:
        def on_wait(message: str) -> None:
            told.append(message)
            waiting.set()

        with locks(tmp_path, NORTH, poll=0.01, on_wait=on_wait).hold([KEY]):
            entered.set()

    first = locks(tmp_path, NORTH, run_id="run-north-1", trigger="openhim")
    with first.hold([KEY]):
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting.wait(10), "the second run never said it was waiting"
        assert not entered.is_set()
    assert entered.wait(10), "the second run never got the lock"
    thread.join(10)
    assert len(told) == 1
    (message,) = told
    assert message.startswith(f"waiting for the run of {os.getpid()} (started 20")
    assert "run run-north-1, openhim" in message
    assert message.endswith("on VTdjfLXXmoi 202401 to finish")


def test_the_lock_file_records_who_holds_it(tmp_path):
    run = locks(tmp_path, NORTH, run_id="abc123", trigger="cli")
    with run.hold([KEY]):
        record = holder_of(run.path(KEY))
    assert record is not None
    assert (record["pid"], record["run_id"], record["trigger"]) == (os.getpid(), "abc123", "cli")
    assert record["target"] == NORTH and record["key"] == KEY
    assert record["since"].startswith("20")


def test_for_run_keys_by_the_configured_dhis2(tmp_path):
    def config(url: str) -> RuntimeConfig:
        return RuntimeConfig(
            cht=ChtSettings(url="https://cht.example.org"),
            dhis2=Dhis2Settings(url=url, token="d2pat-123456789"),
            lock_dir=str(tmp_path),
            concurrent_runs="refuse",
        )

    with RunLocks.for_run(config(NORTH)).hold([KEY]):
        with RunLocks.for_run(config(SOUTH)).hold([KEY]):
            pass
        with pytest.raises(RunBusyError):
            with RunLocks.for_run(config("https://DHIS2-north.example.org:443/")).hold([KEY]):
                pass


def test_targets_are_normalised_and_lose_credentials():
    assert normalise_target("HTTPS://u:p@Dhis2.Example.org:443/api/") == "https://dhis2.example.org"
    assert normalise_target("http://h:8080/dhis/") == "http://h:8080/dhis"
    assert normalise_target(None) == ""


def test_the_lock_dir_defaults_to_the_process_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIATOR_LOCK_DIR", str(tmp_path / "mine"))
    assert RunLocks().directory == tmp_path / "mine"
