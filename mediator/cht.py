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
from orjson import loads as decode_json

from .config import ChtSettings
from .http import body_detail, without_userinfo
from .models import Exchange, utcnow
from .periods import Month

VIEW_PATH = "_design/medic-admin/_view/contacts_by_dhis_orgunit"
RETRY_ATTEMPTS = 3
RETRY_BASE_SECONDS = 0.5
CHANGES_IDS_PER_REQUEST = 1000  # CouchDB's doc-id lookup threshold (changed_since)


class ChtError(Exception):
    """CHT could not be read; the message names the URL, never the password."""


class ChtAuthError(ChtError):
    pass


def _rev_key(doc: dict[str, Any]) -> tuple[bool, int, str]:
    pos, _, digest = str(doc.get("_rev", "")).partition("-")
    return (not doc.get("_deleted"), int(pos) if pos.isdigit() else 0, digest)


def _detail(response: requests.Response) -> str:
    detail = body_detail(response)
    return f": {detail}" if detail else ""


def winning_revision(leaves: list[dict[str, Any]]) -> dict[str, Any]:
    """The revision CouchDB serves for a conflicted doc, among its leaf revisions.

    CouchDB (and PouchDB) pick it deterministically: a live leaf beats a deleted one,
    then the longest history (the number before the dash of ``_rev``), then the
    highest revision id in ASCII order (apache/couchdb ``src/couch/src/couch_doc.erl``,
    ``to_doc_info_path``; "Conflict resolution" in CouchDB's guide). ``POST _bulk_get``
    without a ``rev`` answers every leaf on CouchDB 3, in rev-tree order
    (``src/chttpd/src/chttpd_db.erl`` 3.5.0 lines 2508-2515), so the first entry may
    be a losing revision or a deleted branch.
    """
    return max(leaves, key=_rev_key)


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
        self._bulk_get_ok = True

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
        absent: tuple[int, ...] = (),
        session: requests.Session | None = None,
    ) -> Any:
        """One JSON request with a bounded retry on connection errors and 5xx.

        Every call here is a read (POST _all_docs, _bulk_get and _changes included), so
        retrying is safe. ``missing_ok`` (404) and ``absent`` statuses answer None.
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
            if response.status_code == 401:
                user = self.settings.username or "(no user)"
                raise ChtAuthError(
                    f"CHT at {self.settings.url} refused the credentials of user {user} "
                    f"while reading {what} (HTTP 401): check CHT_USERNAME and CHT_PASSWORD"
                )
            if response.status_code == 403:
                raise ChtAuthError(self._forbidden(what, session or self._session))
            if (response.status_code == 404 and missing_ok) or response.status_code in absent:
                return None
            if response.status_code >= 500 and attempt < RETRY_ATTEMPTS:
                last_error = f"HTTP {response.status_code}"
                self._sleep(RETRY_BASE_SECONDS * 2 ** (attempt - 1))
                continue
            if 300 <= response.status_code < 400:
                location = without_userinfo(response.headers.get("Location", ""))
                raise ChtError(
                    f"CHT at {self.settings.url} redirected ({response.status_code}) to "
                    f"{location or 'another address'} while reading {what}; redirects are not "
                    "followed: check CHT_URL (http or https, the instance's address)"
                )
            if response.status_code != 200:
                raise ChtError(
                    f"CHT at {self.settings.url} answered HTTP {response.status_code} while "
                    f"reading {what}{_detail(response)}"
                )
            try:
                body = decode_json(response.content)  # orjson: 3x json's speed (benchmarks/)
            except ValueError:
                raise ChtError(
                    f"CHT at {self.settings.url} sent a body that is not JSON while reading {what}"
                ) from None
            self._check_shape(method, url, body, what)
            return body
        raise ChtError(f"CHT at {self.settings.url} failed while reading {what}: {last_error}")

    def _forbidden(self, what: str, session: requests.Session) -> str:
        """Why CHT refused a read, in words that name the fix.

        CHT's API refuses offline users the view, the database info and ranges of
        ``_all_docs`` (cht-core 5.2.0 ``api/src/routing.js`` lines 334-386, 826-851). A
        session is online only with the role ``mm-online`` or ``_admin``, which CHT adds
        only to roles configured online in ``app_settings.roles``; a user made by hand
        in CouchDB has no such role (``shared-libs/user-management/src/roles.js``)."""
        user = self.settings.username or "(no user)"
        start = f"CHT at {self.settings.url} refused user {user} reading {what} (HTTP 403)"
        fix = (
            "create the mediator's CHT user through CHT's admin app (or POST /api/v1/users) "
            'with a role configured online (without "offline": true) in app_settings.roles'
        )
        roles = self._session_roles(session)
        if roles is None:
            return f"{start}: {fix}, or use a CouchDB admin"
        if "_admin" in roles or "mm-online" in roles:
            return (
                f"{start}, although it is an online CHT user: check that the medic database "
                f"{self.settings.db!r} is right (CHT_DB) and that no proxy rule blocks it"
            )
        if not roles:
            return (
                f"{start}: it has no CHT role (a user made in CouchDB by hand is offline to "
                f"CHT and, since CHT 4.4, not a member of the medic database); {fix}"
            )
        return (
            f"{start}: it is an offline CHT user (roles: {', '.join(roles)}), and CHT gives "
            f"offline users only their own part of the data; {fix}"
        )

    def _session_roles(self, session: requests.Session) -> list[str] | None:
        """The user's roles from ``GET /_session`` (CouchDB's, proxied by CHT), or None."""
        try:
            response = session.get(
                f"{self.settings.url}/_session",
                timeout=self.settings.timeout,
                allow_redirects=False,
                verify=self.settings.verify,
            )
            roles = decode_json(response.content).get("userCtx", {}).get("roles")
        except (requests.RequestException, ValueError, AttributeError):
            return None
        if response.status_code != 200 or not isinstance(roles, list):
            return None
        return [str(role) for role in roles]

    def _check_shape(self, method: str, url: str, body: Any, what: str) -> None:
        """CouchDB list answers (``_all_docs``, views) must be ``{"rows": [{...}]}``, and a
        range read's rows must name their ``id``; ``_bulk_get`` and ``_changes`` answer
        ``{"results": [{"id": ...}]}``: anything else is a CHT error, never a crash
        half-way through the totals."""
        path = url.split("?", 1)[0]
        if path.endswith(("/_bulk_get", "/_changes")):
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list) or not all(
                isinstance(r, dict) and isinstance(r.get("id"), str) for r in results
            ):
                raise ChtError(
                    f"CHT at {self.settings.url} answered {what} with an unexpected shape "
                    '(expected {"results": [...]} with an id per result): is this CouchDB?'
                )
            return
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
        rows = self._view_rows(org_unit, docs=True)
        seen: dict[str, dict[str, Any]] = {}
        for row in rows:
            doc = row.get("doc")
            if isinstance(doc, dict) and doc.get("_id") and doc["_id"] not in seen:
                seen[doc["_id"]] = doc
        self._note_places(org_unit, True, len(rows), len(seen))
        return list(seen.values())

    def place_ids(self, org_unit: str | None = None) -> list[str]:
        """The ids of the contacts that carry ``dhis``, in view order, without their docs:
        a run that knows the docs already (``cht_cache``) reads only this."""
        rows = self._view_rows(org_unit, docs=False)
        ids = list(dict.fromkeys(r["id"] for r in rows if isinstance(r.get("id"), str)))
        self._note_places(org_unit, False, len(rows), len(ids))
        return ids

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
            raise ChtError(
                f"CHT at {self.settings.url} has no medic-admin/contacts_by_dhis_orgunit view "
                f"in database {self.settings.db!r}: is this a CHT medic database?"
            )
        rows: list[dict[str, Any]] = body.get("rows", [])
        return rows

    def _note_places(self, org_unit: str | None, docs: bool, rows: int, contacts: int) -> None:
        query = "&".join(
            q
            for q in ("include_docs=true" if docs else "", f"key={org_unit}" if org_unit else "")
            if q
        )
        self._note(
            "CHT places with DHIS2 org units",
            "GET",
            f"/{self.settings.db}/{VIEW_PATH}",
            query,
            {"rows": rows, "contacts": contacts},
        )

    def target_pages(self, month: Month) -> Iterator[list[Any]]:
        """The month's target docs, ``page_size`` at a time (never the month at once)."""
        for rows in self._id_range_rows(f"target~{month.tag}~", f"CHT target docs {month.tag}"):
            yield [row.get("doc") for row in rows]

    def user_rows(self, *, docs: bool) -> Iterator[list[dict[str, Any]]]:
        """``_all_docs`` rows of the ``org.couchdb.user:`` range (user-settings docs): with
        their docs, or ids only (a later run: to find new and deleted users)."""
        return self._id_range_rows("org.couchdb.user:", "CHT user-settings", docs=docs)

    def _id_range_rows(
        self, prefix: str, name: str, *, docs: bool = True
    ) -> Iterator[list[dict[str, Any]]]:
        """Rows whose id starts with ``prefix``, paged through ``_all_docs``.

        The next page is read (by a helper thread, on a session of its own) while the
        caller works on this one, so CHT's time hides the mediator's own; no more than
        two pages are held at once. Errors surface where the page is asked for.
        """
        end = json.dumps(prefix + "\ufff0")
        size = self.settings.page_size
        pages = count = 0
        first = last = None
        session = self._new_session()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cht-pages")
        include = {"include_docs": "true"} if docs else {}

        def read(start: str) -> Any:
            return self._request(
                "GET",
                f"{self.db_url}/_all_docs",
                params={"startkey": start, "endkey": end, **include, "limit": str(size + 1)},
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
                    count += len(page)
                    first = first or page[0].get("id")
                    last = page[-1].get("id")
                    yield page
        finally:
            # a caller that stops early must not wait for a page it will never use
            pool.shutdown(wait=False, cancel_futures=True)
            session.close()
        self._note(
            name,
            "GET",
            f"/{self.settings.db}/_all_docs",
            f"startkey={prefix}&endkey={prefix}\\ufff0"
            + ("&include_docs=true" if docs else "")
            + f"&limit={size + 1}",
            {"pages": pages, "docs": count, "page_size": size, "first_id": first, "last_id": last},
        )

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
            entries = result.get("docs")
            entries = (
                [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
            )
            leaves = [e["ok"] for e in entries if isinstance(e.get("ok"), dict)]
            if leaves:
                # CouchDB 3 answers every leaf of a conflicted doc, not only the winner
                doc = winning_revision(leaves)
                found[result["id"]] = None if doc.get("_deleted") else doc
                continue
            error = next((e["error"] for e in entries if isinstance(e.get("error"), dict)), None)
            if error is not None and error.get("error") not in (None, "not_found"):
                raise ChtError(
                    f"CHT at {self.settings.url} could not read doc {result['id']!r}: "
                    f"{error.get('error')} ({error.get('reason')})"
                )
            found[result["id"]] = None  # missing
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

    # -- what changed since the last run (cht_cache) ---------------------------------

    def db_info(self) -> dict[str, Any]:
        """``GET /{db}/``: its ``update_seq`` (opaque in CouchDB 2+, a number in PouchDB)
        and ``instance_start_time``. With the slash: CHT's API answers ``GET /medic``
        with a redirect to ``/medic/`` for every user (cht-core 5.2.0
        ``api/src/routing.js`` lines 1057-1062), and redirects are never followed."""
        body = self._request("GET", f"{self.db_url}/", what="the database info")
        if not isinstance(body, dict) or body.get("update_seq") is None:
            raise ChtError(
                f"CHT at {self.settings.url} gave no update_seq for database "
                f"{self.settings.db!r}: is this CouchDB?"
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
        ask from next time: ``POST _changes?filter=_doc_ids``. None when the server does
        not take ``since`` (the database was recreated or restored).

        Asked ``CHANGES_IDS_PER_REQUEST`` ids at a time: up to CouchDB's
        ``changes_doc_ids_optimization_threshold`` (1000; 40000 on CHT 4.16+) CouchDB
        looks each id up, above it every shard scans its whole feed since ``since`` and
        sends nothing until the first match (apache/couchdb 3.5.0
        ``src/couch/src/couch_changes.erl`` lines 37, 515-516), which can outlast the
        read timeout. The sequence kept is the one the database had before the first
        batch, so a change made meanwhile shows again next run, never is missed."""
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
        self._note(
            "CHT contacts changed since the last run",
            "POST",
            f"/{self.settings.db}/_changes",
            "filter=_doc_ids",
            {"watched": len(ids), "changed": len(changed)},
        )
        return changed, last
