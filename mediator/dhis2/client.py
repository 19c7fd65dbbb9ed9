"""The DHIS2 client: the only module that speaks DHIS2's Web API (2.36 → 2.42).

One client per run; each method is one Web API call (or a call and the polling of
its job) and returns a typed model. What to send, and what an answer means for the
run, is decided in ``run.push`` and ``plan``. Every request goes through
``http.HttpClient``: retried within DHIS2's budget, recorded with credentials masked.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from pydantic import ValidationError

from mediator import __version__
from mediator.http.client import HttpClient, Peer, Recorder, RetryPolicy, json_or_none
from mediator.http.errors import (
    BadShape,
    BadStatus,
    CredentialsRefused,
    PeerError,
    TimedOut,
    Unreachable,
)
from mediator.http.transport import Transport
from mediator.settings.config import Dhis2Settings

from .answers import (
    Me,
    StoredValues,
    SystemInfo,
    ValuesUnreadable,
    failure,
    message_suffix,
    parse_server_date,
    parse_version,
    raise_for_auth,
    shape_problems,
    stored_values,
)
from .imports import AsyncJob, ImportResult, parse_async_job, parse_import
from .metadata import DATA_SET_FIELDS, DataSetMeta

__all__ = ["Dhis2Client", "StoredValues", "SystemInfo", "ValuesUnreadable", "parse_version"]

POLL_FIRST_SECONDS, POLL_MAX_SECONDS = 0.5, 5.0  # jobs of 2.36-2.40 start at once


def dhis2_peer(settings: Dhis2Settings) -> Peer:
    headers = {"User-Agent": f"cht-dhis2-mediator/{__version__}"}
    auth = None
    if settings.token is not None:
        headers["Authorization"] = f"ApiToken {settings.token.get_secret_value()}"
    elif settings.username and settings.password is not None:
        # sent up front: without credentials DHIS2 answers 302 to its login page
        auth = (settings.username, settings.password.get_secret_value())
    return Peer(
        name="DHIS2",
        base_url=settings.url,
        verify=settings.verify,
        timeout=settings.timeout,
        retry=RetryPolicy(
            attempts=settings.max_attempts,
            budget_seconds=settings.max_retry_seconds,
            base_seconds=1.0,
            cap_seconds=30.0,
        ),
        auth=auth,
        headers=headers,
        tls_hint="set DHIS2_CA_BUNDLE to the CA that signed it (or DHIS2_VERIFY_TLS=false, "
        "for development only)",
    )


@dataclass
class _Known:
    """What a run's client (and its forks) read from DHIS2 once, and whether it stopped."""

    info: SystemInfo | None = None
    me: Me | None = None
    meta: dict[str, DataSetMeta | None] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)
    exceptions: dict[tuple[str, str], frozenset[str] | None] = field(default_factory=dict)
    stopped: PeerError | None = None


