"""The CHT reader: the only module that speaks to CHT's CouchDB API.

It does the reads CHT's own export does (cht-export.md §2.3), but pages the
month's target docs instead of loading them in one response, and batches the
owner look-ups.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import requests

from .config import ChtSettings
from .models import Exchange, utcnow
from .periods import Month

VIEW_PATH = "_design/medic-admin/_view/contacts_by_dhis_orgunit"
RETRY_ATTEMPTS = 3
RETRY_BASE_SECONDS = 0.5


class ChtError(Exception):
    """CHT could not be read; the message names the URL, never the password."""


class ChtAuthError(ChtError):
    pass


class ChtReader:
    def __init__(
        self,
        settings: ChtSettings,
        recorder: Callable[[Exchange], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._record = recorder or (lambda _exchange: None)
        self._sleep = sleep
        self._session = self._new_session()
        self._counting = threading.Lock()  # range reads count from their helper thread
        self.requests_made = 0

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        if self.settings.username and self.settings.password:
            session.auth = (self.settings.username, self.settings.password.get_secret_value())
        session.verify = self.settings.verify
        session.headers["Accept"] = "application/json"
        return session

    @property
    def db_url(self) -> str:
        return f"{self.settings.url}/{quote(self.settings.db, safe='')}"

    def close(self) -> None:
        self._session.close()

    # -- HTTP -------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        what: str,
        missing_ok: bool = False,
        session: requests.Session | None = None,
    ) -> Any:
        """One JSON request with a bounded retry on connection errors and 5xx.

        Every call here is a read (POST _all_docs included), so retrying is safe.
        """
        last_error = ""
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            with self._counting:
                self.requests_made += 1
            try:
                response = (session or self._session).request(
                    method,
                    url,
                    params=params,
                    json=body,
                    timeout=self.settings.timeout,
                    allow_redirects=False,
                    # per request: requests lets REQUESTS_CA_BUNDLE override session.verify
                    verify=self.settings.verify,
                )
            except requests.exceptions.SSLError:
                # a certificate problem does not go away by retrying
                raise ChtError(
                    f"TLS certificate verification failed for CHT at {self.settings.url} while "
                    f"reading {what}: set CHT_CA_BUNDLE to the CA that signed it "
                    "(or CHT_VERIFY_TLS=false, for development only)"
                ) from None
            except requests.RequestException as exc:
                last_error = f"{type(exc).__name__}"
                if attempt < RETRY_ATTEMPTS:
                    self._sleep(RETRY_BASE_SECONDS * 2 ** (attempt - 1))
                    continue
                raise ChtError(
                    f"CHT at {self.settings.url} is unreachable while reading {what} "
                    f"({last_error} after {attempt} attempts)"
                ) from None
            if response.status_code in (401, 403):
                user = self.settings.username or "(no user)"
                raise ChtAuthError(
                    f"CHT at {self.settings.url} refused the credentials of user {user} "
                    f"while reading {what} (HTTP {response.status_code})"
                )
            if response.status_code == 404 and missing_ok:
                return None
            if response.status_code >= 500 and attempt < RETRY_ATTEMPTS:
                last_error = f"HTTP {response.status_code}"
                self._sleep(RETRY_BASE_SECONDS * 2 ** (attempt - 1))
                continue
            if response.status_code != 200:
                raise ChtError(
                    f"CHT at {self.settings.url} answered HTTP {response.status_code} while "
                    f"reading {what}: {response.text[:200]}"
                )
            try:
                body = response.json()
            except ValueError:
                raise ChtError(
                    f"CHT at {self.settings.url} sent a body that is not JSON while reading {what}"
                ) from None
            self._check_shape(method, url, body, what)
            return body
        raise ChtError(f"CHT at {self.settings.url} failed while reading {what}: {last_error}")

    def _check_shape(self, method: str, url: str, body: Any, what: str) -> None:
        """CouchDB list answers (``_all_docs``, views) must be ``{"rows": [{...}]}``, and a
        range read's rows must name their ``id``: anything else is a CHT error, never a
        crash half-way through the totals."""
        path = url.split("?", 1)[0]
        if not (path.endswith("/_all_docs") or "/_view/" in path):
            return
        rows = body.get("rows") if isinstance(body, dict) else None
        bad = not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows)
        if not bad and method == "GET" and rows:
            bad = not all(isinstance(row.get("id"), str) for row in rows)
        if bad:
            raise ChtError(
                f"CHT at {self.settings.url} answered {what} with an unexpected shape "
                '(expected {"rows": [...]} with an id per row): is this CouchDB?'
            )

    def _note(self, name: str, method: str, path: str, query: str, summary: dict[str, Any]) -> None:
        now = utcnow()
        self._record(
            Exchange(
                name=name,
                method=method,
                url=f"{self.settings.url}{path}",
                path=path,
                querystring=query,
                started=now,
                status=200,
                response_body=json.dumps(summary),
                finished=now,
            )
        )

    # -- reads ------------------------------------------------------------------

    def app_settings(self) -> dict[str, Any]:
        """The ``settings`` doc of the medic db; ``/api/v1/settings`` if it can't be read."""
        doc = None
        try:
            doc = self._request(
                "GET", f"{self.db_url}/settings", what="the settings doc", missing_ok=True
            )
        except ChtAuthError:
            doc = None  # an online CHT user may read the API but not the doc
        if isinstance(doc, dict) and isinstance(doc.get("settings"), dict):
            self._note(
                "CHT app settings",
                "GET",
                f"/{self.settings.db}/settings",
                "",
                {"source": "settings doc"},
            )
            settings: dict[str, Any] = doc["settings"]
            return settings
        api = self._request(
            "GET", f"{self.settings.url}/api/v1/settings", what="/api/v1/settings", missing_ok=True
        )
        if not isinstance(api, dict):
            raise ChtError(
                f"CHT at {self.settings.url} has no readable app settings: neither "
                f"/{self.settings.db}/settings nor /api/v1/settings answered"
            )
        self._note(
            "CHT app settings", "GET", "/api/v1/settings", "", {"source": "/api/v1/settings"}
        )
        return api

    def places(self, org_unit: str | None = None) -> list[dict[str, Any]]:
        """Contacts that carry ``dhis`` (one entry per contact, in view order)."""
        params = {"include_docs": "true"}
        if org_unit is not None:
            params["key"] = json.dumps(org_unit)
        body = self._request(
            "GET",
            f"{self.db_url}/{VIEW_PATH}",
            params=params,
            what="the medic-admin/contacts_by_dhis_orgunit view",
            missing_ok=True,
        )
        if body is None:
            raise ChtError(
                f"CHT at {self.settings.url} has no medic-admin/contacts_by_dhis_orgunit view "
                f"in database {self.settings.db!r}: is this a CHT medic database?"
            )
        seen: dict[str, dict[str, Any]] = {}
        for row in body.get("rows", []):
            doc = row.get("doc")
            if isinstance(doc, dict) and doc.get("_id") and doc["_id"] not in seen:
                seen[doc["_id"]] = doc
        self._note(
            "CHT places with DHIS2 org units",
            "GET",
            f"/{self.settings.db}/{VIEW_PATH}",
            "include_docs=true" + (f"&key={org_unit}" if org_unit else ""),
            {"rows": len(body.get("rows", [])), "contacts": len(seen)},
        )
        return list(seen.values())

    def target_pages(self, month: Month) -> Iterator[list[Any]]:
        """The month's target docs, ``page_size`` at a time (never the month at once)."""
        return self._id_range_pages(f"target~{month.tag}~", f"CHT target docs {month.tag}")

    def user_contacts(self) -> dict[str, str]:
        """CHT users and their contact: ``user-settings`` docs (username -> contact id)."""
        users: dict[str, str] = {}
        for page in self._id_range_pages("org.couchdb.user:", "CHT user-settings"):
            for doc in page:
                if (
                    isinstance(doc, dict)
                    and doc.get("type") == "user-settings"
                    and isinstance(doc.get("name"), str)
                    and isinstance(doc.get("contact_id"), str)
                ):
                    users[doc["name"]] = doc["contact_id"]
        return users

    def _id_range_pages(self, prefix: str, name: str) -> Iterator[list[Any]]:
        """Docs whose id starts with ``prefix``, paged through ``_all_docs``.

        The next page is read (by a helper thread, on a session of its own) while the
        caller works on this one, so CHT's time hides the mediator's own; no more than
        two pages are held at once. Errors surface where the page is asked for.
        """
        end = json.dumps(prefix + "\ufff0")
        size = self.settings.page_size
        pages = docs = 0
        first = last = None
        session = self._new_session()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cht-pages")

        def read(start: str) -> Any:
            return self._request(
                "GET",
                f"{self.db_url}/_all_docs",
                params={
                    "startkey": start,
                    "endkey": end,
                    "include_docs": "true",
                    "limit": str(size + 1),
                },
                what=name,
                session=session,
            )

        try:
            ahead: Future[Any] | None = pool.submit(read, json.dumps(prefix))
            while ahead is not None:
                rows = ahead.result().get("rows", [])
                page = rows[:size]
                ahead = (
                    pool.submit(read, json.dumps(rows[size]["id"])) if len(rows) > size else None
                )
                if page:
                    pages += 1
                    docs += len(page)
                    first = first or page[0].get("id")
                    last = page[-1].get("id")
                    yield [row.get("doc") for row in page]
        finally:
            # a caller that stops early must not wait for a page it will never use
            pool.shutdown(wait=False, cancel_futures=True)
            session.close()
        self._note(
            name,
            "GET",
            f"/{self.settings.db}/_all_docs",
            f"startkey={prefix}&endkey={prefix}\\ufff0&include_docs=true&limit={size + 1}",
            {"pages": pages, "docs": docs, "page_size": size, "first_id": first, "last_id": last},
        )

    def docs_by_id(self, ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """``POST _all_docs`` with ``keys`` in batches; missing or deleted ids map to None."""
        found: dict[str, dict[str, Any] | None] = {}
        batch = self.settings.owner_batch
        for start in range(0, len(ids), batch):
            keys = ids[start : start + batch]
            body = self._request(
                "POST",
                f"{self.db_url}/_all_docs",
                params={"include_docs": "true"},
                body={"keys": keys},
                what=f"{len(keys)} target owners",
            )
            for row in body.get("rows", []):
                key = row.get("key")
                doc = row.get("doc")
                if isinstance(key, str):
                    found[key] = doc if isinstance(doc, dict) else None
        for ident in ids:
            found.setdefault(ident, None)
        return found
