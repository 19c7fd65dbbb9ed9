"""The Flask app: the push endpoint OpenHIM routes to, ``/coverage``, ``/audit``, ``/explain``,
``/health``, and the status page (``GET /``) that HRIOs read without logging into OpenHIM.

Thin on purpose: a view parses the request (``RunRequest.from_fields``), calls the
``RunService`` (``runs``) and renders what it returns. Every answer of the push
endpoint is an ``application/json+openhim`` envelope, bad input included (400
inside the envelope, never a bare 500 or an HTML page).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from mediator.model.values import utcnow
from mediator.openhim.agent import OpenhimAgent
from mediator.openhim.console_config import ConsoleConfig, load_registration
from mediator.openhim.envelope import CONTENT_TYPE
from mediator.run.audit import cells_csv
from mediator.run.explained import dumps
from mediator.run.pipeline import execute
from mediator.run.request import LISTS, PARAMS, RunInputError, RunRequest

from .audits import audit_json, run_audit
from .explains import explain_page, run_explain
from .history import RunHistory
from .queue import MAX_WAITING, default_background
from .render import EXPLAIN_PATH, STATUS_PAGE_HEADERS, coverage_csv
from .runs import Background, Refused, Runner, RunService, Trigger

T = TypeVar("T")

log = logging.getLogger(__name__)

PUSH_PATH = "/push"
TRANSACTION_HEADER = "X-OpenHIM-TransactionID"
LAST_RUN_HEADER = "X-OpenHIM-LastRunAt"
PARENT_HEADER = "parentID"  # core sets it on a rerun
MAX_BODY_BYTES = 64 * 1024  # a push request is a few ids; more is a mistake or an attack
AUTH_REALM = 'Basic realm="cht-dhis2-mediator", charset="UTF-8"'
NEEDS_CREDENTIALS = (
    "the push endpoint needs credentials: HTTP Basic auth with MEDIATOR_PUSH_USERNAME and "
    "MEDIATOR_PUSH_PASSWORD (set them on the OpenHIM channel's route)"
)

views = Blueprint("mediator", __name__)


def _service() -> RunService:
    service: RunService = current_app.extensions["mediator"]
    return service


def _authorized(service: RunService) -> bool:
    given = request.authorization
    if service.push_auth is None:
        return True
    if given is None or given.type != "basic":
        return False
    return service.authorized(given.username or "", given.password or "")


def _envelope(envelope: Mapping[str, Any]) -> Response:
    status = int(envelope["response"]["status"])
    body = json.dumps(envelope, ensure_ascii=False)
    return Response(body, status=status, content_type=CONTENT_TYPE)


def _json(status: int, payload: Mapping[str, Any]) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


def _challenge(answer: Response) -> Response:
    answer.headers["WWW-Authenticate"] = AUTH_REALM
    return answer


def _query(skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The query string as ``RunRequest.from_fields`` takes it: lists for the
    repeatable parameters, one string for the others."""
    fields: dict[str, Any] = {}
    for name, values in request.args.lists():
        if name in skip:
            continue
        if name in PARAMS and name not in LISTS:
            if len(values) > 1:
                raise RunInputError(f"give {name} once")
            fields[name] = values[0]
        else:
            fields[name] = values
    return fields


def _json_body() -> dict[str, Any]:
    if request.method != "POST":
        return {}
    data = request.get_data(cache=True)
    if not data.strip():
        return {}
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunInputError(
            f"the request body is not valid JSON ({exc}); send a JSON object or use the "
            "query string"
        ) from None
    if not isinstance(body, dict):
        raise RunInputError("the request body must be a JSON object")
    return body


@views.route(PUSH_PATH, methods=["GET", "POST"])
def push() -> Response:
    """Query string and JSON body, the body winning per field."""
    service = _service()
    if not _authorized(service):
        return _challenge(_envelope(service.refuse(401, NEEDS_CREDENTIALS)))
    transaction = request.headers.get(TRANSACTION_HEADER)
    try:
        fields = {**_query(), **_json_body()}
        asked = RunRequest.from_fields(fields, trigger="openhim" if transaction else "http")
    except RunInputError as exc:
        return _envelope(service.refuse(400, str(exc)))
    headers = request.headers
    trigger = Trigger(transaction, headers.get(LAST_RUN_HEADER), headers.get(PARENT_HEADER))
    return _envelope(service.push(asked, trigger))


def _table_request(formats: tuple[str, ...] = ("json", "csv")) -> tuple[str, Response | None]:
    """For the views that answer JSON, or CSV with ``format=csv`` (or what ``formats``
    names, the first the default), protected like /push: the format asked for, or the
    answer that refuses the request."""
    if not _authorized(_service()):
        return "", _challenge(_json(401, {"error": "credentials needed, as for /push"}))
    wanted = request.args.get("format", formats[0]).lower()
    if wanted not in formats:
        return "", _json(400, {"error": f"format must be {' or '.join(formats)}"})
    return wanted, None


def _asked(answer: Callable[[], T]) -> T | Response:
    """``answer()``, or the one-line refusal a bad request (400) or the service (its
    status: a busy queue, credentials) gives instead: /coverage's, /audit's and
    /explain's shared way of saying no."""
    try:
        return answer()
    except RunInputError as exc:
        return _json(400, {"error": str(exc)})
    except Refused as exc:
        return _json(exc.status, {"error": exc.message})


