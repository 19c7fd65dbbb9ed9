"""One HTTP layer for CHT, DHIS2 and OpenHIM: ``HttpClient`` and a peer's ``Peer``.

Every request to a peer goes through ``HttpClient.send``: TLS per peer, timeouts,
redirects never followed, bounded retries by the peer's ``RetryPolicy`` (network
errors, timeouts, 429 and 5xx; ``Retry-After`` honoured within the budget), each
attempt recorded as an ``Exchange`` with credentials masked, and failures raised as
one exception hierarchy (``errors``) that says what happened and to whom.

``send`` returns the response for any status it does not retry; the peer's module
decides what a 404 or a 409 means and raises from that hierarchy. A ``Transport``
(``transport``) carries the bytes, so unit tests swap the network instead of patching
it (as ``httpx.MockTransport`` does).
"""

from __future__ import annotations

import html
import json
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from mediator.model.values import Exchange, utcnow
from mediator.settings.secrets import mask_headers

from .errors import BadStatus, PeerError, TimedOut, TlsFailed, Unreachable
from .transport import MockTransport, SessionTransport, Transport

Recorder = Callable[[Exchange], None]
Params = Sequence[tuple[str, str]] | Mapping[str, str] | None

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
DETAIL_CHARS = 200


# -- retries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how long and on what a peer's requests are retried. Every request
    the mediator retries is safe to repeat: reads, and DHIS2 imports, which upsert."""

    attempts: int = 3
    budget_seconds: float = 60.0  # at most this long asleep between attempts
    base_seconds: float = 0.5  # first pause; doubles per attempt
    cap_seconds: float = 30.0
    jitter: bool = True  # pauses of 50-100 % of the nominal one, so clients spread out
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def pause(self, attempt: int, rng: random.Random) -> float:
        """The pause after failed attempt ``attempt`` (1-based)."""
        nominal = min(self.cap_seconds, self.base_seconds * 2.0 ** min(attempt - 1, 30))
        return nominal * (0.5 + 0.5 * rng.random()) if self.jitter else nominal


def retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or None."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


# -- a peer and its client -----------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """One outside system as the mediator talks to it."""

    name: str  # CHT | DHIS2 | OpenHIM: the word every message starts with
    base_url: str
    verify: bool | str = True
    timeout: float | tuple[float, float] = 60.0
    retry: RetryPolicy = RetryPolicy()
    auth: tuple[str, str] | None = field(default=None, repr=False)  # Basic, sent up front
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    tls_hint: str = ""  # the setting that fixes an untrusted certificate
    record_bodies: bool = True

    @property
    def display_url(self) -> str:
        return without_userinfo(self.base_url.rstrip("/"))


class HttpClient:
    """Requests to one peer, each retried by its policy and recorded as it happens."""

    def __init__(
        self,
        peer: Peer,
        *,
        transport: Transport | None = None,
        recorder: Recorder | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.peer = peer
        self.transport = transport or SessionTransport()
        self.recorder = recorder
        self.sleep = sleep
        self.rng = rng or random.Random()

    def fork(self) -> HttpClient:
        """Another client of the same peer on a connection of its own (for a thread:
        a ``requests`` session is not shared across threads)."""
        transport = self.transport if isinstance(self.transport, MockTransport) else None
        return HttpClient(
            self.peer, transport=transport, recorder=self.recorder, sleep=self.sleep, rng=self.rng
        )

    def close(self) -> None:
        self.transport.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.peer.base_url + path

    def send(
        self,
        method: str,
        path: str,
        *,
        name: str,
        params: Params = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        timeout: float | tuple[float, float] | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One logical request: the response for any status the policy does not retry,
        else the exception that says why it failed after the last attempt. ``name``
        says what it is for, in the recorded exchange and in errors."""
        prepared = self._prepare(method, path, params, json_body, data, headers or {})
        policy = retry or self.peer.retry
        slept = 0.0
        attempt = 0
        while True:
            attempt += 1
            exchange = self._exchange(prepared, name, attempt)
            try:
                response = self.transport.send(
                    prepared, timeout=timeout or self.peer.timeout, verify=self.peer.verify
                )
            except requests.exceptions.SSLError as exc:
                self._finish(exchange, error="TLS certificate verification failed")
                raise self._tls_error(exc, prepared, name) from None
            except _NETWORK_FAILURES as exc:
                timed_out = isinstance(exc, requests.Timeout)
                self._finish(exchange, error=f"{_words(timed_out)}: {type(exc).__name__}")
                failure: PeerError = (TimedOut if timed_out else Unreachable)(
                    self.peer.name,
                    f"{self.peer.name} at {self.where(prepared)} {_words(timed_out)} ({name}) "
                    f"after {attempt} attempt(s): {type(exc).__name__}",
                )
                pause = policy.pause(attempt, self.rng)
            else:
                self._finish(exchange, response=response)
                if response.status_code not in policy.statuses:
                    return response
                failure = BadStatus(
                    self.peer.name,
                    f"{self.peer.name} at {self.where(prepared)} answered HTTP "
                    f"{response.status_code} ({name}) after {attempt} attempt(s)"
                    f"{detail_suffix(response)}",
                    status=response.status_code,
                )
                asked = retry_after(response) if response.status_code == 429 else None
                if asked is not None and slept + asked > policy.budget_seconds:
                    raise failure  # the server asks for a longer wait than the budget
                pause = policy.pause(attempt, self.rng) if asked is None else asked
            pause = min(pause, policy.budget_seconds - slept)
            if attempt >= policy.attempts or pause <= 0:
                raise failure
            self.sleep(pause)
            slept += pause

    def where(self, prepared: requests.PreparedRequest) -> str:
        return self.where_of(prepared.url or "")

    def where_of(self, url: str) -> str:
        """The peer's address and the request's path, never a credential or a query."""
        base_path = urlsplit(self.peer.base_url).path
        return self.peer.display_url + urlsplit(url).path.removeprefix(base_path)

    def _prepare(
        self,
        method: str,
        path: str,
        params: Params,
        json_body: Any,
        data: bytes | str | None,
        extra: Mapping[str, str],
    ) -> requests.PreparedRequest:
        headers = {"Accept": "application/json", **self.peer.headers, **extra}
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        request = requests.Request(
            method,
            self.url(path),
            params=list(params.items()) if isinstance(params, Mapping) else list(params or []),
            data=data,
            headers=headers,
            auth=self.peer.auth,
        )
        return request.prepare()

    def _exchange(self, prepared: requests.PreparedRequest, name: str, attempt: int) -> Exchange:
        url = without_userinfo(prepared.url or "")
        parts = urlsplit(url)
        body = prepared.body if self.peer.record_bodies else None
        return Exchange(
            peer=self.peer.name,
            name=name if attempt == 1 else f"{name} (attempt {attempt})",
            method=prepared.method or "GET",
            url=url,
            path=parts.path,
            querystring=parts.query,
            request_headers=mask_headers(prepared.headers.items()),
            request_body=body.decode() if isinstance(body, bytes) else body or "",
        )

    def _finish(
        self,
        exchange: Exchange,
        *,
        response: requests.Response | None = None,
        error: str | None = None,
    ) -> None:
        if self.recorder is None:
            return
        exchange.finished = utcnow()
        exchange.error = error
        if response is not None:
            exchange.status = response.status_code
            exchange.response_headers = mask_headers(response.headers.items())
            exchange.response_bytes = len(response.content)
            if self.peer.record_bodies:
                exchange.response_body = response.text
        self.recorder(exchange)

    def _tls_error(
        self, exc: requests.exceptions.SSLError, prepared: requests.PreparedRequest, name: str
    ) -> TlsFailed:
        plain = "WRONG_VERSION_NUMBER" in str(exc) or "plaintext" in str(exc)
        hint = (
            "the server may speak plain http: check the scheme of the URL"
            if plain
            else self.peer.tls_hint
        )
        return TlsFailed(
            self.peer.name,
            f"TLS certificate verification failed for {self.peer.name} at "
            f"{self.where(prepared)} ({name})" + (f": {hint}" if hint else ""),
        )


