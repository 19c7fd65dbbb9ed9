"""The fixtures of CHT's own export tests (cht-export.md §7.1), for a live CouchDB.

``contact``, ``target_doc``, ``mock_settings`` and ``MULTI`` mirror the helpers
of cht-core's ``api/tests/mocha/services/export/dhis.spec.js``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from devstack import cht_docs
from devstack.couchdb import CouchServer

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
    """A fresh medic-like database with the settings doc, the view and ``docs``."""
    name = f"medic-case-{next(_db_names)}"
    couch.create_db(name)
    couch.bulk(name, [cht_docs.settings_doc(settings), cht_docs.medic_admin_ddoc(), *docs])
    return name
