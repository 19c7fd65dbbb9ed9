"""JavaScript/Koa/Mongo formatting quirks the stand-in must reproduce byte for byte.

Core is Node + Koa + Mongoose; clients see JS date strings, Koa default status
texts and Mongo ObjectIds. Keeping these in one place keeps the other modules
about behaviour rather than formatting.
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from flask import Response

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def new_object_id() -> str:
    """A 24-hex id shaped like a Mongo ObjectId (clients treat ids as opaque strings)."""
    return secrets.token_hex(12)


def is_object_id(value: str) -> bool:
    """Mongoose casts `_id` path params; anything else is a CastError in core."""
    return len(value) == 24 and all(c in "0123456789abcdefABCDEF" for c in value)


def js_iso(dt: datetime) -> str:
    """`Date.prototype.toISOString()`: millisecond precision, always UTC, `Z` suffix."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def js_date_string(dt: datetime) -> str:
    """`Date.prototype.toString()` as Node 14 prints it with TZ=UTC (core's docker image).

    This is what `X-OpenHIM-LastRunAt` carries, e.g.
    `Mon Jan 01 2024 02:00:00 GMT+0000 (Coordinated Universal Time)`.
    """
    dt = dt.astimezone(UTC)
    return (
        f"{_DAYS[dt.weekday()]} {_MONTHS[dt.month - 1]} {dt.day:02d} {dt.year:04d} "
        f"{dt.strftime('%H:%M:%S')} GMT+0000 (Coordinated Universal Time)"
    )


def parse_js_date(value: Any) -> datetime:
    """Mongoose Date casting, close enough: ISO strings, epoch milliseconds, datetimes.

    A naive ISO string is taken as local time, as `Date.parse` does (the
    `str(datetime.utcnow())` pitfall in the reference). Raises ValueError
    (core: CastError) for anything else.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.astimezone()
    if isinstance(value, bool) or value is None:
        raise ValueError(f'Cast to date failed for value "{value}"')
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f'Cast to date failed for value "{value}"') from exc
        return parsed if parsed.tzinfo else parsed.astimezone()
    raise ValueError(f'Cast to date failed for value "{value}"')


def js_to_string(value: Any) -> str:
    """`value.toString()` as core applies it to an envelope's inner response body."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return str(int(value))
        return repr(value)
    if isinstance(value, list):
        return ",".join("" if v is None else js_to_string(v) for v in value)
    return "[object Object]"


def js_truthy(value: Any) -> bool:
    """JS truthiness: `[]` and `{}` are truthy, unlike Python."""
    if isinstance(value, list | dict):
        return True
    return bool(value)


def js_typeof(value: Any) -> str:
    """`typeof` for JSON-decoded values (null is "object", like JS)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def koa_text(status: int, body: str | None = None) -> Response:
    """A plain-text reply; with no body Koa sends the status phrase (e.g. `Created`)."""
    if body is None:
        body = HTTPStatus(status).phrase
    return Response(body, status=status, mimetype="text/plain")
