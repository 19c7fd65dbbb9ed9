"""One run at a time in this process: later requests wait in a bounded queue (more than
``MAX_WAITING`` are refused as busy)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from mediator.model.values import utcnow

T = TypeVar("T")
MAX_WAITING = 20  # requests queued behind the running one; more are answered 429 "busy"


class QueueFull(RuntimeError):
    """A run is going and ``max_waiting`` more wait: nothing was started."""


class RunQueue:
    """One run at a time in this process; at most ``max_waiting`` wait their turn."""

    def __init__(self, max_waiting: int = MAX_WAITING, clock: Callable[[], datetime] = utcnow):
        self.max_waiting = max_waiting
        self.clock = clock
        self._turn = threading.Lock()  # held by the running run
        self._lock = threading.Lock()  # guards the counts
        self._running = 0
        self._waiting = 0
        self._last_start: datetime | None = None

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` when its turn comes; QueueFull at once when the queue is full."""
        with self._lock:
            if self._running > 0 and self._waiting >= self.max_waiting:
                raise QueueFull(f"a run is in progress and {self.max_waiting} more are waiting")
            self._waiting += 1
        with self._turn:
            with self._lock:
                self._waiting -= 1
                self._running += 1
                self._last_start = self.clock()
            try:
                return work()
            finally:
                with self._lock:
                    self._running -= 1

    def started_since(self, moment: datetime) -> bool:
        """Did a run start at or after ``moment``?"""
        with self._lock:
            return self._last_start is not None and self._last_start >= moment

    def counts(self) -> tuple[bool, int]:
        """(a run is going, how many wait)."""
        with self._lock:
            return self._running > 0, self._waiting


def default_background(work: Callable[[], None]) -> None:
    # not a daemon: a shutdown waits for the run and its transaction update
    threading.Thread(target=work, name="async-run", daemon=False).start()
