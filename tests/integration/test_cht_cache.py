"""The CHT contact cache (mediator/cht_cache.py), over real HTTP against pouchdb-server.

A run keeps owner lineages, places and users for the next one and checks them
against CouchDB's changes feed first. The promise to users: a second run that uses
the cache gives exactly the numbers a run without any cache gives, whatever changed
in CHT between the runs. Each test seeds a fresh database, runs once (filling the
cache), changes CHT through its HTTP API, runs again and compares the totals per org
unit and the sync coverage with a run made with ``cache=False`` and with the figure
worked out by hand from the seeded docs.

"memory" keeps the cache in the process only; "disk" forgets the process's copy
before every run, so the file in ``state_dir`` alone has to carry it.
"""

from __future__ import annotations

import base64
import copy
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from devstack import cht_docs
from devstack import deployment as dep
from mediator.cht.cache import CacheStore
from mediator.model.periods import Month
from mediator.run.pipeline import Computed, compute
from mediator.run.request import RunRequest
from mediator.settings.config import ChtSettings, RuntimeConfig

MONTH = "2024-01"
DISTRICT = {"_id": "district-1"}
CHU = dep.OU_CHU[:4]  # chu-1 .. chu-4 carry these org units
PASSWORD = "Zebra-Quartz-7731-only-in-this-test"  # a CHT password nobody else uses


@pytest.fixture(autouse=True)
def _nothing_kept():
    """No test may see a cache another one left in this process."""
    CacheStore.forget_all()
    yield
    CacheStore.forget_all()


@pytest.fixture(params=["memory", "disk"])
def state_dir(request, tmp_path) -> str | None:
    return str(tmp_path / "state") if request.param == "disk" else None


