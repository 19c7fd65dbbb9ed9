"""Core's router path: polling trigger, HTTP channels and rerun all end in `Router.route`,
which stores the transaction, calls the primary route and records the outcome exactly
as messageStore + router.js do (reference §4, §5, §6).

Choices where the reference is silent:

* Only the enabled primary route is called; secondary routes are not simulated.
* Outbound requests use `http.client` so the route sees only the headers core sends
  (plus `Host`), not `requests`' defaults. The socket timeout models Node's
  `req.setTimeout` (idle time), giving `Request took longer than <n>ms`.
* HTTP channels are served by a separate Flask app (`router_app`) on its own port,
  like core's router port 5001. Clients authenticate with Basic `clientID:password`;
  no credentials / no authorised channel → 401 (with `WWW-Authenticate: Basic` when
  unauthenticated). `urlPattern` is a Python regex searched in the path.
* A missing inner `response.body` follows Koa: setting a null body turns the status
  into 204 (unless it already is 204/205/304) and stores `""`.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import logging
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from .auth import Client
from .jsfmt import js_date_string, js_iso, js_to_string, js_truthy, new_object_id
from .transactions import cast_part, clean_orchestrations, new_transaction, reached_max_attempts
from .validation import ValidationError

if TYPE_CHECKING:
    from .app import OpenhimStandIn

log = logging.getLogger(__name__)

AXIOS_USER_AGENT = "axios/0.21.4"
AXIOS_ACCEPT = "application/json, text/plain, */*"
INTERNAL_ERROR_BODY = "An internal server error occurred"
ENVELOPE_TYPE = "application/json+openhim"
SKIPPED_RESPONSE_HEADERS = ("content-length", "content-encoding", "transfer-encoding")
HOP_BY_HOP = ("connection", "keep-alive", "transfer-encoding", "content-length")
HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class ChannelNotScheduled(RuntimeError):
    """Agenda would never fire this channel (installed via /mediators/:urn/channels)."""


class RouteFailure(Exception):
    """A primary-route request that produced no HTTP response (refused, timeout...)."""


@dataclass
class RouteReply:
    status: int
    headers: dict[str, Any]
    body: str
    timestamp: datetime


@dataclass
class Inbound:
    """The request as core's koa context sees it (header names lower-case)."""

    method: str
    path: str
    querystring: str
    headers: dict[str, str]
    body: str
    host: str
    port: str
    client_id: str | None
    client_ip: str = "127.0.0.1"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What the caller (axios, HTTP client, rerun task) got back, and the transaction id."""

    transaction_id: str
    client_status: int
    client_headers: dict[str, Any]
    client_body: str


@dataclass
class _Ctx:
    """The parts of koa's ctx that storeResponse / setFinalStatus read."""

    status: int = 500
    headers: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    timestamp: Any = None
    error: dict[str, Any] | None = None
    auto_retry: bool = False
    mediator_response: Any = None


