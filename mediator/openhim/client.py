"""The only module that talks to OpenHIM core's API.

``OpenhimClient`` is one call per API route (openhim-core-js v8.5.0 ``src/koaApi.js``),
raising typed errors; ``agent.OpenhimAgent`` drives it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests

from mediator.http.client import HttpClient, Peer, RetryPolicy, json_or_none
from mediator.http.errors import (
    BadShape,
    BadStatus,
    CredentialsRefused,
    Forbidden,
    NotJson,
    PeerError,
)
from mediator.http.transport import Transport
from mediator.model.values import utcnow
from mediator.settings.config import OpenhimSettings

log = logging.getLogger(__name__)

API_TIMEOUT = (10.0, 30.0)  # connect, read
# One attempt per call: the agent retries registration and transaction updates on
# its own schedule (``AGENT_RETRY``), and a heartbeat is due again in 10 s anyway.
ONE_ATTEMPT = RetryPolicy(attempts=1)


class MediatorNotFound(BadStatus):
    """404 on heartbeat: the mediator was deleted in the console."""

    kind = "not_found"


# What each call needs on core 8.5.0 and earlier: the user in the admin group
# (openhim-core-js v8.5.0 src/api/mediators.js, transactions.js, channels.js:
# ``authorisation.inGroup('admin', …)`` on every route below). Cores after 8.5.0 check
# permissions of the user's roles instead.
_NEEDS = {
    "registration": "mediator-manage-all",
    "heartbeat": "mediator-manage-all",
    "transaction update": "channel-manage-all",
    "transaction record": "channel-manage-all",
    "channel list": "channel-view-all",
    "channel trigger": "channel-manage-all",
}


def sha512_hex(text: str) -> str:
    return hashlib.sha512(text.encode("utf-8")).hexdigest()


def token_headers(
    username: str, password: str, passport_salt: str, auth_salt: str, auth_ts: str
) -> dict[str, str]:
    """Legacy token auth: sha512(sha512(salt+password) + auth-salt + auth-ts)
    (openhim-core-js v8.5.0 ``src/protocols/token.js``)."""
    password_hash = sha512_hex(passport_salt + password)
    return {
        "auth-username": username,
        "auth-ts": auth_ts,
        "auth-salt": auth_salt,
        "auth-token": sha512_hex(password_hash + auth_salt + auth_ts),
    }


def js_iso(moment: datetime) -> str:
    """``new Date().toISOString()`` form, which core parses with ``Date.parse``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class HeartbeatResult:
    config: dict[str, Any] | None  # None: no change ("" or "OK")


def openhim_peer(settings: OpenhimSettings) -> Peer:
    if not settings.url:
        raise ValueError("OPENHIM_URL is not set")
    auth = None
    if settings.auth == "basic" and settings.username:
        password = settings.password.get_secret_value() if settings.password else ""
        auth = (settings.username, password)
    return Peer(
        name="OpenHIM",
        base_url=settings.url.rstrip("/"),
        verify=settings.verify,
        timeout=API_TIMEOUT,
        retry=ONE_ATTEMPT,
        auth=auth,
        tls_hint="set OPENHIM_CA_BUNDLE to its CA, or OPENHIM_TRUST_SELF_SIGNED=true (dev only)",
    )


