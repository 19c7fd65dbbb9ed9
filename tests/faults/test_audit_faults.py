"""An audit when DHIS2 cannot be reached: nothing is called equal, the audit says what it
could not compare and exits 1, and names the audit that compares it once DHIS2 is back."""

from __future__ import annotations

import json

from mediator.cli.commands import main

from .helpers import PERIOD


def test_dhis2_unreachable_is_an_incomplete_audit_that_names_its_redo(
    couch, base_db, monkeypatch, capsys
):
    for key, value in {
        "CHT_URL": couch.url,
        "CHT_DB": base_db,
        "CHT_USERNAME": couch.username,
        "CHT_PASSWORD": couch.password,
        "DHIS2_URL": "http://127.0.0.1:9",  # nothing listens there
        "DHIS2_USERNAME": "admin",
        "DHIS2_PASSWORD": "district",
        "DHIS2_MAX_ATTEMPTS": "2",
        "DHIS2_MAX_RETRY_SECONDS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = main(["audit", "--period", PERIOD, "--json"])
    out = capsys.readouterr()
    found = json.loads(out.out)
    assert code == 1
    assert found["status"] == "incomplete" and found["agrees"] is False
    assert found["totals"]["equal"] == 0 and found["cells"] == [] and found["repair"] == []
    assert all(r["error"] and "127.0.0.1:9" in r["error"] for r in found["results"])
    assert found["redo"] == [
        "python -m mediator audit --data-set VMuFODsyWaO --data-set QX4ZTUbOt3a --period 202401"
    ]
    assert "not compared" in out.err and "Traceback" not in out.err