class Dhis2Client:
    """Talks to one DHIS2 instance for the life of one run (metadata is cached)."""

    def __init__(
        self,
        settings: Dhis2Settings,
        recorder: Recorder | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: Transport | None = None,
    ) -> None:
        self.settings = settings
        self.http = HttpClient(
            dhis2_peer(settings), transport=transport, recorder=recorder, sleep=sleep
        )
        self.safe_url = self.http.peer.display_url
        self._configured_user = settings.username if settings.token is None else None
        self._known = _Known()

    def fork(self) -> Dhis2Client:
        """A client of the same DHIS2 for another thread (``run.push`` reads the next
        batch while this one posts), on a connection of its own: what one has read once
        the other knows, and a stop either meets stops both."""
        forked = copy.copy(self)  # the same settings, and the same _Known
        forked.http = self.http.fork()
        return forked

    @property
    def stopped(self) -> PeerError | None:
        """DHIS2 unreachable past the retry budget, or refusing the credentials: every
        later call would fail the same way, so the run stops (``run.pipeline``)."""
        return self._known.stopped

    @stopped.setter
    def stopped(self, cause: PeerError | None) -> None:
        self._known.stopped = cause

    def __enter__(self) -> Dhis2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- one request, and what DHIS2 means by its answer ------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        name: str,
        params: Sequence[tuple[str, str]] | None = None,
        body: Any = None,
        retry: RetryPolicy | None = None,
    ) -> requests.Response:
        """One request; refused credentials raise (and are never tried again: repeating
        them can lock the DHIS2 account), other statuses are the caller's to read."""
        if self.stopped is not None:
            raise self.stopped  # unreachable or refusing: asking again would only wait
        try:
            response = self.http.send(
                method, path, name=name, params=params, json_body=body, retry=retry
            )
            raise_for_auth(response, self.safe_url, name)
        except CredentialsRefused as exc:
            self.stopped = exc  # repeating refused credentials can lock the DHIS2 account
            raise
        except (Unreachable, TimedOut) as exc:
            self.stopped = exc
            raise
        return response

    def _fail(self, response: requests.Response, what: str) -> PeerError:
        version = self._known.info.version if self._known.info is not None else None
        return failure(response, what, self.http.where_of(response.url or ""), version)

    # -- the server ---------------------------------------------------------------------

    def system_info(self) -> SystemInfo:
        """``GET /api/system/info``: version and server date, read once per client."""
        if self._known.info is not None:
            return self._known.info
        response = self._send("GET", "/api/system/info", name="DHIS2 system info")
        body = json_or_none(response)
        if response.status_code != 200:
            raise self._fail(response, "the system info request")
        if body is None and response.text.strip():
            raise self._fail(response, "the system info request")  # a web page: NotJson
        if not isinstance(body, dict) or not isinstance(body.get("version"), str):
            raise BadShape(
                "DHIS2",
                f"DHIS2 at {self.safe_url} answered GET /api/system/info with JSON that has no "
                "version: is DHIS2_URL the base URL of DHIS2 (not another service)?",
            )
        try:
            major, minor, patch = parse_version(body["version"])
        except ValueError as exc:
            raise BadShape("DHIS2", f"DHIS2 at {self.safe_url}: {exc}") from None
        self._known.info = SystemInfo(
            version=body["version"],
            major=major,
            minor=minor,
            patch=patch,
            server_date=parse_server_date(body.get("serverDate")),
            calendar=body.get("calendar") if isinstance(body.get("calendar"), str) else None,
            revision=body.get("revision") if isinstance(body.get("revision"), str) else None,
        )
        return self._known.info

    def me(self) -> Me:
        """``GET /api/me``: who the mediator writes as (``storedBy`` of what it pushed) and
        its authorities, read once. 2.36/2.37 name the user only in ``userCredentials``,
        2.42 only at the top level (2.36.13.2 User.java:300; 2.41.0 MeDto.java:61-101)."""
        if self._known.me is None:
            response = self._send(
                "GET",
                "/api/me",
                name="DHIS2 current user",
                params=[("fields", "username,userCredentials[username],authorities")],
            )
            body = json_or_none(response) if response.status_code == 200 else None
            body = body if isinstance(body, dict) else {}
            name = body.get("username") or (body.get("userCredentials") or {}).get("username")
            authorities = body.get("authorities")
            self._known.me = Me(
                username=str(name) if name else self._configured_user,
                authorities=frozenset(authorities) if isinstance(authorities, list) else None,
            )
        return self._known.me

    def username(self) -> str | None:
        """The DHIS2 user the mediator writes as: the configured name with Basic auth,
        a token's owner as ``/api/me`` says."""
        return self._configured_user or self.me().username

    def strict_org_units(self) -> bool | None:
        """The system setting ``keyDataImportStrictOrganisationUnits`` (values at org units
        not assigned to the data set are refused, E7636), read once; None when DHIS2 does
        not say (``GET /api/systemSettings/{key}``: ``{key: value}``)."""
        key = "keyDataImportStrictOrganisationUnits"
        if key not in self._known.settings:
            response = self._send("GET", f"/api/systemSettings/{key}", name=f"DHIS2 {key}")
            body = json_or_none(response) if response.status_code == 200 else None
            value = body.get(key) if isinstance(body, dict) else None
            if isinstance(value, str):
                value = {"true": True, "false": False}.get(value.lower())
            self._known.settings[key] = value if isinstance(value, bool) else None
        found = self._known.settings[key]
        return found if isinstance(found, bool) else None

    def lock_exceptions(self, data_set: str, period: str) -> frozenset[str] | None:
        """Org units with a lock exception for (data set, period): an expired period is
        open there (``GET /api/lockExceptions``; 2.36.13.2 DVSS:1609-1613, 2.42.5.2
        VAL:850-856). None when DHIS2 does not let this user read them."""
        key = (data_set, period)
        if key not in self._known.exceptions:
            response = self._send(
                "GET",
                "/api/lockExceptions",
                name=f"DHIS2 lock exceptions {data_set} {period}",
                params=[
                    ("filter", f"dataSet.id:eq:{data_set}"),
                    ("filter", f"period.id:eq:{period}"),
                    ("fields", "organisationUnit[id],dataSet[id],period[id]"),
                    ("paging", "false"),
                ],
            )
            body = json_or_none(response) if response.status_code == 200 else None
            rows = body.get("lockExceptions") if isinstance(body, dict) else None
            self._known.exceptions[key] = (
                frozenset(
                    str((row.get("organisationUnit") or {}).get("id"))
                    for row in rows
                    if isinstance(row, dict)
                    # the filters again, for a server that ignores them
                    and (row.get("dataSet") or {}).get("id", data_set) == data_set
                    and (row.get("period") or {}).get("id", period) == period
                )
                if isinstance(rows, list)
                else None
            )
        return self._known.exceptions[key]

    # -- metadata -----------------------------------------------------------------------

    def period_type(self, data_set: str) -> str | None:
        """The data set's DHIS2 period type (None when DHIS2 has no such data set)."""
        meta = self.data_set(data_set)
        return meta.periodType if meta else None

    def data_set(self, data_set: str) -> DataSetMeta | None:
        """``GET /api/dataSets/{id}?fields=…``: the data set as preflight needs it (one
        request, cached); None when DHIS2 has no such data set (or hides it)."""
        if data_set in self._known.meta:
            return self._known.meta[data_set]
        response = self._send(
            "GET",
            f"/api/dataSets/{quote(data_set, safe='')}",
            name=f"DHIS2 data set {data_set} metadata",
            params=[("fields", DATA_SET_FIELDS)],
        )
        if response.status_code == 404:
            self._known.meta[data_set] = None
            return None
        body = json_or_none(response)
        if response.status_code != 200 or not isinstance(body, dict):
            raise self._fail(response, f"the metadata request for data set {data_set}")
        try:
            meta = DataSetMeta.model_validate(body)
        except ValidationError as exc:
            version = (
                self._known.info.version if self._known.info is not None else "(version unknown)"
            )
            raise BadShape(
                "DHIS2",
                f"DHIS2 {version} at {self.safe_url} answered GET /api/dataSets/{data_set} "
                f"(the data set's metadata) with JSON in a shape DHIS2 does not send: "
                f"{shape_problems(exc)}",
            ) from None
        self._known.meta[data_set] = meta
        return meta

    # -- data values --------------------------------------------------------------------

    def read_values(
        self,
        data_set: str,
        period: str,
        org_units: Sequence[str],
        default_coc: str,
        name: str,
        retry: RetryPolicy | None = None,
    ) -> StoredValues:
        """``GET /api/dataValueSets?dataSet=&period=&orgUnit=…``: the live values DHIS2
        holds there, and who stored each. Raises ``ValuesUnreadable`` when DHIS2 refuses
        to say (400/404/409), so the caller can ask org unit by org unit."""
        params = [("dataSet", data_set), ("period", period)] + [("orgUnit", ou) for ou in org_units]
        response = self._send("GET", "/api/dataValueSets", name=name, params=params, retry=retry)
        body = json_or_none(response)
        if response.status_code in (400, 404, 409):
            raise ValuesUnreadable(
                "DHIS2",
                f"DHIS2 refused to say what it holds for {', '.join(org_units)} "
                f"(HTTP {response.status_code}{message_suffix(response)})",
                status=response.status_code,
            )
        if response.status_code != 200 or not isinstance(body, dict):
            raise self._fail(response, "the read of existing data values")
        return stored_values(body, period, set(org_units), default_coc)

    def post_values(
        self, data_set: str, payloads: list[dict[str, str]], *, dry_run: bool, name: str
    ) -> ImportResult:
        """``POST /api/dataValueSets`` (CREATE_AND_UPDATE), a 200 or 409 import summary
        bare or wrapped; with ``DHIS2_ASYNC_IMPORT``, the job's summary. The body::

            {"dataSet": "VMuFODsyWaO", "dataValues": [{"dataElement": …, "value": "12"}]}
        """
        params = [
            ("importStrategy", "CREATE_AND_UPDATE"),
            ("dryRun", "true" if dry_run else "false"),
        ]
        if self.settings.async_import:
            params.append(("async", "true"))
        body = {"dataSet": data_set, "dataValues": payloads}
        response = self._send("POST", "/api/dataValueSets", name=name, params=params, body=body)
        parsed = json_or_none(response)
        if response.status_code in (200, 409):
            result = parse_import(parsed, response.status_code)
            if result is not None:
                return result
            job = parse_async_job(parsed) if self.settings.async_import else None
            if job is not None and response.status_code == 200:
                return _await_job(self, job, name)
        raise self._fail(response, "the data value import")

    def register_completeness(
        self, data_set: str, period: str, org_units: list[str], name: str
    ) -> ImportResult:
        """``POST /api/completeDataSetRegistrations`` for these org units."""
        body = {
            "completeDataSetRegistrations": [
                {"dataSet": data_set, "period": period, "organisationUnit": ou, "completed": True}
                for ou in org_units
            ]
        }
        response = self._send("POST", "/api/completeDataSetRegistrations", name=name, body=body)
        result = (
            parse_import(json_or_none(response), response.status_code)
            if response.status_code in (200, 409)
            else None
        )
        if result is None:
            raise self._fail(response, "the completeness registration")
        return result


