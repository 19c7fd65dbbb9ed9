"""Transaction storage (messageStore.js) and `/transactions*` + `/tasks` (api/transactions.js,
api/tasks.js).

Choices where the reference is silent:

* Unknown or malformed ids on `PUT /transactions/:id` answer 500 with the error
  Node 14 raises there (`TypeError: Cannot read property 'channelID' of null`, or
  a CastError for a non-ObjectId).
* Auto-retry is only recorded (`autoRetry: true` and the id in
  `standin.autoretry_queue`); nothing re-runs it on a timer.
* A task (`POST /tasks`) is processed synchronously before the 201 is sent, so
  tests see the child transaction as soon as the call returns. Paused tasks are
  stored and not run.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, jsonify, request

from .auth import not_admin
from .bodies import BodyBudget, fulltruncate
from .jsfmt import is_object_id, js_iso, js_truthy, koa_text, new_object_id, parse_js_date
from .validation import ValidationError, raise_schema, required_error

if TYPE_CHECKING:
    from .app import OpenhimStandIn

log = logging.getLogger(__name__)

STATUSES = (
    "Processing",
    "Failed",
    "Completed",
    "Successful",
    "Completed with error(s)",
    "Pending Async",
)
REQUEST_KEYS = ("host", "port", "path", "headers", "querystring", "body", "method", "timestamp")
RESPONSE_KEYS = ("status", "headers", "body", "timestamp")


def escape_header_keys(headers: dict[str, Any]) -> dict[str, Any]:
    """Mongo can't store '.' or '$' in keys; core swaps them for full-width look-alikes."""
    return {k.replace(".", "\uff0e").replace("$", "\uff04"): v for k, v in headers.items()}


def cast_part(part: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise ValidationError(f'{where}: Cast to Embedded failed for value "{part}"')
    doc = {k: copy.deepcopy(part[k]) for k in keys if k in part}
    if doc.get("timestamp") is not None:
        try:
            doc["timestamp"] = js_iso(parse_js_date(doc["timestamp"]))
        except ValueError as exc:
            raise ValidationError(f"{where}.timestamp: {exc}") from exc
    if "status" in doc and doc["status"] is not None:
        try:
            doc["status"] = float(doc["status"])
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f'{where}.status: Cast to Number failed for value "{part["status"]}"'
            ) from exc
        if doc["status"].is_integer():
            doc["status"] = int(doc["status"])
    return doc


def clean_orchestrations(orchs: Any, budget: BodyBudget) -> list[dict[str, Any]]:
    """Cast/validate orchestrations as mongoose (runValidators) and enforce the body budget.

    Raises TypeError / ValidationError exactly where core's storeResponse fails.
    """
    if not isinstance(orchs, list):
        raise TypeError("orchestrations.map is not a function")
    out = []
    for i, orch in enumerate(orchs):
        where = f"orchestrations.{i}"
        if not isinstance(orch, dict):
            raise ValidationError(f'{where}: Cast to Embedded failed for value "{orch}"')
        doc: dict[str, Any] = {k: copy.deepcopy(orch[k]) for k in ("name", "group") if k in orch}
        if orch.get("request") is not None:
            doc["request"] = cast_part(orch["request"], REQUEST_KEYS, f"{where}.request")
        if orch.get("response") is not None:
            doc["response"] = cast_part(orch["response"], RESPONSE_KEYS, f"{where}.response")
        if orch.get("error") is not None:
            doc["error"] = copy.deepcopy(orch["error"])
        budget.take_in(doc.get("request"))
        budget.take_in(doc.get("response"))
        errors = []
        if not js_truthy(doc.get("name")):
            errors.append(required_error(f"{where}.name"))
        if "request" in doc and doc["request"].get("timestamp") is None:
            errors.append(f"{where}.request.timestamp: Path `timestamp` is required.")
        raise_schema("Transaction", errors)
        out.append(doc)
    return out


