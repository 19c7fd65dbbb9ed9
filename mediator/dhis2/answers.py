"""What DHIS2's answers mean: the typed results of its reads (server, user, stored
values) and the error an answer the client could not use becomes: a login page or a
refused token, a body that is not JSON, JSON in a shape DHIS2 does not send, a body too
large for a proxy, or a status the call does not expect."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import requests
from pydantic import BaseModel, Field, ValidationError

from mediator.http.client import json_or_none, without_userinfo
from mediator.http.errors import (
    BadShape,
    BadStatus,
    CredentialsRefused,
    Forbidden,
    NotJson,
    PeerError,
    Redirected,
    TooLarge,
)

from .imports import parse_web_message as _web_message
from .metadata import Key

_LOGIN_PAGE = re.compile(r"login|dhis-web-commons/security|dhis-web-login", re.IGNORECASE)
_TOKEN_ERRORS = re.compile(r"api token|checksum", re.IGNORECASE)


class ValuesUnreadable(BadStatus):
    """DHIS2 refused to say what it holds (a 400/404/409 on ``GET /api/dataValueSets``:
    an unknown org unit, no data-read sharing E2010, outside the user's view E2012)."""

    kind = "unreadable"


class LoginRedirect(CredentialsRefused):
    """DHIS2 sent its login page: it did not see valid credentials."""

    kind = "login_redirect"


class TokenRefused(CredentialsRefused):
    """DHIS2 refused the personal access token (malformed, wrong checksum)."""

    kind = "token_refused"


class SystemInfo(BaseModel):
    """The parts of ``/api/system/info`` the client relies on."""

    version: str
    major: int
    minor: int
    patch: int = 0
    server_date: datetime | None = None
    calendar: str | None = None
    revision: str | None = None

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)


class Me(BaseModel):
    """The integration user as ``/api/me`` shows it (authorities None: not shown)."""

    username: str | None = None
    authorities: frozenset[str] | None = None


class StoredValues(BaseModel):
    """What DHIS2 holds for a data set and period at some org units."""

    held: dict[Key, str] = Field(default_factory=dict)
    stored_by: dict[Key, str] = Field(default_factory=dict)

    def add(self, other: StoredValues) -> None:
        self.held.update(other.held)
        self.stored_by.update(other.stored_by)


def parse_version(text: str) -> tuple[int, int, int]:
    """``"2.41.1"``, ``"2.40.4.1"``, ``"2.42-SNAPSHOT"``, ``"2.39.0-rc1"`` → ints."""
    match = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        raise ValueError(f"not a DHIS2 version: {text!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def parse_server_date(text: Any) -> datetime | None:
    """DHIS2's local server time (``2024-11-15T10:00:00.000`` or with ``+0000``)."""
    if not isinstance(text, str):
        return None
    match = re.match(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})", text)
    return datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}") if match else None


def message_suffix(response: requests.Response) -> str:
    message = _web_message(json_or_none(response))
    return f": {message.message}" if message and message.message else ""


def stored_values(
    body: dict[str, Any], period: str, wanted: set[str], default_coc: str
) -> StoredValues:
    """The live values of a ``GET /api/dataValueSets`` answer, within the asked scope."""
    out = StoredValues()
    for value in body.get("dataValues") or []:
        if not isinstance(value, dict) or value.get("deleted") is True:
            continue
        text = value.get("value")
        # only the asked scope, even if a server returns more (e.g. children)
        if value.get("period", period) != period or value.get("orgUnit") not in wanted:
            continue
        if text in (None, ""):
            continue
        key: Key = (
            str(value.get("dataElement")),
            str(value.get("orgUnit")),
            str(value.get("categoryOptionCombo") or default_coc),
            str(value.get("attributeOptionCombo") or default_coc),
        )
        out.held[key] = str(text)
        if value.get("storedBy"):
            out.stored_by[key] = str(value["storedBy"])
    return out


def raise_for_auth(response: requests.Response, safe_url: str, name: str) -> None:
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        if _LOGIN_PAGE.search(location):
            raise LoginRedirect(
                "DHIS2",
                f"DHIS2 at {safe_url} redirected to its login page: the credentials "
                "were not accepted / not sent (set DHIS2_USERNAME and DHIS2_PASSWORD, or "
                "DHIS2_TOKEN)",
                status=status,
            )
        raise Redirected(
            "DHIS2",
            f"DHIS2 at {safe_url} redirected ({status}) to "
            f"{without_userinfo(location)} ({name}); redirects are not followed: check "
            "DHIS2_URL (http vs https, base path)",
            status=status,
        )
    if status == 401:
        raise CredentialsRefused(
            "DHIS2",
            f"DHIS2 at {safe_url} refused the credentials (HTTP 401{message_suffix(response)})",
            status=401,
        )
    message = _web_message(json_or_none(response)) if status == 400 else None
    if message and message.message and _TOKEN_ERRORS.search(message.message):
        raise TokenRefused(
            "DHIS2",
            f"DHIS2 at {safe_url} refused the API token (HTTP 400: {message.message})",
            status=400,
        )


def failure(
    response: requests.Response, what: str, where: str, version: str | None = None
) -> PeerError:
    """The error for an answer the caller could not use, by its cause: a status the call
    does not expect, a body over a size limit (413), a body that is not JSON (a web page
    answered), or JSON in a shape DHIS2 does not send for the call."""
    status = response.status_code
    start = f"DHIS2 at {where} answered HTTP {status} to {what}{message_suffix(response)}"
    if status == 413:
        return TooLarge(
            "DHIS2",
            f"{start}: the request body is over the size limit of DHIS2's web server or of a "
            "proxy in front of it",
            status=status,
        )
    if status == 403:
        return Forbidden(
            "DHIS2", f"{start} (the DHIS2 user lacks the authority or sharing for this)", status=403
        )
    if status == 404:
        return BadStatus(
            "DHIS2", f"{start} (not found: is DHIS2_URL the base URL of DHIS2?)", status=404
        )
    unknown = "; whether DHIS2 stored these values is unknown: the next run compares"
    after = unknown if what == "the data value import" else ""
    if response.text.strip() and json_or_none(response) is None:
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        return NotJson(
            "DHIS2",
            f"{start} with a body that is not JSON ({kind}): a web page answered instead of "
            f"DHIS2's API{after}",
            status=status,
        )
    if status in (200, 409):
        release = f"DHIS2 {version}" if version else "DHIS2"
        expected = "an import summary" if "import" in what else "the answer"
        return BadShape(
            "DHIS2",
            f"{start} with JSON in a shape {release} does not send for {expected}{after}",
            status=status,
        )
    return BadStatus("DHIS2", start, status=status)


def shape_problems(exc: ValidationError, limit: int = 3) -> str:
    """pydantic's errors in a line: each field, what is wrong, and what came instead."""
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "the answer"
        got = repr(error.get("input"))
        got = got if len(got) <= 40 else got[:37] + "..."
        parts.append(f"{where}: {error['msg'].lower()}, got {got}")
    return "; ".join(parts)
