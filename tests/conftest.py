"""Shared fixtures: a real CouchDB-protocol server (pouchdb-server) with CHT's API in front
of it (``devstack.cht_api``), as an operator's ``CHT_URL`` reaches CHT, and a real OpenHIM
core 8.5.0 (on SecantusDB) per session; ``openhim`` resets the core for each test that asks
for it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack import cht_docs
from devstack.cht_api import INTEGRATION_PASSWORD, INTEGRATION_USER, ChtApiFront
from devstack.couchdb import CouchServer
from devstack.openhim_core import OpenhimCore
from devstack.stack import LocalStack
from mediator.settings.config import ChtSettings

# the front's own database: CHT's API reads its app settings (roles) here when it makes users
FRONT_DB = "cht-api-medic"
_dbs = itertools.count(1)


@pytest.fixture(scope="session")
def couch() -> Iterator[CouchServer]:
    server = CouchServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cht_api(couch: CouchServer) -> Iterator[ChtApiFront]:
    """CHT's API over the session's pouchdb-server, routing every ``/{db}/`` as CHT routes
    medic, with the online non-admin integration user (``INTEGRATION_USER``) made through
    CHT's users API. CouchDB 3's ``_bulk_get`` (every leaf) is on."""
    couch.create_db(FRONT_DB)
    couch.bulk(FRONT_DB, [cht_docs.settings_doc(cht_docs.with_cht_access({}))])
    front = ChtApiFront(couch, db=FRONT_DB).start()
    try:
        front.create_integration_user()
        yield front
    finally:
        front.stop()


@pytest.fixture
def cht_api_env(cht_api: ChtApiFront) -> Callable[[str], dict[str, str]]:
    """``cht_api_env(db)``: the mediator's ``CHT_*`` variables to read ``db`` through the
    front as the integration user."""

    def env(db: str) -> dict[str, str]:
        return {
            "CHT_URL": cht_api.url,
            "CHT_DB": db,
            "CHT_USERNAME": INTEGRATION_USER,
            "CHT_PASSWORD": INTEGRATION_PASSWORD,
        }

    return env


@pytest.fixture
def cht_api_settings(cht_api: ChtApiFront) -> Callable[..., ChtSettings]:
    """``cht_api_settings(db, **fields)``: the mediator's ``ChtSettings`` for ``db`` through
    the front as the integration user (``fields`` override, e.g. ``page_size``)."""

    def settings(db: str, **fields: object) -> ChtSettings:
        values: dict[str, object] = {
            "url": cht_api.url,
            "db": db,
            "username": INTEGRATION_USER,
            "password": INTEGRATION_PASSWORD,
            **fields,
        }
        return ChtSettings.model_validate(values)

    return settings


@pytest.fixture(autouse=True)
def own_lock_and_state_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Every test's runs lock and keep state in directories of their own: a parallel
    ``./dev.sh demo`` or another test run on the machine never blocks or feeds the suite.
    A config built without ``lock_dir`` locks in this process's MEDIATOR_LOCK_DIR
    (``mediator.run.locks.default_lock_dir``)."""
    own = tmp_path_factory.mktemp("mediator")
    monkeypatch.setenv("MEDIATOR_LOCK_DIR", str(own / "locks"))
    monkeypatch.setenv("MEDIATOR_STATE_DIR", str(own / "state"))


@pytest.fixture(scope="session")
def openhim_core() -> Iterator[OpenhimCore]:
    """One core for the session: starting one costs seconds."""
    core = OpenhimCore().start()
    try:
        yield core
    finally:
        core.close()


@pytest.fixture
def openhim(openhim_core: OpenhimCore) -> OpenhimCore:
    """The session's core, up (a test may have taken it down) and emptied of
    mediators, channels, clients, transactions, tasks and polling jobs."""
    if not openhim_core.running:
        openhim_core.start()
    openhim_core.reset()
    return openhim_core


@pytest.fixture
def local_stacks(couch: CouchServer, openhim: OpenhimCore) -> Iterator[Callable[..., LocalStack]]:
    """``make(months, **kw)``: a started local stack on the session's CouchDB (a
    database of its own) and OpenHIM core, heartbeat every 0.3 s; all stopped after
    the test."""
    stacks: list[LocalStack] = []

    def make(months: list[str], **kw: Any) -> LocalStack:
        env = {"OPENHIM_HEARTBEAT_SECONDS": "0.3", **kw.pop("extra_env", {})}
        stack = LocalStack(
            months=months,
            couch=couch,
            db=f"medic-stack-{next(_dbs)}",
            extra_env=env,
            openhim=openhim,
            **kw,
        )
        stacks.append(stack)
        return stack.start()

    yield make
    for stack in stacks:
        stack.stop()
