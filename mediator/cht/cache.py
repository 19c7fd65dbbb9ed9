"""What a run learns of CHT's contacts, kept for the next run and checked first.

Owner lineages, the places that carry ``dhis`` and the users cost more to read than
the month's target docs (on pouchdb-server about 1.3 times as much), and they
rarely change. So a run keeps them with the database's update sequence: in
``MEDIATOR_STATE_DIR`` when it is set, else in memory for the next run of the same
process.

The next run trusts none of it unchecked. CouchDB's changes feed says which of the
kept contacts, places and users changed or were deleted since that sequence
(``_changes?filter=_doc_ids``), and only those are read again; an ids-only listing
of the ``user-settings`` docs finds new users. A database recreated or restored
under the same name throws the cache away (``Contacts._validate``). The file holds
ids, revisions, names and lineages, never a URL or a credential.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mediator.engine.mapping import lineage_ids
from mediator.settings.config import ChtSettings

from .client import ChtError, ChtReader

FORMAT = 4  # 4: users keep their roles (who writes target docs)
PLACE_FIELDS = ("_id", "name", "dhis")
REV_SAMPLE = 1000  # kept revisions checked per run: about 30 ms on pouchdb-server
REVS_KEPT = 2 * REV_SAMPLE  # a rev per contact would cost 5 MB a national deployment

Lineage = tuple[str, ...] | str | None  # ids up the tree, a skip reason, or missing
ChtUser = tuple[str, tuple[str, ...] | None]  # contact id, roles
# username, contact id (None: not a CHT user), roles (None: the doc has none)
User = tuple[str | None, str | None, tuple[str, ...] | None]


@dataclass
class ContactCache:
    seq: Any = None
    instance: str = ""  # the database's instance_start_time: another database, another cache
    lineages: dict[str, Lineage] = field(default_factory=dict)
    places: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)  # by user-settings doc id
    # revisions of up to REVS_KEPT kept contacts and places: witnesses of the database
    revs: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> ContactCache:
        return ContactCache(
            self.seq,
            self.instance,
            dict(self.lineages),
            dict(self.places),
            dict(self.users),
            dict(self.revs),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "seq": self.seq,
            "instance": self.instance,
            "lineages": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.lineages.items()
            },
            "places": self.places,
            "users": {
                k: [name, contact, list(roles) if roles is not None else None]
                for k, (name, contact, roles) in self.users.items()
            },
            "revs": self.revs,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContactCache | None:
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("seq") is None:
            return None
        try:
            return cls(
                seq=data["seq"],
                instance=str(data.get("instance", "")),
                lineages={
                    k: tuple(sys.intern(i) for i in v) if isinstance(v, list) else v
                    for k, v in data["lineages"].items()
                },
                places=dict(data["places"]),
                users={k: (v[0], _intern(v[1]), _roles(v[2])) for k, v in data["users"].items()},
                revs=dict(data["revs"]),
            )
        except (KeyError, TypeError, IndexError, AttributeError):
            return None  # a damaged file costs one full read, nothing more


class CacheStore:
    """Caches by CHT source: in a folder when one is given, else in this process."""

    _memory: dict[str, ContactCache] = {}
    _lock = threading.Lock()

    def __init__(self, folder: str | None) -> None:
        self.folder = Path(folder) if folder else None

    @staticmethod
    def key(settings: ChtSettings) -> str:
        raw = f"{settings.url}|{settings.db}|{settings.username or ''}"
        return hashlib.sha256(raw.encode()).hexdigest()[:20]

    def _file(self, key: str) -> Path | None:
        return self.folder / f"cht-contacts-{key}.json" if self.folder else None

    def load(self, settings: ChtSettings) -> ContactCache | None:
        key = self.key(settings)
        path = self._file(key)
        if path is None:
            with self._lock:
                return self._memory.get(key)
        if not path.exists():
            return None
        try:
            return ContactCache.from_json(orjson.loads(path.read_bytes()))
        except (OSError, ValueError):
            return None  # a damaged file costs one full read, nothing more

    def save(self, settings: ChtSettings, cache: ContactCache) -> None:
        """In the folder when there is one (a copy in memory too would only cost the
        next run's peak memory: the file loads in tens of milliseconds), else a
        snapshot in memory: the run goes on filling its own cache (later months)
        while another run may already be reading this one."""
        key = self.key(settings)
        path = self._file(key)
        if path is None:
            with self._lock:
                self._memory[key] = cache.snapshot()
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # orjson: a national cache (megabytes) in tens of milliseconds, on the run's path
        data = orjson.dumps(cache.to_json())
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cht-contacts-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)  # readers see the old file or the new one, never half
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def forget_all(cls) -> None:
        """Tests: start from nothing kept in memory."""
        with cls._lock:
            cls._memory.clear()


class Contacts:
    """One run's contacts of one CHT instance: kept ones still valid, the rest read.

    It never changes the cache it was given (another run may be using it); what it
    knows at the end is a new ``ContactCache`` for ``CacheStore.save``.
    """

    def __init__(self, reader: ChtReader, previous: ContactCache | None) -> None:
        self.reader = reader
        self.cache = ContactCache()
        self.warm = False
        self.keepable = True
        self.warning: str | None = None  # why the kept contacts could not be used
        try:
            self._validate(previous)
        except ChtError as exc:
            # the database info or the changes feed refused, timed out, redirected or
            # answered nonsense: every contact is read afresh (exact, only slower), and
            # nothing is kept, since the next run could not check it either
            self.keepable = False
            self.cache = ContactCache()
            self.warm = False
            self.warning = (
                "the contacts kept between runs could not be checked against CHT's changes "
                f"feed, so every contact was read afresh and none was kept ({exc})"
            )

    def _validate(self, previous: ContactCache | None) -> None:
        info = self.reader.db_info()
        now, instance = info["update_seq"], str(info.get("instance_start_time", ""))
        self.cache.instance = instance
        if (
            previous is not None
            and previous.instance == instance
            and _seq_number(previous.seq) <= _seq_number(now)
        ):
            watched = [*previous.lineages, *previous.places, *previous.users]
            answer = self.reader.changed_since(previous.seq, watched)
            if answer is not None and self._same_database(previous, answer[0]):
                changed, self.cache.seq = answer
                self.cache.lineages = {
                    k: v for k, v in previous.lineages.items() if k not in changed
                }
                self.cache.places = {k: v for k, v in previous.places.items() if k not in changed}
                self.cache.revs = {k: v for k, v in previous.revs.items() if k not in changed}
                self.cache.users = {k: v for k, v in previous.users.items() if k not in changed}
                self.warm = True
        if not self.warm:
            # taken before anything is read: a doc that changes during this run shows
            # in the next run's changes feed
            self.cache.seq = now

    def _same_database(self, previous: ContactCache, changed: set[str]) -> bool:
        """Does the changes feed describe the database the cache was filled from?

        A database deleted and recreated (or restored) under the same name may have
        come past the kept sequence with other docs before it. CouchDB 2+ sees that
        the sequence names another database file and rewinds the feed to 0
        (``calculate_start_seq`` in apache/couchdb ``src/couch/src/couch_db.erl``);
        PouchDB does not. So up to ``REV_SAMPLE`` kept revisions that the feed says
        did not change must still be in the database (``_revs_diff``).
        """
        unchanged = [(k, v) for k, v in previous.revs.items() if k not in changed]
        sample = dict(random.sample(unchanged, min(REV_SAMPLE, len(unchanged))))
        if not sample:
            return True
        missing = self.reader.missing_revs(sample)
        return missing is not None and not missing

    def places(self, org_unit: str | None) -> list[dict[str, Any]]:
        """The contacts that carry ``dhis`` (view order), as ``ChtReader.places`` gives
        them: the view's ids, and the docs not kept (all, the first time) by id. On
        pouchdb-server the view with ``include_docs`` costs twice as much (``benchmarks/``);
        both give each doc's winning revision."""
        ids = self.reader.place_ids(org_unit)
        unknown = [i for i in ids if i not in self.cache.places]
        for ident, doc in self.reader.docs_by_id(unknown).items():
            if doc is not None:
                self._keep_place(ident, doc)
        return [self.cache.places[i] for i in ids if i in self.cache.places]

    def _keep_place(self, ident: str, doc: dict[str, Any]) -> None:
        # what aggregation reads of a place (engine.Aggregation.add_places), not the
        # whole doc: real place docs carry contacts, locations and more
        self.cache.places[ident] = {k: doc[k] for k in PLACE_FIELDS if k in doc}
        self._witness(ident, doc)

    def _witness(self, ident: str, doc: dict[str, Any]) -> None:
        """Keep the revision of the first ``REVS_KEPT`` docs read (and of later ones as
        those change): what ``_same_database`` checks the next run against."""
        if isinstance(doc.get("_rev"), str) and len(self.cache.revs) < REVS_KEPT:
            self.cache.revs[ident] = doc["_rev"]

    def users(self, reader: ChtReader | None = None) -> dict[str, ChtUser]:
        """Username -> (contact id, roles), from the ``user-settings`` docs. ``reader``:
        another one, when this runs on a thread of its own (a session is not shared).

        Warm, the ids alone are listed: changed users were dropped by the changes
        feed, so only new (or changed) ones are read, and deleted ones fall away."""
        reader = reader or self.reader
        fresh: dict[str, User] = {}
        if not self.cache.users:
            for rows in reader.user_rows(docs=True):
                for row in rows:
                    fresh[row["id"]] = _user(row.get("doc"))
        else:
            ids = [row["id"] for rows in reader.user_rows(docs=False) for row in rows]
            docs = reader.docs_by_id([i for i in ids if i not in self.cache.users])
            for ident in ids:
                fresh[ident] = _user(docs[ident]) if ident in docs else self.cache.users[ident]
        self.cache.users = fresh
        return {
            name: (contact, roles) for name, contact, roles in fresh.values() if name and contact
        }

    def lineages(
        self, ids: list[str], reader: ChtReader | None = None
    ) -> tuple[dict[str, Lineage], int]:
        """Lineages of these contacts, and how many had to be read from CHT. ``reader``:
        another one, when this runs on a thread of its own."""
        unknown = [i for i in dict.fromkeys(ids) if i not in self.cache.lineages]
        if unknown:
            for ident, doc in (reader or self.reader).docs_by_id(unknown).items():
                self.cache.lineages[ident] = lineage_ids(doc) if doc else None
                if doc:
                    self._witness(ident, doc)
        return self.cache.lineages, len(unknown)


def _seq_number(seq: Any) -> int:
    """The number a sequence starts with (PouchDB: the number; CouchDB 2+: ``N-…``). A
    sequence ahead of the database's own means the database is not the one cached."""
    text = str(seq).split("-", 1)[0]
    return int(text) if text.isdigit() else 0


def _intern(text: str | None) -> str | None:
    return sys.intern(text) if text is not None else None


def _user(doc: Any) -> User:
    if (
        isinstance(doc, dict)
        and doc.get("type") == "user-settings"
        and isinstance(doc.get("name"), str)
        and isinstance(doc.get("contact_id"), str)
    ):
        # the contact id is also a lineage key: one string for both. CHT writes the
        # user's roles into user-settings too, with "mm-online" for online users
        # (cht-core shared-libs/user-management/src/users.js, getSettingsUpdates)
        return (doc["name"], sys.intern(doc["contact_id"]), _roles(doc.get("roles")))
    return (None, None, None)


_ROLE_SETS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _roles(value: Any) -> tuple[str, ...] | None:
    """Roles as one shared tuple per distinct set (thousands of CHWs share one)."""
    if not isinstance(value, list):
        return None
    roles = tuple(sorted(sys.intern(r) for r in value if isinstance(r, str)))
    return _ROLE_SETS.setdefault(roles, roles)
