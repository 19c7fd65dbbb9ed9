"""`OpenhimStandIn`: state, the API Flask app, and the servers (API + router ports).

Plain HTTP on loopback: core's API is https by default (self-signed cert), which
only matters to TLS tests; point the mediator at `standin.url` with http.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, abort, g, request

from devstack.net import ServerThread

from . import channels, mediators, transactions
from .auth import Authenticator, Client, User, default_users
from .bodies import stored_body_bytes
from .faults import Faults
from .jsfmt import koa_text, new_object_id
from .mediators import install_default_channels
from .router import Outcome, Router
from .transactions import (
    apply_budget,
    has_error,
    missing_tx_error,
    reached_max_attempts,
    validate_new,
)

PUBLIC_ENDPOINTS = {"public_heartbeat", "authenticate_salt"}
MAX_API_PAYLOAD = 50 * 1024 * 1024


class OpenhimStandIn:
    """An in-process OpenHIM core (API + router) for tests, demos and manual runs."""

    def __init__(
        self,
        users: Iterable[User] | None = None,
        clients: Iterable[Client] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        router_port: int = 0,
        route_timeout_ms: int = 60000,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.auth = Authenticator(list(users) if users is not None else default_users())
        self.clients: list[Client] = list(clients or [])
        self.lock = threading.RLock()
        self._mediators: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._scheduled: set[str] = set()
        self._transactions: dict[str, dict[str, Any]] = {}
        self.tasks: list[dict[str, Any]] = []
        self.autoretry_queue: list[str] = []
        self.store_failures: list[dict[str, str]] = []
        self.api_log: list[dict[str, Any]] = []
        self.faults = Faults()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.started_at = self.now()
        self.router = Router(self, timeout_ms=route_timeout_ms)
        self.app = create_api_app(self)
        self.router_app = self.router.create_app()
        self._host, self._port, self._router_port = host, port, router_port
        self._api_server: ServerThread | None = None
        self._router_server: ServerThread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    def start(self) -> OpenhimStandIn:
        self._api_server = ServerThread(self.app, self._host, self._port).start()
        self._port = self._api_server.port
        self._router_server = ServerThread(self.router_app, self._host, self._router_port).start()
        self._router_port = self._router_server.port
        return self

    def stop(self) -> None:
        """Stop both listeners in parallel (each shutdown waits out a 0.5 s poll)."""
        servers = [s for s in (self._api_server, self._router_server) if s is not None]
        stoppers = [threading.Thread(target=s.stop) for s in servers]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        self._api_server = self._router_server = None

    def reset(self) -> None:
        """Forget all state (mediators, channels, transactions, faults) but keep running,
        so one started stand-in can serve a whole test module."""
        with self.lock:
            for store in (self._mediators, self._channels, self._transactions):
                store.clear()
            self._scheduled.clear()
            for log in (self.tasks, self.autoretry_queue, self.store_failures, self.api_log):
                log.clear()
        self.faults.clear()

    def down(self) -> None:
        """Close the API listener: clients get connection refused until `up()`."""
        if self._api_server is not None:
            self._api_server.stop()
            self._api_server = None

    def up(self) -> None:
        """Re-open the API listener on the same port (state is kept)."""
        if self._api_server is None:
            self._api_server = ServerThread(self.app, self._host, self._port).start()

    def __enter__(self) -> OpenhimStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def router_url(self) -> str:
        return f"http://{self._host}:{self._router_port}"

    # --- reading state (copies, shaped like the API returns them) ----------------------------

    @property
    def mediators(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self._mediators.values()))

    def mediator(self, urn: str) -> dict[str, Any] | None:
        with self.lock:
            found = self._mediators.get(urn)
            return copy.deepcopy(found) if found else None

    @property
    def channels(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self._channels.values()))

    def channel(self, channel_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self._channels.get(channel_id)
            return copy.deepcopy(found) if found else None

    def find_channel(self, ref: str) -> dict[str, Any] | None:
        """By `_id` or by name."""
        found = self.channel(ref)
        return found or next((c for c in self.channels if c.get("name") == ref), None)

    def is_scheduled(self, ref: str) -> bool:
        channel = self.find_channel(ref)
        return channel is not None and channel["_id"] in self._scheduled

    def transactions_raw(self) -> list[dict[str, Any]]:
        """Full documents, newest first (core sorts on request.timestamp descending)."""
        with self.lock:
            txs = copy.deepcopy(list(self._transactions.values()))
        txs.reverse()
        txs.sort(key=lambda t: (t.get("request") or {}).get("timestamp") or "", reverse=True)
        return txs

    @property
    def transactions(self) -> list[dict[str, Any]]:
        """As `GET /transactions?filterRepresentation=full` returns them."""
        return self.transactions_raw()

    def transaction(self, tx_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self._transactions.get(tx_id)
            return copy.deepcopy(found) if found else None

    # --- actions -----------------------------------------------------------------------------

    def install_channels(
        self, urn: str, names: Any = None, by: str = "root@openhim.org"
    ) -> list[dict[str, Any]]:
        """`POST /mediators/:urn/channels`: installs but does NOT schedule polling channels."""
        return install_default_channels(self, urn, names, by)

    def fire_polling_channel(self, ref: str, *, require_scheduled: bool = True) -> dict[str, Any]:
        """Run a polling channel as agenda would; returns the stored transaction.

        With `require_scheduled` (default) a channel core would not have scheduled
        raises `ChannelNotScheduled`, surfacing the install-without-save gotcha.
        """
        outcome = self.router.fire(ref, manual=not require_scheduled)
        tx = self.transaction(outcome.transaction_id)
        assert tx is not None
        return tx

    def trigger_channel(self, ref: str) -> Outcome:
        """`POST /channels/:id/trigger` without HTTP: works on unscheduled channels too."""
        return self.router.fire(ref, manual=True)

    def add_transaction(self, body: Any) -> str:
        doc = validate_new(body)
        apply_budget(doc, 0)
        doc.setdefault("routes", [])
        doc.setdefault("orchestrations", [])
        doc.setdefault("childIDs", [])
        doc.setdefault("canRerun", True)
        doc.setdefault("autoRetry", False)
        doc.setdefault("autoRetryAttempt", 0)
        doc.setdefault("wasRerun", False)
        doc["_id"] = new_object_id()
        with self.lock:
            self._transactions[doc["_id"]] = doc
        return str(doc["_id"])

    def update_transaction(self, tx_id: str, updates: Any) -> None:
        """PUT /transactions/:id: top-level fields replaced, `$push` appended, error → retry."""
        updates = copy.deepcopy(updates) if isinstance(updates, dict) else {}
        with self.lock:
            tx = self._transactions.get(tx_id)
            if tx is None:
                raise missing_tx_error(tx_id)
            if has_error(updates):
                channel = self._channels.get(tx.get("channelID", ""))
                if not reached_max_attempts(tx, channel):
                    updates["autoRetry"] = True
                    self.autoretry_queue.append(tx_id)
            apply_budget(updates, stored_body_bytes(tx))
            pushes = updates.pop("$push", None) or {}
            updates.pop("_id", None)
            tx.update(updates)
            for key, value in pushes.items():
                tx.setdefault(key, []).append(value)

    # --- request helpers ---------------------------------------------------------------------

    def json_body(self) -> Any:
        """koa-bodyparser: JSON only for JSON content types, strict (object/array) mode."""
        mimetype = request.mimetype or ""
        if not (mimetype == "application/json" or mimetype.endswith("+json")):
            return {}
        text = request.get_data(as_text=True)
        if not text.strip():
            return {}
        if text.lstrip()[0] not in "{[":
            abort(koa_text(400, "invalid JSON, only supports object and array"))
        try:
            return json.loads(text)
        except ValueError as exc:
            abort(koa_text(400, f"Unexpected token in JSON: {exc}"))


def create_api_app(standin: OpenhimStandIn) -> Flask:
    app = Flask("openhim_standin")
    app.config["MAX_CONTENT_LENGTH"] = MAX_API_PAYLOAD
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.before_request
    def gate() -> Response | None:
        decision = standin.faults.decide(request.method, request.path)
        if decision.delay:
            time.sleep(decision.delay)
        if decision.status is not None:
            return koa_text(decision.status, decision.body)
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        user = standin.auth.authenticate(request, standin.now())
        if user is None:
            return koa_text(401)
        g.user = user
        return None

    @app.after_request
    def record(response: Response) -> Response:
        with standin.lock:
            standin.api_log.append(
                {"method": request.method, "path": request.path, "status": response.status_code}
            )
        return response

    @app.get("/authenticate/<path:email>")
    def authenticate_salt(email: str) -> Response:
        return standin.auth.salt_response(email, standin.now())

    mediators.register(app, standin)
    channels.register(app, standin)
    transactions.register(app, standin)
    return app