def new_transaction(
    channel: dict[str, Any],
    request_doc: dict[str, Any],
    client_id: str | None,
    client_ip: str,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], BodyBudget]:
    """storeTransaction: status Processing (Pending Async for async channels), request stored."""
    budget = BodyBudget()
    req = copy.deepcopy(request_doc)
    req["headers"] = escape_header_keys(req.get("headers") or {})
    can_rerun = True
    if channel.get("requestBody") is False or not req.get("body"):
        req["body"] = ""
        if req.get("method") in ("POST", "PUT", "PATCH"):
            can_rerun = False
    elif budget.take_in(req):
        can_rerun = False
    tx: dict[str, Any] = {
        "_id": new_object_id(),
        "status": "Pending Async" if channel.get("isAsynchronousProcess") else "Processing",
        "clientID": client_id,
        "clientIP": client_ip,
        "channelID": channel["_id"],
        "request": req,
        "routes": [],
        "orchestrations": [],
        "childIDs": [],
        "canRerun": can_rerun,
        "autoRetry": False,
        "autoRetryAttempt": 0,
        "wasRerun": False,
    }
    if client_id is None:
        del tx["clientID"]
    tx.update(extra or {})
    return tx, budget


def reached_max_attempts(tx: dict[str, Any], channel: dict[str, Any] | None) -> bool:
    limit = (channel or {}).get("autoRetryMaxAttempts")
    return bool(limit) and tx.get("autoRetryAttempt", 0) >= limit


def _view(tx: dict[str, Any], representation: str) -> dict[str, Any]:
    """Core's projections for `filterRepresentation`."""
    if representation == "fulltruncate":
        return fulltruncate(tx)
    out = copy.deepcopy(tx)
    if representation == "full":
        return out
    if representation == "bulkrerun":
        return {k: out[k] for k in ("_id", "childIDs", "canRerun", "channelID") if k in out}
    for key in ("request", "response"):
        part = out.get(key)
        if isinstance(part, dict):
            part.pop("body", None)
            if representation != "simpledetails":
                part.pop("headers", None)
    if representation == "simpledetails":
        for holder in (out.get("orchestrations") or []) + (out.get("routes") or []):
            for key in ("request", "response"):
                if isinstance(holder.get(key), dict):
                    holder[key].pop("body", None)
    else:
        out.pop("orchestrations", None)
        out.pop("routes", None)
    return out


