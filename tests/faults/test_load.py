"""Load: 50 concurrent push requests against a real mediator server.

Promise: no crash, every request answered (200 with the run's envelope, or 429
"busy" when more than ``MAX_WAITING`` requests already queue behind the running
one), runs never interleave, DHIS2 ends exact, and memory and threads stay bounded.
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from devstack.net import ServerThread
from mediator.app import MAX_WAITING, create_app
from mediator.pipeline import execute

from .helpers import PERIOD, held

REQUESTS = 50


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_50_concurrent_pushes_all_answered_runs_serialised_memory_bounded(
    couch, base_db, computed, d2
):
    env = {
        "CHT_URL": couch.url,
        "CHT_DB": base_db,
        "CHT_USERNAME": couch.username,
        "CHT_PASSWORD": couch.password,
        "DHIS2_URL": d2.url,
        "DHIS2_USERNAME": "admin",
        "DHIS2_PASSWORD": "district",
    }
    runs: list[tuple[float, float]] = []
    inside = 0
    most_inside = 0
    guard = threading.Lock()

    def runner(request, config):
        nonlocal inside, most_inside
        with guard:
            inside += 1
            most_inside = max(most_inside, inside)
        started = time.monotonic()
        try:
            # each run lasts long enough for the whole burst to arrive while the first
            # runs, so the queue bound is what decides the answers, not the timing
            time.sleep(0.4)
            return execute(request, config)
        finally:
            with guard:
                inside -= 1
                runs.append((started, time.monotonic()))

    gc.collect()
    threads_before, rss_before = threading.active_count(), rss_mb()
    with ServerThread(create_app(env=env, runner=runner)) as server:

        def one(_: int) -> tuple[int, str]:
            answer = requests.get(f"{server.url}/push", params={"period": PERIOD}, timeout=120)
            return answer.status_code, answer.json()["status"]

        started = time.monotonic()
        with ThreadPoolExecutor(REQUESTS) as pool:
            answers = list(pool.map(one, range(REQUESTS)))
        elapsed = time.monotonic() - started
        health = requests.get(f"{server.url}/health", timeout=5).json()
    gc.collect()
    time.sleep(0.5)

    codes = [code for code, _ in answers]
    assert len(answers) == REQUESTS  # every request answered
    assert set(codes) <= {200, 429}, codes  # no 500, no crash
    assert codes.count(200) == len(runs) >= 1
    assert codes.count(200) <= MAX_WAITING + 1  # one running, at most MAX_WAITING queued
    assert all(status == "Successful" for code, status in answers if code == 200)
    assert all(status == "Failed" for code, status in answers if code == 429)
    # runs never interleave
    assert most_inside == 1
    ordered = sorted(runs)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(ordered))
    assert health["running"] is False and health["waiting"] == 0
    assert held(d2) == computed
    # bounded: memory and threads back near where they were
    assert rss_mb() - rss_before < 80, (rss_before, rss_mb())
    assert threading.active_count() <= threads_before + 3
    print(
        f"\n50 concurrent pushes: {codes.count(200)} ran, {codes.count(429)} busy, "
        f"{elapsed:.1f} s, RSS {rss_before:.0f} -> {rss_mb():.0f} MB"
    )
