"""``OpenhimAgent`` keeps the mediator registered with OpenHIM core and heartbeating.

It retries registration with capped, jittered back-off on a background thread,
heartbeats every 10 s from a scheduler job that never raises, asks for the config on the
first beat and after any failure (core pushes a change once), re-registers when the
mediator was deleted in the console (404), and reports async runs' transactions.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from mediator.http.client import RetryPolicy
from mediator.http.errors import PeerError, TimedOut, TlsFailed, Unreachable
from mediator.model.values import utcnow

from .client import MediatorNotFound, OpenhimClient
from .console_config import ConsoleConfig

log = logging.getLogger(__name__)

# Registration while core is away: 2, 4, 8 … s, capped at 5 min, with jitter.
AGENT_RETRY = RetryPolicy(attempts=1_000_000, base_seconds=2.0, cap_seconds=300.0)


def retry_later(exc: PeerError) -> bool:
    """Core away (unreachable, slow, 5xx) rather than refusing what was asked (4xx)."""
    return isinstance(exc, Unreachable | TimedOut | TlsFailed) or (exc.status or 0) >= 500


class OpenhimAgent:
    """Keeps the mediator registered and its config fresh, without ever raising."""

    def __init__(
        self,
        client: OpenhimClient,
        registration: Mapping[str, Any],
        console: ConsoleConfig,
        *,
        retry: RetryPolicy = AGENT_RETRY,
        rng: random.Random | None = None,
        sleep: Callable[[float], Any] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.client = client
        self.registration = dict(registration)
        self.urn: str = str(registration["urn"])
        self.console = console
        self.retry = retry
        self._rng = rng or random.Random()
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
            except PeerError as exc:
                message = str(exc)
                self.last_error = message
                key = f"{type(exc).__name__}:{exc.status}:{message}"
                if key != last_logged:
                    if not retry_later(exc):
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
            self._sleep(self.retry.pause(attempt, self._rng))
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
            except PeerError as exc:
                if not retry_later(exc):
                    log.error(
                        "OpenHIM refused the update of transaction %s: %s", transaction_id, exc
                    )
                    return False
                log.warning("updating transaction %s failed: %s", transaction_id, exc)
                if attempt + 1 < attempts:
                    self._sleep(self.retry.pause(attempt + 1, self._rng))
            else:
                log.info(
                    "transaction %s updated with status %s", transaction_id, update.get("status")
                )
                return True
        log.error("gave up updating transaction %s after %d attempts", transaction_id, attempts)
        return False

    def trigger_channel(self, name: str) -> str | None:
        """Trigger the named channel through core. Returns the channel id (None when
        no such channel); raises PeerError when core could not trigger it."""
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
        except PeerError as exc:
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
