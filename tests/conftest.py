"""Shared fixtures: a real CouchDB-protocol server (pouchdb-server) and a real
OpenHIM core 8.5.0 (on SecantusDB) per session; ``openhim`` resets the core for
each test that asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.couchdb import CouchServer
from devstack.openhim_core import OpenhimCore


@pytest.fixture(scope="session")
def couch() -> Iterator[CouchServer]:
    server = CouchServer().start()
    try:
        yield server
    finally:
        server.stop()


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
