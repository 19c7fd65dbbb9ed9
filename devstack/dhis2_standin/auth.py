"""Users, personal access tokens, sessions and the answers DHIS2 gives when
authentication fails (dhis2.md §3).

- Basic with a wrong password: 401 JSON, no ``WWW-Authenticate``.
- No credentials: 302 to the login page, or 401 JSON with
  ``X-Requested-With: XMLHttpRequest``.
- ``ApiToken`` (2.37+): malformed header 400, unknown token 401 with
  ``WWW-Authenticate: ApiToken``; on 2.41+ a ``d2p_``/``d2pat_`` token whose
  checksum is wrong gets 400 "Checksum validation failed" before the lookup.
  The checksum rule is the stand-in's own (CRC32 of prefix+secret, 10 digits
  for ``d2pat_``, 6 base62 chars for ``d2p_``); ``make_token`` mints tokens
  that pass it. Registered tokens are always accepted.
- ``ApiToken`` on 2.36 (no PAT support there) is answered like failed
  authentication: 401 "Unauthorized" (project decision; the header is not
  understood by 2.36).
- A successful Basic login sets ``JSESSIONID``; the cookie alone then
  authenticates later requests.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from .versions import Dhis2Version

TOKEN_HEADER_RE = re.compile(r"^ApiToken (?P<token>[a-z0-9-._~+/]+=*)$", re.IGNORECASE)
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


# Sharing access strings are DHIS2's 8 characters: metadata read/write, data read/write,
# then 4 unused ("r-rw----" = metadata can view, data can capture).
# AccessStringHelper: 2.41.9.1 dhis-api/.../security/acl/AccessStringHelper.java
CAPTURE_ACCESS = "r-rw----"
NO_ACCESS = "--------"
FULL_ACCESS = "rwrw----"


@dataclass
class User:
    """A DHIS2 user as the import and export code sees it.

    - ``authorities``: what its roles grant; ``ALL`` makes a superuser unless
      ``superuser`` says otherwise (User.isSuper).
    - ``organisation_units``: data capture org units (hierarchy roots); None means
      every root of the metadata (the whole tree).
    - ``data_view_organisation_units``: data view org units; None falls back to the
      capture units, as ``getDataViewOrganisationUnitsWithFallback`` does.
    - ``data_set_access``: sharing access string per data set uid; None gives every
      data set ``r-rw----`` (metadata can view, data can capture), a dict gives the
      listed ones and ``--------`` to the rest.
    - ``category_option_access``: access string per category option uid; an option
      not listed is data-writable and readable.
    """

    username: str
    password: str
    authorities: set[str] = field(default_factory=lambda: {"F_DATAVALUE_ADD"})
    organisation_units: list[str] | None = None
    superuser: bool | None = None
    uid: str = "xE7jOejl9FI"
    name: str = "John Traore"
    disabled: bool = False
    locked: bool = False
    data_view_organisation_units: list[str] | None = None
    data_set_access: dict[str, str] | None = None
    category_option_access: dict[str, str] = field(default_factory=dict)

    @property
    def is_super(self) -> bool:
        return self.superuser if self.superuser is not None else "ALL" in self.authorities

    def has(self, authority: str) -> bool:
        # User.isAuthorized: ALL grants every authority (2.41.9.1 User.java:290-297)
        return "ALL" in self.authorities or authority in self.authorities

    def _data_set(self, ds_id: str) -> str:
        if self.data_set_access is None:
            return CAPTURE_ACCESS
        return self.data_set_access.get(ds_id, NO_ACCESS)

    def can_data_write(self, ds_id: str) -> bool:
        """``aclService.canDataWrite``: superusers always (AclService haveOverrideAuthority)."""
        return self.is_super or self._data_set(ds_id)[3] == "w"

    def can_data_read(self, ds_id: str) -> bool:
        return self.is_super or self._data_set(ds_id)[2] == "r"

    def can_update(self, ds_id: str) -> bool:
        """``aclService.canUpdate``: metadata write sharing."""
        return self.is_super or self._data_set(ds_id)[1] == "w"

    def can_data_write_option(self, option_id: str) -> bool:
        if self.is_super:
            return True
        return self.category_option_access.get(option_id, FULL_ACCESS)[3] == "w"

    def capture_roots(self, all_roots: list[str]) -> list[str]:
        return self.organisation_units if self.organisation_units is not None else all_roots

    def view_roots(self, all_roots: list[str]) -> list[str]:
        """Data view org units, else capture (User.getDataViewOrganisationUnitsWithFallback)."""
        if self.data_view_organisation_units:
            return self.data_view_organisation_units
        return self.capture_roots(all_roots)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> User:
        """From a dict with DHIS2-ish names: ``authorities``, ``organisationUnits``,
        ``dataViewOrganisationUnits``, ``dataSets`` ({uid: access}),
        ``categoryOptions`` ({uid: access}), ``superuser``, ``id``, ``name``."""
        return cls(
            username=raw["username"],
            password=raw["password"],
            authorities=set(raw.get("authorities", ["F_DATAVALUE_ADD"])),
            organisation_units=raw.get("organisationUnits"),
            superuser=raw.get("superuser"),
            uid=raw.get("id", "xE7jOejl9FI"),
            name=raw.get("name", raw["username"]),
            disabled=raw.get("disabled", False),
            locked=raw.get("locked", False),
            data_view_organisation_units=raw.get("dataViewOrganisationUnits"),
            data_set_access=raw.get("dataSets"),
            category_option_access=dict(raw.get("categoryOptions") or {}),
        )


# The integration user the operator guide (docs/operator-guide.md §2) asks for: Add/Update
# data values only (no ALL, no F_EDIT_EXPIRED), capture org units covering the whole tree,
# every data set shared "metadata can view, data can capture".
DEFAULT_USER = User("admin", "district", {"F_DATAVALUE_ADD"}, None, None, "M5zQapPyTZI", "admin")
# The old default: a superuser, for tests whose subject is not authority or locks.
SUPERUSER = User("admin", "district", {"ALL"}, None, None, "M5zQapPyTZI", "admin admin")


def _base62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = BASE62[r] + out
    return out.rjust(width, "0")


def make_token(v2: bool = False) -> str:
    """A PAT in DHIS2's shape whose checksum this stand-in accepts."""
    if v2:
        body = "d2p_" + "".join(secrets.choice(BASE62) for _ in range(38))
        return body + _base62(zlib.crc32(body.encode()), 6)
    body = "d2pat_" + "".join(secrets.choice(BASE62) for _ in range(32))
    return body + str(zlib.crc32(body.encode())).rjust(10, "0")


