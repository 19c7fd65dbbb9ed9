"""Builders for CHT documents in their real shapes (cht-export.md §2.1, §5).

Used by the tests, the demo deployment and the benchmark so that every one of
them loads the same kind of data into the CouchDB server.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

# medic-admin/contacts_by_dhis_orgunit, byte for byte as cht-core ships it
# (4.0.0 ... 5.2.0 ddocs/medic-db/medic-admin/views/contacts_by_dhis_orgunit/map.js:1-14,
# unchanged). Its quirks are CHT's: a ``null`` entry in a ``dhis`` array throws, and a view
# server then indexes nothing for that doc (CouchDB's couchjs drops a doc's rows when the map
# throws; pouchdb-mapreduce 7 in node buffers emits in a vm and drops them too); a ``dhis``
# without ``orgUnit`` (or a string) emits a ``null`` key.
CONTACTS_BY_DHIS_ORGUNIT_MAP = """function(doc) {
  if (
    doc.dhis &&
    ['contact', 'person', 'clinic', 'health_center', 'district_hospital'].indexOf(doc.type) !== -1
  ) {
    if (Array.isArray(doc.dhis)) {
      for (var i = 0; i < doc.dhis.length; ++i) {
        emit(doc.dhis[i].orgUnit);
      }
    } else {
      emit(doc.dhis.orgUnit);
    }
  }
}
"""

# Who is who in the dev stack's CHT. Roles as CHT's default config writes them (5.2.0
# config/default/app_settings.json ``roles``: ``offline: true`` makes a role offline), plus the
# integration role the operator guide configures online. CHT's API makes every configured role
# a member of the medic database (5.2.0 api/src/services/config-watcher.js:185-193).
CHW_ROLE = "chw"
INTEGRATION_ROLE = "dhis2_integration"
CHT_ROLES: dict[str, dict[str, Any]] = {
    CHW_ROLE: {"name": "usertype.chw", "offline": True},
    "chw_supervisor": {"name": "usertype.chw-supervisor", "offline": True},
    "program_officer": {"name": "usertype.program-officer"},
    INTEGRATION_ROLE: {"name": "usertype.dhis2-integration"},
}
# Permissions from the same default config. The rules engine writes target docs only for
# users whose roles have can_view_tasks or can_view_analytics (5.2.0 webapp
# rules-engine.service.ts:115-121); the integration role needs none for its reads.
CHT_PERMISSIONS: dict[str, list[str]] = {
    "can_edit": ["program_officer", "chw_supervisor", CHW_ROLE],
    "can_create_users": ["program_officer"],
    "can_view_tasks": ["chw_supervisor", CHW_ROLE],
    "can_view_analytics": ["program_officer", "chw_supervisor", CHW_ROLE],
    "can_export_dhis": [],
    "can_skip_password_change": [],
}


def with_cht_access(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with CHT's ``roles`` and ``permissions`` where it has none (real app
    settings always carry both; CHT's export test fixtures leave them out)."""
    out = dict(settings)
    out.setdefault("roles", CHT_ROLES)
    out.setdefault("permissions", CHT_PERMISSIONS)
    return out


def medic_admin_ddoc() -> dict[str, Any]:
    return {
        "_id": "_design/medic-admin",
        "views": {"contacts_by_dhis_orgunit": {"map": CONTACTS_BY_DHIS_ORGUNIT_MAP}},
    }


def settings_doc(settings: dict[str, Any]) -> dict[str, Any]:
    """CHT keeps app settings in the ``settings`` doc of the medic database."""
    return {"_id": "settings", "settings": settings}


def minify(parent: dict[str, Any] | None) -> dict[str, Any] | None:
    """CHT stores lineage as nested ``{_id, parent}`` only."""
    if not parent:
        return None
    out: dict[str, Any] = {"_id": parent["_id"]}
    if parent.get("parent"):
        out["parent"] = minify(parent["parent"])
    return out


def place(
    ident: str,
    name: str,
    contact_type: str,
    parent: dict[str, Any] | None = None,
    dhis: Any = None,
    legacy: bool = False,
) -> dict[str, Any]:
    """A place; ``legacy`` uses the pre-3.7 ``type: <contact type>`` form."""
    doc: dict[str, Any] = {"_id": ident, "name": name}
    if legacy:
        doc["type"] = contact_type
    else:
        doc["type"] = "contact"
        doc["contact_type"] = contact_type
    if parent:
        doc["parent"] = minify(parent)
    if dhis is not None:
        doc["dhis"] = dhis
    return doc


def person(
    ident: str, name: str, parent: dict[str, Any], legacy: bool = False, dhis: Any = None
) -> dict[str, Any]:
    doc = place(ident, name, "person", parent=parent, legacy=legacy, dhis=dhis)
    return doc


