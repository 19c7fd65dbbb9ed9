"""Fixtures shared by the integration tests (``couch`` and the CHT API front are in
tests/conftest.py)."""

from __future__ import annotations

import pytest

from devstack import deployment as dep
from devstack.dhis2_standin import Dhis2StandIn


@pytest.fixture
def cht_db(couch):
    """A fresh medic database holding the demo deployment (Jan and Feb 2024)."""
    deployment = dep.build(["2024-01", "2024-02"])
    name = f"medic-e2e-{id(deployment)}"
    couch.create_db(name)
    couch.bulk(name, deployment.docs)
    return name


@pytest.fixture
def stack(couch, cht_db, monkeypatch):
    """The demo deployment in CHT and a DHIS2 stand-in (2.41.1) that knows its metadata,
    both in the environment as an operator sets them: (stand-in, the variables)."""
    d2 = Dhis2StandIn(metadata=dep.dhis2_metadata(chus=5), version="2.41.1").start()
    env = {
        "CHT_URL": couch.url,
        "CHT_DB": cht_db,
        "CHT_USERNAME": couch.username,
        "CHT_PASSWORD": couch.password,
        "DHIS2_URL": d2.url,
        "DHIS2_USERNAME": "admin",
        "DHIS2_PASSWORD": "district",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield d2, env
    d2.stop()
