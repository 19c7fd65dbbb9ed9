"""Fault injection for the API port, so mediator tests can exercise retry/back-off paths.

Off by default. Rules match `re.search(pattern, path)` (anchor with `^...$` for an
exact path) and optionally a method. A rule with `times=None` stays until
`clear()`; otherwise it is consumed per matching request. Faults apply before
authentication, the way a proxy or an overloaded core would fail. "API down"
(listener closed → connection refused) lives on `OpenhimStandIn.down()/up()`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass


@dataclass
class FaultRule:
    pattern: re.Pattern[str]
    method: str | None
    status: int | None
    delay: float
    remaining: int | None
    body: str | None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return self.pattern.search(path) is not None


@dataclass
class FaultDecision:
    delay: float = 0.0
    status: int | None = None
    body: str | None = None


class Faults:
    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def fail(
        self,
        path: str,
        status: int = 500,
        times: int | None = 1,
        method: str | None = None,
        body: str | None = None,
    ) -> FaultRule:
        """The next `times` matching requests answer `status` (Koa phrase unless `body`)."""
        return self._add(FaultRule(re.compile(path), method, status, 0.0, times, body))

    def slow(
        self, path: str, seconds: float, times: int | None = None, method: str | None = None
    ) -> FaultRule:
        """Matching requests are delayed by `seconds` before being handled normally."""
        return self._add(FaultRule(re.compile(path), method, None, seconds, times, None))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def active(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def _add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def decide(self, method: str, path: str) -> FaultDecision:
        """Consume matching rules; delays add up, the first failing rule wins."""
        decision = FaultDecision()
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(method, path):
                    continue
                decision.delay += rule.delay
                if rule.status is not None and decision.status is None:
                    decision.status, decision.body = rule.status, rule.body
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
        return decision
