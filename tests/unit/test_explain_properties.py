"""Explain's watched aggregation (hypothesis): on random deployments (a tree of places
with org units at every level, owners CHT does not have, owners outside the data set,
percent and pass targets, two targets summed into one row, malformed docs and values,
the three months of a quarter), for a random cell the contributions it lists sum to the
value the plain aggregation gives that cell, and it lists exactly the docs found here
independently from CHT's rules (the owner's lineage reaches a place carrying the org
unit, and a target mapped to the data element has a value the row can use)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mediator.engine.aggregation import Aggregation
from mediator.engine.explain import WatchedAggregation
from mediator.engine.mapping import lineage_ids

from .test_engine_properties import CHOICES, RICH, build_tree

MONTHS = ["2024-01", "2024-02", "2024-03"]  # 2024Q1
ROWS = {"deV": ["visits"], "deS": ["home", "away"], "deP": ["coverage"], "deQ": ["passed"]}


def number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def usable(target: Any, choice: str) -> bool:
    """CHT's rule, restated: the value a row of ``choice`` takes from the target."""
    value = target.get("value") if isinstance(target, dict) else None
    if not isinstance(value, dict):
        return False
    total, passed = value.get("total"), value.get("pass", 0 if number(value.get("total")) else None)
    if choice == "total":
        return number(total)
    if choice == "pass":
        return number(passed)
    return number(total) and number(passed)


@st.composite
def cases(draw):
    shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    places, lineage = build_tree(shape)
    owners: dict[str, Any] = {}
    for place in places:
        for n in range(draw(st.integers(0, 2))):
            owners[f"u-{place['_id']}-{n}"] = {
                "_id": f"u-{place['_id']}-{n}",
                "parent": lineage[place["_id"]],
            }
    owners["u-away"] = {"_id": "u-away", "parent": {"_id": "elsewhere"}}  # under no place
    gone = ["u-deleted"]  # docs of an owner CHT no longer has
    number_ = st.one_of(st.integers(0, 30), st.sampled_from(["7", None, 2.5]))
    target = st.fixed_dictionaries(
        {"id": st.sampled_from([*(t for ts in ROWS.values() for t in ts), "other"])},
        optional={"value": st.fixed_dictionaries({}, optional={"total": number_, "pass": number_})},
    )
    docs: list[Any] = []
    for owner in [*owners, *gone]:
        for month in draw(st.lists(st.sampled_from(MONTHS), unique=True, max_size=3)):
            docs.append(
                {
                    "_id": f"target~{month}~{owner}~org.couchdb.user:{owner}",
                    "_rev": "1-a",
                    "type": "target",
                    "owner": owner,
                    "user": f"org.couchdb.user:{owner}",
                    "updated_date": 1704067200000,
                    "targets": draw(st.lists(target, max_size=4)),
                }
            )
    docs += draw(
        st.lists(st.sampled_from([None, {"type": "other"}, {"type": "target"}]), max_size=2)
    )
    unit = draw(st.sampled_from(places))["dhis"]["orgUnit"]
    element = draw(st.sampled_from(sorted(ROWS)))
    return places, owners, docs, unit, element


def feed(agg: Aggregation, places, owners, docs) -> Aggregation:
    agg.add_places(places)
    for owner_id, owner in owners.items():
        agg.add_owner(owner_id, lineage_ids(owner))
    agg.add_owner("u-deleted", None)
    for start in range(0, len(docs), 3):  # in pages, as the reader gives them
        agg.add_target_docs(docs[start : start + 3])
    return agg


@settings(max_examples=150, deadline=None)
@given(cases())
def test_contributions_sum_to_the_cell_and_list_exactly_the_docs_that_count(case):
    places, owners, docs, unit, element = case
    plain = feed(Aggregation(RICH, "dsX", "2024Q1", value_choices=CHOICES), places, owners, docs)
    watched = WatchedAggregation(
        RICH, "dsX", "2024Q1", org_unit=unit, value_choices=CHOICES, data_element=element
    )
    feed(watched, places, owners, docs)
    value = next(v for de, _, _, ou, v in plain.value_rows() if de == element and ou == unit)
    assert next(v for de, _, _, ou, v in watched.value_rows() if de == element) == value
    here = Aggregation(RICH, "dsX", "2024Q1", org_unit=unit, value_choices=CHOICES)
    feed(here, places, owners, docs)  # what preview --org-unit counts: the same, doc for doc
    assert (watched.docs_read, watched.docs_counted) == (here.docs_read, here.docs_counted)
    assert watched.skipped == here.skipped

    (row,) = watched.watched.rows
    added = [n.added.get(row) for n in watched.watched.counted]
    choice = CHOICES.get(ROWS[element][0], "total")
    if choice == "percent":
        passed = sum(a.passed for a in added if a)
        total = sum(a.total for a in added if a)
        assert value == (round(passed * 100 / total) if total else 0)
    else:
        assert sum(a.value for a in added if a) == value

    under = {
        o
        for o, owner in owners.items()
        if f"ou-{owner['parent']['_id']}" == unit or unit in {f"ou-{p}" for p in lineage_ids(owner)}
    }
    expected = {
        d["_id"]
        for d in docs
        if isinstance(d, dict)
        and d.get("owner") in under
        and any(
            isinstance(t, dict) and t.get("id") in ROWS[element] and usable(t, choice)
            for t in d["targets"]
        )
    }
    assert {n.doc_id for n in watched.watched.counted} == expected
    listed = {n.doc_id for n in watched.watched.not_counted}
    assert (
        listed
        == {d["_id"] for d in docs if isinstance(d, dict) and d.get("owner") in under} - expected
    )
    assert {n.doc_id for n in watched.watched.unplaced} == {
        d["_id"] for d in docs if isinstance(d, dict) and d.get("owner") == "u-deleted"
    }
