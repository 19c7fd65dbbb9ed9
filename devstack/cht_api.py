"""CHT's API in front of pouchdb-server, as an operator's ``CHT_URL`` reaches it.

A real CHT 4.x/5.x is nginx -> CHT's API (cht-core ``api/src/routing.js``) -> CouchDB 3. The
API decides per request and per user type what reaches CouchDB; this front does the same for
the requests the mediator makes, so tests read CHT the way a deployment answers them. Each rule
cites cht-core (``5.2.0 api/src/routing.js:LINE``) or CouchDB (``3.5.0 src/...``).

Who is what (5.2.0 shared-libs/user-management/src/roles.js:14-32): a session is *online*
when its roles hold ``mm-online`` or a DB admin role (``admin``, ``_admin``: 5.2.0
shared-libs/constants/src/index.js:56-62); everyone else is *offline*. CHT's users API adds
``mm-online`` only for roles configured in ``app_settings.roles`` without ``offline: true``
(users.js:421-434, roles.js:33-43), so a user made by hand in CouchDB is offline.

How the front authenticates: like CHT's API (5.2.0 api/src/auth.js:65-80) it asks
pouchdb-server's ``GET /_session`` with the client's ``Authorization``/``Cookie`` headers
(pouchdb-server 4.2 keeps a real ``_users`` database and answers ``_session``), then reads
and filters as pouchdb-server's admin, as CHT's API reads medic. Where CHT proxies a request
to CouchDB with the user's own credentials, CouchDB checks that the user is a member of the
database; the front checks the database's ``_security`` the way CouchDB 3 does (3.5.0
src/couch/src/couch_db.erl:702-768; a database without members is admin-only, 3.5.0
rel/overlay/etc/default.ini:35-38), since pouchdb-server only sees the front's admin.

Routes (``{db}`` is any database: the tests run many ``medic-case-N`` databases behind one
front, each standing for a CHT instance's medic database; a real CHT routes only its own
``medic`` like this and sends other databases to the firewall and CouchDB):

============================================  =========  ==============  =====================
request                                       admin      online          offline
============================================  =========  ==============  =====================
``GET /{db}`` (any user, even anonymous)      302 to ``/{db}/`` (5.2.0 routing.js:1057-1062)
``GET /{db}/`` database info                  proxied    proxied         403 firewall (:1070)
``GET /{db}/{doc}`` (``settings`` etc.)       proxied    proxied         the doc if allowed,
                                                                         else 403 (:866-884)
``/_design/*/_view|_list|_show/*``,           proxied    proxied         403 (:334-349)
``_find``, ``_explain``, ``_index``...
``_all_docs`` GET range / POST keys           proxied    proxied         default docs only,
                                                                         range, limit and
                                                                         keys ignored (:826-841)
``POST _bulk_get``                            CouchDB 3: every leaf      CouchDB 3 answer,
                                              of a doc asked without     filtered (:843-851)
                                              ``rev``
``_changes`` (``filter=_doc_ids``...)         proxied    proxied         default docs only,
                                                                         ``since`` ignored
                                                                         (:808-823)
``POST _revs_diff``, ``_missing_revs``,       proxied    proxied         proxied (:361-386)
``_local/*``
``/_session``                                 proxied with the client's own headers (:352)
``GET /api/v1/settings``                      the ``settings`` doc of ``db`` (:779)
``POST /api/v1/users``                        CHT's users API (:517), below
writes to ``/{db}/...``                       proxied    ``can_edit``    403 (CHT checks each
                                                         (:1073-1089)    doc; not modelled)
anything else                                 proxied    proxied with    403 firewall
                                                         their own       (:1070-1093)
                                                         credentials
============================================  =========  ==============  =====================

"Default docs" are ``_design/medic-client``, ``service-worker-meta``, ``settings`` and the
user's own ``org.couchdb.user:<name>`` (5.2.0 api/src/services/replication/authorization.js:
14-19, 56; all-docs.js:11-18; controllers/changes.js:5-8).

What an offline user may read (``_bulk_get`` and doc reads) approximates CHT's replication
rules (authorization.js:190-264): their own user-settings and ``_design/medic-client``; the
docs everyone gets (``settings``, ``resources``, forms, translations...); a contact whose
lineage (itself included) holds one of the user's places, within ``replication_depth`` if
the settings give one for a role (contacts_by_depth); a target doc whose ``owner`` is such a
contact; a task whose ``user`` is theirs; a report whose subject or submitter *id* is such a
contact. Not modelled: subjects given by short code (``patient_id``), report depth,
``needs_signoff``, private reports, primary contacts outside the lineage, unallocated
records. Nothing else (other users' user-settings included) is allowed.

CouchDB 3's ``_bulk_get`` (switch ``couch3_bulk_get``, on by default): a ``{"id": X}`` without
``rev`` answers every leaf revision of X, deleted ones included, in rev-tree order (3.5.0
src/chttpd/src/chttpd_db.erl:2508-2515; src/fabric/src/fabric_open_revs.erl:227-231:
depth first, siblings by revision id, so the winner need not be first), and errors in
CouchDB's shape (chttpd_db.erl:2384-2404). pouchdb-server answers only the winner (and ``{}``
for a missing doc). The front reads the leaves from pouchdb-server's changes feed
(``style=all_docs``) and the revisions with one ``_bulk_get`` of explicit ``{id, rev}``.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import requests
import urllib3
from werkzeug.wrappers import Request, Response

from . import cht_docs
from .couchdb import CouchServer
from .net import ServerThread

# The mediator's CHT user in the dev stack: online, through CHT's users API (operator guide)
INTEGRATION_USER = "dhis2-integration"
INTEGRATION_PASSWORD = "Integration-dev-Pa55"  # noqa: S105 - a throwaway local dev password

ONLINE_ROLE = "mm-online"  # 5.2.0 shared-libs/constants/src/index.js:56-60
DB_ADMIN_ROLES = ("admin", "_admin")  # index.js:62
USER_PREFIX = "org.couchdb.user:"

# 5.2.0 api/src/middleware/authorization.js:7-11
FIREWALL_ERROR = {
    "code": 403,
    "error": "forbidden",
    "details": "Offline users are not allowed access to this endpoint",
}
# 5.2.0 api/src/services/replication/authorization.js:14-19
DEFAULT_DOCS = ("_design/medic-client", "service-worker-meta", "settings")
# docs everyone replicates: 5.2.0 ddocs/medic-db/medic/nouveau/docs_by_replication_key/index.js:2-15
EVERYONE_IDS = frozenset(
    {
        "resources",
        "branding",
        "partners",
        "service-worker-meta",
        "zscore-charts",
        "settings",
        "privacy-policies",
        "extension-libs",
    }
)
EVERYONE_TYPES = frozenset({"form", "translations", "ui-extension"})
CONTACT_TYPES = ("contact", "person", "clinic", "health_center", "district_hospital")

# endpoints CHT keeps from offline users before proxying (5.2.0 routing.js:334-349)
ONLINE_ONLY = frozenset(
    {"_find", "_explain", "_index", "_ensure_full_commit", "_security", "_purge"}
)
# replication machinery CHT proxies for everyone (5.2.0 routing.js:361-386)
UNAUDITED = frozenset({"_revs_diff", "_missing_revs", "_local"})
# CouchDB refuses these on _bulk_get (3.5.0 src/chttpd/src/chttpd_db.erl:2456-2472)
BULK_GET_BAD_PARAMS = ("open_revs", "new_edits", "w", "rev", "atts_since")
# the proxy copies these response headers; hop-by-hop ones never
PASSED_HEADERS = ("Content-Type", "Content-Length", "ETag", "Location", "Cache-Control")
CLIENT_HEADERS = (*PASSED_HEADERS, "Set-Cookie", "WWW-Authenticate")
REV = re.compile(r"^[0-9]+-.+$")


class ChtApiError(Exception):
    """What CHT's API answers with an error status, and the one line it says."""

    def __init__(self, code: int, message: Any, details: Any = None) -> None:
        text = message.get("message") if isinstance(message, dict) else message
        super().__init__(f"HTTP {code}: {text}")
        self.code = code
        self.message = message
        self.details = details


