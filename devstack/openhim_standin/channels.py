"""Channels: `/channels*` with core's validation (src/api/channels.js) and the
polling-schedule bookkeeping behind the §1 gotcha.

`standin._scheduled` holds ids of polling channels that agenda would run. Only
`POST /channels` and `PUT /channels/:id` (processPostAdd/UpdateTriggers) add to
it; `POST /mediators/:urn/channels` does not. Cron expressions are stored, not
run: tests fire a channel with `OpenhimStandIn.fire_polling_channel`.

Choices where the reference is silent: an unknown channel id answers 404
`We could not find a channel with Id:'<id>'.` for GET, PUT and trigger.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, jsonify

from .auth import not_admin
from .jsfmt import js_truthy, koa_text, new_object_id
from .validation import (
    ValidationError,
    cast_port,
    enum_error,
    raise_schema,
    required_error,
    route_errors,
)

if TYPE_CHECKING:
    from .app import OpenhimStandIn

CHANNEL_DEFAULTS: dict[str, Any] = {
    "type": "http",
    "authType": "private",
    "status": "enabled",
    "requestBody": True,
    "responseBody": True,
    "allow": [],
    "whitelist": [],
    "methods": [],
    "routes": [],
    "matchContentTypes": [],
    "autoRetryEnabled": False,
    "autoRetryPeriodMinutes": 60,
    "rewriteUrls": False,
    "addAutoRewriteRules": True,
    "alerts": [],
    "txViewAcl": [],
    "txViewFullAcl": [],
    "txRerunAcl": [],
}
ROUTE_DEFAULTS: dict[str, Any] = {
    "type": "http",
    "status": "enabled",
    "primary": False,
    "secured": False,
    "forwardAuthHeader": False,
    "waitPrimaryResponse": False,
}
PATH_ERROR = (
    "Channel cannot have both path and pathTransform. "
    "pathTransform must be of the form s/from/to[/g]"
)


class ChannelError(Exception):
    """A non-validation save failure (duplicate key), printed as `${err}`."""


def number_of_primary_routes(routes: Any) -> int:
    return sum(
        1
        for r in routes or []
        if isinstance(r, dict) and r.get("status", "enabled") == "enabled" and r.get("primary")
    )


def api_checks(channel: dict[str, Any], require_primary: bool = True) -> str | None:
    """The checks core's addChannel/updateChannel make before mongoose (400 text)."""
    for route in channel.get("routes") or []:
        if not isinstance(route, dict):
            continue
        if route.get("path") and route.get("pathTransform"):
            return PATH_ERROR
        if route.get("pathTransform") and not re.match(r"^s/.*/.*", route["pathTransform"]):
            return PATH_ERROR
    priority = channel.get("priority")
    if isinstance(priority, int | float) and not isinstance(priority, bool) and priority < 1:
        return "Channel priority cannot be below 1 (= Highest priority)"
    methods = channel.get("methods") or []
    if methods:
        if not re.search("http", str(channel.get("type", "http")), re.I):
            return "Channel method can't be defined if channel type is not http"
        repeats = sorted(m for m, n in Counter(methods).items() if n > 1)
        if repeats:
            return f"Channel methods can't be repeated. Repeated methods are {', '.join(repeats)}"
    primaries = number_of_primary_routes(channel.get("routes"))
    if require_primary and primaries == 0:
        return "Channel must have a primary route"
    if primaries > 1:
        return "Channel cannot have a multiple primary routes"
    return None


def schema_errors(channel: dict[str, Any]) -> list[str]:
    errors = []
    if not js_truthy(channel.get("name")):
        errors.append(required_error("name"))
    if not js_truthy(channel.get("urlPattern")):
        errors.append(required_error("urlPattern"))
    if channel.get("type") not in ("http", "tcp", "tls", "polling"):
        errors.append(enum_error("type", channel.get("type")))
    if channel.get("status") not in ("enabled", "disabled", "deleted"):
        errors.append(enum_error("status", channel.get("status")))
    timeout = channel.get("timeout")
    if timeout is not None and not (isinstance(timeout, int | float) and 1 <= timeout <= 3600000):
        errors.append(f"timeout: Path `timeout` ({timeout}) is out of range.")
    for i, route in enumerate(channel.get("routes") or []):
        errors.extend(route_errors(f"routes.{i}", route))
    return errors


