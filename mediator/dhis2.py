"""The DHIS2 client: the only module that speaks DHIS2's Web API (2.36 → 2.42).

One client per run. It reads the server version and each data set's metadata
once, checks the engine's rows against them (``dhis2_metadata``), reads what
DHIS2 already holds so that only differences are sent ("exact push"), posts
``dataValueSets`` in chunks and turns whatever DHIS2 answers into one
``DataSetResult`` (``dhis2_imports``). Every HTTP request is handed to the
recorder as an ``Exchange`` with credentials masked.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from pydantic import BaseModel, Field

from . import __version__
from .config import Dhis2Settings
from .dhis2_imports import AsyncJob, ImportResult, attribute, parse_async_job, parse_import
from .dhis2_imports import parse_web_message as _web_message
from .dhis2_metadata import (
    DATA_SET_FIELDS,
    Combo,
    DataSetMeta,
    Key,
    Preflight,
    ReadyValue,
    check,
    normalise_stored,
)
from .models import DataValue, Exchange, utcnow
from .report import DataSetResult, Finding, RejectedRow, RowRef

__all__ = [
    "Dhis2AuthError",
    "Dhis2Client",
    "Dhis2Error",
    "Preflight",
    "SystemInfo",
]

ORG_UNITS_PER_READ = 50  # keeps GET /api/dataValueSets URLs well under proxy limits
POLL_FIRST_SECONDS, POLL_MAX_SECONDS = 0.5, 5.0  # jobs of 2.36-2.40 start at once
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_LOGIN_PAGE = re.compile(r"login|dhis-web-commons/security|dhis-web-login", re.IGNORECASE)
_TOKEN_ERRORS = re.compile(r"api token|checksum", re.IGNORECASE)
_SECRET_HEADERS = {"authorization", "cookie", "set-cookie", "proxy-authorization"}


class Dhis2Error(Exception):
    """A DHIS2 request that failed. The message names the URL and what failed,
    never a credential, so it can go straight into reports."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Dhis2AuthError(Dhis2Error):
    """DHIS2 did not accept the credentials (401, a token error, or a redirect to login)."""


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