def _words(timed_out: bool) -> str:
    return "timed out" if timed_out else "is unreachable"


# the network failed mid-way: refused, reset, cut off in the body (worth another attempt)
_NETWORK_FAILURES = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


# -- small shared helpers --------------------------------------------------------------------


def without_userinfo(url: str) -> str:
    """The URL without any ``user:password@`` part: what logs and reports may show."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def body_detail(response: requests.Response, limit: int = DETAIL_CHARS) -> str:
    """One line from an error body: a JSON ``message`` or ``error``/``reason``, an HTML
    page's title (a proxy's error page, never the whole page), or the text's start."""
    text = response.text or ""
    data = json_or_none(response)
    if isinstance(data, dict):
        parts = [
            str(data[k]) for k in ("message", "error", "reason") if isinstance(data.get(k), str)
        ]
        if parts:
            return one_line(" / ".join(dict.fromkeys(parts)), limit)
    head = text[:500].lower()
    if "<html" in head or "<!doctype" in head:
        title = _TITLE.search(text)
        return one_line(html.unescape(title.group(1)) if title else "an HTML error page", limit)
    return one_line(_TAGS.sub(" ", text), limit)


def detail_suffix(response: requests.Response) -> str:
    detail = body_detail(response)
    return f": {detail}" if detail else ""


def one_line(text: str, limit: int = DETAIL_CHARS) -> str:
    """Whitespace folded to single spaces, cut at a word boundary with an ellipsis."""
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return f"{cut}…"