def checksum_ok(token: str) -> bool:
    if token.startswith("d2pat_") and len(token) == 48 and token[-10:].isdigit():
        return int(token[-10:]) == zlib.crc32(token[:-10].encode())
    if token.startswith("d2p_") and len(token) == 48:
        return token[-6:] == _base62(zlib.crc32(token[:-6].encode()), 6)
    return False


@dataclass
class AuthFailure:
    status: int
    message: str | None
    headers: dict[str, str] = field(default_factory=dict)
    redirect: str | None = None


class Authenticator:
    """Resolves a request's credentials to a user, or to DHIS2's failure answer."""

    def __init__(self, version: Dhis2Version, users: list[User], tokens: dict[str, str]) -> None:
        self.version = version
        self.users = {u.username: u for u in users}
        self.tokens = dict(tokens)  # token -> username
        self.sessions: dict[str, str] = {}  # JSESSIONID -> username
        self._lock = threading.Lock()

    def add_token(self, username: str, token: str | None = None) -> str:
        token = token or make_token(v2=self.version.minor >= 41)
        self.tokens[token] = username
        return token

    def new_session(self, username: str) -> str:
        sid = secrets.token_hex(16).upper()
        with self._lock:
            self.sessions[sid] = username
        return sid

    def authenticate(
        self, authorization: str | None, session_id: str | None, xhr: bool, login_url: str
    ) -> tuple[User | None, AuthFailure | None, bool]:
        """(user, failure, is_basic_login). ``is_basic_login`` asks for a new session."""
        unauthorized = AuthFailure(401, "Unauthorized")
        if authorization:
            scheme, _, rest = authorization.partition(" ")
            if scheme.lower() == "basic":
                try:
                    username, _, password = (
                        base64.b64decode(rest.strip(), validate=True).decode().partition(":")
                    )
                except (binascii.Error, UnicodeDecodeError):
                    return None, unauthorized, False
                user = self.users.get(username)
                if user is None or not secrets.compare_digest(user.password, password):
                    return None, unauthorized, False
                if user.disabled:
                    return None, AuthFailure(401, "Account disabled"), False
                if user.locked:
                    return None, AuthFailure(401, "Account locked"), False
                return user, None, True
            if scheme.lower() == "apitoken":
                return self._token(authorization)
            if scheme.lower() == "bearer":
                return None, unauthorized, False
        if session_id:
            with self._lock:
                known = self.sessions.get(session_id)
            if known and known in self.users:
                return self.users[known], None, False
        if xhr:
            return None, unauthorized, False
        return None, AuthFailure(302, None, redirect=login_url), False

    def _token(self, header: str) -> tuple[User | None, AuthFailure | None, bool]:
        if not self.version.api_tokens:
            return None, AuthFailure(401, "Unauthorized"), False
        match = TOKEN_HEADER_RE.match(header.strip())
        if not match:
            return None, AuthFailure(400, "Api token is malformed"), False
        token = match["token"]
        challenge = {"WWW-Authenticate": 'ApiToken error="invalid_token"'}
        username = self.tokens.get(token)
        if username is None:
            if self.version.checks_token_checksum and not checksum_ok(token):
                return None, AuthFailure(400, "Checksum validation failed"), False
            return None, AuthFailure(401, "The API token does not exists", challenge), False
        user = self.users.get(username)
        if user is None or user.disabled:
            return None, AuthFailure(401, "The API token does not exists", challenge), False
        return user, None, False
