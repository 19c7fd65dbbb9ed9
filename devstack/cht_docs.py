"""Builders for CHT documents in their real shapes (cht-export.md §2.1, §5).

Used by the tests, the demo deployment and the benchmark so that every one of
them loads the same kind of data into the CouchDB server.
"""

from __future__ import annotations

from typing import Any

# medic-admin/contacts_by_dhis_orgunit, written from its description in
# cht-export.md §2.3(2): emit each dhis orgUnit of contacts of the five types.
CONTACTS_BY_DHIS_ORGUNIT_MAP = """function (doc) {
  var types = ['contact', 'person', 'clinic', 'health_center', 'district_hospital'];
  if (!doc.dhis || types.indexOf(doc.type) === -1) {
    return;
  }
  var entries = Array.isArray(doc.dhis) ? doc.dhis : [doc.dhis];
  entries.forEach(function (entry) {
    if (entry && entry.orgUnit) {
      emit(entry.orgUnit);
    }
  });
}"""


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


def user_settings(username: str, contact_id: str, facility_id: str) -> dict[str, Any]:
    return {
        "_id": f"org.couchdb.user:{username}",
        "name": username,
        "type": "user-settings",
        "contact_id": contact_id,
        "facility_id": facility_id,
        "known": True,
    }


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