class _Answer(Exception):
    """Ends a request early with this response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True)
class UserCtx:
    """CouchDB's ``userCtx`` of a session (5.2.0 api/src/auth.js:65-80)."""

    name: str
    roles: tuple[str, ...]

    @property
    def online(self) -> bool:
        """5.2.0 shared-libs/user-management/src/roles.js:16-32 (``isOnlineOnly``)."""
        return any(r == ONLINE_ROLE or r in DB_ADMIN_ROLES for r in self.roles)

    @property
    def db_admin(self) -> bool:
        """roles.js:14 (``isDbAdmin``): what CHT's permission checks let through."""
        return any(r in DB_ADMIN_ROLES for r in self.roles)

    @property
    def server_admin(self) -> bool:
        return "_admin" in self.roles


@dataclass
class _OfflineScope:
    """What an offline user's replication reaches (see the module docstring)."""

    user: UserCtx
    facilities: set[str]
    depth: int  # -1: no limit
    owners: dict[str, dict[str, Any] | None] = field(default_factory=dict)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _wants_json(request: Request) -> bool:
    """Express's ``req.accepts(['text', 'json']) === 'json'`` (5.2.0 api/src/server-utils.js:12):
    only a client that prefers JSON to text gets JSON errors."""
    accept = request.accept_mimetypes
    return accept["application/json"] > accept["text/plain"]


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _cht_error(request: Request, code: int, message: Any, details: Any = None) -> Response:
    """5.2.0 api/src/server-utils.js:14-42 (``respond``): JSON ``{code, error, details}`` to a
    client that wants JSON, otherwise the message as text."""
    if _wants_json(request):
        body: dict[str, Any] = {"code": code, "error": message}
        if details is not None:
            body["details"] = details
        return _json(code, body)
    text = message.get("message") if isinstance(message, dict) else message
    if not isinstance(text, str):
        text = json.dumps(text)
    if details is not None:
        text += ": " + json.dumps(details)
    return Response(text, status=code, content_type="text/plain")


def _not_logged_in(request: Request) -> Response:
    """5.2.0 api/src/server-utils.js:90-115 for a non-browser client."""
    if _wants_json(request):
        return _json(401, {"code": 401, "error": "unauthorized"})
    return Response(
        "not logged in",
        status=401,
        content_type="text/plain",
        headers={"WWW-Authenticate": 'Basic realm="Medic Web Services"'},
    )


def _server_error(request: Request) -> Response:
    """5.2.0 api/src/server-utils.js:124-133."""
    return _cht_error(request, 500, "Server error")


def password_score(password: str) -> int:
    """The score of simple-password-tester 1.0.0, which CHT's users API requires to be at
    least 50 (5.2.0 shared-libs/user-management/src/users.js:22-23, 524-538): one point per
    character, two per distinct character, fifteen per character class beyond the first
    (digits, lower case, upper case, other: JavaScript's ``\\W``)."""
    classes = [r"\d", "[a-z]", "[A-Z]", r"\W"]
    kinds = sum(1 for c in classes if re.search(c, password, re.ASCII))
    return len(password) + 2 * len(set(password)) + 15 * (kinds - 1)


def _tree_order(doc: dict[str, Any]) -> tuple[int, list[str]]:
    """Where a leaf comes in CouchDB's rev tree walk: depth first from the root, siblings in
    revision id order (3.5.0 src/couch/src/couch_key_tree.erl:383-397), i.e. the root-to-leaf
    path compared id by id. 32-hex ids compare as CouchDB's 16-byte binaries do."""
    revisions = doc.get("_revisions")
    if isinstance(revisions, dict) and revisions.get("ids"):
        ids = list(revisions["ids"])
        return int(revisions["start"]) - len(ids) + 1, ids[::-1]
    pos, _, rev_id = str(doc.get("_rev", "0-")).partition("-")
    return int(pos), [rev_id]


