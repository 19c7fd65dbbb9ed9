"""The only module that talks to OpenHIM core's API.

``OpenhimClient`` is one call per API route (reference §1-§6), raising typed
errors. ``OpenhimAgent`` keeps the mediator registered and heartbeating: it
retries registration with capped, jittered back-off on a background thread,
heartbeats every 10 s from a scheduler job that never raises, asks for the
config on the first beat and after any failure (core pushes a change once),
and re-registers when the mediator was deleted in the console (404).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from .config import OpenhimSettings
from .console_config import ConsoleConfig
from .models import utcnow

log = logging.getLogger(__name__)

API_TIMEOUT = (10.0, 30.0)  # connect, read


class OpenhimError(Exception):
    """A call to OpenHIM core did not do what was asked."""

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class OpenhimUnavailable(OpenhimError):
    """Core unreachable, timed out or answered 5xx: worth retrying later."""


class OpenhimRejected(OpenhimError):
    """Core answered 4xx: our request or our credentials/permissions are wrong."""


class MediatorNotFound(OpenhimRejected):
    """404 on heartbeat: the mediator was deleted in the console."""


def sha512_hex(text: str) -> str:
    return hashlib.sha512(text.encode("utf-8")).hexdigest()


def token_headers(
    username: str, password: str, passport_salt: str, auth_salt: str, auth_ts: str
) -> dict[str, str]:
    """Legacy token auth (§3a): sha512(sha512(salt+password) + auth-salt + auth-ts)."""
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


def _body_text(response: requests.Response, limit: int = 2000) -> str:
    text = response.text or ""
    return text if len(text) <= limit else text[:limit] + "…"


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class HeartbeatResult:
    config: dict[str, Any] | None  # None: no change ("" or "OK")


class OpenhimClient:
    """Basic auth by default; token auth for cores before 5.1 (``OPENHIM_AUTH=token``)."""

    def __init__(
        self,
        settings: OpenhimSettings,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = utcnow,
        salt_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        if not settings.url:
            raise ValueError("OPENHIM_URL is not set")
        self.settings = settings
        self.base = settings.url.rstrip("/")
        self.display_url = _without_userinfo(self.base)  # for logs and /health
        self.session = session or requests.Session()
        self.session.verify = settings.verify
        self._clock = clock
        self._salt_factory = salt_factory
        self._passport_salt: str | None = None

    # --- plumbing ---

    def _password(self) -> str:
        return self.settings.password.get_secret_value() if self.settings.password else ""

    def _auth_headers(self) -> dict[str, str]:
        if self.settings.auth == "token":
            if self._passport_salt is None:
                self._passport_salt = self._fetch_salt()
            return token_headers(
                self.settings.username or "",
                self._password(),
                self._passport_salt,
                self._salt_factory(),
                js_iso(self._clock()),
            )
        return {}

    def _fetch_salt(self) -> str:
        user = quote(self.settings.username or "", safe="@")
        response = self._send("GET", f"/authenticate/{user}", authenticated=False)
        if response.status_code != 200:
            raise OpenhimRejected(
                f"OpenHIM token auth: GET /authenticate/<user> answered {response.status_code}"
                " (on core 8.x users created with a plain password have no token passport:"
                " use OPENHIM_AUTH=basic)",
                response.status_code,
                _body_text(response),
            )
        try:
            return str(response.json()["salt"])
        except (ValueError, KeyError, TypeError):
            raise OpenhimError("OpenHIM /authenticate answer has no salt") from None

    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        authenticated: bool = True,
        timeout: float | tuple[float, float] = API_TIMEOUT,
    ) -> requests.Response:
        url = self.base + path
        shown = self.display_url + path
        headers = self._auth_headers() if authenticated else {}
        auth = None
        if authenticated and self.settings.auth == "basic" and self.settings.username:
            auth = (self.settings.username, self._password())
        try:
            response = self.session.request(
                method,
                url,
                json=json_body,
                headers=headers,
                auth=auth,
                timeout=timeout,
                # per request: requests lets REQUESTS_CA_BUNDLE override session.verify
                verify=self.settings.verify,
            )
        except requests.exceptions.SSLError as exc:
            hint = (
                "the API may be plain http: check the scheme of OPENHIM_URL"
                if "WRONG_VERSION_NUMBER" in str(exc) or "plaintext" in str(exc)
                else "set OPENHIM_CA_BUNDLE to its CA, or OPENHIM_TRUST_SELF_SIGNED=true (dev only)"
            )
            raise OpenhimUnavailable(f"TLS failed for {method} {shown}: {hint}") from None
        except requests.RequestException as exc:
            raise OpenhimUnavailable(f"{method} {shown}: {type(exc).__name__}") from None
        if response.status_code == 401 and self.settings.auth == "token":
            self._passport_salt = None  # the password may have changed: fetch again next call
        if response.status_code >= 500:
            raise OpenhimUnavailable(
                f"{method} {shown} answered {response.status_code}",
                response.status_code,
                _body_text(response),
            )
        return response

    def _fail(self, what: str, response: requests.Response) -> OpenhimRejected:
        body = _body_text(response)
        cls = MediatorNotFound if response.status_code == 404 else OpenhimRejected
        hint = {
            401: " (wrong OPENHIM_USERNAME/OPENHIM_PASSWORD, or this auth type is disabled)",
            403: " (the user needs the admin role, or mediator-manage-all on core 8.5)",
        }.get(response.status_code, "")
        return cls(
            f"{what} answered {response.status_code}{hint}: {body}", response.status_code, body
        )

    # --- API ---

    def register(self, registration: Mapping[str, Any]) -> None:
        """``POST /mediators``; core answers 201 also when the version is not newer."""
        response = self._send("POST", "/mediators", json_body=registration)
        if response.status_code not in (200, 201):
            raise self._fail("OpenHIM registration (POST /mediators)", response)

    def heartbeat(self, urn: str, uptime: float, *, want_config: bool) -> HeartbeatResult:
        """``POST /mediators/:urn/heartbeat``; the body is the config when it changed."""
        body: dict[str, Any] = {"uptime": round(uptime, 3)}
        if want_config:
            body["config"] = True
        response = self._send(
            "POST", f"/mediators/{quote(urn, safe=':')}/heartbeat", json_body=body
        )
        if response.status_code != 200:
            raise self._fail("OpenHIM heartbeat", response)
        text = (response.text or "").strip()
        if text in ("", "OK"):
            return HeartbeatResult(config=None)
        try:
            parsed = json.loads(text)
        except ValueError:
            raise OpenhimError(f"OpenHIM heartbeat answer is not JSON: {text[:200]!r}") from None
        if not isinstance(parsed, dict):
            raise OpenhimError("OpenHIM heartbeat answer is not a JSON object")
        return HeartbeatResult(config=parsed)

    def update_transaction(self, transaction_id: str, update: Mapping[str, Any]) -> None:
        """``PUT /transactions/:id``: the async answer replacing the 202 Processing one."""
        response = self._send(
            "PUT", f"/transactions/{quote(transaction_id, safe='')}", json_body=update
        )
        if response.status_code != 200:
            raise self._fail("OpenHIM PUT /transactions/<id>", response)

    def create_transaction(self, transaction: Mapping[str, Any]) -> None:
        """``POST /transactions``: used only when a scheduled run could not go through core."""
        response = self._send("POST", "/transactions", json_body=transaction)
        if response.status_code not in (200, 201):
            raise self._fail("OpenHIM POST /transactions", response)

    def find_channel(self, name: str) -> str | None:
        """The ``_id`` of the channel called ``name``, or None."""
        response = self._send("GET", "/channels")
        if response.status_code != 200:
            raise self._fail("OpenHIM GET /channels", response)
        try:
            channels = response.json()
        except ValueError:
            raise OpenhimError("OpenHIM GET /channels answer is not JSON") from None
        for channel in channels if isinstance(channels, list) else []:
            if isinstance(channel, dict) and channel.get("name") == name:
                return str(channel.get("_id"))
        return None

    def trigger_channel(self, channel_id: str, timeout: float = 3700.0) -> None:
        """``POST /channels/:id/trigger``: core calls the route as its poller would.
        Core answers 500 also when the route answered non-2xx (a Failed run)."""
        response = self._send(
            "POST", f"/channels/{quote(channel_id, safe='')}/trigger", timeout=(10.0, timeout)
        )
        if response.status_code != 200:
            raise self._fail("OpenHIM channel trigger", response)


class Backoff:
    """Exponential back-off, capped, with jitter in [delay/2, delay]."""

    def __init__(
        self,
        base: float = 2.0,
        cap: float = 300.0,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.base, self.cap, self._rng = base, cap, rng

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 30)))
        return self._rng(ceiling / 2, ceiling)


class OpenhimAgent:
    """Keeps the mediator registered and its config fresh, without ever raising."""

    def __init__(
        self,
        client: OpenhimClient,
        registration: Mapping[str, Any],
        console: ConsoleConfig,
        *,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Any] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.client = client
        self.registration = dict(registration)
        self.urn: str = str(registration["urn"])
        self.console = console
        self.backoff = backoff or Backoff()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._monotonic = monotonic
        self._started = monotonic()
        self._clock = clock
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.registered = False
        self.registered_at: datetime | None = None
        self.last_heartbeat: datetime | None = None
        self.last_heartbeat_ok: bool | None = None
        self.last_error: str | None = None
        self._want_config = True
        self._heartbeat_failing = False
        self._failures = 0

    # --- registration ---

    def register_until_done(self, max_attempts: int | None = None) -> bool:
        """Register, retrying with back-off; True once registered. Logs the first
        failure of an outage (with core's answer for 4xx) and then stays quiet."""
        attempt = 0
        last_logged: str | None = None
        while not self._stop.is_set():
            try:
                self.client.register(self.registration)
            except OpenhimError as exc:
                message = str(exc)
                self.last_error = message
                key = f"{type(exc).__name__}:{exc.status}:{exc.body}"
                if key != last_logged:
                    if isinstance(exc, OpenhimRejected):
                        log.error("OpenHIM rejected the registration of %s: %s", self.urn, message)
                    else:
                        log.warning("OpenHIM not reachable for registration: %s; retrying", message)
                    last_logged = key
                else:
                    log.debug("registration still failing: %s", message)
            except Exception:  # a bug must not kill the thread silently
                log.exception("unexpected error registering with OpenHIM")
                self.last_error = "unexpected error, see log"
            else:
                with self._lock:
                    self.registered = True
                    self.registered_at = self._clock()
                    self._want_config = True
                    self.last_error = None
                log.info(
                    "registered %s version %s with OpenHIM at %s%s",
                    self.urn,
                    self.registration.get("version"),
                    self.client.display_url,
                    f" after {attempt} failed attempts" if attempt else "",
                )
                return True
            attempt += 1
            if max_attempts is not None and attempt >= max_attempts:
                return False
            self._sleep(self.backoff.delay(attempt - 1))
        return False

    def start(self) -> None:
        """Register on a background thread, so HTTP endpoints answer meanwhile."""
        with self._lock:
            current = self._thread
            # the registration thread itself may see a 404 on its first heartbeat
            if (
                current is not None
                and current.is_alive()
                and current is not threading.current_thread()
            ):
                return
            self._thread = threading.Thread(
                target=self._register_then_beat, name="openhim-register", daemon=True
            )
            self._thread.start()

    def _register_then_beat(self) -> None:
        if self.register_until_done():
            self.heartbeat()  # fetch the console config now, not in 10 s

    def stop(self) -> None:
        self._stop.set()

    def report_transaction(
        self, transaction_id: str, update: Mapping[str, Any], attempts: int = 4
    ) -> bool:
        """PUT the final answer of an async run, retrying while core is away."""
        for attempt in range(attempts):
            try:
                self.client.update_transaction(transaction_id, update)
            except OpenhimUnavailable as exc:
                log.warning("updating transaction %s failed: %s", transaction_id, exc)
                if attempt + 1 < attempts:
                    self._sleep(self.backoff.delay(attempt))
            except OpenhimError as exc:
                log.error("OpenHIM refused the update of transaction %s: %s", transaction_id, exc)
                return False
            else:
                log.info(
                    "transaction %s updated with status %s", transaction_id, update.get("status")
                )
                return True
        log.error("gave up updating transaction %s after %d attempts", transaction_id, attempts)
        return False

    def trigger_channel(self, name: str) -> str | None:
        """Trigger the named channel through core. Returns the channel id (None when
        no such channel); raises OpenhimError when core could not trigger it."""
        channel_id = self.client.find_channel(name)
        if channel_id is None:
            return None
        self.client.trigger_channel(channel_id)
        return channel_id

    # --- heartbeat ---

    def uptime(self) -> float:
        return self._monotonic() - self._started

    def heartbeat(self) -> None:
        """The scheduler job. Never raises: a dead heartbeat job means a mediator
        shown offline in the console until someone restarts it."""
        if not self.registered:
            return  # the registration thread is at work
        try:
            result = self.client.heartbeat(self.urn, self.uptime(), want_config=self._want_config)
        except MediatorNotFound:
            log.warning(
                "OpenHIM does not know %s any more (deleted in the console?): re-registering",
                self.urn,
            )
            self._beat_failed("mediator not found (404): re-registering")
            with self._lock:
                self.registered = False
            self.start()
            return
        except OpenhimError as exc:
            self._beat_failed(str(exc))
            return
        except Exception as exc:
            log.exception("unexpected error in the OpenHIM heartbeat")
            self._beat_failed(f"unexpected {type(exc).__name__}")
            return
        if self._heartbeat_failing:
            log.info("OpenHIM heartbeat recovered after %d failures", self._failures)
        self._heartbeat_failing = False
        self._failures = 0
        self.last_heartbeat = self._clock()
        self.last_heartbeat_ok = True
        self.last_error = None
        if result.config is not None:
            self.console.apply(result.config)
        self._want_config = False

    def _beat_failed(self, reason: str) -> None:
        self._failures += 1
        self.last_heartbeat = self._clock()
        self.last_heartbeat_ok = False
        self.last_error = reason
        self._want_config = True  # a lost answer may have carried a config change
        if not self._heartbeat_failing:
            log.warning("OpenHIM heartbeat failed: %s (logged once until it recovers)", reason)
            self._heartbeat_failing = True

    def status(self) -> dict[str, Any]:
        """For /health: nothing secret, URLs without credentials."""
        return {
            "configured": True,
            "url": self.client.display_url,
            "urn": self.urn,
            "registered": self.registered,
            "registered_at": self.registered_at.isoformat() if self.registered_at else None,
            "last_heartbeat": self.last_heartbeat.isoformat() if self.last_heartbeat else None,
            "last_heartbeat_ok": self.last_heartbeat_ok,
            "last_error": self.last_error,
            "console_config_received": (
                self.console.received_at.isoformat() if self.console.received_at else None
            ),
        }
