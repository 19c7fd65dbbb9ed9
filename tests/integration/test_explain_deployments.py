"""``python -m mediator explain`` against pouchdb-server (and the DHIS2 stand-in): the docs
it lists are exactly the ones an independent reading of the deployment finds, their
contributions sum to ``preview``'s value, and it says why the others did not count.

The independent computation here reads the deployment as built (who sits where, which
target doc holds what), never the engine: a CHW counts at their CHU's org unit and at
the district's, with the winning revision of their month's doc, unless their contact
was deleted."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack import cht_docs as d
from devstack import deployment as dep
from mediator.cli.commands import main

JAN = "2024-01"
_dbs = itertools.count(1)
MAPPED = {  # data element -> (target id, category option combo)
    dep.DE_BIRTHS: ("births-this-month", None),
    dep.DE_FACILITY_DELIVERIES: ("facility-deliveries", dep.DEFAULT_COC),
}


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def cell(period: str, org_unit: str, element: str) -> tuple[str, ...]:
    """explain's options for a cell of the monthly data set."""
    return (
        "--data-set",
        dep.DS_MONTHLY,
        "--period",
        period,
        "--org-unit",
        org_unit,
        "--data-element",
        element,
    )


def explained(capsys, *args: str) -> dict[str, Any]:
    code, out, err = cli(capsys, "explain", "--json", *args)
    assert code == 0, err
    return json.loads(out)


def previewed(capsys, period: str, org_unit: str, element: str) -> dict[str | None, Any]:
    code, out, err = cli(
        capsys, "preview", "--period", period, "--data-set", dep.DS_MONTHLY, "--org-unit", org_unit
    )
    assert code == 0, err
    [value_set] = json.loads(out)
    return {
        v.get("categoryOptionCombo"): v["value"]
        for v in value_set["dataValues"]
        if v["dataElement"] == element
    }


def cht_only(monkeypatch, couch, db: str, percent: bool = True) -> None:
    """CHT alone, as an HRIO without DHIS2 access runs it; facility deliveries sent as
    the percent of the summed pass and total (MEDIATOR_VALUE_CHOICES), or their total."""
    choice = "percent" if percent else "total"
    monkeypatch.setenv("MEDIATOR_VALUE_CHOICES", f"facility-deliveries={choice}")
    for key in ("DHIS2_URL", "DHIS2_USERNAME", "DHIS2_PASSWORD", "DHIS2_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CHT_URL", couch.url)
    monkeypatch.setenv("CHT_DB", db)
    monkeypatch.setenv("CHT_USERNAME", couch.username)
    monkeypatch.setenv("CHT_PASSWORD", couch.password)


# -- a random deployment, and what it holds, read without the engine ---------------------------


