"""Shared fixtures: a real CouchDB-protocol server (pouchdb-server) per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.couchdb import CouchServer


@pytest.fixture(scope="session")
def couch() -> Iterator[CouchServer]:
    server = CouchServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def own_lock_and_state_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Every test's runs lock and keep state in directories of their own: a parallel
    ``./dev.sh demo`` or another test run on the machine never blocks or feeds the suite.
    A config built without ``lock_dir`` locks in this process's MEDIATOR_LOCK_DIR
    (``mediator.locks.default_lock_dir``)."""
    own = tmp_path_factory.mktemp("mediator")
    monkeypatch.setenv("MEDIATOR_LOCK_DIR", str(own / "locks"))
    monkeypatch.setenv("MEDIATOR_STATE_DIR", str(own / "state"))
