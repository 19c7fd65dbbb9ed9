"""The demo deployment: one CHT instance and the DHIS2 metadata that matches it.

Both the CHT seed (CouchDB docs) and the DHIS2 stand-in's metadata come from
here, so the ids line up the way they do in a real country setup.

Hierarchy (CHT default contact types, mixing the 3.7+ ``contact`` form and
the legacy ``type`` form):

    district_hospital "Kisumu District"   dhis.orgUnit = OU_DISTRICT
      health_center "CHU <n>"             dhis.orgUnit = OU_CHU[n]
        clinic "Household <n>.<k>"        (no org unit)
        person CHW <n>.<k>                 a user with target docs
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import cht_docs as d
from .couchdb import CouchServer

DEFAULT_COC = "HllvX50cXC0"
CHW_PASSWORD = "Chw-dev-Pa55word"  # noqa: S105 - every demo CHW's, a throwaway local password

DS_MONTHLY = "VMuFODsyWaO"  # CHT's default "MoH Monthly Integration"
DS_CHW = "QX4ZTUbOt3a"  # a second data set: CHW activity

DE_BIRTHS = "kB0ZBFisE0e"
DE_FACILITY_DELIVERIES = "e22tIwy1nKR"
DE_ANC_VISITS = "fpA7bK2rX9d"  # disaggregated by age with two COCs
DE_HOUSEHOLD_VISITS = "hV9sGq3LmN2"  # in DS_CHW only

CC_DEFAULT = "bjDvmb4bfuf"
CC_AGE = "Xr4aGe5Cmb1"
COC_UNDER_20 = "Ua1bC2dE3fG"
COC_20_PLUS = "Hb2cD3eF4gH"

OU_COUNTRY = "ImspTQPwCqd"
OU_DISTRICT = "O6uvpzGd5pu"
OU_CHU = ["DiszpKrYNg8", "Rp268JB6Ne4", "cDw53Ej8rju", "EJoI3HArJ2W", "g8upMTyEZGZ", "tDZVQ1WtwpA"]

TARGET_ITEMS: list[dict[str, Any]] = [
    {"id": "deaths-this-month", "type": "count", "goal": 0},
    {
        "id": "births-this-month",
        "type": "count",
        "goal": -1,
        "dhis": {"dataElement": DE_BIRTHS, "dataSet": DS_MONTHLY},
    },
    {
        "id": "facility-deliveries",
        "type": "percent",
        "goal": -1,
        "dhis": {
            "dataElement": DE_FACILITY_DELIVERIES,
            "dataSet": DS_MONTHLY,
            "categoryOptionCombo": DEFAULT_COC,
            "attributeOptionCombo": DEFAULT_COC,
        },
    },
    {
        "id": "anc-visits-under-20",
        "type": "count",
        "goal": -1,
        "dhis": {
            "dataElement": DE_ANC_VISITS,
            "dataSet": DS_MONTHLY,
            "categoryOptionCombo": COC_UNDER_20,
        },
    },
    {
        "id": "anc-visits-20-plus",
        "type": "count",
        "goal": -1,
        "dhis": {
            "dataElement": DE_ANC_VISITS,
            "dataSet": DS_MONTHLY,
            "categoryOptionCombo": COC_20_PLUS,
        },
    },
    {
        # a dhis array: feeds both data sets (CHT's export drops this target)
        "id": "households-visited",
        "type": "count",
        "goal": -1,
        "dhis": [
            {"dataElement": DE_HOUSEHOLD_VISITS, "dataSet": DS_CHW},
        ],
    },
]


def app_settings() -> dict[str, Any]:
    return {
        "dhis_data_sets": [
            {"id": DS_MONTHLY, "translation_key": "dhis.dataset.monthly.integration"},
            {"id": DS_CHW, "translation_key": "dhis.dataset.chw.activity"},
        ],
        "contact_types": [
            {"id": "district_hospital"},
            {"id": "health_center", "parents": ["district_hospital"]},
            {"id": "clinic", "parents": ["health_center"]},
            {
                "id": "person",
                "parents": ["district_hospital", "health_center", "clinic"],
                "person": True,
            },
        ],
        "uhc": {"visit_count": {"month_start_date": 1}},
        "tasks": {"targets": {"enabled": True, "items": TARGET_ITEMS}},
        # CHWs offline with can_view_tasks/can_view_analytics (so their devices write target
        # docs), the mediator's integration user online (cht_docs.CHT_ROLES)
        "roles": d.CHT_ROLES,
        "permissions": d.CHT_PERMISSIONS,
    }


def data_element(ident: str, name: str, cc: str = CC_DEFAULT) -> dict[str, Any]:
    """An aggregate data element as DHIS2's metadata API shows it: CHT counts go into
    zero-or-positive integers, and a zero is not significant (DHIS2's default)."""
    return {
        "id": ident,
        "name": name,
        "valueType": "INTEGER_ZERO_OR_POSITIVE",
        "zeroIsSignificant": False,
        "aggregationType": "SUM",
        "domainType": "AGGREGATE",
        "categoryCombo": {"id": cc},
    }


def category_combos(age_options: dict[str, str], age_combo: str = CC_AGE) -> list[dict[str, Any]]:
    """The default category combo and an age one with these option combos (id -> name)."""
    return [
        {
            "id": CC_DEFAULT,
            "name": "default",
            "categoryOptionCombos": [{"id": DEFAULT_COC, "name": "default"}],
        },
        {
            "id": age_combo,
            "name": "Age",
            "categoryOptionCombos": [{"id": i, "name": n} for i, n in age_options.items()],
        },
    ]


def dhis2_metadata(chus: int = 4) -> dict[str, Any]:
    """DHIS2 metadata in API shapes, for the DHIS2 stand-in."""
    org_units = [
        {"id": OU_COUNTRY, "name": "Kenya", "level": 1, "path": f"/{OU_COUNTRY}"},
        {
            "id": OU_DISTRICT,
            "name": "Kisumu District",
            "level": 2,
            "path": f"/{OU_COUNTRY}/{OU_DISTRICT}",
            "parent": {"id": OU_COUNTRY},
        },
    ] + [
        {
            "id": ou,
            "name": f"CHU {n + 1}",
            "level": 3,
            "path": f"/{OU_COUNTRY}/{OU_DISTRICT}/{ou}",
            "parent": {"id": OU_DISTRICT},
        }
        for n, ou in enumerate(OU_CHU[:chus])
    ]
    assigned = [{"id": OU_DISTRICT}] + [{"id": ou} for ou in OU_CHU[:chus]]

    return {
        "defaultCategoryOptionCombo": DEFAULT_COC,
        "categoryCombos": category_combos({COC_UNDER_20: "<20y", COC_20_PLUS: "20y+"}),
        "dataElements": [
            data_element(DE_BIRTHS, "Births"),
            data_element(DE_FACILITY_DELIVERIES, "Facility deliveries"),
            data_element(DE_ANC_VISITS, "ANC visits", CC_AGE),
            data_element(DE_HOUSEHOLD_VISITS, "Household visits"),
        ],
        "dataSets": [
            {
                "id": DS_MONTHLY,
                "name": "MoH Monthly Integration",
                "periodType": "Monthly",
                "expiryDays": 0,
                "openFuturePeriods": 0,
                "categoryCombo": {"id": CC_DEFAULT},
                "dataSetElements": [
                    {"dataElement": {"id": DE_BIRTHS}},
                    {"dataElement": {"id": DE_FACILITY_DELIVERIES}},
                    {"dataElement": {"id": DE_ANC_VISITS}},
                ],
                "organisationUnits": assigned,
            },
            {
                "id": DS_CHW,
                "name": "CHW activity",
                "periodType": "Monthly",
                "expiryDays": 0,
                "openFuturePeriods": 0,
                "categoryCombo": {"id": CC_DEFAULT},
                "dataSetElements": [{"dataElement": {"id": DE_HOUSEHOLD_VISITS}}],
                "organisationUnits": assigned,
            },
        ],
        "organisationUnits": org_units,
    }


@dataclass
class Deployment:
    """Docs to load into the medic database, and what the tests expect of them."""

    docs: list[dict[str, Any]] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    never_synced: list[str] = field(default_factory=list)
    chw_contacts: dict[str, str] = field(default_factory=dict)  # username -> contact id
    chw_chu: dict[str, str] = field(default_factory=dict)  # username -> CHU org unit
    chw_place: dict[str, str] = field(default_factory=dict)  # username -> CHU place id

    def docs_without_users(self) -> list[dict[str, Any]]:
        """The docs but the user-settings ones, which CHT's users API writes itself
        (``ChtApiFront.create_user`` with ``user_specs``)."""
        return [doc for doc in self.docs if doc.get("type") != "user-settings"]

    def user_specs(self) -> list[dict[str, Any]]:
        """``ChtApiFront.create_user`` arguments for each CHW: offline (role ``chw``), at their
        CHU, their person contact."""
        return [
            {
                "username": name,
                "password": CHW_PASSWORD,
                "roles": [d.CHW_ROLE],
                "place": self.chw_place[name],
                "contact": self.chw_contacts[name],
            }
            for name in self.users
        ]


def _synced_at(month: str, rng: random.Random) -> int:
    """``updated_date`` as the rules engine writes it: the start of the day (ms) of the
    last write, here in the month's last days or the first days after it."""
    year, mon = int(month[:4]), int(month[5:7])
    first_next = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    day = first_next + timedelta(days=rng.randint(-5, 2))
    return int(day.timestamp() * 1000)


def build(
    months: list[str],
    chus: int = 4,
    chws_per_chu: int = 3,
    never_synced: int = 1,
    seed: int = 7,
) -> Deployment:
    """A small, realistic deployment with target docs for each of ``months``."""
    rng = random.Random(seed)
    dep = Deployment()
    district = d.place(
        "district-1",
        "Kisumu District",
        "district_hospital",
        dhis={"orgUnit": OU_DISTRICT},
        legacy=True,
    )
    dep.docs += [d.settings_doc(app_settings()), d.medic_admin_ddoc(), district]
    for n in range(chus):
        legacy = n % 2 == 1
        chu = d.place(
            f"chu-{n + 1}",
            f"CHU {n + 1}",
            "health_center",
            parent=district,
            dhis={"orgUnit": OU_CHU[n]},
            legacy=legacy,
        )
        chu_full = {"_id": chu["_id"], "parent": district}
        dep.docs.append(chu)
        for k in range(chws_per_chu):
            household = d.place(
                f"hh-{n + 1}-{k + 1}",
                f"Household {n + 1}.{k + 1}",
                "clinic",
                parent=chu_full,
                legacy=legacy,
            )
            dep.docs.append(household)
            username = f"chw{n + 1}{k + 1}"
            contact_id = f"chw-{n + 1}-{k + 1}"
            dep.docs.append(
                d.person(contact_id, f"CHW {n + 1}.{k + 1}", parent=chu_full, legacy=legacy)
            )
            dep.docs.append(d.user_settings(username, contact_id, chu["_id"]))
            dep.users.append(username)
            dep.chw_contacts[username] = contact_id
            dep.chw_chu[username] = OU_CHU[n]
            dep.chw_place[username] = chu["_id"]
    silent = set(dep.users[-never_synced:]) if never_synced else set()
    dep.never_synced = sorted(silent)
    for month in months:
        for username in dep.users:
            if username in silent:
                continue
            contact_id = dep.chw_contacts[username]
            deliveries = rng.randint(0, 4)
            dep.docs.append(
                d.target_doc(
                    month,
                    contact_id,
                    username,
                    [
                        d.target("deaths-this-month", rng.randint(0, 1)),
                        d.target("births-this-month", rng.randint(0, 6)),
                        d.percent_target(
                            "facility-deliveries", rng.randint(0, deliveries), deliveries
                        ),
                        d.target("anc-visits-under-20", rng.randint(0, 5)),
                        d.target("anc-visits-20-plus", rng.randint(0, 9)),
                        d.target("households-visited", rng.randint(5, 40)),
                    ],
                    updated_date=_synced_at(month, rng),
                )
            )
    return dep


@dataclass
class Conflicts:
    """The conflicted docs ``seed_conflicts`` wrote: id -> (winning rev, losing leaf rev)."""

    revs: dict[str, tuple[str, str]] = field(default_factory=dict)
    moved_chw: str = ""  # the CHW whose losing person revision sits under another CHU
    moved_to: str = ""  # that CHU's org unit
    renamed_place: str = ""  # the CHU whose losing revision carries another org unit
    deleted_user: str = ""  # the CHW whose user-settings doc has a deleted losing branch


def seed_conflicts(couch: CouchServer, db: str, dep: Deployment) -> Conflicts:
    """Conflict docs already loaded from ``dep`` as two devices leave them, each with its
    LOSING leaf first in CouchDB 3's ``_bulk_get`` order (``cht_docs.conflict``), so that a
    reader taking the first leaf gets other numbers than CHT's export (which reads winners):

    - the first CHW's person: the loser moves them under another CHU (another org unit);
    - the third CHU: the loser carries the fourth CHU's org unit;
    - the fourth CHW's user-settings doc: the loser is a deleted branch.

    Needs at least 4 CHUs' worth of users (the default ``build``).
    """
    first, fourth = dep.users[0], dep.users[3]
    other = next(u for u in dep.users if dep.chw_place[u] != dep.chw_place[first])
    stored = {}
    for ident in (
        dep.chw_contacts[first],
        dep.chw_place[other],
        "chu-3",
        f"org.couchdb.user:{fourth}",
    ):
        doc = couch.get(db, ident)
        if doc is None:
            raise RuntimeError(f"seed_conflicts: {ident} is not in {db}")
        stored[ident] = doc
    chw = stored[dep.chw_contacts[first]]
    target = stored[dep.chw_place[other]]
    moved = {**chw, "parent": d.minify(target)}
    place = stored["chu-3"]
    renamed = {**place, "dhis": {"orgUnit": OU_CHU[3]}}
    info = Conflicts(
        moved_chw=first,
        moved_to=dep.chw_chu[other],
        renamed_place="chu-3",
        deleted_user=fourth,
    )
    docs: list[dict[str, Any]] = []
    for winner, loser in (
        (chw, moved),
        (place, renamed),
        (stored[f"org.couchdb.user:{fourth}"], None),
    ):
        made = d.conflict(winner, loser, base_rev=winner["_rev"])
        docs += made.docs
        info.revs[winner["_id"]] = (made.winner, made.loser)
    couch.write_revisions(db, docs)
    return info