class World:
    """A deployment loaded into its own database, with some CHWs' contacts deleted and
    some target docs in conflict (two devices' revisions), and who counts where."""

    def __init__(self, couch, seed: int, chus: int, chws: int, months: list[str]) -> None:
        rng = random.Random(seed)
        self.dep = dep.build(months, chus=chus, chws_per_chu=chws, never_synced=1, seed=seed)
        self.db = f"medic-explain-{next(_dbs)}"
        couch.create_db(self.db)
        couch.bulk(self.db, self.dep.docs)
        self.targets = {doc["_id"]: doc for doc in self.dep.docs if doc.get("type") == "target"}
        synced = [u for u in self.dep.users if u not in self.dep.never_synced]
        self.deleted = set(rng.sample(synced, k=min(1, len(synced))))
        for user in self.deleted:
            doc = couch.get(self.db, self.dep.chw_contacts[user])
            couch.bulk(self.db, [{"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True}])
        # a conflicted target doc: the winning revision's numbers count, the loser's do not
        self.conflicted: dict[str, str] = {}
        for ident in rng.sample(sorted(self.targets), k=min(2, len(self.targets))):
            stored = couch.get(self.db, ident)
            loser = {**stored, "targets": [d.target("births-this-month", 99)]}
            winner = {**stored, "targets": [*stored["targets"]]}
            made = d.conflict(winner, loser, base_rev=stored["_rev"])
            couch.write_revisions(self.db, made.docs)
            self.conflicted[ident] = made.loser
        self.couch = couch

    def under(self, org_unit: str, user: str) -> bool:
        return org_unit == dep.OU_DISTRICT or self.dep.chw_chu[user] == org_unit

    def expected_docs(self, org_unit: str, months: list[str], target: str) -> dict[str, Any]:
        """Doc id -> the target's value, of every doc that should count at the org unit."""
        found = {}
        for ident, doc in self.targets.items():
            user = doc["user"].removeprefix("org.couchdb.user:")
            month = ident.split("~")[1]
            if month not in months or user in self.deleted or not self.under(org_unit, user):
                continue
            value = next((t["value"] for t in doc["targets"] if t["id"] == target), None)
            if value is not None:
                found[ident] = value
        return found


@pytest.mark.parametrize("org_unit", [dep.OU_DISTRICT, dep.OU_CHU[1]])
def test_the_docs_explain_lists_are_the_ones_that_count_and_sum_to_previews_value(
    couch, monkeypatch, capsys, org_unit
):
    world = World(couch, seed=11, chus=3, chws=3, months=[JAN])
    cht_only(monkeypatch, couch, world.db)
    found = explained(capsys, *cell(JAN, org_unit, dep.DE_BIRTHS))
    want = world.expected_docs(org_unit, [JAN], "births-this-month")
    listed = {c["doc_id"]: c for c in found["contributions"]}
    assert set(listed) == set(want)
    [row] = found["rows"]
    assert sum(a["value"] for c in listed.values() for a in c["added"]) == row["computed"]
    assert row["computed"] == previewed(capsys, JAN, org_unit, dep.DE_BIRTHS)[None]
    assert row["computed"] == sum(v["total"] for v in want.values())
    # the conflicted docs say which revision lost; the deleted CHW's doc counts nowhere
    for ident, loser in world.conflicted.items():
        if ident in listed:
            assert listed[ident]["conflicts"] == [loser]
    [gone] = world.deleted
    unplaced = {u["doc_id"]: u for u in found["unplaced"]}
    gone_docs = [i for i in world.targets if f"~{world.dep.chw_contacts[gone]}~" in i]
    assert set(gone_docs) <= set(unplaced)
    assert {unplaced[i]["reason"] for i in gone_docs} == {"owner_deleted"}
    # who was expected and has no doc
    silent = [u for u in world.dep.never_synced if world.under(org_unit, u)]
    assert set(silent) <= set(found["missing_users"])


def test_a_percent_shows_the_summed_pass_and_total_and_a_quarter_its_months(
    couch, monkeypatch, capsys
):
    months = ["2024-01", "2024-02", "2024-03"]
    world = World(couch, seed=5, chus=2, chws=2, months=months)
    cht_only(monkeypatch, couch, world.db)
    found = explained(capsys, *cell("2024Q1", dep.OU_CHU[0], dep.DE_FACILITY_DELIVERIES))
    assert found["months"] == months
    assert {c["month"] for c in found["contributions"]} == set(months)
    want = world.expected_docs(dep.OU_CHU[0], months, "facility-deliveries")
    passed = sum(v["pass"] for v in want.values())
    total = sum(v["total"] for v in want.values())
    [row] = found["rows"]
    assert row["value_type"] == "percent"
    assert (row["summed"]["pass"], row["summed"]["total"]) == (passed, total)
    assert row["computed"] == (round(passed * 100 / total) if total else 0)
    assert (
        row["computed"]
        == previewed(capsys, "2024Q1", dep.OU_CHU[0], dep.DE_FACILITY_DELIVERIES)[dep.DEFAULT_COC]
    )


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    chus=st.integers(1, 4),
    chws=st.integers(1, 3),
    quarter=st.booleans(),
    element=st.sampled_from(sorted(MAPPED)),
    pick=st.integers(0, 10),
    percent=st.booleans(),
)
def test_property_any_cell_of_any_deployment(
    couch, monkeypatch, capsys, seed, chus, chws, quarter, element, pick, percent
):
    months = ["2024-01", "2024-02", "2024-03"] if quarter else [JAN]
    world = World(couch, seed, chus, chws, months)
    cht_only(monkeypatch, couch, world.db, percent)
    units = [dep.OU_DISTRICT, *dep.OU_CHU[:chus]]
    org_unit = units[pick % len(units)]
    period = "2024Q1" if quarter else JAN
    found = explained(capsys, *cell(period, org_unit, element))
    target, coc = MAPPED[element]
    want = world.expected_docs(org_unit, months, target)
    assert {c["doc_id"] for c in found["contributions"]} == set(want)
    [row] = found["rows"]
    assert row["computed"] == previewed(capsys, period, org_unit, element)[coc]
    if row["value_type"] == "percent":
        summed = row["summed"]
        assert summed["pass"] == sum(a["pass"] for c in found["contributions"] for a in c["added"])
        assert summed["total"] == sum(
            a["total"] for c in found["contributions"] for a in c["added"]
        )
        assert row["computed"] == (
            round(summed["pass"] * 100 / summed["total"]) if summed["total"] else 0
        )
    else:
        assert row["computed"] == sum(
            a["value"] for c in found["contributions"] for a in c["added"]
        )


# -- with DHIS2 ----------------------------------------------------------------------------------


def test_explain_shows_what_dhis2_holds_beside_what_cht_computes(stack, capsys):
    d2, _ = stack
    code, _, err = cli(capsys, "push", "--period", JAN, "--json")
    assert code == 0, err
    ou = dep.OU_CHU[0]
    args = ("--data-set", dep.DS_MONTHLY, "--period", JAN, "--org-unit", ou)
    found = explained(capsys, *args, "--data-element", dep.DE_BIRTHS)
    [row] = found["rows"]
    assert found["dhis2_read"] is True
    assert row["state"] == "equal"
    assert float(row["dhis2"]) == row["computed"]
    # a value typed in DHIS2 by hand: explain shows both, and that they differ
    d2.store.seed(dep.DE_BIRTHS, "202401", ou, "999")
    found = explained(capsys, *args, "--data-element", dep.DE_BIRTHS)
    [row] = found["rows"]
    assert (row["dhis2"], row["state"]) == ("999", "differs")
    code, out, _ = cli(capsys, "explain", "--summary", *args, "--data-element", dep.DE_BIRTHS)
    assert code == 0
    assert f"CHT computes {row['computed']}" in out and "DHIS2 holds 999 (they differ" in out
    assert "Contributing CHWs:" in out and "chw11" in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--data-element", "NotMapped01"), "data element NotMapped01: no CHT target"),
        (("--data-element", dep.DE_BIRTHS, "--org-unit", "NoPlace0001"), "no CHT place carries"),
        (("--data-element", dep.DE_BIRTHS, "--period", "2024-13"), "month 13 does not exist"),
        (("--org-unit", dep.OU_CHU[0]), "--data-element is required"),
        (("--data-element", dep.DE_BIRTHS, "--from", JAN, "--to", JAN), "explain is of one period"),
        (("--data-element", dep.DE_BIRTHS, "--data-set", "NotADataSet"), "NotADataSet"),
        (("--data-element", "not a uid!"), "is not a DHIS2 id"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(stack, capsys, args, words):
    base = {"--data-set": dep.DS_MONTHLY, "--period": JAN, "--org-unit": dep.OU_CHU[0]}
    given = dict(zip(args[::2], args[1::2], strict=True))
    merged = {**base, **given}
    if "--from" in given:
        merged.pop("--period")
    flat = [x for pair in merged.items() for x in pair]
    code, out, err = cli(capsys, "explain", "--json", *flat)
    assert code == 2
    assert out == ""
    said = [line for line in err.splitlines() if not line.startswith("warning: weak secret")]
    assert len(said) == 1 and said[0].startswith("error: ") and words in said[0], err
