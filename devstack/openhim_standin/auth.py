"""API authentication the way core ≤8.4 does it: Basic, or the legacy token headers.

Modelled choices (reference §3):

* Any request header starting with `auth-` makes the request token-type and Basic
  is not tried, even if an Authorization header is present.
* Token: all four headers non-empty, `auth-ts` within ±10 s of server time,
  user found case-insensitively, the user has a token passport, and
  `auth-token == sha512(sha512(salt + password) + auth-salt + auth-ts)`.
* Basic: email (case-insensitive) + password. Core 8.x compares bcrypt on the
  local passport; a plain comparison is equivalent for a stand-in.
* Failure is 401 with Koa's default text `Unauthorized` and no challenge header.
* Permissions follow the ≤8.4 model: the user's `groups` must contain `admin`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from flask import Request, Response, jsonify

from .jsfmt import js_iso, koa_text, new_object_id, parse_js_date

AUTH_WINDOW_SECONDS = 10
ROOT_SALT = "d9bcb40e-ae65-478f-962e-5e5e5e7d0a01"


def sha512_hex(text: str) -> str:
    return hashlib.sha512(text.encode("utf-8")).hexdigest()


@dataclass
class User:
    """An API user. `token_passport=False` models an 8.x user created with a plain password."""

    email: str
    password: str
    groups: list[str] = field(default_factory=lambda: ["admin"])
    salt: str = field(default_factory=lambda: str(uuid.uuid4()))
    token_passport: bool = True

    @property
    def password_hash(self) -> str:
        return sha512_hex(self.salt + self.password)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.groups


@dataclass
class Client:
    """A router client (Basic auth on the router port); `roles` are matched against `allow`."""

    client_id: str
    password: str
    roles: list[str] = field(default_factory=list)
    _id: str = field(default_factory=new_object_id)


def default_users() -> list[User]:
    """Core's first-start root user, with the salt core ships so hashes match real core."""
    return [User("root@openhim.org", "openhim-password", ["admin"], salt=ROOT_SALT)]


class Authenticator:
    """Resolves the API user of a request, or None (→ 401)."""

    def __init__(self, users: list[User]) -> None:
        self.users = users

    def find(self, email: str) -> User | None:
        wanted = email.lower()
        return next((u for u in self.users if u.email.lower() == wanted), None)

    def authenticate(self, request: Request, now: datetime) -> User | None:
        if any(name.lower().startswith("auth-") for name in request.headers.keys()):
            return self._token(request, now)
        return self._basic(request)

    def _token(self, request: Request, now: datetime) -> User | None:
        username = request.headers.get("auth-username", "")
        ts = request.headers.get("auth-ts", "")
        salt = request.headers.get("auth-salt", "")
        token = request.headers.get("auth-token", "")
        if not (username and ts and salt and token):
            return None
        try:
            sent_at = parse_js_date(ts)
        except ValueError:
            return None
        if abs((now - sent_at).total_seconds()) > AUTH_WINDOW_SECONDS:
            return None
        user = self.find(username)
        if user is None or not user.token_passport:
            return None
        expected = sha512_hex(user.password_hash + salt + ts)
        return user if expected == token else None

    def _basic(self, request: Request) -> User | None:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        email, sep, password = decoded.partition(":")
        user = self.find(email)
        if not sep or user is None or user.password != password:
            return None
        return user

    def salt_response(self, email: str, now: datetime) -> Response:
        """`GET /authenticate/:email` (public): `{salt, ts}` or the two 404 texts of 8.x."""
        user = self.find(email)
        if user is None:
            return koa_text(404, f"Could not find user by email {email}")
        if not user.token_passport:
            return koa_text(404, f"Could not find token passport for user {email}")
        return jsonify({"salt": user.salt, "ts": js_iso(now)})


def not_admin(user: User, fn: str) -> Response:
    """The ≤8.4 permission message; `fn` is core's handler name (quirks included)."""
    return koa_text(403, f"User {user.email} is not an admin, API access to {fn} denied.")


def token_headers(email: str, password: str, salt: str, when: datetime) -> dict[str, str]:
    """Build legacy token headers as mediator-utils ≤0.3 does (handy for tests and tools)."""
    ts = js_iso(when)
    client_salt = str(uuid.uuid4())
    token = sha512_hex(sha512_hex(salt + password) + client_salt + ts)
    return {"auth-username": email, "auth-ts": ts, "auth-salt": client_salt, "auth-token": token}