@pytest.fixture
def http(monkeypatch) -> list[tuple[str, str, dict[str, Any]]]:
    """Every HTTP request made (method, path, params), passed on to the real server."""
    calls: list[tuple[str, str, dict[str, Any]]] = []
    real = requests.Session.send

    def spy(self, request, **kwargs):
        parts = urlsplit(request.url)
        calls.append((request.method.upper(), parts.path, dict(parse_qsl(parts.query))))
        return real(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", spy)
    return calls


# -- CHT through its HTTP API -----------------------------------------------------------


class Cht:
    def __init__(self, couch, docs: list[dict[str, Any]], name: str | None = None) -> None:
        self.couch = couch
        self.db = name or f"medic-cache-{uuid.uuid4().hex[:10]}"
        self.http = couch.session()
        couch.create_db(self.db)
        couch.bulk(self.db, copy.deepcopy(docs))

    def url(self, ident: str) -> str:
        return f"{self.couch.url}/{self.db}/{ident}"

    def get(self, ident: str) -> dict[str, Any]:
        res = self.http.get(self.url(ident), timeout=30)
        res.raise_for_status()
        return res.json()

    def put(self, doc: dict[str, Any]) -> None:
        self.http.put(self.url(doc["_id"]), json=doc, timeout=30).raise_for_status()

    def delete(self, ident: str) -> None:
        rev = self.get(ident)["_rev"]
        self.http.delete(self.url(ident), params={"rev": rev}, timeout=30).raise_for_status()

    def recreate(self, docs: list[dict[str, Any]]) -> None:
        """Delete the database and make it again, same name, other content."""
        self.http.delete(f"{self.couch.url}/{self.db}", timeout=30).raise_for_status()
        self.couch.create_db(self.db)
        self.couch.bulk(self.db, copy.deepcopy(docs))


# -- runs and what users see of them ----------------------------------------------------


def settings(couch, db: str, **kw: Any) -> ChtSettings:
    kw.setdefault("username", couch.username)
    kw.setdefault("password", couch.password)
    return ChtSettings(url=couch.url, db=db, **kw)


def run(cht: Cht, state_dir: str | None, *, cache: bool = True, **kw: Any) -> Computed:
    if state_dir:
        CacheStore.forget_all()  # the file alone must be enough
    config = RuntimeConfig(cht=settings(cht.couch, cht.db, cache=cache, **kw), state_dir=state_dir)
    request = RunRequest(periods=[Month.parse(MONTH)], data_sets=[dep.DS_MONTHLY])
    return compute(request, config)


def outcome(computed: Computed) -> dict[str, Any]:
    """Everything a user reads of one run: values, coverage, skipped docs."""
    (job,) = computed.jobs
    assert job.problem is None and job.read_error is None, (job.problem, job.read_error)
    return {
        "values": {
            (dv.dataElement, dv.orgUnit, dv.categoryOptionCombo): dv.value
            for dv in job.merged.data_values()
        },
        "coverage": coverage(computed),
        "users": job.users,
        "skipped": dict(job.merged.skipped),
        "counted": job.merged.docs_counted,
    }


def births(computed: Computed) -> dict[str, int]:
    (job,) = computed.jobs
    return {
        dv.orgUnit: dv.value for dv in job.merged.data_values() if dv.dataElement == dep.DE_BIRTHS
    }


def coverage(computed: Computed) -> dict[str, tuple[int, int, list[str]]]:
    (job,) = computed.jobs
    return {c.orgUnit: (c.expected, c.synced, sorted(c.missing)) for c in job.coverage}


def second_run(cht: Cht, state_dir: str | None) -> Computed:
    """The cached run, checked against a run that keeps nothing."""
    warm = run(cht, state_dir)
    cold = run(cht, None, cache=False)
    assert births(warm) == births(cold), "births per org unit: cached run != run without cache"
    assert coverage(warm) == coverage(cold), "coverage: cached run != run without cache"
    assert outcome(warm) == outcome(cold)
    return warm


# -- the hand-worked figures ------------------------------------------------------------


def deployment(**kw: Any) -> dep.Deployment:
    """4 CHUs of 3 CHWs under one district; chw43 (under chu-4) never synced."""
    return dep.build([MONTH], chus=4, chws_per_chu=3, never_synced=1, **kw)


def births_by_owner(docs: list[dict[str, Any]]) -> dict[str, int]:
    return {
        d["owner"]: next(
            t["value"]["total"] for t in d["targets"] if t["id"] == "births-this-month"
        )
        for d in docs
        if d.get("type") == "target"
    }


def home(d: dep.Deployment) -> dict[str, str | None]:
    """Owner contact id -> the org unit of the CHU it sits under, as seeded."""
    return {contact: d.chw_chu[user] for user, contact in d.chw_contacts.items()}


def sums(born: dict[str, int], where: dict[str, str | None], units: list[str]) -> dict[str, int]:
    """Births per org unit: each owner's CHU, and the district above every CHU."""
    total = dict.fromkeys(units, 0)
    for owner, count in born.items():
        if where.get(owner) is None:
            continue  # owner gone: its doc counts nowhere
        for unit in (where[owner], dep.OU_DISTRICT):
            if unit in total:
                total[unit] += count
    return total


def under(chu: str) -> dict[str, Any]:
    return {"_id": chu, "parent": DISTRICT}


# -- 1. a CHW moves -----------------------------------------------------------------------


def test_a_chw_who_moves_takes_the_totals_along(couch, state_dir):
    """A person's lineage is cached; the changes feed must evict it when CHT rewrites
    ``parent``, or the CHW's numbers stay with the old CHU."""
    d = deployment()
    cht = Cht(couch, d.docs)
    born, where = births_by_owner(d.docs), home(d)
    first = run(cht, state_dir)
    assert births(first) == sums(born, where, [dep.OU_DISTRICT, *CHU])
    assert first.reads[0].owners_looked_up == 11

    mover = cht.get("chw-1-1")
    mover["parent"] = under("chu-2")
    cht.put(mover)

    second = second_run(cht, state_dir)
    moved = {**where, "chw-1-1": CHU[1]}
    assert born["chw-1-1"] > 0  # the move is visible in the numbers
    assert births(second) == sums(born, moved, [dep.OU_DISTRICT, *CHU])
    assert births(second)[CHU[0]] == births(first)[CHU[0]] - born["chw-1-1"]
    assert births(second)[CHU[1]] == births(first)[CHU[1]] + born["chw-1-1"]
    assert coverage(second)[CHU[0]] == (2, 2, [])
    assert coverage(second)[CHU[1]] == (4, 4, [])
    assert second.reads[0].owners_looked_up == 1  # only the one that changed


# -- 2. an owner is deleted (and comes back) ----------------------------------------------


def test_a_deleted_owner_s_doc_is_skipped_and_counts_again_when_restored(couch, state_dir):
    """A deletion is a change too: the cached lineage must not keep counting the doc."""
    d = deployment()
    cht = Cht(couch, d.docs)
    born, where = births_by_owner(d.docs), home(d)
    run(cht, state_dir)
    kept = cht.get("chw-2-1")

    cht.delete("chw-2-1")
    second = second_run(cht, state_dir)
    gone = {**where, "chw-2-1": None}
    assert births(second) == sums(born, gone, [dep.OU_DISTRICT, *CHU])
    assert outcome(second)["skipped"] == {"owner_not_found": 1}
    assert outcome(second)["counted"] == 10
    assert coverage(second)[CHU[1]] == (2, 2, [])  # chw21's contact is nowhere now

    del kept["_rev"]  # created again over the tombstone
    cht.put(kept)
    third = second_run(cht, state_dir)
    assert births(third) == sums(born, where, [dep.OU_DISTRICT, *CHU])
    assert outcome(third)["skipped"] == {}
    assert coverage(third)[CHU[1]] == (3, 3, [])


# -- 3. places gain and lose their org unit -----------------------------------------------


def test_org_units_appear_and_disappear_with_the_places_dhis(couch, state_dir):
    """Places are cached by id: one that gains ``dhis`` must be read, one that loses
    it must leave, and its CHWs' numbers stay in the district only."""
    d = deployment()
    chu4 = next(doc for doc in d.docs if doc["_id"] == "chu-4")
    del chu4["dhis"]  # seeded without an org unit
    cht = Cht(couch, d.docs)
    born, where = births_by_owner(d.docs), home(d)
    first = run(cht, state_dir)
    assert births(first) == sums(born, where, [dep.OU_DISTRICT, *CHU[:3]])

    gains = cht.get("chu-4")
    gains["dhis"] = {"orgUnit": CHU[3]}
    cht.put(gains)
    loses = cht.get("chu-1")
    del loses["dhis"]
    cht.put(loses)

    second = second_run(cht, state_dir)
    now = [dep.OU_DISTRICT, CHU[1], CHU[2], CHU[3]]
    assert set(births(second)) == set(now)
    assert births(second) == sums(born, where, now)
    assert births(second)[dep.OU_DISTRICT] == births(first)[dep.OU_DISTRICT]
    assert coverage(second)[CHU[3]] == (3, 2, ["chw43"])
    assert CHU[0] not in coverage(second)


# -- 4. users come and go -----------------------------------------------------------------


def test_new_and_deleted_user_settings_change_who_coverage_expects(couch, state_dir):
    """Users are re-checked by rev: a new user who never synced is expected (missing),
    a deleted one no longer is."""
    d = deployment()
    cht = Cht(couch, d.docs)
    first = run(cht, state_dir)
    assert coverage(first)[dep.OU_DISTRICT] == (12, 11, ["chw43"])
    assert coverage(first)[CHU[3]] == (3, 2, ["chw43"])

    cht.put(cht_docs.person("chw-3-4", "CHW 3.4", parent=under("chu-3")))
    cht.put(cht_docs.user_settings("chw34", "chw-3-4", "chu-3"))
    cht.delete("org.couchdb.user:chw43")

    second = second_run(cht, state_dir)
    assert coverage(second)[CHU[2]] == (4, 3, ["chw34"])
    assert coverage(second)[CHU[3]] == (2, 2, [])
    assert coverage(second)[dep.OU_DISTRICT] == (12, 11, ["chw34"])
    assert outcome(second)["users"] == (12, 11)
    assert births(second) == births(first)


# -- 5. the database is recreated -----------------------------------------------------------


@pytest.mark.parametrize("writes", ["fewer", "more"])
def test_a_recreated_database_uses_nothing_of_the_old_cache(couch, state_dir, writes):
    """Same URL, same name, other content: nothing cached of the old database may
    count. With fewer writes its sequence is behind the cached one; with as many or
    more it is not, and only the cache's own checks can tell the databases apart."""
    d = deployment()
    cht = Cht(couch, d.docs)
    first = run(cht, state_dir)
    born, where = births_by_owner(d.docs), home(d)
    assert births(first) == sums(born, where, [dep.OU_DISTRICT, *CHU])

    # restored from elsewhere: chw-1-1 sits under chu-2 there
    other = copy.deepcopy(d.docs)
    mover = next(doc for doc in other if doc["_id"] == "chw-1-1")
    mover["parent"] = under("chu-2")
    if writes == "fewer":
        other = [doc for doc in other if doc.get("type") != "clinic"]  # no households
    else:
        other += [{"_id": f"note-{n}", "type": "data_record"} for n in range(5)]
    cht.recreate(other)

    second = second_run(cht, state_dir)
    moved = {**where, "chw-1-1": CHU[1]}
    assert births(second) == sums(born, moved, [dep.OU_DISTRICT, *CHU])
    assert coverage(second)[CHU[0]] == (2, 2, [])
    assert second.reads[0].owners_looked_up == 11  # every owner read from the new database


# -- 6. nothing changed: the second run is warm ---------------------------------------------


def test_a_second_run_with_nothing_changed_reads_no_contact(couch, state_dir, http):
    """The point of the cache: no owner, place or user doc read again, same numbers."""
    d = deployment()
    cht = Cht(couch, d.docs)
    first = run(cht, state_dir)
    assert sum(r.owners_looked_up for r in first.reads) == 11

    http.clear()
    second = run(cht, state_dir)
    assert outcome(second) == outcome(first)
    assert sum(r.owners_looked_up for r in second.reads) == 0
    by_id = [
        (method, path)
        for method, path, _ in http
        if method == "POST" and path.endswith(("/_bulk_get", "/_all_docs"))
    ]
    assert by_id == []
    with_docs = [path for _, path, params in http if params.get("include_docs") == "true"]
    assert all(path.endswith("/_all_docs") for path in with_docs)  # the target pages only
    assert ("POST", f"/{cht.db}/_changes") in [(m, p) for m, p, _ in http]
    assert outcome(second) == outcome(run(cht, None, cache=False))


# -- 7 and 8. what is written to state_dir ---------------------------------------------------


def test_the_cache_file_holds_no_password(couch, tmp_path):
    """The state folder is backed up and read by operators: no CHT credential in it."""
    user = "cache-probe"
    admins = f"{couch.url}/_config/admins/{user}"
    couch.session().put(admins, json=PASSWORD, timeout=30).raise_for_status()
    try:
        cht = Cht(couch, deployment().docs)
        state = tmp_path / "state"
        computed = run(cht, str(state), username=user, password=PASSWORD)
        assert births(computed)[dep.OU_DISTRICT] > 0
    finally:
        couch.session().delete(admins, timeout=30)
    files = [p for p in state.rglob("*") if p.is_file()]
    assert [p.name for p in files] == [
        f"cht-contacts-{CacheStore.key(settings(couch, cht.db, username=user))}.json"
    ]
    basic = base64.b64encode(f"{user}:{PASSWORD}".encode())
    for path in files:
        content = path.read_bytes()
        assert PASSWORD.encode() not in content
        assert basic not in content
        assert couch.url.encode() not in content


def test_cache_off_writes_nothing(couch, tmp_path):
    """CHT_CACHE=false: nothing kept on disk, nor in memory for the next run."""
    cht = Cht(couch, deployment().docs)
    state = tmp_path / "state"
    state.mkdir()
    run(cht, str(state), cache=False)
    assert list(state.rglob("*")) == []
    assert CacheStore(None).load(settings(couch, cht.db)) is None
