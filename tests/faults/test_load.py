"""Load: 50 concurrent push requests against a real mediator server.

Promise: no crash, every request answered: exactly one run going and ``MAX_WAITING``
queued behind it get the run's envelope (200), every other request is answered
429 "busy" at once and starts nothing; runs never interleave; DHIS2 ends exact; the
server's threads go away when the burst is over. (Memory is the benchmark's to
measure, in a process of its own: ``benchmarks/``.)
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from devstack.net import ServerThread, wait_for
from mediator.run.pipeline import execute
from mediator.service.app import create_app
from mediator.service.queue import MAX_WAITING

from .helpers import PERIOD, held

REQUESTS = 50


def test_50_concurrent_pushes_all_answered_queue_bounded_runs_serialised(
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
    burst_over = threading.Event()  # every request is either running, queued or answered

    def runner(request, config):
        nonlocal inside, most_inside
        with guard:
            inside += 1
            most_inside = max(most_inside, inside)
        started = time.monotonic()
        try:
            # the first run holds its turn until the whole burst has arrived, so the
            # queue bound alone decides the answers, not the timing
            assert burst_over.wait(60), "the burst never arrived"
            return execute(request, config)
        finally:
            with guard:
                inside -= 1
                runs.append((started, time.monotonic()))

    threads_before = threading.active_count()
    with ServerThread(create_app(env=env, runner=runner)) as server:
        busy: list[int] = []

        def one(_: int) -> tuple[int, str]:
            answer = requests.get(f"{server.url}/push", params={"period": PERIOD}, timeout=120)
            if answer.status_code == 429:
                with guard:
                    busy.append(1)
            return answer.status_code, answer.json()["status"]

        def arrived() -> bool:
            health = requests.get(f"{server.url}/health", timeout=5).json()
            return health["running"] and health["waiting"] + len(busy) == REQUESTS - 1

        with ThreadPoolExecutor(REQUESTS) as pool:
            pending = pool.map(one, range(REQUESTS))
            wait_for(arrived, 60, "every request running, queued or refused")
            burst_over.set()
            answers = list(pending)
        health = requests.get(f"{server.url}/health", timeout=5).json()

    codes = [code for code, _ in answers]
    assert len(answers) == REQUESTS  # every request answered
    assert codes.count(200) == MAX_WAITING + 1  # the one running and the ones queued
    assert codes.count(429) == REQUESTS - MAX_WAITING - 1  # the rest, at once
    assert len(runs) == MAX_WAITING + 1  # a 429 started nothing
    assert all(status == "Successful" for code, status in answers if code == 200)
    assert all(status == "Failed" for code, status in answers if code == 429)
    # runs never interleave
    assert most_inside == 1
    ordered = sorted(runs)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(ordered))
    assert health["running"] is False and health["waiting"] == 0
    assert held(d2) == computed
    # the server's request threads are gone once the burst is answered
    wait_for(lambda: threading.active_count() <= threads_before + 3, 30, "threads to end")
