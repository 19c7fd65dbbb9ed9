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
