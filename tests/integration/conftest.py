"""Fixtures shared by the integration tests (``couch`` and the CHT API front are in
tests/conftest.py)."""

from __future__ import annotations

import pytest

from devstack import deployment as dep


@pytest.fixture
def cht_db(couch):
    """A fresh medic database holding the demo deployment (Jan and Feb 2024)."""
    deployment = dep.build(["2024-01", "2024-02"])
    name = f"medic-e2e-{id(deployment)}"
    couch.create_db(name)
    couch.bulk(name, deployment.docs)
    return name