def _safe_url(url: str) -> str:
    """The URL without any ``user:password@`` part."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _mask(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    masked: dict[str, str] = {}
    for name, value in headers:
        if name.lower() in _SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] if name.lower().endswith("authorization") else ""
            value = f"{scheme} ****".strip()
        masked[name] = value
    return masked


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or []


class _Planned(BaseModel):
    """One value to post and where it came from."""

    ref: RowRef
    payload: dict[str, str]
    clear: bool = False
    from_engine: bool = True  # False: a key DHIS2 holds that the engine no longer produces


class PushPlan(BaseModel):
    """The difference between what the engine computed and what DHIS2 holds."""

    send: list[_Planned] = Field(default_factory=list)
    unchanged: int = 0


def plan_push(
    period: str,
    ready: Sequence[ReadyValue],
    held: dict[Key, str],
    *,
    mapped: set[Combo],
    protected: set[Key],
) -> PushPlan:
    """Only what differs: new or changed values, clears for values that are now a
    zero DHIS2 would not store, and clears for mapped keys the engine no longer
    produces. ``protected`` keys (refused before posting) are never cleared."""
    plan = PushPlan()
    produced: set[Key] = set()
    for item in ready:
        produced.add(item.key)
        current = held.get(item.key)
        row = item.row
        payload = {"dataElement": row.dataElement, "period": period, "orgUnit": row.orgUnit}
        if row.categoryOptionCombo:
            payload["categoryOptionCombo"] = row.categoryOptionCombo
        if row.attributeOptionCombo:
            payload["attributeOptionCombo"] = row.attributeOptionCombo
        ref = RowRef(**payload, value=item.text)
        if item.zero_insignificant:
            if current is None:
                plan.unchanged += 1  # DHIS2 holds nothing, which is what a zero means
            else:
                # "0" would be skipped on 2.36 and leave the old value; "" deletes on all.
                ref.value = ""
                plan.send.append(_Planned(ref=ref, payload={**payload, "value": ""}, clear=True))
        elif current is not None and normalise_stored(current, item.value_type) == item.text:
            plan.unchanged += 1
        else:
            plan.send.append(_Planned(ref=ref, payload={**payload, "value": item.text}))
    for key, _value in held.items():
        de, ou, coc, aoc = key
        if key in produced or key in protected or (de, coc, aoc) not in mapped:
            continue
        payload = {
            "dataElement": de,
            "period": period,
            "orgUnit": ou,
            "categoryOptionCombo": coc,
            "attributeOptionCombo": aoc,
        }
        plan.send.append(
            _Planned(
                ref=RowRef(**payload, value=""),
                payload={**payload, "value": ""},
                clear=True,
                from_engine=False,
            )
        )
    return plan


class Dhis2Client:
    """Talks to one DHIS2 instance for the life of one run (metadata is cached)."""

    def __init__(
        self,
        settings: Dhis2Settings,
        recorder: Callable[[Exchange], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._recorder = recorder
        self._sleep = sleep
        self.random = random.Random()  # jitter; tests may seed it
        self.base_url = settings.url
        self.safe_url = _safe_url(settings.url)
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        self._session.headers["User-Agent"] = f"cht-dhis2-mediator/{__version__}"
        if settings.token is not None:
            self._session.headers["Authorization"] = f"ApiToken {settings.token.get_secret_value()}"
        elif settings.username and settings.password is not None:
            # Sent up front: without credentials DHIS2 answers 302 to its login page.
            self._session.auth = (settings.username, settings.password.get_secret_value())
        self._info: SystemInfo | None = None
        self._meta: dict[str, DataSetMeta | None] = {}
        self._username: str | None = settings.username if settings.token is None else None
        self._auth_failure: Dhis2AuthError | None = None

    def __enter__(self) -> Dhis2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # -- HTTP -------------------------------------------------------------------

    def _record(self, exchange: Exchange) -> None:
        if self._recorder is not None:
            self._recorder(exchange)

    def _backoff(self, attempt: int) -> float:
        """Exponential with jitter: ~1, 2, 4, 8 s … capped at 30 s, times 0.5–1."""
        return float(min(30.0, 2.0 ** (attempt - 1)) * (0.5 + 0.5 * self.random.random()))

    @staticmethod
    def _retry_after(response: requests.Response) -> float | None:
        raw = response.headers.get("Retry-After")
        if not raw:
            return None
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - utcnow()).total_seconds())

    def _request(
        self,
        method: str,
        path: str,
        *,
        name: str,
        params: Sequence[tuple[str, str]] | None = None,
        body: Any = None,
    ) -> requests.Response:
        """One logical request: retried on network errors, 5xx and 429 within the
        budget; redirects never followed; 401 and token errors raise Dhis2AuthError.
        Other statuses are returned for the caller to interpret."""
        if self._auth_failure is not None:
            # Repeating refused credentials can lock the DHIS2 account.
            raise self._auth_failure
        data = json.dumps(body, separators=(",", ":")) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = requests.Request(
            method, self.base_url + path, params=list(params or []), data=data, headers=headers
        )
        prepared = self._session.prepare_request(request)
        url = _safe_url(prepared.url or self.base_url + path)
        parts = urlsplit(url)
        where = f"{self.safe_url}{parts.path}"
        env = self._session.merge_environment_settings(
            prepared.url, {}, None, self.settings.verify, None
        )
        slept = 0.0
        attempt = 0
        while True:
            attempt += 1
            exchange = Exchange(
                name=name if attempt == 1 else f"{name} (attempt {attempt})",
                method=method,
                url=url,
                path=parts.path,
                querystring=parts.query,
                request_headers=_mask(prepared.headers.items()),
                request_body=data or "",
            )
            delay: float | None
            try:
                response = self._session.send(
                    prepared, timeout=self.settings.timeout, allow_redirects=False, **env
                )
            except requests.exceptions.SSLError:
                # a certificate problem does not go away by retrying
                exchange.error = "TLS certificate verification failed"
                exchange.finished = utcnow()
                self._record(exchange)
                raise Dhis2Error(
                    f"TLS certificate verification failed for DHIS2 at {where} ({name}): set "
                    "DHIS2_CA_BUNDLE to the CA that signed it (or DHIS2_VERIFY_TLS=false, for "
                    "development only)"
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                kind = "timed out" if isinstance(exc, requests.Timeout) else "could not connect"
                exchange.error = f"{kind}: {type(exc).__name__}"
                exchange.finished = utcnow()
                self._record(exchange)
                failure = Dhis2Error(
                    f"DHIS2 at {where} {kind} ({name}) after {attempt} attempt(s): "
                    f"{type(exc).__name__}"
                )
                delay = self._backoff(attempt)
            else:
                exchange.status = response.status_code
                exchange.response_headers = _mask(response.headers.items())
                exchange.response_body = response.text
                exchange.finished = utcnow()
                self._record(exchange)
                self._raise_for_auth(response, where, name)
                if response.status_code not in _RETRY_STATUSES:
                    return response
                failure = Dhis2Error(
                    f"DHIS2 at {where} answered HTTP {response.status_code} ({name}) after "
                    f"{attempt} attempt(s){self._message_suffix(response)}",
                    status=response.status_code,
                )
                delay = self._retry_after(response) if response.status_code == 429 else None
                if delay is None:
                    delay = self._backoff(attempt)
                elif slept + delay > self.settings.max_retry_seconds:
                    raise failure  # the server asks us to wait longer than the budget
            if attempt >= self.settings.max_attempts:
                raise failure
            delay = min(delay, self.settings.max_retry_seconds - slept)
            if delay <= 0 and slept >= self.settings.max_retry_seconds:
                raise failure
            self._sleep(delay)
            slept += delay

    @staticmethod
    def _message_suffix(response: requests.Response) -> str:
        message = _web_message(_json(response))
        return f": {message.message}" if message and message.message else ""

    def _raise_for_auth(self, response: requests.Response, where: str, name: str) -> None:
        status = response.status_code
        error: Dhis2AuthError | None = None
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            if _LOGIN_PAGE.search(location):
                error = Dhis2AuthError(
                    f"DHIS2 at {self.safe_url} redirected to its login page: the credentials "
                    "were not accepted / not sent (set DHIS2_USERNAME and DHIS2_PASSWORD, or "
                    "DHIS2_TOKEN)",
                    status=status,
                )
            else:
                raise Dhis2Error(
                    f"DHIS2 at {where} redirected ({status}) to {_safe_url(location)} ({name}); "
                    "redirects are not followed: check DHIS2_URL (http vs https, base path)",
                    status=status,
                )
        elif status == 401:
            error = Dhis2AuthError(
                f"DHIS2 at {self.safe_url} refused the credentials (HTTP 401"
                f"{self._message_suffix(response)})",
                status=status,
            )
        elif status == 400:
            message = _web_message(_json(response))
            if message and message.message and _TOKEN_ERRORS.search(message.message):
                error = Dhis2AuthError(
                    f"DHIS2 at {self.safe_url} refused the API token (HTTP 400: {message.message})",
                    status=status,
                )
        if error is not None:
            self._auth_failure = error
            raise error

    def _fail(self, response: requests.Response, what: str) -> Dhis2Error:
        path = urlsplit(response.url or "").path
        hint = {
            403: " (the DHIS2 user lacks the authority or sharing for this)",
            404: " (not found: is DHIS2_URL the base URL of DHIS2?)",
            413: " (a proxy in front of DHIS2 refused the body size: lower DHIS2_CHUNK_SIZE)",
        }.get(response.status_code, "")
        if not hint and response.text.strip() and _json(response) is None:
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            hint = (
                f" with a body that is not JSON ({kind}): a proxy or an error page answered "
                "instead of DHIS2's API"
            )
            if what == "the data value import":
                hint += "; whether DHIS2 stored these values is unknown: the next run compares"
        elif not hint and response.status_code in (200, 409):
            hint = " with JSON that is not a DHIS2 import summary"
        return Dhis2Error(
            f"DHIS2 at {self.safe_url}{path} answered HTTP {response.status_code} to {what}"
            f"{self._message_suffix(response)}{hint}",
            status=response.status_code,
        )

    # -- server and metadata -------------------------------------------------------

    def system_info(self) -> SystemInfo:
        """Version and server date, read once per client."""
        if self._info is not None:
            return self._info
        response = self._request("GET", "/api/system/info", name="DHIS2 system info")
        body = _json(response)
        if response.status_code != 200:
            raise self._fail(response, "the system info request")
        if not isinstance(body, dict) or not isinstance(body.get("version"), str):
            raise Dhis2Error(
                f"DHIS2 at {self.safe_url}/api/system/info did not answer with DHIS2 system "
                "info JSON: is DHIS2_URL the base URL of DHIS2?"
            )
        try:
            major, minor, patch = parse_version(body["version"])
        except ValueError as exc:
            raise Dhis2Error(f"DHIS2 at {self.safe_url}: {exc}") from None
        self._info = SystemInfo(
            version=body["version"],
            major=major,
            minor=minor,
            patch=patch,
            server_date=parse_server_date(body.get("serverDate")),
            calendar=body.get("calendar") if isinstance(body.get("calendar"), str) else None,
            revision=body.get("revision") if isinstance(body.get("revision"), str) else None,
        )
        return self._info

    def username(self) -> str | None:
        """The DHIS2 user the mediator writes as (``storedBy`` of what it pushed).

        With Basic auth it is the configured name; a token's owner is asked for once.
        """
        if self._username is None:
            response = self._request(
                "GET", "/api/me", name="DHIS2 current user", params=[("fields", "username")]
            )
            body = _json(response)
            if response.status_code == 200 and isinstance(body, dict):
                name = body.get("username") or (body.get("userCredentials") or {}).get("username")
                self._username = str(name) if name else None
        return self._username

    def period_type(self, data_set: str) -> str | None:
        """The data set's DHIS2 period type (None when DHIS2 has no such data set)."""
        meta = self.data_set_metadata(data_set)
        return meta.periodType if meta else None

    def data_set_metadata(self, data_set: str) -> DataSetMeta | None:
        """The data set as preflight needs it (one request, cached); None if DHIS2 has none."""
        if data_set in self._meta:
            return self._meta[data_set]
        response = self._request(
            "GET",
            f"/api/dataSets/{quote(data_set, safe='')}",
            name=f"DHIS2 data set {data_set} metadata",
            params=[("fields", DATA_SET_FIELDS)],
        )
        if response.status_code == 404:
            self._meta[data_set] = None
            return None
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            raise self._fail(response, f"the metadata request for data set {data_set}")
        meta = DataSetMeta.model_validate(body)
        self._meta[data_set] = meta
        return meta

    def preflight(self, data_set: str, period: str, rows: list[DataValue]) -> Preflight:
        """Check rows against the data set before anything is posted."""
        info = self.system_info()
        meta = self.data_set_metadata(data_set)
        iso = (info.calendar or "iso8601").lower() == "iso8601"
        now = info.server_date or datetime.now()
        pre = check(meta, data_set, period, rows, now, check_locks=iso)
        if meta is not None and not iso:
            pre.findings.append(
                Finding(
                    level="warning",
                    code="calendar_not_iso",
                    message=f"DHIS2 uses the {info.calendar} calendar: period locks were not "
                    "checked before posting; DHIS2 will still report them per value.",
                    ids=[data_set],
                )
            )
        return pre

    # -- what DHIS2 holds ---------------------------------------------------------------

    def existing_values(
        self,
        data_set: str,
        period: str,
        org_units: Sequence[str],
        default_coc: str,
        findings: list[Finding] | None = None,
        stored_by: dict[Key, str] | None = None,
    ) -> dict[Key, str]:
        """Values DHIS2 holds for the data set and period at these org units
        (and, into ``stored_by``, who stored each)."""
        held: dict[Key, str] = {}
        who: dict[Key, str] = {} if stored_by is None else stored_by
        batches = _chunks(list(org_units), ORG_UNITS_PER_READ)
        for number, batch in enumerate(batches, start=1):
            name = f"DHIS2 dataValueSets GET (batch {number}/{len(batches)})"
            self._read_batch(data_set, period, batch, default_coc, name, held, findings, who)
        return held

    def _read_batch(
        self,
        data_set: str,
        period: str,
        batch: Sequence[str],
        default_coc: str,
        name: str,
        held: dict[Key, str],
        findings: list[Finding] | None,
        stored_by: dict[Key, str],
    ) -> None:
        params = [("dataSet", data_set), ("period", period)] + [("orgUnit", ou) for ou in batch]
        response = self._request("GET", "/api/dataValueSets", name=name, params=params)
        body = _json(response)
        if response.status_code == 200 and isinstance(body, dict):
            wanted = set(batch)
            for value in body.get("dataValues") or []:
                if not isinstance(value, dict) or value.get("deleted") is True:
                    continue
                text = value.get("value")
                # Only the asked scope, even if a server returns more (e.g. children).
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
                held[key] = str(text)
                if value.get("storedBy"):
                    stored_by[key] = str(value["storedBy"])
            return
        if response.status_code in (400, 404, 409) and len(batch) > 1:
            # One unknown or unreadable org unit spoils the batch: read them one by one.
            for ou in batch:
                self._read_batch(
                    data_set, period, [ou], default_coc, name, held, findings, stored_by
                )
            return
        if response.status_code in (400, 404, 409) and findings is not None:
            findings.append(
                Finding(
                    level="warning",
                    code="existing_values_unreadable",
                    message=f"Could not read what DHIS2 holds for org unit {batch[0]} "
                    f"(HTTP {response.status_code}{self._message_suffix(response)}); its values "
                    "were sent without comparing, and nothing was cleared there.",
                    ids=list(batch),
                )
            )
            return
        raise self._fail(response, "the read of existing data values")

    # -- posting ------------------------------------------------------------------------

    def _post_chunk(
        self, data_set: str, payloads: list[dict[str, str]], name: str, dry_run: bool
    ) -> ImportResult:
        params = [
            ("importStrategy", "CREATE_AND_UPDATE"),
            ("dryRun", "true" if dry_run else "false"),
        ]
        if self.settings.async_import:
            params.append(("async", "true"))
        body = {"dataSet": data_set, "dataValues": payloads}
        response = self._request("POST", "/api/dataValueSets", name=name, params=params, body=body)
        parsed = _json(response)
        if response.status_code in (200, 409):
            result = parse_import(parsed, response.status_code)
            if result is not None:
                return result
            job = parse_async_job(parsed) if self.settings.async_import else None
            if job is not None and response.status_code == 200:
                return self._await_job(job, name)
        raise self._fail(response, "the data value import")

    def register_completeness(
        self, data_set: str, period: str, org_units: list[str]
    ) -> tuple[list[str], list[Finding]]:
        """Mark the data set complete for the period at each org unit whose values DHIS2
        accepted (``completeDataSetRegistrations``). Returns the org units registered
        and findings for those DHIS2 refused; never raises Dhis2Error."""
        done: list[str] = []
        findings: list[Finding] = []
        batches = _chunks(org_units, self.settings.chunk_size)
        for number, batch in enumerate(batches, start=1):
            body = {
                "completeDataSetRegistrations": [
                    {
                        "dataSet": data_set,
                        "period": period,
                        "organisationUnit": ou,
                        "completed": True,
                    }
                    for ou in batch
                ]
            }
            name = f"DHIS2 completeDataSetRegistrations POST ({number}/{len(batches)})"
            try:
                response = self._request(
                    "POST", "/api/completeDataSetRegistrations", name=name, body=body
                )
                result = (
                    parse_import(_json(response), response.status_code)
                    if response.status_code in (200, 409)
                    else None
                )
                if result is None:
                    raise self._fail(response, "the completeness registration")
            except Dhis2Error as exc:
                findings.append(
                    Finding(
                        level="warning",
                        code="completeness_not_registered",
                        message=f"Data set {data_set} was not marked complete for {period}: {exc}",
                        ids=list(batch),
                    )
                )
                continue
            refused = {c.object for c in result.conflicts if c.object and c.object in batch}
            if result.aborted:
                refused = set(batch)
            done += [ou for ou in batch if ou not in refused]
            if refused:
                findings.append(
                    Finding(
                        level="warning",
                        code="completeness_not_registered",
                        message=f"DHIS2 did not mark data set {data_set} complete for {period} "
                        f"at {', '.join(sorted(refused))}: "
                        + "; ".join(c.value for c in result.conflicts[:5]),
                        ids=sorted(refused),
                    )
                )
        return done, findings

    def _poll_pause(self, polls: int) -> float:
        """Sleep 0.5, 1, 2, 4, 5, 5 … s: quick for small jobs, gentle on long ones."""
        pause = min(POLL_MAX_SECONDS, POLL_FIRST_SECONDS * float(2**polls))
        self._sleep(pause)
        return pause

    def _await_job(self, job: AsyncJob, name: str) -> ImportResult:
        """Poll the job's notifications until one says completed, then read its summary."""
        budget = max(self.settings.timeout, 60.0)
        waited = 0.0
        polls = 0
        while True:
            response = self._request(
                "GET",
                f"/api/system/tasks/DATAVALUE_IMPORT/{quote(job.id, safe='')}",
                name=f"{name} job status",
            )
            notes = _json(response)
            if response.status_code != 200:
                raise self._fail(response, f"the status request of import job {job.id}")
            if isinstance(notes, list) and any(
                isinstance(n, dict) and n.get("completed") is True for n in notes
            ):
                break
            if waited >= budget:
                raise Dhis2Error(
                    f"DHIS2 at {self.safe_url}: import job {job.id} did not finish within "
                    f"{budget:.0f} s; check Data Administration → Jobs in DHIS2"
                )
            waited += self._poll_pause(polls)
            polls += 1
        while True:
            response = self._request(
                "GET",
                f"/api/system/taskSummaries/DATAVALUE_IMPORT/{quote(job.id, safe='')}",
                name=f"{name} job summary",
            )
            if response.status_code != 200:
                raise self._fail(response, f"the summary request of import job {job.id}")
            result = parse_import(_json(response), 200)
            if result is not None:
                return result
            if waited >= budget:  # 200 with no content until the summary exists
                raise Dhis2Error(
                    f"DHIS2 at {self.safe_url}: import job {job.id} finished but left no "
                    f"summary within {budget:.0f} s"
                )
            waited += self._poll_pause(polls)
            polls += 1

    def push(
        self,
        data_set: str,
        period: str,
        rows: list[DataValue],
        *,
        dry_run: bool = False,
        scope_org_units: list[str] | None = None,
        mapped: Iterable[tuple[str, str | None, str | None]] | None = None,
        sweep_assigned: bool = False,
        owned_org_units: Iterable[str] = (),
    ) -> DataSetResult:
        """Make DHIS2 hold exactly the engine's values for the mapped keys in scope.

        ``mapped`` (dataElement, COC, AOC) lists the rows the engine maps for the
        data set; by default the combinations present in ``rows``. Values of other
        data elements in DHIS2 are never touched. With ``sweep_assigned``, the org
        units assigned to the data set that CHT no longer maps are in scope too,
        but there only values this integration user stored (``storedBy``) are
        cleared: a number a person typed for a non-CHT org unit is left alone.
        ``owned_org_units`` are org units CHT maps that other calls push (a run
        pushes a big data set in batches of org units): the sweep leaves them alone.
        Never raises Dhis2Error: a failure is reported in the result.
        """
        result = DataSetResult(
            data_set=data_set, period=period, dry_run=dry_run, values_computed=len(rows)
        )
        try:
            self._push(
                result,
                data_set,
                period,
                rows,
                dry_run,
                scope_org_units or [],
                mapped,
                sweep_assigned,
                set(owned_org_units),
            )
        except Dhis2Error as exc:
            result.status = "error"
            result.error = str(exc)
            result.error_status = exc.status
        return result

    def _push(
        self,
        result: DataSetResult,
        data_set: str,
        period: str,
        rows: list[DataValue],
        dry_run: bool,
        scope_org_units: list[str],
        mapped_rows: Iterable[tuple[str, str | None, str | None]] | None,
        sweep_assigned: bool = False,
        owned_elsewhere: set[str] | None = None,
    ) -> None:
        result.dhis2_version = self.system_info().version
        pre = self.preflight(data_set, period, rows)
        result.preflight = list(pre.findings)
        result.rejected = list(pre.rejected)
        if pre.blocked:
            result.status = "error"
            result.error = next(f.message for f in pre.findings if f.level == "error")
            return
        dflt = pre.default_coc
        combos = (
            mapped_rows
            if mapped_rows is not None
            else ((r.dataElement, r.categoryOptionCombo, r.attributeOptionCombo) for r in rows)
        )
        mapped: set[Combo] = {(de, coc or dflt, aoc or dflt) for de, coc, aoc in combos}
        scope = list(dict.fromkeys([r.orgUnit for r in rows] + list(scope_org_units)))
        swept: list[str] = []
        if sweep_assigned:
            meta = self.data_set_metadata(data_set)
            owned = set(scope) | (owned_elsewhere or set())
            assigned = [u.id for u in meta.organisationUnits] if meta else []
            swept = [ou for ou in assigned if ou not in owned]
        stored_by: dict[Key, str] = {}
        held = self.existing_values(
            data_set, period, scope + swept, dflt, result.preflight, stored_by=stored_by
        )
        if swept:
            me = self.username()
            foreign = set(swept)
            held = {
                key: value
                for key, value in held.items()
                if key[1] not in foreign or (me is not None and stored_by.get(key) == me)
            }
        protected: set[Key] = {
            (
                r.dataElement,
                r.orgUnit,
                r.categoryOptionCombo or dflt,
                r.attributeOptionCombo or dflt,
            )
            for r in pre.rejected
        }
        plan = plan_push(
            period,
            pre.ready,
            held,
            mapped=mapped,
            protected=protected,
        )
        result.values_unchanged = plan.unchanged
        result.values_sent = len(plan.send)
        result.values_cleared = sum(1 for p in plan.send if p.clear)
        accepted_engine = 0
        accepted_any = False
        unattributed = 0
        chunks = _chunks(plan.send, self.settings.chunk_size)
        for number, chunk in enumerate(chunks, start=1):
            offset = (number - 1) * self.settings.chunk_size
            name = f"DHIS2 dataValueSets POST (chunk {number}/{len(chunks)})"
            refs = [p.ref for p in chunk]
            result.chunks_sent += 1
            try:
                outcome = self._post_chunk(data_set, [p.payload for p in chunk], name, dry_run)
            except Dhis2AuthError:
                raise
            except Dhis2Error as exc:
                result.chunks_failed += 1
                result.rejected += [
                    RejectedRow(**ref.model_dump(), reason=f"not imported: {exc}") for ref in refs
                ]
                if exc.status == 403:  # the same for every chunk: stop here
                    for rest in chunks[number:]:
                        result.rejected += [
                            RejectedRow(**p.ref.model_dump(), reason=f"not sent: {exc}")
                            for p in rest
                        ]
                    result.error, result.error_status = str(exc), exc.status
                    break
                result.error, result.error_status = str(exc), exc.status
                continue
            result.counts.add(outcome.counts)
            for conflict in outcome.conflicts:
                result.conflicts.append(
                    conflict.model_copy(update={"indexes": [offset + i for i in conflict.indexes]})
                )
            found = attribute(outcome, refs)
            if outcome.aborted:
                result.chunks_failed += 1
                result.error = f"DHIS2 refused chunk {number}/{len(chunks)}: " + (
                    next(iter(found.rejected.values())).reason if found.rejected else "ERROR"
                )
            unattributed += len(found.unattributed)
            result.rejected += [found.rejected[i] for i in sorted(found.rejected)]
            for index, planned in enumerate(chunk):
                if index in found.rejected:
                    continue
                accepted_any = True
                if planned.from_engine:
                    accepted_engine += 1
        if unattributed:
            result.preflight.append(
                Finding(
                    level="warning",
                    code="conflicts_unattributed",
                    message=f"{unattributed} DHIS2 conflicts could not be matched to a row; "
                    "see the conflicts list.",
                )
            )
        result.delivered = plan.unchanged + (0 if dry_run else accepted_engine)
        failed = bool(result.rejected) or result.chunks_failed > 0 or unattributed > 0
        nothing_to_do = not rows and not plan.send
        if not failed:
            result.status = "success"
            result.error = None
        elif accepted_any or plan.unchanged > 0 or nothing_to_do:
            result.status = "warning"  # error stays set only when a whole chunk failed
        else:
            result.status = "error"
            result.error = result.error or (
                "DHIS2 accepted none of the values: see the rejected rows"
            )
