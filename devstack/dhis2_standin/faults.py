"""Fault injection: make the next N matching requests fail in a chosen way.

Off by default. Each rule matches a path (exact, or a prefix ending in ``*``) and
optionally a method, and is used up after ``count`` requests. Kinds:

- ``status``: answer with ``status`` (500/502/503/429/401 ...) and a body;
  ``retry_after`` adds a ``Retry-After`` header.
- ``delay``: sleep ``seconds`` and then answer normally (for client timeouts).
- ``garbage``: answer ``status`` with a non-JSON (HTML) body, as a proxy would.
- ``drop``: read the request, then close the socket without answering.
- ``drop_after``: handle the request normally (an import is stored), then close
  the socket instead of answering: the client cannot know it landed.

``skip`` lets that many matching requests through untouched first, so a fault
can hit "the second chunk" of a push.

The request is still recorded in the store's request log, with ``fault`` set,
so a test can see that the client tried.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = {"status", "delay", "garbage", "drop", "drop_after"}


@dataclass
class Fault:
    kind: str
    path: str = "*"
    count: int = 1
    method: str | None = None
    status: int = 503
    seconds: float = 0.0
    retry_after: int | None = None
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    skip: int = 0

    def __post_init__(self) -> None:
        # set when a request meets this fault (not a field: ``pending`` copies fields);
        # a test waits on it rather than sleeping until the fault has surely hit
        self.hit = threading.Event()

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path == "*":
            return True
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path or path.rstrip("/") == self.path.rstrip("/")


class FaultPlan:
    """The queue of armed faults; thread-safe because the server is threaded."""

    def __init__(self) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; use one of {sorted(KINDS)}")
        with self._lock:
            self._rules.append(fault)
        return fault

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        path: str = "*",
        retry_after: int | None = None,
        body: str | None = None,
        method: str | None = None,
    ) -> Fault:
        return self.add(
            Fault("status", path, count, method, status, retry_after=retry_after, body=body)
        )

    def delay_next(
        self, seconds: float, count: int = 1, path: str = "*", method: str | None = None
    ) -> Fault:
        return self.add(Fault("delay", path, count, method, seconds=seconds))

    def garbage_next(
        self, count: int = 1, path: str = "*", status: int = 200, body: str | None = None
    ) -> Fault:
        return self.add(Fault("garbage", path, count, None, status, body=body))

    def drop_next(
        self, count: int = 1, path: str = "*", method: str | None = None, skip: int = 0
    ) -> Fault:
        return self.add(Fault("drop", path, count, method, skip=skip))

    def drop_after_next(
        self, count: int = 1, path: str = "*", method: str | None = None, skip: int = 0
    ) -> Fault:
        """Process the request, then close the connection without an answer."""
        return self.add(Fault("drop_after", path, count, method, skip=skip))

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed rule for this request, with one use consumed."""
        with self._lock:
            for rule in self._rules:
                if rule.count > 0 and rule.matches(method, path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        return None
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                    rule.hit.set()
                    return rule
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(r) for r in self._rules]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
