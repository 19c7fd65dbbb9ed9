"""A synthetic national CHT deployment and the DHIS2 metadata that matches it.

Sizes are options (``Spec``); the defaults are a national deployment:
1 country → 47 counties → 300 sub-counties → 1,500 wards → 6,000 community
units (each with a DHIS2 org unit) → 20,000 CHW users, 30 targets per target
doc of which 20 map to DHIS2 (some rows disaggregated by category option combo),
3 months of target docs, and a few per cent of users who never synced.

Docs are built with ``devstack.cht_docs`` (the shapes CHT writes) and yielded in
batches, so the generator never holds the whole deployment in memory.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from devstack import cht_docs as d
from devstack.deployment import category_combos, data_element

DEFAULT_COC = "HllvX50cXC0"
DEFAULT_CC = "bjDvmb4bfuf"
DATA_SET = "DSnational1"
CC_AGE = "CCage000001"
COC_UNDER_5 = "COCage00001"
COC_5_PLUS = "COCage00002"


def uid(prefix: str, n: int) -> str:
    """A valid DHIS2 UID: the prefix (starting with a letter) then zero-padded digits."""
    return prefix + str(n).zfill(11 - len(prefix))


@dataclass(frozen=True)
class Spec:
    """How big the deployment is. ``scaled`` shrinks every count but the country."""

    counties: int = 47
    sub_counties: int = 300
    wards: int = 1_500
    cus: int = 6_000
    users: int = 20_000
    targets: int = 30
    mapped: int = 20
    months: tuple[str, ...] = ("2024-01", "2024-02", "2024-03")
    never_synced: float = 0.03
    # a month (outside the window) with twice the users per community unit, so
    # that memory can be compared at N and 2N target docs with the same org units
    double_month: str | None = "2023-12"
    seed: int = 7

    def scaled(self, factor: float) -> Spec:
        def s(n: int) -> int:
            return max(1, round(n * factor))

        return replace(
            self,
            counties=s(self.counties),
            sub_counties=s(self.sub_counties),
            wards=s(self.wards),
            cus=s(self.cus),
            users=s(self.users),
        )


@dataclass
class TargetDef:
    ident: str
    kind: str  # count | percent
    data_element: str | None = None
    coc: str | None = None


@dataclass
class National:
    """Everything derived from a ``Spec``: target definitions, ids, lineages."""

    spec: Spec
    target_defs: list[TargetDef] = field(default_factory=list)
    data_elements: list[tuple[str, bool]] = field(default_factory=list)  # (uid, disaggregated)

    def __post_init__(self) -> None:
        spec = self.spec
        de_n = 0
        for i in range(spec.targets):
            kind = "percent" if i % 7 == 2 else "count"
            ident = f"t{i + 1:02d}-{'percent' if kind == 'percent' else 'count'}"
            if i >= spec.mapped:
                self.target_defs.append(TargetDef(ident, kind))
                continue
            if i % 5 == 4 and self.target_defs and self.target_defs[-1].coc == COC_UNDER_5:
                # the second half of an age-disaggregated pair: same element, other COC
                prev = self.target_defs[-1]
                self.target_defs.append(TargetDef(ident, kind, prev.data_element, COC_5_PLUS))
                continue
            de_n += 1
            de = uid("DEnat", de_n)
            paired = i % 5 == 3
            self.data_elements.append((de, paired))
            self.target_defs.append(TargetDef(ident, kind, de, COC_UNDER_5 if paired else None))

    # -- ids and lineage ----------------------------------------------------------

    @property
    def rows(self) -> int:
        """Data value rows per org unit: one per mapped target (pairs differ by COC)."""
        return sum(1 for t in self.target_defs if t.data_element)

    def parent_index(self, child: int, children: int, parents: int) -> int:
        return child * parents // children

    def lineage(self, level: str, n: int) -> list[str]:
        """Ids from the place itself up to the country."""
        s = self.spec
        ids: list[str] = []
        if level == "cu":
            ids.append(f"cu-{n:05d}")
            n, level = self.parent_index(n, s.cus, s.wards), "ward"
        if level == "ward":
            ids.append(f"ward-{n:04d}")
            n, level = self.parent_index(n, s.wards, s.sub_counties), "sub"
        if level == "sub":
            ids.append(f"subcounty-{n:03d}")
            n, level = self.parent_index(n, s.sub_counties, s.counties), "county"
        if level == "county":
            ids.append(f"county-{n:02d}")
        ids.append("country")
        return ids

    @staticmethod
    def nested(ids: list[str]) -> dict[str, Any] | None:
        """Minified lineage ``{_id, parent: {...}}`` as CHT stores it."""
        node: dict[str, Any] | None = None
        for ident in reversed(ids):
            node = {"_id": ident, "parent": node} if node else {"_id": ident}
        return node

    def cu_org_unit(self, n: int) -> str:
        return uid("OUcu", n + 1)

    def user_cu(self, u: int) -> int:
        """Users spread evenly over community units; the extra users of the doubled
        month (``u >= spec.users``) spread the same way, so each unit gets twice as many."""
        return (u % self.spec.users) * self.spec.cus // self.spec.users

    def synced(self, u: int) -> bool:
        """Deterministic: the same users never sync in any month."""
        return random.Random(self.spec.seed * 1_000_003 + u).random() >= self.spec.never_synced

    # -- CHT docs ---------------------------------------------------------------

    def app_settings(self) -> dict[str, Any]:
        items = []
        for t in self.target_defs:
            item: dict[str, Any] = {"id": t.ident, "type": t.kind, "goal": -1}
            if t.data_element:
                dhis: dict[str, Any] = {"dataElement": t.data_element, "dataSet": DATA_SET}
                if t.coc:
                    dhis["categoryOptionCombo"] = t.coc
                item["dhis"] = dhis
            items.append(item)
        types = ["country", "county", "sub_county", "ward", "community_unit"]
        return {
            "dhis_data_sets": [{"id": DATA_SET, "translation_key": "dhis.dataset.national"}],
            "contact_types": [
                {"id": t, **({"parents": [types[i - 1]]} if i else {})} for i, t in enumerate(types)
            ]
            + [{"id": "chw", "parents": ["community_unit"], "person": True}],
            "tasks": {"targets": {"enabled": True, "items": items}},
        }

    def place_docs(self) -> Iterator[dict[str, Any]]:
        s = self.spec

        def doc(ids: list[str], name: str, kind: str, dhis: Any = None) -> dict[str, Any]:
            out: dict[str, Any] = {"_id": ids[0], "name": name, "type": "contact"}
            out["contact_type"] = kind
            parent = self.nested(ids[1:])
            if parent:
                out["parent"] = parent
            if dhis:
                out["dhis"] = dhis
            return out

        yield d.settings_doc(self.app_settings())
        yield d.medic_admin_ddoc()
        yield doc(["country"], "Country", "country")
        for n in range(s.counties):
            yield doc(self.lineage("county", n), f"County {n}", "county")
        for n in range(s.sub_counties):
            yield doc(self.lineage("sub", n), f"Sub-county {n}", "sub_county")
        for n in range(s.wards):
            yield doc(self.lineage("ward", n), f"Ward {n}", "ward")
        for n in range(s.cus):
            dhis = {"orgUnit": self.cu_org_unit(n), "dataSet": DATA_SET}
            yield doc(self.lineage("cu", n), f"Community unit {n}", "community_unit", dhis)

    def chw_id(self, u: int) -> str:
        return f"chw-{u:06d}"

    def person_docs(self, users: int) -> Iterator[dict[str, Any]]:
        """CHW contacts (persons under their community unit)."""
        for u in range(users):
            ids = [self.chw_id(u), *self.lineage("cu", self.user_cu(u))]
            yield {
                "_id": ids[0],
                "name": f"CHW {u}",
                "type": "contact",
                "contact_type": "chw",
                "parent": self.nested(ids[1:]),
            }

    def user_docs(self) -> Iterator[dict[str, Any]]:
        """``user-settings`` of the CHWs of the window (``org.couchdb.user:<name>``)."""
        for u in range(self.spec.users):
            yield d.user_settings(self.username(u), self.chw_id(u), f"cu-{self.user_cu(u):05d}")

    @staticmethod
    def username(u: int) -> str:
        return f"chw{u:06d}"

    def target_entries(self, rng: random.Random) -> list[dict[str, Any]]:
        out = []
        for t in self.target_defs:
            if t.kind == "percent":
                total = rng.randint(0, 8)
                out.append(d.percent_target(t.ident, rng.randint(0, total), total))
            else:
                out.append(d.target(t.ident, rng.randint(0, 12)))
        return out

    def target_docs(self, month: str, users: int | None = None) -> Iterator[dict[str, Any]]:
        """One doc per synced user for ``month`` (users beyond ``spec.users`` always sync)."""
        users = users or self.spec.users
        rng = random.Random(f"{self.spec.seed}:{month}")
        for u in range(users):
            if u < self.spec.users and not self.synced(u):
                continue
            yield d.target_doc(
                month,
                self.chw_id(u),
                self.username(u),
                self.target_entries(rng),
                updated_date=1_700_000_000_000 + u,
            )

    def all_docs(self) -> Iterator[dict[str, Any]]:
        """The whole medic database: places, CHWs, target docs of every month."""
        s = self.spec
        yield from self.place_docs()
        users = 2 * s.users if s.double_month else s.users
        yield from self.person_docs(users)
        yield from self.user_docs()
        for month in s.months:
            yield from self.target_docs(month)
        if s.double_month:
            yield from self.target_docs(s.double_month, users=2 * s.users)

    # -- DHIS2 metadata -----------------------------------------------------------

    def dhis2_metadata(self) -> dict[str, Any]:
        """API-shaped metadata for ``devstack.dhis2_standin.Dhis2StandIn``."""
        s = self.spec
        country = uid("OUct", 0)
        org_units: list[dict[str, Any]] = [
            {"id": country, "name": "Country", "level": 1, "path": f"/{country}"}
        ]
        paths: dict[tuple[str, int], str] = {}

        def add(level: int, kind: str, n: int, parent: str, parent_path: str) -> None:
            ident = uid(f"OU{kind}", n + 1)
            path = f"{parent_path}/{ident}"
            paths[(kind, n)] = path
            org_units.append(
                {
                    "id": ident,
                    "name": f"{kind} {n}",
                    "level": level,
                    "path": path,
                    "parent": {"id": parent},
                }
            )

        for n in range(s.counties):
            add(2, "co", n, country, f"/{country}")
        levels = [
            (3, "sc", s.sub_counties, "co", s.counties),
            (4, "wa", s.wards, "sc", s.sub_counties),
        ]
        for level, kind, count, pkind, pcount in levels:
            for n in range(count):
                p = self.parent_index(n, count, pcount)
                add(level, kind, n, uid(f"OU{pkind}", p + 1), paths[(pkind, p)])
        for n in range(s.cus):
            p = self.parent_index(n, s.cus, s.wards)
            add(5, "cu", n, uid("OUwa", p + 1), paths[("wa", p)])

        return {
            "defaultCategoryOptionCombo": DEFAULT_COC,
            "categoryCombos": category_combos(
                {COC_UNDER_5: "<5y", COC_5_PLUS: "5y+"}, age_combo=CC_AGE
            ),
            "dataElements": [
                data_element(de, f"National {de}", CC_AGE if paired else DEFAULT_CC)
                for de, paired in self.data_elements
            ],
            "dataSets": [
                {
                    "id": DATA_SET,
                    "name": "National CHW monthly",
                    "periodType": "Monthly",
                    "expiryDays": 0,
                    "openFuturePeriods": 0,
                    "categoryCombo": {"id": DEFAULT_CC},
                    "dataSetElements": [
                        {"dataElement": {"id": de}} for de, _ in self.data_elements
                    ],
                    "organisationUnits": [{"id": self.cu_org_unit(n)} for n in range(s.cus)],
                }
            ],
            "organisationUnits": org_units,
        }


def batches(docs: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