class OpenhimClient:
    """One method per core API route (openhim-core-js v8.5.0 ``src/koaApi.js``). Basic
    auth by default; token auth for cores before 5.1 (``OPENHIM_AUTH=token``)."""

    def __init__(
        self,
        settings: OpenhimSettings,
        *,
        transport: Transport | None = None,
        clock: Callable[[], datetime] = utcnow,
        salt_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.settings = settings
        self.http = HttpClient(openhim_peer(settings), transport=transport)
        self.display_url = self.http.peer.display_url  # for logs and /health
        self._clock = clock
        self._salt_factory = salt_factory
        self._passport_salt: str | None = None
        self._core_version: str | None = None

    # --- plumbing ---

    def _password(self) -> str:
        return self.settings.password.get_secret_value() if self.settings.password else ""

    def _token_headers(self) -> dict[str, str]:
        if self._passport_salt is None:
            self._passport_salt = self._fetch_salt()
        return token_headers(
            self.settings.username or "",
            self._password(),
            self._passport_salt,
            self._salt_factory(),
            js_iso(self._clock()),
        )

    def _fetch_salt(self) -> str:
        user = quote(self.settings.username or "", safe="@")
        response = self.http.send("GET", f"/authenticate/{user}", name="OpenHIM token salt")
        if response.status_code != 200:
            raise CredentialsRefused(
                "OpenHIM",
                f"OpenHIM token auth: GET /authenticate/<user> answered {response.status_code}"
                " (on core 8.x users created with a plain password have no token passport:"
                " use OPENHIM_AUTH=basic)",
                status=response.status_code,
            )
        salt = (json_or_none(response) or {}).get("salt")
        if not isinstance(salt, str):
            # core 8.5.0 answers 200 {"ts": …} without a salt for a user made in the
            # console (no token passport): token auth cannot work for that user
            raise CredentialsRefused(
                "OpenHIM",
                "OpenHIM token auth: GET /authenticate/<user> gave no salt: this user has no "
                "token passport (users made in the console on core 8.x): use OPENHIM_AUTH=basic",
                status=response.status_code,
            )
        return salt

    def _send(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json_body: Any = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> requests.Response:
        """One call; a 5xx raises (core away), any other answer is the caller's."""
        token = self.settings.auth == "token"
        response = self.http.send(
            method,
            path,
            name=f"OpenHIM {what}",
            json_body=json_body,
            timeout=timeout,
            headers=self._token_headers() if token else None,  # new per request
        )
        if token and response.status_code == 401:
            self._passport_salt = None  # the password may have changed: fetch again
        if response.status_code >= 500:
            raise BadStatus(
                "OpenHIM",
                f"OpenHIM {what} ({method} {self.display_url}{path.split('?')[0]}) answered "
                f"{response.status_code}: {_body_text(response)}",
                status=response.status_code,
            )
        return response

    def _fail(self, what: str, response: requests.Response) -> PeerError:
        """Core refused the call: its own words, and what to change."""
        status = response.status_code
        body = _body_text(response)
        if status == 401:
            return CredentialsRefused(
                "OpenHIM",
                f"OpenHIM {what} answered 401 (wrong OPENHIM_USERNAME/OPENHIM_PASSWORD, or "
                f"this auth type is disabled): {body}",
                status=401,
            )
        if status == 403:
            return Forbidden(
                "OpenHIM", f"OpenHIM {what} answered 403 ({self._needs(what)}): {body}", status=403
            )
        cls = MediatorNotFound if status == 404 else BadStatus
        return cls("OpenHIM", f"OpenHIM {what} answered {status}: {body}", status=status)

    def _needs(self, what: str) -> str:
        """What the OpenHIM user lacks for this call, on the core it talks to."""
        version = self.core_version()
        group = "the OpenHIM user needs the admin role"
        permission = _NEEDS.get(what)
        if version is None or _release(version) <= (8, 5, 0) or permission is None:
            shown = f"core {version}" if version else "core 8.5 and earlier"
            return f"{group} for the {what} ({shown} allows it to admins only)"
        return f"the OpenHIM user's role needs the {permission} permission (core {version})"

    def core_version(self) -> str | None:
        """``GET /about``: core's version, asked once (None when core does not say)."""
        if self._core_version is None:
            try:
                response = self.http.send("GET", "/about", name="OpenHIM about")
                version = (json_or_none(response) or {}).get("currentCoreVersion")
            except (PeerError, AttributeError):
                return None
            self._core_version = version if isinstance(version, str) else None
        return self._core_version

    # --- API ---

    def register(self, registration: Mapping[str, Any]) -> None:
        """``POST /mediators``; core answers 201 also when the version is not newer."""
        response = self._send("POST", "/mediators", "registration", json_body=registration)
        if response.status_code not in (200, 201):
            raise self._fail("registration", response)

    def heartbeat(self, urn: str, uptime: float, *, want_config: bool) -> HeartbeatResult:
        """``POST /mediators/:urn/heartbeat``; the body is the config when it changed."""
        body: dict[str, Any] = {"uptime": round(uptime, 3)}
        if want_config:
            body["config"] = True
        path = f"/mediators/{quote(urn, safe=':')}/heartbeat"
        response = self._send("POST", path, "heartbeat", json_body=body)
        if response.status_code != 200:
            raise self._fail("heartbeat", response)
        text = (response.text or "").strip()
        if text in ("", "OK"):
            return HeartbeatResult(config=None)
        try:
            parsed = json.loads(text)
        except ValueError:
            raise NotJson(
                "OpenHIM", f"OpenHIM heartbeat answer is not JSON: {text[:200]!r}"
            ) from None
        if not isinstance(parsed, dict):
            raise BadShape("OpenHIM", "OpenHIM heartbeat answer is not a JSON object")
        return HeartbeatResult(config=parsed)

    def update_transaction(self, transaction_id: str, update: Mapping[str, Any]) -> None:
        """``PUT /transactions/:id``: the async answer replacing the 202 Processing one."""
        path = f"/transactions/{quote(transaction_id, safe='')}"
        response = self._send("PUT", path, "transaction update", json_body=update)
        if response.status_code != 200:
            raise self._fail("transaction update", response)

    def create_transaction(self, transaction: Mapping[str, Any]) -> None:
        """``POST /transactions``: used only when a scheduled run could not go through core."""
        response = self._send("POST", "/transactions", "transaction record", json_body=transaction)
        if response.status_code not in (200, 201):
            raise self._fail("transaction record", response)

    def find_channel(self, name: str) -> str | None:
        """The ``_id`` of the channel called ``name``, or None."""
        response = self._send("GET", "/channels", "channel list")
        if response.status_code != 200:
            raise self._fail("channel list", response)
        channels = json_or_none(response)
        if not isinstance(channels, list):
            raise BadShape("OpenHIM", "OpenHIM GET /channels answer is not a JSON list")
        for channel in channels:
            if isinstance(channel, dict) and channel.get("name") == name:
                return str(channel.get("_id"))
        return None

    def trigger_channel(self, channel_id: str, timeout: float = 3700.0) -> None:
        """``POST /channels/:id/trigger``: core calls the route as its poller would.
        Core answers 500 also when the route answered non-2xx (a Failed run)."""
        path = f"/channels/{quote(channel_id, safe='')}/trigger"
        response = self._send("POST", path, "channel trigger", timeout=(10.0, timeout))
        if response.status_code != 200:
            raise self._fail("channel trigger", response)


def _body_text(response: requests.Response, limit: int = 2000) -> str:
    text = response.text or ""
    return text if len(text) <= limit else text[:limit] + "…"


def _release(version: str) -> tuple[int, ...]:
    parts = [int(p) for p in version.split("-")[0].split(".")[:3] if p.isdigit()]
    return tuple(parts + [0] * (3 - len(parts)))
