"""What CHT's app settings and contacts map, before any doc is counted.

Which data sets CHT defines (``dhis_data_sets``), which targets feed each DHIS2 data
element (``tasks.targets.items[].dhis``), which org units a place carries (``dhis`` on
the contact), where an owner sits (its stored lineage), which users write target docs
(their roles and ``app_settings.permissions``), and the stable reasons a doc or a
target does not count. As CHT's export reads them (cht-core ``api/src/services/export/
dhis.js``, 5.2.0), with the differences the README names. Pure: no I/O.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_LINEAGE_DEPTH = 50  # CHT's own recursion guard when it minifies lineage


class EngineError(ValueError):
    """A request the configuration cannot answer (bad data set, nothing mapped)."""


# Reasons a target doc, or one target inside it, did not count. Stable strings:
# they appear in reports, OpenHIM properties and tests.
SKIP_NOT_AN_OBJECT = "doc_not_an_object"
SKIP_NOT_A_TARGET = "doc_type_not_target"
SKIP_NO_TARGETS = "doc_without_targets"
SKIP_NO_OWNER = "doc_without_owner"
SKIP_OWNER_MISSING = "owner_not_found"
SKIP_LINEAGE_LOOP = "owner_lineage_loop"
SKIP_LINEAGE_DEEP = "owner_lineage_too_deep"
SKIP_TARGET_NO_VALUE = "target_without_value"
SKIP_TARGET_NON_NUMERIC = "target_value_not_numeric"
SKIP_TARGET_MALFORMED = "target_entry_malformed"
# Not an error: the owner sits under no org unit of this data set.
OUTSIDE_DATA_SET = "owner_outside_data_set"


@dataclass(frozen=True)
class TargetMapping:
    """One (target, data element) pair that qualifies for the data set."""

    target_id: str
    row: tuple[str, str | None, str | None]  # dataElement, categoryOptionCombo, aoc


def data_set_ids(settings: Mapping[str, Any]) -> list[str]:
    sets = settings.get("dhis_data_sets")
    if not isinstance(sets, list):
        return []
    return [str(s["id"]) for s in sets if isinstance(s, Mapping) and s.get("id")]


def data_set_label(
    settings: Mapping[str, Any], data_set: str, translations: Mapping[str, str] | None = None
) -> str:
    """The data set as CHT's human-readable export names it: its ``translation_key``
    translated (cht-core ``dhis.js`` ``makeHumanReadable``), the key itself when CHT has
    no translation for it, the id when it has no key."""
    for entry in settings.get("dhis_data_sets") or []:
        if isinstance(entry, Mapping) and entry.get("id") == data_set:
            key = entry.get("translation_key")
            if not key:
                return data_set
            return (translations or {}).get(str(key), str(key))
    return data_set


# A session is online with either role (cht-core 5.2.0
# shared-libs/user-management/src/roles.js lines 16-32); CHT's user management adds
# mm-online to a user whose roles are configured online in app_settings.roles.
ONLINE_ROLES = frozenset({"_admin", "mm-online"})
# The webapp runs the rules engine, which writes target docs, only for offline users
# holding one of these (cht-core webapp rules-engine.service.ts lines 115-121).
TARGET_PERMISSIONS = ("can_view_tasks", "can_view_analytics")


def writes_targets(roles: Iterable[str] | None, settings: Mapping[str, Any]) -> bool:
    """Does a CHT user with these roles (from its user-settings doc) write target docs?

    Online users never do, nor do offline users whose roles hold neither permission in
    ``app_settings.permissions``. A user-settings doc without roles (made by hand, not
    through CHT's users API) and settings without permissions cannot be judged: such a
    user counts, as it always did."""
    if roles is None:
        return True
    held = set(roles)
    if held & ONLINE_ROLES:
        return False
    permissions = settings.get("permissions")
    if not isinstance(permissions, Mapping):
        return True
    return any(
        isinstance(permissions.get(name), list) and bool(held & set(permissions[name]))
        for name in TARGET_PERMISSIONS
    )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [value] if value else []


def target_mappings(settings: Mapping[str, Any], data_set: str) -> list[TargetMapping]:
    """The target definitions that feed ``data_set``, in app-settings order.

    A ``dhis`` entry with no ``dataSet`` belongs to every data set (as in CHT);
    unlike CHT, ``dhis`` may be an array (cht-conf and the docs allow it).
    """
    if data_set not in data_set_ids(settings):
        defined = ", ".join(data_set_ids(settings)) or "none"
        raise EngineError(
            f'dataSet "{data_set}" is not defined in app_settings.dhis_data_sets '
            f"(defined: {defined})"
        )
    tasks = settings.get("tasks")
    targets = tasks.get("targets") if isinstance(tasks, Mapping) else None
    items = targets.get("items") if isinstance(targets, Mapping) else None
    mappings: list[TargetMapping] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping) or not item.get("id"):
            continue
        for dhis in _as_list(item.get("dhis")):
            if not isinstance(dhis, Mapping) or not dhis.get("dataElement"):
                continue
            if dhis.get("dataSet") and dhis["dataSet"] != data_set:
                continue
            mappings.append(
                TargetMapping(
                    target_id=str(item["id"]),
                    row=(
                        str(dhis["dataElement"]),
                        dhis.get("categoryOptionCombo") or None,
                        dhis.get("attributeOptionCombo") or None,
                    ),
                )
            )
    if not mappings:
        raise EngineError(f'dataSet "{data_set}" has no dataElements')
    return mappings


def place_org_units(place: Mapping[str, Any], data_set: str) -> list[str]:
    """Org units a contact carries for ``data_set`` (``dhis`` object or array)."""
    units: list[str] = []
    for entry in _as_list(place.get("dhis")):
        if not isinstance(entry, Mapping) or not entry.get("orgUnit"):
            continue
        if entry.get("dataSet") and entry["dataSet"] != data_set:
            continue
        unit = str(entry["orgUnit"])
        if unit not in units:
            units.append(unit)
    return units


def lineage_ids(doc: Mapping[str, Any]) -> tuple[str, ...] | str:
    """The doc's own id then its stored (minified) ancestors, or a skip reason."""
    ids: list[str] = []
    node: Any = doc
    while isinstance(node, Mapping) and node.get("_id"):
        ident = sys.intern(str(node["_id"]))  # ancestors are shared by thousands of owners
        if ident in ids:
            return SKIP_LINEAGE_LOOP
        if len(ids) > MAX_LINEAGE_DEPTH:
            return SKIP_LINEAGE_DEEP
        ids.append(ident)
        node = node.get("parent")
    return tuple(ids)
