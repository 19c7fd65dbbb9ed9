"""The Flask app and the ``Dhis2StandIn`` wrapper that runs it on loopback.

Construction::

    standin = Dhis2StandIn(metadata, version="2.41.1", now=lambda: datetime(2024, 11, 15, 10))
    with standin:                       # real HTTP server via devstack.net.ServerThread
        requests.post(f"{standin.url}/api/dataValueSets", json=..., auth=("admin", "district"))
        standin.store.values()          # {(de, pe, ou, coc, aoc): "12", ...}
        standin.faults.fail_next(2, status=503, path="/api/dataValueSets")

Choices where the reference is silent (recorded here so nobody mistakes them
for observed DHIS2 behaviour):
- Only JSON bodies are imported; XML, ADX, CSV and PDF (real DHIS2 formats)
  get 415 like any other content type. A missing Content-Type is reported as
  ``application/octet-stream``.
- Check order for the import endpoint: authentication, 415, 400 (parameter
  binding), then 403 (``@PreAuthorize`` runs when the method is invoked).
- ``GET /api/dataValueSets`` validates like ``DataValueSetService.validate``:
  E2001 (no data set/element), E2002 (no period or dates), E2006 (no org unit),
  E2008 (children without org unit) as 409 WebMessages with ``errorCode``.
  Unknown ids are dropped before that check. The set header (dataSet,
  completeDate, period, orgUnit) is written only for one data set, period and
  org unit, as the export does for a "single data value set".
- Export timestamps use ``yyyy-MM-ddTHH:mm:ss.SSS`` on every version.
- ``/api/system/ping`` needs no authentication.
- ``completeDataSetRegistrations`` uses old-style ``{object, value}`` conflicts
  and rejects unassigned org units only with ``strictOrganisationUnits``.
"""

from __future__ import annotations

import copy
import json
import secrets
import socket
import string
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, g, redirect, request

from ..net import ServerThread
from .auth import DEFAULT_USER, SUPERUSER, Authenticator, User
from .faults import Fault, FaultPlan
from .importer import (
    STRICT_SETTINGS,
    BadParameter,
    ImportContext,
    ImportOptions,
    fmt_date,
    import_data_value_set,
)
from .metadata import COLLECTIONS, Metadata, matches_filter, parse_fields, project
from .periods import PERIOD_TYPES, parse_period
from .responses import error, import_response, json_response, web_message
from .store import Job, RecordedRequest, Store
from .versions import Dhis2Version

UID_CHARS = string.ascii_letters + string.digits
JSON_TYPES = {"application/json"}
E2002 = (
    "At least one period, start/end dates, last updated or last updated duration must be specified"
)
PUBLIC_PATHS = {"/api/system/ping"}


def new_uid() -> str:
    return secrets.choice(string.ascii_letters) + "".join(
        secrets.choice(UID_CHARS) for _ in range(10)
    )


def fmt_ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _period_name(iso: str) -> str:
    """I18nFormat.formatPeriod for monthly periods ("January 2024"); others keep their ISO."""
    parsed = parse_period(iso)
    if parsed is not None and parsed.type_name == "Monthly":
        return parsed.start.strftime("%B %Y")
    return iso


def default_settings(version: Dhis2Version) -> dict[str, Any]:
    """The import system settings a fresh install has: all false, except the
    ``strictDataSet*`` ones, true from 2.39.1 (2.39.1 SettingKey.java:151-164)."""
    out: dict[str, Any] = {}
    for key in STRICT_SETTINGS:
        if "DataSet" in key:
            if version.strict_dataset_options:
                out[key] = True
        else:
            out[key] = False
    return out