def send_http(
    host: str,
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    timeout_ms: int,
    now: datetime,
) -> RouteReply:
    conn = http.client.HTTPConnection(host, port, timeout=timeout_ms / 1000)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"{host}:{port}")
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        raw = resp.read()
    except TimeoutError as exc:
        raise RouteFailure(f"Request took longer than {timeout_ms}ms") from exc
    except ConnectionRefusedError as exc:
        raise RouteFailure(f"connect ECONNREFUSED {_ip(host)}:{port}") from exc
    except socket.gaierror as exc:
        raise RouteFailure(f"getaddrinfo ENOTFOUND {host}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise RouteFailure(str(exc) or type(exc).__name__) from exc
    finally:
        conn.close()
    reply_headers: dict[str, Any] = {}
    for name, value in resp.getheaders():
        key = name.lower()
        if key == "set-cookie":
            reply_headers.setdefault(key, []).append(value)
        elif key in reply_headers:
            reply_headers[key] = f"{reply_headers[key]}, {value}"
        else:
            reply_headers[key] = value
    charset = re.search(r"charset=([^;,\r\n]+)", reply_headers.get("content-type", ""), re.I)
    try:
        text = raw.decode(charset.group(1) if charset else "utf-8", errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    return RouteReply(resp.status, reply_headers, text, now)


def _ip(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def js_parse_int(value: str) -> float | int:
    """`parseInt(value, 10)`: leading digits or NaN."""
    match = re.match(r"\s*([+-]?\d+)", value)
    return int(match.group(1)) if match else float("nan")


def destination_path(route: dict[str, Any], path: str) -> str:
    if route.get("path"):
        return str(route["path"])
    transform = route.get("pathTransform")
    if transform:
        parts = transform.split("/")
        if len(parts) >= 3:
            count = 0 if len(parts) > 3 and parts[3] == "g" else 1
            return re.sub(parts[1], parts[2], path, count=count)
    return path


class Router:
    def __init__(self, standin: OpenhimStandIn, timeout_ms: int = 60000) -> None:
        self.standin = standin
        self.timeout_ms = timeout_ms

    # --- entry points ----------------------------------------------------------------------

    def fire(self, channel_ref: str, *, manual: bool = False) -> Outcome:
        """The polling app's GET /trigger, as agenda (or the manual trigger) sends it."""
        channel = self.standin.find_channel(channel_ref)
        if channel is None:
            raise LookupError(f"no channel {channel_ref!r}")
        if not manual and channel["_id"] not in self.standin._scheduled:
            raise ChannelNotScheduled(
                f"channel {channel['name']!r} is not scheduled (installed via "
                "POST /mediators/:urn/channels and never saved): core would not poll it"
            )
        headers = {
            "accept": AXIOS_ACCEPT,
            "channel-id": channel["_id"],
            "x-openhim-lastrunat": js_date_string(self.standin.now()),
            "user-agent": AXIOS_USER_AGENT,
            "host": "localhost:7788",
            "connection": "close",
        }
        inbound = Inbound("GET", "/trigger", "", headers, "", "localhost", "7788", new_object_id())
        return self.route(channel, inbound)

    def rerun(self, tx: dict[str, Any], task_id: str) -> Outcome:
        """The task processor replaying a stored request through the rerun port (7786)."""
        channel = self.standin.channel(tx["channelID"])
        if channel is None:
            raise LookupError(tx["channelID"])
        req = tx.get("request") or {}
        headers = {k.lower(): v for k, v in (req.get("headers") or {}).items()}
        if tx.get("clientID"):
            headers["clientid"] = tx["clientID"]
        headers.update({"parentid": tx["_id"], "taskid": task_id, "host": "localhost:7786"})
        inbound = Inbound(
            req.get("method", "GET"),
            req.get("path", "/"),
            req.get("querystring") or "",
            headers,
            req.get("body") or "",
            "localhost",
            "7786",
            tx.get("clientID"),
            extra={"parentID": tx["_id"], "taskID": task_id},
        )
        outcome = self.route(channel, inbound)
        with self.standin.lock:
            parent = self.standin._transactions.get(tx["_id"])
            if parent is not None:
                parent["childIDs"].append(outcome.transaction_id)
                parent["wasRerun"] = True
        return outcome

    def run_task(self, tids: list[str], user: str, paused: bool) -> dict[str, Any]:
        task: dict[str, Any] = {
            "_id": new_object_id(),
            "status": "Paused" if paused else "Queued",
            "user": user,
            "created": js_iso(self.standin.now()),
            "totalTransactions": len(tids),
            "remainingTransactions": len(tids),
            "transactions": [{"tid": tid, "tstatus": "Queued"} for tid in tids],
        }
        with self.standin.lock:
            self.standin.tasks.append(task)
        if paused:
            return task
        task["status"] = "Processing"
        for item in task["transactions"]:
            tx = self.standin.transaction(item["tid"])
            if tx is None or not tx.get("canRerun", True):
                item["tstatus"] = "Failed"
                item["error"] = (
                    f"Transaction {item['tid']} cannot be rerun as there isn't enough "
                    "information about the request"
                )
            else:
                outcome = self.rerun(tx, task["_id"])
                item.update(tstatus="Completed", rerunID=outcome.transaction_id)
                child = self.standin.transaction(outcome.transaction_id) or {}
                item["rerunStatus"] = child.get("status")
            task["remainingTransactions"] -= 1
        task["status"] = "Completed"
        return task

    # --- the pipeline ----------------------------------------------------------------------

    def route(self, channel: dict[str, Any], inbound: Inbound) -> Outcome:
        standin = self.standin
        request_doc = {
            "host": inbound.host,
            "port": inbound.port,
            "path": inbound.path,
            "headers": dict(inbound.headers),
            "querystring": inbound.querystring,
            "body": inbound.body,
            "method": inbound.method,
            "timestamp": js_iso(standin.now()),
        }
        tx, budget = new_transaction(
            channel, request_doc, inbound.client_id, inbound.client_ip, inbound.extra
        )
        tx_id = tx["_id"]
        with standin.lock:
            standin._transactions[tx_id] = tx

        route = next(
            (
                r
                for r in channel.get("routes") or []
                if r.get("primary") and r.get("status", "enabled") == "enabled"
            ),
            None,
        )
        ctx = _Ctx()
        if route is None:
            self._server_error(ctx, "Channel has no enabled primary route")
            core_orch = None
        else:
            core_orch = self._call_primary(ctx, channel, route, inbound, tx_id, request_doc)
        self._store_response(channel, tx_id, ctx, core_orch, budget)
        self._set_final_status(channel, tx_id, ctx)
        headers = dict(ctx.headers)
        body = "" if not js_truthy(ctx.body) else js_to_string(ctx.body)
        if isinstance(ctx.body, dict | list):
            body = json.dumps(ctx.body)  # Koa serialises objects to the client
        return Outcome(tx_id, ctx.status, headers, body)

    def _call_primary(
        self,
        ctx: _Ctx,
        channel: dict[str, Any],
        route: dict[str, Any],
        inbound: Inbound,
        tx_id: str,
        request_doc: dict[str, Any],
    ) -> dict[str, Any]:
        headers = {k: v for k, v in inbound.headers.items() if k not in ("host",)}
        if "authorization" in headers and not route.get("forwardAuthHeader"):
            del headers["authorization"]
        headers.pop("content-length", None)
        headers.pop("transfer-encoding", None)
        headers["X-OpenHIM-TransactionID"] = tx_id
        send_headers = dict(headers)
        if route.get("username") and route.get("password"):
            token = base64.b64encode(f"{route['username']}:{route['password']}".encode()).decode()
            send_headers["Authorization"] = f"Basic {token}"
        path = destination_path(route, inbound.path)
        if inbound.querystring:
            path += f"?{inbound.querystring}"
        timeout = int(channel.get("timeout") or self.timeout_ms)
        body = inbound.body.encode() if inbound.method in ("POST", "PUT", "PATCH") else None
        orch: dict[str, Any] = {
            "name": route.get("name"),
            "request": {
                "host": route.get("host"),
                "port": str(route.get("port")),
                "path": path,
                "headers": headers,
                "querystring": inbound.querystring,
                "method": inbound.method,
                "timestamp": request_doc["timestamp"],
            },
        }
        if inbound.body:
            orch["request"]["body"] = inbound.body
        try:
            reply = send_http(
                str(route.get("host")),
                int(route.get("port") or 80),
                inbound.method,
                path,
                send_headers,
                body,
                timeout,
                self.standin.now(),
            )
        except RouteFailure as exc:
            orch["error"] = {"message": str(exc), "stack": f"Error: {exc}"}
            self._server_error(ctx, str(exc))
            return orch
        reply_ts = js_iso(reply.timestamp)
        orch["response"] = {
            "status": reply.status,
            "headers": reply.headers,
            "body": reply.body,
            "timestamp": reply_ts,
        }
        try:
            if ENVELOPE_TYPE in str(reply.headers.get("content-type", "")):
                envelope = self._parse_json(reply.body)
                ctx.mediator_response = envelope
                if isinstance(envelope, dict) and envelope.get("error") is not None:
                    ctx.auto_retry = True
                    ctx.error = envelope["error"]
                inner = envelope.get("response") if isinstance(envelope, dict) else None
                self._set_koa_response(ctx, inner, tx_id)
            else:
                plain = {
                    "status": reply.status,
                    "headers": dict(reply.headers),
                    "body": reply.body,
                    "timestamp": reply_ts,
                }
                self._set_koa_response(ctx, plain, tx_id)
        except (TypeError, ValueError) as exc:
            self._server_error(ctx, str(exc))
        return orch

    @staticmethod
    def _parse_json(text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"Unexpected token in JSON: {exc}") from exc

    @staticmethod
    def _set_koa_response(ctx: _Ctx, response: Any, tx_id: str) -> None:
        """setKoaResponse + Koa's status/body setters (raise like they do)."""
        if not isinstance(response, dict):
            raise TypeError("Cannot read property 'status' of undefined")
        status = response.get("status")
        if isinstance(status, str):
            status = js_parse_int(status)
        if isinstance(status, bool) or not isinstance(status, int | float):
            raise TypeError("status code must be a number")
        if isinstance(status, float) and not status.is_integer():
            raise TypeError("status code must be a number")
        if not 100 <= status <= 999:
            raise ValueError(f"invalid status code: {js_to_string(status)}")
        ctx.status = int(status)
        ctx.timestamp = response.get("timestamp")
        ctx.body = response.get("body")
        if ctx.body is None and ctx.status not in (204, 205, 304):
            ctx.status = 204
        headers = response.get("headers")
        if isinstance(headers, dict):
            headers = {**headers, "X-OpenHIM-TransactionID": tx_id}
            for key, value in headers.items():
                if key.lower() not in SKIPPED_RESPONSE_HEADERS:
                    ctx.headers[key] = value

    def _server_error(self, ctx: _Ctx, message: str) -> None:
        """handleServerError for the primary route."""
        ctx.auto_retry = True
        ctx.status = 500
        ctx.timestamp = js_iso(self.standin.now())
        ctx.body = INTERNAL_ERROR_BODY
        ctx.error = {"message": message, "stack": f"Error: {message}"}

    def _store_response(
        self,
        channel: dict[str, Any],
        tx_id: str,
        ctx: _Ctx,
        core_orch: dict[str, Any] | None,
        budget: Any,
    ) -> None:
        """storeResponse: one update with runValidators; on failure only a log line."""
        standin = self.standin
        timestamp = ctx.timestamp if ctx.timestamp is not None else js_iso(standin.now())
        response = {
            "status": ctx.status,
            "headers": dict(ctx.headers),
            "body": "" if not js_truthy(ctx.body) else js_to_string(ctx.body),
            "timestamp": timestamp,
        }
        update: dict[str, Any] = {"response": response, "orchestrations": []}
        if ctx.error is not None:
            update["error"] = copy.deepcopy(ctx.error)
        try:
            update["response"] = cast_part(response, tuple(response), "response")
            if channel.get("responseBody") is False:
                update["response"]["body"] = ""
            budget.take_in(update["response"])
            mr = ctx.mediator_response
            if isinstance(mr, dict):
                if js_truthy(mr.get("orchestrations")):
                    update["orchestrations"] += clean_orchestrations(mr["orchestrations"], budget)
                if js_truthy(mr.get("properties")):
                    update["properties"] = copy.deepcopy(mr["properties"])
            if core_orch is not None:
                update["orchestrations"] += clean_orchestrations([core_orch], budget)
        except (TypeError, ValidationError) as exc:
            label = "TypeError: " if isinstance(exc, TypeError) else ""
            message = f"Could not save response metadata for transaction: {tx_id}. {label}{exc}"
            log.error(message)
            with standin.lock:
                standin.store_failures.append({"transactionID": tx_id, "error": message})
            return
        with standin.lock:
            standin._transactions[tx_id].update(update)

    def _set_final_status(self, channel: dict[str, Any], tx_id: str, ctx: _Ctx) -> None:
        mr = ctx.mediator_response
        if isinstance(mr, dict) and js_truthy(mr.get("status")):
            status = mr["status"]  # verbatim, no enum validation (plain findByIdAndUpdate)
        elif 500 <= ctx.status <= 599:
            status = "Failed"
        elif 200 <= ctx.status <= 299:
            status = "Pending Async" if channel.get("isAsynchronousProcess") else "Successful"
        else:
            status = "Completed"
        with self.standin.lock:
            tx = self.standin._transactions[tx_id]
            tx["status"] = status
            if ctx.auto_retry and not reached_max_attempts(tx, channel):
                tx["autoRetry"] = True
                self.standin.autoretry_queue.append(tx_id)

    # --- HTTP channels -----------------------------------------------------------------------

    def _client(self) -> Client | None:
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return None
        return next(
            (
                c
                for c in self.standin.clients
                if c.client_id == auth.username and c.password == auth.password
            ),
            None,
        )

    def _match(self, client: Client | None) -> dict[str, Any] | None:
        candidates = [
            c
            for c in self.standin.channels
            if c.get("status") == "enabled"
            and c.get("type") in ("http", "polling")
            and re.search(c.get("urlPattern", "(?!)"), request.path)
            and (not c.get("methods") or request.method in c["methods"])
        ]
        candidates.sort(key=lambda c: c.get("priority") or 1e9)
        for channel in candidates:
            if channel.get("authType") == "public":
                return channel
            if client is not None:
                allowed = set(channel.get("allow") or [])
                if client.client_id in allowed or allowed & set(client.roles):
                    return channel
        return None

    def create_app(self) -> Flask:
        app = Flask("openhim_standin_router")

        @app.route("/", defaults={"_path": ""}, methods=HTTP_METHODS)
        @app.route("/<path:_path>", methods=HTTP_METHODS)
        def handle(_path: str) -> Response:
            client = self._client()
            channel = self._match(client)
            if channel is None:
                reply = Response("Unauthorized", status=401, mimetype="text/plain")
                if client is None:
                    reply.headers["WWW-Authenticate"] = "Basic"
                return reply
            host, _, port = request.host.partition(":")
            inbound = Inbound(
                request.method,
                request.path,
                request.query_string.decode("latin-1"),
                {k.lower(): v for k, v in request.headers.items()},
                request.get_data(as_text=True),
                host,
                port,
                client._id if client else None,
                request.remote_addr or "127.0.0.1",
            )
            outcome = self.route(channel, inbound)
            reply = Response(outcome.client_body, status=outcome.client_status)
            for key, value in outcome.client_headers.items():
                if key.lower() in HOP_BY_HOP:
                    continue
                for item in value if isinstance(value, list) else [value]:
                    reply.headers.add(key, str(item))
            return reply

        return app
