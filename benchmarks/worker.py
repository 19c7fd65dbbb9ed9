"""One measured mediator run, in a process of its own.

``python -m benchmarks.worker TASK.json RESULT.json``. The benchmark starts this
as a child so that its peak resident memory (``VmHWM``) is the mediator's alone:
the CouchDB server (node) and the DHIS2 stand-in live in other processes.

Modes: ``bare`` (the floor: a plain paged read of the month's target docs with
``requests``, docs discarded), ``aggregate`` (``run.compute``: CHT read and
aggregation, no DHIS2) and ``push`` (``run.execute``: the whole run).

The instrumentation is here, not in ``mediator/``: it wraps the reader's and the
DHIS2 client's methods to time, from the main thread's point of view, how long
the run waits on CHT and on DHIS2, and what the process spends in CPU.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import requests


@dataclass
class Clock:
    """Main-thread waits (wall minus the main thread's own CPU) and counters."""

    wait_cht: float = 0.0
    wait_dhis2: float = 0.0
    cht_requests: int = 0
    dhis2_requests: int = 0
    json_seconds: float = 0.0
    json_bytes: int = 0


CLOCK = Clock()
_LOCK = threading.Lock()
_inside = threading.local()


def _on_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def _timed(field: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the main thread's blocked time inside ``fn`` to ``CLOCK.<field>``.

    Nested wrapped calls (a method calling another) are counted once; calls made
    from other threads are not waits of the run (they overlap with its work).
    """

    def measure(start_wall: float, start_cpu: float) -> None:
        blocked = (time.perf_counter() - start_wall) - (time.thread_time() - start_cpu)
        setattr(CLOCK, field, getattr(CLOCK, field) + max(0.0, blocked))

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            inner = fn(*args, **kwargs)
            while True:
                outer = _on_main() and not getattr(_inside, "on", False)
                if outer:
                    _inside.on = True
                    wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    item = next(inner)
                except StopIteration:
                    return
                finally:
                    if outer:
                        measure(wall, cpu)
                        _inside.on = False
                yield item

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _on_main() or getattr(_inside, "on", False):
            return fn(*args, **kwargs)
        _inside.on = True
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            measure(wall, cpu)
            _inside.on = False

    return wrapper


def _instrument_json() -> None:
    """Time every JSON body decode in any thread, in CPU seconds: ``Response.json`` (the
    bare read, the DHIS2 client) and the CHT reader's ``decode_json`` (orjson)."""
    original = requests.models.Response.json

    def timed_json(self: requests.models.Response, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return original(self, **kwargs)
        finally:
            spent = time.thread_time() - start
            with _LOCK:
                CLOCK.json_seconds += spent
                CLOCK.json_bytes += len(self.content or b"")

    requests.models.Response.json = timed_json  # type: ignore[method-assign]

    import mediator.cht

    decode = mediator.cht.decode_json

    def timed_decode(content: bytes) -> Any:
        start = time.thread_time()
        try:
            return decode(content)
        finally:
            spent = time.thread_time() - start
            with _LOCK:
                CLOCK.json_seconds += spent
                CLOCK.json_bytes += len(content or b"")

    mediator.cht.decode_json = timed_decode  # type: ignore[assignment]


def instrument() -> None:
    from mediator.cht import ChtReader
    from mediator.dhis2 import Dhis2Client
    from mediator.http import HttpClient

    _instrument_json()
    send = HttpClient.send

    def counted_send(self: HttpClient, *args: Any, **kwargs: Any) -> Any:
        field = {"CHT": "cht_requests", "DHIS2": "dhis2_requests"}.get(self.peer.name)
        if field:
            with _LOCK:
                setattr(CLOCK, field, getattr(CLOCK, field) + 1)
        return send(self, *args, **kwargs)

    HttpClient.send = counted_send  # type: ignore[method-assign]
    for cls, field in ((ChtReader, "wait_cht"), (Dhis2Client, "wait_dhis2")):
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(member) and name != "close":
                setattr(cls, name, _timed(field, member))


def peak_rss_mb() -> float:
    """VmHWM: the peak resident set of this process, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def bare_read(task: dict[str, Any]) -> dict[str, Any]:
    """The floor: page the month's target docs as the reader does, decode, discard."""
    session = requests.Session()
    session.auth = (task["username"], task["password"])
    session.headers["Accept"] = "application/json"
    size = task["page_size"]
    prefix = f"target~{task['months'][0]}~"
    start, end = json.dumps(prefix), json.dumps(prefix + "\ufff0")
    docs = pages = 0
    url = f"{task['url']}/{task['db']}/_all_docs"
    while True:
        params = {"startkey": start, "endkey": end, "include_docs": "true", "limit": str(size + 1)}
        response = session.get(url, params=params, timeout=120)
        CLOCK.cht_requests += 1
        response.raise_for_status()
        rows = response.json()["rows"]
        pages += 1
        docs += len(rows[:size])
        if len(rows) <= size:
            break
        start = json.dumps(rows[size]["id"])
    return {"docs": docs, "pages": pages}


def _periods(texts: list[str]) -> list[Any]:
    """Monthly periods as the run orchestration takes them."""
    from mediator import periods

    kind = getattr(periods, "Period", None) or periods.Month
    return [kind.parse(text) for text in texts]


def run(task: dict[str, Any]) -> dict[str, Any]:
    from mediator.config import ChtSettings, Dhis2Settings, RuntimeConfig
    from mediator.pipeline import compute, execute
    from mediator.run_request import RunRequest

    cht = ChtSettings(
        url=task["url"],
        db=task["db"],
        username=task["username"],
        password=task["password"],
        page_size=task["page_size"],
        owner_batch=task["owner_batch"],
    )
    request = RunRequest(periods=_periods(task["months"]))
    if task["mode"] == "aggregate":
        computed = compute(request, RuntimeConfig(cht=cht, state_dir=task.get("state_dir")))
        reads = computed.reads
        return {
            "docs": sum(r.target_docs for r in reads),
            "pages": sum(r.pages for r in reads),
            "owners_looked_up": sum(r.owners_looked_up for r in reads),
            "values": sum(
                len(job.merged.org_units) * len({m.row for m in job.merged.mappings})
                for job in computed.jobs
                if job.aggs
            ),
            "read_errors": [r.error for r in reads if r.error]
            + list(computed.source_errors.values()),
        }
    dhis2 = Dhis2Settings(
        url=task["dhis2_url"],
        username=task["dhis2_username"],
        password=task["dhis2_password"],
        chunk_size=task["chunk_size"],
    )
    report = execute(request, RuntimeConfig(cht=cht, dhis2=dhis2, state_dir=task.get("state_dir")))
    totals = report.totals()
    return {
        "status": report.status,
        "docs": sum(r.target_docs for r in report.cht),
        "pages": sum(r.pages for r in report.cht),
        "owners_looked_up": sum(r.owners_looked_up for r in report.cht),
        "values_computed": sum(r.values_computed for r in report.results),
        "values_sent": sum(r.values_sent for r in report.results),
        "values_unchanged": sum(r.values_unchanged for r in report.results),
        "chunks_sent": sum(r.chunks_sent for r in report.results),
        "imported": totals.imported,
        "updated": totals.updated,
        "ignored": totals.ignored,
        "per_period": {
            r.period: {"values_sent": r.values_sent, "status": r.status} for r in report.results
        },
        "errors": [r.error for r in report.results if r.error]
        + [f.message for f in report.findings if f.level == "error"],
    }


def main(argv: list[str]) -> int:
    task = json.loads(open(argv[0]).read())
    instrument()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    outcome = bare_read(task) if task["mode"] == "bare" else run(task)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    result = {
        "mode": task["mode"],
        "months": task["months"],
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak_rss_mb(),
        **asdict(CLOCK),
        **outcome,
    }
    with open(argv[1], "w") as out:
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
