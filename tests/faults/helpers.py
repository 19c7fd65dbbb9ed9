"""Shared pieces of the fault suite: a tiny deployment, a DHIS2 stand-in, the
oracle (what a fault-free push makes DHIS2 hold) and write counting."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

from devstack import deployment as dep
from devstack.couchdb import CouchServer
from devstack.dhis2_standin import Dhis2StandIn
from mediator.model import periods
from mediator.model.report import RunReport
from mediator.run.pipeline import execute
from mediator.run.request import RunRequest
from mediator.settings.config import ChtSettings, Dhis2Settings, RuntimeConfig

PERIOD = "2024-01"
DHIS2_PERIOD = "202401"
DEFAULT = dep.DEFAULT_COC
Key = tuple[str, str, str, str, str]  # (dataElement, period, orgUnit, coc, aoc)
_dbs = itertools.count(1)


def new_db(couch: CouchServer, months: list[str] | None = None) -> str:
    deployment = dep.build(months or [PERIOD])
    name = f"medic-faults-{next(_dbs)}"
    couch.create_db(name)
    couch.bulk(name, deployment.docs)
    return name


def request(period: str = PERIOD, **kw: Any) -> RunRequest:
    """A RunRequest for one period, whatever the period type RunRequest holds."""
    kind = getattr(periods, "Period", periods.Month)
    return RunRequest(periods=[kind.parse(period)], **kw)


def config(
    cht_url: str,
    db: str,
    dhis2_url: str,
    *,
    cht_user: str = "",
    cht_password: str = "",
    dhis2_user: str = "admin",
    dhis2_password: str = "district",
    **dhis2: Any,
) -> RuntimeConfig:
    """Fault tests keep retries short: 3 attempts, at most 1 s of back-off per request."""
    settings: dict[str, Any] = {"max_attempts": 3, "max_retry_seconds": 1.0, "timeout": 10.0}
    settings.update(dhis2)
    return RuntimeConfig(
        cht=ChtSettings(
            url=cht_url,
            db=db,
            username=cht_user or None,
            password=cht_password or None,
            timeout=10.0,
        ),
        dhis2=Dhis2Settings(
            url=dhis2_url, username=dhis2_user, password=dhis2_password, **settings
        ),
    )


def couch_config(couch: CouchServer, db: str, d2: Dhis2StandIn, **kw: Any) -> RuntimeConfig:
    return config(couch.url, db, d2.url, cht_user=couch.username, cht_password=couch.password, **kw)


def push(cfg: RuntimeConfig, period: str = PERIOD, **kw: Any) -> RunReport:
    return execute(request(period, **kw), cfg)


def held(d2: Dhis2StandIn) -> dict[Key, str]:
    return {k: v for k, v in d2.store.values().items() if v not in (None, "")}


def oracle(couch: CouchServer, db: str, period: str = PERIOD) -> dict[Key, str]:
    """What DHIS2 holds after one push without any fault: the computed values."""
    with Dhis2StandIn(version="2.41.1") as clean:
        report = push(couch_config(couch, db, clean), period)
        assert report.status == "Successful", report.model_dump_json(indent=1)
        values = held(clean)
    assert values, "the deployment computes no values"
    return values


def _key(value: dict[str, Any], period: str = DHIS2_PERIOD) -> Key:
    return (
        value["dataElement"],
        value.get("period") or period,
        value["orgUnit"],
        value.get("categoryOptionCombo") or DEFAULT,
        value.get("attributeOptionCombo") or DEFAULT,
    )


def writes(d2: Dhis2StandIn) -> Counter[Key]:
    """How many imports DHIS2 processed per key: POSTs that reached the importer
    (not refused by an injected fault before it), counting each key once per POST."""
    seen: Counter[Key] = Counter()
    for rec in d2.store.posts("/api/dataValueSets"):
        if rec.fault not in (None, "delay", "drop_after") or "dryRun=true" in rec.query_string:
            continue
        body = json.loads(rec.text)
        seen.update({_key(v) for v in body.get("dataValues", [])})
    return seen


def rejected_keys(report: RunReport) -> set[Key]:
    return {
        (
            r.dataElement,
            r.period,
            r.orgUnit,
            r.categoryOptionCombo or DEFAULT,
            r.attributeOptionCombo or DEFAULT,
        )
        for result in report.results
        for r in result.rejected
    }


def dhis2_requests(d2: Dhis2StandIn, path: str = "/api/") -> int:
    return len([r for r in d2.store.requests if r.path.startswith(path)])
