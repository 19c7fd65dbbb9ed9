"""The fixtures of CHT's own export tests (cht-export.md §7.1), for a live CouchDB.

``contact``, ``target_doc``, ``mock_settings`` and ``MULTI`` mirror the helpers
of cht-core's ``api/tests/mocha/services/export/dhis.spec.js``.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from devstack import cht_docs
from devstack.couchdb import CouchServer
from devstack.shared import SHARED

DATA_SET = "VMuFODsyWaO"
DEFAULT_SETTINGS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "cht-default-settings.json").read_text()
)
MULTI = {
    "dhis_data_sets": [
        {"id": "ds-1", "translation_key": "dataset 1"},
        {"id": "ds-2", "translation_key": "dataset 2"},
    ],
    "tasks": {
        "targets": {
            "items": [
                {
                    "id": "data element 1",
                    "dhis": {"dataSet": "ds-1", "dataElement": "de-1", "arbitrary": "yes"},
                },
                {"id": "data element 2", "dhis": {"dataSet": "ds-2", "dataElement": "de-2"}},
                {"id": "data element both", "dhis": {"dataElement": "de-both"}},
            ]
        }
    },
}

_UNSET = object()
_db_names = itertools.count(1)


def contact(name: str, **override: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": f"{name}-guid",
        "type": "contact",
        "contact_type": "person",
        "name": name,
        "dhis": {"orgUnit": f"ou-{name}"},
    }
    for key, value in override.items():
        if value is _UNSET or value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def target_doc(name: str, month: str, **override: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": f"target~{month}~org.couchdb.user:{name}~{name}-guid",
        "type": "target",
        "owner": f"{name}-guid",
        "user": f"org.couchdb.user:{name}",
        "targets": [
            {"id": "births-this-month", "value": {"pass": 0, "total": 12}},
            {"id": "facility-deliveries", "value": {"pass": 2, "total": 4, "percent": 50}},
        ],
    }
    doc.update(override)
    return doc


def mock_settings(data_sets: list[dict[str, Any]], targets: list[dict[str, Any]] | None) -> dict:
    tasks: dict[str, Any] = {"targets": {}}
    if targets is not None:
        tasks["targets"]["items"] = targets
    return {"dhis_data_sets": data_sets, "tasks": tasks}


def seed(couch: CouchServer, settings: dict[str, Any], docs: list[dict[str, Any]]) -> str:
    """A fresh medic-like database with the settings doc, the view and ``docs``. The settings
    get CHT's ``roles`` and ``permissions`` where they have none, and the database their
    roles as members (``CouchServer.create_db``), so the integration user of the CHT API
    front (``cht_api`` fixtures) reads it as on a real CHT."""
    name = f"medic-case-{next(_db_names)}"
    couch.create_db(name)
    settings = cht_docs.with_cht_access(settings)
    couch.bulk(name, [cht_docs.settings_doc(settings), cht_docs.medic_admin_ddoc(), *docs])
    return name


def use_db(monkeypatch: Any, couch: CouchServer, db: str, **more: str) -> None:
    """Point the mediator (its CHT_* variables) at ``db`` on ``couch``, as its admin."""
    env = {
        "CHT_URL": couch.url,
        "CHT_DB": db,
        "CHT_USERNAME": couch.username,
        "CHT_PASSWORD": couch.password,
        **more,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)


# CHT's own export code (cht-core 5.2.0 api/src/services/export/dhis.js) run by the project's
# shared tool; CHT_EXPORT_ORACLE points elsewhere.
ORACLE = Path(os.environ.get("CHT_EXPORT_ORACLE") or SHARED / "tools" / "cht-export-oracle")


class ChtExportError(Exception):
    """CHT's export refused the request (its API would answer 400/500): CHT's own message."""


def cht_export(
    couch: CouchServer, db: str, data_set: str, month: str, org_unit: str | None = None
) -> dict[str, Any]:
    """CHT's own "Export -> DHIS2" of ``month`` (``YYYY-MM``) on ``db``: its dataValueSet
    (``{dataSet, completeDate, period, dataValues}``).

    CHT's export runs inside CHT's API, which reads CouchDB as its admin, so the oracle reads
    pouchdb-server directly as admin, never through the API front. It reads winners only
    (``_all_docs`` with ``keys`` and with a range, the view, all ``include_docs``), so a
    deployment with conflicts gives what CHT exports. Raises ``ChtExportError`` when CHT
    would refuse, ``FileNotFoundError`` when the oracle is not installed here.
    """
    if not ORACLE.exists():
        raise FileNotFoundError(f"CHT's export oracle is not at {ORACLE} (set CHT_EXPORT_ORACLE)")
    host = couch.url.split("://", 1)[1]
    secret = f"{quote(couch.username, safe='')}:{quote(couch.password, safe='')}"
    env = {**os.environ, "CHT_URL": f"http://{secret}@{host}", "CHT_DB": db}
    args = [str(ORACLE), data_set, month, *([org_unit] if org_unit else [])]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=False)
    said = proc.stderr.replace(secret, "***").replace(couch.password, "***").strip()
    if proc.returncode == 2:
        raise ChtExportError(said.splitlines()[-1] if said else "CHT's export failed")
    if proc.returncode != 0:
        raise RuntimeError(f"cht-export-oracle exited {proc.returncode}: {said[-500:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result
