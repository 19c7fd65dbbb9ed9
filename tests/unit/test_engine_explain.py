"""The watched aggregation (explain's) on plain data: it decides every number as the
plain one does, and what it notes per doc adds up to the org unit's number."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mediator.engine.aggregation import Aggregation
from mediator.engine.explain import NO_TARGET_OF_THAT_ID, WatchedAggregation
from mediator.engine.mapping import SKIP_OWNER_MISSING, SKIP_TARGET_NON_NUMERIC, lineage_ids

from .test_engine_properties import SETTINGS, build_tree, deployments

PERCENT: dict[str, Any] = {
    "dhis_data_sets": [{"id": "dsX"}],
    "tasks": {
        "targets": {
            "items": [
                {"id": "t", "dhis": {"dataElement": "deX"}},
                {"id": "p", "dhis": {"dataElement": "deP"}},
            ]
        }
    },
}


def fed(agg: Aggregation, places, owners, docs) -> Aggregation:
    agg.add_places(places)
    for owner_id, owner in owners.items():
        agg.add_owner(owner_id, lineage_ids(owner))
    agg.add_target_docs(docs)
    return agg


@settings(max_examples=40, deadline=None)
@given(deployments(), st.integers(0, 50))
def test_watched_numbers_are_the_plain_ones_and_the_notes_sum_to_them(deployment, pick):
    places, owners, docs = deployment
    unit = places[pick % len(places)]["dhis"]["orgUnit"]
    plain = fed(Aggregation(SETTINGS, "dsX", "202401", org_unit=unit), places, owners, docs)
    watched = WatchedAggregation(SETTINGS, "dsX", "202401", org_unit=unit, data_element="deX")
    fed(watched, places, owners, docs)
    assert list(watched.value_rows()) == list(plain.value_rows())
    assert watched.skipped == plain.skipped and watched.docs_counted == plain.docs_counted
    [(_, _, _, _, value)] = list(watched.value_rows())
    notes = watched.watched.counted
    assert sum(a.value for n in notes for a in n.added.values()) == value
    # every doc of an owner under the org unit is noted, none of the others
    under = {o for o, owner in owners.items() if unit.removeprefix("ou-") in lineage_ids(owner)}
    assert {n.owner for n in notes} == {d["owner"] for d in docs if d["owner"] in under}


def test_percent_notes_pass_and_total_and_the_reasons_a_doc_did_not_count():
    places, lineage = build_tree([2])
    owners = {f"u{i}": {"_id": f"u{i}", "parent": lineage["p.0"]} for i in range(4)}
    docs = [
        {
            "_id": "target~2024-01~u0~x",
            "owner": "u0",
            "targets": [{"id": "p", "value": {"pass": 2, "total": 3}}],
        },
        {
            "_id": "target~2024-01~u1~x",
            "owner": "u1",
            "targets": [{"id": "p", "value": {"pass": 1, "total": 1}}],
        },
        {
            "_id": "target~2024-01~u2~x",
            "owner": "u2",
            "targets": [{"id": "t", "value": {"total": 5}}],
        },
        {
            "_id": "target~2024-01~u3~x",
            "owner": "u3",
            "targets": [{"id": "p", "value": {"pass": "x"}}],
        },
        {"_id": "target~2024-01~gone~x", "owner": "gone", "targets": []},
    ]
    watched = WatchedAggregation(
        PERCENT,
        "dsX",
        "202401",
        org_unit="ou-p.0",
        value_choices={"p": "percent"},
        data_element="deP",
    )
    fed(watched, places, owners, [])
    watched.add_owner("gone", None)
    watched.add_target_docs(docs)
    seen = watched.watched
    row = seen.rows[0]
    assert [(n.doc_id, n.added[row].passed, n.added[row].total) for n in seen.counted] == [
        ("target~2024-01~u0~x", 2, 3),
        ("target~2024-01~u1~x", 1, 1),
    ]
    assert {n.owner: n.reason for n in seen.not_counted} == {
        "u2": NO_TARGET_OF_THAT_ID,
        "u3": SKIP_TARGET_NON_NUMERIC,
    }
    assert [(n.owner, n.reason, n.month) for n in seen.unplaced] == [
        ("gone", SKIP_OWNER_MISSING, "2024-01")
    ]
    [value] = [v for de, *_, v in watched.value_rows() if de == "deP"]
    assert value == round(3 * 100 / 4)
