"""`/mediators*` and the public `/heartbeat`, following core's src/api/mediators.js.

Choices where the reference is silent:

* Stored mediators keep only schema fields (mongoose strict mode drops others);
  endpoint ports are cast to numbers as mongoose does.
* ≤8.4 admin-only permission model; the 403 texts name core's handler, including
  its quirk of saying `removeMediator` for heartbeat, setConfig and
  loadDefaultChannels.
* `DELETE` of an unknown URN still answers 200, as `findOneAndRemove` does not fail.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from flask import Flask, Response, g, jsonify

from .auth import not_admin
from .channels import ChannelError, create_channel
from .jsfmt import js_iso, js_truthy, koa_text, new_object_id, parse_js_date
from .validation import (
    ValidationError,
    cast_port,
    mask_passwords,
    mediator_schema_errors,
    raise_schema,
    restore_masked_passwords,
    semver_gt,
    semver_parse,
    validate_config,
    validate_config_defs,
)

if TYPE_CHECKING:
    from .app import OpenhimStandIn

MEDIATOR_FIELDS = (
    "urn",
    "version",
    "name",
    "description",
    "endpoints",
    "defaultChannelConfig",
    "configDefs",
    "config",
    "_configModifiedTS",
    "_uptime",
    "_lastHeartbeat",
)
HEARTBEAT_FRESH_SECONDS = 60


def _urn(raw: str) -> str:
    """Core `unescape`s the already-decoded route param, so raw and %-encoded URNs both work."""
    return unquote(raw)


def _shape(body: dict[str, Any]) -> dict[str, Any]:
    """Keep schema fields only and cast endpoint ports (mongoose strict mode + casting)."""
    doc = {k: copy.deepcopy(body[k]) for k in MEDIATOR_FIELDS if k in body}
    for key in ("endpoints", "configDefs", "defaultChannelConfig"):
        doc.setdefault(key, [])
    for route in doc["endpoints"]:
        if isinstance(route, dict) and "port" in route:
            try:
                route["port"] = cast_port(route["port"])
            except ValueError:
                pass
        if isinstance(route, dict):
            route.setdefault("_id", new_object_id())
    return doc


def add_mediator(standin: OpenhimStandIn, body: Any) -> None:
    """Core's addMediator: raises ValidationError (400) or TypeError (500)."""
    if not isinstance(body, dict):
        # The ATNA audit dereferences the body before validation → 500 in core.
        raise TypeError("Cannot read property 'name' of null")
    if not js_truthy(body.get("urn")):
        raise ValidationError("URN is required")
    if not js_truthy(body.get("version")) or semver_parse(body.get("version")) is None:
        raise ValidationError("Version is required. Must be in SemVer form x.y.z")
    if js_truthy(body.get("configDefs")):
        validate_config_defs(body["configDefs"])
        if body.get("config") is not None:
            validate_config(body["configDefs"], body["config"])
    with standin.lock:
        existing = standin._mediators.get(body["urn"])
        if existing is not None:
            if semver_gt(body["version"], existing["version"]):
                update = _shape(body)
                new_config = update.get("config")
                old_config = existing.get("config")
                if isinstance(new_config, dict) and isinstance(old_config, dict):
                    for param in new_config:
                        if old_config.get(param) is not None:
                            new_config[param] = old_config[param]
                # findByIdAndUpdate: fields given replace, others stay (config included).
                for key in MEDIATOR_FIELDS:
                    if key in body:
                        existing[key] = update[key]
            return
        if not body.get("endpoints"):
            raise ValidationError("At least 1 endpoint is required")
        raise_schema("Mediator", mediator_schema_errors(body))
        doc = _shape(body)
        doc["_id"] = new_object_id()
        standin._mediators[body["urn"]] = doc


def heartbeat_payload(standin: OpenhimStandIn) -> dict[str, Any]:
    now = standin.now()
    mediators: dict[str, Any] = {}
    with standin.lock:
        for urn, m in standin._mediators.items():
            last = m.get("_lastHeartbeat")
            fresh = last is not None and (
                (now - parse_js_date(last)).total_seconds() < HEARTBEAT_FRESH_SECONDS
            )
            mediators[urn] = m.get("_uptime") if fresh else None
    uptime = (now - standin.started_at).total_seconds()
    return {"master": uptime, "mediators": mediators, "now": int(now.timestamp() * 1000)}


