"""Shared fixtures: a real CouchDB-protocol server (pouchdb-server) and a real
OpenHIM core 8.5.0 (on SecantusDB) per session; ``openhim`` resets the core for
each test that asks for it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.couchdb import CouchServer
from devstack.openhim_core import OpenhimCore
from devstack.stack import LocalStack

_dbs = itertools.count(1)


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
