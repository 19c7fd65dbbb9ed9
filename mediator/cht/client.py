"""The CHT reader: the only module that speaks to CHT's API (CouchDB's, through CHT).

It does the reads CHT's own export does (cht-core ``api/src/services/export/dhis.js``),
but pages the month's target docs instead of loading them in one response, and batches
the owner look-ups. Every request goes through ``http.HttpClient`` (retries, TLS,
recording); what an answer means for CHT is decided here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from orjson import loads as decode_json

from mediator.http.client import (
    HttpClient,
    Peer,
    Recorder,
    RetryPolicy,
    detail_suffix,
    without_userinfo,
)
from mediator.http.errors import (
    BadBody,
    BadShape,
    BadStatus,
    CredentialsRefused,
    Forbidden,
    NotJson,
    PeerError,
    Redirected,
)
from mediator.http.transport import Transport
from mediator.model.periods import Month
from mediator.settings.config import ChtSettings

from .answers import bulk_get_doc, check_shape, forbidden_message, url_hint

VIEW_PATH = "_design/medic-admin/_view/contacts_by_dhis_orgunit"
CHANGES_IDS_PER_REQUEST = 1000  # CouchDB's doc-id lookup threshold (changed_since)
# Every CHT call is a read (POST _all_docs, _bulk_get and _changes included): safe to retry.
CHT_RETRY = RetryPolicy(attempts=3, base_seconds=0.5, budget_seconds=30.0)

ChtError = PeerError  # anything CHT did not answer as CouchDB's API does


def cht_peer(settings: ChtSettings) -> Peer:
    auth = None
    if settings.username and settings.password:
        auth = (settings.username, settings.password.get_secret_value())
    return Peer(
        name="CHT",
        base_url=settings.url,
        verify=settings.verify,
        timeout=settings.timeout,
        retry=CHT_RETRY,
        auth=auth,
        tls_hint="set CHT_CA_BUNDLE to the CA that signed it (or CHT_VERIFY_TLS=false, for "
        "development only)",
        record_bodies=False,  # target pages are megabytes; what was read is in the report
    )


class ChtReader:
    def __init__(
        self,
        settings: ChtSettings,
        recorder: Recorder | None = None,
        sleep: Callable[[float], None] | None = None,
        transport: Transport | None = None,
        http: HttpClient | None = None,
    ) -> None:
        self.settings = settings
        self.http = http or HttpClient(
            cht_peer(settings), transport=transport, recorder=recorder, sleep=sleep or time.sleep
        )
        self._bulk_get_ok = True

    def fork(self) -> ChtReader:
        """A reader on a connection of its own, for another thread."""
        forked = ChtReader(self.settings, http=self.http.fork())
        forked._bulk_get_ok = self._bulk_get_ok
        return forked

    @property
    def db_url(self) -> str:
        return f"{self.settings.url}/{quote(self.settings.db, safe='')}"

    def close(self) -> None:
        self.http.close()

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
        absent: tuple[int, ...] = (),
        http: HttpClient | None = None,
    ) -> Any:
        """One JSON request, its body decoded and its shape checked. ``missing_ok``
        (404) and ``absent`` statuses answer None; every other failure raises."""
        client = http or self.http
        response = client.send(method, url, name=f"reading {what}", params=params, json_body=body)
        status = response.status_code
        if status == 401:
            user = self.settings.username or "(no user)"
            raise CredentialsRefused(
                "CHT",
                f"CHT at {self.settings.url} refused the credentials of user {user} "
                f"while reading {what} (HTTP 401): check CHT_USERNAME and CHT_PASSWORD",
                status=401,
            )
        if status == 403:
            raise Forbidden("CHT", forbidden_message(self.settings, what, client), status=403)
        if (status == 404 and missing_ok) or status in absent:
            return None
        if 300 <= status < 400:
            location = without_userinfo(response.headers.get("Location", ""))
            raise Redirected(
                "CHT",
                f"CHT at {self.settings.url} redirected ({status}) to "
                f"{location or 'another address'} while reading {what}; redirects are not "
                "followed: check CHT_URL (http or https, the instance's address)",
                status=status,
            )
        if status != 200:
            raise BadStatus(
                "CHT",
                f"CHT at {self.settings.url} answered HTTP {status} while reading {what}"
                f"{detail_suffix(response)}",
                status=status,
            )
        try:
            decoded = decode_json(response.content)  # orjson: 3x json's speed (benchmarks/)
        except ValueError:
            raise NotJson(
                "CHT",
                f"CHT at {self.settings.url} sent a body that is not JSON while reading {what}",
            ) from None
        check_shape(self.settings, method, url, decoded, what)
        return decoded

    def app_settings(self) -> dict[str, Any]:
        """The ``settings`` doc of the medic db; ``/api/v1/settings`` if it can't be read."""
        doc = None
        try:
            doc = self._request(
                "GET", f"{self.db_url}/settings", what="the settings doc", missing_ok=True
            )
        except Forbidden:
            doc = None  # an online CHT user may read the API but not the doc
        if isinstance(doc, dict) and isinstance(doc.get("settings"), dict):
            settings: dict[str, Any] = doc["settings"]
            return settings
        api = self._request(
            "GET", f"{self.settings.url}/api/v1/settings", what="/api/v1/settings", missing_ok=True
        )
        if not isinstance(api, dict):
            raise BadBody(
                "CHT",
                f"CHT at {self.settings.url} has no readable app settings: neither "
                f"/{self.settings.db}/settings nor /api/v1/settings answered"
                + url_hint(self.settings),
            )
        return api

    def places(self, org_unit: str | None = None) -> list[dict[str, Any]]:
        """Contacts that carry ``dhis`` (one entry per contact, in view order)."""
        rows = self._view_rows(org_unit, docs=True)
        seen: dict[str, dict[str, Any]] = {}
        for row in rows:
            doc = row.get("doc")
            if isinstance(doc, dict) and doc.get("_id") and doc["_id"] not in seen:
                seen[doc["_id"]] = doc
        return list(seen.values())

    def place_ids(self, org_unit: str | None = None) -> list[str]:
        """The ids of the contacts that carry ``dhis``, in view order, without their docs:
        a run that knows the docs already (``cht.cache``) reads only this."""
        rows = self._view_rows(org_unit, docs=False)
        return list(dict.fromkeys(r["id"] for r in rows if isinstance(r.get("id"), str)))

    def _view_rows(self, org_unit: str | None, *, docs: bool) -> list[dict[str, Any]]:
        params = {"include_docs": "true"} if docs else {}
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
            raise BadStatus(
                "CHT",
                f"CHT at {self.settings.url} has no medic-admin/contacts_by_dhis_orgunit view "
                f"in database {self.settings.db!r}: is this a CHT medic database?"
                + url_hint(self.settings),
                status=404,
            )
        rows: list[dict[str, Any]] = body.get("rows", [])
        return rows

    def target_pages(self, month: Month) -> PageStream:
        """The month's target docs, ``page_size`` at a time (never the month at once).
        The first page is asked for at once, while the caller reads what else it needs."""
        return PageStream(self, f"target~{month.tag}~", f"target docs {month.tag}", docs=True)

    def user_rows(self, *, docs: bool) -> PageStream:
        """``_all_docs`` rows of the ``org.couchdb.user:`` range (user-settings docs): with
        their docs, or ids only (a later run: to find new and deleted users)."""
        return PageStream(self, "org.couchdb.user:", "user-settings docs", docs=docs, rows=True)

    def docs_by_id(self, ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """Docs by id, ``owner_batch`` at a time; missing or deleted ids map to None.

        ``POST _bulk_get`` (CouchDB 2.0+) is what CouchDB's own replicator reads docs
        with; on pouchdb-server it is about twice as fast as ``POST _all_docs`` with
        ``keys`` (what CHT's export does), which stays for a server without it.
        """
        found: dict[str, dict[str, Any] | None] = {}
        batch = self.settings.owner_batch
        for start in range(0, len(ids), batch):
            keys = ids[start : start + batch]
            if not (self._bulk_get_ok and self._bulk_get(keys, found)):
                self._bulk_get_ok = False
                self._all_docs_keys(keys, found)
        for ident in ids:
            found.setdefault(ident, None)
        return found

    def _bulk_get(self, keys: list[str], found: dict[str, dict[str, Any] | None]) -> bool:
        body = self._request(
            "POST",
            f"{self.db_url}/_bulk_get",
            body={"docs": [{"id": key} for key in keys]},
            what=f"{len(keys)} docs by id (_bulk_get)",
            absent=(400, 404, 405, 501),  # a server or proxy without _bulk_get
        )
        if body is None:
            return False
        for result in body["results"]:
            found[result["id"]] = bulk_get_doc(self.settings, result)
        return True

    def _all_docs_keys(self, keys: list[str], found: dict[str, dict[str, Any] | None]) -> None:
        body = self._request(
            "POST",
            f"{self.db_url}/_all_docs",
            params={"include_docs": "true"},
            body={"keys": keys},
            what=f"{len(keys)} docs by id (_all_docs keys)",
        )
        for row in body.get("rows", []):
            key = row.get("key")
            doc = row.get("doc")
            if isinstance(key, str):
                found[key] = doc if isinstance(doc, dict) else None

    def translations(self, locale: str) -> dict[str, str]:
        """CHT's translations for ``locale``, falling back to English, as CHT's own
        ``config.translate`` looks a key up (cht-core ``api/src/config.js``): the
        ``messages-{code}`` docs, ``custom`` over ``generic`` (or the older ``values``).
        Read only for ``preview --human-readable``; a doc CHT does not have gives
        nothing, and the key is shown, as CHT shows it."""
        wanted = list(dict.fromkeys([f"messages-{locale}", "messages-en"]))
        found = self.docs_by_id(wanted)
        merged: dict[str, str] = {}
        for ident in reversed(wanted):  # English first, the locale over it
            doc = found.get(ident) or {}
            generic, older = doc.get("generic"), doc.get("values")
            values: dict[str, Any] = {}
            if isinstance(generic, dict):
                values = {**generic, **(doc.get("custom") or {})}
            elif isinstance(older, dict):
                values = older
            merged.update({k: v for k, v in values.items() if isinstance(v, str) and v})
        return merged

    # -- what changed since the last run (cht_cache) ---------------------------------

    def db_info(self) -> dict[str, Any]:
        """``GET /{db}/``: its ``update_seq`` (opaque in CouchDB 2+, a number in PouchDB)
        and ``instance_start_time``. With the slash: CHT's API answers ``GET /medic``
        with a redirect to ``/medic/`` for every user (cht-core 5.2.0
        ``api/src/routing.js`` lines 1057-1062), and redirects are never followed."""
        body = self._request("GET", f"{self.db_url}/", what="the database info")
        if not isinstance(body, dict) or body.get("update_seq") is None:
            raise BadShape(
                "CHT",
                f"CHT at {self.settings.url} gave no update_seq for database "
                f"{self.settings.db!r}: is this CouchDB?",
            )
        return body

    def missing_revs(self, revs: dict[str, str]) -> set[str] | None:
        """Which of these (id, rev) pairs the database does not hold: ``POST _revs_diff``,
        the replicator's own question. None when the server does not answer it."""
        body = self._request(
            "POST",
            f"{self.db_url}/_revs_diff",
            body={ident: [rev] for ident, rev in revs.items()},
            what="the revisions kept since the last run",
            absent=(400, 404, 405, 501),
        )
        if not isinstance(body, dict):
            return None
        return {
            ident for ident, diff in body.items() if isinstance(diff, dict) and diff.get("missing")
        }

    def changed_since(self, since: Any, ids: list[str]) -> tuple[set[str], Any] | None:
        """Which of ``ids`` changed or were deleted after ``since``, and the sequence to
        ask from next time (``POST _changes?filter=_doc_ids``); None when the server does
        not take ``since`` (the database was recreated or restored). Asked 1000 ids at a
        time: above CouchDB's ``changes_doc_ids_optimization_threshold`` every shard scans
        its feed since ``since`` first (apache/couchdb 3.5.0 ``couch_changes.erl`` lines
        37, 515-516), which can outlast the read timeout. The first batch's sequence is
        kept: a change made meanwhile shows again next run, never is missed."""
        changed: set[str] = set()
        last: Any = None if ids else since
        for start in range(0, len(ids), CHANGES_IDS_PER_REQUEST):
            batch = ids[start : start + CHANGES_IDS_PER_REQUEST]
            body = self._request(
                "POST",
                f"{self.db_url}/_changes",
                params={"filter": "_doc_ids", "since": str(since)},
                body={"doc_ids": batch},
                what="the changes since the last run",
                absent=(400, 404),
            )
            if not isinstance(body, dict) or "last_seq" not in body:
                return None
            changed.update(r["id"] for r in body["results"])
            last = last if last is not None else body["last_seq"]
        return changed, last


class PageStream:
    """Rows whose id starts with ``prefix``, paged through ``_all_docs``, with their
    docs (``docs``) or not; each page is its docs, or with ``rows`` its rows.

    The next page is read (by a helper thread, on a connection of its own) while the
    caller works on this one, so CHT's time hides the mediator's own; the first is
    asked for as soon as the stream is made, and the second as soon as the first is
    read: a caller busy elsewhere first (a cold run's places) finds two pages ready,
    not one. No more than two pages are held at once.
    ``on_page``, when set, is called with each page in order as soon as it is read (on
    the helper thread), or else just before the page is handed over: the caller can
    ask CHT for what the page needs (its owners) while it still works on the last one.
    Errors surface where the page is asked for; ``close`` (or the end of the range)
    lets the helper go, and a caller that stops early never waits for a page.
    """

    def __init__(
        self, reader: ChtReader, prefix: str, name: str, *, docs: bool, rows: bool = False
    ) -> None:
        self.reader, self.name, self.docs, self.rows = reader, name, docs, rows
        self.end = json.dumps(prefix + "\ufff0")
        self.size = reader.settings.page_size
        self.on_page: Callable[[list[Any]], None] | None = None
        self.http = reader.http.fork()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cht-pages")
        self.ahead: Future[tuple[list[Any], str | None, bool]] | None = self.pool.submit(
            self._read, json.dumps(prefix)
        )
        # the second page, read right after the first (the pool has one worker);
        # None once handed over
        self.second: Future[tuple[list[Any], str | None, bool]] | None = self.pool.submit(
            self._read_second, self.ahead
        )

    def _read_second(
        self, first: Future[tuple[list[Any], str | None, bool]]
    ) -> tuple[list[Any], str | None, bool]:
        """The page after the ``first``, if there is one (an empty page when not, or when
        the first failed: its error surfaces where the first is asked for). ``on_page``
        sees it here only if it saw the first: pages reach it in order."""
        if first.exception() is not None:
            return [], None, True
        _, after, seen = first.result()
        return self._read(after, hook=seen) if after else ([], None, True)

    def _read(self, start: str, *, hook: bool = True) -> tuple[list[Any], str | None, bool]:
        """One page, where the next one starts (None: this is the last), and whether
        ``on_page`` saw it (``hook``: may see it now)."""
        include = {"include_docs": "true"} if self.docs else {}
        params = {"startkey": start, "endkey": self.end, **include, "limit": str(self.size + 1)}
        body = self.reader._request(
            "GET", f"{self.reader.db_url}/_all_docs", params=params, what=self.name, http=self.http
        )
        rows = body.get("rows", [])
        after = json.dumps(rows[-1]["id"]) if len(rows) > self.size else None
        page = rows[: self.size] if self.rows else [row.get("doc") for row in rows[: self.size]]
        on_page = self.on_page if hook else None
        if on_page is not None and page:
            on_page(page)
        return page, after, on_page is not None

    def __iter__(self) -> Iterator[list[Any]]:
        try:
            while self.ahead is not None:
                page, after, seen = self.ahead.result()
                if page and not seen and self.on_page is not None:
                    self.on_page(page)  # before the next page is asked for: pages stay in order
                if self.second is not None:  # the second page: asked for already
                    self.ahead, self.second = (self.second if after else None), None
                else:
                    self.ahead = self.pool.submit(self._read, after) if after else None
                if page:
                    yield page
        finally:
            self.close()

    def close(self) -> None:
        self.ahead = self.second = None
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.http.close()


# -- reads ------------------------------------------------------------------
