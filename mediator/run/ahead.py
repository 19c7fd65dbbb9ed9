"""One step prepared on a helper thread while the caller runs the one before it.

``run.push`` reads and plans the next batch of org units while DHIS2 imports this one:
the helper has a connection of its own (``Dhis2Client.fork``) and runs in the caller's
context, so its exchanges are tagged with the same job.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from mediator.dhis2.client import Dhis2Client

T = TypeVar("T")


class Ahead(Generic[T]):
    """At most one step in flight, on a forked client made at the first ``start``.

    Leaving waits for it: a read in flight ends within its retry budget, or at once when
    DHIS2 stopped the run; what it found is then dropped."""

    def __init__(self, dhis2: Dhis2Client) -> None:
        self.dhis2 = dhis2
        self.client: Dhis2Client | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.ahead: Future[T] | None = None

    @property
    def started(self) -> bool:
        return self.ahead is not None

    def start(self, fn: Callable[[Dhis2Client, int], T], step: int) -> None:
        if self.pool is None:
            self.client = self.dhis2.fork()
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dhis2-ahead")
        assert self.client is not None and self.ahead is None
        self.ahead = self.pool.submit(contextvars.copy_context().run, fn, self.client, step)

    def take(self) -> T:
        assert self.ahead is not None
        ahead, self.ahead = self.ahead, None
        return ahead.result()

    def __enter__(self) -> Ahead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        if self.client is not None:
            self.client.close()
