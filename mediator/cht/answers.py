"""What CHT's answers mean: the winning revision of a conflicted doc, the shape a
CouchDB list answer must have, and why CHT refused a read, in words that name the fix."""

from __future__ import annotations

from typing import Any

from orjson import loads as decode_json

from mediator.http.client import HttpClient, RetryPolicy
from mediator.http.errors import BadBody, BadShape, PeerError
from mediator.settings.config import ChtSettings


def _rev_key(doc: dict[str, Any]) -> tuple[bool, int, str]:
    pos, _, digest = str(doc.get("_rev", "")).partition("-")
    return (not doc.get("_deleted"), int(pos) if pos.isdigit() else 0, digest)


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


def url_hint(settings: ChtSettings) -> str:
    """A CHT_URL that names the database too (``…/medic``) is the usual slip."""
    if settings.url.rstrip("/").endswith(f"/{settings.db}"):
        return (
            f": CHT_URL ends with /{settings.db}; give the instance's address without it "
            f"(CHT_DB names the database)"
        )
    return ""


def bulk_get_doc(settings: ChtSettings, result: dict[str, Any]) -> dict[str, Any] | None:
    """The doc of one ``_bulk_get`` result at its winning revision; None when missing or
    deleted. CouchDB 3 answers every leaf of a conflicted doc, not only the winner."""
    raw = result.get("docs")
    entries = [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []
    leaves = [e["ok"] for e in entries if isinstance(e.get("ok"), dict)]
    if leaves:
        doc = winning_revision(leaves)
        return None if doc.get("_deleted") else doc
    error = next((e["error"] for e in entries if isinstance(e.get("error"), dict)), None)
    if error is not None and error.get("error") not in (None, "not_found"):
        raise BadBody(
            "CHT",
            f"CHT at {settings.url} could not read doc {result['id']!r}: "
            f"{error.get('error')} ({error.get('reason')})",
        )
    return None


def forbidden_message(settings: ChtSettings, what: str, http: HttpClient) -> str:
    """Why CHT refused a read, in words that name the fix.

    CHT's API refuses offline users the view, the database info and ranges of
    ``_all_docs`` (cht-core 5.2.0 ``api/src/routing.js`` lines 334-386, 826-851). A
    session is online only with the role ``mm-online`` or ``_admin``, which CHT adds
    only to roles configured online in ``app_settings.roles``; a user made by hand
    in CouchDB has no such role (``shared-libs/user-management/src/roles.js``)."""
    user = settings.username or "(no user)"
    start = f"CHT at {settings.url} refused user {user} reading {what} (HTTP 403)"
    fix = (
        "create the mediator's CHT user through CHT's admin app (or POST /api/v1/users) "
        'with a role configured online (without "offline": true) in app_settings.roles'
    )
    roles = _session_roles(settings, http)
    if roles is None:
        return f"{start}: {fix}, or use a CouchDB admin"
    if "_admin" in roles or "mm-online" in roles:
        return (
            f"{start}, although it is an online CHT user: check that the medic database "
            f"{settings.db!r} is right (CHT_DB) and that no proxy rule blocks it"
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


def _session_roles(settings: ChtSettings, http: HttpClient) -> list[str] | None:
    """The user's roles from ``GET /_session`` (CouchDB's, proxied by CHT), or None."""
    try:
        response = http.send(
            "GET", f"{settings.url}/_session", name="reading the session", retry=RetryPolicy(1)
        )
        roles = decode_json(response.content).get("userCtx", {}).get("roles")
    except (PeerError, ValueError, AttributeError):
        return None
    if response.status_code != 200 or not isinstance(roles, list):
        return None
    return [str(role) for role in roles]


def check_shape(settings: ChtSettings, method: str, url: str, body: Any, what: str) -> None:
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
            raise BadShape(
                "CHT",
                f"CHT at {settings.url} answered {what} with an unexpected shape "
                '(expected {"results": [...]} with an id per result): is this CouchDB?',
            )
        return
    if not (path.endswith("/_all_docs") or "/_view/" in path):
        return
    rows = body.get("rows") if isinstance(body, dict) else None
    bad = not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows)
    if not bad and method == "GET" and rows:
        bad = not all(isinstance(row.get("id"), str) for row in rows)
    if bad:
        raise BadShape(
            "CHT",
            f"CHT at {settings.url} answered {what} with an unexpected shape "
            '(expected {"rows": [...]} with an id per row): is this CouchDB?',
        )
