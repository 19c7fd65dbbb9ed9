"""WebMessage bodies and the import-summary wrapping rules (dhis2.md §2.2, §2.4).

Key order follows ``WebMessage``'s ``@JsonPropertyOrder``; Flask is told not to
sort keys. 4xx/5xx answers carry ``Cache-Control: no-cache, private``.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from flask import Response

IMPORT_MESSAGES = {
    "SUCCESS": (200, "OK", "Import was successful."),
    "WARNING": (409, "WARNING", "One more conflicts encountered, please check import summary."),
    "ERROR": (409, "ERROR", "An error occurred, please check import summary."),
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(json.dumps(body), status=status, mimetype="application/json")
    if status >= 400:
        resp.headers["Cache-Control"] = "no-cache, private"
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def web_message(
    code: int,
    message: str | None = None,
    status: str | None = None,
    response: Any = None,
    error_code: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "httpStatus": HTTPStatus(code).phrase,
        "httpStatusCode": code,
        "status": status or ("OK" if code < 400 else "ERROR"),
    }
    if message is not None:
        out["message"] = message
    if response is not None:
        out["response"] = response
    if error_code is not None:
        out["errorCode"] = error_code
    return out


def error(
    code: int, message: str, error_code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    return json_response(web_message(code, message, error_code=error_code), code, headers)


def import_response(summary: dict[str, Any], plain: bool) -> Response:
    """Bare summary (always HTTP 200) or WebMessage with 200/409 by status."""
    if plain:
        return json_response(summary, 200)
    code, status, message = IMPORT_MESSAGES[summary["status"]]
    return json_response(web_message(code, message, status, summary), code)