# -- async import jobs (DHIS2_ASYNC_IMPORT) --------------------------------------------


def _poll_pause(client: Dhis2Client, polls: int) -> float:
    """Sleep 0.5, 1, 2, 4, 5, 5 … s: quick for small jobs, gentle on long ones."""
    pause = min(POLL_MAX_SECONDS, POLL_FIRST_SECONDS * float(2**polls))
    client.http.sleep(pause)
    return pause


def _await_job(client: Dhis2Client, job: AsyncJob, name: str) -> ImportResult:
    """Poll the job's notifications until one says completed, then read its summary
    (``/api/system/tasks``, ``/api/system/taskSummaries``)."""
    budget = max(client.settings.timeout, 60.0)
    waited = 0.0
    polls = 0
    job_id = quote(job.id, safe="")
    while True:
        response = client._send(
            "GET", f"/api/system/tasks/DATAVALUE_IMPORT/{job_id}", name=f"{name} job status"
        )
        notes = json_or_none(response)
        if response.status_code != 200:
            raise client._fail(response, f"the status request of import job {job.id}")
        if isinstance(notes, list) and any(
            isinstance(n, dict) and n.get("completed") is True for n in notes
        ):
            break
        if waited >= budget:
            raise BadStatus(
                "DHIS2",
                f"DHIS2 at {client.safe_url}: import job {job.id} did not finish within "
                f"{budget:.0f} s; check Data Administration → Jobs in DHIS2",
            )
        waited += _poll_pause(client, polls)
        polls += 1
    while True:
        response = client._send(
            "GET",
            f"/api/system/taskSummaries/DATAVALUE_IMPORT/{job_id}",
            name=f"{name} job summary",
        )
        if response.status_code != 200:
            raise client._fail(response, f"the summary request of import job {job.id}")
        result = parse_import(json_or_none(response), 200)
        if result is not None:
            return result
        if waited >= budget:  # 200 with no content until the summary exists
            raise BadStatus(
                "DHIS2",
                f"DHIS2 at {client.safe_url}: import job {job.id} finished but left no "
                f"summary within {budget:.0f} s",
            )
        waited += _poll_pause(client, polls)
        polls += 1