def user_settings(
    username: str,
    contact_id: str | None,
    facility_id: str | list[str] | None,
    roles: list[str] | None = None,
) -> dict[str, Any]:
    """The ``user-settings`` doc (``org.couchdb.user:<name>`` in medic) as CHT's users API
    writes it (5.2.0 shared-libs/user-management/src/users.js:452-473, 256-265): ``roles``
    copied from the user, ``facility_id`` a list since multi-place users (users.js:390-400)."""
    doc: dict[str, Any] = {
        "_id": f"org.couchdb.user:{username}",
        "name": username,
        "type": "user-settings",
        "roles": list(roles if roles is not None else [CHW_ROLE]),
    }
    if facility_id is not None:
        doc["facility_id"] = [facility_id] if isinstance(facility_id, str) else list(facility_id)
    if contact_id is not None:
        doc["contact_id"] = contact_id
    return doc


def target_doc(
    month_tag: str,
    owner: str,
    username: str,
    targets: list[dict[str, Any]],
    updated_date: int = 0,
) -> dict[str, Any]:
    """``target~YYYY-MM~<contact>~org.couchdb.user:<user>``, as the rules engine writes it."""
    user = f"org.couchdb.user:{username}"
    return {
        "_id": f"target~{month_tag}~{owner}~{user}",
        "type": "target",
        "user": user,
        "owner": owner,
        "reporting_period": month_tag,
        "updated_date": updated_date,
        "targets": targets,
    }


def target(ident: str, total: float, passed: float | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"pass": total if passed is None else passed, "total": total}
    return {"id": ident, "value": value}


def percent_target(ident: str, passed: int, total: int) -> dict[str, Any]:
    percent = round(passed * 100 / total) if total else 0
    return {"id": ident, "value": {"pass": passed, "total": total, "percent": percent}}


class Conflict(NamedTuple):
    """Revisions that leave one doc with two leaves: ``docs`` for ``_bulk_docs`` with
    ``new_edits: false``, the ``winner`` rev CouchDB picks and the ``loser`` leaf."""

    docs: list[dict[str, Any]]
    winner: str
    loser: str


def _rev_hash(ident: str, label: str, first: str) -> str:
    """A 32-hex revision id; ``first`` fixes where it sorts among its siblings."""
    return first + hashlib.sha256(f"{ident}|{label}".encode()).hexdigest()[1:32]


def _body(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def conflict(
    winner: dict[str, Any], loser: dict[str, Any] | None, base_rev: str | None = None
) -> Conflict:
    """Two sibling revisions of ``winner["_id"]`` on top of ``base_rev`` (a new ``1-`` root
    with the winner's body when None), as a replication from two devices leaves them.

    CouchDB's winner is the non-deleted leaf with the highest generation, then the highest
    revision id (3.5.0 src/couch/src/couch_doc.erl:404-420; PouchDB's ``winningRev`` agrees).
    The winner's id starts with ``f`` and the loser's with ``0``, so the loser comes first in
    rev-tree order, the order CouchDB 3's ``_bulk_get`` lists leaves in (3.5.0
    src/fabric/src/fabric_open_revs.erl:227-231, depth first, siblings by id).
    ``loser=None`` makes the losing branch a deletion one generation deeper: a deleted leaf
    never wins, and still comes first.
    """
    ident = winner["_id"]
    docs: list[dict[str, Any]] = []
    if base_rev is None:
        root = _rev_hash(ident, "root", "8")
        docs.append({**_body(winner), "_id": ident, "_rev": f"1-{root}"})
        pos, ancestry = 1, [root]
    else:
        generation, base_hash = base_rev.split("-", 1)
        pos, ancestry = int(generation), [base_hash]
    win, lose = _rev_hash(ident, "winner", "f"), _rev_hash(ident, "loser", "0")
    winner_rev = f"{pos + 1}-{win}"
    docs.append(
        {
            **_body(winner),
            "_id": ident,
            "_rev": winner_rev,
            "_revisions": {"start": pos + 1, "ids": [win, *ancestry]},
        }
    )
    if loser is None:
        gone = _rev_hash(ident, "deleted", "1")
        loser_rev = f"{pos + 2}-{gone}"
        revisions = {"start": pos + 2, "ids": [gone, lose, *ancestry]}
        docs.append({"_id": ident, "_rev": loser_rev, "_deleted": True, "_revisions": revisions})
    else:
        loser_rev = f"{pos + 1}-{lose}"
        revisions = {"start": pos + 1, "ids": [lose, *ancestry]}
        docs.append({**_body(loser), "_id": ident, "_rev": loser_rev, "_revisions": revisions})
    return Conflict(docs, winner_rev, loser_rev)
