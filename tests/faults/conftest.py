"""Fixtures of the fault suite (the session ``couch`` server is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.couchdb import CouchServer
from devstack.dhis2_standin import Dhis2StandIn

from .helpers import new_db, oracle


@pytest.fixture(scope="module")
def base_db(couch: CouchServer) -> str:
    """A demo deployment for January 2024 that tests in a module only read."""
    return new_db(couch)


@pytest.fixture(scope="module")
def computed(couch: CouchServer, base_db: str) -> dict:
    """What DHIS2 must hold after a successful push of ``base_db``."""
    return oracle(couch, base_db)


@pytest.fixture
def d2() -> Iterator[Dhis2StandIn]:
    with Dhis2StandIn(version="2.41.1") as standin:
        yield standin


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back-off of 0.05 s, 0.1 s … instead of 1 s, 2 s …: the retry logic and its
    bounds stay real, the suite stays fast. Retry-After is still honoured as sent."""
    from mediator.http.client import RetryPolicy

    monkeypatch.setattr(RetryPolicy, "pause", lambda self, attempt, rng: 0.05 * attempt)