def register(app: Flask, standin: OpenhimStandIn) -> None:  # noqa: C901 - a route table
    def admin(fn: str) -> Response | None:
        return None if g.user.is_admin else not_admin(g.user, fn)

    @app.get("/heartbeat")
    def public_heartbeat() -> Response:
        return jsonify(heartbeat_payload(standin))

    @app.post("/mediators")
    def post_mediator() -> Response:
        if denied := admin("addMediator"):
            return denied
        try:
            add_mediator(standin, standin.json_body())
        except ValidationError as err:
            return koa_text(400, f"Could not add Mediator via the API: {err}")
        except TypeError as err:
            return koa_text(500, f"Could not add Mediator via the API: TypeError: {err}")
        return koa_text(201)

    @app.get("/mediators")
    def get_mediators() -> Response:
        if denied := admin("getAllMediators"):
            return denied
        # Core calls maskPasswords on the array (a no-op), so passwords show in the list.
        return jsonify(standin.mediators)

    @app.get("/mediators/<path:urn>")
    def get_mediator(urn: str) -> Response:
        if denied := admin("getMediator"):
            return denied
        found = standin.mediator(_urn(urn))
        if found is None:
            return koa_text(404)
        mask_passwords(found.get("configDefs") or [], found.get("config"))
        return jsonify(found)

    @app.delete("/mediators/<path:urn>")
    def delete_mediator(urn: str) -> Response:
        if denied := admin("removeMediator"):
            return denied
        urn = _urn(urn)
        with standin.lock:
            standin._mediators.pop(urn, None)
        return koa_text(
            200, f"Mediator with urn {urn} has been successfully removed by {g.user.email}"
        )

    @app.post("/mediators/<path:urn>/heartbeat")
    def post_heartbeat(urn: str) -> Response:
        if denied := admin("removeMediator"):
            return denied
        body = standin.json_body()
        with standin.lock:
            m = standin._mediators.get(_urn(urn))
            if m is None:
                return koa_text(404)
            if not isinstance(body, dict) or body.get("uptime") is None:
                return koa_text(400)
            modified, last = m.get("_configModifiedTS"), m.get("_lastHeartbeat")
            changed = bool(modified and last and parse_js_date(modified) > parse_js_date(last))
            if changed or body.get("config") is True:
                config = copy.deepcopy(m.get("config"))
                # ctx.body = undefined → Koa sends the status text "OK".
                reply = koa_text(200) if config is None else jsonify(config)
            else:
                reply = koa_text(200, "")
            m["_lastHeartbeat"] = js_iso(standin.now())
            m["_uptime"] = body["uptime"]
        return reply

    @app.put("/mediators/<path:urn>/config")
    def put_config(urn: str) -> Response:
        if denied := admin("removeMediator"):
            return denied
        config = standin.json_body()
        with standin.lock:
            m = standin._mediators.get(_urn(urn))
            if m is None:
                return koa_text(404, "No mediator found for this urn.")
            defs = m.get("configDefs") or []
            try:
                restore_masked_passwords(defs, config, m.get("config"))
                validate_config(defs, config)
            except ValidationError as err:
                return koa_text(400, err.message)
            m["config"] = copy.deepcopy(config)
            m["_configModifiedTS"] = js_iso(standin.now())
        return koa_text(200)

    @app.post("/mediators/<path:urn>/channels")
    def post_default_channels(urn: str) -> Response:
        if denied := admin("removeMediator"):
            return denied
        urn = _urn(urn)
        try:
            standin.install_channels(urn, standin.json_body(), by=g.user.email)
        except LookupError:
            return koa_text(404, "No mediator found for this urn.")
        except ValueError:
            return koa_text(
                400,
                "Could not load mediator default channel config, one or more channels in "
                f"the request body not found in the mediator config (urn: {urn})",
            )
        except (ChannelError, ValidationError) as err:
            return koa_text(
                500, f"Could not load mediator default channel config (urn: {urn}): {err}"
            )
        return koa_text(201)


def install_default_channels(
    standin: OpenhimStandIn, urn: str, names: Any, by: str
) -> list[dict[str, Any]]:
    """loadDefaultChannels: save the named channels WITHOUT scheduling polling ones.

    Raises LookupError (unknown mediator) / ValueError (unknown name).
    """
    m = standin.mediator(urn)
    if m is None:
        raise LookupError(urn)
    configs = m.get("defaultChannelConfig") or []
    if names:
        wanted = list(names)
        configs = [c for c in configs if c.get("name") in wanted]
        if len(configs) < len(wanted):
            raise ValueError(wanted)
    created = []
    for config in configs:
        channel = copy.deepcopy(config)
        channel.pop("_id", None)
        for route in channel.get("routes") or []:
            route.pop("_id", None)
        channel["updatedBy"] = {"name": by}
        created.append(create_channel(standin, channel, schedule=False, checks=False))
    return created