class Dhis2StandIn:
    """A DHIS2 Web API stand-in: metadata, a data-value store, auth and faults.

    ``version`` picks the release imitated, any ``2.<minor>[.<patch>[.<hotfix>]]``
    from 2.36 to 2.42 ("2.36.6", "2.37.10", "2.39.1", "2.42.0"...); behaviour changes
    at the patch releases DHIS2 changed it. ``ignore_unchanged`` pins DHIS2-15254
    regardless of patch. ``now`` is the server clock (naive, server-local) used for
    locking, export timestamps and ``serverDate``; ``set_now`` changes it.
    ``async_delay`` is how long an async job waits before it starts.

    Users: without ``users``, ``admin``/``district`` is the realistic integration user
    of docs/operator-guide.md §2 (F_DATAVALUE_ADD only, capture units over the whole
    tree, every data set shared "data can capture"), plus the metadata's ``users``.
    ``superuser=True`` makes that admin a superuser (ALL) instead, for tests whose
    subject is not authority or locking. ``settings`` are system settings
    (``keyDataImportStrictOrganisationUnits``...).
    """

    def __init__(
        self,
        metadata: dict[str, Any] | None = None,
        version: str = "2.41.1",
        users: list[User | dict[str, Any]] | None = None,
        tokens: dict[str, str] | None = None,
        now: Callable[[], datetime] | None = None,
        async_delay: float = 0.05,
        ignore_unchanged: bool | None = None,
        superuser: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> None:
        if metadata is None:
            from ..deployment import dhis2_metadata

            metadata = dhis2_metadata()
        self.version = Dhis2Version.parse(version, ignore_unchanged)
        self.metadata = Metadata.from_dict(metadata)
        admin = copy.deepcopy(SUPERUSER if superuser else DEFAULT_USER)
        raw_users = list(users) if users is not None else [admin, *metadata.get("users", [])]
        user_list = [
            copy.deepcopy(u) if isinstance(u, User) else User.from_dict(u) for u in raw_users
        ]
        self.auth = Authenticator(self.version, user_list, tokens or {})
        self.now: Callable[[], datetime] = now or _utcnow
        self.async_delay = async_delay
        self.settings: dict[str, Any] = default_settings(self.version)
        self.settings.update(settings or {})
        self.store = Store()
        self.faults = FaultPlan()
        self.app = build_app(self)
        self._server: ServerThread | None = None

    # -- running -------------------------------------------------------------

    def start(self, port: int = 0, host: str = "127.0.0.1") -> Dhis2StandIn:
        self._server = ServerThread(self.app, host=host, port=port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not running: call start() first")
        return self._server.url

    def __enter__(self) -> Dhis2StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- conveniences for tests ------------------------------------------------

    def add_user(self, user: User | dict[str, Any]) -> User:
        u = user if isinstance(user, User) else User.from_dict(user)
        self.auth.users[u.username] = u
        return u

    def add_token(self, username: str, token: str | None = None) -> str:
        return self.auth.add_token(username, token)

    def user(self, username: str) -> User:
        """The user object (change its authorities, org units or sharing in place)."""
        return self.auth.users[username]

    def set_now(self, when: datetime) -> None:
        """Fix the server clock ("now") at ``when`` (naive, server-local time)."""
        self.now = lambda: when

    def set_setting(self, key: str, value: Any) -> None:
        """A system setting, as ``POST /api/systemSettings/{key}`` stores it."""
        self.settings[key] = value

    def add_lock_exception(self, data_set: str, period: str, org_unit: str) -> None:
        """A lock exception, as ``POST /api/lockExceptions?ds=&pe=&ou=`` makes one."""
        parsed = parse_period(period)
        if parsed is None:
            raise ValueError(f"not an ISO period: {period!r}")
        self.store.add_lock_exception(data_set, parsed.iso, org_unit, self.now())

    def approve(self, data_set: str, period: str, org_unit: str, aoc: str | None = None) -> None:
        """Approve (data set's workflow, period, org unit, AOC); a data set without a
        ``workflow`` gets one named after it, since approval needs a workflow."""
        ds = self.metadata.get("dataSets", data_set)
        parsed = parse_period(period)
        if ds is None or parsed is None:
            raise ValueError(f"unknown data set or period: {data_set!r}, {period!r}")
        workflow = ds.setdefault("workflow", {"id": f"wf{data_set[:9]}"})["id"]
        with self.store.lock:
            self.store.approvals.add(
                (workflow, parsed.iso, org_unit, aoc or self.metadata.default_coc)
            )

    def import_context(self, user: User) -> ImportContext:
        return ImportContext(
            self.version, self.metadata, self.store, user, self.now, dict(self.settings)
        )


def create_app(
    metadata: dict[str, Any] | None = None,
    version: str = "2.41.1",
    users: list[User | dict[str, Any]] | None = None,
    tokens: dict[str, str] | None = None,
    now: Callable[[], datetime] | None = None,
    **kwargs: Any,
) -> Flask:
    """The Flask app alone; ``app.extensions["dhis2_standin"]`` holds the stand-in."""
    return Dhis2StandIn(metadata, version, users, tokens, now, **kwargs).app


# -- the app -----------------------------------------------------------------------


def build_app(s: Dhis2StandIn) -> Flask:  # noqa: C901 - one place that lists the routes
    app = Flask("dhis2_standin")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["dhis2_standin"] = s
    v = s.version

    def api_route(
        rule: str, methods: list[str]
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``/api<rule>`` and ``/api/<n><rule>`` (a versioned API path)."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            app.add_url_rule(
                f"/api{rule}", fn.__name__, fn, methods=methods, defaults={"api_version": None}
            )
            app.add_url_rule(f"/api/<int:api_version>{rule}", fn.__name__, fn, methods=methods)
            return fn

        return decorate

    # -- cross-cutting: recording, faults, authentication -------------------------

    @app.before_request
    def before() -> Response | None:
        body = request.get_data(cache=True)
        rec = RecordedRequest(
            request.method,
            request.path,
            request.query_string.decode("latin-1"),
            {k: request.args.getlist(k) for k in request.args},
            {
                k: v
                for k, v in request.headers.items()
                if k.lower() not in ("authorization", "cookie")
            },
            body,
            s.now(),
        )
        g.rec = rec
        if request.path.startswith("/__standin__"):
            return None
        s.store.record(rec)
        fault = s.faults.take(request.method, request.path)
        if fault is not None:
            rec.fault = fault.kind
            if fault.kind == "drop_after":
                g.drop_after = True
            answer = _apply_fault(fault)
            if answer is not None:
                return answer
        if request.path in PUBLIC_PATHS or request.path == v.login_path:
            return None
        user, failure, basic = s.auth.authenticate(
            request.headers.get("Authorization"),
            request.cookies.get("JSESSIONID"),
            request.headers.get("X-Requested-With", "") == "XMLHttpRequest",
            request.host_url.rstrip("/") + v.login_path,
        )
        if failure is not None:
            if failure.redirect:
                return redirect(failure.redirect, 302)  # type: ignore[return-value]
            return error(failure.status, failure.message or "", headers=failure.headers)
        g.user = user
        g.new_session = basic and request.cookies.get("JSESSIONID") not in s.auth.sessions
        return None

    @app.after_request
    def after(resp: Response) -> Response:
        rec = g.get("rec")
        if rec is not None:
            rec.status = resp.status_code
        if g.get("new_session") and g.get("user") is not None:
            sid = s.auth.new_session(g.user.username)
            resp.set_cookie("JSESSIONID", sid, path="/", httponly=True)
        if g.get("drop_after"):
            _drop_connection()
        return resp

    @app.teardown_request
    def finished(_exc: BaseException | None) -> None:
        rec = g.get("rec")
        if rec is not None:
            rec.finished.set()

    def _drop_connection() -> None:
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _apply_fault(fault: Fault) -> Response | None:
        if fault.kind == "delay":
            time.sleep(fault.seconds)
            return None
        if fault.kind == "drop_after":
            return None  # handled normally; the answer is lost in after()
        if fault.kind == "drop":
            _drop_connection()
            return Response(b"", status=500)
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if fault.kind == "garbage":
            body = (
                fault.body
                or "<html><body><h1>Bad Gateway</h1><hr><center>nginx</center></body></html>"
            )
            return Response(body, status=fault.status, mimetype="text/html", headers=headers)
        if fault.body is not None:
            return Response(fault.body, status=fault.status, headers=headers)
        if fault.status in (500, 401, 403, 404, 409):
            message = "Unauthorized" if fault.status == 401 else f"Injected fault {fault.status}"
            return error(fault.status, message, headers=headers)
        phrase = HTTPStatus(fault.status).phrase
        title = f"{fault.status} {phrase}"
        page = (
            f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1>"
            "</center><hr><center>nginx</center></body></html>"
        )
        return Response(page, status=fault.status, mimetype="text/html", headers=headers)

    def user() -> User:
        return g.user  # type: ignore[no-any-return]

    # -- login page, system ---------------------------------------------------------

    @app.get(v.login_path)
    def login_page() -> Response:
        return Response("<html><body>DHIS 2 login</body></html>", mimetype="text/html")

    @api_route("/system/ping", ["GET"])
    def ping(api_version: int | None) -> Response:
        return Response("pong", mimetype="text/plain")

    @api_route("/system/info", ["GET"])
    def system_info(api_version: int | None) -> Response:
        info: dict[str, Any] = {
            "contextPath": request.host_url.rstrip("/"),
            "userAgent": request.headers.get("User-Agent", ""),
            "calendar": "iso8601",
            "dateFormat": "yyyy-mm-dd",
            "serverDate": fmt_ts(s.now()),
            "serverTimeZoneId": "Etc/UTC",
            "serverTimeZoneDisplayName": "Coordinated Universal Time",
            "version": v.raw,
            "revision": "a1b2c3d",
            "buildTime": "2024-08-01T12:00:00.000",
            "encryption": False,
            "emailConfigured": False,
            "redisEnabled": False,
            "systemId": "eed3d451-4ff5-4193-b951-ffcc68954299",
            "systemName": "DHIS 2",
            "isMetadataVersionEnabled": True,
            "isMetadataSyncEnabled": False,
        }
        if user().is_super:
            info.update(
                {
                    "javaVersion": "17.0.12",
                    "javaVendor": "Eclipse Adoptium",
                    "osName": "Linux",
                    "databaseInfo": {"type": "PostgreSQL", "name": "dhis2", "spatialSupport": True},
                    "cpuCores": 4,
                }
            )
        return json_response(info)

    @api_route("/me", ["GET"])
    def me(api_version: int | None) -> Response:
        """The current user, as each release shapes it.

        2.36/2.37 serialise ``User``: ``username`` only inside ``userCredentials``
        (User.getUsername has no @JsonProperty, 2.36.13.2 User.java:300), and
        ``authorities`` appended when ``fields`` is ``*``, a preset or names it
        (MeController 2.36.13.2:157-193). 2.38-2.41 serialise ``MeDto``: top-level
        ``username`` and ``authorities`` plus ``userCredentials`` (2.41.0 MeDto.java:
        61-101, MeController 2.41.0:185-190); 2.42's MeDto has no ``userCredentials``.
        ``dataViewOrganisationUnits`` is the user's own list, without the fallback.
        """
        u = user()
        fields = request.args.get("fields") or "*"
        capture = u.capture_roots(s.metadata.roots())
        obj: dict[str, Any] = {"id": u.uid}
        if v.me_top_level_username:
            obj["username"] = u.username
        obj.update({"name": u.name, "displayName": u.name})
        if v.me_user_credentials:
            obj["userCredentials"] = {"username": u.username}
        obj["organisationUnits"] = [{"id": o} for o in capture]
        obj["dataViewOrganisationUnits"] = [{"id": o} for o in u.data_view_organisation_units or []]
        tree = parse_fields(fields)
        body = project(s.metadata, obj, tree)
        names = [f.strip() for f in fields.split(",")]
        wants_authorities = any("authorities" in f or f == "*" or f.startswith(":") for f in names)
        if wants_authorities:
            body["authorities"] = sorted(u.authorities)
        return json_response(body)

    # -- system settings (SystemSettingController / 2.42 SystemSettingsController) -------

    def _setting_answer(key: str) -> Response:
        known = key in s.settings or key in STRICT_SETTINGS
        if not known and v.settings_404 is not None:
            message = v.settings_404 + (key if v.settings_404.endswith(": ") else "")
            return error(404, message, "E1005")
        value = s.settings.get(key, "")
        accept = request.accept_mimetypes
        if accept["text/plain"] > accept["application/json"]:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            return Response(text, mimetype="text/plain", headers={"Cache-Control": "no-cache"})
        return json_response({key: value})

    @api_route("/systemSettings/<key>", ["GET"])
    def get_setting(key: str, api_version: int | None) -> Response:
        """``{key: value}`` as JSON (``"false"`` as text/plain); unknown keys: ``{key: ""}``
        up to 2.40, 404 on 2.41/2.42 (2.40.12 SystemSettingController.java:193-243;
        2.41.9.1:193-230; 2.42.5.2 SystemSettingsController.java checkKeyExists)."""
        return _setting_answer(key)

    @api_route("/systemSettings/<key>", ["POST"])
    def post_setting(key: str, api_version: int | None) -> Response:
        """Set a setting (``?value=`` or the body); needs F_SYSTEM_SETTING or ALL
        (2.37.0 SystemSettingController.java:103-107)."""
        if not user().has("F_SYSTEM_SETTING"):
            return error(403, v.access_denied_message)
        raw = request.args.get("value")
        if raw is None:
            raw = request.get_data(as_text=True).strip().strip('"')
        value: Any = {"true": True, "false": False}.get(raw.lower(), raw)
        s.set_setting(key, value)
        return json_response(
            web_message(200, f"System setting '{key}' set to value '{raw}'.", "OK")
        )

    # -- lock exceptions (LockExceptionController) -------------------------------------

    @api_route("/lockExceptions", ["GET"])
    def get_lock_exceptions(api_version: int | None) -> Response:
        """``{pager, lockExceptions: [{name, period, organisationUnit, dataSet, created}]}``
        (LockExceptionController 2.36.0 getLockExceptions, LockException.java 2.41.9.1).
        Nested objects are shown as ``{"id": ...}``; ``filter`` and ``fields`` apply."""
        md = s.metadata
        with s.store.lock:
            found = list(s.store.lock_exceptions)
        items = []
        for e in found:
            ds_name = (md.get("dataSets", e.data_set) or {}).get("name", e.data_set)
            ou_name = (md.get("organisationUnits", e.org_unit) or {}).get("name", e.org_unit)
            items.append(
                {
                    "name": f"{ds_name} ({ou_name}, {_period_name(e.period)})",
                    "period": {"id": e.period},
                    "organisationUnit": {"id": e.org_unit},
                    "dataSet": {"id": e.data_set},
                    "created": fmt_ts(e.created),
                }
            )
        for expr in request.args.getlist("filter"):
            items = [o for o in items if matches_filter(o, expr)]
        tree = parse_fields(request.args.get("fields") or "*")
        body: dict[str, Any] = {}
        if request.args.get("paging", "true").lower() != "false":
            size = max(1, int(request.args.get("pageSize", "50") or 50))
            page = max(1, int(request.args.get("page", "1") or 1))
            body["pager"] = {
                "page": page,
                "pageCount": max(1, -(-len(items) // size)),
                "total": len(items),
                "pageSize": size,
            }
            items = items[(page - 1) * size : page * size]
        body["lockExceptions"] = [project(md, o, tree) for o in items]
        return json_response(body)

    @api_route("/lockExceptions", ["POST"])
    def post_lock_exception(api_version: int | None) -> Response:
        """``POST /api/lockExceptions?ou=&pe=&ds=`` (``ou`` may be ``[a,b]``), as
        LockExceptionController.addLockException does per release (2.36.0:222-292,
        2.37.0:220-290, 2.42.5.2 addLockException/canCapture)."""
        u = user()
        md = s.metadata
        ou_arg, pe_arg, ds_arg = (request.args.get(k) for k in ("ou", "pe", "ds"))
        if ou_arg is None or pe_arg is None or ds_arg is None:
            missing = next(k for k in ("ou", "pe", "ds") if request.args.get(k) is None)
            return error(
                400,
                f"Required request parameter '{missing}' for method parameter "
                "type String is not present",
            )
        ds = md.get("dataSets", ds_arg)
        period = parse_period(pe_arg)
        if ds is None or period is None:
            return error(409, " DataSet or Period is invalid")
        if not u.can_update(ds["id"]):
            return error(403, "You don't have the proper permissions to update this object")
        if ou_arg.startswith("[") and ou_arg.endswith("]"):
            ids = [x for x in ou_arg[1:-1].split(",")]
        else:
            ids = [ou_arg] if ou_arg else []
        if not ids:
            return error(409, ("" if v.minor >= 42 else " ") + "OrganisationUnit ID is invalid.")
        added = False
        for ident in ids:
            ou = md.get("organisationUnits", ident)
            if ou is None:
                return error(409, f"Can't find OrganisationUnit with id ={ident}")
            capture = u.capture_roots(md.roots())
            if v.lock_exception_needs_capture and not (
                u.is_super or any(f"/{r}/" in f"{ou['path']}/" for r in capture)
            ):
                return error(
                    403,
                    "You can only add a lock exceptions to your data capture organisation units.",
                )
            if any(o["id"] == ou["id"] for o in ds["organisationUnits"]):
                s.store.add_lock_exception(ds["id"], period.iso, ou["id"], s.now())
                added = True
        if added:
            return json_response(web_message(201, "LockException created successfully.", "OK"), 201)
        if v.minor >= 38:
            return error(
                409,
                f"None of the target organisation unit(s) {','.join(ids)} is linked to the "
                f"specified data set: {ds_arg}",
            )
        # 2.36 sends nothing (200, empty body); 2.37 returns null under @ResponseStatus(204)
        return Response(b"", status=200 if v.minor == 36 else 204)

    @api_route("/lockExceptions", ["DELETE"])
    def delete_lock_exception(api_version: int | None) -> Response:
        """``DELETE /api/lockExceptions?pe=&ds=[&ou=]``: 204 (deleteLockException)."""
        ds = s.metadata.get("dataSets", request.args.get("ds"))
        period = parse_period(request.args.get("pe"))
        if ds is None or period is None:
            return error(
                409,
                "Can't find LockException with combination: dataSet="
                f"{request.args.get('ds')}, period={request.args.get('pe')}",
            )
        if not user().can_update(ds["id"]):
            return error(403, "You don't have the proper permissions to delete this object.")
        ou = s.metadata.get("organisationUnits", request.args.get("ou"))
        s.store.remove_lock_exceptions(ds["id"], period.iso, ou["id"] if ou else None)
        return Response(b"", status=204)

    @api_route("/periodTypes", ["GET"])
    def period_types(api_version: int | None) -> Response:
        fields = request.args.get("fields")
        items = [
            project(s.metadata, p, parse_fields(fields)) if fields else p for p in PERIOD_TYPES
        ]
        return json_response({"periodTypes": items})

    # -- metadata ------------------------------------------------------------------

    @api_route("/<collection>", ["GET"])
    def metadata_list(collection: str, api_version: int | None) -> Response:
        if collection not in COLLECTIONS:
            return error(404, f"No endpoint for {collection}")
        md = s.metadata
        objs = [md.api_object(collection, o) for o in md.objects[collection].values()]
        for expr in request.args.getlist("filter"):
            objs = [o for o in objs if matches_filter(o, expr)]
        tree = parse_fields(request.args.get("fields") or "id,displayName")
        total = len(objs)
        body: dict[str, Any] = {}
        if request.args.get("paging", "true").lower() != "false":
            page_size = max(1, int(request.args.get("pageSize", "50") or 50))
            page = max(1, int(request.args.get("page", "1") or 1))
            page_count = max(1, -(-total // page_size))
            pager: dict[str, Any] = {
                "page": page,
                "total": total,
                "pageSize": page_size,
                "pageCount": page_count,
            }
            base = f"{request.host_url.rstrip('/')}{request.path}"
            if page < page_count:
                pager["nextPage"] = f"{base}?page={page + 1}"
            if page > 1:
                pager["prevPage"] = f"{base}?page={page - 1}"
            body["pager"] = pager
            objs = objs[(page - 1) * page_size : page * page_size]
        body[collection] = [project(md, o, tree) for o in objs]
        return json_response(body)

    @api_route("/<collection>/<ident>", ["GET"])
    def metadata_get(collection: str, ident: str, api_version: int | None) -> Response:
        if collection not in COLLECTIONS:
            return error(404, f"No endpoint for {collection}")
        md = s.metadata
        obj = md.get(collection, ident)
        if obj is None:
            klass = COLLECTIONS[collection][0]
            return error(
                404, f"{klass} with id {ident} could not be found.", v.not_found_error_code
            )
        tree = parse_fields(request.args.get("fields") or "*")
        return json_response(project(md, md.api_object(collection, obj), tree))

    # -- data value sets -------------------------------------------------------------

    def _import_options() -> ImportOptions | Response:
        """What both import POSTs check first, in DHIS2's order: the content type
        (415), then the import parameters (400)."""
        mimetype = (request.mimetype or "").lower()
        if mimetype not in JSON_TYPES:
            shown = request.headers.get("Content-Type") or "application/octet-stream"
            return error(415, f"Content type '{shown}' not supported")
        try:
            return ImportOptions.from_args({k: request.args.getlist(k) for k in request.args})
        except BadParameter as exc:
            return error(400, str(exc))

    @app.post("/api/dataValueSets.json", defaults={"api_version": None})
    @api_route("/dataValueSets", ["POST"])
    def post_data_value_sets(api_version: int | None) -> Response:
        opts = _import_options()
        if isinstance(opts, Response):
            return opts
        if not user().has("F_DATAVALUE_ADD"):
            return error(403, v.access_denied_message)
        body = request.get_data(cache=True)
        if opts.async_:
            return _start_job(body, opts)
        summary = import_data_value_set(body, opts, s.import_context(user()))
        return import_response(summary, v.plain_import_response(api_version))

    def _start_job(body: bytes, opts: ImportOptions) -> Response:
        created = s.now()
        epoch_ms = int(created.replace(tzinfo=UTC).timestamp() * 1000)
        job = Job(new_uid(), v.job_name(epoch_ms), created, status=v.initial_job_status)
        with s.store.lock:
            s.store.jobs[job.uid] = job
        ctx = s.import_context(user())
        threading.Thread(target=_run_job, args=(job, body, opts, ctx), daemon=True).start()
        endpoint = f"/api/system/tasks/DATAVALUE_IMPORT/{job.uid}"
        response: dict[str, Any] = {}
        if v.job_response_type:
            response["responseType"] = v.job_response_type
        response.update(
            {
                "name": job.name,
                "id": job.uid,
                "created": fmt_ts(created),
                "jobType": "DATAVALUE_IMPORT",
                "jobStatus": job.status,
                "jobParameters": opts.echo(v),
                "relativeNotifierEndpoint": endpoint,
            }
        )
        location = f"{request.host_url.rstrip('/')}/api/system/tasks/DATAVALUE_IMPORT"
        return json_response(
            web_message(200, f"Initiated {job.name}", "OK", response), 200, {"Location": location}
        )

    def _notify(job: Job, message: str, level: str = "INFO", completed: bool = False) -> None:
        entry = {
            "uid": new_uid(),
            "level": level,
            "category": "DATAVALUE_IMPORT",
            "time": fmt_ts(s.now()),
            "message": message,
            "completed": completed,
        }
        with s.store.lock:
            job.notifications.insert(0, entry)

    def _run_job(job: Job, body: bytes, opts: ImportOptions, ctx: ImportContext) -> None:
        time.sleep(s.async_delay)
        job.status = "RUNNING"
        _notify(job, "Process started")
        _notify(job, "Importing data values")
        summary = import_data_value_set(body, opts, ctx)
        counts = summary["importCount"]
        if summary["status"] == "ERROR" and summary["description"].startswith(
            "The import process failed"
        ):
            _notify(
                job, "Process failed: " + summary["description"].split(": ", 1)[1], "ERROR", True
            )
        elif summary["status"] == "ERROR":
            _notify(job, "Import process aborted", "WARN", True)
        elif v.minor >= 41:
            _notify(job, "Import done")
            _notify(
                job,
                f"Import complete with status {summary['status']}, {counts['imported']} created, "
                f"{counts['updated']} updated, {counts['deleted']} deleted, "
                f"{counts['ignored']} ignored",
                "INFO",
                True,
            )
        else:
            _notify(job, "Import done", "INFO", True)
        with s.store.lock:
            job.summary = summary
            job.status = "COMPLETED" if summary["status"] != "ERROR" else "FAILED"

    @api_route("/system/tasks/DATAVALUE_IMPORT", ["GET"])
    def tasks_all(api_version: int | None) -> Response:
        with s.store.lock:
            return json_response({uid: list(j.notifications) for uid, j in s.store.jobs.items()})

    @api_route("/system/tasks/DATAVALUE_IMPORT/<uid>", ["GET"])
    def tasks(uid: str, api_version: int | None) -> Response:
        with s.store.lock:
            job = s.store.jobs.get(uid)
            return json_response(list(job.notifications) if job else [])

    @api_route("/system/taskSummaries/DATAVALUE_IMPORT/<uid>", ["GET"])
    def task_summary(uid: str, api_version: int | None) -> Response:
        with s.store.lock:
            job = s.store.jobs.get(uid)
            if job is None or job.summary is None:
                return Response(b"", status=200)
            return json_response(job.summary)

    @app.get("/api/dataValueSets.json", defaults={"api_version": None})
    @api_route("/dataValueSets", ["GET"])
    def get_data_value_sets(api_version: int | None) -> Response:
        md = s.metadata
        args = request.args
        data_sets = [d for d in args.getlist("dataSet") if md.get("dataSets", d)]
        elements = {d for d in args.getlist("dataElement") if md.get("dataElements", d)}
        periods = [p for p in (parse_period(x) for x in args.getlist("period")) if p]
        start, end = args.get("startDate"), args.get("endDate")
        ous = [o for o in args.getlist("orgUnit") if md.get("organisationUnits", o)]
        children = args.get("children", "false").lower() == "true"
        # decideAccess runs before validate (2.36.13.2 DVSS:447-448; 2.42.5.2 DVSS:365-366)
        refused = _read_refusal(user(), data_sets, ous)
        if refused is not None:
            return refused
        # validate: every failing rule overwrites the error, the LAST one is thrown
        # (2.36.13.2 DVSS:339-397; 2.42.5.2 DVSS:273-321)
        problem: tuple[str, str] | None = None
        if not data_sets and not elements and not args.getlist("dataElementGroup"):
            problem = (
                "E2001",
                "At least one data element, data set or data element group must be specified",
            )
        if not periods and not (start and end) and not args.get("lastUpdated"):
            problem = ("E2002", E2002)
        if periods and start and end:
            problem = ("E2003", "Both periods and start/end date cannot be specified")
        if start and end:
            try:
                if date.fromisoformat(start) > date.fromisoformat(end):
                    problem = ("E2004", "Start date must be before end date")
            except ValueError:
                problem = ("E2004", "Start date must be before end date")
        if not ous and not args.getlist("orgUnitGroup"):
            problem = (
                "E2006",
                "At least one organisation unit or organisation unit group must be specified",
            )
        if children and args.getlist("orgUnitGroup"):
            problem = (
                "E2007",
                "Organisation unit children cannot be included for organisation unit groups",
            )
        if children and not ous:
            problem = (
                "E2008",
                "At least one organisation unit must be specified when children are included",
            )
        if problem is not None:
            return error(409, problem[1], problem[0])
        for d in data_sets:
            elements |= {e["dataElement"]["id"] for e in md.get("dataSets", d)["dataSetElements"]}  # type: ignore[index]
        wanted_ous = set(ous)
        if children:
            for o in ous:
                wanted_ous |= set(md.descendants(o))
        iso = {p.iso for p in periods}
        d0 = date.fromisoformat(start) if start else None
        d1 = date.fromisoformat(end) if end else None
        include_deleted = args.get("includeDeleted", "false").lower() == "true"
        rows = []
        for r in sorted(s.store.rows(include_deleted), key=lambda r: r.key):
            if r.data_element not in elements or r.org_unit not in wanted_ous:
                continue
            if iso and r.period not in iso:
                continue
            if d0 and d1:
                rp = parse_period(r.period)
                if rp is None or rp.start < d0 or rp.end > d1:
                    continue
            item: dict[str, Any] = {
                "dataElement": r.data_element,
                "period": r.period,
                "orgUnit": r.org_unit,
                "categoryOptionCombo": r.coc,
                "attributeOptionCombo": r.aoc,
                "value": r.value,
                "storedBy": r.stored_by,
                "created": fmt_ts(r.created),
                "lastUpdated": fmt_ts(r.last_updated),
            }
            if r.comment is not None:
                item["comment"] = r.comment
            item["followup"] = r.followup
            if include_deleted:
                item["deleted"] = r.deleted
            rows.append(item)
        body: dict[str, Any] = {}
        if len(data_sets) == 1 and len(periods) == 1 and len(ous) == 1 and not children:
            body["dataSet"] = data_sets[0]
            reg = s.store.registrations.get((data_sets[0], periods[0].iso, ous[0], md.default_coc))
            if reg and reg.get("completed", True):
                body["completeDate"] = reg["date"]
            body["period"] = periods[0].iso
            body["orgUnit"] = ous[0]
        body["dataValues"] = rows
        return json_response(body)

    def _read_refusal(u: User, data_sets: list[str], ous: list[str]) -> Response | None:
        """``decideAccess``: E2010 without data read sharing on a data set, E2012 for an org
        unit outside the data view units (capture units when none), superusers included
        (2.36.13.2 DVSS:400-437, DefaultOrganisationUnitService.isInUserDataViewHierarchy
        2.36.13.2:564-573; 2.42.5.2 DVSS:323-356). IllegalQueryException -> 409 WebMessage
        with errorCode (CrudControllerAdvice 2.36.13.2:114-119, 2.42.5.2:222-226)."""
        for d in data_sets:
            if not u.can_data_read(d):
                return error(409, f"User is not allowed to read data for data set: `{d}`", "E2010")
        view = u.view_roots(s.metadata.roots())
        for o in ous:
            path = str((s.metadata.get("organisationUnits", o) or {}).get("path", f"/{o}"))
            if not any(f"/{r}/" in f"{path}/" for r in view):
                return error(409, f"User is not allowed to view org unit: `{o}`", "E2012")
        return None

    # -- completeness ---------------------------------------------------------------

    @api_route("/completeDataSetRegistrations", ["POST"])
    def post_registrations(api_version: int | None) -> Response:
        opts = _import_options()
        if isinstance(opts, Response):
            return opts
        return import_response(_register(opts), v.plain_import_response(api_version))

    def _register(opts: ImportOptions) -> dict[str, Any]:
        md = s.metadata
        count = {"imported": 0, "updated": 0, "ignored": 0, "deleted": 0}
        conflicts: list[dict[str, Any]] = []
        summary: dict[str, Any] = {
            "responseType": "ImportSummary",
            "status": "SUCCESS",
            "importOptions": opts.echo(v),
        }
        try:
            payload = json.loads(request.get_data(cache=True) or b"")
            items = payload.get("completeDataSetRegistrations") or []
            if not isinstance(items, list):
                raise ValueError("completeDataSetRegistrations must be an array")
        except (ValueError, AttributeError) as exc:
            summary.update(
                {
                    "status": "ERROR",
                    "description": f"The import process failed: {exc}",
                    "importCount": count,
                    "conflicts": [],
                }
            )
            return summary
        for item in items:
            ds = md.get("dataSets", item.get("dataSet"))
            pe = parse_period(item.get("period"))
            ou = md.get("organisationUnits", item.get("organisationUnit"))
            aoc_id = item.get("attributeOptionCombo") or md.default_coc
            problem: tuple[Any, str] | None = None
            if ds is None:
                problem = (item.get("dataSet"), "Data set not found or not accessible")
            elif pe is None:
                problem = (item.get("period"), "Period not valid")
            elif ou is None:
                problem = (
                    item.get("organisationUnit"),
                    "Organisation unit not found or not accessible",
                )
            elif md.get("categoryOptionCombos", aoc_id) is None:
                problem = (aoc_id, "Attribute option combo not found or not accessible")
            elif opts.strict_org_units and not any(
                o["id"] == ou["id"] for o in ds["organisationUnits"]
            ):
                problem = (
                    ou["id"],
                    f"Data set {ds['id']} is not assigned to organisation unit {ou['id']}",
                )
            if problem is not None:
                conflicts.append({"object": problem[0], "value": problem[1]})
                count["ignored"] += 1
                continue
            assert ds is not None and pe is not None and ou is not None
            key = (ds["id"], pe.iso, ou["id"], aoc_id)
            completed = item.get("completed", True) is not False
            existing = s.store.registrations.get(key)
            if opts.canonical_strategy == "DELETE":
                if existing is None:
                    count["ignored"] += 1
                else:
                    count["deleted"] += 1
                    if not opts.dry_run:
                        del s.store.registrations[key]
                continue
            count["updated" if existing else "imported"] += 1
            if not opts.dry_run:
                s.store.registrations[key] = {
                    "dataSet": ds["id"],
                    "period": pe.iso,
                    "organisationUnit": ou["id"],
                    "attributeOptionCombo": aoc_id,
                    "date": item.get("date") or fmt_date(s.now().date()),
                    "storedBy": item.get("storedBy") or user().username,
                    "completed": completed,
                }
        summary.update(
            {
                "status": "WARNING" if conflicts else "SUCCESS",
                "description": "Import process completed successfully",
                "importCount": count,
                "conflicts": conflicts,
            }
        )
        return summary

    @api_route("/completeDataSetRegistrations", ["GET"])
    def get_registrations(api_version: int | None) -> Response:
        args = request.args
        ous = set(args.getlist("orgUnit"))
        data_sets = set(args.getlist("dataSet"))
        periods = {p.iso for p in (parse_period(x) for x in args.getlist("period")) if p}
        if not ous:
            return error(
                409,
                "At least one organisation unit or organisation unit group must be specified",
                "E2006",
            )
        if not data_sets:
            return error(409, "At least one data set must be specified", "E2013")
        if not periods and not (args.get("startDate") and args.get("endDate")):
            return error(
                409,
                E2002,
                "E2002",
            )
        if args.get("children", "false").lower() == "true":
            for o in list(ous):
                ous |= set(s.metadata.descendants(o))
        regs = [
            r
            for r in s.store.registrations.values()
            if r["dataSet"] in data_sets
            and r["organisationUnit"] in ous
            and (not periods or r["period"] in periods)
        ]
        return json_response({"completeDataSetRegistrations": regs})

    # -- API tokens -------------------------------------------------------------------

    @api_route("/apiToken", ["POST"])
    def create_token(api_version: int | None) -> Response:
        if not v.api_tokens:
            return error(404, "Not Found")
        token = s.add_token(user().username)
        body = web_message(
            201,
            None,
            "OK",
            {
                "responseType": "ApiTokenCreationResponse",
                "key": token,
                "uid": new_uid(),
                "klass": "org.hisp.dhis.security.apikey.ApiToken",
                "errorReports": [],
            },
        )
        return json_response(body, 201)

    # -- admin endpoints for tests (not part of DHIS2) ------------------------------------

    @app.route("/__standin__/faults", methods=["GET", "POST", "DELETE"])
    def admin_faults() -> Response:
        if request.method == "DELETE":
            s.faults.clear()
        elif request.method == "POST":
            raw = request.get_json(force=True)
            try:
                s.faults.add(
                    Fault(
                        kind=raw["kind"],
                        path=raw.get("path", "*"),
                        count=int(raw.get("count", 1)),
                        method=raw.get("method"),
                        status=int(raw.get("status", 503)),
                        seconds=float(raw.get("seconds", 0)),
                        retry_after=raw.get("retryAfter"),
                        body=raw.get("body"),
                        skip=int(raw.get("skip", 0)),
                    )
                )
            except (KeyError, ValueError) as exc:
                return json_response({"error": str(exc)}, 400)
        return json_response({"faults": s.faults.pending()})

    @app.get("/__standin__/values")
    def admin_values() -> Response:
        return json_response(
            [
                {
                    "dataElement": k[0],
                    "period": k[1],
                    "orgUnit": k[2],
                    "categoryOptionCombo": k[3],
                    "attributeOptionCombo": k[4],
                    "value": val,
                }
                for k, val in sorted(s.store.values().items())
            ]
        )

    @app.get("/__standin__/requests")
    def admin_requests() -> Response:
        with s.store.lock:
            items = [
                {
                    "method": r.method,
                    "path": r.path,
                    "query": r.query_string,
                    "status": r.status,
                    "fault": r.fault,
                    "body": r.text,
                }
                for r in s.store.requests
            ]
        return json_response(items)

    @app.post("/__standin__/reset")
    def admin_reset() -> Response:
        s.store.clear()
        s.faults.clear()
        return json_response({"reset": True})

    return app