def register(app: Flask, standin: OpenhimStandIn) -> None:  # noqa: C901 - a route table
    def admin(fn: str) -> Response | None:
        return None if g.user.is_admin else not_admin(g.user, fn)

    @app.get("/transactions")
    def get_transactions() -> Response:
        representation = request.args.get("filterRepresentation", "")
        txs = standin.transactions_raw()
        if not g.user.is_admin:
            # ≤8.4: non-admins see channels whose txViewAcl meets their groups; bodies
            # only where txViewFullAcl does.
            groups = set(g.user.groups)
            view = {c["_id"] for c in standin.channels if groups & set(c.get("txViewAcl", []))}
            full = {c["_id"] for c in standin.channels if groups & set(c.get("txViewFullAcl", []))}
            txs = [t for t in txs if t.get("channelID") in view]
            if representation in ("full", "fulltruncate") and not all(
                t.get("channelID") in full for t in txs
            ):
                representation = "simpledetails"
        limit = int(request.args.get("filterLimit", 0) or 0)
        page = int(request.args.get("filterPage", 0) or 0)
        if limit > 0:
            txs = txs[page * limit : (page + 1) * limit]
        return jsonify([_view(t, representation) for t in txs])

    @app.get("/transactions/<tx_id>")
    def get_transaction(tx_id: str) -> Response:
        if denied := admin("getTransactionById"):
            return denied
        tx = standin.transaction(tx_id)
        if tx is None:
            return koa_text(404, f"Could not find transaction with ID: {tx_id}")
        return jsonify(_view(tx, request.args.get("filterRepresentation", "full")))

    @app.post("/transactions")
    def post_transaction() -> Response:
        if denied := admin("addTransaction"):
            return denied
        try:
            standin.add_transaction(standin.json_body())
        except (ValidationError, TypeError) as err:
            name = "TypeError: " if isinstance(err, TypeError) else ""
            return koa_text(500, f"Could not add a transaction via the API: {name}{err}")
        return koa_text(201)

    @app.put("/transactions/<tx_id>")
    def put_transaction(tx_id: str) -> Response:
        if denied := admin("updateTransaction"):
            return denied
        try:
            standin.update_transaction(tx_id, standin.json_body())
        except ValidationError as err:
            return koa_text(500, f"Could not update transaction via the API: {err}")
        except TypeError as err:
            return koa_text(500, f"Could not update transaction via the API: TypeError: {err}")
        except LookupError as err:
            return koa_text(500, f"Could not update transaction via the API: {err.args[0]}")
        return koa_text(200, f"Transaction with ID: {tx_id} successfully updated")

    @app.post("/tasks")
    def post_task() -> Response:
        if denied := admin("addTask"):
            return denied
        body = standin.json_body()
        tids = body.get("tids") if isinstance(body, dict) else None
        if not isinstance(tids, list):
            return koa_text(500, "Could not add Task via the API: TypeError: tids is undefined")
        batch = body.get("batchSize")
        if batch is not None and batch <= 0:
            return koa_text(400, "Invalid batch size specified")
        for tid in tids:
            tx = standin.transaction(str(tid))
            channel = standin.channel(tx["channelID"]) if tx else None
            if tx and (channel is None or channel.get("status") != "enabled"):
                return koa_text(
                    400,
                    "Cannot queue task as there are transactions with disabled or deleted channels",
                )
        paused = bool(body.get("paused"))
        task = standin.router.run_task([str(t) for t in tids], g.user.email, paused)
        return koa_text(201, f"User {g.user.email} created task with id {task['_id']}")


def validate_new(body: Any) -> dict[str, Any]:
    """POST /transactions: the schema rules core enforces on save."""
    if not isinstance(body, dict):
        raise ValidationError("Transaction validation failed: status: Path `status` is required.")
    doc = copy.deepcopy(body)
    errors = []
    if doc.get("status") is None:
        errors.append(required_error("status"))
    elif doc["status"] not in STATUSES:
        errors.append(f"status: `{doc['status']}` is not a valid enum value for path `status`.")
    if doc.get("request") is not None:
        try:
            doc["request"] = cast_part(doc["request"], REQUEST_KEYS, "request")
        except ValidationError as err:
            errors.append(err.message)
        else:
            if doc["request"].get("timestamp") is None:
                errors.append("request.timestamp: Path `timestamp` is required.")
    raise_schema("Transaction", errors)
    return doc


def missing_tx_error(tx_id: str) -> Exception:
    if not is_object_id(tx_id):
        return LookupError(
            f'CastError: Cast to ObjectId failed for value "{tx_id}" at path "_id" for model '
            '"Transaction"'
        )
    return LookupError("TypeError: Cannot read property 'channelID' of null")


def has_error(updates: dict[str, Any]) -> bool:
    if updates.get("error"):
        return True
    if any(isinstance(r, dict) and r.get("error") for r in updates.get("routes") or []):
        return True
    pushed = (updates.get("$push") or {}).get("routes")
    return isinstance(pushed, dict) and bool(pushed.get("error"))


def apply_budget(updates: dict[str, Any], used: int) -> None:
    """enforceMaxBodiesSize on an API update, starting from what is already stored."""
    budget = BodyBudget(used=used)
    budget.take_in(updates.get("request"))
    budget.take_in(updates.get("response"))
    for orch in updates.get("orchestrations") or []:
        if isinstance(orch, dict):
            budget.take_in(orch.get("request"))
            budget.take_in(orch.get("response"))
