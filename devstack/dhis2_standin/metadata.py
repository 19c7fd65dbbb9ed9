"""The metadata a DHIS2 instance would hold, indexed for import and served by the API.

Input is the API-shaped dict of ``devstack.deployment.dhis2_metadata()``
(``defaultCategoryOptionCombo``, ``categoryCombos``, ``dataElements``,
``dataSets``, ``organisationUnits``; optional ``categoryOptionCombos``,
``optionSets``). References inside objects are ``{"id": ...}`` as DHIS2 writes
them, and field filtering resolves them against this store, so
``dataSetElements[dataElement[id,valueType]]`` expands like the real API.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_COC = "HllvX50cXC0"
DEFAULT_CC = "bjDvmb4bfuf"
# the "default" category option of a fresh install (2.41.9.1 DefaultCategoryService.java:513)
DEFAULT_CATEGORY_OPTION = "xYerKDKCefk"

# collection name -> (Java class name for messages, property names that point at it)
COLLECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dataSets": ("DataSet", ("dataSet", "dataSets")),
    "dataElements": ("DataElement", ("dataElement", "dataElements")),
    "organisationUnits": (
        "OrganisationUnit",
        ("organisationUnit", "organisationUnits", "parent", "children", "ancestors"),
    ),
    "categoryCombos": ("CategoryCombo", ("categoryCombo",)),
    "categoryOptionCombos": (
        "CategoryOptionCombo",
        ("categoryOptionCombo", "categoryOptionCombos", "attributeOptionCombo"),
    ),
    "optionSets": ("OptionSet", ("optionSet",)),
}
PROPERTY_TO_COLLECTION = {p: c for c, (_, props) in COLLECTIONS.items() for p in props}


@dataclass
class Metadata:
    """Objects by collection and id, plus the derived indexes the importer needs."""

    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    default_coc: str = DEFAULT_COC

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Metadata:
        md = cls(default_coc=raw.get("defaultCategoryOptionCombo", DEFAULT_COC))
        for name in COLLECTIONS:
            md.objects[name] = {}
            for obj in raw.get(name, []) or []:
                md.objects[name][obj["id"]] = copy.deepcopy(obj)
        ccs = md.objects["categoryCombos"]
        cocs = md.objects["categoryOptionCombos"]
        if not any(
            md.default_coc in [c["id"] for c in cc.get("categoryOptionCombos", [])]
            for cc in ccs.values()
        ):
            ccs.setdefault(
                DEFAULT_CC,
                {
                    "id": DEFAULT_CC,
                    "name": "default",
                    "categoryOptionCombos": [{"id": md.default_coc}],
                },
            )
        for cc in ccs.values():
            refs = []
            for coc in cc.get("categoryOptionCombos", []):
                full = cocs.setdefault(coc["id"], {k: v for k, v in coc.items()})
                full.setdefault("categoryCombo", {"id": cc["id"]})
                refs.append({"id": coc["id"]})
            cc["categoryOptionCombos"] = refs
        cocs.setdefault(md.default_coc, {"id": md.default_coc, "name": "default"})
        for ds in md.objects["dataSets"].values():
            ds.setdefault("dataInputPeriods", [])
            ds.setdefault("organisationUnits", [])
            ds.setdefault("dataSetElements", [])
        for de in md.objects["dataElements"].values():
            de.setdefault("categoryCombo", {"id": md.default_cc_id()})
            de.setdefault("zeroIsSignificant", False)
            de.setdefault("aggregationType", "SUM")
            de.setdefault("domainType", "AGGREGATE")
        md._fill_paths()
        return md

    def default_cc_id(self) -> str:
        for cc in self.objects["categoryCombos"].values():
            if any(c["id"] == self.default_coc for c in cc.get("categoryOptionCombos", [])):
                return str(cc["id"])
        return DEFAULT_CC

    def _fill_paths(self) -> None:
        ous = self.objects["organisationUnits"]

        def path_of(ou: dict[str, Any], seen: int = 0) -> str:
            if ou.get("path"):
                return str(ou["path"])
            parent = ous.get((ou.get("parent") or {}).get("id", ""))
            prefix = path_of(parent, seen + 1) if parent and seen < 50 else ""
            return f"{prefix}/{ou['id']}"

        for ou in ous.values():
            ou["path"] = path_of(ou)
            ou.setdefault("level", ou["path"].count("/"))

    # -- lookups used by the importer --------------------------------------

    def get(self, collection: str, ident: str | None) -> dict[str, Any] | None:
        if ident is None:
            return None
        return self.objects.get(collection, {}).get(ident)

    def find(
        self, collection: str, ident: str | None, scheme: str = "UID"
    ) -> dict[str, Any] | None:
        """Resolve an identifier with an id scheme (UID, CODE or NAME)."""
        if ident is None:
            return None
        scheme = scheme.upper()
        if scheme in ("UID", "ID"):
            return self.get(collection, ident)
        key = {"CODE": "code", "NAME": "name"}.get(scheme)
        if key is None:
            return None
        for obj in self.objects.get(collection, {}).values():
            if obj.get(key) == ident:
                return obj
        return None

    def data_sets_of_element(self, de_id: str) -> list[dict[str, Any]]:
        return [
            ds
            for ds in self.objects["dataSets"].values()
            if any(e["dataElement"]["id"] == de_id for e in ds["dataSetElements"])
        ]

    def element_cocs(self, de: dict[str, Any], ds: dict[str, Any] | None = None) -> set[str]:
        """COC ids of the element's category combo (a data set element may override it)."""
        cc_id = de["categoryCombo"]["id"]
        if ds is not None:
            for e in ds["dataSetElements"]:
                if e["dataElement"]["id"] == de["id"] and e.get("categoryCombo"):
                    cc_id = e["categoryCombo"]["id"]
        cc = self.get("categoryCombos", cc_id) or {}
        return {c["id"] for c in cc.get("categoryOptionCombos", [])}

    def coc_options(self, coc_id: str) -> list[str]:
        """Category option uids of a category option combo (``categoryOptions`` in the
        metadata; the default COC has the default option)."""
        coc = self.get("categoryOptionCombos", coc_id) or {}
        options = [o["id"] for o in coc.get("categoryOptions") or []]
        if not options and coc_id == self.default_coc:
            return [DEFAULT_CATEGORY_OPTION]
        return options

    def data_set_aocs(self, ds: dict[str, Any]) -> set[str]:
        cc = self.get(
            "categoryCombos", (ds.get("categoryCombo") or {}).get("id", self.default_cc_id())
        )
        return {c["id"] for c in (cc or {}).get("categoryOptionCombos", [])} or {self.default_coc}

    def org_unit_has_element(self, ou_id: str, de_id: str) -> bool:
        return any(
            any(o["id"] == ou_id for o in ds["organisationUnits"])
            for ds in self.data_sets_of_element(de_id)
        )

    def descendants(self, ou_id: str) -> list[str]:
        return [
            o["id"]
            for o in self.objects["organisationUnits"].values()
            if f"/{ou_id}/" in f"{o['path']}/" and o["id"] != ou_id
        ]

    def roots(self) -> list[str]:
        return [o["id"] for o in self.objects["organisationUnits"].values() if not o.get("parent")]

    # -- API views ---------------------------------------------------------

    def api_object(self, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as the API shows it: stored fields plus computed ones."""
        out = dict(obj)
        if "name" in out:
            out.setdefault("displayName", out["name"])
        if collection == "organisationUnits":
            out.setdefault(
                "dataSets",
                [
                    {"id": ds["id"]}
                    for ds in self.objects["dataSets"].values()
                    if any(o["id"] == obj["id"] for o in ds["organisationUnits"])
                ],
            )
            out.setdefault(
                "children",
                [
                    {"id": o["id"]}
                    for o in self.objects["organisationUnits"].values()
                    if (o.get("parent") or {}).get("id") == obj["id"]
                ],
            )
        if collection == "dataElements":
            out.setdefault(
                "dataSets", [{"id": ds["id"]} for ds in self.data_sets_of_element(obj["id"])]
            )
        return out

    def resolve(self, prop: str, value: Any) -> Any:
        """Replace an ``{"id": x}`` reference by the full object, for nested field filters."""
        coll = PROPERTY_TO_COLLECTION.get(prop)
        if coll and isinstance(value, dict) and "id" in value:
            target = self.get(coll, value["id"])
            if target is not None:
                return self.api_object(coll, target)
        return value


# -- field filtering (``?fields=``) ----------------------------------------

FieldTree = list[tuple[str, "FieldTree | None"]]
PRESETS = {":all", ":owner", ":identifiable", ":nameable", ":simple", ":persisted"}


def parse_fields(spec: str) -> FieldTree:
    """``a,b[c,d[e]],*`` into a tree; presets such as ``:all`` count as ``*``."""
    tree: FieldTree = []
    pos = 0

    def parse_level() -> FieldTree:
        nonlocal pos
        level: FieldTree = []
        name = ""
        while pos < len(spec):
            ch = spec[pos]
            pos += 1
            if ch in "[(":
                level.append((name.strip(), parse_level()))
                name = ""
            elif ch in "])":
                if name.strip():
                    level.append((name.strip(), None))
                return level
            elif ch == ",":
                if name.strip():
                    level.append((name.strip(), None))
                name = ""
            else:
                name += ch
        if name.strip():
            level.append((name.strip(), None))
        return level

    tree = [(("*" if n in PRESETS else n), sub) for n, sub in parse_level() if n]
    return tree


def project(md: Metadata, obj: Any, tree: FieldTree) -> Any:
    """Apply a field tree to an object, expanding references where a sub-tree asks."""
    if isinstance(obj, list):
        return [project(md, item, tree) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    names = [n for n, _ in tree]
    if "*" in names:
        for key, value in obj.items():
            out[key] = _as_reference(value)
    for name, sub in tree:
        if name == "*" or name.startswith("!"):
            continue
        name = re.sub(r"~.*$|::.*$", "", name)
        if name not in obj:
            continue
        value = obj[name]
        if sub is None:
            out[name] = _as_reference(value)
        elif isinstance(value, list):
            out[name] = [project(md, md.resolve(name, v), sub) for v in value]
        else:
            out[name] = project(md, md.resolve(name, value), sub)
    for name in names:
        if name.startswith("!"):
            out.pop(name[1:], None)
    return out


def _as_reference(value: Any) -> Any:
    """Without a sub-tree, nested identifiable objects collapse to ``{"id": ...}``."""
    return copy.deepcopy(value)


def matches_filter(obj: dict[str, Any], expr: str) -> bool:
    """One ``property:operator:value`` filter (eq, ne, in, like, ilike, null, !null)."""
    parts = expr.split(":", 2)
    if len(parts) < 2:
        return True
    prop, op = parts[0], parts[1]
    arg = parts[2] if len(parts) > 2 else ""
    value: Any = obj
    for step in prop.split("."):
        value = value.get(step) if isinstance(value, dict) else None
    text = None if value is None else str(value)
    if op == "eq":
        return text == arg
    if op == "ne" or op == "!eq":
        return text != arg
    if op == "in":
        return text in [a.strip() for a in arg.strip("[]").split(",")]
    if op == "!in":
        return text not in [a.strip() for a in arg.strip("[]").split(",")]
    if op == "like":
        return text is not None and arg in text
    if op == "ilike":
        return text is not None and arg.lower() in text.lower()
    if op == "null":
        return value is None
    if op == "!null":
        return value is not None
    return True