def _lineage_ids(doc: dict[str, Any]) -> list[str]:
    """The doc's id, then its ancestors' (as ``medic/contacts_by_depth`` emits them: 5.2.0
    ddocs/medic-db/medic/views/contacts_by_depth/map.js)."""
    out: list[str] = []
    node: Any = doc
    while isinstance(node, dict) and len(out) < 100:
        if isinstance(node.get("_id"), str):
            out.append(node["_id"])
        node = node.get("parent")
    return out


class ChtApiFront:
    """CHT's API in front of a ``CouchServer`` (pouchdb-server), on a free loopback port.

    ``db`` is the database CHT's own endpoints (``/api/v1/settings``, ``/api/v1/users``)
    use, CHT's ``COUCH_URL`` database; every ``/{db}/...`` is routed as CHT routes medic.
    ``couch3_bulk_get`` switches CouchDB 3's ``_bulk_get`` answer (every leaf) on.
    """

    def __init__(
        self,
        couch: CouchServer,
        db: str = "medic",
        *,
        couch3_bulk_get: bool = True,
        port: int = 0,
    ) -> None:
        self.couch = couch
        self.db = db
        self.couch3_bulk_get = couch3_bulk_get
        token = base64.b64encode(f"{couch.username}:{couch.password}".encode()).decode()
        self._admin_auth = f"Basic {token}"
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=16,
            timeout=urllib3.Timeout(connect=10, read=600),
            retries=False,
        )
        self._server = ServerThread(self, port=port)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> ChtApiFront:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._pool.clear()

    def __enter__(self) -> ChtApiFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests and the dev stack -------------------------------------------

    def create_user(
        self,
        username: str,
        password: str,
        roles: list[str] | None = None,
        *,
        place: str | list[str] | None = None,
        contact: str | dict[str, Any] | None = None,
        db: str | None = None,
        replace: bool = False,
        **fields: Any,
    ) -> dict[str, Any]:
        """Create a user the way ``POST /api/v1/users`` does (same code, same checks), with
        the user-settings doc in ``db`` (default: the front's). ``replace`` first removes an
        earlier user of that name (a test convenience: one pouchdb-server's ``_users``
        outlives many databases). Raises ``ChtApiError`` with CHT's message."""
        target = db or self.db
        if replace:
            self._forget_user(username, target)
        data: dict[str, Any] = {"username": username, "password": password, **fields}
        if roles is not None:
            data["roles"] = list(roles)
        if place is not None:
            data["place"] = place
        if contact is not None:
            data["contact"] = contact
        return self._create_user(data, target)

    def couchdb_only_user(self, username: str, password: str, roles: Iterable[str] = ()) -> None:
        """A user made by hand in CouchDB's ``_users``, no CHT role, no user-settings doc:
        offline to CHT, and not a member of medic since 4.4."""
        doc = {"name": username, "type": "user", "roles": list(roles), "password": password}
        self._forget_user(username, None)
        res = self._up("PUT", f"/_users/{quote(USER_PREFIX + username, safe='')}", body=doc)
        if res.status >= 300:
            raise ChtApiError(res.status, res.data.decode(errors="replace"))

    def create_integration_user(self, db: str | None = None) -> None:
        """The online non-admin user the mediator reads as (``INTEGRATION_USER``, role
        ``cht_docs.INTEGRATION_ROLE``), replacing an earlier one of that name."""
        self.create_user(
            INTEGRATION_USER,
            INTEGRATION_PASSWORD,
            [cht_docs.INTEGRATION_ROLE],
            db=db,
            replace=True,
        )

    def login(self, username: str, password: str) -> requests.Session:
        """A ``requests`` session with these Basic credentials and ``Accept: application/json``,
        as the mediator sends."""
        session = requests.Session()
        session.auth = (username, password)
        session.headers["Accept"] = "application/json"
        return session

    # -- WSGI ---------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request, environ)
        except _Answer as answer:
            response = answer.response
        except (urllib3.exceptions.HTTPError, OSError):
            # CHT's proxy error handler (5.2.0 routing.js:1095-1097)
            response = _server_error(request)
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _dispatch(self, request: Request, environ: dict[str, Any]) -> Response:
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
        raw_path, _, query = str(raw).partition("?")
        parts = [unquote(p) for p in raw_path.split("/")[1:]]
        first = parts[0] if parts else ""
        if first == "_session":
            # anyone may read their session (5.2.0 routing.js:352-359)
            return self._proxy(request, raw, client=True)
        if first == "api":
            return self._api(request, parts[1:], raw)
        if first == "" and request.method == "GET":
            # CouchDB's welcome for a JSON client (5.2.0 routing.js:283-291)
            return self._proxy(request, raw, client=True)
        if first == "" or first.startswith("_"):
            return self._fallback(request, raw, self._authenticate(request))
        db = first
        if len(parts) == 1 and request.method in ("GET", "HEAD"):
            # 5.2.0 routing.js:1057-1062 (4.0.0 :796-801): before any auth check
            return self._redirect(request, f"/{quote(db, safe='')}/")
        user = self._authenticate(request)
        return self._db_request(request, user, db, parts[1:], raw, query)

    # -- authentication ------------------------------------------------------------------

    def _authenticate(self, request: Request) -> UserCtx:
        """5.2.0 api/src/auth.js:65-80 with middleware/authorization.js:37-47: a wrong password
        is 401, no credentials at all is CHT's 500 ("Failed to authenticate")."""
        headers = {"Accept": "application/json"}
        for name in ("Authorization", "Cookie"):
            if request.headers.get(name):
                headers[name] = request.headers[name]
        res = self._pool.request("GET", f"{self.couch.url}/_session", headers=headers)
        if res.status == 401:
            raise _Answer(_not_logged_in(request))
        if res.status != 200:
            raise _Answer(_server_error(request))
        ctx = json.loads(res.data).get("userCtx") or {}
        if not ctx.get("name"):
            raise _Answer(_server_error(request))
        return UserCtx(str(ctx["name"]), tuple(str(r) for r in ctx.get("roles") or ()))

    def _firewall(self, user: UserCtx) -> None:
        """5.2.0 api/src/middleware/authorization.js:58-64."""
        if not user.online:
            raise _Answer(_json(403, FIREWALL_ERROR))

    def _member(self, user: UserCtx, db: str) -> None:
        """CouchDB 3's member check on a request CHT proxies with the user's credentials
        (3.5.0 src/couch/src/couch_db.erl:702-768); a missing database is CouchDB's 404."""
        if user.server_admin:
            return
        res = self._up("GET", f"/{quote(db, safe='')}/_security")
        if res.status == 404:
            raise _Answer(_json(404, {"error": "not_found", "reason": "Database does not exist."}))
        security = json.loads(res.data) if res.status == 200 else {}
        members = security.get("members") or {}
        names, roles = members.get("names") or [], members.get("roles") or []
        if not names and not roles:
            roles = ["_admin"]  # CouchDB 3 creates databases admin-only (default.ini:35-38)
        if user.name in names or set(user.roles) & set(roles):
            return
        raise _Answer(
            _json(403, {"error": "forbidden", "reason": "You are not allowed to access this db."})
        )

    # -- routing ---------------------------------------------------------------------------

    def _db_request(
        self, request: Request, user: UserCtx, db: str, rest: list[str], raw: str, query: str
    ) -> Response:
        method = request.method
        head = rest[0] if rest else ""
        if rest in ([], [""]):
            if method in ("GET", "HEAD"):
                # the database info: firewall (5.2.0 routing.js:1070-1071), then proxied
                self._firewall(user)
                self._member(user, db)
                return self._proxy(request, raw)
            return self._write(request, user, db, rest, raw)
        if head == "_design" and len(rest) >= 4 and rest[2] in ("_view", "_list", "_show"):
            # online only (5.2.0 routing.js:334-349; 4.0.0 :275-326), then proxied (:361-386)
            self._firewall(user)
            self._member(user, db)
            return self._proxy(request, raw)
        if head in ONLINE_ONLY:
            self._firewall(user)
            return self._proxy(request, raw, client=True)
        if head == "_all_docs" and method in ("GET", "POST"):
            return self._all_docs(request, user, db, raw, query)
        if head == "_bulk_get" and method == "POST":
            return self._bulk_get(request, user, db, query)
        if head == "_changes" and method in ("GET", "POST"):
            return self._changes(request, user, db, raw)
        if head in UNAUDITED:
            self._member(user, db)
            return self._proxy(request, raw)
        if method in ("GET", "HEAD") and (head == "_design" or not head.startswith("_")):
            return self._read_doc(request, user, db, "/".join(rest), raw, query)
        if method in ("PUT", "POST", "DELETE", "COPY"):
            return self._write(request, user, db, rest, raw)
        return self._fallback(request, raw, user)

    def _fallback(self, request: Request, raw: str, user: UserCtx) -> Response:
        """Whatever CHT has no route for: the firewall, then CouchDB with the user's own
        credentials (5.2.0 routing.js:1070-1071, 1091-1093)."""
        self._firewall(user)
        return self._proxy(request, raw, client=True)

    def _write(
        self, request: Request, user: UserCtx, db: str, rest: list[str], raw: str
    ) -> Response:
        """Writes: online users need ``can_edit`` (5.2.0 routing.js:1073-1089); CHT filters an
        offline user's writes doc by doc (bulk-docs, db-doc), which the front does not model:
        it refuses them."""
        if rest == [""] and request.method == "POST":
            # CouchDB takes a new doc on POST /{db}/ too; pouchdb-server only without the slash
            path, _, query = raw.partition("?")
            raw = path.rstrip("/") + (f"?{query}" if query else "")
        if user.server_admin:
            return self._proxy(request, raw)
        if not user.online:
            raise _Answer(_json(403, {"error": "forbidden", "reason": "Insufficient privileges"}))
        if not user.db_admin and not self._has_permissions(user, ["can_edit"]):
            return _cht_error(request, 403, "Insufficient privileges")
        target = rest[0] if rest else ""
        if target == "" and request.method != "POST":
            # creating or deleting a database (3.5.0 src/chttpd/src/chttpd_auth_request.erl)
            return _json(401, {"error": "unauthorized", "reason": "You are not a server admin."})
        if target == "_design":
            return _json(403, {"error": "forbidden", "reason": "You are not a db or server admin."})
        self._member(user, db)
        return self._proxy(request, raw)

    # -- /api/v1 -----------------------------------------------------------------------------

    def _api(self, request: Request, rest: list[str], raw: str) -> Response:
        route = "/".join(rest)
        if route == "v1/settings" and request.method == "GET":
            # 5.2.0 routing.js:779; controllers/settings.js:6; services/settings.js:53-66
            self._authenticate(request)
            settings = self._settings(self.db)
            if settings is None:
                return _cht_error(request, 404, "missing")
            return _json(200, settings)
        if route == "v1/users" and request.method == "POST":
            # 5.2.0 routing.js:517; controllers/users.js:374-380
            user = self._authenticate(request)
            if not user.db_admin and not self._has_permissions(
                user, ["can_edit", "can_create_users"]
            ):
                return _cht_error(request, 403, "Insufficient privileges")
            try:
                data = json.loads(request.get_data() or b"null")
            except ValueError:
                return _cht_error(request, 400, "Invalid JSON")
            return self._users_post(request, data)
        return self._fallback(request, raw, self._authenticate(request))

    def _users_post(self, request: Request, data: Any) -> Response:
        if isinstance(data, list):
            # users.js:1122-1150: each created on its own, failures reported per user
            out: list[Any] = []
            for item in data:
                try:
                    out.append(self._create_user(item, self.db))
                except ChtApiError as err:
                    text = err.message.get("message") if isinstance(err.message, dict) else None
                    out.append({"error": text or err.message})
            return _json(200, out)
        try:
            return _json(200, self._create_user(data, self.db))
        except ChtApiError as err:
            return _cht_error(request, err.code, err.message, err.details)

    # -- reads ----------------------------------------------------------------------------------

    def _all_docs(self, request: Request, user: UserCtx, db: str, raw: str, query: str) -> Response:
        if user.online:
            self._member(user, db)
            return self._proxy(request, raw)
        # 5.2.0 controllers/all-docs.js:10-37, services/replication/all-docs.js:11-18
        if request.method == "POST":
            body = self._json_body(request)
            if isinstance(body, dict) and "keys" in body and not isinstance(body["keys"], list):
                return _json(
                    400, {"error": "bad_request", "reason": "`keys` body member must be an array."}
                )
        dropped = {"key", "keys", "skip", "limit", "startkey", "start_key", "startkey_docid"}
        dropped |= {"start_key_doc_id", "endkey", "end_key", "endkey_docid", "end_key_doc_id"}
        params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in dropped]
        res = self._up(
            "POST",
            f"/{quote(db, safe='')}/_all_docs?{urlencode(params)}",
            body={"keys": self._default_docs(user)},
        )
        return self._relay(res)

    def _changes(self, request: Request, user: UserCtx, db: str, raw: str) -> Response:
        if user.online:
            self._member(user, db)
            return self._proxy(request, raw)
        # 5.2.0 controllers/changes.js:5-8: the default docs' changes, whatever was asked
        res = self._up(
            "POST",
            f"/{quote(db, safe='')}/_changes?filter=_doc_ids",
            body={"doc_ids": self._default_docs(user)},
        )
        if res.status != 200:
            return self._relay(res)
        body = json.loads(res.data)
        return _json(200, {"results": body.get("results", []), "last_seq": body.get("last_seq")})

    def _bulk_get(self, request: Request, user: UserCtx, db: str, query: str) -> Response:
        body = self._json_body(request)
        # 5.2.0 controllers/bulk-get.js:10-25 (messages copied from CouchDB's)
        if not isinstance(body, dict):
            return _json(400, {"error": "bad_request", "reason": "invalid UTF-8 JSON"})
        if not body.get("docs"):
            return _json(400, {"error": "bad_request", "reason": "Missing JSON list of `docs`."})
        if not isinstance(body["docs"], list):
            reason = "`docs` parameter must be an array."
            return _json(400, {"error": "bad_request", "reason": reason})
        params = parse_qsl(query, keep_blank_values=True)
        for key, _value in params:
            if key in BULK_GET_BAD_PARAMS:
                reason = f'"{key}" query parameter is not acceptable'
                return _json(400, {"error": "bad_request", "reason": reason})
        if user.online:
            self._member(user, db)
        else:
            # services/replication/bulk-get.js:20-33: CouchDB's answer without ``latest``
            params = [(k, v) for k, v in params if k != "latest"]
        if self.couch3_bulk_get:
            result = self._bulk_get_leaves(db, params, body["docs"])
        else:
            res = self._up(
                "POST", f"/{quote(db, safe='')}/_bulk_get?{urlencode(params)}", body=body
            )
            if res.status != 200 or user.online:
                return self._relay(res)
            result = json.loads(res.data)
        if not user.online:
            result = self._filter_bulk_get(db, user, result)
        return _json(200, result)

    def _bulk_get_leaves(
        self, db: str, params: list[tuple[str, str]], entries: list[Any]
    ) -> dict[str, Any]:
        """CouchDB 3's ``_bulk_get`` JSON answer (3.5.0 src/chttpd/src/chttpd_db.erl:2366-2404,
        2486-2515), read from pouchdb-server."""
        path = f"/{quote(db, safe='')}"
        asked: list[tuple[Any, str | None, dict[str, Any] | None]] = []
        for entry in entries:
            if not isinstance(entry, dict) or not entry:
                error = self._bulk_error(
                    None, None, "bad_request", "document must be a JSON object"
                )
                asked.append((None, None, error))
                continue
            ident, rev = entry.get("id"), entry.get("rev")
            if ident is None:
                asked.append(
                    (None, None, self._bulk_error(None, None, "bad_request", "document id missed"))
                )
            elif not isinstance(ident, str):
                error = self._bulk_error(
                    ident, None, "illegal_docid", "Document id must be a string"
                )
                asked.append((ident, None, error))
            elif rev is not None and not (isinstance(rev, str) and REV.match(rev)):
                asked.append(
                    (ident, None, self._bulk_error(ident, rev, "bad_request", "Invalid rev format"))
                )
            else:
                asked.append((ident, rev, None))
        revless = list(dict.fromkeys(i for i, r, e in asked if e is None and r is None))
        leaves: dict[str, list[str]] = {}
        if revless:
            res = self._up(
                "POST",
                f"{path}/_changes?filter=_doc_ids&style=all_docs",
                body={"doc_ids": revless},
            )
            for row in json.loads(res.data).get("results", []):
                leaves[row["id"]] = [c["rev"] for c in row.get("changes", [])]
        wanted = [{"id": i, "rev": r} for i in revless for r in leaves.get(i, [])]
        wanted += [{"id": i, "rev": r} for i, r, e in asked if e is None and r is not None]
        fetched: dict[tuple[str, str], dict[str, Any]] = {}
        revs_asked = any(k == "revs" and v == "true" for k, v in params)
        if wanted:
            upstream = [(k, v) for k, v in params if k != "revs"] + [("revs", "true")]
            res = self._up("POST", f"{path}/_bulk_get?{urlencode(upstream)}", body={"docs": wanted})
            for result in json.loads(res.data).get("results", []):
                for item in result.get("docs", []):
                    doc = item.get("ok") if isinstance(item, dict) else None
                    if isinstance(doc, dict) and "_rev" in doc:
                        fetched[(result["id"], doc["_rev"])] = doc
        results: list[dict[str, Any]] = []
        for ident, rev, problem in asked:
            if problem is not None:
                results.append({"id": ident, "docs": [problem]})
            elif rev is not None:
                hit = fetched.get((ident, rev))
                item = {"ok": hit} if hit else self._bulk_error(ident, rev, "not_found", "missing")
                results.append({"id": ident, "docs": [item]})
            else:
                found = [
                    fetched[(ident, r)] for r in leaves.get(ident, []) if (ident, r) in fetched
                ]
                found.sort(key=_tree_order)
                docs = [{"ok": doc} for doc in found]
                if not docs:
                    docs = [self._bulk_error(ident, "undefined", "not_found", "missing")]
                results.append({"id": ident, "docs": docs})
        if not revs_asked:
            for result in results:
                for item in result["docs"]:
                    if "ok" in item:
                        item["ok"] = {k: v for k, v in item["ok"].items() if k != "_revisions"}
        return {"results": results}

    @staticmethod
    def _bulk_error(ident: Any, rev: Any, error: str, reason: str) -> dict[str, Any]:
        # 3.5.0 src/chttpd/src/chttpd_db.erl:2396-2404
        return {"error": {"id": ident, "rev": rev, "error": error, "reason": reason}}

    def _read_doc(
        self, request: Request, user: UserCtx, db: str, ident: str, raw: str, query: str
    ) -> Response:
        if user.online:
            self._member(user, db)
            return self._proxy(request, raw)
        # an offline user reads a doc only if allowed (5.2.0 controllers/db-doc.js:52-80,
        # services/replication/db-doc.js: a missing doc is refused the same way)
        params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "latest"]
        res = self._up("GET", f"/{quote(db, safe='')}/{quote(ident, safe='/')}?{urlencode(params)}")
        forbidden = _json(403, {"error": "forbidden", "reason": "Insufficient privileges"})
        if res.status != 200:
            return forbidden
        body = json.loads(res.data)
        scope = self._offline_scope(db, user)
        if isinstance(body, list):  # open_revs: each leaf on its own
            kept = [
                item
                for item in body
                if isinstance(item, dict)
                and isinstance(item.get("ok"), dict)
                and self._allowed(db, scope, [item["ok"]])[0]
            ]
            return _json(200, kept) if kept else forbidden
        if not isinstance(body, dict) or not self._allowed(db, scope, [body])[0]:
            return forbidden
        return _json(200, body)

    # -- offline users' reach ---------------------------------------------------------------

    def _default_docs(self, user: UserCtx) -> list[str]:
        return [*DEFAULT_DOCS, USER_PREFIX + user.name]

    def _offline_scope(self, db: str, user: UserCtx) -> _OfflineScope:
        """The user's places from their ``_users`` doc (5.2.0 users.js:887-892) and the
        deepest ``replication_depth`` of their roles (authorization.js:64-112)."""
        res = self._up("GET", f"/_users/{quote(USER_PREFIX + user.name, safe='')}")
        facility: Any = json.loads(res.data).get("facility_id") if res.status == 200 else None
        facilities = facility if isinstance(facility, list) else [facility]
        depth = -1
        for setting in (self._settings(db) or {}).get("replication_depth") or []:
            if isinstance(setting, dict) and setting.get("role") in user.roles:
                try:
                    depth = max(depth, int(setting["depth"]))
                except (KeyError, TypeError, ValueError):
                    continue
        return _OfflineScope(user, {f for f in facilities if isinstance(f, str)}, depth)

    def _in_reach(self, scope: _OfflineScope, contact: dict[str, Any] | None) -> bool:
        if not isinstance(contact, dict) or contact.get("type") not in CONTACT_TYPES:
            return False
        for distance, ident in enumerate(_lineage_ids(contact)):
            if ident in scope.facilities and (scope.depth < 0 or distance <= scope.depth):
                return True
        return False

    def _allowed(self, db: str, scope: _OfflineScope, docs: list[dict[str, Any]]) -> list[bool]:
        """Per doc: may this offline user replicate it (the module docstring says how far
        this follows CHT's authorization.js:190-264)."""
        own = USER_PREFIX + scope.user.name

        def subjects(doc: dict[str, Any]) -> list[str]:
            kind = doc.get("type")
            if kind == "target":
                owner = doc.get("owner")
                return [owner] if isinstance(owner, str) else []
            if kind == "data_record":
                fields = _dict(doc.get("fields"))
                contact = _dict(doc.get("contact"))
                found = [
                    fields.get("patient_uuid"),
                    fields.get("patient_id"),
                    doc.get("patient_id"),
                    fields.get("place_id"),
                    doc.get("place_id"),
                    contact.get("_id"),
                ]
                return [s for s in found if isinstance(s, str)]
            return []

        unknown = {s for doc in docs for s in subjects(doc) if s not in scope.owners}
        if unknown:
            res = self._up(
                "POST",
                f"/{quote(db, safe='')}/_all_docs?include_docs=true",
                body={"keys": sorted(unknown)},
            )
            for row in json.loads(res.data).get("rows", []):
                scope.owners[row.get("key")] = row.get("doc")
        out = []
        for doc in docs:
            ident, kind = doc.get("_id"), doc.get("type")
            if ident in ("_design/medic-client", own) or ident in EVERYONE_IDS:
                out.append(True)
            elif kind in EVERYONE_TYPES:
                out.append(True)
            elif kind in CONTACT_TYPES:
                out.append(self._in_reach(scope, doc))
            elif kind == "task":
                out.append(doc.get("user") == own)
            else:
                out.append(any(self._in_reach(scope, scope.owners.get(s)) for s in subjects(doc)))
        return out

    def _filter_bulk_get(self, db: str, user: UserCtx, result: dict[str, Any]) -> dict[str, Any]:
        """5.2.0 api/src/services/replication/bulk-get.js:6-16: only docs read and allowed;
        an id left with none is dropped."""
        scope = self._offline_scope(db, user)
        kept = []
        for entry in result.get("results", []):
            docs = [d for d in entry.get("docs", []) if isinstance(d, dict) and d.get("ok")]
            allowed = self._allowed(db, scope, [d["ok"] for d in docs])
            docs = [d for d, ok in zip(docs, allowed, strict=True) if ok]
            if docs:
                kept.append({**entry, "docs": docs})
        return {**result, "results": kept}

    # -- CHT's users API ---------------------------------------------------------------------

    def _settings(self, db: str) -> dict[str, Any] | None:
        """App settings: the ``settings`` doc, else ``_design/medic``'s ``app_settings``
        (5.2.0 api/src/services/settings.js:53-66)."""
        res = self._up("GET", f"/{quote(db, safe='')}/settings")
        if res.status == 200:
            settings = json.loads(res.data).get("settings")
            return settings if isinstance(settings, dict) else {}
        res = self._up("GET", f"/{quote(db, safe='')}/_design%2Fmedic")
        if res.status == 200:
            settings = json.loads(res.data).get("app_settings")
            return settings if isinstance(settings, dict) else {}
        return None

    def _has_permissions(
        self, user: UserCtx, permissions: list[str], db: str | None = None
    ) -> bool:
        """Every permission granted to one of the user's roles (cht-datasource
        ``hasPermissions``, as 5.2.0 api/src/auth.js:56-64 calls it)."""
        granted = (self._settings(db or self.db) or {}).get("permissions") or {}
        return all(set(granted.get(p) or []) & set(user.roles) for p in permissions)

    @staticmethod
    def _offline_roles(roles: list[str], config: dict[str, Any]) -> bool:
        """5.2.0 shared-libs/user-management/src/roles.js:33-43 (``isOffline``)."""
        if not roles:
            return False
        configured = _dict(config.get("roles"))
        ours = [r for r in roles if configured.get(r)]
        if UserCtx("", tuple(roles)).online:
            return False
        return not ours or any((configured.get(r) or {}).get("offline") for r in ours)

    def _create_user(self, data: Any, db: str) -> dict[str, Any]:
        """5.2.0 shared-libs/user-management/src/users.js:1071-1097 (``createUser``) and
        :717-733 (``createUserEntities``) for a place given by id and a contact given by id or
        as a new person. Token login, OIDC and a new place object are not supported."""
        if not isinstance(data, dict):
            raise ChtApiError(400, "Request body must be a user object")
        config = self._settings(db) or {}
        data = dict(data)
        if data.get("type") and not data.get("roles"):
            data["roles"] = [data["type"]]  # libs/types-and-roles.js (deprecated ``type``)
        roles = data.get("roles") if isinstance(data.get("roles"), list) else None
        # missingFields (users.js:540-574)
        required = ["username", "password"]
        if not roles:
            required.append("type or roles")
        elif self._offline_roles(roles, config):
            required += ["place", "contact"]

        def invalid(key: str) -> bool:
            value = data.get("roles" if key == "type or roles" else key)
            if isinstance(value, list):
                return not [v for v in value if v]
            if isinstance(value, dict):
                return not [v for v in value.values() if v]
            return not value

        missing = [key for key in required if invalid(key)]
        if missing:
            text = "Missing required fields: " + ", ".join(missing)
            raise ChtApiError(
                400, self._message(text, "fields.required", {"fields": ", ".join(missing)})
            )
        assert roles is not None
        password = str(data["password"])
        # validatePassword (users.js:524-538)
        if len(password) < 8:
            text = "The password must be at least 8 characters long."
            raise ChtApiError(400, self._message(text, "password.length.minimum", {"minimum": 8}))
        if password_score(password) < 50:
            text = (
                "The password is too easy to guess. Include a range of types of characters "
                "to increase the score."
            )
            raise ChtApiError(400, self._message(text, "password.weak"))
        username = data["username"]
        # validateNewUsername (users.js:172-208)
        if not isinstance(username, str) or not re.fullmatch(r"[a-z0-9_-]+", username):
            text = (
                "Invalid user name. Valid characters are lower case letters, numbers, "
                "underscore (_), and hyphen (-)."
            )
            raise ChtApiError(400, self._message(text, "username.invalid"))
        ident = USER_PREFIX + username
        for where in ("_users", db):
            if self._up("GET", f"/{quote(where, safe='')}/{quote(ident, safe='')}").status == 200:
                text = f'Username "{username}" already taken.'
                raise ChtApiError(
                    400, self._message(text, "username.taken", {"username": username})
                )
        response: dict[str, Any] = {}
        facility_ids = self._check_places(db, config, data.get("place"))
        contact_id = self._check_contact(db, config, data.get("contact"), facility_ids, response)
        # getRolesUpdates (users.js:421-435): mm-online follows the configured roles
        roles = [r for r in roles if r != ONLINE_ROLE]
        if not self._offline_roles(roles, config):
            roles.append(ONLINE_ROLE)
        # the _users doc (users.js:210-225, 485-503)
        granted = _dict(config.get("permissions"))
        skip = set(granted.get("can_skip_password_change") or []) & set(roles)
        user_doc: dict[str, Any] = {
            "_id": ident,
            "name": username,
            "type": "user",
            "password": password,
            "password_change_required": False
            if data.get("password_change_required") is False
            else not skip,
            "roles": roles,
        }
        for key in ("known", "oidc_username"):
            if key in data:
                user_doc[key] = data[key]
        # getCommonFieldsUpdates (users.js:437-450): both docs carry the place and contact
        if facility_ids is not None:
            user_doc["facility_id"] = facility_ids
        if contact_id is not None:
            user_doc["contact_id"] = contact_id
        settings_doc = cht_docs.user_settings(username, contact_id, facility_ids, roles)
        # getSettingsUpdates (users.js:452-473)
        for key in ("fullname", "email", "phone", "known", "external_id"):
            if key in data and data[key] is not None:
                settings_doc[key] = data[key]
        response["user"] = self._put("_users", user_doc)
        response["user-settings"] = self._put(db, settings_doc)
        return response

    @staticmethod
    def _message(text: str, key: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """users.js:90-101 (``error400`` with a translation key)."""
        out: dict[str, Any] = {"message": text, "translationKey": key}
        if params is not None:
            out["translationParams"] = params
        return out

    def _doc(self, db: str, ident: str) -> dict[str, Any] | None:
        res = self._up("GET", f"/{quote(db, safe='')}/{quote(ident, safe='')}")
        if res.status != 200:
            return None
        doc: dict[str, Any] = json.loads(res.data)
        return doc

    @staticmethod
    def _contact_type(config: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
        """5.2.0 shared-libs/contact-types-utils/src/index.js:20-38, 60-75."""
        type_id = doc.get("contact_type") if doc.get("type") == "contact" else doc.get("type")
        types = _list(config.get("contact_types"))
        found = next((t for t in types if isinstance(t, dict) and t.get("id") == type_id), None)
        if found is None:
            return {"id": type_id, "known": False}
        return {**found, "known": True}

    def _is_person(self, config: dict[str, Any], doc: dict[str, Any]) -> bool:
        kind = self._contact_type(config, doc)
        return bool(kind.get("person") or kind.get("id") == "person")

    def _check_places(self, db: str, config: dict[str, Any], place: Any) -> list[str] | None:
        """``place``: a place id or a list of them, each an existing place (users.js:390-400,
        649-665; contacts/src/places.js)."""
        if place is None:
            return None
        ids = place if isinstance(place, list) else [place]
        if not all(isinstance(i, str) and i for i in ids):
            raise ChtApiError(400, "Place must be an id string (UUID) or a list of them.")
        for ident in ids:
            doc = self._doc(db, ident)
            kind = self._contact_type(config, doc or {})
            if doc is None or not kind["known"] or self._is_person(config, doc):
                raise ChtApiError(404, "Failed to find place.")
        return list(ids)

    def _check_contact(
        self,
        db: str,
        config: dict[str, Any],
        contact: Any,
        facility_ids: list[str] | None,
        response: dict[str, Any],
    ) -> str | None:
        """``contact``: an existing person within the place (users.js:153-170, 304-335), or a
        new person object, created under the place (contacts/src/people.js:56-100)."""
        if contact is None:
            return None
        place = facility_ids[0] if facility_ids else None
        if isinstance(contact, str):
            doc = self._doc(db, contact)
            if doc is None:
                raise ChtApiError(404, "Failed to find person.")
            if not self._is_person(config, doc):
                text = "Wrong type, contact is not a person."
                raise ChtApiError(400, self._message(text, "contact.type.wrong"))
            if not any(p in _lineage_ids(doc) for p in facility_ids or []):
                text = "Contact is not within place."
                raise ChtApiError(400, self._message(text, "configuration.user.place.contact"))
            response["contact"] = {"id": doc["_id"], "rev": doc["_rev"]}
            return contact
        if not isinstance(contact, dict) or "_rev" in contact:
            text = "Person must be a new object or string identifier (UUID)."
            raise ChtApiError(400, text)
        person = dict(contact)
        person.setdefault("type", "person")
        if not self._is_person(config, person):
            raise ChtApiError(400, "Wrong type, this is not a person.")
        if not isinstance(person.get("name"), str):
            raise ChtApiError(400, 'Person is missing a "name" property.')
        person.setdefault("_id", uuid.uuid4().hex)
        person["reported_date"] = int(time.time() * 1000)
        if place is not None:
            parent = self._doc(db, place)
            person["parent"] = cht_docs.minify(parent)
        response["contact"] = self._put(db, person)
        return str(person["_id"])

    def _put(self, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        res = self._up("PUT", f"/{quote(db, safe='')}/{quote(doc['_id'], safe='')}", body=doc)
        body = json.loads(res.data)
        if res.status >= 300:
            raise ChtApiError(res.status, body.get("reason") or body.get("error") or "write failed")
        return {"id": body["id"], "rev": body["rev"]}

    def _forget_user(self, username: str, db: str | None) -> None:
        ident = quote(USER_PREFIX + username, safe="")
        for where in ["_users"] + ([db] if db else []):
            res = self._up("GET", f"/{quote(where, safe='')}/{ident}")
            if res.status == 200:
                rev = json.loads(res.data)["_rev"]
                self._up("DELETE", f"/{quote(where, safe='')}/{ident}?rev={quote(rev)}")

    # -- HTTP to pouchdb-server -------------------------------------------------------------

    def _up(self, method: str, path: str, body: Any = None) -> urllib3.BaseHTTPResponse:
        """One request to pouchdb-server as its admin, the whole answer read."""
        headers = {"Authorization": self._admin_auth, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return self._pool.request(method, self.couch.url + path, body=data, headers=headers)

    @staticmethod
    def _json_body(request: Request) -> Any:
        try:
            return json.loads(request.get_data() or b"null")
        except ValueError:
            return None

    def _proxy(self, request: Request, raw: str, *, client: bool = False) -> Response:
        """The request as it came, to pouchdb-server: as its admin (what CHT's API reaches
        CouchDB with, the membership checked already), or with the client's own credentials
        (``client``), the answer streamed back."""
        headers = {}
        for name in ("Content-Type", "Accept", "If-None-Match"):
            if request.headers.get(name):
                headers[name] = request.headers[name]
        if client:
            for name in ("Authorization", "Cookie"):
                if request.headers.get(name):
                    headers[name] = request.headers[name]
        else:
            headers["Authorization"] = self._admin_auth
        upstream = self._pool.request(
            request.method,
            self.couch.url + raw,
            body=request.get_data() or None,
            headers=headers,
            preload_content=False,
        )
        passed = CLIENT_HEADERS if client else PASSED_HEADERS
        out = {k: v for k, v in upstream.headers.items() if k.title() in passed}
        return Response(
            self._stream(upstream), status=upstream.status, headers=out, direct_passthrough=True
        )

    @staticmethod
    def _stream(upstream: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        try:
            yield from upstream.stream(64 * 1024, decode_content=False)
        finally:
            upstream.release_conn()

    @staticmethod
    def _relay(res: urllib3.BaseHTTPResponse) -> Response:
        content_type = res.headers.get("Content-Type", "application/json")
        return Response(res.data, status=res.status, content_type=content_type)

    @staticmethod
    def _redirect(request: Request, location: str) -> Response:
        """Express's ``res.redirect`` (302) with its body for what the client accepts."""
        accept = request.accept_mimetypes
        if accept["text/plain"] and accept["text/plain"] >= accept["text/html"]:
            body, kind = f"Found. Redirecting to {location}", "text/plain"
        elif accept["text/html"]:
            body, kind = f"<p>Found. Redirecting to {location}</p>", "text/html"
        else:
            body, kind = "", "text/plain"
        return Response(body, status=302, content_type=kind, headers={"Location": location})