@views.route("/coverage", methods=["GET"])
def coverage() -> Response:
    """``?period=…``: JSON, or CSV with ``format=csv``. Protected like /push: it
    names CHT users."""
    wanted, refused = _table_request()
    if refused is not None:
        return refused
    service = _service()
    tables = _asked(lambda: service.coverage(RunRequest.from_fields(_query(skip=("format",)))))
    if isinstance(tables, Response):
        return tables
    if wanted == "csv":
        return Response(coverage_csv(tables), content_type="text/csv; charset=utf-8")
    return _json(200, {"coverage": tables})


@views.route("/audit", methods=["GET"])
def audit() -> Response:
    """``?period=…`` (or ``from``/``to``, ``dataSet``, ``orgUnit``, as /push): what DHIS2
    holds beside what CHT computes now, nothing pushed (``run.audit``). JSON, or the
    cells as CSV with ``format=csv``; 200 whatever it found (``status`` says). Protected
    like /push: it shows DHIS2's numbers and who stored them."""
    wanted, refused = _table_request()
    if refused is not None:
        return refused
    service = _service()
    found = _asked(lambda: run_audit(service, RunRequest.from_fields(_query(skip=("format",)))))
    if isinstance(found, Response):
        return found
    if wanted == "csv":
        return Response(cells_csv(found.cells), content_type="text/csv; charset=utf-8")
    return Response(audit_json(service, found), content_type="application/json")


@views.route(EXPLAIN_PATH, methods=["GET"])
def explain() -> Response:
    """``?dataSet=…&period=…&orgUnit=…`` (and ``dataElement``, ``categoryOptionCombo``;
    without ``dataElement`` every element of the data set): why the cells hold their
    numbers (``run.explain``), as a page, or JSON with ``format=json``. Protected like
    /push: it names CHT users."""
    wanted, refused = _table_request(("html", "json"))
    if refused is not None:
        return refused
    service = _service()
    data = _asked(lambda: run_explain(service, _query(skip=("format",))))
    if isinstance(data, Response):
        return data
    if wanted == "json":
        return Response(dumps(data), content_type="application/json")
    answer = Response(explain_page(data), content_type="text/html; charset=utf-8")
    answer.headers.update(STATUS_PAGE_HEADERS)
    return answer


@views.route("/", methods=["GET"])
@views.route("/status", methods=["GET"])
def status() -> Response:
    """The HRIO's page. Protected like /push: it names CHT users."""
    service = _service()
    if not _authorized(service):
        text = "credentials needed, as for /push\n"
        return _challenge(Response(text, status=401, content_type="text/plain; charset=utf-8"))
    answer = Response(service.status_page(), content_type="text/html; charset=utf-8")
    answer.headers.update(STATUS_PAGE_HEADERS)
    return answer


@views.route("/health", methods=["GET"])
def health() -> Response:
    """200 while the next run could start; 503 when the configuration cannot work, so a
    container's health check and a load balancer see it too (the body says why)."""
    answer = _service().health()
    return _json(200 if answer["status"] == "ok" else 503, answer)


def http_error(exc: HTTPException) -> Response:
    """Wrong method, unknown path, oversized body: a clear answer, never HTML."""
    status = exc.code or 400
    message = {
        405: f"method {request.method} is not allowed here: use "
        + ("GET or POST" if request.path == PUSH_PATH else "GET"),
        413: f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB",
        404: f"no such endpoint {request.path}: use {PUSH_PATH} or /health",
    }.get(status, exc.description or exc.name)
    if request.path == PUSH_PATH:
        answer = _envelope(_service().refuse(status, message))
    else:
        answer = _json(status, {"error": message})
    if status == 405:
        answer.headers["Allow"] = "GET, POST" if request.path == PUSH_PATH else "GET"
    return answer


def internal_error(exc: Exception) -> Response:
    """Anything unexpected: logged, and answered without a stack trace."""
    log.exception("%s failed", request.path)
    message = "internal error in the mediator; see its log"
    if request.path == PUSH_PATH:
        return _envelope(_service().refuse(500, message))
    return _json(500, {"error": message})


def create_app(
    *,
    registration: Mapping[str, Any] | None = None,
    console: ConsoleConfig | None = None,
    env: Mapping[str, str] | None = None,
    runner: Runner = execute,
    agent: OpenhimAgent | None = None,
    clock: Callable[[], datetime] = utcnow,
    background: Background = default_background,
    push_auth: tuple[str, str] | None = None,
    max_waiting: int = MAX_WAITING,
    history: RunHistory | None = None,
) -> Flask:
    """Build the mediator's Flask app; ``app.extensions["mediator"]`` is its RunService.

    ``env`` None reads ``os.environ`` per request; ``console`` is shared with the
    OpenHIM agent that fills it from heartbeats; ``runner`` and ``clock`` are
    injectable so tests need neither CHT, DHIS2 nor a frozen system clock.
    """
    registration = registration if registration is not None else load_registration(env=env)
    service = RunService(
        registration=registration,
        console=console or ConsoleConfig(registration.get("configDefs", [])),
        env=env,
        runner=runner,
        agent=agent,
        clock=clock,
        background=background,
        push_auth=push_auth,
        max_waiting=max_waiting,
        history=history,
    )
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["mediator"] = service
    app.register_blueprint(views)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, internal_error)
    return app


__all__ = ["PUSH_PATH", "RunService", "Runner", "create_app"]