def _normalise(channel: dict[str, Any]) -> dict[str, Any]:
    doc = {**copy.deepcopy(CHANNEL_DEFAULTS), **copy.deepcopy(channel)}
    routes = []
    for route in doc.get("routes") or []:
        route = {**ROUTE_DEFAULTS, **route}
        route.setdefault("_id", new_object_id())
        try:
            route["port"] = cast_port(route.get("port"))
        except ValueError:
            pass
        routes.append(route)
    doc["routes"] = routes
    return doc


def create_channel(
    standin: OpenhimStandIn, body: Any, *, schedule: bool, checks: bool = True
) -> dict[str, Any]:
    """Validate and save; raises ValueError (API 400 text), ValidationError, ChannelError."""
    if not isinstance(body, dict):
        body = {}
    doc = _normalise(body)
    if checks and (problem := api_checks(doc)):
        raise ValueError(problem)
    raise_schema("Channel", schema_errors(doc))
    with standin.lock:
        if any(c["name"] == doc["name"] for c in standin._channels.values()):
            raise ChannelError(
                "MongoServerError: E11000 duplicate key error collection: openhim.channels "
                f'index: name_1 dup key: {{ name: "{doc["name"]}" }}'
            )
        doc["_id"] = new_object_id()
        standin._channels[doc["_id"]] = doc
        if schedule:
            _reschedule(standin, doc)
    return copy.deepcopy(doc)


def _reschedule(standin: OpenhimStandIn, doc: dict[str, Any]) -> None:
    """processPostAdd/UpdateTriggers: (un)register the agenda job of a polling channel."""
    if doc.get("type") == "polling" and doc.get("status") == "enabled":
        standin._scheduled.add(doc["_id"])
    else:
        standin._scheduled.discard(doc["_id"])


def update_channel(standin: OpenhimStandIn, channel_id: str, body: Any) -> dict[str, Any]:
    """PUT semantics: top-level fields replaced, then re-scheduled. Raises as create."""
    body = dict(body) if isinstance(body, dict) else {}
    body.pop("_id", None)
    if problem := api_checks(body, require_primary=False):
        raise ValueError(problem)
    with standin.lock:
        current = standin._channels.get(channel_id)
        if current is None:
            raise LookupError(channel_id)
        merged = _normalise({**current, **body})
        if problem := api_checks(merged, require_primary=False):
            raise ValueError(problem)
        raise_schema("Channel", schema_errors(merged))
        merged["_id"] = channel_id
        standin._channels[channel_id] = merged
        _reschedule(standin, merged)
    return copy.deepcopy(merged)


def register(app: Flask, standin: OpenhimStandIn) -> None:
    def admin(fn: str) -> Response | None:
        return None if g.user.is_admin else not_admin(g.user, fn)

    def missing(channel_id: str) -> Response:
        return koa_text(404, f"We could not find a channel with Id:'{channel_id}'.")

    @app.post("/channels")
    def post_channel() -> Response:
        if denied := admin("addChannel"):
            return denied
        body = standin.json_body()
        if isinstance(body, dict):
            body = {**body, "updatedBy": {"name": g.user.email}}
        try:
            create_channel(standin, body, schedule=True)
        except ValueError as err:
            return koa_text(400, str(err))
        except (ValidationError, ChannelError) as err:
            return koa_text(400, f"Could not add channel via the API: {err}")
        return koa_text(201, "Channel successfully created")

    @app.get("/channels")
    def get_channels() -> Response:
        if denied := admin("getChannels"):
            return denied
        return jsonify(standin.channels)

    @app.get("/channels/<channel_id>")
    def get_channel(channel_id: str) -> Response:
        if denied := admin("getChannel"):
            return denied
        found = standin.channel(channel_id)
        return jsonify(found) if found else missing(channel_id)

    @app.put("/channels/<channel_id>")
    def put_channel(channel_id: str) -> Response:
        if denied := admin("updateChannel"):
            return denied
        try:
            update_channel(standin, channel_id, standin.json_body())
        except LookupError:
            return missing(channel_id)
        except ValueError as err:
            return koa_text(400, str(err))
        except ValidationError as err:
            return koa_text(500, f"Could not update channel by id: {channel_id} via the API: {err}")
        return koa_text(200, "The channel was successfully updated")

    @app.post("/channels/<channel_id>/trigger")
    def trigger_channel(channel_id: str) -> Response:
        if denied := admin("triggerChannel"):
            return denied
        if standin.channel(channel_id) is None:
            return missing(channel_id)
        outcome = standin.router.fire(channel_id, manual=True)
        return koa_text(200 if 200 <= outcome.client_status < 300 else 500)
