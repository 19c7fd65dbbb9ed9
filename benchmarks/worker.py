"""One measured command, in a process of its own, with its waits counted.

``python -m benchmarks.worker RESULT.json mediator preview --period 2024-01`` runs
``python -m mediator preview --period 2024-01`` (``mediator.cli.commands.main``: the command
people run, its output on this process's stdout) with the instrumentation below;
``python -m benchmarks.worker RESULT.json bare 2024-01`` is the floor: a plain paged
read of the month's target docs, decoded as the mediator decodes them (orjson), then
dropped; ``... same_queries 2024-01`` a cold ``preview``'s own floor: the queries it
asks CHT, decoded and dropped (``same_queries``). All take CHT's address from
``CHT_URL``, ``CHT_DB``, ``CHT_USERNAME``, ``CHT_PASSWORD``, ``CHT_PAGE_SIZE`` and
``CHT_OWNER_BATCH``, as the mediator does.

The parent (``benchmarks.national``) measures what a user sees of the process: its
wall time, CPU and peak memory (``wait4``). What the process says of itself is
written to RESULT.json: how long its main thread was blocked on CHT (reading the
settings and every group of months, ``cht_read.ChtSide``) and on DHIS2 (every
``Dhis2Client`` call), requests per peer, target pages and docs read, owners looked
up. The instrumentation lives here, not in ``mediator/``; it wraps a few hundred
calls per run, well under a per cent of a run's time.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import requests


@dataclass
class Clock:
    """Main-thread waits (wall minus the main thread's own CPU) and counters."""

    wait_cht: float = 0.0
    wait_dhis2: float = 0.0
    wait_ahead: float = 0.0  # for the batch read ahead (its DHIS2 reads, on a helper)
    cht_requests: int = 0
    dhis2_requests: int = 0
    pages: int = 0
    target_docs: int = 0
    owners_looked_up: int = 0
    json_seconds: float = 0.0  # CPU decoding CHT's answers, every thread


CLOCK = Clock()
_LOCK = threading.Lock()
_inside = threading.local()


def _on_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def _add(field: str, amount: float) -> None:
    with _LOCK:
        setattr(CLOCK, field, getattr(CLOCK, field) + amount)


def _timed(field: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the main thread's blocked time inside ``fn`` to ``CLOCK.<field>``.

    Nested wrapped calls (a method calling another) are counted once; calls made
    from other threads are not waits of the run (they overlap with its work).
    """

    def measure(start_wall: float, start_cpu: float) -> None:
        blocked = (time.perf_counter() - start_wall) - (time.thread_time() - start_cpu)
        _add(field, max(0.0, blocked))

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


def instrument() -> None:
    """Count and time the run from inside: requests per peer, CHT's answers decoded,
    pages and owners read, and the main thread's waits on each peer."""
    import mediator.cht.client
    from mediator.dhis2.client import Dhis2Client
    from mediator.http.client import HttpClient
    from mediator.run import read as cht_read

    send = HttpClient.send

    def counted_send(self: HttpClient, *args: Any, **kwargs: Any) -> Any:
        field = {"CHT": "cht_requests", "DHIS2": "dhis2_requests"}.get(self.peer.name)
        if field:
            _add(field, 1)
        return send(self, *args, **kwargs)

    HttpClient.send = counted_send  # type: ignore[method-assign]

    decode = mediator.cht.client.decode_json

    def timed_decode(content: bytes) -> Any:
        start = time.thread_time()
        try:
            return decode(content)
        finally:
            _add("json_seconds", time.thread_time() - start)

    mediator.cht.client.decode_json = timed_decode  # type: ignore[assignment]

    read_month = cht_read.read_month

    def counted_read_month(lookups: Any, feeding: Any, read: Any) -> None:
        try:
            read_month(lookups, feeding, read)
        finally:
            _add("pages", read.pages)
            _add("target_docs", read.target_docs)
            _add("owners_looked_up", read.owners_looked_up)

    cht_read.read_month = counted_read_month  # type: ignore[assignment]
    # the main thread's CHT reads: the settings (a ChtReader call, below), then every group
    # of months, its target pages and owners waited for (read on helper threads)
    cht_read.ChtSide.groups = _timed("wait_cht", cht_read.ChtSide.groups)  # type: ignore[method-assign]
    # the main thread waiting for the next batch, read and planned on a helper thread
    # while this one posted (``run.ahead.Ahead``): what is left of its DHIS2 reads
    try:
        from mediator.run.ahead import Ahead
    except ImportError:  # a mediator before the read ahead (an A/B run)
        pass
    else:
        Ahead.take = _timed("wait_ahead", Ahead.take)  # type: ignore[method-assign]
    for cls, field in ((mediator.cht.client.ChtReader, "wait_cht"), (Dhis2Client, "wait_dhis2")):
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(member) and name != "close":
                setattr(cls, name, _timed(field, member))


def _cht_session() -> requests.Session:
    s = requests.Session()
    s.auth = (os.environ["CHT_USERNAME"], os.environ["CHT_PASSWORD"])
    s.headers["Accept"] = "application/json"
    return s


def _cht_base() -> str:
    return f"{os.environ['CHT_URL']}/{os.environ.get('CHT_DB', 'medic')}"


def _decoded(s: requests.Session, url: str, **kw: Any) -> Any:
    """One CHT answer, decoded as the mediator decodes it (orjson), and counted; a body
    (``json=``) makes it a POST."""
    response = s.request("POST" if "json" in kw else "GET", url, timeout=120, **kw)
    response.raise_for_status()
    _add("cht_requests", 1)
    return orjson.loads(response.content)


def _target_pages(s: requests.Session, month: str) -> Iterator[list[Any]]:
    """The month's target docs, page by page as the reader asks for them (``_all_docs``
    with the docs, one row more than a page to learn where the next one starts)."""
    size = int(os.environ.get("CHT_PAGE_SIZE", "1000"))
    prefix = f"target~{month}~"
    start, end = json.dumps(prefix), json.dumps(prefix + "\ufff0")
    while True:
        params = {"startkey": start, "endkey": end, "include_docs": "true", "limit": str(size + 1)}
        rows = _decoded(s, f"{_cht_base()}/_all_docs", params=params)["rows"]
        _add("pages", 1)
        _add("target_docs", len(rows[:size]))
        yield rows[:size]
        if len(rows) <= size:
            return
        start = json.dumps(rows[size]["id"])


def bare_read(month: str) -> int:
    """The floor: page the month's target docs as the reader does, decode, discard."""
    for _ in _target_pages(_cht_session(), month):
        pass
    return 0


def same_queries(month: str) -> int:
    """The floor of a cold ``preview``: the queries it asks CHT, each answer decoded and
    dropped, nothing aggregated. The settings, the database info and the places (the
    view's ids, then their docs by ``_bulk_get``) on this thread; meanwhile the month's
    pages on a thread of their own, each page's owners asked for (``_bulk_get``, owner
    batch at a time, each owner once) as soon as it is read, as the mediator asks."""
    base = _cht_base()
    batch = int(os.environ.get("CHT_OWNER_BATCH", "500"))

    def docs(s: requests.Session, ids: list[str]) -> None:
        for at in range(0, len(ids), batch):
            body = {"docs": [{"id": i} for i in ids[at : at + batch]]}
            _decoded(s, f"{base}/_bulk_get", json=body)

    def pages() -> None:
        s, seen = _cht_session(), set()
        for rows in _target_pages(s, month):
            owners = [r["doc"].get("owner") for r in rows if isinstance(r.get("doc"), dict)]
            fresh = list(dict.fromkeys(o for o in owners if isinstance(o, str) and o not in seen))
            seen.update(fresh)
            docs(s, fresh)

    paged = threading.Thread(target=pages)
    main_session = _cht_session()
    _decoded(main_session, f"{base}/settings")
    paged.start()
    _decoded(main_session, f"{base}/")
    view = "_design/medic-admin/_view/contacts_by_dhis_orgunit"
    ids = list(dict.fromkeys(r["id"] for r in _decoded(main_session, f"{base}/{view}")["rows"]))
    docs(main_session, ids)
    paged.join()
    return 0


def main(argv: list[str]) -> int:
    result_path, mode, *rest = argv
    if mode == "bare":
        code = bare_read(rest[0])
    elif mode == "same_queries":
        code = same_queries(rest[0])
    else:
        instrument()
        from mediator.cli.commands import main as mediator_main

        code = mediator_main(rest)
        sys.stdout.flush()
    with open(result_path, "w") as out:
        json.dump({"exit": code, **asdict(CLOCK)}, out)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
