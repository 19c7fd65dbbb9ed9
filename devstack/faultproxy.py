"""A tiny HTTP fault proxy, for peers that have no fault hooks of their own.

pouchdb-server (the CHT CouchDB in tests) cannot be told to fail, so CHT fault
tests put this proxy in front of it and point ``CHT_URL`` at the proxy::

    with FaultProxy(couch.url) as proxy:
        proxy.add(Rule("status", path=r"/_all_docs$", query="startkey", status=500))
        ... CHT_URL=proxy.url ...

Rules match a method, a path regex and a query-string substring, let ``skip``
matching requests through first, then fire ``count`` times (``None``: forever).
Kinds:

- ``status``: answer ``status`` with ``body`` instead of forwarding.
- ``drop``: close the connection without answering (nothing forwarded).
- ``truncate``: forward, then send the headers and only part of the body before
  closing the connection (a page that fails mid-way).
- ``delay``: sleep ``seconds``, then forward.
- ``hold``: wait until ``rule.release`` is set (``seconds`` at most, 60 if 0), then
  forward: a test decides when the answer comes, instead of guessing a delay.
- ``rewrite``: forward, then replace the body with ``rewrite(body)``.

Every request is recorded in ``log`` (method, path, query, status, rule kind, and
when it came in and was answered, on the monotonic clock). An https upstream with
a self-signed certificate (OpenHIM core's API) needs ``verify=False``.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from .net import ServerThread

KINDS = {"status", "drop", "truncate", "delay", "hold", "rewrite"}
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


@dataclass
class Rule:
    kind: str
    path: str = ".*"
    method: str | None = None
    query: str = ""
    count: int | None = 1
    skip: int = 0
    status: int = 500
    body: bytes = b'{"error":"injected","reason":"fault proxy"}'
    seconds: float = 0.0
    rewrite: Callable[[bytes], bytes] | None = None
    release: threading.Event = field(default_factory=threading.Event)
    fired: int = 0

    def matches(self, method: str, path: str, query: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return re.search(self.path, path) is not None and self.query in query


@dataclass
class Seen:
    method: str
    path: str
    query: str
    status: int | None = None
    fault: str | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None


@dataclass
class FaultProxy:
    upstream: str
    verify: bool | str = True
    rules: list[Rule] = field(default_factory=list)
    log: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ServerThread | None = None

    def start(self) -> FaultProxy:
        self._server = ServerThread(self._wsgi).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        return self._server.url

    def add(self, rule: Rule) -> Rule:
        if rule.kind not in KINDS:
            raise ValueError(f"unknown fault kind {rule.kind!r}")
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _take(self, method: str, path: str, query: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path, query):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    return None
                rule.fired += 1
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self.rules.remove(rule)
                return rule
        return None

    # -- the WSGI app ---------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        seen = Seen(method, path, query)
        with self._lock:
            self.log.append(seen)
        rule = self._take(method, path, query)
        seen.fault = rule.kind if rule else None
        sock = environ.get("werkzeug.socket")
        if rule is not None and rule.kind == "drop":
            _shutdown(sock)
            start_response("500 Dropped", [("Content-Length", "0")])
            return [b""]
        if rule is not None and rule.kind == "status":
            seen.status, seen.ended = rule.status, time.monotonic()
            start_response(
                f"{rule.status} Injected",
                [("Content-Type", "application/json"), ("Content-Length", str(len(rule.body)))],
            )
            return [rule.body]
        if rule is not None and rule.kind == "delay":
            time.sleep(rule.seconds)
        if rule is not None and rule.kind == "hold":
            rule.release.wait(rule.seconds or 60.0)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(length) if length else None
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key[5:].lower().replace("_", "-") not in _HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        headers.pop("Host", None)
        url = self.upstream.rstrip("/") + path + (f"?{query}" if query else "")
        try:
            answer = requests.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=60,
                allow_redirects=False,
                verify=self.verify,
            )
        except requests.ConnectionError:  # upstream down: as a gateway says it
            seen.status, seen.ended = 502, time.monotonic()
            start_response("502 Bad Gateway", [("Content-Length", "0")])
            return [b""]
        body = answer.content
        if rule is not None and rule.kind == "rewrite" and rule.rewrite is not None:
            body = rule.rewrite(body)
        seen.status, seen.ended = answer.status_code, time.monotonic()
        out = [(k, v) for k, v in answer.headers.items() if k.lower() not in _HOP]
        out.append(("Content-Length", str(len(body))))
        start_response(f"{answer.status_code} {answer.reason}", out)
        if rule is not None and rule.kind == "truncate":
            return _cut(body, sock)
        return [body]


def _shutdown(sock: Any) -> None:
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _cut(body: bytes, sock: Any) -> Iterator[bytes]:
    """Half the body, then the connection closes under the client."""
    yield body[: max(1, len(body) // 2)]
    _shutdown(sock)
