"""What carries the bytes: ``SessionTransport`` (``requests``, one connection pool) in
production, or a ``MockTransport`` whose handler answers each request in unit tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import requests


class Transport(Protocol):
    def send(
        self,
        request: requests.PreparedRequest,
        *,
        timeout: float | tuple[float, float],
        verify: bool | str,
    ) -> requests.Response: ...

    def close(self) -> None: ...


class SessionTransport:
    """``requests`` with one connection pool; proxies from the environment apply,
    but ``REQUESTS_CA_BUNDLE`` never overrides the peer's own TLS setting."""

    def __init__(self) -> None:
        self.session = requests.Session()

    def send(
        self,
        request: requests.PreparedRequest,
        *,
        timeout: float | tuple[float, float],
        verify: bool | str,
    ) -> requests.Response:
        env = self.session.merge_environment_settings(request.url, {}, None, verify, None)
        env["verify"] = verify
        return self.session.send(request, timeout=timeout, allow_redirects=False, **env)

    def close(self) -> None:
        self.session.close()


Handler = Callable[[requests.PreparedRequest], "requests.Response | tuple[int, Any]"]


class MockTransport:
    """A transport whose ``handler`` answers: a ``requests.Response``, or ``(status,
    body)`` with a JSON-able or text body; raising a ``requests`` exception simulates
    the network failing. ``requests`` keeps what was sent, for assertions."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[requests.PreparedRequest] = []

    def send(
        self,
        request: requests.PreparedRequest,
        *,
        timeout: float | tuple[float, float],
        verify: bool | str,
    ) -> requests.Response:
        self.requests.append(request)
        answer = self.handler(request)
        if isinstance(answer, requests.Response):
            return answer
        status, body = answer
        response = requests.Response()
        response.status_code = status
        response.url = request.url or ""
        text = body if isinstance(body, str) else json.dumps(body)
        response._content = text.encode()
        response.headers["Content-Type"] = (
            "text/plain" if isinstance(body, str) else "application/json"
        )
        response.request = request
        return response

    def close(self) -> None:
        pass
